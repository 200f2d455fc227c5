//! Synthetic LLM response bodies for the extraction micro-benchmarks.
//!
//! The bodies are generated, not read from fixtures, so the benchmark needs no files and its
//! sizes are exact: an OpenAI chat-completions SSE stream of a chosen number of chunks ending
//! in the `include_usage` chunk, a ~1 KB chat-completion JSON, and an embeddings JSON of a
//! chosen size with `usage` at the end (where OpenAI puts it, so a scanner must read it all).
//! Every body carries the same known usage ([`PROMPT_TOKENS`], [`COMPLETION_TOKENS`]) so the
//! benchmark can check the scanner really extracted it before timing it: a scanner that
//! returns nothing is fast and meaningless.

/// `usage.prompt_tokens` in every generated body.
pub const PROMPT_TOKENS: u64 = 1234;
/// `usage.completion_tokens` in every generated chat body.
pub const COMPLETION_TOKENS: u64 = 567;

/// Deterministic xorshift so bodies are identical across runs and machines.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

const WORDS: [&str; 16] = [
    "the", "token", "meter", "counts", "every", "streamed", "word", "and", "prices", "it",
    "exactly", "in", "integer", "pico", "dollars", "today",
];

fn words(rng: &mut Rng, n: usize) -> String {
    let mut out = String::new();
    for i in 0..n {
        if i > 0 {
            out.push(' ');
        }
        // `% 16` keeps the index in range; `get` keeps clippy's indexing lint quiet.
        out.push_str(WORDS.get((rng.next() % 16) as usize).copied().unwrap_or("x"));
    }
    out
}

/// An OpenAI chat-completions stream as the SSE events an upstream sends, one `Vec` per
/// network chunk: a role chunk, content deltas, a finish chunk, the usage chunk
/// (`stream_options.include_usage`) and `[DONE]`. `chunks` counts them all (minimum 4).
pub fn openai_sse_chunks(chunks: usize) -> Vec<Vec<u8>> {
    let mut rng = Rng(0x5eed_0001);
    let head = r#""id":"chatcmpl-BenchAbc123","object":"chat.completion.chunk","created":1764230400,"model":"gpt-4o-mini-2024-07-18","service_tier":"default","system_fingerprint":"fp_0123456789""#;
    let mut out = Vec::with_capacity(chunks);
    out.push(format!(
        "data: {{{head},\"choices\":[{{\"index\":0,\"delta\":{{\"role\":\"assistant\",\"content\":\"\",\"refusal\":null}},\"logprobs\":null,\"finish_reason\":null}}],\"usage\":null}}\n\n"
    ));
    for _ in 0..chunks.saturating_sub(4) {
        let text = words(&mut rng, 3);
        out.push(format!(
            "data: {{{head},\"choices\":[{{\"index\":0,\"delta\":{{\"content\":\" {text}\"}},\"logprobs\":null,\"finish_reason\":null}}],\"usage\":null}}\n\n"
        ));
    }
    out.push(format!(
        "data: {{{head},\"choices\":[{{\"index\":0,\"delta\":{{}},\"logprobs\":null,\"finish_reason\":\"stop\"}}],\"usage\":null}}\n\n"
    ));
    out.push(format!(
        "data: {{{head},\"choices\":[],\"usage\":{{\"prompt_tokens\":{PROMPT_TOKENS},\"completion_tokens\":{COMPLETION_TOKENS},\"total_tokens\":{},\"prompt_tokens_details\":{{\"cached_tokens\":0,\"audio_tokens\":0}},\"completion_tokens_details\":{{\"reasoning_tokens\":0,\"audio_tokens\":0,\"accepted_prediction_tokens\":0,\"rejected_prediction_tokens\":0}}}}}}\n\n",
        PROMPT_TOKENS + COMPLETION_TOKENS
    ));
    out.push("data: [DONE]\n\n".to_owned());
    out.into_iter().map(String::into_bytes).collect()
}

/// A non-streaming chat completion of about `target` bytes (the content is padded).
pub fn chat_json(target: usize) -> Vec<u8> {
    let mut rng = Rng(0x5eed_0002);
    let build = |content: &str| {
        format!(
            "{{\"id\":\"chatcmpl-BenchAbc123\",\"object\":\"chat.completion\",\"created\":1764230400,\"model\":\"gpt-4o-mini-2024-07-18\",\"choices\":[{{\"index\":0,\"message\":{{\"role\":\"assistant\",\"content\":\"{content}\",\"refusal\":null,\"annotations\":[]}},\"logprobs\":null,\"finish_reason\":\"stop\"}}],\"usage\":{{\"prompt_tokens\":{PROMPT_TOKENS},\"completion_tokens\":{COMPLETION_TOKENS},\"total_tokens\":{},\"prompt_tokens_details\":{{\"cached_tokens\":0,\"audio_tokens\":0}},\"completion_tokens_details\":{{\"reasoning_tokens\":0,\"audio_tokens\":0,\"accepted_prediction_tokens\":0,\"rejected_prediction_tokens\":0}}}},\"service_tier\":\"default\",\"system_fingerprint\":\"fp_0123456789\"}}",
            PROMPT_TOKENS + COMPLETION_TOKENS
        )
    };
    let mut content = String::new();
    while build(&content).len() < target {
        if !content.is_empty() {
            content.push(' ');
        }
        content.push_str(&words(&mut rng, 1));
    }
    build(&content).into_bytes()
}

/// An embeddings response of at least `target` bytes: 1536-float vectors, usage last.
pub fn embeddings_json(target: usize) -> Vec<u8> {
    let mut rng = Rng(0x5eed_0003);
    let mut out = String::with_capacity(target.saturating_add(64 * 1024));
    out.push_str("{\"object\":\"list\",\"data\":[");
    let mut index = 0u64;
    while out.len() < target {
        if index > 0 {
            out.push(',');
        }
        out.push_str("{\"object\":\"embedding\",\"index\":");
        out.push_str(&index.to_string());
        out.push_str(",\"embedding\":[");
        for d in 0..1536 {
            if d > 0 {
                out.push(',');
            }
            // Floats shaped like OpenAI's: sign, 0.0, 8 significant digits.
            let v = rng.next() % 100_000_000;
            if rng.next().is_multiple_of(2) {
                out.push('-');
            }
            out.push_str(&format!("0.0{v:08}"));
        }
        out.push_str("]}");
        index += 1;
    }
    out.push_str(&format!(
        "],\"model\":\"text-embedding-3-small\",\"usage\":{{\"prompt_tokens\":{PROMPT_TOKENS},\"total_tokens\":{PROMPT_TOKENS}}}}}"
    ));
    out.into_bytes()
}

/// One AWS eventstream frame (`application/vnd.amazon.eventstream`): 12-byte prelude with
/// its CRC32, string headers, the payload and the message CRC32.
pub fn eventstream_frame(headers: &[(&str, &str)], payload: &[u8]) -> Vec<u8> {
    let mut h = Vec::new();
    for (name, value) in headers {
        h.push(name.len() as u8);
        h.extend_from_slice(name.as_bytes());
        h.push(7); // string
        h.extend_from_slice(&(value.len() as u16).to_be_bytes());
        h.extend_from_slice(value.as_bytes());
    }
    let total = 12 + h.len() + payload.len() + 4;
    let mut f = Vec::with_capacity(total);
    f.extend_from_slice(&(total as u32).to_be_bytes());
    f.extend_from_slice(&(h.len() as u32).to_be_bytes());
    let prelude_crc = crc32fast::hash(&f);
    f.extend_from_slice(&prelude_crc.to_be_bytes());
    f.extend_from_slice(&h);
    f.extend_from_slice(payload);
    let crc = crc32fast::hash(&f);
    f.extend_from_slice(&crc.to_be_bytes());
    f
}

/// A Bedrock `ConverseStream` response of `frames` frames (minimum 4): `messageStart`, text
/// deltas, `contentBlockStop`, `messageStop` and the `metadata` event carrying usage, each
/// payload with the `p` padding field Bedrock adds.
pub fn bedrock_converse_frames(frames: usize) -> Vec<Vec<u8>> {
    let mut rng = Rng(0x5eed_0004);
    let event = |kind: &str, json: String| {
        eventstream_frame(
            &[(":event-type", kind), (":content-type", "application/json"), (":message-type", "event")],
            json.as_bytes(),
        )
    };
    let pad = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJ";
    let mut out = vec![event("messageStart", format!("{{\"p\":\"{pad}\",\"role\":\"assistant\"}}"))];
    for _ in 0..frames.saturating_sub(4) {
        let text = words(&mut rng, 3);
        out.push(event(
            "contentBlockDelta",
            format!("{{\"contentBlockIndex\":0,\"delta\":{{\"text\":\" {text}\"}},\"p\":\"{pad}\"}}"),
        ));
    }
    out.push(event("contentBlockStop", format!("{{\"contentBlockIndex\":0,\"p\":\"{pad}\"}}")));
    out.push(event("messageStop", format!("{{\"p\":\"{pad}\",\"stopReason\":\"end_turn\"}}")));
    out.push(event(
        "metadata",
        format!(
            "{{\"metrics\":{{\"latencyMs\":1200}},\"p\":\"{pad}\",\"usage\":{{\"inputTokens\":{PROMPT_TOKENS},\"outputTokens\":{COMPLETION_TOKENS},\"totalTokens\":{}}}}}",
            PROMPT_TOKENS + COMPLETION_TOKENS
        ),
    ));
    out
}

/// Splits a body into network-sized chunks, as Envoy hands them to a filter.
pub fn split(body: &[u8], chunk: usize) -> Vec<&[u8]> {
    body.chunks(chunk.max(1)).collect()
}

/// The serde_json baseline for SSE: frame on blank lines, parse every `data:` payload into a
/// `Value` and keep the last `usage.prompt_tokens`. This is what a filter that "just parses
/// the JSON" does per event, without the cross-chunk framing state a real filter needs.
pub fn serde_sse_prompt_tokens(stream: &[u8]) -> Option<u64> {
    let mut found = None;
    for event in stream.split(|&b| b == b'\n') {
        let Some(data) = event.strip_prefix(b"data: ") else { continue };
        if data == b"[DONE]" {
            continue;
        }
        if let Ok(v) = serde_json::from_slice::<serde_json::Value>(data) {
            if let Some(n) = v.get("usage").and_then(|u| u.get("prompt_tokens")).and_then(|n| n.as_u64()) {
                found = Some(n);
            }
        }
    }
    found
}

/// The serde_json baseline for a whole JSON body.
pub fn serde_json_prompt_tokens(body: &[u8]) -> Option<u64> {
    serde_json::from_slice::<serde_json::Value>(body)
        .ok()?
        .get("usage")?
        .get("prompt_tokens")?
        .as_u64()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The benchmark's premise: tokenmeter reads the known usage out of every synthetic body.
    #[test]
    fn tokenmeter_extracts_the_known_usage() {
        use tokenmeter::providers::{Api, ResponseScanner};
        let cases: [(Api, &str, Vec<Vec<u8>>); 3] = [
            (Api::OpenAiChatCompletions, "text/event-stream", openai_sse_chunks(60)),
            (Api::OpenAiChatCompletions, "application/json", vec![chat_json(1024)]),
            (Api::OpenAiEmbeddings, "application/json", vec![embeddings_json(1 << 20)]),
        ];
        for (api, ct, chunks) in cases {
            let mut s = ResponseScanner::new(api, Some(ct));
            for c in &chunks {
                s.feed(c);
            }
            let out = s.finish();
            assert_eq!(out.usage.input_tokens, Some(PROMPT_TOKENS), "{api:?} {ct}");
            if api != Api::OpenAiEmbeddings {
                assert_eq!(out.usage.output_tokens, Some(COMPLETION_TOKENS), "{api:?} {ct}");
            }
        }
    }

    #[test]
    fn eventstream_frames_decode_with_tokenmeter_and_end_in_usage() {
        let frames = bedrock_converse_frames(60);
        assert_eq!(frames.len(), 60);
        let all = frames.concat();
        let mut input = all.as_slice();
        let mut dec = tokenmeter::stream::eventstream::EventStreamDecoder::new();
        let mut last = None;
        let mut n = 0;
        while let Some(m) = dec.decode(&mut input).unwrap() {
            n += 1;
            last = Some((m.event_type().map(str::to_owned), m.payload().to_vec()));
        }
        assert_eq!(n, 60);
        let (kind, payload) = last.unwrap();
        assert_eq!(kind.as_deref(), Some("metadata"));
        let v: serde_json::Value = serde_json::from_slice(&payload).unwrap();
        assert_eq!(v["usage"]["inputTokens"].as_u64(), Some(PROMPT_TOKENS));
    }

    #[test]
    fn bodies_carry_the_known_usage_for_the_baseline() {
        let sse: Vec<u8> = openai_sse_chunks(60).concat();
        assert_eq!(openai_sse_chunks(60).len(), 60);
        assert_eq!(serde_sse_prompt_tokens(&sse), Some(PROMPT_TOKENS));
        let chat = chat_json(1024);
        assert!((1024..1100).contains(&chat.len()), "chat is {} bytes", chat.len());
        assert_eq!(serde_json_prompt_tokens(&chat), Some(PROMPT_TOKENS));
        let emb = embeddings_json(1 << 20);
        assert!(emb.len() >= 1 << 20);
        assert_eq!(serde_json_prompt_tokens(&emb), Some(PROMPT_TOKENS));
    }
}
