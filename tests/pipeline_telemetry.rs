//! Issue-5 telemetry through the whole pipeline: timed callbacks into an `Exchange`, the
//! record, and the exact stats planned for it (GenAI histograms, responses by status class,
//! retries and their cost), plus the label cardinality guard under 10,000 random customers
//! and the `retry_headers` / `metrics.user_label` configuration.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing)]

use std::collections::{BTreeSet, HashMap};

use tokenmeter::config::Config;
use tokenmeter::host::fake::{FakeMetrics, FakeStore};
use tokenmeter::host::MetricKind;
use tokenmeter::meter::{Exchange, Record, RequestHead};
use tokenmeter::retry::RetrySource;
use tokenmeter::telemetry::{self, MetricUpdate, TelemetryState};

struct Head {
    path: &'static str,
    authority: &'static str,
    headers: HashMap<String, String>,
}

impl Head {
    fn anthropic(headers: &[(&str, &str)]) -> Self {
        Head {
            path: "/v1/messages",
            authority: "api.anthropic.com",
            headers: headers.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect(),
        }
    }
}

impl RequestHead for Head {
    fn path(&self) -> Option<String> {
        Some(self.path.to_string())
    }
    fn authority(&self) -> Option<String> {
        Some(self.authority.to_string())
    }
    fn method(&self) -> Option<String> {
        Some("POST".into())
    }
    fn header(&self, name: &str) -> Option<String> {
        self.headers.get(name).cloned()
    }
}

const STREAM_REQUEST: &str =
    r#"{"model":"claude-haiku-4-5","max_tokens":100,"stream":true,"messages":[{"role":"user","content":"Hi"}]}"#;
/// 11 events: message_start, content_block_start (empty text), then the first text delta.
/// Usage: 15 input, 21 output.
const STREAM: &str = include_str!("fixtures/anthropic/stream-basic.sse");
const JSON_REQUEST: &str = r#"{"model":"claude-haiku-4-5","max_tokens":100,"messages":[{"role":"user","content":"Hi"}]}"#;
const JSON_RESPONSE: &str = include_str!("fixtures/anthropic/basic.json");

fn sse_headers(name: &str) -> Option<String> {
    (name == "content-type").then(|| "text/event-stream; charset=utf-8".to_string())
}

fn json_headers(name: &str) -> Option<String> {
    (name == "content-type").then(|| "application/json".to_string())
}

/// The SSE events of the fixture, each with its blank-line terminator.
fn events(stream: &str) -> Vec<String> {
    stream.split_inclusive("\n\n").map(str::to_string).collect()
}

/// A stream timed like the shell does: start 10_000, headers 10_050, event `i` at
/// 10_100 + 10 i, finish 10 ms after the last event.
fn timed_stream(config: &Config, head: &Head) -> Record {
    let (mut ex, _) = Exchange::begin(config, head).unwrap();
    ex.set_start_time(10_000);
    ex.on_request_body(STREAM_REQUEST.as_bytes(), true);
    ex.on_response_headers_at(Some(200), &sse_headers, 10_050);
    let evs = events(STREAM);
    assert_eq!(evs.len(), 11);
    let last = evs.len() - 1;
    for (i, e) in evs.iter().enumerate() {
        ex.on_response_body_at(e.as_bytes(), i == last, 10_100 + 10 * i as u64);
    }
    ex.finish(10_100 + 10 * last as u64 + 10)
}

fn histogram<'a>(plan: &'a [MetricUpdate], metric: &str) -> Vec<(&'a str, u64)> {
    plan.iter()
        .filter(|u| u.kind == MetricKind::Histogram && u.name.ends_with(metric))
        .map(|u| (u.name.as_str(), u.delta))
        .collect()
}

#[test]
fn a_timed_stream_records_ttft_at_the_first_content_chunk() {
    let record = timed_stream(&Config::default(), &Head::anthropic(&[]));
    assert!(record.streamed);
    assert_eq!(record.usage.output_tokens, 21);
    // message_start and the empty content_block_start carry no generated text: event 2 does.
    assert_eq!(record.time_to_first_token_ms, Some(120));
    assert_eq!(record.time_to_response_headers_ms, Some(50));
    assert_eq!(record.duration_ms, Some(210));
    assert_eq!(telemetry::time_per_output_token_ms(&record), Some((210 - 120) / 20));
}

#[test]
fn a_timed_stream_plans_exact_histogram_samples_with_the_canonical_model() {
    let record = timed_stream(&Config::default(), &Head::anthropic(&[]));
    let model = record.priced_model.clone().expect("claude-haiku-4-5 has a built-in price");
    let plan = TelemetryState::default().plan(&record);
    let op = format!("gen_ai_operation_name=.=chat;.;gen_ai_provider_name=.=anthropic;.;gen_ai_request_model=.={model};.;");
    assert_eq!(
        histogram(&plan, "gen_ai_client_token_usage"),
        [
            (format!("gen_ai_token_type=.=input;.;{op}gen_ai_client_token_usage").as_str(), 15),
            (format!("gen_ai_token_type=.=output;.;{op}gen_ai_client_token_usage").as_str(), 21),
        ]
    );
    assert_eq!(histogram(&plan, "gen_ai_client_operation_duration_ms"), [(format!("{op}gen_ai_client_operation_duration_ms").as_str(), 210)]);
    assert_eq!(histogram(&plan, "gen_ai_server_time_to_first_token_ms"), [(format!("{op}gen_ai_server_time_to_first_token_ms").as_str(), 120)]);
    assert_eq!(histogram(&plan, "gen_ai_server_time_per_output_token_ms"), [(format!("{op}gen_ai_server_time_per_output_token_ms").as_str(), 4)]);
    let base = format!("gen_ai_provider_name=.=anthropic;.;gen_ai_request_model=.={model};.;feature=.=unknown;.;customer=.=unknown;.;");
    assert!(plan.iter().any(|u| u.name == format!("{base}http_status_class=.=2xx;.;tokenmeter_responses_total") && u.delta == 1));
    let mut metrics = FakeMetrics::default();
    assert_eq!(telemetry::apply(&plan, &mut metrics), 0);
}

/// Feeds the stream in the given pieces, piece `i` at time `i`; returns the TTFT.
fn ttft_of_pieces(pieces: &[&[u8]]) -> Option<u64> {
    let (mut ex, _) = Exchange::begin(&Config::default(), &Head::anthropic(&[])).unwrap();
    ex.set_start_time(0);
    ex.on_request_body(STREAM_REQUEST.as_bytes(), true);
    ex.on_response_headers_at(Some(200), &sse_headers, 0);
    for (i, piece) in pieces.iter().enumerate() {
        ex.on_response_body_at(piece, i + 1 == pieces.len(), i as u64);
    }
    ex.finish(pieces.len() as u64).time_to_first_token_ms
}

#[test]
fn the_first_token_is_the_chunk_that_completes_the_first_content_at_any_split() {
    let bytes = STREAM.as_bytes();
    let open = STREAM.find(r#""text":"Hi"#).unwrap() + r#""text":""#.len();
    let close = open + STREAM[open..].find('"').unwrap();
    // Byte by byte: the content counts once its string is read, at its closing quote.
    let pieces: Vec<&[u8]> = bytes.chunks(1).collect();
    assert_eq!(ttft_of_pieces(&pieces), Some(close as u64));
    // Split in two anywhere: the first piece is the first token only if it holds the string.
    for split in [open - 1, open, open + 1, close, close + 1, close + 2] {
        let (a, b) = bytes.split_at(split);
        let expected = if split > close { 0 } else { 1 };
        assert_eq!(ttft_of_pieces(&[a, b]), Some(expected), "split at {split}");
    }
}

#[test]
fn untimed_callbacks_still_work_and_record_no_stream_timings() {
    let (mut ex, _) = Exchange::begin(&Config::default(), &Head::anthropic(&[])).unwrap();
    ex.set_start_time(5_000);
    ex.on_request_body(STREAM_REQUEST.as_bytes(), true);
    ex.on_response_headers(Some(200), &sse_headers);
    ex.on_response_body(STREAM.as_bytes(), true);
    let record = ex.finish(5_300);
    assert_eq!(record.usage.output_tokens, 21);
    assert_eq!((record.time_to_first_token_ms, record.time_to_response_headers_ms), (None, None));
    assert_eq!(record.duration_ms, Some(300));
    let plan = TelemetryState::default().plan(&record);
    assert_eq!(histogram(&plan, "gen_ai_client_operation_duration_ms").len(), 1);
    assert!(histogram(&plan, "gen_ai_server_time_to_first_token_ms").is_empty());
    assert!(histogram(&plan, "gen_ai_server_time_per_output_token_ms").is_empty());
}

#[test]
fn a_non_stream_has_no_ttft_even_when_timed() {
    let (mut ex, _) = Exchange::begin(&Config::default(), &Head::anthropic(&[])).unwrap();
    ex.set_start_time(0);
    ex.on_request_body(JSON_REQUEST.as_bytes(), true);
    ex.on_response_headers_at(Some(200), &json_headers, 700);
    ex.on_response_body_at(JSON_RESPONSE.as_bytes(), true, 800);
    let record = ex.finish(801);
    assert!(!record.streamed);
    assert_eq!(record.time_to_first_token_ms, None);
    assert_eq!(record.duration_ms, Some(801));
    let plan = TelemetryState::default().plan(&record);
    assert!(histogram(&plan, "gen_ai_server_time_to_first_token_ms").is_empty());
    assert_eq!(histogram(&plan, "gen_ai_client_operation_duration_ms")[0].1, 801);
}

#[test]
fn an_error_stream_has_no_ttft_and_counts_as_its_status_class() {
    let (mut ex, _) = Exchange::begin(&Config::default(), &Head::anthropic(&[])).unwrap();
    ex.set_start_time(0);
    ex.on_request_body(STREAM_REQUEST.as_bytes(), true);
    ex.on_response_headers_at(Some(529), &json_headers, 30);
    ex.on_response_body_at(br#"{"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}"#, true, 31);
    let record = ex.finish(32);
    assert_eq!(record.time_to_first_token_ms, None);
    let plan = TelemetryState::default().plan(&record);
    let responses: Vec<&str> = plan.iter().filter(|u| u.name.ends_with("tokenmeter_responses_total")).map(|u| u.name.as_str()).collect();
    assert_eq!(responses.len(), 1);
    assert!(responses[0].contains(";.;http_status_class=.=5xx;.;"), "{}", responses[0]);
    // A reset before any response is `none`.
    let (mut ex, _) = Exchange::begin(&Config::default(), &Head::anthropic(&[])).unwrap();
    let plan = TelemetryState::default().plan(&ex.finish(0));
    assert!(plan.iter().any(|u| u.name.contains("http_status_class=.=none;.;tokenmeter_responses_total")));
}

#[test]
fn retries_are_read_from_request_headers() {
    type Case<'a> = (&'a [(&'a str, &'a str)], Option<RetrySource>);
    let cases: [Case; 6] = [
        (&[], None),
        (&[("x-stainless-retry-count", "0")], None),
        (&[("x-stainless-retry-count", "2")], Some(RetrySource::Client)),
        (&[("x-envoy-attempt-count", "1")], None),
        (&[("x-envoy-attempt-count", "2")], Some(RetrySource::Proxy)),
        (&[("x-envoy-attempt-count", "2"), ("x-stainless-retry-count", "1")], Some(RetrySource::Client)),
    ];
    for (headers, expected) in cases {
        let (ex, _) = Exchange::begin(&Config::default(), &Head::anthropic(headers)).unwrap();
        assert_eq!(ex.retry(), expected, "{headers:?}");
    }
}

#[test]
fn configured_retry_headers_add_to_the_built_in_ones() {
    let config = Config::from_json(
        br#"{"retry_headers": [{"header": "X-Retry-Attempt", "min_value": 3, "source": "proxy"}, {"header": "x-my-retry"}]}"#,
    )
    .unwrap();
    let retry = |headers: &[(&str, &str)]| Exchange::begin(&config, &Head::anthropic(headers)).unwrap().0.retry();
    assert_eq!(retry(&[("x-retry-attempt", "2")]), None);
    assert_eq!(retry(&[("x-retry-attempt", "3")]), Some(RetrySource::Proxy));
    assert_eq!(retry(&[("x-my-retry", "1")]), Some(RetrySource::Client), "defaults: min_value 1, source client");
    assert_eq!(retry(&[("x-stainless-retry-count", "1")]), Some(RetrySource::Client), "built-ins still apply");
}

#[test]
fn a_retried_stream_counts_once_with_its_cost() {
    let record = timed_stream(&Config::default(), &Head::anthropic(&[("x-stainless-retry-count", "1"), ("x-llm-feature", "search")]));
    assert_eq!(record.retry, Some(RetrySource::Client));
    let mut metrics = FakeMetrics::default();
    let mut state = TelemetryState::default();
    let plan = state.plan(&record);
    assert_eq!(telemetry::apply(&plan, &mut metrics), 0);
    let retries: Vec<&MetricUpdate> = plan.iter().filter(|u| u.name.contains("retry_source=")).collect();
    assert_eq!(retries.len(), 2);
    assert!(retries[0].name.ends_with(";.;feature=.=search;.;customer=.=unknown;.;retry_source=.=client;.;tokenmeter_retries_total"));
    assert_eq!(retries[0].delta, 1);
    let cost_nanos = record.cost.unwrap().0 / 1000;
    assert!(cost_nanos > 0);
    assert!(retries[1].name.ends_with("retry_source=.=client;.;tokenmeter_retry_cost_nanousd_total"));
    assert_eq!(retries[1].delta, cost_nanos);
}

#[test]
fn retry_header_errors_name_the_field() {
    let cases: [(&[u8], &str); 7] = [
        (br#"{"retry_headers": {}}"#, "retry_headers: expected an array, got an object"),
        (br#"{"retry_headers": [{}]}"#, "retry_headers[0].header: is required"),
        (br#"{"retry_headers": [{"header": "a b"}]}"#, "retry_headers[0].header: `a b` is not a valid header name"),
        (br#"{"retry_headers": [{"header": "x", "min_value": 0}]}"#, "retry_headers[0].min_value: must be greater than 0"),
        (br#"{"retry_headers": [{"header": "x"}, {"header": "y", "source": "server"}]}"#, "retry_headers[1].source: unknown source `server`, expected one of client, proxy"),
        (br#"{"retry_headers": [{"header": "x", "sourse": "proxy"}]}"#, "retry_headers[0].sourse: unknown field `sourse`"),
        (br#"{"metrics": {"user_label": "yes"}}"#, "metrics.user_label: expected a boolean, got a string"),
    ];
    for (json, expected) in cases {
        let e = Config::from_json(json).unwrap_err().to_string();
        assert!(e.starts_with(expected), "{e}");
    }
    let too_many = format!(r#"{{"retry_headers": [{}]}}"#, vec![r#"{"header": "x"}"#; 17].join(","));
    assert_eq!(Config::from_json(too_many.as_bytes()).unwrap_err().path(), Some("retry_headers"));
    let doc = include_str!("../docs/configuration.md");
    assert!(doc.contains("retry_headers[0].source: unknown source `server`, expected one of client, proxy"));
}

/// xorshift64*: a fixed-seed generator, so the test is random-looking but repeatable.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    /// A customer id with hostile characters now and then (`;`, `=`, spaces, unicode).
    fn customer(&mut self) -> String {
        let n = self.next();
        match n % 7 {
            0 => format!("cust;.;x=.={n:x}"),
            1 => format!("Cüstomer {n}"),
            _ => format!("cust-{n:016x}"),
        }
    }
}

fn customer_of(name: &str) -> Option<&str> {
    let rest = name.split("customer=.=").nth(1)?;
    rest.split(";.;").next()
}

fn run_customers(states: &mut [TelemetryState], store: Option<&FakeStore>) -> (BTreeSet<String>, FakeMetrics, u64) {
    let template = timed_stream(&Config::default(), &Head::anthropic(&[]));
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let mut metrics = FakeMetrics::default();
    let mut labels = BTreeSet::new();
    let mut others = 0u64;
    for i in 0..10_000usize {
        let mut record = template.clone();
        record.attribution.customer = rng.customer();
        let state = &mut states[i % states.len()];
        let plan = match store {
            Some(store) => state.plan_shared(&record, store),
            None => state.plan(&record),
        };
        assert_eq!(telemetry::apply(&plan, &mut metrics), 0, "no zero increments, no failures");
        let requests = plan.iter().find(|u| u.name.ends_with("tokenmeter_requests_total")).unwrap();
        let customer = customer_of(&requests.name).unwrap().to_string();
        assert!(customer.chars().all(|c| c.is_ascii_alphanumeric() || "_-:/.@".contains(c)), "{customer}");
        if customer == "other" {
            others += 1;
        }
        labels.insert(customer);
    }
    (labels, metrics, others)
}

#[test]
fn ten_thousand_random_customers_stay_within_the_cap_per_vm() {
    let config = Config::from_json(br#"{"metrics": {"max_label_values": 50}}"#).unwrap();
    let mut states = [TelemetryState::new(&config)];
    let (labels, metrics, others) = run_customers(&mut states, None);
    assert_eq!(labels.len(), 51, "50 admitted customers + other");
    assert!(labels.contains("other"));
    assert!(others > 9_900);
    assert_eq!(metrics.value("dimension=.=customer;.;tokenmeter_label_overflow_total"), Some(others as i64));
    assert_eq!(states[0].guard.overflow_count(tokenmeter::attribution::Dimension::Customer), others);
    // Only the customer overflowed.
    assert_eq!(metrics.value("dimension=.=feature;.;tokenmeter_label_overflow_total"), None);
    // Every series of every metric is bounded by the cap: count the distinct requests series.
    let series = metrics.names.iter().filter(|(_, n)| n.ends_with("tokenmeter_requests_total")).count();
    assert_eq!(series, 51);
}

#[test]
fn ten_thousand_random_customers_stay_within_the_cap_across_vms() {
    // Two worker VMs sharing one process store: the cap is per process, not per VM.
    let config = Config::from_json(br#"{"metrics": {"max_label_values": 50}}"#).unwrap();
    let store = FakeStore::default();
    let mut states = [TelemetryState::new(&config), TelemetryState::new(&config)];
    let (labels, metrics, others) = run_customers(&mut states, Some(&store));
    assert_eq!(labels.len(), 51);
    assert_eq!(metrics.value("dimension=.=customer;.;tokenmeter_label_overflow_total"), Some(others as i64));
}

#[test]
fn users_become_labels_only_when_configured() {
    let head = Head::anthropic(&[("x-llm-user", "alice@example.com"), ("x-llm-customer", "acme")]);
    let record = timed_stream(&Config::default(), &head);
    assert_eq!(record.attribution.user, "alice@example.com");
    let plan = TelemetryState::new(&Config::default()).plan(&record);
    assert!(plan.iter().all(|u| !u.name.contains("alice") && !u.name.contains("user=")));
    let config = Config::from_json(br#"{"metrics": {"user_label": true}}"#).unwrap();
    let plan = TelemetryState::new(&config).plan(&record);
    let counters: Vec<&str> = plan.iter().filter(|u| u.kind == MetricKind::Counter).map(|u| u.name.as_str()).collect();
    for name in &counters {
        if name.contains("customer=.=") {
            assert!(name.contains(";.;customer=.=acme;.;user=.=alice@example.com;.;"), "{name}");
        }
    }
    assert!(counters.iter().any(|n| n.ends_with("user=.=alice@example.com;.;tokenmeter_requests_total")));
}
