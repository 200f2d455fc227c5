//! The whole per-request pipeline (`meter::Exchange`) and what it publishes
//! (`telemetry::filter_state`, `record_json`, `TelemetryState::plan`).
//!
//! The selector picks the route (OpenAI chat/responses/embeddings/completions, Anthropic
//! messages, an Azure deployment, an OpenAI path without a response content type) and whether
//! the response is gzip-compressed by the harness; the body is the response body, its first
//! bytes also the `x-llm-feature` header. Checks:
//! - whole and split feeding of the response body give the same `Record`; `finish` is
//!   idempotent;
//! - a cost is only ever present for reported usage with a priced model, never a made-up $0;
//! - filter state: every contract key once, token counts plain decimal integers, the cost
//!   empty or a 9-place decimal, the usage source one of the three names, no value with a
//!   line break, and `llm.record` a JSON object;
//! - metrics: only the telemetry module's metric names, no zero counter increments, and every
//!   embedded tag value is label-safe, so no input can forge the `;.;` / `=.=` delimiters.
#![no_main]

use std::io::Write as _;

use libfuzzer_sys::fuzz_target;
use tokenmeter::config::Config;
use tokenmeter::host::MetricKind;
use tokenmeter::meter::{Exchange, Record, RequestHead};
use tokenmeter::telemetry::{
    filter_state, TelemetryState, FILTER_STATE_KEYS, KEY_COST_SOURCE, KEY_COST_USD, KEY_RECORD,
    KEY_USAGE_SOURCE,
};
use tokenmeter::telemetry::{
    METRIC_COST_NANOUSD, METRIC_LABEL_OVERFLOW, METRIC_OPERATION_DURATION_MS, METRIC_REQUESTS,
    METRIC_RESPONSES, METRIC_RETRIES, METRIC_RETRY_COST_NANOUSD, METRIC_TIME_PER_OUTPUT_TOKEN_MS,
    METRIC_TIME_TO_FIRST_TOKEN_MS, METRIC_TOKENS, METRIC_TOKEN_USAGE, METRIC_UNPRICED,
    METRIC_USAGE_ESTIMATED, METRIC_USAGE_MISSING,
};
use tokenmeter::usage::{CostSource, UsageSource};

/// The per-request metrics a record can produce (names are the telemetry constants).
const KNOWN_METRICS: [&str; 14] = [
    METRIC_REQUESTS,
    METRIC_TOKENS,
    METRIC_COST_NANOUSD,
    METRIC_USAGE_MISSING,
    METRIC_USAGE_ESTIMATED,
    METRIC_UNPRICED,
    METRIC_LABEL_OVERFLOW,
    METRIC_RESPONSES,
    METRIC_RETRIES,
    METRIC_RETRY_COST_NANOUSD,
    METRIC_TOKEN_USAGE,
    METRIC_OPERATION_DURATION_MS,
    METRIC_TIME_TO_FIRST_TOKEN_MS,
    METRIC_TIME_PER_OUTPUT_TOKEN_MS,
];
use tokenmeter_fuzz::SplitInput;

struct Head {
    path: &'static str,
    authority: &'static str,
    headers: Vec<(&'static str, String)>,
}

impl RequestHead for Head {
    fn path(&self) -> Option<String> {
        Some(self.path.to_owned())
    }
    fn authority(&self) -> Option<String> {
        Some(self.authority.to_owned())
    }
    fn method(&self) -> Option<String> {
        Some("POST".to_owned())
    }
    fn header(&self, name: &str) -> Option<String> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.clone())
    }
}

const ROUTES: [(&str, &str, &str); 7] = [
    (
        "/v1/chat/completions",
        "api.openai.com",
        r#"{"model":"gpt-4o-mini","stream":true,"stream_options":{"include_usage":true}}"#,
    ),
    (
        "/v1/responses",
        "api.openai.com",
        r#"{"model":"gpt-5","max_output_tokens":100}"#,
    ),
    (
        "/v1/embeddings",
        "api.openai.com",
        r#"{"model":"text-embedding-3-small","input":"hi"}"#,
    ),
    (
        "/v1/completions",
        "api.openai.com",
        r#"{"model":"gpt-3.5-turbo-instruct","prompt":"hi"}"#,
    ),
    (
        "/v1/messages",
        "api.anthropic.com",
        r#"{"model":"claude-sonnet-4-5","max_tokens":1024,"stream":true}"#,
    ),
    (
        "/openai/deployments/prod-4o/chat/completions?api-version=2024-10-21",
        "x.openai.azure.com",
        r#"{"messages":[]}"#,
    ),
    (
        "/v1/chat/completions",
        "api.openai.com",
        r#"{"model":"gpt-4o"}"#,
    ),
];

fn run(
    config: &Config,
    route: usize,
    gzip: bool,
    feature: &str,
    chunks: &[&[u8]],
) -> Option<Record> {
    let (path, authority, request) = ROUTES[route];
    let head = Head {
        path,
        authority,
        headers: vec![
            ("x-llm-feature", feature.to_owned()),
            ("x-llm-customer", "acme;.;customer=.=evil".to_owned()),
            ("content-type", "application/json".to_owned()),
        ],
    };
    let (mut exchange, _edits) = Exchange::begin(config, &head)?;
    exchange.set_start_time(1_000);
    exchange.on_request_body(request.as_bytes(), true);
    let sse = chunks
        .iter()
        .flat_map(|c| c.iter())
        .find(|b| !b.is_ascii_whitespace())
        != Some(&b'{');
    let content_type = match (route, sse) {
        (6, _) => None,
        (_, true) => Some("text/event-stream"),
        (_, false) => Some("application/json"),
    };
    exchange.on_response_headers(Some(200), &|name: &str| match name {
        "content-type" => content_type.map(str::to_owned),
        "content-encoding" if gzip => Some("gzip".to_owned()),
        _ => None,
    });
    for (i, chunk) in chunks.iter().enumerate() {
        exchange.on_response_body(chunk, i + 1 == chunks.len());
    }
    let record = exchange.finish(2_500);
    exchange.on_response_body(b"{}", true);
    assert_eq!(exchange.finish(9_999), record, "finish is not idempotent");
    Some(record)
}

fn gzip(body: &[u8]) -> Vec<u8> {
    let mut out = vec![0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 0xff];
    out.extend_from_slice(&miniz_oxide::deflate::compress_to_vec(body, 1));
    out.write_all(&crc32fast::hash(body).to_le_bytes())
        .expect("vec");
    out.write_all(&(body.len() as u32).to_le_bytes())
        .expect("vec");
    out
}

fn label_safe(value: &str) -> bool {
    !value.is_empty()
        && value
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"_-:/.@".contains(&b))
}

fuzz_target!(|data: &[u8]| {
    let input = SplitInput::parse(data);
    let route = usize::from(input.selector & 7) % ROUTES.len();
    let gzipped = input.selector & 8 != 0;
    let feature = String::from_utf8_lossy(&input.body[..input.body.len().min(24)]).into_owned();
    let config = Config::default();

    let compressed;
    let (body, chunks): (&[u8], Vec<&[u8]>) = if gzipped {
        compressed = gzip(input.body);
        let sizes: Vec<u8> = input
            .chunks()
            .iter()
            .map(|c| c.len().min(255) as u8)
            .collect();
        (
            &compressed,
            tokenmeter_fuzz::split_cycling(&compressed, &sizes),
        )
    } else {
        (input.body, input.chunks())
    };
    let Some(whole) = run(&config, route, gzipped, &feature, &[body]) else {
        return;
    };
    let split = run(&config, route, gzipped, &feature, &chunks).expect("same head, same route");
    assert_eq!(whole, split, "split feeding changed the record");

    assert_eq!(
        whole.cost.is_some(),
        whole.cost_source.is_some(),
        "a cost without a source or a source without a cost"
    );
    if whole.cost_source == Some(CostSource::PriceTable) {
        // Reported usage is priced, and so is an estimate; missing usage never is. (A cost
        // the provider reported needs neither usage nor a price.)
        assert_ne!(
            whole.usage_source,
            UsageSource::Missing,
            "cost without usage"
        );
        assert!(whole.priced_model.is_some(), "cost without a priced model");
    }

    let state = filter_state(&whole);
    let keys: Vec<&str> = state.iter().map(|(k, _)| *k).collect();
    assert_eq!(
        keys, FILTER_STATE_KEYS,
        "filter state keys differ from the contract"
    );
    for (key, value) in &state {
        assert!(
            !value.contains(['\n', '\r']),
            "{key} holds a line break: {value:?}"
        );
        if key.starts_with("gen_ai.usage.") {
            assert!(
                value.parse::<u64>().is_ok(),
                "{key} = {value:?} is not a count"
            );
        }
    }
    let get = |k: &str| {
        &state
            .iter()
            .find(|(key, _)| *key == k)
            .expect("key present")
            .1
    };
    let cost = get(KEY_COST_USD);
    if let Some((units, nanos)) = cost.split_once('.') {
        assert!(
            !units.is_empty() && units.bytes().all(|b| b.is_ascii_digit()),
            "cost {cost:?}"
        );
        assert!(
            nanos.len() == 9 && nanos.bytes().all(|b| b.is_ascii_digit()),
            "cost {cost:?}"
        );
    } else {
        assert!(cost.is_empty(), "cost {cost:?}");
        assert!(whole.cost.is_none());
    }
    assert!(["reported", "estimated", "missing"].contains(&get(KEY_USAGE_SOURCE).as_str()));
    assert!(["provider", "price_table", ""].contains(&get(KEY_COST_SOURCE).as_str()));
    let record: serde_json::Value =
        serde_json::from_str(get(KEY_RECORD)).expect("llm.record is not JSON");
    assert!(record.is_object(), "llm.record is not an object");

    let mut telemetry = TelemetryState::new(&config);
    for update in telemetry.plan(&whole) {
        // Envoy rejects a counter increment of 0; histograms may record a 0 ms duration.
        if update.kind == MetricKind::Counter {
            assert!(update.delta > 0, "zero increment of {}", update.name);
        }
        let mut parts: Vec<&str> = update.name.split(";.;").collect();
        let metric = parts.pop().expect("metric name");
        assert!(
            KNOWN_METRICS.contains(&metric),
            "metric {metric:?} is not a telemetry constant"
        );
        for tag in parts {
            let (name, value) = tag.split_once("=.=").expect("tag has a =.= separator");
            assert!(
                name.bytes().all(|b| b.is_ascii_lowercase() || b == b'_'),
                "tag name {name:?}"
            );
            assert!(label_safe(value), "tag value {value:?} in {}", update.name);
        }
    }
});
