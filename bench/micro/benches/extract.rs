//! Usage-extraction throughput: tokenmeter's incremental scanner against a serde_json
//! full parse of the same bytes, in bytes/s (criterion's `Throughput::Bytes`).
//!
//! Ids are `<group>/<tokenmeter|serde_json>`; `bench/run.sh` reads
//! `$CRITERION_HOME/<group>/<id>/new/estimates.json` to build the results table, and reads
//! `$CRITERION_HOME/tokenmeter-sanity.json`, written here before timing, to refuse figures
//! from a scanner that extracted nothing (the stub core returns immediately).
//!
//! `BENCH_CPU_TIME=1` times each iteration batch with the thread's CPU clock instead of the
//! wall clock. On a machine shared with other jobs the wall clock also counts the time this
//! thread waited for a core, which swings between the tokenmeter and serde_json runs of a
//! group and makes their ratio meaningless; the CPU clock does not (cache and core sharing
//! still show). Unloaded, both clocks agree for this single-threaded work.
#![allow(clippy::unwrap_used, clippy::expect_used)] // benchmark harness, not filter code

use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::measurement::{Measurement, ValueFormatter, WallTime};
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use tokenmeter::json::{Interest, Path, Scalar, Scanner, Step, Visitor};
use tokenmeter::providers::{Api, ResponseOutcome, ResponseScanner};
use tokenmeter::stream::eventstream::EventStreamDecoder;
use tokenmeter_micro as synth;

fn scan(api: Api, content_type: &str, chunks: &[&[u8]]) -> ResponseOutcome {
    let mut scanner = ResponseScanner::new(api, Some(content_type));
    for c in chunks {
        scanner.feed(c);
    }
    scanner.finish()
}

/// Picks Bedrock's `usage.inputTokens` / `usage.outputTokens` out of payloads.
#[derive(Default)]
struct BedrockUsage {
    input: Option<u64>,
    output: Option<u64>,
}

impl Visitor for BedrockUsage {
    // Interest: only `usage` and its two counters matter, so the scanner skips the rest unread
    // (the way the providers' extractors use it).
    fn key(&mut self, parent: Interest, depth: usize, key: Option<&[u8]>) -> Interest {
        match (parent, depth, key) {
            (0, _, _) => 0,
            (_, 0, Some(b"usage")) => 1,
            (_, 1, Some(b"inputTokens" | b"outputTokens")) => 1,
            _ => 0,
        }
    }

    fn index(&mut self, _parent: Interest, _depth: usize, _index: u64) -> Interest {
        0
    }

    fn scalar(&mut self, _interest: Interest, path: &Path<'_>, value: Scalar<'_>) {
        if path.matches(&[Step::Key("usage"), Step::Key("inputTokens")]) {
            self.input = value.as_u64();
        } else if path.matches(&[Step::Key("usage"), Step::Key("outputTokens")]) {
            self.output = value.as_u64();
        }
    }
}

fn eventstream_scan(chunks: &[&[u8]]) -> (Option<u64>, Option<u64>) {
    let mut decoder = EventStreamDecoder::new();
    let mut scanner = Scanner::new();
    let mut usage = BedrockUsage::default();
    for chunk in chunks {
        let mut input: &[u8] = chunk;
        while let Ok(Some(message)) = decoder.decode(&mut input) {
            scanner.reset();
            if scanner.feed(message.payload(), &mut usage).is_ok() {
                let _ = scanner.finish(&mut usage);
            }
        }
    }
    (usage.input, usage.output)
}

fn eventstream_serde(chunks: &[&[u8]]) -> Option<u64> {
    let mut decoder = EventStreamDecoder::new();
    let mut found = None;
    for chunk in chunks {
        let mut input: &[u8] = chunk;
        while let Ok(Some(message)) = decoder.decode(&mut input) {
            if let Ok(v) = serde_json::from_slice::<serde_json::Value>(message.payload()) {
                if let Some(n) = v.get("usage").and_then(|u| u.get("inputTokens")).and_then(|n| n.as_u64()) {
                    found = Some(n);
                }
            }
        }
    }
    found
}

fn quick() -> bool {
    std::env::var_os("BENCH_QUICK").is_some_and(|v| v != "0" && !v.is_empty())
}

/// Wall clock, or with `BENCH_CPU_TIME=1` the thread's CPU clock; durations either way.
struct Clock {
    cpu: bool,
    wall: WallTime,
}

fn thread_cpu_time() -> Duration {
    let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: `ts` is a valid, writable timespec; the call only fills it in.
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    assert_eq!(rc, 0, "clock_gettime(CLOCK_THREAD_CPUTIME_ID)");
    Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32)
}

impl Measurement for Clock {
    type Intermediate = (Instant, Duration);
    type Value = Duration;

    fn start(&self) -> Self::Intermediate {
        (Instant::now(), if self.cpu { thread_cpu_time() } else { Duration::ZERO })
    }

    fn end(&self, (wall, cpu): Self::Intermediate) -> Duration {
        if self.cpu {
            thread_cpu_time().saturating_sub(cpu)
        } else {
            wall.elapsed()
        }
    }

    fn add(&self, a: &Duration, b: &Duration) -> Duration {
        *a + *b
    }

    fn zero(&self) -> Duration {
        Duration::ZERO
    }

    fn to_f64(&self, value: &Duration) -> f64 {
        value.as_nanos() as f64
    }

    fn formatter(&self) -> &dyn ValueFormatter {
        self.wall.formatter()
    }
}

fn config() -> Criterion<Clock> {
    let (warm, measure) = if quick() { (500, 1500) } else { (2000, 5000) };
    let cpu = std::env::var_os("BENCH_CPU_TIME").is_some_and(|v| v != "0" && !v.is_empty());
    Criterion::default()
        .with_measurement(Clock { cpu, wall: WallTime })
        .warm_up_time(Duration::from_millis(warm))
        .measurement_time(Duration::from_millis(measure))
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

fn benches(c: &mut Criterion<Clock>) {
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

    // Bedrock ConverseStream: 60 AWS eventstream frames. There is no Bedrock extractor in
    // `providers` yet, so the tokenmeter side is the pieces it will be built from: the
    // eventstream decoder plus the incremental JSON scanner picking `usage.*Tokens` out of each
    // payload. The baseline uses the same decoder (CRC checks included) and serde_json for the
    // payloads, so the ratio isolates payload parsing.
    // TODO(bedrock): switch to `ResponseScanner` once a Bedrock `Api` exists.
    let es_frames = synth::bedrock_converse_frames(60);
    let es_refs: Vec<&[u8]> = es_frames.iter().map(Vec::as_slice).collect();
    let es_len: usize = es_frames.iter().map(Vec::len).sum();
    let (input, output) = eventstream_scan(&es_refs);
    eprintln!(
        "sanity eventstream_bedrock_60: input={input:?} output={output:?} -> {}",
        if input == Some(synth::PROMPT_TOKENS) { "ok" } else { "NO USAGE EXTRACTED" }
    );
    lines.push(format!(
        "\"eventstream_bedrock_60\":{{\"ok\":{},\"input\":{},\"output\":{}}}",
        input == Some(synth::PROMPT_TOKENS),
        input.map_or("null".into(), |n| n.to_string()),
        output.map_or("null".into(), |n| n.to_string())
    ));
    assert_eq!(eventstream_serde(&es_refs), Some(synth::PROMPT_TOKENS));
    let mut g = c.benchmark_group("eventstream_bedrock_60");
    g.throughput(Throughput::Bytes(es_len as u64));
    g.bench_function("tokenmeter", |b| b.iter(|| eventstream_scan(black_box(&es_refs))));
    g.bench_function("serde_json", |b| b.iter(|| eventstream_serde(black_box(&es_refs))));
    g.finish();

    write_sanity(&lines);
}

criterion_group! { name = extract; config = config(); targets = benches }
criterion_main!(extract);
