//! A fixed amount of extraction work for instruction-level profiling, which criterion's
//! adaptive loop gets in the way of:
//!   cargo build --release --example profile
//!   valgrind --tool=callgrind target/release/examples/profile sse 2000
//!   callgrind_annotate callgrind.out.<pid> | head -40
//! Bodies: `sse` (60-event OpenAI stream), `chat` (~1 KB JSON), `embed` (1 MiB embeddings);
//! `serde-sse` and `serde-chat` run the serde_json baselines on the same bodies, so the
//! instruction counts give the benchmark's ratio without the timing noise of a shared machine.
use std::hint::black_box;

use tokenmeter::providers::{Api, ResponseScanner};
use tokenmeter_micro as synth;

fn main() {
    let mut args = std::env::args().skip(1);
    let which = args.next().unwrap_or_else(|| "sse".into());
    let times: u64 = args.next().and_then(|n| n.parse().ok()).unwrap_or(1000);
    if let Some(body) = which.strip_prefix("serde-") {
        let (sse, chat) = (synth::openai_sse_chunks(60).concat(), synth::chat_json(1024));
        let mut found = 0u64;
        for _ in 0..times {
            let n = match body {
                "chat" => synth::serde_json_prompt_tokens(black_box(&chat)),
                _ => synth::serde_sse_prompt_tokens(black_box(&sse)),
            };
            found += u64::from(n.is_some());
        }
        println!("{which}: {times} times, usage found {found} times");
        return;
    }
    let (api, ct, chunks) = match which.as_str() {
        "chat" => (Api::OpenAiChatCompletions, "application/json", vec![synth::chat_json(1024)]),
        "embed" => (Api::OpenAiEmbeddings, "application/json", vec![synth::embeddings_json(1 << 20)]),
        _ => (Api::OpenAiChatCompletions, "text/event-stream", synth::openai_sse_chunks(60)),
    };
    let bytes: usize = chunks.iter().map(Vec::len).sum();
    let mut found = 0u64;
    for _ in 0..times {
        let mut s = ResponseScanner::new(api, Some(ct));
        for c in &chunks {
            s.feed(black_box(c));
        }
        found += u64::from(s.finish().usage.input_tokens.is_some());
    }
    println!("{which}: {times} x {bytes} bytes, usage found {found} times");
}
