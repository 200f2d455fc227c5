//! OpenRouter's reported cost (`usage.cost`, USD credits), from the body to the record.
//!
//! The fixtures under tests/fixtures/openrouter/ are schema-built from OpenRouter's published
//! response format (see the README there); the numbers written in them are the ground truth.
//! The cost must come out exact to the pico-dollar from its decimal text, whichever way the
//! body is cut into chunks, and it must become the request's cost with
//! `llm.cost_source=provider`, while a provider that reports no cost keeps the price table's.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::collections::HashMap;

use tokenmeter::config::Config;
use tokenmeter::meter::{Exchange, Record, RequestHead};
use tokenmeter::pricing::PicoUsd;
use tokenmeter::providers::{Api, Provider, ResponseOutcome, ResponseScanner};
use tokenmeter::telemetry;
use tokenmeter::usage::{CostSource, Usage, UsageSource};

const JSON: &str = "application/json";
const SSE: &str = "text/event-stream";
const CHAT: &[u8] = include_bytes!("fixtures/openrouter/chat.json");
const STREAM: &[u8] = include_bytes!("fixtures/openrouter/chat-stream.sse");

fn scan(api: Api, content_type: &str, chunks: &[&[u8]]) -> ResponseOutcome {
    let mut scanner = ResponseScanner::new(api, Some(content_type));
    for chunk in chunks {
        scanner.feed(chunk);
    }
    scanner.finish()
}

fn chat_usage() -> Usage {
    Usage {
        input_tokens: Some(194),
        output_tokens: Some(9),
        cache_read_tokens: Some(128),
        reasoning_tokens: Some(0),
        // "cost": 0.0000312 USD
        cost: Some(PicoUsd(31_200_000)),
        ..Usage::default()
    }
}

fn stream_usage() -> Usage {
    Usage {
        input_tokens: Some(13),
        output_tokens: Some(10),
        cache_read_tokens: Some(0),
        cache_creation_tokens: Some(0),
        reasoning_tokens: Some(0),
        // "cost": 7.6e-7 USD
        cost: Some(PicoUsd(760_000)),
        ..Usage::default()
    }
}

#[test]
fn the_json_body_yields_tokens_and_the_exact_cost() {
    let out = scan(Api::OpenAiChatCompletions, JSON, &[CHAT]);
    assert_eq!(out.usage, chat_usage());
    assert_eq!(out.facts.model.as_deref(), Some("openai/gpt-4o-mini"));
    assert_eq!(out.facts.id.as_deref(), Some("gen-1764237600-Xq4PzR7sKm2VbN8tLw3J"));
    assert_eq!(out.facts.finish_reason.as_deref(), Some("stop"));
    assert!(!out.unreadable && out.error.is_none());
}

#[test]
fn the_stream_yields_the_final_chunks_usage_and_cost() {
    let out = scan(Api::OpenAiChatCompletions, SSE, &[STREAM]);
    assert_eq!(out.usage, stream_usage());
    assert_eq!(out.facts.model.as_deref(), Some("meta-llama/llama-3.1-8b-instruct"));
    assert_eq!(out.facts.finish_reason.as_deref(), Some("stop"));
    assert_eq!(out.facts.output_text_bytes, 38);
    assert!(!out.unreadable && out.error.is_none());
}

#[test]
fn every_split_point_gives_the_same_outcome() {
    for (content_type, body) in [(JSON, CHAT), (SSE, STREAM)] {
        let whole = scan(Api::OpenAiChatCompletions, content_type, &[body]);
        assert!(whole.usage.cost.is_some());
        for cut in 0..=body.len() {
            let (a, b) = body.split_at(cut);
            assert_eq!(
                scan(Api::OpenAiChatCompletions, content_type, &[a, b]),
                whole,
                "{content_type} cut at {cut}"
            );
        }
        let bytes: Vec<&[u8]> = body.chunks(1).collect();
        assert_eq!(scan(Api::OpenAiChatCompletions, content_type, &bytes), whole);
    }
}

/// The cost read from `{"usage":{"prompt_tokens":1,"cost":<text>}}`, whole and split at
/// every byte (the number then crosses a chunk boundary at each of its positions).
fn cost_of(text: &str) -> Option<PicoUsd> {
    let body = format!(r#"{{"usage":{{"prompt_tokens":1,"cost":{text}}}}}"#);
    let body = body.as_bytes();
    let whole = scan(Api::OpenAiChatCompletions, JSON, &[body]).usage.cost;
    for cut in 0..=body.len() {
        let (a, b) = body.split_at(cut);
        let split = scan(Api::OpenAiChatCompletions, JSON, &[a, b]).usage.cost;
        assert_eq!(split, whole, "{text} cut at {cut}");
    }
    whole
}

#[test]
fn cost_text_converts_exactly_in_every_spelling() {
    for (text, pico) in [
        ("0.95", 950_000_000_000),
        ("1.2e-05", 12_000_000),
        ("1.2E-5", 12_000_000),
        ("12e-6", 12_000_000),
        ("0.000012", 12_000_000),
        ("0.0000312", 31_200_000),
        ("7.6e-7", 760_000),
        ("1e+0", 1_000_000_000_000),
        ("3", 3_000_000_000_000),
        ("0", 0),
        // 0.1 has no exact binary float; as text it is exact.
        ("0.1", 100_000_000_000),
        // Below a pico-dollar: rounded once, half up.
        ("1.5e-12", 2),
        ("1.23456789012345e-5", 12_345_679),
    ] {
        assert_eq!(cost_of(text), Some(PicoUsd(pico)), "{text}");
    }
}

#[test]
fn negative_oversized_and_non_numeric_costs_are_ignored() {
    let long = format!("0.{}", "1".repeat(70));
    // Any minus sign is refused, even on zero: a cost is never negative.
    for text in ["-0.5", "-1e-5", "-0", "1e30", "\"0.01\"", "null", "true", "{}", "[]", long.as_str()] {
        assert_eq!(cost_of(text), None, "{text}");
    }
}

/// The cost read from a usage object, whole and split at every byte.
fn usage_cost(usage: &str) -> Option<PicoUsd> {
    let body = format!(r#"{{"usage":{usage}}}"#);
    let body = body.as_bytes();
    let whole = scan(Api::OpenAiChatCompletions, JSON, &[body]).usage.cost;
    for cut in 0..=body.len() {
        let (a, b) = body.split_at(cut);
        assert_eq!(scan(Api::OpenAiChatCompletions, JSON, &[a, b]).usage.cost, whole, "{usage} cut at {cut}");
    }
    whole
}

#[test]
fn byok_adds_the_upstream_bill_to_openrouters_fee() {
    // BYOK: `cost` is OpenRouter's fee; the upstream billed 0.0002 USD to the caller's key.
    let byok = r#"{"prompt_tokens":1,"cost":0.00001,"is_byok":true,"cost_details":{"upstream_inference_cost":0.0002}}"#;
    assert_eq!(usage_cost(byok), Some(PicoUsd(210_000_000)));
    // The same in the other member order.
    let reordered = r#"{"cost_details":{"upstream_inference_cost":2e-4},"is_byok":true,"cost":1e-5}"#;
    assert_eq!(usage_cost(reordered), Some(PicoUsd(210_000_000)));
    // Not BYOK: the upstream figure is not a second bill, and is never added.
    let credits = r#"{"cost":0.00001,"is_byok":false,"cost_details":{"upstream_inference_cost":0.0002}}"#;
    assert_eq!(usage_cost(credits), Some(PicoUsd(10_000_000)));
    // BYOK with a null upstream figure: the fee alone.
    let null_upstream = r#"{"cost":0.00001,"is_byok":true,"cost_details":{"upstream_inference_cost":null}}"#;
    assert_eq!(usage_cost(null_upstream), Some(PicoUsd(10_000_000)));
}

#[test]
fn a_null_cost_in_a_later_event_does_not_erase_a_reported_one() {
    let body = b"data: {\"choices\":[],\"usage\":{\"prompt_tokens\":1,\"cost\":2e-6}}\n\n\
                 data: {\"choices\":[],\"usage\":{\"prompt_tokens\":1,\"cost\":null}}\n\n";
    let out = scan(Api::OpenAiChatCompletions, SSE, &[body]);
    assert_eq!(out.usage.cost, Some(PicoUsd(2_000_000)));
}

#[test]
fn legacy_completions_read_the_cost_too() {
    let body = br#"{"object":"text_completion","choices":[{"text":"hi","index":0}],"usage":{"prompt_tokens":3,"completion_tokens":1,"cost":4e-7}}"#;
    let out = scan(Api::OpenAiCompletions, JSON, &[body]);
    assert_eq!(out.usage.cost, Some(PicoUsd(400_000)));
}

/// A request head as the shell presents it (pseudo-headers among the headers).
struct Head(HashMap<&'static str, &'static str>);

impl RequestHead for Head {
    fn header(&self, name: &str) -> Option<String> {
        self.0.get(name).map(|v| v.to_string())
    }
}

fn exchange(authority: &'static str, path: &'static str, request: &[u8], content_type: &str, body: &[u8]) -> Record {
    let head = Head(HashMap::from([(":authority", authority), (":path", path), (":method", "POST")]));
    let (mut ex, _) = Exchange::begin(&Config::default(), &head).expect("metered");
    ex.on_request_body(request, true);
    let content_type = content_type.to_string();
    ex.on_response_headers(Some(200), &|name| (name == "content-type").then(|| content_type.clone()));
    ex.on_response_body(body, true);
    ex.finish(0)
}

fn state(record: &Record, key: &str) -> String {
    telemetry::filter_state(record)
        .into_iter()
        .find(|(k, _)| *k == key)
        .map(|(_, v)| v)
        .unwrap()
}

#[test]
fn the_reported_cost_is_the_requests_cost() {
    let request = br#"{"model":"openai/gpt-4o-mini","messages":[{"role":"user","content":"Hello"}]}"#;
    let record = exchange("openrouter.ai", "/api/v1/chat/completions", request, JSON, CHAT);
    assert_eq!(record.route.provider, Provider::OpenRouter);
    assert_eq!(record.usage_source, UsageSource::Reported);
    assert_eq!((record.usage.input_tokens, record.usage.output_tokens), (194, 9));
    assert_eq!(record.cost, Some(PicoUsd(31_200_000)));
    assert_eq!(record.cost_source, Some(CostSource::Provider));
    assert_eq!(state(&record, telemetry::KEY_COST_USD), "0.000031200");
    assert_eq!(state(&record, telemetry::KEY_COST_SOURCE), "provider");
    let json: serde_json::Value = serde_json::from_str(&state(&record, telemetry::KEY_RECORD)).unwrap();
    assert_eq!(json["llm.cost_source"], "provider");
    assert_eq!(json["llm.cost_pico_usd"], 31_200_000u64);

    let request = br#"{"model":"meta-llama/llama-3.1-8b-instruct","stream":true,"messages":[]}"#;
    let record = exchange("openrouter.ai", "/api/v1/chat/completions", request, SSE, STREAM);
    assert_eq!(record.cost, Some(PicoUsd(760_000)));
    assert_eq!(record.cost_source, Some(CostSource::Provider));
    assert_eq!(state(&record, telemetry::KEY_COST_USD), "0.000000760");
}

#[test]
fn without_a_reported_cost_the_price_table_prices_and_says_so() {
    let request = br#"{"model":"gpt-4o","messages":[]}"#;
    let body = br#"{"model":"gpt-4o","choices":[],"usage":{"prompt_tokens":1000,"completion_tokens":100}}"#;
    let record = exchange("api.openai.com", "/v1/chat/completions", request, JSON, body);
    // 1000 * $2.50/M + 100 * $10/M = $0.0035
    assert_eq!(record.cost, Some(PicoUsd(3_500_000_000)));
    assert_eq!(record.cost_source, Some(CostSource::PriceTable));
    assert_eq!(state(&record, telemetry::KEY_COST_SOURCE), "price_table");

    // An unknown model is unpriced: no cost, no source.
    let request = br#"{"model":"no-such-model","messages":[]}"#;
    let body = br#"{"model":"no-such-model","choices":[],"usage":{"prompt_tokens":1,"completion_tokens":1}}"#;
    let record = exchange("api.openai.com", "/v1/chat/completions", request, JSON, body);
    assert_eq!((record.cost, record.cost_source), (None, None));
    assert_eq!(state(&record, telemetry::KEY_COST_SOURCE), "");
}

#[test]
fn a_budget_settles_at_the_reported_cost() {
    use tokenmeter::admission::{decide, Input, Settlement, Verdict};
    use tokenmeter::budget::ledger::read_counters;
    use tokenmeter::host::fake::FakeStore;
    use tokenmeter::providers::RequestScanner;

    const NOW: u64 = 1_732_665_600_000; // 2024-11-27, mid-month
    let config = Config::from_json(
        br#"{"budget":{"budgets":[{"id":"acme-day","match":{"customer":"acme"},"limit_usd":"1","window":"day"}]}}"#,
    )
    .unwrap();
    let store = FakeStore::default();
    let head = Head(HashMap::from([
        (":authority", "openrouter.ai"),
        (":path", "/api/v1/chat/completions"),
        (":method", "POST"),
        ("x-llm-customer", "acme"),
    ]));
    let request = br#"{"model":"openai/gpt-4o-mini","max_tokens":100,"messages":[{"role":"user","content":"Hello"}]}"#;
    let (mut ex, _) = Exchange::begin(&config, &head).expect("metered");
    let mut facts = RequestScanner::new(ex.route().api);
    facts.feed(request);
    let facts = facts.finish();
    let who = ex.attribution().clone();
    let decided = decide(
        &store,
        &Input {
            config: &config,
            budgets: &config.budget.budgets,
            route: ex.route(),
            who: &who,
            facts: Some(&facts),
            body: Some(request),
            body_bytes: request.len() as u64,
            deployment_model: None,
        },
        NOW,
    );
    let Verdict::Forward(forward) = decided.verdict else { panic!("rejected") };
    ex.on_request_body(request, true);
    ex.on_response_headers(Some(200), &|name| (name == "content-type").then(|| JSON.to_string()));
    ex.on_response_body(CHAT, true);
    let record = ex.finish(NOW);
    assert_eq!(record.cost_source, Some(CostSource::Provider));

    let settled = forward.ticket.expect("reserved").settle(&store, &config.budget, &config.budget.budgets, &record, NOW);
    assert_eq!(settled.how, Settlement::Actual);
    let def = &config.budget.budgets[0];
    let values = [("customer".to_string(), "acme".to_string())];
    let counters = read_counters(&store, def, &values, NOW).unwrap().unwrap();
    assert_eq!((counters.reserved_pico, counters.inflight), (0, 0));
    assert_eq!(counters.spent_pico, 31_200_000, "the reported $0.0000312, not a price-table figure");
}
