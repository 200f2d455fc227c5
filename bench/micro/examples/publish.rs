//! Where a metered 1 KB chat request spends the filter's own CPU, natively, phase by phase:
//! begin (route, attribution), request body, response, finish (pricing), filter state (incl.
//! `llm.record`), metric plan and applying it to a host that does nothing. Host calls
//! themselves are not in these figures (they are what Envoy charges on top):
//!   cargo run --release --example publish [iterations]
use std::collections::HashMap;
use std::hint::black_box;
use std::time::Instant;

use tokenmeter::config::Config;
use tokenmeter::host::fake::FakeStore;
use tokenmeter::host::{HostError, MetricId, MetricKind, Metrics};
use tokenmeter::meter::{Exchange, RequestHead};
use tokenmeter::telemetry::{self, TelemetryState};
use tokenmeter_micro as synth;

struct Head(HashMap<&'static str, &'static str>);

impl RequestHead for Head {
    fn header(&self, name: &str) -> Option<String> {
        self.0.get(name).map(|v| v.to_string())
    }
}

/// Counts calls like a host would receive them, with a name -> id map like the shell's.
#[derive(Default)]
struct NullMetrics {
    ids: HashMap<String, MetricId>,
    calls: u64,
}

impl Metrics for NullMetrics {
    fn define(&mut self, _kind: MetricKind, name: &str) -> Result<MetricId, HostError> {
        if let Some(id) = self.ids.get(name) {
            return Ok(*id);
        }
        let id = self.ids.len() as MetricId;
        self.ids.insert(name.to_string(), id);
        Ok(id)
    }
    fn increment(&mut self, _id: MetricId, _delta: i64) -> Result<(), HostError> {
        self.calls += 1;
        Ok(())
    }
    fn record(&mut self, _id: MetricId, _value: u64) -> Result<(), HostError> {
        self.calls += 1;
        Ok(())
    }
}

fn main() {
    let n: u32 = std::env::args().nth(1).and_then(|s| s.parse().ok()).unwrap_or(200_000);
    let config = Config::from_json(b"{}").expect("config");
    let head = Head(HashMap::from([
        (":path", "/v1/chat/completions"),
        (":authority", "api.openai.com"),
        (":method", "POST"),
        ("content-type", "application/json"),
        ("x-llm-feature", "bench"),
        ("x-llm-customer", "acme"),
    ]));
    let req = br#"{"model":"gpt-4o-mini","messages":[{"role":"user","content":"hi"}]}"#.to_vec();
    let body = synth::chat_json(1024);
    let resp_header = |name: &str| (name == "content-type").then(|| "application/json".to_string());
    let mut state = TelemetryState::new(&config);
    let store = FakeStore::default();
    let mut metrics = NullMetrics::default();
    let mut t = [0u128; 7];
    let mut sink = 0usize;
    for i in 0..n {
        let t0 = Instant::now();
        let Some((mut ex, _edits)) = Exchange::begin(&config, black_box(&head)) else {
            panic!("not metered")
        };
        let t1 = Instant::now();
        ex.on_request_body(black_box(&req), true);
        let t2 = Instant::now();
        ex.on_response_headers_at(Some(200), &resp_header, 1000);
        ex.on_response_body_at(black_box(&body), true, 1001 + u64::from(i % 7));
        let t3 = Instant::now();
        let record = ex.finish(1010);
        let t4 = Instant::now();
        let fs = telemetry::filter_state(&record);
        let t5 = Instant::now();
        let plan = state.plan_shared(&record, &store);
        let t6 = Instant::now();
        telemetry::apply(&plan, &mut metrics);
        let t7 = Instant::now();
        sink += fs.len() + plan.len();
        for (slot, d) in t.iter_mut().zip([t1 - t0, t2 - t1, t3 - t2, t4 - t3, t5 - t4, t6 - t5, t7 - t6]) {
            *slot += d.as_nanos();
        }
    }
    let names = ["begin", "request body", "response", "finish", "filter_state", "metric plan", "apply"];
    let total: u128 = t.iter().sum();
    for (name, ns) in names.iter().zip(t) {
        println!("{name:14} {:8.0} ns/request", ns as f64 / f64::from(n));
    }
    println!("{:14} {:8.0} ns/request ({} host metric calls/request, sink {sink})", "total",
             total as f64 / f64::from(n), metrics.calls / u64::from(n));
}
