//! Throughput smoke figure for the extraction path (not a benchmark suite; `bench/` owns
//! those). Run: `cargo test --release --test extract_throughput -- --ignored --nocapture`.
//!
//! The input is a synthetic chat stream shaped like the recorded OpenAI chunks: 60 content
//! chunks and a final usage chunk, repeated until the body is ~64 MB, fed in 16 KiB pieces.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::time::Instant;

use tokenmeter::providers::{Api, ResponseScanner};

/// Body size in MB, `TM_MB` to override (callgrind runs want a small one).
fn size() -> usize {
    std::env::var("TM_MB")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(64)
        << 20
}

fn chat_stream() -> Vec<u8> {
    let mut one = Vec::new();
    for i in 0..60 {
        one.extend_from_slice(
            format!(
                "data: {{\"id\":\"chatcmpl-C4HqHBe4xca0k0EzsCnf1t6V3YFXp\",\"object\":\"chat.completion.chunk\",\"created\":1755137933,\"model\":\"gpt-5-nano-2025-08-07\",\"service_tier\":\"default\",\"system_fingerprint\":null,\"choices\":[{{\"index\":0,\"delta\":{{\"content\":\" token{i}\"}},\"finish_reason\":null}}],\"usage\":null,\"obfuscation\":\"S4aIEacCRfN26p\"}}\n\n"
            )
            .as_bytes(),
        );
    }
    one.extend_from_slice(b"data: {\"id\":\"chatcmpl-C4HqHBe4xca0k0EzsCnf1t6V3YFXp\",\"object\":\"chat.completion.chunk\",\"created\":1755137933,\"model\":\"gpt-5-nano-2025-08-07\",\"service_tier\":\"default\",\"system_fingerprint\":null,\"choices\":[],\"usage\":{\"prompt_tokens\":18,\"completion_tokens\":286,\"total_tokens\":304,\"prompt_tokens_details\":{\"cached_tokens\":0,\"audio_tokens\":0},\"completion_tokens_details\":{\"reasoning_tokens\":192,\"audio_tokens\":0,\"accepted_prediction_tokens\":0,\"rejected_prediction_tokens\":0}},\"obfuscation\":\"Od\"}\n\ndata: [DONE]\n\n");
    one
}

#[test]
#[ignore = "throughput figure; run in --release"]
fn sse_chat_usage_extraction_throughput() {
    let one = chat_stream();
    let copies = size() / one.len();
    let body: Vec<u8> = one
        .iter()
        .copied()
        .cycle()
        .take(one.len() * copies)
        .collect();

    let start = Instant::now();
    let mut scanner = ResponseScanner::new(Api::OpenAiChatCompletions, Some("text/event-stream"));
    for chunk in body.chunks(16 << 10) {
        scanner.feed(chunk);
    }
    let out = scanner.finish();
    let ours = start.elapsed().as_secs_f64();
    assert_eq!(out.usage.output_tokens, Some(286));
    assert!(!out.unreadable);

    // Baseline: what a buffering extractor does, serde_json on every event's data.
    let start = Instant::now();
    let mut completion = 0u64;
    for line in body.split(|b| *b == b'\n') {
        if let Some(data) = line.strip_prefix(b"data: ") {
            if let Ok(v) = serde_json::from_slice::<serde_json::Value>(data) {
                if let Some(n) = v
                    .pointer("/usage/completion_tokens")
                    .and_then(serde_json::Value::as_u64)
                {
                    completion = n;
                }
            }
        }
    }
    let serde = start.elapsed().as_secs_f64();
    assert_eq!(completion, 286);

    let mb = body.len() as f64 / 1e6;
    println!(
        "SSE chat usage extraction: {:.0} MB/s ({mb:.0} MB in {ours:.3}s); serde_json per-event baseline {:.0} MB/s; ratio {:.1}x",
        mb / ours,
        mb / serde,
        serde / ours
    );
}

#[test]
#[ignore = "throughput figure; run in --release"]
fn json_embeddings_throughput() {
    let mut body =
        b"{\"object\":\"list\",\"data\":[{\"object\":\"embedding\",\"index\":0,\"embedding\":["
            .to_vec();
    let mut i = 0u64;
    while body.len() < size() {
        body.extend_from_slice(format!("-0.0{:08},", (i * 7919) % 100_000_000).as_bytes());
        i += 1;
    }
    body.extend_from_slice(b"0.1]}],\"model\":\"text-embedding-3-small\",\"usage\":{\"prompt_tokens\":7,\"total_tokens\":7}}");
    let start = Instant::now();
    let mut scanner = ResponseScanner::new(Api::OpenAiEmbeddings, Some("application/json"));
    for chunk in body.chunks(64 << 10) {
        scanner.feed(chunk);
    }
    let out = scanner.finish();
    let secs = start.elapsed().as_secs_f64();
    assert_eq!(out.usage.input_tokens, Some(7));
    println!(
        "JSON embeddings (floats): {:.0} MB/s",
        body.len() as f64 / 1e6 / secs
    );
}
