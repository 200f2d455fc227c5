//! The worst-case size of a request, reserved before it is forwarded.
//!
//! Admission by reservation is only as good as this estimate: the overshoot of a hard limit is
//! bounded by how far actual usage exceeds it. The prompt is estimated from the request body
//! size (`bytes / bytes_per_token`, default 4, rounded up). Against real tokenizers that
//! *over*-counts English prose sent as JSON (keys, quotes, escapes, role markers and the
//! output-length fields all count as prompt) and grossly over-counts base64 images and files,
//! which providers bill per image, not per byte; it *under*-counts CJK and other scripts
//! where a token is one or two 3-byte characters (up to ~2x low), and tool definitions some
//! providers expand server-side. Output is bounded exactly by the max output tokens (the
//! request's, clamped by an output cap, else the cap, else `default_max_output_tokens`), times
//! the number of choices the request asks for (OpenAI `n` and `best_of`, Gemini
//! `candidateCount`, as the request scanner read them into
//! [`RequestFacts::choices`](crate::providers::RequestFacts::choices); each choice may use the
//! whole max output), at most [`MAX_CHOICES`]. The USD estimate prices the prompt at the uncached input rate and the
//! output at the output rate; cache writes, billed above the input rate, are not in the
//! estimate, so a prompt-caching request can exceed it.

use crate::pricing::{ModelPrice, PicoUsd};

/// Most choices one request is reserved for: OpenAI's documented maximum of `n` (Gemini
/// allows 8 candidates, `best_of` 20). The upstream refuses larger counts, so reserving more
/// would only turn its 400 into a 429.
pub const MAX_CHOICES: u64 = 128;

/// What a request is expected to cost at most.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Estimate {
    pub prompt_tokens: u64,
    /// Max output tokens after caps, times choices.
    pub output_tokens: u64,
    /// `None` when the model has no price ("unpriced", never 0).
    pub usd: Option<PicoUsd>,
}

impl Estimate {
    /// Total tokens reserved.
    pub fn tokens(&self) -> u64 {
        self.prompt_tokens.saturating_add(self.output_tokens)
    }
}

/// What the estimate is computed from.
#[derive(Debug, Clone, Copy)]
pub struct EstimateInput<'a> {
    /// Request body bytes (after decompression if it was compressed).
    pub body_bytes: u64,
    /// The request's own max output tokens, if it sent one.
    pub requested_max_output: Option<u64>,
    /// OpenAI's `n` / Gemini's `candidateCount`; 1 when absent, at most [`MAX_CHOICES`].
    pub choices: u64,
    /// The smallest output cap of the budgets that apply.
    pub output_cap: Option<u64>,
    /// The model's price; `None` when unpriced.
    pub price: Option<&'a ModelPrice>,
}

/// Max output tokens the request will be allowed: its own value clamped by the cap, else the
/// cap, else the default.
pub fn effective_max_output(requested: Option<u64>, cap: Option<u64>, default: u64) -> u64 {
    match (requested, cap) {
        (Some(r), Some(c)) => r.min(c),
        (Some(r), None) => r,
        (None, Some(c)) => c,
        (None, None) => default,
    }
}

/// The reservation for one request.
pub fn estimate(
    input: &EstimateInput<'_>,
    bytes_per_token: u64,
    default_max_output: u64,
) -> Estimate {
    let prompt_tokens = input.body_bytes.div_ceil(bytes_per_token.max(1));
    let output_tokens = effective_max_output(
        input.requested_max_output,
        input.output_cap,
        default_max_output,
    )
    .saturating_mul(input.choices.clamp(1, MAX_CHOICES));
    let usd = input.price.map(|p| {
        PicoUsd(
            prompt_tokens
                .saturating_mul(p.input)
                .saturating_add(output_tokens.saturating_mul(p.output)),
        )
    });
    Estimate {
        prompt_tokens,
        output_tokens,
        usd,
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::indexing_slicing)]
mod tests {
    use super::*;

    fn price() -> ModelPrice {
        // gpt-4o-like: $2.50 / 1M input, $10 / 1M output.
        ModelPrice {
            input: 2_500_000,
            output: 10_000_000,
            ..ModelPrice::default()
        }
    }

    #[test]
    fn prompt_from_bytes_rounds_up_and_output_uses_request_max() {
        let p = price();
        let e = estimate(
            &EstimateInput {
                body_bytes: 401,
                requested_max_output: Some(100),
                choices: 1,
                output_cap: None,
                price: Some(&p),
            },
            4,
            4096,
        );
        assert_eq!(e.prompt_tokens, 101);
        assert_eq!(e.output_tokens, 100);
        assert_eq!(e.tokens(), 201);
        assert_eq!(e.usd, Some(PicoUsd(101 * 2_500_000 + 100 * 10_000_000)));
    }

    #[test]
    fn cap_clamps_and_default_fills_and_choices_multiply() {
        assert_eq!(effective_max_output(Some(9_000), Some(500), 4096), 500);
        assert_eq!(effective_max_output(Some(100), Some(500), 4096), 100);
        assert_eq!(effective_max_output(None, Some(500), 4096), 500);
        assert_eq!(effective_max_output(None, None, 4096), 4096);
        let e = estimate(
            &EstimateInput {
                body_bytes: 0,
                requested_max_output: None,
                choices: 3,
                output_cap: Some(50),
                price: None,
            },
            4,
            4096,
        );
        assert_eq!(e.output_tokens, 150);
        assert_eq!(e.usd, None, "unpriced stays None, never $0");
    }

    #[test]
    fn choices_are_bounded_and_saturate() {
        let input = |choices, requested_max_output| EstimateInput {
            body_bytes: 0,
            requested_max_output,
            choices,
            output_cap: None,
            price: None,
        };
        let out = |choices, max| estimate(&input(choices, Some(max)), 4, 4096).output_tokens;
        assert_eq!(out(0, 100), 100, "0 choices reserve like 1");
        assert_eq!(out(MAX_CHOICES, 100), 12_800);
        assert_eq!(out(u64::MAX, 100), 12_800, "beyond the maximum, the maximum");
        assert_eq!(out(2, u64::MAX), u64::MAX, "saturates, never wraps");
        let p = price();
        let e = estimate(&EstimateInput { price: Some(&p), ..input(MAX_CHOICES, Some(u64::MAX / 2)) }, 4, 4096);
        assert_eq!(e.usd, Some(PicoUsd(u64::MAX)));
    }
}
