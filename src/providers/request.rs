//! The request side: model, streaming, output cap and number of choices, read incrementally
//! from the body.
//!
//! Each API names its facts at its own paths (Gemini's output cap sits in
//! `generationConfig`, Bedrock Converse's in `inferenceConfig`, Ollama's in `options`), so
//! every API gets one small table of paths ([`rules`]) and one visitor applies it. The
//! scanner's interest word is the set of rules still matching along the current path, so
//! prompts (which can be megabytes) and every member no rule names are skipped unread, and
//! the facts come out the same however the body is split into chunks. These facts are the
//! only reading of the request body the budget estimate uses.

use crate::json::{Interest, Path, Scalar, Scanner, Visitor};

use super::{Api, RequestFacts};

/// Which fact a matched value is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Fact {
    Model,
    Stream,
    IncludeUsage,
    /// A max-output-tokens field; the last one read wins.
    MaxOutput,
    /// A number-of-outputs field, each up to the max output; the largest one read wins.
    Choices,
}

/// The value at exactly `path` (object keys from the top-level object down) is `fact`.
#[derive(Debug, Clone, Copy)]
struct Rule {
    path: &'static [&'static str],
    fact: Fact,
}

const fn rule(path: &'static [&'static str], fact: Fact) -> Rule {
    Rule { path, fact }
}

use Fact::{Choices, IncludeUsage, MaxOutput, Model, Stream};

// Every table starts with the top-level `model` and `stream`: harmless where an API carries
// them in the URL instead (Gemini, Bedrock), and the meter reads them for every API.

/// OpenAI chat completions (and every compatible server): OpenAI deprecated `max_tokens`
/// for `max_completion_tokens`, compatible servers still take either.
const CHAT_COMPLETIONS: &[Rule] = &[
    rule(&["model"], Model),
    rule(&["stream"], Stream),
    rule(&["stream_options", "include_usage"], IncludeUsage),
    rule(&["max_tokens"], MaxOutput),
    rule(&["max_completion_tokens"], MaxOutput),
    rule(&["n"], Choices),
];

/// Legacy completions: `best_of` candidates are all generated and billed, `n` of them
/// returned, so the larger of the two counts.
const COMPLETIONS: &[Rule] = &[
    rule(&["model"], Model),
    rule(&["stream"], Stream),
    rule(&["stream_options", "include_usage"], IncludeUsage),
    rule(&["max_tokens"], MaxOutput),
    rule(&["n"], Choices),
    rule(&["best_of"], Choices),
];

/// The Responses API has one output and `max_output_tokens`.
const RESPONSES: &[Rule] = &[
    rule(&["model"], Model),
    rule(&["stream"], Stream),
    rule(&["max_output_tokens"], MaxOutput),
];

/// Embeddings produce no output.
const EMBEDDINGS: &[Rule] = &[rule(&["model"], Model), rule(&["stream"], Stream)];

/// Anthropic messages, also the body of Bedrock `InvokeModel` for Claude; Cohere v2 chat.
const MAX_TOKENS: &[Rule] = &[
    rule(&["model"], Model),
    rule(&["stream"], Stream),
    rule(&["max_tokens"], MaxOutput),
];

/// Gemini `generateContent`: the REST API takes both proto JSON spellings of every name.
const GEMINI: &[Rule] = &[
    rule(&["model"], Model),
    rule(&["stream"], Stream),
    rule(&["generationConfig", "maxOutputTokens"], MaxOutput),
    rule(&["generationConfig", "max_output_tokens"], MaxOutput),
    rule(&["generation_config", "maxOutputTokens"], MaxOutput),
    rule(&["generation_config", "max_output_tokens"], MaxOutput),
    rule(&["generationConfig", "candidateCount"], Choices),
    rule(&["generationConfig", "candidate_count"], Choices),
    rule(&["generation_config", "candidateCount"], Choices),
    rule(&["generation_config", "candidate_count"], Choices),
];

/// Bedrock `Converse` / `ConverseStream`.
const BEDROCK_CONVERSE: &[Rule] = &[
    rule(&["model"], Model),
    rule(&["stream"], Stream),
    rule(&["inferenceConfig", "maxTokens"], MaxOutput),
];

/// Ollama's native `/api/chat` and `/api/generate` (`num_predict` -1 or -2, "no limit", is
/// not a bound and reads as absent).
const OLLAMA: &[Rule] = &[
    rule(&["model"], Model),
    rule(&["stream"], Stream),
    rule(&["options", "num_predict"], MaxOutput),
];

/// The path table of an API's request bodies.
fn rules(api: Api) -> &'static [Rule] {
    match api {
        Api::OpenAiChatCompletions => CHAT_COMPLETIONS,
        Api::OpenAiCompletions => COMPLETIONS,
        Api::OpenAiResponses => RESPONSES,
        Api::OpenAiEmbeddings => EMBEDDINGS,
        Api::AnthropicMessages | Api::BedrockInvoke | Api::CohereChat => MAX_TOKENS,
        Api::GeminiGenerateContent => GEMINI,
        Api::BedrockConverse => BEDROCK_CONVERSE,
        Api::OllamaChat | Api::OllamaGenerate => OLLAMA,
    }
}

/// The bit of rule `i` in an interest word; 0 past the word (a unit test keeps every table
/// within it).
fn bit(i: usize) -> Interest {
    u32::try_from(i)
        .ok()
        .and_then(|i| Interest::from(1u8).checked_shl(i))
        .unwrap_or(0)
}

/// Applies one API's table to scanned values.
struct Facts {
    rules: &'static [Rule],
    facts: RequestFacts,
}

impl Facts {
    /// The fact of the rule of `interest` whose path ends at depth `len`. Interest bits
    /// survive only along matching keys, so an equal length is an exact match; no table
    /// holds a path twice, so there is at most one.
    fn ending(&self, interest: Interest, len: usize) -> Option<Fact> {
        self.rules
            .iter()
            .enumerate()
            .find(|(i, r)| interest & bit(*i) != 0 && r.path.len() == len)
            .map(|(_, r)| r.fact)
    }
}

impl Visitor for Facts {
    fn root(&mut self) -> Interest {
        (0..self.rules.len()).fold(0, |all, i| all | bit(i))
    }

    /// Only the keys of the table are followed; `messages`, `contents`, `input`, `tools`
    /// (the bulk of a request) are skipped unread.
    fn key(&mut self, parent: Interest, depth: usize, key: Option<&[u8]>) -> Interest {
        let Some(key) = key else { return 0 };
        self.rules
            .iter()
            .enumerate()
            .filter(|(i, r)| {
                parent & bit(*i) != 0 && r.path.get(depth).is_some_and(|k| k.as_bytes() == key)
            })
            .fold(0, |set, (i, _)| set | bit(i))
    }

    /// No fact sits in an array (an `n` sent as a list is not a count).
    fn index(&mut self, _: Interest, _: usize, _: u64) -> Interest {
        0
    }

    fn wants_string(&mut self, interest: Interest, path: &Path<'_>) -> bool {
        self.ending(interest, path.len()) == Some(Model)
    }

    fn scalar(&mut self, interest: Interest, path: &Path<'_>, value: Scalar<'_>) {
        let fact = self.ending(interest, path.len());
        let facts = &mut self.facts;
        match fact {
            Some(Model) => {
                if let Some(model) = value.as_str() {
                    facts.model = Some(model.to_owned());
                }
            }
            Some(Stream) => {
                if let Some(stream) = value.as_bool() {
                    facts.stream = stream;
                }
            }
            Some(IncludeUsage) => {
                if let Some(include) = value.as_bool() {
                    facts.include_usage = Some(include);
                }
            }
            Some(MaxOutput) => {
                if let Some(n) = value.as_u64() {
                    facts.max_output_tokens = Some(n);
                }
            }
            Some(Choices) => {
                if let Some(n) = value.as_u64() {
                    facts.choices = Some(facts.choices.map_or(n, |c| c.max(n)));
                }
            }
            None => {}
        }
    }
}

/// Incremental scanner of a request body; memory does not grow with the body.
pub struct RequestScanner {
    json: Scanner,
    facts: Facts,
}

impl RequestScanner {
    pub fn new(api: Api) -> Self {
        Self {
            json: Scanner::new(),
            facts: Facts {
                rules: rules(api),
                facts: RequestFacts::default(),
            },
        }
    }

    pub fn feed(&mut self, chunk: &[u8]) {
        self.facts.facts.body_bytes = self
            .facts
            .facts
            .body_bytes
            .saturating_add(u64::try_from(chunk.len()).unwrap_or(u64::MAX));
        // A failure sticks in the scanner and is read back in `finish`.
        let _sticky = self.json.feed(chunk, &mut self.facts);
    }

    pub fn finish(&mut self) -> RequestFacts {
        let unreadable = self.json.finish(&mut self.facts).is_err();
        RequestFacts {
            unreadable,
            ..self.facts.facts.clone()
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(
        clippy::unwrap_used,
        clippy::expect_used,
        clippy::panic,
        clippy::indexing_slicing
    )]
    use super::*;

    fn scan_as(api: Api, body: &[u8]) -> RequestFacts {
        let mut s = RequestScanner::new(api);
        s.feed(body);
        s.finish()
    }

    fn scan(body: &[u8]) -> RequestFacts {
        scan_as(Api::OpenAiChatCompletions, body)
    }

    /// The max output tokens `api` reads from each body, in order.
    fn caps(api: Api, bodies: &[&str]) -> Vec<Option<u64>> {
        bodies.iter().map(|b| scan_as(api, b.as_bytes()).max_output_tokens).collect()
    }

    /// The number of choices `api` reads from each body, in order.
    fn choices(api: Api, bodies: &[&str]) -> Vec<Option<u64>> {
        bodies.iter().map(|b| scan_as(api, b.as_bytes()).choices).collect()
    }

    #[test]
    fn every_table_fits_the_interest_word_and_names_each_path_once() {
        for api in Api::ALL {
            let table = rules(api);
            assert!(table.len() <= 64, "{api:?}");
            for (i, r) in table.iter().enumerate() {
                assert!(!r.path.is_empty(), "{api:?}");
                assert!(
                    table.iter().skip(i + 1).all(|o| o.path != r.path),
                    "{api:?} {:?} twice",
                    r.path
                );
            }
            assert!(
                table.iter().any(|r| r.path == ["model"]),
                "{api:?} reads the model"
            );
        }
    }

    #[test]
    fn reads_model_stream_caps_and_include_usage() {
        let f = scan(br#"{"model":"gpt-4o","messages":[{"role":"user","content":"hi","model":"x"}],"stream":true,"stream_options":{"include_usage":true},"max_completion_tokens":100}"#);
        assert_eq!(f.model.as_deref(), Some("gpt-4o"));
        assert!(f.stream);
        assert_eq!(f.include_usage, Some(true));
        assert_eq!(f.max_output_tokens, Some(100));
        assert_eq!(f.choices, None);
        assert!(!f.unreadable);
    }

    #[test]
    fn nested_lookalikes_are_ignored() {
        let body = br#"{"metadata":{"model":"no","stream":true,"max_tokens":5,"n":3}}"#;
        for api in Api::ALL {
            assert_eq!(
                scan_as(api, body),
                RequestFacts {
                    body_bytes: 62,
                    ..RequestFacts::default()
                },
                "{api:?}"
            );
        }
    }

    #[test]
    fn non_json_is_unreadable_but_counted() {
        let f = scan(b"model=gpt-4o");
        assert!(f.unreadable);
        assert_eq!(f.body_bytes, 12);
        assert!(scan(b"").unreadable);
    }

    #[test]
    fn openai_chat_reads_max_tokens_max_completion_tokens_and_n() {
        let api = Api::OpenAiChatCompletions;
        assert_eq!(
            caps(api, &[r#"{"max_tokens":10}"#, r#"{"max_completion_tokens":20}"#, r#"{"max_tokens":10,"max_completion_tokens":20}"#, r#"{"max_output_tokens":30}"#]),
            [Some(10), Some(20), Some(20), None]
        );
        assert_eq!(
            choices(api, &[
                r#"{"model":"gpt-4o","n":3,"messages":[{"role":"user","content":"n"}]}"#,
                r#"{"model":"gpt-4o","messages":[{"role":"user","content":"\"n\""}]}"#,
                r#"{"messages":[{"n":9}],"n":2}"#,
                r#"{"n":null,"metadata":{"n":"7"}}"#,
                r#"{"n":[4]}"#,
                r#"{"n":"4"}"#,
                r#"{"n":0}"#,
                r#"{"n":1000000}"#,
                r#"{"best_of":5}"#,
            ]),
            [Some(3), None, Some(2), None, None, None, Some(0), Some(1_000_000), None]
        );
        // A count read before the body turns out not to be JSON still counts.
        let f = scan(br#"{"n":5,"messages":[oops"#);
        assert_eq!((f.choices, f.unreadable), (Some(5), true));
    }

    #[test]
    fn openai_completions_read_max_tokens_and_the_larger_of_n_and_best_of() {
        let api = Api::OpenAiCompletions;
        assert_eq!(
            caps(api, &[r#"{"prompt":"x","max_tokens":16}"#, r#"{"max_completion_tokens":16}"#]),
            [Some(16), None]
        );
        assert_eq!(
            choices(api, &[r#"{"prompt":"x","n":2,"best_of":5}"#, r#"{"best_of":3,"n":4}"#, r#"{"n":2}"#]),
            [Some(5), Some(4), Some(2)]
        );
    }

    #[test]
    fn openai_responses_read_max_output_tokens_and_no_count() {
        let api = Api::OpenAiResponses;
        assert_eq!(
            caps(api, &[r#"{"input":"x","max_output_tokens":256}"#, r#"{"max_tokens":256}"#]),
            [Some(256), None]
        );
        assert_eq!(choices(api, &[r#"{"n":3}"#]), [None]);
    }

    #[test]
    fn anthropic_messages_read_max_tokens_and_no_count() {
        let api = Api::AnthropicMessages;
        assert_eq!(
            caps(api, &[r#"{"model":"claude-sonnet-4-5","max_tokens":1024,"messages":[]}"#, r#"{"max_completion_tokens":9}"#]),
            [Some(1024), None]
        );
        assert_eq!(choices(api, &[r#"{"n":3,"max_tokens":10}"#]), [None]);
    }

    #[test]
    fn gemini_reads_generation_config_in_either_spelling() {
        let api = Api::GeminiGenerateContent;
        assert_eq!(
            caps(api, &[
                r#"{"contents":[{"parts":[{"text":"hi"}]}],"generationConfig":{"temperature":0.2,"maxOutputTokens":64}}"#,
                r#"{"generation_config":{"max_output_tokens":32}}"#,
                r#"{"generationConfig":{"max_output_tokens":16}}"#,
                r#"{"generation_config":{"maxOutputTokens":8}}"#,
                r#"{"maxOutputTokens":64,"max_tokens":64,"generationConfig":{"maxTokens":64}}"#,
                r#"{"generationConfig":{"maxOutputTokens":null}}"#,
            ]),
            [Some(64), Some(32), Some(16), Some(8), None, None]
        );
        assert_eq!(
            choices(api, &[
                r#"{"contents":[],"generationConfig":{"candidateCount":4,"maxOutputTokens":10}}"#,
                r#"{"generation_config":{"candidate_count":2}}"#,
                r#"{"generationConfig":{"candidate_count":5}}"#,
                r#"{"generation_config":{"candidateCount":6}}"#,
                r#"{"candidateCount":6,"n":6}"#,
            ]),
            [Some(4), Some(2), Some(5), Some(6), None]
        );
    }

    #[test]
    fn bedrock_converse_reads_inference_config_max_tokens() {
        let api = Api::BedrockConverse;
        assert_eq!(
            caps(api, &[
                r#"{"messages":[{"role":"user","content":[{"text":"hi"}]}],"inferenceConfig":{"maxTokens":512,"temperature":0.5}}"#,
                r#"{"max_tokens":512,"maxTokens":512}"#,
            ]),
            [Some(512), None]
        );
        assert_eq!(choices(api, &[r#"{"n":3}"#]), [None]);
    }

    #[test]
    fn bedrock_invoke_reads_the_anthropic_body_max_tokens() {
        let api = Api::BedrockInvoke;
        assert_eq!(
            caps(api, &[
                r#"{"anthropic_version":"bedrock-2023-05-31","max_tokens":300,"messages":[]}"#,
                r#"{"inferenceConfig":{"maxTokens":300}}"#,
            ]),
            [Some(300), None]
        );
    }

    #[test]
    fn cohere_chat_reads_max_tokens() {
        let api = Api::CohereChat;
        assert_eq!(
            caps(api, &[r#"{"model":"command-r","messages":[],"max_tokens":200}"#, r#"{"max_completion_tokens":200}"#]),
            [Some(200), None]
        );
    }

    #[test]
    fn ollama_reads_options_num_predict() {
        for api in [Api::OllamaChat, Api::OllamaGenerate] {
            assert_eq!(
                caps(api, &[
                    r#"{"model":"llama3.2","messages":[],"options":{"temperature":0,"num_predict":128}}"#,
                    r#"{"options":{"num_predict":-1}}"#,
                    r#"{"num_predict":128,"max_tokens":128}"#,
                ]),
                [Some(128), None, None],
                "{api:?}"
            );
        }
    }

    #[test]
    fn embeddings_read_no_output_fields() {
        let f = scan_as(Api::OpenAiEmbeddings, br#"{"model":"text-embedding-3-small","input":"x","max_tokens":5,"n":2}"#);
        assert_eq!(f.model.as_deref(), Some("text-embedding-3-small"));
        assert_eq!((f.max_output_tokens, f.choices), (None, None));
    }
}
