//! The request path: what happens to a request between its head and the moment it goes upstream.
//!
//! This is the sans-io glue between the per-request [`crate::meter::Exchange`] and the budget
//! core ([`crate::budget`]). It owns three decisions the shell must not take itself:
//! whether a request must be held back at all ([`needs_body`], from the head alone, so that
//! traffic no budget, cap or usage injection concerns is never delayed); what to do with the
//! complete body ([`decide`]: add `stream_options.include_usage` to OpenAI chat streams that
//! did not ask for it, clamp the output cap, reserve the worst-case cost, or produce the 429 in
//! the caller's API shape); and how a finished request settles ([`Ticket::settle`], exactly
//! once, because the ticket is consumed). Host effects go through [`SharedStore`] and
//! [`Metrics`] so every path, including compare-and-swap conflicts, is tested in memory.
//!
//! Settlement rule, whatever the ending: reported or estimated usage settles at its cost; an
//! upstream that answered with a non-2xx status and no usage settles at zero (providers do not
//! bill failed requests); anything else without usage (client gone or upstream reset before
//! the usage event) is charged its reservation, so disconnecting early cannot evade a budget.

use serde_json::Value;

use crate::attribution::Attribution;
use crate::budget::{
    self, admit, decision::Rejection, estimate, reserve, settle, settle_reserved, Actual,
    AdmitRequest, BudgetConfig, BudgetDef, BudgetError, CapDialect, ChatField, Decision,
    Dimensions, ErrorDialect, EstimateInput, Outcome, Plan, Reservation,
};
use crate::config::Config;
use crate::host::SharedStore;
use crate::telemetry::{self, MetricUpdate};
use crate::meter::Record;
use crate::pricing::PicoUsd;
use crate::providers::{Api, Operation, Provider, RequestFacts, Route};
use crate::usage::UsageSource;

impl Dimensions for Attribution {
    fn value(&self, dimension: &str) -> Option<&str> {
        match dimension {
            "customer" => Some(&self.customer),
            "feature" => Some(&self.feature),
            "user" => Some(&self.user),
            _ => None,
        }
    }
}

/// How an output cap is written into this route's body; `None` for APIs without output.
pub fn cap_dialect(route: Route) -> Option<CapDialect> {
    match route.api {
        // OpenAI deprecated `max_tokens` for chat; its reasoning models reject it.
        Api::OpenAiChatCompletions => Some(CapDialect::OpenAiChat(ChatField::MaxCompletionTokens)),
        Api::OpenAiCompletions => Some(CapDialect::OpenAiCompletions),
        Api::OpenAiResponses => Some(CapDialect::OpenAiResponses),
        Api::AnthropicMessages => Some(CapDialect::AnthropicMessages),
        Api::GeminiGenerateContent => Some(CapDialect::Gemini),
        Api::BedrockConverse => Some(CapDialect::BedrockConverse),
        // InvokeModel bodies are each model family's own format; Cohere and Ollama caps are
        // not written (the estimate still reads their fields).
        _ => None,
    }
}

/// The error shape a rejection of this route uses, so that the caller's SDK raises its own
/// rate-limit error.
pub fn error_dialect(route: Route) -> ErrorDialect {
    match route.api {
        Api::AnthropicMessages => ErrorDialect::Anthropic,
        Api::GeminiGenerateContent => ErrorDialect::Gemini,
        Api::BedrockConverse | Api::BedrockInvoke => ErrorDialect::Bedrock,
        _ => ErrorDialect::OpenAi,
    }
}

/// Whether this route may get `stream_options.include_usage` added, judged from the head.
pub fn injection_possible(config: &Config, route: Route) -> bool {
    config.inject_stream_usage
        && route.api == Api::OpenAiChatCompletions
        && route.provider == Provider::OpenAi
}

/// Whether the request body must be held back before anything goes upstream: some budget or
/// cap applies to this caller, or usage may have to be injected. Everything else streams.
pub fn needs_body(config: &Config, budgets: &[BudgetDef], route: Route, who: &Attribution) -> bool {
    injection_possible(config, route) || !Plan::new(budgets, who).budgets.is_empty()
}

/// What the request path knows when it decides.
pub struct Input<'a> {
    pub config: &'a Config,
    /// The budgets in effect (the worker's limits cache).
    pub budgets: &'a [BudgetDef],
    pub route: Route,
    pub who: &'a Attribution,
    /// Facts of the complete body; `None` when the body was too large to hold.
    pub facts: Option<&'a RequestFacts>,
    /// The complete body as it arrived, when it was held and is plain (not compressed).
    pub body: Option<&'a [u8]>,
    /// Body bytes seen (decoded size if known), for the estimate when `body` is `None`.
    pub body_bytes: u64,
    /// Model the Azure deployment map names, when the body names none.
    pub deployment_model: Option<&'a str>,
}

/// The answer for one request.
#[derive(Debug)]
pub enum Verdict {
    /// Forward the request (possibly rewritten).
    Forward(Forward),
    /// Answer with this 429 instead; nothing is held.
    Reject {
        rejection: Rejection,
        decision: Decision,
    },
}

/// A request that goes upstream.
#[derive(Debug, Default)]
pub struct Forward {
    /// Replace the body with this (caps written, usage requested).
    pub new_body: Option<Vec<u8>>,
    /// `stream_options.include_usage` was added: the client did not ask for usage.
    pub usage_injected: bool,
    /// The budget decision, when a budget with a limit applied.
    pub decision: Option<Decision>,
    /// What to settle when the exchange ends; `None` when nothing was reserved.
    pub ticket: Option<Ticket>,
    /// Remaining-budget headers for the response (`remaining_headers: true`).
    pub response_headers: Vec<(String, String)>,
}

/// The result of [`decide`]: the verdict, stat changes, and store errors met on the way.
#[derive(Debug)]
pub struct Decided {
    pub verdict: Verdict,
    pub metrics: Vec<MetricUpdate>,
    pub errors: Vec<BudgetError>,
}

/// The budget decision counter of one admission.
fn admissions_metric(budget_id: &str, outcome: Outcome) -> Vec<MetricUpdate> {
    telemetry::budget_admission_plan(budget_id, outcome.as_str())
}

/// The utilisation gauge of one budget, from parts per million.
fn utilization_metric(budget_id: &str, ppm: u64) -> Vec<MetricUpdate> {
    telemetry::budget_utilization_plan(budget_id, ppm / 1000)
}

/// Adds `"stream_options":{"include_usage":true}` to an OpenAI chat request body that streams
/// without asking for usage. `None` when the body is not a JSON object, already asks, or has a
/// `stream_options` that is not an object (left for the upstream to judge).
pub fn inject_include_usage(body: &[u8], max_bytes: u64) -> Option<Vec<u8>> {
    if u64::try_from(body.len()).unwrap_or(u64::MAX) > max_bytes {
        return None;
    }
    let mut value: Value = serde_json::from_slice(body).ok()?;
    let root = value.as_object_mut()?;
    // `matches!`, not `==`: comparing `Value`s pulls the deep equality of every JSON type
    // into the module.
    if !matches!(root.get("stream"), Some(Value::Bool(true))) {
        return None;
    }
    match root.get_mut("stream_options") {
        None | Some(Value::Null) => {
            root.insert(
                "stream_options".into(),
                serde_json::json!({ "include_usage": true }),
            );
        }
        Some(Value::Object(options)) => {
            if matches!(options.get("include_usage"), Some(Value::Bool(true))) {
                return None;
            }
            options.insert("include_usage".into(), Value::Bool(true));
        }
        Some(_) => return None,
    }
    serde_json::to_vec(&value).ok()
}

/// Decides one request once its body is complete (or too large to hold).
pub fn decide<S: SharedStore + ?Sized>(store: &S, input: &Input<'_>, now_unix_millis: u64) -> Decided {
    let config = &input.config.budget;
    let facts = input.facts;
    let mut forward = Forward::default();

    // 1. Usage injection, first, so that the cap and the estimate see the final body.
    let mut body: Option<Vec<u8>> = None;
    if let (Some(raw), Some(f)) = (input.body, facts) {
        let wants = injection_possible(input.config, input.route)
            && f.stream
            && f.include_usage != Some(true)
            && !f.unreadable;
        if wants {
            if let Some(new) = inject_include_usage(raw, config.max_rewrite_bytes) {
                body = Some(new);
                forward.usage_injected = true;
            }
        }
    }

    // 2. Cap and reserve.
    let plan = Plan::new(input.budgets, input.who);
    if plan.budgets.is_empty() {
        forward.new_body = body;
        return Decided {
            verdict: Verdict::Forward(forward),
            metrics: Vec::new(),
            errors: Vec::new(),
        };
    }
    let model = facts
        .and_then(|f| f.model.as_deref())
        .or(input.deployment_model);
    let table = input.config.price_table();
    let price = model.and_then(|m| table.resolve(m).map(|(_, p)| p));
    // Every request fact comes from the request scanner; an API without output (embeddings)
    // reserves its prompt alone.
    let requested = if input.route.operation == Operation::Embeddings {
        Some(0)
    } else {
        facts.and_then(|f| f.max_output_tokens)
    };
    let choices = facts.and_then(|f| f.choices).unwrap_or(1);
    let current = body.as_deref().or(input.body);
    let (admission, cap_body) = match current {
        Some(b) => {
            let out = admit(
                store,
                config,
                input.budgets,
                &AdmitRequest {
                    dims: input.who,
                    body: b,
                    cap_dialect: cap_dialect(input.route),
                    requested_max_output: requested,
                    choices,
                    price,
                },
                now_unix_millis,
            );
            (out.admission, out.new_body)
        }
        None => {
            // Not held (too large, compressed): no rewrite; the cap cannot bound the estimate
            // because the upstream will not see it.
            let est = estimate(
                &EstimateInput {
                    body_bytes: input.body_bytes,
                    requested_max_output: requested,
                    choices,
                    output_cap: None,
                    price,
                },
                config.bytes_per_token,
                config.default_max_output_tokens,
            );
            (reserve(store, config, &plan, &est, now_unix_millis), None)
        }
    };
    if let Some(b) = cap_body {
        body = Some(b);
    }
    forward.new_body = body;

    let mut metrics = Vec::new();
    let decision = admission.decision.clone();
    let has_decision = decision.budget_id.is_some();
    match decision.outcome {
        Outcome::Rejected => {
            if let Some(id) = &decision.budget_id {
                metrics.extend(admissions_metric(id, Outcome::Rejected));
            }
        }
        _ => {
            for s in &admission.snapshots {
                metrics.extend(admissions_metric(&s.budget_id, s.outcome));
            }
        }
    }
    for s in &admission.snapshots {
        metrics.extend(utilization_metric(&s.budget_id, s.utilisation_ppm));
    }
    if decision.outcome == Outcome::Rejected {
        let rejection = budget::rejection(&decision, error_dialect(input.route));
        return Decided {
            verdict: Verdict::Reject {
                rejection,
                decision,
            },
            metrics,
            errors: admission.errors,
        };
    }
    if config.remaining_headers {
        forward.response_headers = decision
            .headers()
            .into_iter()
            .map(|(k, v)| (k.to_string(), v))
            .collect();
    }
    if has_decision {
        forward.decision = Some(decision);
    }
    if !admission.reservation.is_empty() {
        forward.ticket = Some(Ticket {
            reservation: admission.reservation,
            touched: admission
                .snapshots
                .iter()
                .map(|s| (s.budget_id.clone(), s.values.clone()))
                .collect(),
        });
    }
    Decided {
        verdict: Verdict::Forward(forward),
        metrics,
        errors: admission.errors,
    }
}

/// What an admitted request holds until it settles. Consumed by [`Ticket::settle`], so a
/// request cannot settle twice.
#[derive(Debug)]
#[must_use = "a ticket must be settled, or its reservation stays held until the window ends"]
pub struct Ticket {
    reservation: Reservation,
    /// (budget id, match values) of every budget reserved, for the utilisation gauge.
    touched: Vec<(String, Vec<(String, String)>)>,
}

/// How a request was settled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Settlement {
    /// At the reported (or estimated) usage.
    Actual,
    /// At zero: the upstream answered an error without usage.
    Zero,
    /// At the reservation: usage unknown and the request may have been billed.
    Reserved,
}

/// The result of [`Ticket::settle`].
#[derive(Debug)]
pub struct Settled {
    pub how: Settlement,
    pub report: budget::SettleReport,
    pub metrics: Vec<MetricUpdate>,
}

/// Input plus output tokens of a record (what token limits count).
fn record_tokens(record: &Record) -> u64 {
    record
        .usage
        .input_tokens
        .saturating_add(record.usage.output_tokens)
}

impl Ticket {
    /// Budget ids this ticket holds.
    pub fn budget_ids(&self) -> impl Iterator<Item = &str> {
        self.reservation.budget_ids()
    }

    /// Settles against the finished record (see the module doc for the rule), then reads the
    /// touched budgets back for the utilisation gauge.
    pub fn settle<S: SharedStore + ?Sized>(
        self,
        store: &S,
        config: &BudgetConfig,
        budgets: &[BudgetDef],
        record: &Record,
        now_unix_millis: u64,
    ) -> Settled {
        let how = match record.usage_source {
            UsageSource::Reported | UsageSource::Estimated => Settlement::Actual,
            UsageSource::Missing => match record.status {
                Some(s) if !(200..300).contains(&s) => Settlement::Zero,
                _ => Settlement::Reserved,
            },
        };
        let store = ReadBack::new(store);
        let report = match how {
            Settlement::Actual => settle(
                &store,
                config,
                self.reservation,
                Actual {
                    usd: record.cost,
                    tokens: record_tokens(record),
                },
            ),
            Settlement::Zero => settle(
                &store,
                config,
                self.reservation,
                Actual {
                    usd: Some(PicoUsd(0)),
                    tokens: 0,
                },
            ),
            Settlement::Reserved => settle_reserved(&store, config, self.reservation),
        };
        // The gauge below reads what the settlement just wrote: from memory, not the host.
        store.serve_written();
        let mut metrics = Vec::new();
        for (id, values) in &self.touched {
            let Some(def) = budgets.iter().find(|d| &d.id == id) else {
                continue;
            };
            if let Ok(Some(c)) = budget::ledger::read_counters(&store, def, values, now_unix_millis) {
                let ppm = |used: u64, limit: u64| -> u64 {
                    if limit == 0 {
                        return if used == 0 { 0 } else { u64::MAX };
                    }
                    u64::try_from(u128::from(used) * 1_000_000 / u128::from(limit)).unwrap_or(u64::MAX)
                };
                let u = def
                    .limit_usd
                    .map_or(0, |l| ppm(c.used_pico(), l.0))
                    .max(def.limit_tokens.map_or(0, |l| ppm(c.used_tokens(), l)));
                metrics.extend(utilization_metric(id, u));
            }
        }
        Settled {
            how,
            report,
            metrics,
        }
    }
}

/// The store as a settlement sees it. Writes go through and are remembered; once
/// [`ReadBack::serve_written`] is called, reads of a key the settlement wrote are answered from
/// that copy. The utilisation gauge after a settlement reads exactly the keys it just wrote,
/// and a shared-data read is a host round trip (about 2 µs in Envoy, the value being copied
/// into the module); a write by another worker in the microseconds between is what a gauge
/// snapshot may miss anyway. Until then every read goes to the store, so the settlement's own
/// compare-and-swap reads always see the current version.
struct ReadBack<'a, S: ?Sized> {
    store: &'a S,
    written: std::cell::RefCell<Vec<(String, Vec<u8>)>>,
    serving: std::cell::Cell<bool>,
}

impl<'a, S: SharedStore + ?Sized> ReadBack<'a, S> {
    fn new(store: &'a S) -> Self {
        Self { store, written: std::cell::RefCell::default(), serving: std::cell::Cell::new(false) }
    }

    fn serve_written(&self) {
        self.serving.set(true);
    }
}

impl<S: SharedStore + ?Sized> SharedStore for ReadBack<'_, S> {
    fn get(&self, key: &str) -> Result<Option<(Vec<u8>, crate::host::Cas)>, crate::host::HostError> {
        if self.serving.get() {
            if let Ok(written) = self.written.try_borrow() {
                if let Some((_, value)) = written.iter().rev().find(|(k, _)| k == key) {
                    // No CAS token: this copy is for reading only.
                    return Ok(Some((value.clone(), 0)));
                }
            }
        }
        self.store.get(key)
    }

    fn set(&self, key: &str, value: &[u8], cas: Option<crate::host::Cas>) -> Result<(), crate::host::HostError> {
        self.store.set(key, value, cas)?;
        if let Ok(mut written) = self.written.try_borrow_mut() {
            written.push((key.to_string(), value.to_vec()));
        }
        Ok(())
    }
}

/// Shared-data key holding the Unix milliseconds of the last limits pull (8 bytes, LE).
pub const PULL_LEASE_KEY: &str = "tokenmeter.budget.limits.pull.v1";

/// Whether this worker should pull the limits document now. Every worker's root context
/// ticks; the lease (a compare-and-swap on the last pull time) makes one of them pull per
/// interval, so the billing system sees one request per interval per proxy, not one per
/// worker. A store failure answers `true`: a duplicate pull is harmless, a missed one is not.
pub fn claim_pull<S: SharedStore + ?Sized>(store: &S, now_unix_millis: u64, interval_millis: u64) -> bool {
    let (last, cas) = match store.get(PULL_LEASE_KEY) {
        Ok(Some((bytes, cas))) => {
            let last = <[u8; 8]>::try_from(bytes.as_slice()).map_or(0, u64::from_le_bytes);
            (last, Some(cas))
        }
        Ok(None) | Err(crate::host::HostError::NotAvailable) => (0, None),
        Err(_) => return true,
    };
    if last != 0 && now_unix_millis.saturating_sub(last) < interval_millis && now_unix_millis >= last {
        return false;
    }
    match store.set(PULL_LEASE_KEY, &now_unix_millis.to_le_bytes(), cas) {
        Ok(()) => true,
        Err(crate::host::HostError::CasMismatch) => false,
        Err(_) => true,
    }
}

#[cfg(test)]
mod tests;
