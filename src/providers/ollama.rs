//! Ollama's native `/api/chat` and `/api/generate` as one path table.
//!
//! A stream is NDJSON (framed by [`crate::stream::ndjson`]); only the final `"done": true`
//! object carries `prompt_eval_count` (input) and `eval_count` (output). A non-streamed
//! answer is that final object alone. There is no cache or reasoning breakdown, so the
//! conventions are OpenAI's. Ollama's `/v1` endpoints are OpenAI-compatible and use the
//! OpenAI tables.

use crate::json::Step::Key as K;

use super::mapping::{rule, Rule, Target as T};

pub(crate) static NATIVE: &[Rule] = &[
    rule(&[K("prompt_eval_count")], T::Input),
    rule(&[K("eval_count")], T::Output),
    rule(&[K("model")], T::Model),
    rule(&[K("done_reason")], T::FinishReason),
    rule(&[K("message"), K("content")], T::OutputText),
    rule(&[K("message"), K("thinking")], T::OutputText),
    rule(&[K("response")], T::OutputText),
    rule(&[K("thinking")], T::OutputText),
];
