//! One call for the pipeline at the end of the request body: plan, cap, estimate, reserve.
//!
//! The steps depend on each other in a way that is easy to get subtly wrong when wired by
//! hand: the output cap must be chosen from the matching budgets before the estimate, the
//! estimate must use the clamped max output (not the client's), and a body that could not be
//! rewritten must still be estimated with the cap the upstream will *not* see. [`admit`] does
//! them in that order and returns everything the exchange needs to keep.

use super::caps::{apply_output_cap, CapDialect};
use super::config::{BudgetConfig, BudgetDef};
use super::estimate::{estimate, Estimate, EstimateInput};
use super::ledger::{reserve, Admission, Dimensions, Plan};
use super::BudgetError;
use crate::host::SharedStore;
use crate::pricing::ModelPrice;

/// What the pipeline knows about the request when its body is complete.
#[derive(Clone, Copy)]
pub struct AdmitRequest<'a> {
    /// The request's attribution values.
    pub dims: &'a dyn Dimensions,
    /// The complete (decoded) request body.
    pub body: &'a [u8],
    /// How to write an output cap into this API's body; `None` where the pipeline writes
    /// none, and the cap then does not bound the estimate.
    pub cap_dialect: Option<CapDialect>,
    /// The request's own max output tokens, as the request scanner read it
    /// ([`RequestFacts::max_output_tokens`](crate::providers::RequestFacts)); `Some(0)` for
    /// APIs without output (embeddings), which are then estimated from the prompt alone.
    pub requested_max_output: Option<u64>,
    /// The number of outputs, as the request scanner read it
    /// ([`RequestFacts::choices`](crate::providers::RequestFacts)); 1 when absent. The
    /// estimate bounds it to 1..=[`MAX_CHOICES`](super::estimate::MAX_CHOICES).
    pub choices: u64,
    /// The model's price; `None` when unpriced.
    pub price: Option<&'a ModelPrice>,
}

/// The outcome of [`admit`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Admitted {
    /// Decision, reservation to keep until settlement, snapshots for metrics.
    pub admission: Admission,
    /// The body to forward instead of the original, when a cap changed it.
    pub new_body: Option<Vec<u8>>,
    /// What was reserved.
    pub estimate: Estimate,
    /// Why the cap could not be written (body too large or not JSON); the request is then
    /// forwarded unchanged and estimated with the request's own max output.
    pub cap_error: Option<BudgetError>,
}

/// Plans, caps, estimates and reserves one request against `budgets` (the cache's budgets).
pub fn admit<S: SharedStore + ?Sized>(
    store: &S,
    config: &BudgetConfig,
    budgets: &[BudgetDef],
    req: &AdmitRequest<'_>,
    now_unix_millis: u64,
) -> Admitted {
    let plan = Plan::new(budgets, req.dims);
    let mut new_body = None;
    let mut cap_error = None;
    // The cap bounds the estimate only if the upstream will actually see it.
    let mut effective_cap = None;
    if let (Some(cap), Some(dialect)) = (plan.output_cap(), req.cap_dialect) {
        match apply_output_cap(req.body, dialect, cap, config.max_rewrite_bytes) {
            Ok(body) => {
                new_body = body;
                effective_cap = Some(cap);
            }
            Err(e) => cap_error = Some(e),
        }
    }
    let body_len = new_body.as_ref().map_or(req.body.len(), Vec::len);
    let est = estimate(
        &EstimateInput {
            body_bytes: u64::try_from(body_len).unwrap_or(u64::MAX),
            requested_max_output: req.requested_max_output,
            choices: req.choices,
            output_cap: effective_cap,
            price: req.price,
        },
        config.bytes_per_token,
        config.default_max_output_tokens,
    );
    let admission = reserve(store, config, &plan, &est, now_unix_millis);
    Admitted {
        admission,
        new_body,
        estimate: est,
        cap_error,
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::indexing_slicing)]
mod tests {
    use super::*;
    use crate::budget::{settle, Actual, ChatField, Outcome};
    use crate::host::fake::FakeStore;
    use crate::pricing::PicoUsd;
    use crate::providers::{Api, RequestScanner};

    const NOW: u64 = 1_795_766_400_000;

    fn price() -> ModelPrice {
        ModelPrice {
            input: 2_500_000,
            output: 10_000_000,
            ..ModelPrice::default()
        }
    }

    #[test]
    fn cap_is_written_and_bounds_the_estimate() {
        let config = BudgetConfig::parse(
            br#"{"budgets":[{"id":"a","match":{"customer":"acme"},"limit_usd":"1","window":"day","output_cap":100}]}"#,
        )
        .unwrap();
        let store = FakeStore::default();
        let p = price();
        let dims = [("customer", "acme")];
        let body = br#"{"model":"gpt-4o","max_tokens":100000,"messages":[]}"#;
        let req = AdmitRequest {
            dims: &dims,
            body,
            cap_dialect: Some(CapDialect::OpenAiChat(ChatField::MaxCompletionTokens)),
            requested_max_output: Some(100_000),
            choices: 1,
            price: Some(&p),
        };
        let out = admit(&store, &config, &config.budgets, &req, NOW);
        assert_eq!(out.admission.decision.outcome, Outcome::Allowed);
        let new_body: serde_json::Value =
            serde_json::from_slice(out.new_body.as_ref().unwrap()).unwrap();
        assert_eq!(new_body["max_tokens"], 100);
        assert_eq!(
            out.estimate.output_tokens, 100,
            "estimated with the cap, not the client's 100000"
        );
        let prompt = u64::try_from(out.new_body.as_ref().unwrap().len())
            .unwrap()
            .div_ceil(4);
        assert_eq!(out.estimate.prompt_tokens, prompt);
        assert_eq!(
            out.estimate.usd,
            Some(PicoUsd(prompt * 2_500_000 + 100 * 10_000_000))
        );
        let _ = settle(
            &store,
            &config,
            out.admission.reservation,
            Actual {
                usd: None,
                tokens: 0,
            },
        );
    }

    /// What the pipeline passes for `body` on `api`: the request scanner's facts.
    fn scanned(api: Api, body: &[u8]) -> (Option<u64>, u64) {
        let mut s = RequestScanner::new(api);
        s.feed(body);
        let f = s.finish();
        (f.max_output_tokens, f.choices.unwrap_or(1))
    }

    #[test]
    fn every_requested_choice_is_reserved() {
        // Four completions of up to 100 tokens reserve 400, and a 300-token budget rejects
        // them; the count comes from the request scanner's facts.
        let config = BudgetConfig::parse(
            br#"{"budgets":[{"id":"a","limit_tokens":300,"window":"day","output_cap":100}]}"#,
        )
        .unwrap();
        let store = FakeStore::default();
        let dims: [(&str, &str); 0] = [];
        let chat = Some(CapDialect::OpenAiChat(ChatField::MaxCompletionTokens));
        let run = |api, body: &'static [u8], cap_dialect| {
            let (requested_max_output, choices) = scanned(api, body);
            let req = AdmitRequest {
                dims: &dims,
                body,
                cap_dialect,
                requested_max_output,
                choices,
                price: None,
            };
            admit(&store, &config, &config.budgets, &req, NOW)
        };
        let out = run(Api::OpenAiChatCompletions, br#"{"n":4,"messages":[]}"#, chat);
        assert_eq!(out.estimate.output_tokens, 400);
        assert_eq!(out.admission.decision.outcome, Outcome::Rejected);
        let out = run(Api::OpenAiChatCompletions, br#"{"n":2,"messages":[]}"#, chat);
        assert_eq!(out.estimate.output_tokens, 200);
        assert_eq!(out.admission.decision.outcome, Outcome::Allowed);
        let gemini = br#"{"contents":[],"generationConfig":{"candidateCount":3}}"#;
        let out = run(Api::GeminiGenerateContent, gemini, Some(CapDialect::Gemini));
        assert_eq!(out.estimate.output_tokens, 300);
        let out = run(Api::AnthropicMessages, br#"{"n":4}"#, Some(CapDialect::AnthropicMessages));
        assert_eq!(out.estimate.output_tokens, 100, "Anthropic has no `n`");
    }

    #[test]
    fn a_route_without_a_written_cap_reserves_its_own_max_output() {
        // Gemini without a cap dialect: its `maxOutputTokens` bounds the estimate, its
        // candidates multiply it, and without the field the default is reserved.
        let config =
            BudgetConfig::parse(br#"{"budgets":[{"id":"a","limit_tokens":100000,"window":"day"}]}"#)
                .unwrap();
        let store = FakeStore::default();
        let dims: [(&str, &str); 0] = [];
        let run = |body: &'static [u8]| {
            let (requested_max_output, choices) = scanned(Api::GeminiGenerateContent, body);
            let req = AdmitRequest {
                dims: &dims,
                body,
                cap_dialect: None,
                requested_max_output,
                choices,
                price: None,
            };
            admit(&store, &config, &config.budgets, &req, NOW).estimate.output_tokens
        };
        assert_eq!(run(br#"{"contents":[],"generationConfig":{"maxOutputTokens":64}}"#), 64);
        assert_eq!(run(br#"{"generationConfig":{"maxOutputTokens":64,"candidateCount":2}}"#), 128);
        assert_eq!(run(br#"{"contents":[]}"#), 4096);
    }

    #[test]
    fn unwritable_cap_does_not_bound_the_estimate() {
        let config = BudgetConfig::parse(
            br#"{"max_rewrite_bytes":8,"budgets":[{"id":"a","limit_tokens":1000000,"window":"day","output_cap":100}]}"#,
        )
        .unwrap();
        let store = FakeStore::default();
        let dims: [(&str, &str); 0] = [];
        let req = AdmitRequest {
            dims: &dims,
            body: br#"{"max_tokens":5000}"#,
            cap_dialect: Some(CapDialect::AnthropicMessages),
            requested_max_output: Some(5_000),
            choices: 1,
            price: None,
        };
        let out = admit(&store, &config, &config.budgets, &req, NOW);
        assert!(out.new_body.is_none());
        assert!(matches!(
            out.cap_error,
            Some(BudgetError::BodyTooLarge { limit: 8 })
        ));
        assert_eq!(out.estimate.output_tokens, 5_000);
        assert_eq!(out.estimate.usd, None);
        let _ = settle(
            &store,
            &config,
            out.admission.reservation,
            Actual {
                usd: None,
                tokens: 0,
            },
        );
    }

    #[test]
    fn embeddings_reserve_the_prompt_only() {
        let config =
            BudgetConfig::parse(br#"{"budgets":[{"id":"a","limit_tokens":1000,"window":"day"}]}"#)
                .unwrap();
        let store = FakeStore::default();
        let dims: [(&str, &str); 0] = [];
        let req = AdmitRequest {
            dims: &dims,
            body: &[b'x'; 400],
            cap_dialect: None,
            requested_max_output: Some(0),
            choices: 1,
            price: None,
        };
        let out = admit(&store, &config, &config.budgets, &req, NOW);
        assert_eq!(
            (out.estimate.prompt_tokens, out.estimate.output_tokens),
            (100, 0)
        );
        assert_eq!(out.admission.decision.remaining_tokens, Some(900));
        let _ = settle(
            &store,
            &config,
            out.admission.reservation,
            Actual {
                usd: None,
                tokens: 0,
            },
        );
    }
}
