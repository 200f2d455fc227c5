//! Unit tests of the request path against the in-memory host (CAS conflicts injected).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use super::*;
use crate::budget::state::Counters;
use crate::host::fake::{FakeMetrics, FakeStore};
use crate::host::MetricKind;
use crate::meter::{Exchange, RequestHead};
use crate::providers::Operation;

/// 2024-11-27T00:00:00Z, mid-month (no window reset in sight).
const NOW: u64 = 1_732_665_600_000;

struct Head {
    path: &'static str,
    customer: &'static str,
}

impl RequestHead for Head {
    fn path(&self) -> Option<String> {
        Some(self.path.into())
    }
    fn authority(&self) -> Option<String> {
        Some("api.openai.com".into())
    }
    fn method(&self) -> Option<String> {
        Some("POST".into())
    }
    fn header(&self, name: &str) -> Option<String> {
        (name == "x-llm-customer").then(|| self.customer.to_string())
    }
}

const CHAT: Route = Route {
    provider: Provider::OpenAi,
    operation: Operation::Chat,
    api: Api::OpenAiChatCompletions,
};
const MESSAGES: Route = Route {
    provider: Provider::Anthropic,
    operation: Operation::Chat,
    api: Api::AnthropicMessages,
};

fn config(budget: &str) -> Config {
    Config::from_json(format!(r#"{{"budget":{budget}}}"#).as_bytes()).unwrap()
}

fn who(customer: &str) -> Attribution {
    Attribution {
        customer: customer.into(),
        ..Attribution::default()
    }
}

fn facts(body: &[u8]) -> RequestFacts {
    let mut s = crate::providers::RequestScanner::new(Api::OpenAiChatCompletions);
    s.feed(body);
    s.finish()
}

fn run(store: &FakeStore, config: &Config, route: Route, customer: &str, body: &[u8]) -> Decided {
    let f = facts(body);
    let w = who(customer);
    decide(
        store,
        &Input {
            config,
            budgets: &config.budget.budgets,
            route,
            who: &w,
            facts: Some(&f),
            body: Some(body),
            body_bytes: body.len() as u64,
            deployment_model: None,
        },
        NOW,
    )
}

fn forward(d: Decided) -> Forward {
    match d.verdict {
        Verdict::Forward(f) => f,
        Verdict::Reject { decision, .. } => panic!("rejected: {decision:?}"),
    }
}

fn body_json(f: &Forward) -> serde_json::Value {
    serde_json::from_slice(f.new_body.as_ref().expect("rewritten")).unwrap()
}

/// A finished record for a chat completion that reported `prompt`/`completion` tokens.
fn record(status: u16, usage: Option<(u64, u64)>) -> Record {
    let head = Head {
        path: "/v1/chat/completions",
        customer: "acme",
    };
    let (mut ex, _) = Exchange::begin(&Config::default(), &head).unwrap();
    ex.on_request_body(br#"{"model":"gpt-4o","messages":[]}"#, true);
    ex.on_response_headers(Some(status), &|n| {
        (n == "content-type").then(|| "application/json".to_string())
    });
    let body = match usage {
        Some((p, c)) => format!(
            r#"{{"id":"x","model":"gpt-4o","choices":[],"usage":{{"prompt_tokens":{p},"completion_tokens":{c},"total_tokens":{}}}}}"#,
            p + c
        ),
        None => r#"{"error":{"message":"boom"}}"#.to_string(),
    };
    ex.on_response_body(body.as_bytes(), true);
    ex.finish(NOW)
}

fn counters(store: &FakeStore, config: &Config, id: &str, customer: &str) -> Counters {
    let def = config.budget.budgets.iter().find(|d| d.id == id).unwrap();
    let values: Vec<(String, String)> = def
        .matcher
        .iter()
        .map(|(d, _)| (d.clone(), customer.to_string()))
        .collect();
    budget::ledger::read_counters(store, def, &values, NOW)
        .unwrap()
        .unwrap_or_default()
}

// gpt-4o: $2.50 / 1M input = 2_500_000 pico per token; $10 / 1M output = 10_000_000.
const IN: u64 = 2_500_000;
const OUT: u64 = 10_000_000;

#[test]
fn untouched_traffic_is_not_held() {
    let plain = Config::from_json(br#"{"inject_stream_usage":false}"#).unwrap();
    assert!(!needs_body(&plain, &[], CHAT, &who("acme")));
    assert!(needs_body(&Config::default(), &[], CHAT, &who("acme")), "chat streams may need usage");
    assert!(!needs_body(&Config::default(), &[], MESSAGES, &who("acme")));
    let c = config(r#"{"budgets":[{"id":"a","match":{"customer":"acme"},"limit_usd":"1","window":"day"}]}"#);
    assert!(needs_body(&c, &c.budget.budgets, MESSAGES, &who("acme")));
    assert!(!needs_body(&c, &c.budget.budgets, MESSAGES, &who("globex")));
}

#[test]
fn a_stream_without_include_usage_gets_it_and_is_flagged() {
    let store = FakeStore::default();
    let c = Config::default();
    let body = br#"{"model":"gpt-4o","stream":true,"stream_options":{"x":1},"messages":[]}"#;
    let f = forward(run(&store, &c, CHAT, "acme", body));
    assert!(f.usage_injected);
    let v = body_json(&f);
    assert_eq!(v["stream_options"]["include_usage"], true);
    assert_eq!(v["stream_options"]["x"], 1, "other options are kept");
    assert!(f.ticket.is_none() && f.decision.is_none());

    for unchanged in [
        &br#"{"model":"gpt-4o","stream":true,"stream_options":{"include_usage":true}}"#[..],
        br#"{"model":"gpt-4o","stream":false}"#,
        br#"{"model":"gpt-4o"}"#,
    ] {
        let f = forward(run(&store, &c, CHAT, "acme", unchanged));
        assert!(!f.usage_injected && f.new_body.is_none(), "{}", String::from_utf8_lossy(unchanged));
    }
    // A client that said `false` did not ask either: inject, and the response side strips.
    let f = forward(run(&store, &c, CHAT, "acme", br#"{"stream":true,"stream_options":{"include_usage":false}}"#));
    assert!(f.usage_injected);
    // Anthropic and disabled injection are left alone.
    let f = forward(run(&store, &c, MESSAGES, "acme", br#"{"stream":true}"#));
    assert!(!f.usage_injected && f.new_body.is_none());
}

#[test]
fn caps_clamp_and_the_reservation_settles_to_the_actual_cost_despite_cas_conflicts() {
    let c = config(
        r#"{"remaining_headers":true,"budgets":[{"id":"acme-day","match":{"customer":"acme"},"limit_usd":"1","window":"day","output_cap":50}]}"#,
    );
    let store = FakeStore::default();
    store.inject_cas_conflicts.set(5);
    let body = br#"{"model":"gpt-4o","max_tokens":4000,"stream":true,"messages":[{"role":"user","content":"hi"}]}"#;
    let d = run(&store, &c, CHAT, "acme", body);
    assert!(d.errors.is_empty(), "{:?}", d.errors);
    assert!(d.metrics.contains(&MetricUpdate {
        kind: MetricKind::Counter,
        name: "budget=.=acme-day;.;decision=.=allowed;.;tokenmeter_budget_admissions_total".into(),
        delta: 1,
    }));
    let f = forward(d);
    let v = body_json(&f);
    assert_eq!(v["max_tokens"], 50, "clamped");
    assert_eq!(v["stream_options"]["include_usage"], true, "and usage requested");
    assert!(f.usage_injected);
    let new_len = f.new_body.as_ref().unwrap().len() as u64;
    let reserved = new_len.div_ceil(4) * IN + 50 * OUT;
    let held = counters(&store, &c, "acme-day", "acme");
    assert_eq!((held.reserved_pico, held.inflight, held.spent_pico), (reserved, 1, 0));
    assert_eq!(f.decision.as_ref().unwrap().outcome, Outcome::Allowed);
    let remaining = f
        .response_headers
        .iter()
        .find(|(k, _)| k == "x-tokenmeter-budget-remaining-usd")
        .unwrap();
    assert_eq!(remaining.1, PicoUsd(1_000_000_000_000 - reserved).to_usd_string());

    store.inject_cas_conflicts.set(3);
    let r = record(200, Some((20, 40)));
    let s = f.ticket.unwrap().settle(&store, &c.budget, &c.budget.budgets, &r, NOW);
    assert_eq!(s.how, Settlement::Actual);
    assert!(s.report.errors.is_empty());
    let after = counters(&store, &c, "acme-day", "acme");
    assert_eq!((after.reserved_pico, after.inflight), (0, 0), "nothing left held");
    assert_eq!(after.spent_pico, 20 * IN + 40 * OUT);
    assert_eq!(Some(PicoUsd(after.spent_pico)), r.cost, "spend equals the record's cost");
    assert_eq!(after.spent_tokens, 60);
    // Utilisation: 0.0009 USD of 1 USD -> 0 permille; the gauge is still set.
    assert_eq!(
        s.metrics,
        vec![MetricUpdate {
            kind: MetricKind::Gauge,
            name: "budget=.=acme-day;.;tokenmeter_budget_utilization_ratio_permille".into(),
            delta: 0,
        }]
    );
}

#[test]
fn exhausted_budgets_answer_429_in_the_callers_shape_and_hold_nothing() {
    let c = config(r#"{"budgets":[{"id":"tiny","match":{"customer":"acme"},"limit_usd":"0.0001","window":"month"}]}"#);
    let store = FakeStore::default();
    let body = br#"{"model":"gpt-4o","max_tokens":1000,"messages":[]}"#;
    for (route, check) in [
        (CHAT, "/error/code"),
        (MESSAGES, "/error/type"),
    ] {
        let d = run(&store, &c, route, "acme", body);
        assert!(d.metrics.contains(&MetricUpdate {
            kind: MetricKind::Counter,
            name: "budget=.=tiny;.;decision=.=rejected;.;tokenmeter_budget_admissions_total".into(),
            delta: 1,
        }));
        let Verdict::Reject { rejection, decision } = d.verdict else {
            panic!("allowed")
        };
        assert_eq!(rejection.status, 429);
        assert_eq!(decision.outcome, Outcome::Rejected);
        let v: serde_json::Value = serde_json::from_slice(&rejection.body).unwrap();
        let want = if route == CHAT { "rate_limit_exceeded" } else { "rate_limit_error" };
        assert_eq!(v.pointer(check).unwrap(), want);
        let header = |n: &str| rejection.headers.iter().find(|(k, _)| k == n).map(|(_, v)| v.clone());
        // Reset at 2024-12-01T00:00:00Z, four days away.
        assert_eq!(header("retry-after").as_deref(), Some("345600"));
        assert_eq!(header("x-should-retry").as_deref(), Some("false"));
        assert_eq!(header("x-tokenmeter-budget-id").as_deref(), Some("tiny"));
        assert_eq!(header("x-tokenmeter-budget-remaining-usd").as_deref(), Some("0.000100000"));
    }
    let held = counters(&store, &c, "tiny", "acme");
    assert_eq!((held.reserved_pico, held.inflight, held.admitted), (0, 0, 0));
    // Another customer is not affected.
    assert!(matches!(run(&store, &c, CHAT, "globex", body).verdict, Verdict::Forward(_)));
}

#[test]
fn endings_without_usage_settle_at_zero_on_upstream_errors_and_at_the_reservation_otherwise() {
    let c = config(r#"{"budgets":[{"id":"d","limit_tokens":1000000,"limit_usd":"10","window":"day"}]}"#);
    let body = br#"{"model":"gpt-4o","max_tokens":100,"messages":[]}"#;
    let est_tokens = (body.len() as u64).div_ceil(4) + 100;

    let store = FakeStore::default();
    let f = forward(run(&store, &c, MESSAGES, "a", body));
    let s = f.ticket.unwrap().settle(&store, &c.budget, &c.budget.budgets, &record(500, None), NOW);
    assert_eq!(s.how, Settlement::Zero);
    let after = counters(&store, &c, "d", "");
    assert_eq!((after.spent_tokens, after.reserved_tokens, after.inflight), (0, 0, 0));

    // A stream cut before its usage event: the reservation is charged.
    let f = forward(run(&store, &c, MESSAGES, "a", body));
    let head = Head { path: "/v1/chat/completions", customer: "a" };
    let (mut ex, _) = Exchange::begin(&Config::default(), &head).unwrap();
    ex.on_request_body(body, true);
    ex.on_response_headers(Some(200), &|n| (n == "content-type").then(|| "text/event-stream".to_string()));
    ex.on_response_body(b"data: {\"choices\":[{\"delta\":{\"content\":\"Hel", false);
    let cut = ex.finish(NOW);
    let s = f.ticket.unwrap().settle(&store, &c.budget, &c.budget.budgets, &cut, NOW);
    if cut.usage_source == UsageSource::Missing {
        assert_eq!(s.how, Settlement::Reserved);
        let after = counters(&store, &c, "d", "");
        assert_eq!((after.spent_tokens, after.reserved_tokens), (est_tokens, 0));
    } else {
        // Once streams estimate usage, the estimate is what is charged.
        assert_eq!(s.how, Settlement::Actual);
    }
    let after = counters(&store, &c, "d", "");
    assert_eq!(after.inflight, 0);
}

#[test]
fn bodies_too_large_to_hold_are_still_reserved_from_their_size() {
    let c = config(r#"{"budgets":[{"id":"d","limit_tokens":1000000,"window":"day","output_cap":10}]}"#);
    let store = FakeStore::default();
    let w = who("x");
    let d = decide(
        &store,
        &Input {
            config: &c,
            budgets: &c.budget.budgets,
            route: CHAT,
            who: &w,
            facts: None,
            body: None,
            body_bytes: 4_000,
            deployment_model: None,
        },
        NOW,
    );
    let f = forward(d);
    assert!(f.new_body.is_none() && !f.usage_injected);
    let held = counters(&store, &c, "d", "");
    // 1000 prompt tokens plus the default 4096 output: the cap is not on the wire, so it
    // cannot bound the estimate.
    assert_eq!(held.reserved_tokens, 1_000 + 4_096);
    let _ = f.ticket.unwrap().settle(&store, &c.budget, &c.budget.budgets, &record(200, Some((1, 1))), NOW);
}

/// Many requests in flight against one hard budget, admitted and settled in an interleaved
/// order with CAS conflicts injected: with actual <= estimate, spend never passes the limit,
/// and spend equals the sum of the settled costs.
#[test]
fn concurrent_admission_never_overshoots_and_loses_nothing() {
    let c = config(r#"{"budgets":[{"id":"h","match":{"customer":"acme"},"limit_usd":"0.05","window":"day"}]}"#);
    let store = FakeStore::default();
    let body = br#"{"model":"gpt-4o","max_tokens":300,"messages":[{"role":"user","content":"hello there"}]}"#;
    let mut held: Vec<Ticket> = Vec::new();
    let (mut admitted, mut rejected, mut settled_cost) = (0u64, 0u64, 0u64);
    for i in 0..400u32 {
        store.inject_cas_conflicts.set(i % 4);
        match run(&store, &c, CHAT, "acme", body).verdict {
            Verdict::Forward(f) => {
                admitted += 1;
                held.push(f.ticket.unwrap());
            }
            Verdict::Reject { .. } => rejected += 1,
        }
        // Settle the oldest of up to 8 in flight.
        if (held.len() > 8 || i % 3 == 0) && !held.is_empty() {
            let t = held.remove(0);
            let r = record(200, Some((30, 100 + u64::from(i % 200))));
            settled_cost += r.cost.unwrap().0;
            let _ = t.settle(&store, &c.budget, &c.budget.budgets, &r, NOW);
        }
        let now = counters(&store, &c, "h", "acme");
        assert!(now.used_pico() <= 50_000_000_000, "step {i}: {now:?}");
    }
    for t in held.drain(..) {
        let r = record(200, Some((30, 100)));
        settled_cost += r.cost.unwrap().0;
        let _ = t.settle(&store, &c.budget, &c.budget.budgets, &r, NOW);
    }
    let end = counters(&store, &c, "h", "acme");
    assert_eq!((end.reserved_pico, end.inflight), (0, 0));
    assert_eq!(end.spent_pico, settled_cost, "spend equals the sum of settled costs");
    assert!(end.spent_pico <= 50_000_000_000);
    assert!(admitted > 10 && rejected > 10, "admitted {admitted}, rejected {rejected}");
}

#[test]
fn budget_metrics_apply_through_the_host() {
    let mut m = FakeMetrics::default();
    let updates = [
        admissions_metric("a", Outcome::SoftExceeded),
        utilization_metric("a", 1_234_567),
        telemetry::limits_pull_plan(false),
    ]
    .concat();
    assert_eq!(telemetry::apply(&updates, &mut m), 0);
    assert_eq!(m.value("budget=.=a;.;decision=.=soft_exceeded;.;tokenmeter_budget_admissions_total"), Some(1));
    assert_eq!(m.value("budget=.=a;.;tokenmeter_budget_utilization_ratio_permille"), Some(1234));
    assert_eq!(m.value(telemetry::METRIC_LIMITS_PULL_FAILURES), Some(1));
}

#[test]
fn the_budget_section_is_mounted_with_field_paths() {
    let c = config(r#"{"budgets":[{"id":"a","limit_usd":"2.5","window":"hour"}]}"#);
    assert_eq!(c.budget.budgets[0].limit_usd, Some(PicoUsd(2_500_000_000_000)));
    let e = Config::from_json(br#"{"budget":{"budgets":[{"id":"a","limt_usd":"1"}]}}"#).unwrap_err();
    assert_eq!(e.path(), Some("budget.budgets[0].limt_usd"), "{e}");
    let e = Config::from_json(br#"{"budget":{"budgets":[{"id":"a","match":{"team":"x"},"limit_usd":"1","window":"day"}]}}"#)
        .unwrap_err();
    assert_eq!(e.path(), Some("budget.budgets[0].match.team"), "{e}");
    let e = Config::from_json(br#"{"max_request_body_bytes":0}"#).unwrap_err();
    assert_eq!(e.path(), Some("max_request_body_bytes"));
    assert_eq!(Config::default().max_request_body_bytes, 768 * 1024);
}

#[test]
fn one_worker_pulls_per_interval() {
    let store = FakeStore::default();
    assert!(claim_pull(&store, NOW, 30_000), "first tick pulls");
    assert!(!claim_pull(&store, NOW + 1_000, 30_000), "another worker a second later does not");
    assert!(claim_pull(&store, NOW + 30_000, 30_000), "due again after the interval");
    store.inject_cas_conflicts.set(1);
    assert!(!claim_pull(&store, NOW + 61_000, 30_000), "lost the race: the winner pulls");
    assert!(claim_pull(&store, NOW + 61_001, 30_000));
    // A clock that went backwards does not lock pulls out.
    assert!(claim_pull(&store, NOW, 30_000));
}

/// Reserved tokens of budget `id` after deciding `body` on `route`, with the facts the
/// route's own request scanner read; `held` says whether the budget code sees the body
/// (a compressed body is metered decoded but never handed over).
fn reserved_for(c: &Config, id: &str, route: Route, body: &[u8], held: bool) -> (u64, bool) {
    let store = FakeStore::default();
    let verdict = verdict_in(&store, c, route, body, held);
    let rejected = matches!(verdict, Verdict::Reject { .. });
    (counters(&store, c, id, "").reserved_tokens, rejected)
}

/// The verdict on `body` sent on `route`, decided against `store` with the facts the route's
/// own request scanner read; `held` says whether the budget code sees the body.
fn verdict_in(store: &FakeStore, c: &Config, route: Route, body: &[u8], held: bool) -> Verdict {
    let mut scanner = crate::providers::RequestScanner::new(route.api);
    scanner.feed(body);
    let f = scanner.finish();
    let w = who("x");
    decide(
        store,
        &Input {
            config: c,
            budgets: &c.budget.budgets,
            route,
            who: &w,
            facts: Some(&f),
            body: held.then_some(body),
            body_bytes: body.len() as u64,
            deployment_model: None,
        },
        NOW,
    )
    .verdict
}

#[test]
fn the_estimate_takes_choices_and_output_caps_from_the_request_facts() {
    let prompt = |body: &[u8]| (body.len() as u64).div_ceil(4);
    // n = 4 under a 100-token cap reserves 400 output tokens: over a 300-token budget.
    let c = config(r#"{"budgets":[{"id":"t","limit_tokens":300,"window":"day","output_cap":100}]}"#);
    let body = br#"{"model":"gpt-4o","n":4,"messages":[]}"#;
    assert_eq!(reserved_for(&c, "t", CHAT, body, true), (0, true));
    let body = br#"{"model":"gpt-4o","n":2,"messages":[]}"#;
    // The cap was written (keys sorted), and the prompt is the rewritten body's.
    let sent = br#"{"max_completion_tokens":100,"messages":[],"model":"gpt-4o","n":2}"#;
    assert_eq!(reserved_for(&c, "t", CHAT, body, true), (prompt(sent) + 200, false));

    let c = config(r#"{"budgets":[{"id":"t","limit_tokens":100000,"window":"day"}]}"#);
    // A body the budget code never sees (compressed): its facts still count.
    let body = br#"{"model":"gpt-4o","n":3,"max_completion_tokens":50,"messages":[]}"#;
    assert_eq!(reserved_for(&c, "t", CHAT, body, false), (prompt(body) + 150, false));
    // Gemini: its own `generationConfig` bounds the output, candidates multiply it, and
    // without a bound the default is reserved (it used to reserve no output at all).
    let gemini = Route {
        provider: Provider::GcpGemini,
        operation: Operation::Chat,
        api: Api::GeminiGenerateContent,
    };
    let body = br#"{"contents":[],"generationConfig":{"maxOutputTokens":64,"candidateCount":2}}"#;
    assert_eq!(reserved_for(&c, "t", gemini, body, true), (prompt(body) + 128, false));
    let body = br#"{"contents":[]}"#;
    assert_eq!(reserved_for(&c, "t", gemini, body, true), (prompt(body) + 4_096, false));
    // Bedrock Converse and Ollama read theirs too; embeddings reserve the prompt alone.
    let converse = Route {
        provider: Provider::AwsBedrock,
        operation: Operation::Chat,
        api: Api::BedrockConverse,
    };
    let body = br#"{"messages":[],"inferenceConfig":{"maxTokens":512}}"#;
    assert_eq!(reserved_for(&c, "t", converse, body, true), (prompt(body) + 512, false));
    let ollama = Route {
        provider: Provider::Ollama,
        operation: Operation::Chat,
        api: Api::OllamaChat,
    };
    let body = br#"{"model":"llama3.2","messages":[],"options":{"num_predict":128}}"#;
    assert_eq!(reserved_for(&c, "t", ollama, body, true), (prompt(body) + 128, false));
    let embeddings = Route {
        provider: Provider::OpenAi,
        operation: Operation::Embeddings,
        api: Api::OpenAiEmbeddings,
    };
    let body = br#"{"model":"text-embedding-3-small","input":"hi","max_tokens":9}"#;
    assert_eq!(reserved_for(&c, "t", embeddings, body, true), (prompt(body), false));
}

/// Counts the reads that reach the store.
struct CountingStore {
    inner: FakeStore,
    gets: std::cell::Cell<u32>,
}

impl SharedStore for CountingStore {
    fn get(&self, key: &str) -> Result<Option<(Vec<u8>, crate::host::Cas)>, crate::host::HostError> {
        self.gets.set(self.gets.get() + 1);
        self.inner.get(key)
    }
    fn set(&self, key: &str, value: &[u8], cas: Option<crate::host::Cas>) -> Result<(), crate::host::HostError> {
        self.inner.set(key, value, cas)
    }
}

#[test]
fn the_utilisation_gauge_after_settling_reads_what_the_settlement_wrote_without_a_store_read() {
    let c = config(r#"{"budgets":[{"id":"acme-tok","match":{"customer":"acme"},"limit_tokens":100,"window":"day","output_cap":10}]}"#);
    let store = CountingStore { inner: FakeStore::default(), gets: std::cell::Cell::new(0) };
    let body = br#"{"model":"gpt-4o","messages":[]}"#;
    let f = facts(body);
    let w = who("acme");
    let input = Input {
        config: &c,
        budgets: &c.budget.budgets,
        route: CHAT,
        who: &w,
        facts: Some(&f),
        body: Some(body),
        body_bytes: body.len() as u64,
        deployment_model: None,
    };
    let ticket = match decide(&store, &input, NOW).verdict {
        Verdict::Forward(f) => f.ticket.unwrap(),
        Verdict::Reject { decision, .. } => panic!("rejected: {decision:?}"),
    };
    // A conflict makes the settlement read twice; the gauge must still not read again.
    store.inner.inject_cas_conflicts.set(1);
    store.gets.set(0);
    let s = ticket.settle(&store, &c.budget, &c.budget.budgets, &record(200, Some((20, 40))), NOW);
    assert!(s.report.errors.is_empty(), "{:?}", s.report.errors);
    assert_eq!(store.gets.get(), 2, "the settlement's two CAS reads, none for the gauge");
    // 60 of 100 tokens: what a fresh read of the store gives.
    assert_eq!(counters(&store.inner, &c, "acme-tok", "acme").spent_tokens, 60);
    assert_eq!(
        s.metrics,
        vec![MetricUpdate {
            kind: MetricKind::Gauge,
            name: "budget=.=acme-tok;.;tokenmeter_budget_utilization_ratio_permille".into(),
            delta: 600,
        }]
    );
}

fn decide_on(c: &Config, route: Route, body: &[u8]) -> Verdict {
    verdict_in(&FakeStore::default(), c, route, body, true)
}

#[test]
fn gemini_and_bedrock_get_their_own_caps_and_429_shapes() {
    let gemini = Route {
        provider: Provider::GcpGemini,
        operation: Operation::Chat,
        api: Api::GeminiGenerateContent,
    };
    let converse = Route {
        provider: Provider::AwsBedrock,
        operation: Operation::Chat,
        api: Api::BedrockConverse,
    };
    let invoke = Route {
        api: Api::BedrockInvoke,
        ..converse
    };
    // The cap is written in each API's own field.
    let c = config(r#"{"budgets":[{"id":"t","limit_tokens":100000,"window":"day","output_cap":100}]}"#);
    let Verdict::Forward(f) = decide_on(&c, gemini, br#"{"contents":[],"generationConfig":{"maxOutputTokens":5000}}"#) else {
        panic!("rejected")
    };
    assert_eq!(body_json(&f)["generationConfig"]["maxOutputTokens"], 100);
    let Verdict::Forward(f) = decide_on(&c, converse, br#"{"messages":[]}"#) else {
        panic!("rejected")
    };
    assert_eq!(body_json(&f)["inferenceConfig"]["maxTokens"], 100);
    // Rejections speak each SDK's own rate-limit shape.
    let c = config(r#"{"budgets":[{"id":"t","limit_tokens":10,"window":"day"}]}"#);
    let big = br#"{"contents":[],"generationConfig":{"maxOutputTokens":5000}}"#;
    let Verdict::Reject { rejection, .. } = decide_on(&c, gemini, big) else {
        panic!("allowed")
    };
    let v: serde_json::Value = serde_json::from_slice(&rejection.body).unwrap();
    assert_eq!(v["error"]["status"], "RESOURCE_EXHAUSTED");
    for route in [converse, invoke] {
        let Verdict::Reject { rejection, .. } = decide_on(&c, route, br#"{"messages":[],"max_tokens":5000}"#) else {
            panic!("allowed")
        };
        assert!(rejection
            .headers
            .iter()
            .any(|(k, v)| k == "x-amzn-errortype" && v == "ThrottlingException"));
    }
}
