//! The request side: model, streaming and output caps, read incrementally from the body.
//!
//! These fields are top-level in every supported API, so one small visitor serves all of
//! them; prompts (which can be megabytes) are skipped by the scanner unread.

use crate::json::{Interest, Path, Scalar, Scanner, Step::Key as K, Visitor};

use super::{Api, RequestFacts};

struct Facts(RequestFacts);

/// Interest bits: a top-level fact, or inside `stream_options`.
const TOP: Interest = 1;
const STREAM_OPTIONS: Interest = 2;

impl Visitor for Facts {
    fn root(&mut self) -> Interest {
        TOP
    }

    /// Only the handful of keys below are read; `messages`, `input`, `tools` (the bulk of
    /// a request) are skipped unread.
    fn key(&mut self, parent: Interest, depth: usize, key: Option<&[u8]>) -> Interest {
        match (depth, parent, key.unwrap_or_default()) {
            (
                0,
                TOP,
                b"model"
                | b"stream"
                | b"max_tokens"
                | b"max_completion_tokens"
                | b"max_output_tokens",
            ) => TOP,
            (0, TOP, b"stream_options") => STREAM_OPTIONS,
            (1, STREAM_OPTIONS, b"include_usage") => STREAM_OPTIONS,
            _ => 0,
        }
    }

    fn wants_string(&mut self, _: Interest, path: &Path<'_>) -> bool {
        path.matches(&[K("model")])
    }

    fn scalar(&mut self, _: Interest, path: &Path<'_>, value: Scalar<'_>) {
        match path.len() {
            1 => {
                if path.matches(&[K("model")]) {
                    if let Some(model) = value.as_str() {
                        self.0.model = Some(model.to_owned());
                    }
                } else if path.matches(&[K("stream")]) {
                    if let Some(stream) = value.as_bool() {
                        self.0.stream = stream;
                    }
                } else if path.matches(&[K("max_tokens")])
                    || path.matches(&[K("max_completion_tokens")])
                    || path.matches(&[K("max_output_tokens")])
                {
                    if let Some(n) = value.as_u64() {
                        self.0.max_output_tokens = Some(n);
                    }
                }
            }
            2 if path.matches(&[K("stream_options"), K("include_usage")]) => {
                if let Some(include) = value.as_bool() {
                    self.0.include_usage = Some(include);
                }
            }
            _ => {}
        }
    }
}

/// Incremental scanner of a request body; memory does not grow with the body.
pub struct RequestScanner {
    json: Scanner,
    facts: Facts,
}

impl RequestScanner {
    /// Every supported API keeps these facts at the same top-level keys, so the API only
    /// matters for future APIs that do not.
    pub fn new(_api: Api) -> Self {
        Self {
            json: Scanner::new(),
            facts: Facts(RequestFacts::default()),
        }
    }

    pub fn feed(&mut self, chunk: &[u8]) {
        self.facts.0.body_bytes = self.facts.0.body_bytes.saturating_add(chunk.len() as u64);
        // A failure sticks in the scanner and is read back in `finish`.
        let _sticky = self.json.feed(chunk, &mut self.facts);
    }

    pub fn finish(&mut self) -> RequestFacts {
        let mut facts = self.facts.0.clone();
        facts.unreadable = self.json.finish(&mut self.facts).is_err();
        facts
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

    fn scan(body: &[u8]) -> RequestFacts {
        let mut s = RequestScanner::new(Api::OpenAiChatCompletions);
        s.feed(body);
        s.finish()
    }

    #[test]
    fn reads_model_stream_caps_and_include_usage() {
        let f = scan(br#"{"model":"gpt-4o","messages":[{"role":"user","content":"hi","model":"x"}],"stream":true,"stream_options":{"include_usage":true},"max_completion_tokens":100}"#);
        assert_eq!(f.model.as_deref(), Some("gpt-4o"));
        assert!(f.stream);
        assert_eq!(f.include_usage, Some(true));
        assert_eq!(f.max_output_tokens, Some(100));
        assert!(!f.unreadable);
    }

    #[test]
    fn nested_lookalikes_are_ignored() {
        let f = scan(br#"{"metadata":{"model":"no","stream":true,"max_tokens":5}}"#);
        assert_eq!(
            f,
            RequestFacts {
                body_bytes: 56,
                ..RequestFacts::default()
            }
        );
    }

    #[test]
    fn non_json_is_unreadable_but_counted() {
        let f = scan(b"model=gpt-4o");
        assert!(f.unreadable);
        assert_eq!(f.body_bytes, 12);
        assert!(scan(b"").unreadable);
    }
}
