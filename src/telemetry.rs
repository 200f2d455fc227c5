//! The names tokenmeter publishes, and how a [`Record`] becomes filter state and metrics.
//!
//! Every user-facing name (filter-state keys, metric names, label names) is a constant here,
//! never built inline elsewhere, because dashboards, access-log formats and the shipped
//! `stats_tags` regexes depend on them byte for byte. Labels are embedded Istio-style in the
//! stat name, tags first and the metric name last
//! (`gen_ai_provider_name=.=openai;.;...;.;tokenmeter_requests_total`), and
//! [`STATS_TAGS`] holds the regexes Envoy needs to turn them back into labels.
//!
//! Metrics are planned, not performed: [`metric_plan`] turns a record into a list of counter
//! increments (never a 0 delta, which Envoy rejects) and histogram samples (the OpenTelemetry
//! GenAI token-usage and latency histograms, in whole milliseconds because Envoy histograms
//! hold integers), and the shell applies it. Histograms carry only operation, provider and
//! model: each histogram series is about twenty bucket series. The two pieces
//! of cross-request state, the label [`CardinalityGuard`] and the sub-nano [`CostCarry`], are
//! owned by the caller and passed in.


use crate::attribution::{log_safe, sanitize_label, CardinalityGuard, Dimension};
use crate::host::{MetricKind, Metrics, SharedStore};
use crate::meter::Record;

// Filter-state keys (access logs read them as `%FILTER_STATE(wasm.<key>:PLAIN)%`).
pub const KEY_PROVIDER: &str = "gen_ai.provider.name";
pub const KEY_OPERATION: &str = "gen_ai.operation.name";
pub const KEY_REQUEST_MODEL: &str = "gen_ai.request.model";
pub const KEY_RESPONSE_MODEL: &str = "gen_ai.response.model";
pub const KEY_RESPONSE_ID: &str = "gen_ai.response.id";
pub const KEY_INPUT_TOKENS: &str = "gen_ai.usage.input_tokens";
pub const KEY_OUTPUT_TOKENS: &str = "gen_ai.usage.output_tokens";
pub const KEY_CACHE_READ_TOKENS: &str = "gen_ai.usage.cache_read.input_tokens";
pub const KEY_CACHE_CREATION_TOKENS: &str = "gen_ai.usage.cache_creation.input_tokens";
pub const KEY_REASONING_TOKENS: &str = "gen_ai.usage.reasoning.output_tokens";
pub const KEY_COST_USD: &str = "llm.cost_usd";
pub const KEY_USAGE_SOURCE: &str = "llm.usage_source";
/// `provider` (the provider reported the cost), `price_table`, or empty when unpriced.
pub const KEY_COST_SOURCE: &str = "llm.cost_source";
pub const KEY_FEATURE: &str = "llm.feature";
pub const KEY_CUSTOMER: &str = "llm.customer";
pub const KEY_USER: &str = "llm.user";
pub const KEY_RECORD: &str = "llm.record";
/// Reserved for budgets.
pub const KEY_BUDGET_ID: &str = "llm.budget.id";
/// Reserved for budgets: `allowed`, `rejected` or `soft_exceeded`.
pub const KEY_BUDGET_DECISION: &str = "llm.budget.decision";
/// Reserved for budgets.
pub const KEY_BUDGET_REMAINING_USD: &str = "llm.budget.remaining_usd";

/// Every filter-state key [`filter_state`] sets, in order (`llm.record` last).
pub const FILTER_STATE_KEYS: [&str; 17] = [
    KEY_PROVIDER,
    KEY_OPERATION,
    KEY_REQUEST_MODEL,
    KEY_RESPONSE_MODEL,
    KEY_RESPONSE_ID,
    KEY_INPUT_TOKENS,
    KEY_OUTPUT_TOKENS,
    KEY_CACHE_READ_TOKENS,
    KEY_CACHE_CREATION_TOKENS,
    KEY_REASONING_TOKENS,
    KEY_COST_USD,
    KEY_COST_SOURCE,
    KEY_USAGE_SOURCE,
    KEY_FEATURE,
    KEY_CUSTOMER,
    KEY_USER,
    KEY_RECORD,
];

// Extra keys found only inside `llm.record`.
pub const RECORD_PRICE_TABLE_VERSION: &str = "llm.price_table_version";
pub const RECORD_COST_PICO_USD: &str = "llm.cost_pico_usd";
pub const RECORD_PRICED_MODEL: &str = "llm.priced_model";
pub const RECORD_USAGE_MISSING_REASON: &str = "llm.usage_missing_reason";
pub const RECORD_REQUEST_STREAM: &str = "gen_ai.request.stream";
pub const RECORD_REQUEST_MAX_TOKENS: &str = "gen_ai.request.max_tokens";
pub const RECORD_FINISH_REASONS: &str = "gen_ai.response.finish_reasons";
pub const RECORD_OPENAI_SERVICE_TIER: &str = "gen_ai.openai.response.service_tier";
pub const RECORD_SERVICE_TIER: &str = "llm.service_tier";
pub const RECORD_HTTP_STATUS: &str = "http.status";
pub const RECORD_DURATION_MS: &str = "llm.duration_ms";
pub const RECORD_AZURE_DEPLOYMENT: &str = "llm.azure.deployment";
pub const RECORD_CACHE_CREATION_5M_TOKENS: &str = "llm.usage.cache_creation_5m_tokens";
pub const RECORD_CACHE_CREATION_1H_TOKENS: &str = "llm.usage.cache_creation_1h_tokens";
/// `client` or `proxy` for retried requests, null otherwise.
pub const RECORD_RETRY_SOURCE: &str = "llm.retry_source";
pub const RECORD_STREAMED: &str = "llm.streamed";
pub const RECORD_TIME_TO_FIRST_TOKEN_MS: &str = "llm.time_to_first_token_ms";
pub const RECORD_TIME_TO_RESPONSE_HEADERS_MS: &str = "llm.time_to_response_headers_ms";

// Metric names.
pub const METRIC_REQUESTS: &str = "tokenmeter_requests_total";
pub const METRIC_TOKENS: &str = "tokenmeter_tokens_total";
pub const METRIC_COST_NANOUSD: &str = "tokenmeter_cost_nanousd_total";
pub const METRIC_UNRECOGNIZED: &str = "tokenmeter_unrecognized_requests_total";
pub const METRIC_USAGE_MISSING: &str = "tokenmeter_usage_missing_total";
pub const METRIC_UNPRICED: &str = "tokenmeter_unpriced_requests_total";
/// Requests whose usage was estimated (not reported by the provider).
pub const METRIC_USAGE_ESTIMATED: &str = "tokenmeter_usage_estimated_total";
pub const METRIC_LABEL_OVERFLOW: &str = "tokenmeter_label_overflow_total";
pub const METRIC_RESPONSES: &str = "tokenmeter_responses_total";
pub const METRIC_RETRIES: &str = "tokenmeter_retries_total";
pub const METRIC_RETRY_COST_NANOUSD: &str = "tokenmeter_retry_cost_nanousd_total";
pub const METRIC_BUDGET_ADMISSIONS: &str = "tokenmeter_budget_admissions_total";
pub const METRIC_BUDGET_UTILIZATION: &str = "tokenmeter_budget_utilization_ratio_permille";
/// Pulls of the limits document that were stored.
pub const METRIC_LIMITS_PULLS: &str = "tokenmeter_limits_pulls_total";
/// Pulls of the limits document that failed (transport, status, or a rejected document).
pub const METRIC_LIMITS_PULL_FAILURES: &str = "tokenmeter_limits_pull_failures_total";
/// Fetches of the LiteLLM price list (`prices.litellm_source`) that replaced the price table.
pub const METRIC_PRICE_LIST_FETCHES: &str = "tokenmeter_price_list_fetches_total";
/// Fetches of the LiteLLM price list that failed (transport, status, or a body that did not
/// import); the last good table stays in force.
pub const METRIC_PRICE_LIST_FETCH_FAILURES: &str = "tokenmeter_price_list_fetch_failures_total";
/// Request bodies larger than `max_request_body_bytes`: forwarded unchanged (no cap, no
/// usage injection), reserved from their size.
pub const METRIC_REQUEST_BODY_TOO_LARGE: &str = "tokenmeter_request_body_too_large_total";
// OpenTelemetry GenAI histograms. Envoy histograms hold integers, so durations are whole
// milliseconds and say so in the name (OTel's own are float seconds).
pub const METRIC_TOKEN_USAGE: &str = "gen_ai_client_token_usage";
pub const METRIC_OPERATION_DURATION_MS: &str = "gen_ai_client_operation_duration_ms";
pub const METRIC_TIME_TO_FIRST_TOKEN_MS: &str = "gen_ai_server_time_to_first_token_ms";
pub const METRIC_TIME_PER_OUTPUT_TOKEN_MS: &str = "gen_ai_server_time_per_output_token_ms";

// Label names.
pub const LABEL_PROVIDER: &str = "gen_ai_provider_name";
pub const LABEL_MODEL: &str = "gen_ai_request_model";
pub const LABEL_FEATURE: &str = "feature";
pub const LABEL_CUSTOMER: &str = "customer";
pub const LABEL_TOKEN_TYPE: &str = "gen_ai_token_type";
pub const LABEL_DIMENSION: &str = "dimension";
pub const LABEL_OPERATION: &str = "gen_ai_operation_name";
pub const LABEL_STATUS_CLASS: &str = "http_status_class";
pub const LABEL_RETRY_SOURCE: &str = "retry_source";
pub const LABEL_BUDGET: &str = "budget";
pub const LABEL_DECISION: &str = "decision";
/// Only with `metrics.user_label`.
pub const LABEL_USER: &str = "user";

/// `http_status_class` when the exchange ended without a response status.
pub const STATUS_CLASS_NONE: &str = "none";

// `gen_ai_token_type` values.
pub const TOKEN_INPUT: &str = "input";
pub const TOKEN_OUTPUT: &str = "output";
pub const TOKEN_CACHE_READ: &str = "cache_read";
pub const TOKEN_CACHE_CREATION: &str = "cache_creation";
pub const TOKEN_REASONING: &str = "reasoning";

/// The `stats_config.stats_tags` entries (tag name, regex) that turn embedded tags back into
/// labels. The shipped Envoy and Istio configs must contain exactly these; a test checks them.
/// Same order as `envoy/prometheus/envoy-stats-config.yaml` (a test compares them).
pub const STATS_TAGS: [(&str, &str); 12] = [
    (LABEL_PROVIDER, r"(gen_ai_provider_name=\.=(.*?);\.;)"),
    (LABEL_MODEL, r"(gen_ai_request_model=\.=(.*?);\.;)"),
    (LABEL_FEATURE, r"(feature=\.=(.*?);\.;)"),
    (LABEL_CUSTOMER, r"(customer=\.=(.*?);\.;)"),
    (LABEL_TOKEN_TYPE, r"(gen_ai_token_type=\.=(.*?);\.;)"),
    (LABEL_DIMENSION, r"(dimension=\.=(.*?);\.;)"),
    (LABEL_OPERATION, r"(gen_ai_operation_name=\.=(.*?);\.;)"),
    (LABEL_STATUS_CLASS, r"(http_status_class=\.=(.*?);\.;)"),
    (LABEL_RETRY_SOURCE, r"(retry_source=\.=(.*?);\.;)"),
    (LABEL_BUDGET, r"(budget=\.=(.*?);\.;)"),
    (LABEL_DECISION, r"(decision=\.=(.*?);\.;)"),
    (LABEL_USER, r"(user=\.=(.*?);\.;)"),
];

/// The `stats_config.stats_tags` list as Envoy bootstrap YAML (`tag_name`/`regex` items, regex
/// double-quoted so backslashes are doubled), each line prefixed by `indent`.
pub fn stats_tags_yaml(indent: &str) -> String {
    let mut out = String::new();
    for (name, regex) in STATS_TAGS {
        out.push_str(&format!("{indent}- tag_name: {name}\n{indent}  regex: \"{}\"\n", regex.replace('\\', "\\\\")));
    }
    out
}

/// The regex for one embedded tag, as in [`STATS_TAGS`].
pub fn stats_tag_regex(label: &str) -> String {
    format!(r"({label}=\.=(.*?);\.;)")
}

/// Embeds tags into a stat name: `tag=.=value;.;` for each tag, then the metric name.
/// Values must already be sanitised ([`sanitize_label`]).
pub fn stat_name(tags: &[(&str, &str)], metric: &str) -> String {
    let mut name = String::with_capacity(metric.len() + tags.len() * 40);
    for (tag, value) in tags {
        name.push_str(tag);
        name.push_str("=.=");
        name.push_str(value);
        name.push_str(";.;");
    }
    name.push_str(metric);
    name
}

/// One planned stat change.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MetricUpdate {
    pub kind: MetricKind,
    /// Full stat name with embedded tags.
    pub name: String,
    /// Counter: the increment, never 0 (Envoy rejects it). Histogram: the sample, which may
    /// be 0 (a sub-millisecond duration). Gauge: the value to set.
    pub delta: u64,
}

fn counter(name: String, delta: u64) -> Option<MetricUpdate> {
    (delta > 0).then_some(MetricUpdate { kind: MetricKind::Counter, name, delta })
}

fn histogram(name: String, sample: u64) -> MetricUpdate {
    MetricUpdate { kind: MetricKind::Histogram, name, delta: sample }
}

/// The `http_status_class` of a response status: `1xx` .. `5xx`, or `none` when the
/// exchange ended without one (reset, client gone) or the status is not a valid HTTP one.
pub fn status_class(status: Option<u16>) -> &'static str {
    match status {
        Some(100..=199) => "1xx",
        Some(200..=299) => "2xx",
        Some(300..=399) => "3xx",
        Some(400..=499) => "4xx",
        Some(500..=599) => "5xx",
        _ => STATUS_CLASS_NONE,
    }
}

/// Stream time per output token after the first: `(end - first token) / (output - 1)`,
/// rounded down; `None` unless the record is a stream with a first-token time, a duration
/// and at least two output tokens.
pub fn time_per_output_token_ms(record: &Record) -> Option<u64> {
    if !record.streamed {
        return None;
    }
    let first = record.time_to_first_token_ms?;
    let end = record.duration_ms?;
    let after_first = record.usage.output_tokens.checked_sub(1).filter(|n| *n > 0)?;
    Some(end.saturating_sub(first) / after_first)
}

/// Most distinct cost series whose sub-nano remainder is carried; past it, a new series'
/// remainder (under one nano-USD per request) is dropped rather than growing memory.
pub const MAX_CARRY_SERIES: usize = 10_000;

/// Sub-nano-USD remainders per cost series, so that the nano-USD counter never loses money to
/// per-request rounding: the counter total is always the floor of the exact pico-USD total.
/// One per VM, owned by the caller.
#[derive(Debug, Clone, Default)]
pub struct CostCarry {
    /// Looked up by name only, never iterated, so the hash order never shows. A remainder is
    /// under 1000, so `u32` holds it, and the map is the same type as the shell's metric-id
    /// cache (one copy of the hash map code in the module).
    remainders: crate::host::NameMap<u32>,
}

impl CostCarry {
    /// Adds a cost in pico-USD to a series and returns the whole nano-USD now due.
    pub fn add(&mut self, series: &str, pico: u64) -> u64 {
        let total = self.remainder(series).saturating_add(pico);
        // Under 1000, so the conversion cannot fail.
        let remainder = u32::try_from(total % 1000).unwrap_or(0);
        if let Some(slot) = self.remainders.get_mut(series) {
            *slot = remainder;
        } else if remainder > 0 && self.remainders.len() < MAX_CARRY_SERIES {
            self.remainders.insert(series.to_string(), remainder);
        }
        total / 1000
    }

    /// The pico-USD carried for a series (always under 1000).
    pub fn remainder(&self, series: &str) -> u64 {
        self.remainders.get(series).map_or(0, |&r| u64::from(r))
    }
}

/// The per-VM state that spans requests: label cardinality and sub-nano cost remainders.
/// Owned by the root context; rebuild it when the configuration changes (what it drops is
/// under one nano-USD per series).
#[derive(Debug, Clone)]
pub struct TelemetryState {
    pub guard: CardinalityGuard,
    pub carry: CostCarry,
    /// `metrics.user_label`: attributed metrics also carry the `user` label.
    pub user_label: bool,
}

impl Default for TelemetryState {
    fn default() -> Self {
        Self {
            guard: CardinalityGuard::new(crate::config::DEFAULT_MAX_LABEL_VALUES),
            carry: CostCarry::default(),
            user_label: false,
        }
    }
}

impl TelemetryState {
    pub fn new(config: &crate::config::Config) -> Self {
        Self {
            guard: CardinalityGuard::from_config(config),
            carry: CostCarry::default(),
            user_label: config.metrics.user_label,
        }
    }

    /// [`metric_plan`] with this state (label cap per VM).
    pub fn plan(&mut self, record: &Record) -> Vec<MetricUpdate> {
        plan_with(record, &mut self.guard, &mut self.carry, None, self.user_label)
    }

    /// [`metric_plan_shared`] with this state (label cap per process).
    pub fn plan_shared(&mut self, record: &Record, store: &dyn SharedStore) -> Vec<MetricUpdate> {
        plan_with(record, &mut self.guard, &mut self.carry, Some(store), self.user_label)
    }
}

/// The metric label value of the model: the canonical priced name, else the model as sent,
/// else as returned, else the Azure deployment's configured model.
pub fn model_label(record: &Record) -> String {
    let raw = record
        .priced_model
        .as_deref()
        .or(record.request.model.as_deref())
        .or(record.response.model.as_deref())
        .or(record.deployment_model.as_deref())
        .unwrap_or("");
    sanitize_label(raw)
}

/// Stat changes for one finished exchange, with the label cap kept per VM and no user
/// label. See [`TelemetryState`] for the configured form.
pub fn metric_plan(record: &Record, guard: &mut CardinalityGuard, carry: &mut CostCarry) -> Vec<MetricUpdate> {
    plan_with(record, guard, carry, None, false)
}

/// Stat changes for one finished exchange, with the label cap shared by every VM of the
/// process through proxy-wasm shared data (see [`CardinalityGuard::admit_shared`]).
pub fn metric_plan_shared(
    record: &Record,
    guard: &mut CardinalityGuard,
    carry: &mut CostCarry,
    store: &dyn SharedStore,
) -> Vec<MetricUpdate> {
    plan_with(record, guard, carry, Some(store), false)
}

/// Admits a label value through the guard, planning the overflow count if it overflowed.
fn admit(
    guard: &mut CardinalityGuard,
    store: Option<&dyn SharedStore>,
    dimension: Dimension,
    raw: &str,
    plan: &mut Vec<MetricUpdate>,
) -> String {
    let admitted = match store {
        Some(store) => guard.admit_shared(dimension, raw, store),
        None => guard.admit(dimension, raw),
    };
    if admitted.overflowed {
        plan.extend(counter(stat_name(&[(LABEL_DIMENSION, dimension.label())], METRIC_LABEL_OVERFLOW), 1));
    }
    admitted.value
}

/// The order of the plan is stable (tests and the shell rely on nothing else): overflow
/// counts, requests, tokens, cost, responses, retries, data quality, then histograms.
fn plan_with(
    record: &Record,
    guard: &mut CardinalityGuard,
    carry: &mut CostCarry,
    store: Option<&dyn SharedStore>,
    user_label: bool,
) -> Vec<MetricUpdate> {
    let mut plan = Vec::with_capacity(16);
    let provider = record.route.provider.name();
    let operation = record.route.operation.name();
    let model = admit(guard, store, Dimension::Model, &model_label(record), &mut plan);
    let feature = admit(guard, store, Dimension::Feature, &sanitize_label(&record.attribution.feature), &mut plan);
    let customer = admit(guard, store, Dimension::Customer, &sanitize_label(&record.attribution.customer), &mut plan);
    let user = user_label.then(|| admit(guard, store, Dimension::User, &sanitize_label(&record.attribution.user), &mut plan));
    // The attributed tag set: provider, model, feature, customer, then the user if configured.
    let mut tags: Vec<(&str, &str)> = vec![
        (LABEL_PROVIDER, provider),
        (LABEL_MODEL, model.as_str()),
        (LABEL_FEATURE, feature.as_str()),
        (LABEL_CUSTOMER, customer.as_str()),
    ];
    if let Some(user) = &user {
        tags.push((LABEL_USER, user.as_str()));
    }
    fn extended<'a>(tags: &[(&'a str, &'a str)], extra: (&'a str, &'a str)) -> Vec<(&'a str, &'a str)> {
        let mut t = tags.to_vec();
        t.push(extra);
        t
    }
    let with = |extra| extended(&tags, extra);
    plan.extend(counter(stat_name(&tags, METRIC_REQUESTS), 1));
    let u = &record.usage;
    for (kind, n) in [
        (TOKEN_INPUT, u.input_tokens),
        (TOKEN_OUTPUT, u.output_tokens),
        (TOKEN_CACHE_READ, u.cache_read_tokens),
        (TOKEN_CACHE_CREATION, u.cache_creation_tokens),
        (TOKEN_REASONING, u.reasoning_tokens),
    ] {
        plan.extend(counter(stat_name(&with((LABEL_TOKEN_TYPE, kind)), METRIC_TOKENS), n));
    }
    if let Some(cost) = record.cost {
        let series = stat_name(&tags, METRIC_COST_NANOUSD);
        let nanos = carry.add(&series, cost.0);
        plan.extend(counter(series, nanos));
    }
    plan.extend(counter(stat_name(&with((LABEL_STATUS_CLASS, status_class(record.status))), METRIC_RESPONSES), 1));
    if let Some(source) = record.retry {
        let tagged = with((LABEL_RETRY_SOURCE, source.name()));
        plan.extend(counter(stat_name(&tagged, METRIC_RETRIES), 1));
        if let Some(cost) = record.cost {
            // Its own carry series: the retry counter is a subset of the cost counter and
            // must not lose sub-nano remainders either.
            let series = stat_name(&tagged, METRIC_RETRY_COST_NANOUSD);
            let nanos = carry.add(&series, cost.0);
            plan.extend(counter(series, nanos));
        }
    }
    let short = [(LABEL_PROVIDER, provider), (LABEL_MODEL, model.as_str())];
    // Unpriced means "no price for the model", not "no cost known": a priced model whose
    // usage is missing has no cost either, and is counted as missing usage below instead.
    // A provider-reported cost needs no price: such a request is not unpriced.
    if record.priced_model.is_none() && record.cost_source != Some(crate::usage::CostSource::Provider) {
        plan.extend(counter(stat_name(&short, METRIC_UNPRICED), 1));
    }
    // Error responses carry no usage by design; only a successful (or unknown) status with no
    // usage is the signal operators need (e.g. streams without `include_usage`).
    let success = record.status.is_none_or(|s| (200..300).contains(&s));
    if record.usage_source == crate::usage::UsageSource::Missing && success {
        plan.extend(counter(stat_name(&short, METRIC_USAGE_MISSING), 1));
    }
    // Histograms: operation, provider and model only (each series is ~20 bucket series).
    // The first tag is fixed by the contract: the bucket settings match on it.
    let op_tags = [(LABEL_OPERATION, operation), (LABEL_PROVIDER, provider), (LABEL_MODEL, model.as_str())];
    if record.usage_source != crate::usage::UsageSource::Missing {
        let embeddings = record.route.operation == crate::providers::Operation::Embeddings;
        // Embeddings generate no output tokens; a 0 sample would only skew the distribution.
        let samples = [(TOKEN_INPUT, Some(u.input_tokens)), (TOKEN_OUTPUT, (!embeddings).then_some(u.output_tokens))];
        for (kind, n) in samples {
            if let Some(n) = n {
                let [o, p, m] = op_tags;
                plan.push(histogram(stat_name(&[(LABEL_TOKEN_TYPE, kind), o, p, m], METRIC_TOKEN_USAGE), n));
            }
        }
    }
    if let Some(ms) = record.duration_ms {
        plan.push(histogram(stat_name(&op_tags, METRIC_OPERATION_DURATION_MS), ms));
    }
    if let (true, Some(ms)) = (record.streamed, record.time_to_first_token_ms) {
        plan.push(histogram(stat_name(&op_tags, METRIC_TIME_TO_FIRST_TOKEN_MS), ms));
    }
    if let Some(ms) = time_per_output_token_ms(record) {
        plan.push(histogram(stat_name(&op_tags, METRIC_TIME_PER_OUTPUT_TOKEN_MS), ms));
    }
    if record.usage_source == crate::usage::UsageSource::Estimated {
        plan.extend(counter(stat_name(&short, METRIC_USAGE_ESTIMATED), 1));
    }
    plan
}

/// The budget decision counter for one admission (`decision`: `allowed`, `rejected`,
/// `soft_exceeded`). The budget id is sanitised like any label value.
pub fn budget_admission_plan(budget: &str, decision: &str) -> Vec<MetricUpdate> {
    let tags = [(LABEL_BUDGET, sanitize_label(budget)), (LABEL_DECISION, sanitize_label(decision))];
    let tags: Vec<(&str, &str)> = tags.iter().map(|(k, v)| (*k, v.as_str())).collect();
    counter(stat_name(&tags, METRIC_BUDGET_ADMISSIONS), 1).into_iter().collect()
}

/// Sets the budget utilisation gauge: spend over limit in permille (may exceed 1000).
pub fn budget_utilization_plan(budget: &str, permille: u64) -> Vec<MetricUpdate> {
    let name = stat_name(&[(LABEL_BUDGET, &sanitize_label(budget))], METRIC_BUDGET_UTILIZATION);
    vec![MetricUpdate { kind: MetricKind::Gauge, name, delta: permille }]
}

/// The counter of one pull of the limits document, stored (`ok`) or failed.
pub fn limits_pull_plan(ok: bool) -> Vec<MetricUpdate> {
    let name = if ok { METRIC_LIMITS_PULLS } else { METRIC_LIMITS_PULL_FAILURES };
    counter(name.to_string(), 1).into_iter().collect()
}

/// The counter of one fetch of the LiteLLM price list, applied (`ok`) or failed.
pub fn price_list_fetch_plan(ok: bool) -> Vec<MetricUpdate> {
    let name = if ok { METRIC_PRICE_LIST_FETCHES } else { METRIC_PRICE_LIST_FETCH_FAILURES };
    counter(name.to_string(), 1).into_iter().collect()
}

/// The counter of a request body too large to hold for admission.
pub fn body_too_large_plan() -> Vec<MetricUpdate> {
    counter(METRIC_REQUEST_BODY_TOO_LARGE.to_string(), 1).into_iter().collect()
}

/// The increment for a request that is not recognised LLM traffic (no labels: its path and
/// host are arbitrary).
pub fn unrecognized_plan() -> Vec<MetricUpdate> {
    counter(METRIC_UNRECOGNIZED.to_string(), 1).into_iter().collect()
}

/// Applies a plan through the host; returns how many updates failed (each is independent).
pub fn apply(plan: &[MetricUpdate], metrics: &mut dyn Metrics) -> u32 {
    let mut failures = 0u32;
    for update in plan {
        let ok = metrics.define(update.kind, &update.name).and_then(|id| match update.kind {
            // Envoy rejects a 0 increment; plans never hold one, but a hand-built one is
            // simply nothing to do.
            MetricKind::Counter if update.delta == 0 => Ok(()),
            MetricKind::Counter => metrics.increment(id, i64::try_from(update.delta).unwrap_or(i64::MAX)),
            MetricKind::Gauge | MetricKind::Histogram => metrics.record(id, update.delta),
        });
        if ok.is_err() {
            failures = failures.saturating_add(1);
        }
    }
    failures
}

/// Filter-state entries for a record, in [`FILTER_STATE_KEYS`] order (`llm.record` last).
pub fn filter_state(record: &Record) -> Vec<(&'static str, String)> {
    let u = &record.usage;
    let text = |v: &Option<String>| v.as_deref().map(log_safe).unwrap_or_default();
    vec![
        (KEY_PROVIDER, record.route.provider.name().to_string()),
        (KEY_OPERATION, record.route.operation.name().to_string()),
        (KEY_REQUEST_MODEL, text(&record.request.model)),
        (KEY_RESPONSE_MODEL, text(&record.response.model)),
        (KEY_RESPONSE_ID, text(&record.response.id)),
        (KEY_INPUT_TOKENS, u.input_tokens.to_string()),
        (KEY_OUTPUT_TOKENS, u.output_tokens.to_string()),
        (KEY_CACHE_READ_TOKENS, u.cache_read_tokens.to_string()),
        (KEY_CACHE_CREATION_TOKENS, u.cache_creation_tokens.to_string()),
        (KEY_REASONING_TOKENS, u.reasoning_tokens.to_string()),
        (KEY_COST_USD, record.cost.map(|c| c.to_usd_string()).unwrap_or_default()),
        (KEY_COST_SOURCE, record.cost_source.map(|s| s.as_str().to_string()).unwrap_or_default()),
        (KEY_USAGE_SOURCE, record.usage_source.as_str().to_string()),
        (KEY_FEATURE, record.attribution.feature.clone()),
        (KEY_CUSTOMER, record.attribution.customer.clone()),
        (KEY_USER, record.attribution.user.clone()),
    ]
    .into_iter()
    .chain(record.budget.iter().flat_map(|d| d.filter_state()))
    .chain(std::iter::once((KEY_RECORD, record_json(record))))
    .collect()
}

/// `llm.record`: one JSON object with every filter-state value (token counts as numbers, the
/// cost as its 9-place string or null when unpriced) plus request/response extras.
///
/// Written straight into one string rather than through a `serde_json::Value` map: this runs
/// on every metered request, and building the map cost ~40 small allocations for a value
/// that is serialised once and thrown away. Keys are constants (no escaping needed); string
/// values are escaped as JSON requires.
pub fn record_json(record: &Record) -> String {
    let u = &record.usage;
    let mut w = JsonObject::with_capacity(1024);
    w.str(KEY_PROVIDER, record.route.provider.name());
    w.str(KEY_OPERATION, record.route.operation.name());
    w.opt_log_safe(KEY_REQUEST_MODEL, record.request.model.as_deref());
    w.opt_log_safe(KEY_RESPONSE_MODEL, record.response.model.as_deref());
    w.opt_log_safe(KEY_RESPONSE_ID, record.response.id.as_deref());
    w.num(KEY_INPUT_TOKENS, u.input_tokens);
    w.num(KEY_OUTPUT_TOKENS, u.output_tokens);
    w.num(KEY_CACHE_READ_TOKENS, u.cache_read_tokens);
    w.num(KEY_CACHE_CREATION_TOKENS, u.cache_creation_tokens);
    w.num(KEY_REASONING_TOKENS, u.reasoning_tokens);
    w.num(RECORD_CACHE_CREATION_5M_TOKENS, u.cache_creation_5m_tokens);
    w.num(RECORD_CACHE_CREATION_1H_TOKENS, u.cache_creation_1h_tokens);
    match record.cost {
        Some(c) => w.str(KEY_COST_USD, &c.to_usd_string()),
        None => w.null(KEY_COST_USD),
    }
    w.opt_num(RECORD_COST_PICO_USD, record.cost.map(|c| c.0));
    match record.cost_source {
        Some(s) => w.str(KEY_COST_SOURCE, s.as_str()),
        None => w.null(KEY_COST_SOURCE),
    }
    w.opt_log_safe(RECORD_PRICED_MODEL, record.priced_model.as_deref());
    w.opt_log_safe(RECORD_PRICE_TABLE_VERSION, record.price_table_version.as_deref());
    w.str(KEY_USAGE_SOURCE, record.usage_source.as_str());
    match record.usage_missing_reason {
        Some(r) => w.str(RECORD_USAGE_MISSING_REASON, r),
        None => w.null(RECORD_USAGE_MISSING_REASON),
    }
    w.str(KEY_FEATURE, &record.attribution.feature);
    w.str(KEY_CUSTOMER, &record.attribution.customer);
    w.str(KEY_USER, &record.attribution.user);
    w.bool(RECORD_REQUEST_STREAM, record.request.stream);
    w.opt_num(RECORD_REQUEST_MAX_TOKENS, record.request.max_output_tokens);
    w.key(RECORD_FINISH_REASONS);
    w.out.push('[');
    if let Some(reason) = &record.response.finish_reason {
        w.string(&log_safe(reason));
    }
    w.out.push(']');
    let tier = record.response.service_tier.as_deref();
    if crate::meter::is_openai_family(record.route.provider) {
        w.opt_log_safe(RECORD_OPENAI_SERVICE_TIER, tier);
    }
    w.opt_log_safe(RECORD_SERVICE_TIER, tier);
    w.opt_num(RECORD_HTTP_STATUS, record.status.map(u64::from));
    w.opt_num(RECORD_DURATION_MS, record.duration_ms);
    if record.azure_deployment.is_some() {
        w.opt_log_safe(RECORD_AZURE_DEPLOYMENT, record.azure_deployment.as_deref());
    }
    match record.retry {
        Some(r) => w.str(RECORD_RETRY_SOURCE, r.name()),
        None => w.null(RECORD_RETRY_SOURCE),
    }
    w.bool(RECORD_STREAMED, record.streamed);
    w.opt_num(RECORD_TIME_TO_FIRST_TOKEN_MS, record.time_to_first_token_ms);
    w.opt_num(RECORD_TIME_TO_RESPONSE_HEADERS_MS, record.time_to_response_headers_ms);
    for (key, value) in record.budget.iter().flat_map(|d| d.filter_state()) {
        w.str(key, &value);
    }
    w.finish()
}

/// Appends a JSON string: quote and backslash escaped, control characters as serde_json
/// writes them (`\n`, `\r`, `\t`, `\b`, `\f`, else `\u00xx`). Shared by the record writer
/// and the budget's 429 bodies, which are small enough to build by hand.
pub(crate) fn push_json_string(out: &mut String, value: &str) {
    out.push('"');
    let mut rest = value;
    while let Some(i) = rest.find(|c: char| c == '"' || c == '\\' || c < ' ') {
        let (plain, tail) = rest.split_at(i);
        out.push_str(plain);
        let mut chars = tail.chars();
        match chars.next() {
            Some('"') => out.push_str("\\\""),
            Some('\\') => out.push_str("\\\\"),
            Some('\n') => out.push_str("\\n"),
            Some('\r') => out.push_str("\\r"),
            Some('\t') => out.push_str("\\t"),
            Some('\u{8}') => out.push_str("\\b"),
            Some('\u{c}') => out.push_str("\\f"),
            Some(c) => out.push_str(&format!("\\u{:04x}", u32::from(c))),
            None => {}
        }
        rest = chars.as_str();
    }
    out.push_str(rest);
    out.push('"');
}

/// A minimal writer for one flat JSON object with constant keys.
struct JsonObject {
    out: String,
    first: bool,
}

impl JsonObject {
    fn with_capacity(n: usize) -> Self {
        let mut out = String::with_capacity(n);
        out.push('{');
        Self { out, first: true }
    }

    /// Keys are this module's constants: plain ASCII without quotes or backslashes.
    fn key(&mut self, key: &str) {
        if !self.first {
            self.out.push(',');
        }
        self.first = false;
        self.out.push('"');
        self.out.push_str(key);
        self.out.push_str("\":");
    }

    fn string(&mut self, value: &str) {
        push_json_string(&mut self.out, value);
    }

    fn str(&mut self, key: &str, value: &str) {
        self.key(key);
        self.string(value);
    }

    fn null(&mut self, key: &str) {
        self.key(key);
        self.out.push_str("null");
    }

    fn num(&mut self, key: &str, value: u64) {
        use std::fmt::Write;
        self.key(key);
        // Writing into a String cannot fail.
        if write!(self.out, "{value}").is_err() {}
    }

    fn opt_num(&mut self, key: &str, value: Option<u64>) {
        match value {
            Some(v) => self.num(key, v),
            None => self.null(key),
        }
    }

    fn bool(&mut self, key: &str, value: bool) {
        self.key(key);
        self.out.push_str(if value { "true" } else { "false" });
    }

    /// A text value made log-safe ([`log_safe`]), or null when absent.
    fn opt_log_safe(&mut self, key: &str, value: Option<&str>) {
        match value {
            Some(v) => self.str(key, &log_safe(v)),
            None => self.null(key),
        }
    }

    fn finish(mut self) -> String {
        self.out.push('}');
        self.out
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing)]
    use super::*;
    use serde_json::{json, Value};
    use crate::attribution::Attribution;
    use crate::host::fake::FakeMetrics;
    use crate::pricing::PicoUsd;
    use crate::providers::{Api, Operation, Provider, RequestFacts, ResponseFacts, Route};
    use crate::usage::{CostSource, NormalizedUsage, UsageSource};

    // `..default()` keeps this compiling as the extraction work adds response facts; with
    // the stub's fields all given, clippy sees the update as needless.
    #[allow(clippy::needless_update)]
    fn record() -> Record {
        Record {
            route: Route { provider: Provider::OpenAi, operation: Operation::Chat, api: Api::OpenAiChatCompletions },
            request: RequestFacts { model: Some("gpt-4o".into()), stream: true, max_output_tokens: Some(100), ..RequestFacts::default() },
            response: ResponseFacts {
                model: Some("gpt-4o-2024-08-06".into()),
                id: Some("chatcmpl-1".into()),
                finish_reason: Some("stop".into()),
                service_tier: Some("default".into()),
                ..ResponseFacts::default()
            },
            status: Some(200),
            usage: NormalizedUsage { input_tokens: 100, output_tokens: 20, cache_read_tokens: 40, ..NormalizedUsage::default() },
            usage_source: UsageSource::Reported,
            usage_missing_reason: None,
            priced_model: Some("gpt-4o".into()),
            cost: Some(PicoUsd(435_000_000)),
            cost_source: Some(CostSource::PriceTable),
            attribution: Attribution { feature: "search".into(), customer: "acme".into(), user: "alice".into() },
            azure_deployment: None,
            deployment_model: None,
            price_table_version: None,
            duration_ms: Some(1234),
            retry: None,
            streamed: true,
            time_to_first_token_ms: Some(200),
            time_to_response_headers_ms: Some(150),
            budget: None,
        }
    }

    #[test]
    fn stat_names_embed_tags_first_then_the_metric() {
        let tags = [(LABEL_PROVIDER, "openai"), (LABEL_MODEL, "gpt-4o"), (LABEL_FEATURE, "search"), (LABEL_CUSTOMER, "acme")];
        assert_eq!(
            stat_name(&tags, METRIC_REQUESTS),
            "gen_ai_provider_name=.=openai;.;gen_ai_request_model=.=gpt-4o;.;feature=.=search;.;customer=.=acme;.;tokenmeter_requests_total"
        );
    }

    #[test]
    fn stats_tag_regexes_match_the_istio_form_and_cover_every_label() {
        assert_eq!(STATS_TAGS[3], ("customer", r"(customer=\.=(.*?);\.;)"));
        for (label, regex) in STATS_TAGS {
            assert_eq!(regex, stats_tag_regex(label));
        }
        let labels: Vec<&str> = STATS_TAGS.iter().map(|(l, _)| *l).collect();
        for l in [LABEL_PROVIDER, LABEL_MODEL, LABEL_FEATURE, LABEL_CUSTOMER, LABEL_TOKEN_TYPE, LABEL_DIMENSION] {
            assert!(labels.contains(&l), "{l}");
        }
    }

    #[test]
    fn stats_tags_render_as_bootstrap_yaml() {
        let yaml = stats_tags_yaml("  ");
        assert!(yaml.starts_with("  - tag_name: gen_ai_provider_name\n    regex: \"(gen_ai_provider_name=\\\\.=(.*?);\\\\.;)\"\n"), "{yaml}");
        assert_eq!(yaml.lines().count(), 2 * STATS_TAGS.len());
    }

    #[test]
    fn a_shared_plan_caps_labels_across_vms() {
        let store = crate::host::fake::FakeStore::default();
        let config = crate::config::Config::from_json(br#"{"metrics": {"max_label_values": 1}}"#).unwrap();
        let (mut a, mut b) = (TelemetryState::new(&config), TelemetryState::new(&config));
        a.plan_shared(&record(), &store);
        let mut other = record();
        other.attribution.customer = "globex".into();
        let plan = b.plan_shared(&other, &store);
        assert_eq!(plan[0].name, "dimension=.=customer;.;tokenmeter_label_overflow_total");
        assert!(plan[1].name.contains(";.;customer=.=other;.;"));
    }

    #[test]
    fn metric_names_are_the_contract() {
        assert_eq!(
            [METRIC_REQUESTS, METRIC_TOKENS, METRIC_COST_NANOUSD, METRIC_UNRECOGNIZED, METRIC_USAGE_MISSING, METRIC_UNPRICED, METRIC_LABEL_OVERFLOW],
            [
                "tokenmeter_requests_total",
                "tokenmeter_tokens_total",
                "tokenmeter_cost_nanousd_total",
                "tokenmeter_unrecognized_requests_total",
                "tokenmeter_usage_missing_total",
                "tokenmeter_unpriced_requests_total",
                "tokenmeter_label_overflow_total",
            ]
        );
    }

    #[test]
    fn the_plan_counts_requests_tokens_and_cost_without_zero_deltas() {
        let mut guard = CardinalityGuard::new(100);
        let mut carry = CostCarry::default();
        let plan = metric_plan(&record(), &mut guard, &mut carry);
        let base = "gen_ai_provider_name=.=openai;.;gen_ai_request_model=.=gpt-4o;.;feature=.=search;.;customer=.=acme;.;";
        let expected = vec![
            (format!("{base}tokenmeter_requests_total"), 1),
            (format!("{base}gen_ai_token_type=.=input;.;tokenmeter_tokens_total"), 100),
            (format!("{base}gen_ai_token_type=.=output;.;tokenmeter_tokens_total"), 20),
            (format!("{base}gen_ai_token_type=.=cache_read;.;tokenmeter_tokens_total"), 40),
            (format!("{base}tokenmeter_cost_nanousd_total"), 435_000),
            (format!("{base}http_status_class=.=2xx;.;tokenmeter_responses_total"), 1),
        ];
        let got: Vec<(String, u64)> =
            plan.iter().filter(|u| u.kind == MetricKind::Counter).map(|u| (u.name.clone(), u.delta)).collect();
        assert_eq!(got, expected);
        assert!(plan.iter().filter(|u| u.kind == MetricKind::Counter).all(|u| u.delta > 0));
        // And the fake host (which rejects 0 like Envoy) accepts all of it.
        let mut metrics = FakeMetrics::default();
        assert_eq!(apply(&plan, &mut metrics), 0);
        assert_eq!(metrics.value(&format!("{base}tokenmeter_requests_total")), Some(1));
    }

    #[test]
    fn unpriced_and_missing_usage_are_counted_by_provider_and_raw_model() {
        let mut r = record();
        r.priced_model = None;
        r.cost = None;
        r.request.model = Some("my model;.;x".into());
        r.usage = NormalizedUsage::default();
        r.usage_source = UsageSource::Missing;
        let plan = metric_plan(&r, &mut CardinalityGuard::new(10), &mut CostCarry::default());
        let names: Vec<&str> = plan.iter().map(|u| u.name.as_str()).collect();
        assert_eq!(
            names,
            [
                "gen_ai_provider_name=.=openai;.;gen_ai_request_model=.=my_model_._x;.;feature=.=search;.;customer=.=acme;.;tokenmeter_requests_total",
                "gen_ai_provider_name=.=openai;.;gen_ai_request_model=.=my_model_._x;.;feature=.=search;.;customer=.=acme;.;http_status_class=.=2xx;.;tokenmeter_responses_total",
                "gen_ai_provider_name=.=openai;.;gen_ai_request_model=.=my_model_._x;.;tokenmeter_unpriced_requests_total",
                "gen_ai_provider_name=.=openai;.;gen_ai_request_model=.=my_model_._x;.;tokenmeter_usage_missing_total",
                // No token histograms for missing usage; durations are still measured.
                "gen_ai_operation_name=.=chat;.;gen_ai_provider_name=.=openai;.;gen_ai_request_model=.=my_model_._x;.;gen_ai_client_operation_duration_ms",
                "gen_ai_operation_name=.=chat;.;gen_ai_provider_name=.=openai;.;gen_ai_request_model=.=my_model_._x;.;gen_ai_server_time_to_first_token_ms",
            ]
        );
        // A failed upstream call without usage is not "missing usage".
        r.status = Some(429);
        let plan = metric_plan(&r, &mut CardinalityGuard::new(10), &mut CostCarry::default());
        assert!(plan.iter().all(|u| !u.name.ends_with(METRIC_USAGE_MISSING)));
    }

    #[test]
    fn label_overflow_goes_to_other_and_is_counted_per_dimension() {
        let mut guard = CardinalityGuard::new(1);
        let mut carry = CostCarry::default();
        metric_plan(&record(), &mut guard, &mut carry);
        let mut r = record();
        r.attribution.customer = "globex".into();
        let plan = metric_plan(&r, &mut guard, &mut carry);
        assert_eq!(plan[0].name, "dimension=.=customer;.;tokenmeter_label_overflow_total");
        assert!(plan[1].name.contains(";.;customer=.=other;.;"));
        assert_eq!(guard.overflow_count(Dimension::Customer), 1);
    }

    #[test]
    fn the_user_is_never_a_metric_label() {
        let mut r = record();
        r.attribution.user = "secret-user-7".into();
        let plan = metric_plan(&r, &mut CardinalityGuard::new(10), &mut CostCarry::default());
        assert!(plan.iter().all(|u| !u.name.contains("secret-user-7")));
    }

    #[test]
    fn cost_carry_keeps_sub_nano_remainders_exact() {
        let mut carry = CostCarry::default();
        let mut total = 0u64;
        for _ in 0..1000 {
            total += carry.add("series", 400); // 0.4 nano-USD each
        }
        assert_eq!(total, 400);
        assert_eq!(carry.remainder("series"), 0);
        // Series carry independently; the counter total is the floor of the exact sum.
        let mut carry = CostCarry::default();
        let (mut a, mut b) = (0, 0);
        for i in 0..997u64 {
            a += carry.add("a", 1234 + i);
            b += carry.add("b", 999);
        }
        let exact_a: u64 = (0..997u64).map(|i| 1234 + i).sum();
        assert_eq!(a, exact_a / 1000);
        assert_eq!(carry.remainder("a"), exact_a % 1000);
        assert_eq!(b, 997 * 999 / 1000);
    }

    #[test]
    fn planned_cost_of_many_tiny_requests_adds_up_and_skips_zero_deltas() {
        let mut guard = CardinalityGuard::new(10);
        let mut carry = CostCarry::default();
        let mut r = record();
        r.cost = Some(PicoUsd(400));
        let mut metrics = FakeMetrics::default();
        for _ in 0..1000 {
            let plan = metric_plan(&r, &mut guard, &mut carry);
            assert_eq!(apply(&plan, &mut metrics), 0, "no zero increments reach the host");
        }
        let name = "gen_ai_provider_name=.=openai;.;gen_ai_request_model=.=gpt-4o;.;feature=.=search;.;customer=.=acme;.;tokenmeter_cost_nanousd_total";
        assert_eq!(metrics.value(name), Some(400));
    }

    #[test]
    fn filter_state_has_every_key_with_contract_formats() {
        let state = filter_state(&record());
        let keys: Vec<&str> = state.iter().map(|(k, _)| *k).collect();
        assert_eq!(keys, FILTER_STATE_KEYS);
        let get = |k: &str| state.iter().find(|(key, _)| *key == k).map(|(_, v)| v.clone()).unwrap();
        assert_eq!(get("gen_ai.provider.name"), "openai");
        assert_eq!(get("gen_ai.usage.input_tokens"), "100");
        assert_eq!(get("gen_ai.usage.reasoning.output_tokens"), "0");
        assert_eq!(get("llm.cost_usd"), "0.000435000");
        assert_eq!(get("llm.usage_source"), "reported");
        assert_eq!(get("llm.user"), "alice");
        let mut unpriced = record();
        unpriced.cost = None;
        unpriced.response.id = None;
        let state = filter_state(&unpriced);
        assert_eq!(state.iter().find(|(k, _)| *k == KEY_COST_USD).unwrap().1, "");
        assert_eq!(state.iter().find(|(k, _)| *k == KEY_RESPONSE_ID).unwrap().1, "");
    }

    #[test]
    fn the_record_json_holds_every_key_and_the_extras() {
        let v: Value = serde_json::from_str(&record_json(&record())).unwrap();
        for key in &FILTER_STATE_KEYS[..FILTER_STATE_KEYS.len() - 1] {
            assert!(v.get(key).is_some(), "{key} missing");
        }
        assert_eq!(v[KEY_INPUT_TOKENS], json!(100));
        assert_eq!(v[KEY_COST_USD], json!("0.000435000"));
        assert_eq!(v[RECORD_COST_PICO_USD], json!(435_000_000u64));
        assert_eq!(v[RECORD_REQUEST_STREAM], json!(true));
        assert_eq!(v[RECORD_REQUEST_MAX_TOKENS], json!(100));
        assert_eq!(v[RECORD_FINISH_REASONS], json!(["stop"]));
        assert_eq!(v[RECORD_OPENAI_SERVICE_TIER], json!("default"));
        assert_eq!(v[RECORD_HTTP_STATUS], json!(200));
        assert_eq!(v[RECORD_DURATION_MS], json!(1234));
        assert!(v[RECORD_PRICE_TABLE_VERSION].is_null());
        let mut unpriced = record();
        unpriced.cost = None;
        let v: Value = serde_json::from_str(&record_json(&unpriced)).unwrap();
        assert!(v[KEY_COST_USD].is_null());
    }

    #[test]
    fn the_cost_source_is_published_and_a_provider_cost_is_not_unpriced() {
        let v: Value = serde_json::from_str(&record_json(&record())).unwrap();
        assert_eq!(v[KEY_COST_SOURCE], json!("price_table"));
        // OpenRouter: no price for the model, but the provider said what it billed.
        let mut r = record();
        r.priced_model = None;
        r.cost = Some(PicoUsd(12_000_000));
        r.cost_source = Some(CostSource::Provider);
        let state = filter_state(&r);
        let get = |k: &str| state.iter().find(|(key, _)| *key == k).map(|(_, v)| v.clone()).unwrap();
        assert_eq!(get(KEY_COST_SOURCE), "provider");
        assert_eq!(get(KEY_COST_USD), "0.000012000");
        let v: Value = serde_json::from_str(&record_json(&r)).unwrap();
        assert_eq!(v[KEY_COST_SOURCE], json!("provider"));
        assert_eq!(v[RECORD_COST_PICO_USD], json!(12_000_000u64));
        let plan = metric_plan(&r, &mut CardinalityGuard::new(10), &mut CostCarry::default());
        assert!(plan.iter().all(|u| !u.name.ends_with(METRIC_UNPRICED)));
        let cost = plan.iter().find(|u| u.name.ends_with(METRIC_COST_NANOUSD)).unwrap();
        assert_eq!(cost.delta, 12_000);
        // Unpriced: empty in filter state, null in the record, and counted as unpriced.
        r.cost = None;
        r.cost_source = None;
        let state = filter_state(&r);
        assert_eq!(state.iter().find(|(k, _)| *k == KEY_COST_SOURCE).unwrap().1, "");
        let v: Value = serde_json::from_str(&record_json(&r)).unwrap();
        assert!(v[KEY_COST_SOURCE].is_null());
        let plan = metric_plan(&r, &mut CardinalityGuard::new(10), &mut CostCarry::default());
        assert!(plan.iter().any(|u| u.name.ends_with(METRIC_UNPRICED)));
    }

    #[test]
    fn the_record_json_escapes_client_text_like_serde_json() {
        // Attribution values come from request headers verbatim: quotes, backslashes, control
        // characters and non-ASCII must survive a JSON round trip unchanged.
        let mut r = record();
        let nasty = "a\"b\\c\n\t\r\u{1}\u{1f}é€😀\u{7f}/";
        r.attribution.feature = nasty.to_string();
        r.attribution.customer = String::new();
        r.response.finish_reason = None;
        r.response.model = Some("m\u{0}\"x".into());
        let text = record_json(&r);
        let v: Value = serde_json::from_str(&text).unwrap();
        assert_eq!(v[KEY_FEATURE], json!(nasty));
        assert_eq!(v[KEY_CUSTOMER], json!(""));
        assert_eq!(v[RECORD_FINISH_REASONS], json!([]));
        // Model text is log-safe: control characters become `_`, the quote survives.
        assert_eq!(v[KEY_RESPONSE_MODEL], json!("m_\"x"));
        assert!(!text.chars().any(|c| c < ' '), "raw control character in {text}");
    }

    #[test]
    fn issue_5_metric_and_label_names_are_the_contract() {
        assert_eq!(
            [
                METRIC_RESPONSES,
                METRIC_RETRIES,
                METRIC_RETRY_COST_NANOUSD,
                METRIC_BUDGET_ADMISSIONS,
                METRIC_BUDGET_UTILIZATION,
                METRIC_TOKEN_USAGE,
                METRIC_OPERATION_DURATION_MS,
                METRIC_TIME_TO_FIRST_TOKEN_MS,
                METRIC_TIME_PER_OUTPUT_TOKEN_MS,
            ],
            [
                "tokenmeter_responses_total",
                "tokenmeter_retries_total",
                "tokenmeter_retry_cost_nanousd_total",
                "tokenmeter_budget_admissions_total",
                "tokenmeter_budget_utilization_ratio_permille",
                "gen_ai_client_token_usage",
                "gen_ai_client_operation_duration_ms",
                "gen_ai_server_time_to_first_token_ms",
                "gen_ai_server_time_per_output_token_ms",
            ]
        );
        assert_eq!(
            [LABEL_OPERATION, LABEL_STATUS_CLASS, LABEL_RETRY_SOURCE, LABEL_BUDGET, LABEL_DECISION, LABEL_USER],
            ["gen_ai_operation_name", "http_status_class", "retry_source", "budget", "decision", "user"]
        );
    }

    fn histograms(plan: &[MetricUpdate]) -> Vec<(&str, u64)> {
        plan.iter().filter(|u| u.kind == MetricKind::Histogram).map(|u| (u.name.as_str(), u.delta)).collect()
    }

    #[test]
    fn a_stream_records_token_usage_duration_ttft_and_time_per_output_token() {
        // 100 in, 20 out, 1234 ms overall, first token at 200 ms: (1234 - 200) / 19 = 54.
        let plan = metric_plan(&record(), &mut CardinalityGuard::new(10), &mut CostCarry::default());
        let op = "gen_ai_operation_name=.=chat;.;gen_ai_provider_name=.=openai;.;gen_ai_request_model=.=gpt-4o;.;";
        assert_eq!(
            histograms(&plan),
            [
                (format!("gen_ai_token_type=.=input;.;{op}gen_ai_client_token_usage").as_str(), 100),
                (format!("gen_ai_token_type=.=output;.;{op}gen_ai_client_token_usage").as_str(), 20),
                (format!("{op}gen_ai_client_operation_duration_ms").as_str(), 1234),
                (format!("{op}gen_ai_server_time_to_first_token_ms").as_str(), 200),
                (format!("{op}gen_ai_server_time_per_output_token_ms").as_str(), 54),
            ]
        );
        let mut metrics = FakeMetrics::default();
        assert_eq!(apply(&plan, &mut metrics), 0);
        let id = metrics.names.iter().position(|(_, n)| n.ends_with(METRIC_TIME_TO_FIRST_TOKEN_MS)).unwrap();
        assert_eq!(metrics.names[id].0, MetricKind::Histogram);
        assert_eq!(metrics.samples[&u32::try_from(id).unwrap()], [200]);
    }

    #[test]
    fn histogram_names_start_with_the_tag_the_bucket_settings_match() {
        let plan = metric_plan(&record(), &mut CardinalityGuard::new(10), &mut CostCarry::default());
        for (name, _) in histograms(&plan) {
            let prefix = if name.ends_with(METRIC_TOKEN_USAGE) { "gen_ai_token_type=" } else { "gen_ai_operation_name=" };
            assert!(name.starts_with(prefix), "{name}");
        }
    }

    #[test]
    fn non_streams_have_duration_but_no_stream_timings() {
        let mut r = record();
        r.streamed = false;
        let plan = metric_plan(&r, &mut CardinalityGuard::new(10), &mut CostCarry::default());
        let names: Vec<&str> = histograms(&plan).iter().map(|(n, _)| *n).collect();
        assert!(names.iter().any(|n| n.ends_with(METRIC_OPERATION_DURATION_MS)));
        assert!(!names.iter().any(|n| n.ends_with(METRIC_TIME_TO_FIRST_TOKEN_MS) || n.ends_with(METRIC_TIME_PER_OUTPUT_TOKEN_MS)));
    }

    #[test]
    fn time_per_output_token_needs_two_output_tokens_and_rounds_down() {
        let mut r = record();
        r.usage.output_tokens = 1;
        assert_eq!(time_per_output_token_ms(&r), None);
        r.usage.output_tokens = 0;
        assert_eq!(time_per_output_token_ms(&r), None);
        r.usage.output_tokens = 2;
        assert_eq!(time_per_output_token_ms(&r), Some(1034));
        r.usage.output_tokens = 1000;
        assert_eq!(time_per_output_token_ms(&r), Some(1));
        r.usage.output_tokens = 2000;
        assert_eq!(time_per_output_token_ms(&r), Some(0), "sub-millisecond per token is 0, first bucket");
        r.time_to_first_token_ms = None;
        assert_eq!(time_per_output_token_ms(&r), None);
    }

    #[test]
    fn no_duration_means_no_duration_histogram_and_embeddings_record_no_output() {
        let mut r = record();
        r.duration_ms = None;
        r.streamed = false;
        r.route.operation = Operation::Embeddings;
        let plan = metric_plan(&r, &mut CardinalityGuard::new(10), &mut CostCarry::default());
        let names: Vec<&str> = histograms(&plan).iter().map(|(n, _)| *n).collect();
        assert_eq!(
            names,
            ["gen_ai_token_type=.=input;.;gen_ai_operation_name=.=embeddings;.;gen_ai_provider_name=.=openai;.;gen_ai_request_model=.=gpt-4o;.;gen_ai_client_token_usage"]
        );
    }

    #[test]
    fn a_zero_millisecond_sample_is_recorded_not_dropped() {
        let mut r = record();
        r.duration_ms = Some(0);
        r.time_to_first_token_ms = Some(0);
        let plan = metric_plan(&r, &mut CardinalityGuard::new(10), &mut CostCarry::default());
        let mut metrics = FakeMetrics::default();
        assert_eq!(apply(&plan, &mut metrics), 0);
        assert!(histograms(&plan).iter().any(|(n, v)| n.ends_with(METRIC_OPERATION_DURATION_MS) && *v == 0));
    }

    #[test]
    fn responses_are_counted_by_status_class() {
        let cases = [(Some(101), "1xx"), (Some(200), "2xx"), (Some(304), "3xx"), (Some(429), "4xx"), (Some(503), "5xx"), (None, "none"), (Some(99), "none"), (Some(600), "none")];
        for (status, class) in cases {
            assert_eq!(status_class(status), class);
            let mut r = record();
            r.status = status;
            let plan = metric_plan(&r, &mut CardinalityGuard::new(10), &mut CostCarry::default());
            let responses: Vec<&MetricUpdate> = plan.iter().filter(|u| u.name.ends_with(METRIC_RESPONSES)).collect();
            assert_eq!(responses.len(), 1);
            assert!(responses[0].name.ends_with(&format!(";.;customer=.=acme;.;http_status_class=.={class};.;tokenmeter_responses_total")));
            assert_eq!(responses[0].delta, 1);
        }
    }

    #[test]
    fn retries_and_their_cost_are_counted_separately_by_source() {
        use crate::retry::RetrySource;
        let base = "gen_ai_provider_name=.=openai;.;gen_ai_request_model=.=gpt-4o;.;feature=.=search;.;customer=.=acme;.;";
        for source in RetrySource::ALL {
            let mut r = record();
            r.retry = Some(source);
            let plan = metric_plan(&r, &mut CardinalityGuard::new(10), &mut CostCarry::default());
            let get = |name: String| plan.iter().find(|u| u.name == name).map(|u| u.delta);
            assert_eq!(get(format!("{base}retry_source=.={};.;tokenmeter_retries_total", source.name())), Some(1));
            assert_eq!(get(format!("{base}retry_source=.={};.;tokenmeter_retry_cost_nanousd_total", source.name())), Some(435_000));
            // Retry cost is also in the total.
            assert_eq!(get(format!("{base}tokenmeter_cost_nanousd_total")), Some(435_000));
        }
        // First attempts count nothing; an unpriced retry is counted without cost.
        let plan = metric_plan(&record(), &mut CardinalityGuard::new(10), &mut CostCarry::default());
        assert!(plan.iter().all(|u| !u.name.contains("retr")));
        let mut r = record();
        r.retry = Some(RetrySource::Proxy);
        r.cost = None;
        let plan = metric_plan(&r, &mut CardinalityGuard::new(10), &mut CostCarry::default());
        assert!(plan.iter().any(|u| u.name.ends_with(METRIC_RETRIES)));
        assert!(plan.iter().all(|u| !u.name.ends_with(METRIC_RETRY_COST_NANOUSD)));
    }

    #[test]
    fn retry_cost_carries_its_own_sub_nano_remainders() {
        let mut r = record();
        r.retry = Some(crate::retry::RetrySource::Client);
        r.cost = Some(PicoUsd(250));
        let mut state = TelemetryState::default();
        let mut metrics = FakeMetrics::default();
        for _ in 0..8 {
            assert_eq!(apply(&state.plan(&r), &mut metrics), 0);
        }
        let base = "gen_ai_provider_name=.=openai;.;gen_ai_request_model=.=gpt-4o;.;feature=.=search;.;customer=.=acme;.;";
        assert_eq!(metrics.value(&format!("{base}retry_source=.=client;.;tokenmeter_retry_cost_nanousd_total")), Some(2));
        assert_eq!(metrics.value(&format!("{base}tokenmeter_cost_nanousd_total")), Some(2));
    }

    #[test]
    fn the_user_label_is_added_only_when_configured_and_capped() {
        let config = crate::config::Config::from_json(br#"{"metrics": {"user_label": true, "max_label_values": 1}}"#).unwrap();
        let mut state = TelemetryState::new(&config);
        let plan = state.plan(&record());
        let requests = plan.iter().find(|u| u.name.ends_with(METRIC_REQUESTS)).unwrap();
        assert_eq!(
            requests.name,
            "gen_ai_provider_name=.=openai;.;gen_ai_request_model=.=gpt-4o;.;feature=.=search;.;customer=.=acme;.;user=.=alice;.;tokenmeter_requests_total"
        );
        // Histograms never carry it.
        assert!(histograms(&plan).iter().all(|(n, _)| !n.contains("user=")));
        let mut r = record();
        r.attribution.user = "bob;.;x".into();
        let plan = state.plan(&r);
        assert_eq!(plan[0].name, "dimension=.=user;.;tokenmeter_label_overflow_total");
        assert!(plan[1].name.contains(";.;user=.=other;.;"));
        // Off by default.
        let mut state = TelemetryState::new(&crate::config::Config::default());
        assert!(state.plan(&record()).iter().all(|u| !u.name.contains("user=") && !u.name.contains("alice")));
    }

    #[test]
    fn budget_plans_name_the_budget_and_decision() {
        assert_eq!(
            budget_admission_plan("team-a", "rejected"),
            [MetricUpdate { kind: MetricKind::Counter, name: "budget=.=team-a;.;decision=.=rejected;.;tokenmeter_budget_admissions_total".into(), delta: 1 }]
        );
        let plan = budget_utilization_plan("team a", 1250);
        assert_eq!(plan[0].name, "budget=.=team_a;.;tokenmeter_budget_utilization_ratio_permille");
        let mut metrics = FakeMetrics::default();
        assert_eq!(apply(&plan, &mut metrics), 0);
        assert_eq!(apply(&budget_utilization_plan("team a", 0), &mut metrics), 0, "a gauge may be set to 0");
        assert_eq!(metrics.value("budget=.=team_a;.;tokenmeter_budget_utilization_ratio_permille"), Some(0));
    }

    #[test]
    fn the_model_label_is_the_canonical_priced_name() {
        let mut r = record();
        r.request.model = Some("gpt-4o-2024-08-06".into());
        r.priced_model = Some("gpt-4o".into());
        let plan = metric_plan(&r, &mut CardinalityGuard::new(10), &mut CostCarry::default());
        assert!(plan.iter().filter(|u| u.name.contains("gen_ai_request_model=")).all(|u| u.name.contains("gen_ai_request_model=.=gpt-4o;.;")));
    }

    #[test]
    fn the_record_json_carries_retry_and_stream_timing() {
        let mut r = record();
        r.retry = Some(crate::retry::RetrySource::Proxy);
        let v: Value = serde_json::from_str(&record_json(&r)).unwrap();
        assert_eq!(v[RECORD_RETRY_SOURCE], json!("proxy"));
        assert_eq!(v[RECORD_STREAMED], json!(true));
        assert_eq!(v[RECORD_TIME_TO_FIRST_TOKEN_MS], json!(200));
        assert_eq!(v[RECORD_TIME_TO_RESPONSE_HEADERS_MS], json!(150));
        assert!(serde_json::from_str::<Value>(&record_json(&record())).unwrap()[RECORD_RETRY_SOURCE].is_null());
    }
}
