//! OpenAI's APIs as path tables: chat completions, legacy completions, embeddings and the
//! Responses API. Azure OpenAI and OpenAI-compatible servers speak the same bodies.
//!
//! Conventions (declared by the scanner, applied once in `Usage::normalize`): `prompt_tokens`
//! / `input_tokens` already include cached tokens, and `completion_tokens` /
//! `output_tokens` already include reasoning tokens. Streams carry usage in a final chunk
//! with `choices: []` (only when the client asked for `stream_options.include_usage`), and
//! the Responses API repeats the whole response, usage included, in its terminal
//! `response.completed` / `response.incomplete` / `response.failed` event; the same paths
//! therefore serve the JSON body and every SSE event. Responses API web searches are billed
//! per call: the `web_search_call` items of the response object are counted.
//!
//! OpenAI-compatible servers (Mistral, Groq, DeepSeek, xAI, OpenRouter, vLLM, Ollama `/v1`)
//! use these tables; their quirks are extra rules in [`CHAT_COMPLETIONS`]: DeepSeek's
//! `prompt_cache_hit_tokens` (a subset of `prompt_tokens`, like `cached_tokens`), Groq's
//! `x_groq.usage`, and OpenRouter's `usage.cost` (USD credits charged for the request, in
//! the JSON body and in the stream's final usage chunk), which becomes the request's cost.

use crate::json::Step::{AnyIndex as Any, Key as K};

use super::mapping::{rule, Rule, Target as T};

/// Chat completions: a `chat.completion` body or each `chat.completion.chunk` event.
pub(crate) static CHAT_COMPLETIONS: &[Rule] = &[
    rule(&[K("usage"), K("prompt_tokens")], T::Input),
    rule(&[K("usage"), K("completion_tokens")], T::Output),
    rule(
        &[K("usage"), K("prompt_tokens_details"), K("cached_tokens")],
        T::CacheRead,
    ),
    // Reported by some OpenAI-compatible servers for prompt-cache writes.
    rule(
        &[
            K("usage"),
            K("prompt_tokens_details"),
            K("cache_write_tokens"),
        ],
        T::CacheCreation,
    ),
    rule(
        &[
            K("usage"),
            K("completion_tokens_details"),
            K("reasoning_tokens"),
        ],
        T::Reasoning,
    ),
    // DeepSeek: cache hits are reported here (and in newer versions also as cached_tokens).
    rule(&[K("usage"), K("prompt_cache_hit_tokens")], T::CacheRead),
    // OpenRouter: what the request was billed, in USD credits (with BYOK, only the fee; the
    // upstream's bill to the caller's own key comes in `cost_details`).
    rule(&[K("usage"), K("cost")], T::Cost),
    rule(&[K("usage"), K("is_byok")], T::Byok),
    rule(
        &[K("usage"), K("cost_details"), K("upstream_inference_cost")],
        T::UpstreamCost,
    ),
    // Groq: usage in the last stream chunk under `x_groq` (besides `usage` when asked for).
    rule(&[K("x_groq"), K("usage"), K("prompt_tokens")], T::Input),
    rule(
        &[K("x_groq"), K("usage"), K("completion_tokens")],
        T::Output,
    ),
    rule(&[K("model")], T::Model),
    rule(&[K("id")], T::Id),
    rule(&[K("service_tier")], T::ServiceTier),
    rule(&[K("choices"), Any, K("finish_reason")], T::FinishReason),
    rule(
        &[K("choices"), Any, K("delta"), K("content")],
        T::OutputText,
    ),
    rule(
        &[K("choices"), Any, K("delta"), K("reasoning_content")],
        T::OutputText,
    ),
    rule(
        &[
            K("choices"),
            Any,
            K("delta"),
            K("tool_calls"),
            Any,
            K("function"),
            K("arguments"),
        ],
        T::OutputText,
    ),
    rule(
        &[K("choices"), Any, K("message"), K("content")],
        T::OutputText,
    ),
];

/// Legacy completions (`text_completion` bodies and chunks).
pub(crate) static COMPLETIONS: &[Rule] = &[
    rule(&[K("usage"), K("prompt_tokens")], T::Input),
    rule(&[K("usage"), K("completion_tokens")], T::Output),
    rule(
        &[K("usage"), K("prompt_tokens_details"), K("cached_tokens")],
        T::CacheRead,
    ),
    rule(
        &[
            K("usage"),
            K("completion_tokens_details"),
            K("reasoning_tokens"),
        ],
        T::Reasoning,
    ),
    // OpenRouter serves legacy completions too, with the same usage object.
    rule(&[K("usage"), K("cost")], T::Cost),
    rule(&[K("usage"), K("is_byok")], T::Byok),
    rule(
        &[K("usage"), K("cost_details"), K("upstream_inference_cost")],
        T::UpstreamCost,
    ),
    rule(&[K("model")], T::Model),
    rule(&[K("id")], T::Id),
    rule(&[K("choices"), Any, K("finish_reason")], T::FinishReason),
    rule(&[K("choices"), Any, K("text")], T::OutputText),
];

/// Embeddings: only prompt tokens are billed. The vectors are skipped unread.
pub(crate) static EMBEDDINGS: &[Rule] = &[
    rule(&[K("usage"), K("prompt_tokens")], T::Input),
    rule(&[K("model")], T::Model),
];

/// Responses API: the response object at the root (JSON) or under `response` (SSE events).
pub(crate) static RESPONSES: &[Rule] = &[
    rule(&[K("usage"), K("input_tokens")], T::Input),
    rule(&[K("usage"), K("output_tokens")], T::Output),
    rule(
        &[K("usage"), K("input_tokens_details"), K("cached_tokens")],
        T::CacheRead,
    ),
    rule(
        &[
            K("usage"),
            K("output_tokens_details"),
            K("reasoning_tokens"),
        ],
        T::Reasoning,
    ),
    rule(&[K("model")], T::Model),
    rule(&[K("id")], T::Id),
    rule(&[K("status")], T::FinishReason),
    rule(&[K("service_tier")], T::ServiceTier),
    rule(
        &[K("output"), Any, K("content"), Any, K("text")],
        T::OutputText,
    ),
    rule(&[K("output"), Any, K("type")], T::OutputItemType),
    rule(&[K("response"), K("usage"), K("input_tokens")], T::Input),
    rule(&[K("response"), K("usage"), K("output_tokens")], T::Output),
    rule(
        &[
            K("response"),
            K("usage"),
            K("input_tokens_details"),
            K("cached_tokens"),
        ],
        T::CacheRead,
    ),
    rule(
        &[
            K("response"),
            K("usage"),
            K("output_tokens_details"),
            K("reasoning_tokens"),
        ],
        T::Reasoning,
    ),
    rule(&[K("response"), K("model")], T::Model),
    rule(&[K("response"), K("id")], T::Id),
    rule(&[K("response"), K("status")], T::FinishReason),
    rule(&[K("response"), K("service_tier")], T::ServiceTier),
    rule(
        &[K("response"), K("output"), Any, K("type")],
        T::OutputItemType,
    ),
    // `response.output_text.delta` and `response.function_call_arguments.delta` events.
    rule(&[K("delta")], T::OutputText),
];
