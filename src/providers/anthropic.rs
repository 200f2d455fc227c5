//! Anthropic Messages as a path table.
//!
//! Conventions: `input_tokens` excludes cache reads (`cache_read_input_tokens`) and cache
//! writes (`cache_creation_input_tokens`, split by TTL in `cache_creation`), and server
//! tools are counted per call in `server_tool_use`. A stream reports usage twice:
//! `message_start` carries the message (usage under `message.usage`) and `message_delta`
//! carries cumulative totals at the root; the later value replaces the earlier one, so the
//! two are merged and never summed. The stop reason arrives in `message_delta` as
//! `delta.stop_reason`. Vertex AI `rawPredict`/`streamRawPredict` and Bedrock `InvokeModel*`
//! for Claude carry the same bodies.

use crate::json::Step::{AnyIndex as Any, Key as K};

use super::mapping::{rule, Rule, Target as T};

pub(crate) static MESSAGES: &[Rule] = &[
    // The message body (JSON) and the message_delta event (SSE).
    rule(&[K("usage"), K("input_tokens")], T::Input),
    rule(&[K("usage"), K("output_tokens")], T::Output),
    rule(&[K("usage"), K("cache_read_input_tokens")], T::CacheRead),
    rule(
        &[K("usage"), K("cache_creation_input_tokens")],
        T::CacheCreation,
    ),
    rule(
        &[
            K("usage"),
            K("cache_creation"),
            K("ephemeral_5m_input_tokens"),
        ],
        T::CacheCreation5m,
    ),
    rule(
        &[
            K("usage"),
            K("cache_creation"),
            K("ephemeral_1h_input_tokens"),
        ],
        T::CacheCreation1h,
    ),
    rule(
        &[K("usage"), K("server_tool_use"), K("web_search_requests")],
        T::WebSearch,
    ),
    rule(
        &[K("usage"), K("server_tool_use"), K("web_fetch_requests")],
        T::WebFetch,
    ),
    rule(&[K("usage"), K("service_tier")], T::ServiceTier),
    rule(&[K("model")], T::Model),
    rule(&[K("id")], T::Id),
    rule(&[K("stop_reason")], T::FinishReason),
    rule(&[K("content"), Any, K("text")], T::OutputText),
    rule(&[K("content"), Any, K("thinking")], T::OutputText),
    // message_delta and content_block_delta events.
    rule(&[K("delta"), K("stop_reason")], T::FinishReason),
    rule(&[K("delta"), K("text")], T::OutputText),
    rule(&[K("delta"), K("thinking")], T::OutputText),
    rule(&[K("delta"), K("partial_json")], T::OutputText),
    // The message_start event.
    rule(&[K("message"), K("usage"), K("input_tokens")], T::Input),
    rule(&[K("message"), K("usage"), K("output_tokens")], T::Output),
    rule(
        &[K("message"), K("usage"), K("cache_read_input_tokens")],
        T::CacheRead,
    ),
    rule(
        &[K("message"), K("usage"), K("cache_creation_input_tokens")],
        T::CacheCreation,
    ),
    rule(
        &[
            K("message"),
            K("usage"),
            K("cache_creation"),
            K("ephemeral_5m_input_tokens"),
        ],
        T::CacheCreation5m,
    ),
    rule(
        &[
            K("message"),
            K("usage"),
            K("cache_creation"),
            K("ephemeral_1h_input_tokens"),
        ],
        T::CacheCreation1h,
    ),
    rule(
        &[
            K("message"),
            K("usage"),
            K("server_tool_use"),
            K("web_search_requests"),
        ],
        T::WebSearch,
    ),
    rule(
        &[
            K("message"),
            K("usage"),
            K("server_tool_use"),
            K("web_fetch_requests"),
        ],
        T::WebFetch,
    ),
    rule(
        &[K("message"), K("usage"), K("service_tier")],
        T::ServiceTier,
    ),
    rule(&[K("message"), K("model")], T::Model),
    rule(&[K("message"), K("id")], T::Id),
    rule(&[K("message"), K("stop_reason")], T::FinishReason),
    // Bedrock InvokeModelWithResponseStream appends its own totals to the last event
    // (`message_stop`); same meaning as Anthropic's counters, and they arrive last.
    rule(
        &[K("amazon-bedrock-invocationMetrics"), K("inputTokenCount")],
        T::Input,
    ),
    rule(
        &[K("amazon-bedrock-invocationMetrics"), K("outputTokenCount")],
        T::Output,
    ),
    rule(
        &[
            K("amazon-bedrock-invocationMetrics"),
            K("cacheReadInputTokenCount"),
        ],
        T::CacheRead,
    ),
    rule(
        &[
            K("amazon-bedrock-invocationMetrics"),
            K("cacheWriteInputTokenCount"),
        ],
        T::CacheCreation,
    ),
];
