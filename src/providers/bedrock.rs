//! AWS Bedrock `Converse` and `ConverseStream` as a path table.
//!
//! Conventions: `inputTokens` excludes `cacheReadInputTokens` and `cacheWriteInputTokens`
//! (as Anthropic's). The same paths serve the JSON body and the stream: `ConverseStream`
//! frames (decoded by [`crate::stream::eventstream`]) each carry one event's JSON payload,
//! with the usage in the `metadata` event (`{"usage":{...},"metrics":{...}}`), the stop
//! reason in `messageStop` and text in `contentBlockDelta`. Neither body names the model: it
//! comes from the path, `/model/{modelId}/converse[-stream]`.
//!
//! `InvokeModel*` bodies are the model's own format; for Anthropic models they use
//! [`super::anthropic::MESSAGES`], which also reads the `amazon-bedrock-invocationMetrics`
//! Bedrock appends to the last streamed event.

use crate::json::Step::{AnyIndex as Any, Key as K};

use super::mapping::{rule, Rule, Target as T};

pub(crate) static CONVERSE: &[Rule] = &[
    rule(&[K("usage"), K("inputTokens")], T::Input),
    rule(&[K("usage"), K("outputTokens")], T::Output),
    rule(&[K("usage"), K("cacheReadInputTokens")], T::CacheRead),
    rule(&[K("usage"), K("cacheWriteInputTokens")], T::CacheCreation),
    rule(&[K("stopReason")], T::FinishReason),
    rule(
        &[K("output"), K("message"), K("content"), Any, K("text")],
        T::OutputText,
    ),
    rule(
        &[
            K("output"),
            K("message"),
            K("content"),
            Any,
            K("reasoningContent"),
            K("reasoningText"),
            K("text"),
        ],
        T::OutputText,
    ),
    // contentBlockDelta events.
    rule(&[K("delta"), K("text")], T::OutputText),
    rule(
        &[K("delta"), K("reasoningContent"), K("text")],
        T::OutputText,
    ),
    rule(&[K("delta"), K("toolUse"), K("input")], T::OutputText),
];
