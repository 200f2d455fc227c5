//! End-to-end tests of `meter::Exchange`: request head in, record, filter state and metric
//! plan out, through a fake request head the way the shell drives it.
//!
//! These run the real providers, pricing and decoder through the Exchange state machine.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing)]

use std::collections::HashMap;

use miniz_oxide::deflate::{compress_to_vec, compress_to_vec_zlib};
use tokenmeter::attribution::CardinalityGuard;
use tokenmeter::config::Config;
use tokenmeter::host::fake::FakeMetrics;
use tokenmeter::meter::{Exchange, Record, RequestEdits, RequestHead};
use tokenmeter::providers::{Api, Operation, Provider};
use tokenmeter::telemetry::{self, CostCarry};
use tokenmeter::usage::UsageSource;

/// A request head as the shell would present it (header names lowercase, like Envoy).
struct Head {
    path: &'static str,
    authority: &'static str,
    headers: HashMap<&'static str, &'static str>,
}

impl Head {
    fn new(path: &'static str, headers: &[(&'static str, &'static str)]) -> Self {
        Head { path, authority: "api.openai.com", headers: headers.iter().copied().collect() }
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
        Some("POST".to_string())
    }
    fn header(&self, name: &str) -> Option<String> {
        self.headers.get(name).map(|v| v.to_string())
    }
}

const CHAT_REQUEST: &str = r#"{"model":"gpt-4o-mini","max_tokens":100,"messages":[{"role":"user","content":"Hello"}]}"#;

/// An OpenAI chat completion (trimmed from a recorded response).
const CHAT_RESPONSE: &str = r#"{
  "id": "chatcmpl-C3kBOLGARFj2WJrm5MRyuTiK4u6eF",
  "object": "chat.completion",
  "created": 1755008546,
  "model": "gpt-4o-mini-2024-07-18",
  "choices": [{"index": 0, "message": {"role": "assistant", "content": "Hi!"}, "finish_reason": "stop"}],
  "usage": {
    "prompt_tokens": 2006, "completion_tokens": 300, "total_tokens": 2306,
    "prompt_tokens_details": {"cached_tokens": 1920, "audio_tokens": 0},
    "completion_tokens_details": {"reasoning_tokens": 192, "audio_tokens": 0}
  },
  "service_tier": "default"
}"#;

/// Routes the chat path explicitly, so these tests do not depend on path detection.
fn routed_config(extra: &str) -> Config {
    let json = format!(
        r#"{{"routes": [{{"path_prefix": "/v1/chat/completions", "api": "openai.chat_completions"}}]{extra}}}"#
    );
    Config::from_json(json.as_bytes()).unwrap()
}

fn begin(config: &Config, head: &Head) -> (Exchange, RequestEdits) {
    Exchange::begin(config, head).expect("metered")
}

/// Drives a whole exchange, response body split into `chunk`-sized pieces.
fn run(config: &Config, head: &Head, request: &[u8], response_headers: &[(&str, &str)], response: &[u8], chunk: usize) -> Record {
    let (mut ex, _) = begin(config, head);
    ex.set_start_time(1_000);
    ex.on_request_body(request, true);
    let headers: HashMap<String, String> = response_headers.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
    ex.on_response_headers(Some(200), &|name| headers.get(name).cloned());
    let pieces: Vec<&[u8]> = response.chunks(chunk.max(1)).collect();
    for (i, piece) in pieces.iter().enumerate() {
        ex.on_response_body(piece, i + 1 == pieces.len());
    }
    if pieces.is_empty() {
        ex.on_response_body(&[], true);
    }
    ex.finish(1_250)
}

fn gzip(data: &[u8]) -> Vec<u8> {
    let mut out = vec![0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 3];
    out.extend_from_slice(&compress_to_vec(data, 6));
    out.extend_from_slice(&crc32fast::hash(data).to_le_bytes());
    out.extend_from_slice(&(data.len() as u32).to_le_bytes());
    out
}

#[test]
fn a_route_override_meters_the_request_and_strips_accept_encoding() {
    let config = routed_config("");
    let head = Head::new(
        "/v1/chat/completions",
        &[("accept-encoding", "gzip, deflate"), ("x-llm-feature", "search"), ("x-llm-customer", "acme"), ("x-llm-user", "alice")],
    );
    let (ex, edits) = begin(&config, &head);
    assert_eq!(edits.remove_headers, vec!["accept-encoding".to_string()]);
    assert!(edits.set_headers.is_empty());
    assert_eq!(ex.route().api, Api::OpenAiChatCompletions);
    assert_eq!((ex.route().provider, ex.route().operation), (Provider::OpenAi, Operation::Chat));
    assert_eq!((ex.attribution().feature.as_str(), ex.attribution().customer.as_str()), ("search", "acme"));
    assert_eq!(ex.attribution().user, "alice");
}

#[test]
fn accept_encoding_is_kept_when_configured_or_absent() {
    let config = routed_config(r#", "strip_accept_encoding": false"#);
    let head = Head::new("/v1/chat/completions", &[("accept-encoding", "gzip")]);
    assert_eq!(begin(&config, &head).1, RequestEdits::default());
    let config = routed_config("");
    assert_eq!(begin(&config, &Head::new("/v1/chat/completions", &[])).1, RequestEdits::default());
}

#[test]
fn unknown_paths_are_not_metered() {
    let config = routed_config("");
    assert!(Exchange::begin(&config, &Head::new("/healthz", &[])).is_none());
}

#[test]
fn a_gzip_request_body_is_decoded_before_scanning() {
    let config = routed_config("");
    let head = Head::new("/v1/chat/completions", &[("content-encoding", "gzip")]);
    let encoded = gzip(CHAT_REQUEST.as_bytes());
    for split in [1, 7, encoded.len()] {
        let (mut ex, _) = begin(&config, &head);
        let pieces: Vec<&[u8]> = encoded.chunks(split).collect();
        for (i, p) in pieces.iter().enumerate() {
            ex.on_request_body(p, i + 1 == pieces.len());
        }
        let record = ex.finish(0);
        // The scanner saw the decompressed bytes, not the compressed ones.
        assert_eq!(record.request.body_bytes, CHAT_REQUEST.len() as u64, "split {split}");
    }
}

#[test]
fn attribution_defaults_to_unknown_and_reaches_filter_state() {
    let config = routed_config("");
    let record = run(&config, &Head::new("/v1/chat/completions", &[]), CHAT_REQUEST.as_bytes(), &[], b"", 1);
    let state = telemetry::filter_state(&record);
    for key in ["llm.feature", "llm.customer", "llm.user"] {
        assert_eq!(state.iter().find(|(k, _)| *k == key).unwrap().1, "unknown", "{key}");
    }
    assert_eq!(record.duration_ms, Some(250));
}

#[test]
fn decode_failures_make_usage_missing_with_a_reason() {
    let config = routed_config(r#", "max_decompressed_bytes": 1000"#);
    let head = Head::new("/v1/chat/completions", &[]);
    let big = format!("{{\"pad\":\"{}\",{}", "x".repeat(5000), &CHAT_RESPONSE[1..]);
    type Headers<'a> = &'a [(&'a str, &'a str)];
    let cases: [(Headers, Vec<u8>, &str); 4] = [
        (&[("content-encoding", "gzip")], gzip(big.as_bytes()), "decompressed_too_large"),
        (&[("content-encoding", "br")], CHAT_RESPONSE.as_bytes().to_vec(), "unsupported_encoding"),
        (&[("content-encoding", "gzip")], gzip(CHAT_RESPONSE.as_bytes())[..40].to_vec(), "truncated_encoding"),
        (&[("content-encoding", "deflate")], b"\x07\x00\x00\x00garbage".to_vec(), "corrupt_encoding"),
    ];
    for (headers, body, reason) in cases {
        let record = run(&config, &head, CHAT_REQUEST.as_bytes(), headers, &body, 16);
        assert_eq!(record.usage_source, UsageSource::Missing, "{reason}");
        assert_eq!(record.usage_missing_reason, Some(reason));
        assert_eq!(record.cost, None);
        let json: serde_json::Value = serde_json::from_str(&telemetry::record_json(&record)).unwrap();
        assert_eq!(json["llm.usage_missing_reason"], reason);
        assert_eq!(json["llm.usage_source"], "missing");
    }
}

#[test]
fn a_reset_before_response_headers_is_recorded_as_no_response() {
    let config = routed_config("");
    let (mut ex, _) = begin(&config, &Head::new("/v1/chat/completions", &[]));
    ex.on_request_body(CHAT_REQUEST.as_bytes(), false);
    let record = ex.finish(0);
    assert_eq!(record.usage_missing_reason, Some("no_response"));
    assert_eq!(record.status, None);
    // Idempotent, and later callbacks are ignored.
    ex.on_response_body(CHAT_RESPONSE.as_bytes(), true);
    assert_eq!(ex.finish(5), record);
}

#[test]
fn missing_usage_is_counted_and_never_priced_as_zero() {
    let config = routed_config("");
    let record = run(&config, &Head::new("/v1/chat/completions", &[]), b"{}", &[("content-encoding", "br")], b"x", 1);
    let mut metrics = FakeMetrics::default();
    let plan = telemetry::TelemetryState::new(&config).plan(&record);
    assert_eq!(telemetry::apply(&plan, &mut metrics), 0);
    assert!(plan.iter().any(|u| u.name.ends_with("tokenmeter_usage_missing_total")));
    assert!(plan.iter().all(|u| !u.name.ends_with("tokenmeter_cost_nanousd_total")));
    let state = telemetry::filter_state(&record);
    assert_eq!(state.iter().find(|(k, _)| *k == "llm.cost_usd").unwrap().1, "");
}

// ---- These need the extraction work (providers) and, for cost, the pricing work. ----

#[test]
fn an_empty_config_detects_openai_chat_from_the_path() {
    let config = Config::from_json(b"{}").unwrap();
    let (ex, _) = begin(&config, &Head::new("/v1/chat/completions", &[]));
    assert_eq!(ex.route().api, Api::OpenAiChatCompletions);
    assert_eq!(ex.route().provider, Provider::OpenAi);
}

fn assert_chat_usage(record: &Record) {
    assert_eq!(record.usage_source, UsageSource::Reported);
    assert_eq!(record.usage_missing_reason, None);
    assert_eq!(record.usage.input_tokens, 2006);
    assert_eq!(record.usage.output_tokens, 300);
    assert_eq!(record.usage.cache_read_tokens, 1920);
    assert_eq!(record.usage.reasoning_tokens, 192);
    assert_eq!(record.request.model.as_deref(), Some("gpt-4o-mini"));
    assert_eq!(record.request.max_output_tokens, Some(100));
    assert_eq!(record.response.model.as_deref(), Some("gpt-4o-mini-2024-07-18"));
    assert_eq!(record.response.id.as_deref(), Some("chatcmpl-C3kBOLGARFj2WJrm5MRyuTiK4u6eF"));
}

#[test]
fn an_openai_chat_json_response_yields_usage_at_every_chunk_size() {
    let config = routed_config("");
    let head = Head::new("/v1/chat/completions", &[("x-llm-customer", "acme")]);
    for chunk in [1, 2, 3, 17, 64, CHAT_RESPONSE.len()] {
        let record = run(&config, &head, CHAT_REQUEST.as_bytes(), &[("content-type", "application/json")], CHAT_RESPONSE.as_bytes(), chunk);
        assert_chat_usage(&record);
        let state = telemetry::filter_state(&record);
        let get = |k: &str| state.iter().find(|(key, _)| *key == k).unwrap().1.clone();
        assert_eq!(get("gen_ai.usage.input_tokens"), "2006");
        assert_eq!(get("gen_ai.usage.cache_read.input_tokens"), "1920");
        assert_eq!(get("llm.usage_source"), "reported");
        assert_eq!(get("llm.customer"), "acme");
    }
}

#[test]
fn a_gzip_response_is_decoded_and_read() {
    let config = routed_config("");
    let head = Head::new("/v1/chat/completions", &[]);
    let body = gzip(CHAT_RESPONSE.as_bytes());
    for chunk in [1, 5, body.len()] {
        let headers = [("content-type", "application/json"), ("content-encoding", "gzip")];
        assert_chat_usage(&run(&config, &head, CHAT_REQUEST.as_bytes(), &headers, &body, chunk));
    }
    let headers = [("content-type", "application/json"), ("content-encoding", "deflate")];
    let zlib = compress_to_vec_zlib(CHAT_RESPONSE.as_bytes(), 6);
    assert_chat_usage(&run(&config, &head, CHAT_REQUEST.as_bytes(), &headers, &zlib, 3));
}

#[test]
fn an_openai_chat_stream_with_include_usage_yields_usage() {
    let config = routed_config("");
    let request = r#"{"model":"gpt-4o-mini","stream":true,"stream_options":{"include_usage":true},"messages":[]}"#;
    let stream = concat!(
        "data: {\"id\":\"c1\",\"object\":\"chat.completion.chunk\",\"model\":\"gpt-4o-mini-2024-07-18\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"Hi\"},\"finish_reason\":null}],\"usage\":null}\n\n",
        "data: {\"id\":\"c1\",\"object\":\"chat.completion.chunk\",\"model\":\"gpt-4o-mini-2024-07-18\",\"choices\":[{\"index\":0,\"delta\":{},\"finish_reason\":\"stop\"}],\"usage\":null}\n\n",
        "data: {\"id\":\"c1\",\"object\":\"chat.completion.chunk\",\"model\":\"gpt-4o-mini-2024-07-18\",\"choices\":[],\"usage\":{\"prompt_tokens\":11,\"completion_tokens\":2,\"total_tokens\":13}}\n\n",
        "data: [DONE]\n\n",
    );
    for chunk in [1, 9, stream.len()] {
        let record = run(&config, &Head::new("/v1/chat/completions", &[]), request.as_bytes(), &[("content-type", "text/event-stream")], stream.as_bytes(), chunk);
        assert!(record.request.stream);
        assert_eq!(record.request.include_usage, Some(true));
        assert_eq!(record.usage_source, UsageSource::Reported);
        assert_eq!((record.usage.input_tokens, record.usage.output_tokens), (11, 2));
    }
}

#[test]
fn a_priced_chat_is_costed_and_counted_exactly() {
    let config = routed_config("");
    let head = Head::new("/v1/chat/completions", &[("x-llm-feature", "search"), ("x-llm-customer", "acme")]);
    let record = run(&config, &head, CHAT_REQUEST.as_bytes(), &[("content-type", "application/json")], CHAT_RESPONSE.as_bytes(), 64);
    assert_eq!(record.priced_model.as_deref(), Some("gpt-4o-mini"));
    // gpt-4o-mini list price: $0.15/M input, $0.075/M cached input, $0.60/M output.
    // (2006 - 1920) * 150_000 + 1920 * 75_000 + 300 * 600_000 pico-USD.
    let expected = 86 * 150_000 + 1920 * 75_000 + 300 * 600_000;
    assert_eq!(record.cost.map(|c| c.0), Some(expected));
    let mut metrics = FakeMetrics::default();
    let plan = telemetry::metric_plan(&record, &mut CardinalityGuard::new(10), &mut CostCarry::default());
    assert_eq!(telemetry::apply(&plan, &mut metrics), 0);
    let name = "gen_ai_provider_name=.=openai;.;gen_ai_request_model=.=gpt-4o-mini;.;feature=.=search;.;customer=.=acme;.;tokenmeter_cost_nanousd_total";
    assert_eq!(metrics.value(name), Some(i64::try_from(expected / 1000).unwrap()));
}

#[test]
fn an_azure_deployment_is_mapped_to_its_model_for_labels() {
    let config = Config::from_json(
        br#"{"routes": [{"path_prefix": "/openai/deployments/", "provider": "azure.ai.openai", "api": "openai.chat_completions"}],
             "azure_deployments": {"prod-4o": "gpt-4o"}}"#,
    )
    .unwrap();
    let mut head = Head::new("/openai/deployments/prod-4o/chat/completions?api-version=2024-10-21", &[]);
    head.authority = "myres.openai.azure.com";
    // Azure bodies usually omit the model; the deployment map is the last resort.
    let record = run(&config, &head, b"{\"messages\":[]}", &[("content-encoding", "br")], b"x", 1);
    assert_eq!(record.route.provider, Provider::AzureOpenAi);
    assert_eq!(record.azure_deployment.as_deref(), Some("prod-4o"));
    assert_eq!(record.deployment_model.as_deref(), Some("gpt-4o"));
    assert_eq!(telemetry::model_label(&record), "gpt-4o");
    let json: serde_json::Value = serde_json::from_str(&telemetry::record_json(&record)).unwrap();
    assert_eq!(json["gen_ai.provider.name"], "azure.ai.openai");
    assert_eq!(json["llm.azure.deployment"], "prod-4o");
    assert!(json.get("gen_ai.openai.response.service_tier").is_some());
    // An unmapped deployment has no model to fall back on.
    let mut head = Head::new("/openai/deployments/other/chat/completions", &[]);
    head.authority = "myres.openai.azure.com";
    let record = run(&config, &head, b"{}", &[], b"", 1);
    assert_eq!(record.deployment_model, None);
    assert_eq!(telemetry::model_label(&record), "unknown");
}
