//! Google Gemini `generateContent` / `streamGenerateContent` as a path table, for the Gemini
//! API (`generativelanguage.googleapis.com`) and Vertex AI (`publishers/google/models/...`).
//!
//! Conventions: `promptTokenCount` already includes `cachedContentTokenCount`;
//! `candidatesTokenCount` excludes `thoughtsTokenCount`, and `toolUsePromptTokenCount` is
//! billed as input but reported apart ([`Conventions::GEMINI`](crate::usage::Conventions)).
//! A stream (`alt=sse`, or the default JSON array cut into elements by
//! [`crate::stream::json_array`]) repeats `usageMetadata` as running totals in every
//! object; the later value replaces the earlier one, so the last object wins. The body names
//! the model only as `modelVersion`; the request path names it too (see `detect::path_model`).

use crate::json::Step::{AnyIndex as Any, Key as K};

use super::mapping::{rule, Rule, Target as T};

pub(crate) static GENERATE_CONTENT: &[Rule] = &[
    rule(&[K("usageMetadata"), K("promptTokenCount")], T::Input),
    rule(&[K("usageMetadata"), K("candidatesTokenCount")], T::Output),
    rule(
        &[K("usageMetadata"), K("cachedContentTokenCount")],
        T::CacheRead,
    ),
    rule(&[K("usageMetadata"), K("thoughtsTokenCount")], T::Reasoning),
    rule(
        &[K("usageMetadata"), K("toolUsePromptTokenCount")],
        T::ToolUsePrompt,
    ),
    rule(&[K("modelVersion")], T::Model),
    rule(&[K("responseId")], T::Id),
    rule(&[K("candidates"), Any, K("finishReason")], T::FinishReason),
    rule(
        &[
            K("candidates"),
            Any,
            K("content"),
            K("parts"),
            Any,
            K("text"),
        ],
        T::OutputText,
    ),
    rule(
        &[
            K("candidates"),
            Any,
            K("content"),
            K("parts"),
            Any,
            K("functionCall"),
            K("name"),
        ],
        T::OutputText,
    ),
];
