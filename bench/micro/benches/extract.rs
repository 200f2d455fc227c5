//! Usage-extraction throughput: tokenmeter's incremental scanner against a serde_json
//! full parse of the same bytes, in bytes/s (criterion's `Throughput::Bytes`).
//!
//! Ids are `<group>/<tokenmeter|serde_json>`; `bench/run.sh` reads
//! `$CRITERION_HOME/<group>/<id>/new/estimates.json` to build the results table, and reads
//! `$CRITERION_HOME/tokenmeter-sanity.json`, written here before timing, to refuse figures
//! from a scanner that extracted nothing (the stub core returns immediately).
#![allow(clippy::unwrap_used, clippy::expect_used)] // benchmark harness, not filter code

use std::hint::black_box;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use tokenmeter::providers::{Api, ResponseOutcome, ResponseScanner};
use tokenmeter_micro as synth;

fn scan(api: Api, content_type: &str, chunks: &[&[u8]]) -> ResponseOutcome {
    let mut scanner = ResponseScanner::new(api, Some(content_type));
    for c in chunks {
        scanner.feed(c);
    }
    scanner.finish()
}

fn quick() -> bool {
    std::env::var_os("BENCH_QUICK").is_some_and(|v| v != "0" && !v.is_empty())
}

fn config() -> Criterion {
    let (warm, measure) = if quick() { (1, 2) } else { (2, 5) };
    Criterion::default()
        .warm_up_time(Duration::from_secs(warm))
        .measurement_time(Duration::from_secs(measure))
}

/// Records what the scanner extracted from each body, so a stub that extracts nothing cannot
/// pass for a fast scanner.
fn sanity(name: &str, outcome: &ResponseOutcome, lines: &mut Vec<String>) {
    let u = &outcome.usage;
    let ok = u.input_tokens == Some(synth::PROMPT_TOKENS);
    eprintln!(
        "sanity {name}: input={:?} output={:?} unreadable={} -> {}",
        u.input_tokens,
        u.output_tokens,
        outcome.unreadable,
        if ok { "ok" } else { "NO USAGE EXTRACTED" }
    );
    lines.push(format!(
        "\"{name}\":{{\"ok\":{ok},\"input\":{},\"output\":{}}}",
        u.input_tokens.map_or("null".into(), |n| n.to_string()),
        u.output_tokens.map_or("null".into(), |n| n.to_string())
    ));
}

fn write_sanity(lines: &[String]) {
    let Some(home) = std::env::var_os("CRITERION_HOME") else { return };
    let path = std::path::Path::new(&home).join("tokenmeter-sanity.json");
    let _ = std::fs::create_dir_all(&home);
    if let Err(e) = std::fs::write(&path, format!("{{{}}}\n", lines.join(","))) {
        eprintln!("cannot write {}: {e}", path.display());
    }
}

fn benches(c: &mut Criterion) {
    let mut lines = Vec::new();

    // 60-chunk OpenAI stream, fed one network chunk per event as Envoy delivers it.
    let sse_chunks = synth::openai_sse_chunks(60);
    let sse_refs: Vec<&[u8]> = sse_chunks.iter().map(Vec::as_slice).collect();
    let sse_all = sse_chunks.concat();
    sanity("sse_openai_60", &scan(Api::OpenAiChatCompletions, "text/event-stream", &sse_refs), &mut lines);
    assert_eq!(synth::serde_sse_prompt_tokens(&sse_all), Some(synth::PROMPT_TOKENS));
    let mut g = c.benchmark_group("sse_openai_60");
    g.throughput(Throughput::Bytes(sse_all.len() as u64));
    g.bench_function("tokenmeter", |b| {
        b.iter(|| scan(Api::OpenAiChatCompletions, "text/event-stream", black_box(&sse_refs)))
    });
    g.bench_function("serde_json", |b| b.iter(|| synth::serde_sse_prompt_tokens(black_box(&sse_all))));
    g.finish();

    // ~1 KB non-streaming chat completion, one chunk.
    let chat = synth::chat_json(1024);
    let chat_refs = [chat.as_slice()];
    sanity("json_chat_1k", &scan(Api::OpenAiChatCompletions, "application/json", &chat_refs), &mut lines);
    let mut g = c.benchmark_group("json_chat_1k");
    g.throughput(Throughput::Bytes(chat.len() as u64));
    g.bench_function("tokenmeter", |b| {
        b.iter(|| scan(Api::OpenAiChatCompletions, "application/json", black_box(&chat_refs)))
    });
    g.bench_function("serde_json", |b| b.iter(|| synth::serde_json_prompt_tokens(black_box(&chat))));
    g.finish();

    // 10 MB embeddings, usage at the very end, in 64 KiB chunks.
    let emb = synth::embeddings_json(10 * 1024 * 1024);
    let emb_refs = synth::split(&emb, 64 * 1024);
    sanity("json_embeddings_10m", &scan(Api::OpenAiEmbeddings, "application/json", &emb_refs), &mut lines);
    let mut g = c.benchmark_group("json_embeddings_10m");
    g.throughput(Throughput::Bytes(emb.len() as u64));
    g.sample_size(10);
    g.bench_function("tokenmeter", |b| {
        b.iter(|| scan(Api::OpenAiEmbeddings, "application/json", black_box(&emb_refs)))
    });
    g.bench_function("serde_json", |b| b.iter(|| synth::serde_json_prompt_tokens(black_box(&emb))));
    g.finish();

    // TODO(eventstream): once `tokenmeter::stream::eventstream` and a Bedrock `Api` exist,
    // add a `eventstream_bedrock_60` group here behind `#[cfg(feature = "eventstream")]`
    // (run.sh enables the feature when src/stream/ declares the module): frame 60 ConverseStream
    // events (`contentBlockDelta` x58, `messageStop`, `metadata` with usage) with the 12-byte
    // prelude and CRCs, feed them through the scanner, and compare with serde_json parsing each
    // payload.
    #[cfg(feature = "eventstream")]
    eprintln!("eventstream feature on, but the benchmark body is still a TODO");

    write_sanity(&lines);
}

criterion_group! { name = extract; config = config(); targets = benches }
criterion_main!(extract);
