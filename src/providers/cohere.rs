//! Cohere v2 chat (`/v2/chat`) as a path table.
//!
//! Cohere reports two sets of counts: `usage.billed_units` (what is charged) and
//! `usage.tokens` (everything the model saw, including Cohere's own prompt template). Only
//! the billed units are read, because they are what the price list applies to. A stream (SSE,
//! named events) carries them in its final `message-end` event under `delta.usage`.
//! Conventions are OpenAI's: there is no cache or reasoning breakdown. The body does not
//! name the model; the request body does.

use crate::json::Step::{AnyIndex as Any, Key as K};

use super::mapping::{rule, Rule, Target as T};

pub(crate) static CHAT: &[Rule] = &[
    rule(
        &[K("usage"), K("billed_units"), K("input_tokens")],
        T::Input,
    ),
    rule(
        &[K("usage"), K("billed_units"), K("output_tokens")],
        T::Output,
    ),
    rule(&[K("id")], T::Id),
    rule(&[K("finish_reason")], T::FinishReason),
    rule(&[K("message"), K("content"), Any, K("text")], T::OutputText),
    // Stream events: `content-delta`, `message-end`.
    rule(
        &[K("delta"), K("usage"), K("billed_units"), K("input_tokens")],
        T::Input,
    ),
    rule(
        &[
            K("delta"),
            K("usage"),
            K("billed_units"),
            K("output_tokens"),
        ],
        T::Output,
    ),
    rule(&[K("delta"), K("finish_reason")], T::FinishReason),
    rule(
        &[K("delta"), K("message"), K("content"), K("text")],
        T::OutputText,
    ),
];
