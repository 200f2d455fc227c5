//! Request facts from the recorded request bodies of the cassettes (ground truth: the
//! bodies themselves), whole and split at every byte.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use tokenmeter::providers::{Api, RequestFacts, RequestScanner};

fn scan(api: Api, chunks: &[&[u8]]) -> RequestFacts {
    let mut s = RequestScanner::new(api);
    for c in chunks {
        s.feed(c);
    }
    s.finish()
}

fn facts(
    model: &str,
    stream: bool,
    max: Option<u64>,
    include_usage: Option<bool>,
    body: &[u8],
) -> RequestFacts {
    RequestFacts {
        model: Some(model.to_string()),
        stream,
        max_output_tokens: max,
        choices: None,
        include_usage,
        body_bytes: body.len() as u64,
        unreadable: false,
    }
}

/// API, body, then the expected model, stream flag, output cap and include_usage.
type RequestCase = (
    Api,
    &'static [u8],
    &'static str,
    bool,
    Option<u64>,
    Option<bool>,
);

#[test]
fn cassette_request_bodies() {
    use Api::*;
    let cases: Vec<RequestCase> = vec![
        (
            OpenAiChatCompletions,
            include_bytes!("fixtures/openai/chat-basic.request.json"),
            "gpt-5-nano",
            false,
            None,
            None,
        ),
        (
            OpenAiChatCompletions,
            include_bytes!("fixtures/openai/chat-streaming.request.json"),
            "gpt-5-nano",
            true,
            None,
            None,
        ),
        (
            OpenAiChatCompletions,
            include_bytes!("fixtures/openai/chat-streaming-detailed-usage.request.json"),
            "gpt-5-nano",
            true,
            Some(100),
            Some(true),
        ),
        (
            OpenAiChatCompletions,
            include_bytes!("fixtures/openai/chat-detailed-usage.request.json"),
            "gpt-5-nano",
            false,
            Some(100),
            None,
        ),
        (
            OpenAiChatCompletions,
            include_bytes!("fixtures/openai/chat-bad-request.request.json"),
            "gpt-5-nano",
            false,
            Some(0),
            None,
        ),
        (
            OpenAiChatCompletions,
            include_bytes!("fixtures/openai/chat-tools.request.json"),
            "gpt-5-nano",
            false,
            None,
            None,
        ),
        (
            OpenAiChatCompletions,
            include_bytes!("fixtures/openai/chat-unknown-model.request.json"),
            "gpt-4.1-nano-wrong",
            false,
            None,
            None,
        ),
        (
            OpenAiChatCompletions,
            include_bytes!("fixtures/openai/chat-streaming-web-search.request.json"),
            "gpt-4o-mini-search-preview",
            true,
            None,
            None,
        ),
        (
            OpenAiCompletions,
            include_bytes!("fixtures/openai/completion-basic.request.json"),
            "babbage-002",
            false,
            Some(25),
            None,
        ),
        (
            OpenAiCompletions,
            include_bytes!("fixtures/openai/completion-streaming.request.json"),
            "babbage-002",
            true,
            Some(25),
            None,
        ),
        (
            OpenAiCompletions,
            include_bytes!("fixtures/openai/completion-streaming-usage.request.json"),
            "babbage-002",
            true,
            Some(25),
            Some(true),
        ),
        (
            OpenAiEmbeddings,
            include_bytes!("fixtures/openai/embeddings-basic.request.json"),
            "text-embedding-3-small",
            false,
            None,
            None,
        ),
        (
            OpenAiChatCompletions,
            include_bytes!("fixtures/azure/azure-chat-basic.request.json"),
            "gpt-5-nano",
            false,
            None,
            None,
        ),
    ];
    for (api, body, model, stream, max, include) in cases {
        let want = facts(model, stream, max, include, body);
        assert_eq!(scan(api, &[body]), want, "{model}");
        for cut in 0..=body.len() {
            let (a, b) = body.split_at(cut);
            assert_eq!(scan(api, &[a, b]), want, "{model} cut at {cut}");
        }
    }
}

#[test]
fn anthropic_and_responses_request_shapes() {
    let anthropic = br#"{"model":"claude-sonnet-4-5","max_tokens":1024,"stream":true,"system":[{"type":"text","text":"be brief","cache_control":{"type":"ephemeral"}}],"messages":[{"role":"user","content":"hi"}]}"#;
    assert_eq!(
        scan(Api::AnthropicMessages, &[anthropic]),
        facts("claude-sonnet-4-5", true, Some(1024), None, anthropic)
    );
    let responses = br#"{"model":"gpt-5","input":[{"role":"user","content":"hi"}],"max_output_tokens":256,"stream":false,"reasoning":{"effort":"low"}}"#;
    assert_eq!(
        scan(Api::OpenAiResponses, &[responses]),
        facts("gpt-5", false, Some(256), None, responses)
    );
}

/// Whole and split at every byte into two and three pieces: the same facts.
fn assert_split_invariant(api: Api, body: &[u8], want: &RequestFacts) {
    assert_eq!(&scan(api, &[body]), want, "{api:?} whole");
    for cut in 0..=body.len() {
        let (a, b) = body.split_at(cut);
        assert_eq!(&scan(api, &[a, b]), want, "{api:?} cut at {cut}");
        let (b1, b2) = b.split_at(b.len() / 2);
        assert_eq!(&scan(api, &[a, b1, b2]), want, "{api:?} cut at {cut} and mid-rest");
    }
}

/// API, body, then the expected model, max output tokens and choices.
type CapCase = (Api, &'static [u8], Option<&'static str>, Option<u64>, Option<u64>);

#[test]
fn every_apis_output_cap_and_choices_survive_every_split() {
    use Api::*;
    let cases: &[CapCase] = &[
        (OpenAiChatCompletions, br#"{"model":"gpt-4o","messages":[{"role":"user","content":"n max_tokens"}],"n":4,"max_completion_tokens":100}"#, Some("gpt-4o"), Some(100), Some(4)),
        (OpenAiCompletions, br#"{"model":"babbage-002","prompt":"best_of","max_tokens":25,"n":2,"best_of":3}"#, Some("babbage-002"), Some(25), Some(3)),
        (OpenAiResponses, br#"{"model":"gpt-5","input":[{"role":"user","content":"hi"}],"max_output_tokens":256,"n":3}"#, Some("gpt-5"), Some(256), None),
        (AnthropicMessages, br#"{"model":"claude-sonnet-4-5","max_tokens":1024,"messages":[{"role":"user","content":"hi"}]}"#, Some("claude-sonnet-4-5"), Some(1024), None),
        (GeminiGenerateContent, br#"{"contents":[{"role":"user","parts":[{"text":"maxOutputTokens"}]}],"generationConfig":{"temperature":0.1,"maxOutputTokens":64,"candidateCount":2}}"#, None, Some(64), Some(2)),
        (GeminiGenerateContent, br#"{"contents":[],"generation_config":{"max_output_tokens":32,"candidate_count":3}}"#, None, Some(32), Some(3)),
        (BedrockConverse, br#"{"messages":[{"role":"user","content":[{"text":"hi"}]}],"inferenceConfig":{"maxTokens":512,"temperature":0.5}}"#, None, Some(512), None),
        (BedrockInvoke, br#"{"anthropic_version":"bedrock-2023-05-31","max_tokens":300,"messages":[{"role":"user","content":"hi"}]}"#, None, Some(300), None),
        (CohereChat, br#"{"model":"command-r","messages":[{"role":"user","content":"hi"}],"max_tokens":200}"#, Some("command-r"), Some(200), None),
        (OllamaChat, br#"{"model":"llama3.2","messages":[{"role":"user","content":"hi"}],"options":{"num_predict":128}}"#, Some("llama3.2"), Some(128), None),
        (OllamaGenerate, br#"{"model":"llama3.2","prompt":"hi","options":{"temperature":0,"num_predict":16}}"#, Some("llama3.2"), Some(16), None),
    ];
    for &(api, body, model, max, choices) in cases {
        let want = RequestFacts {
            model: model.map(str::to_string),
            max_output_tokens: max,
            choices,
            body_bytes: body.len() as u64,
            ..RequestFacts::default()
        };
        assert_split_invariant(api, body, &want);
    }
}

#[test]
fn a_huge_prompt_is_skipped_in_bounded_memory() {
    let mut s = RequestScanner::new(Api::OpenAiChatCompletions);
    s.feed(br#"{"messages":[{"role":"user","content":""#);
    let filler = vec![b'x'; 64 << 10];
    for _ in 0..64 {
        s.feed(&filler);
    }
    s.feed(br#""}],"model":"gpt-4o","stream":true}"#);
    let f = s.finish();
    assert_eq!(f.model.as_deref(), Some("gpt-4o"));
    assert!(f.stream);
    assert!(f.body_bytes > 4 << 20);
}
