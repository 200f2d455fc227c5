//! AWS eventstream framing against the recorded Bedrock ConverseStream body, the broken
//! recording, and the synthetic fixtures built by `tests/fixtures/bedrock/gen_fixtures.py`
//! (whose CRCs come from Python's zlib, so they cross-check crc32fast). Every fixture is
//! replayed split at every byte and at random multi-chunk splits; the decoded messages must
//! not depend on where the chunks were cut.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing, clippy::panic)] // tests

use tokenmeter::stream::eventstream::{
    decode_invoke_chunk, EventStreamDecoder, FrameError, HeaderValue, MessageKind, DEFAULT_MAX_FRAME_LEN,
};

const BASIC: &[u8] = include_bytes!("fixtures/bedrock/basic.bin");
const BROKEN: &[u8] = include_bytes!("fixtures/bedrock/broken.bin");
const CONVERSE: &[u8] = include_bytes!("fixtures/bedrock/converse_stream.bin");
const EXCEPTION: &[u8] = include_bytes!("fixtures/bedrock/converse_exception.bin");
const INVOKE: &[u8] = include_bytes!("fixtures/bedrock/invoke_stream.bin");

/// A decoded message, owned, with every header rendered so nothing escapes comparison.
#[derive(Debug, Clone, PartialEq)]
struct Owned {
    event_type: Option<String>,
    message_type: Option<String>,
    content_type: Option<String>,
    kind: MessageKind,
    headers: Vec<(String, String)>,
    payload: Vec<u8>,
}

#[derive(Debug)]
struct Run {
    messages: Vec<Owned>,
    /// The first error `decode` returned, if any.
    error: Option<FrameError>,
    finish: Result<(), FrameError>,
    max_capacity: usize,
}

/// Split invariance covers what the caller sees; the buffer's capacity depends on the splits
/// (a failed decoder frees it), so it is checked against the cap, not compared.
impl PartialEq for Run {
    fn eq(&self, other: &Self) -> bool {
        (&self.messages, &self.error, &self.finish) == (&other.messages, &other.error, &other.finish)
    }
}

fn decode_chunks<'a>(chunks: impl IntoIterator<Item = &'a [u8]>, max: u32) -> Run {
    let mut dec = EventStreamDecoder::with_max_frame_len(max);
    let mut messages = Vec::new();
    let mut error = None;
    let mut max_capacity = 0;
    for chunk in chunks {
        let mut rest = chunk;
        loop {
            match dec.decode(&mut rest) {
                Ok(Some(m)) => messages.push(Owned {
                    event_type: m.event_type().map(str::to_owned),
                    message_type: m.message_type().map(str::to_owned),
                    content_type: m.content_type().map(str::to_owned),
                    kind: m.kind(),
                    headers: m.headers().map(|h| (h.name.to_owned(), format!("{:?}", h.value))).collect(),
                    payload: m.payload().to_vec(),
                }),
                Ok(None) => break,
                Err(e) => {
                    assert!(rest.is_empty(), "an error consumes the input");
                    error.get_or_insert(e);
                    break;
                }
            }
            max_capacity = max_capacity.max(dec.buffer_capacity());
        }
        max_capacity = max_capacity.max(dec.buffer_capacity());
        assert!(dec.buffer_capacity() <= max as usize, "buffer above the cap");
    }
    Run { messages, error, finish: dec.finish(), max_capacity }
}

fn decode_whole(bytes: &[u8]) -> Run {
    decode_chunks([bytes], DEFAULT_MAX_FRAME_LEN)
}

/// Deterministic xorshift64*, so split tests are repeatable (and need no crate on wasm32).
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

fn random_splits<'a>(bytes: &'a [u8], rng: &mut Rng) -> Vec<&'a [u8]> {
    let mut chunks = Vec::new();
    let mut rest = bytes;
    while !rest.is_empty() {
        // Mostly small chunks, sometimes large ones, sometimes empty ones.
        let n = match rng.below(4) {
            0 => 0,
            1 => rng.below(8),
            2 => rng.below(64),
            _ => rng.below(rest.len() as u64 + 1),
        } as usize;
        let (a, b) = rest.split_at(n.min(rest.len()));
        chunks.push(a);
        rest = b;
    }
    chunks
}

/// The split-invariance check every fixture goes through.
fn assert_split_invariant(bytes: &[u8], max: u32) {
    let whole = decode_chunks([bytes], max);
    for cut in 0..=bytes.len() {
        let (a, b) = bytes.split_at(cut);
        assert_eq!(decode_chunks([a, b], max), whole, "split at {cut}");
    }
    assert_eq!(decode_chunks(bytes.chunks(1), max), whole, "byte by byte");
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    for round in 0..300 {
        let chunks = random_splits(bytes, &mut rng);
        assert_eq!(decode_chunks(chunks.iter().copied(), max), whole, "random split round {round}");
    }
}

fn event_types(run: &Run) -> Vec<&str> {
    run.messages.iter().map(|m| m.event_type.as_deref().unwrap_or("")).collect()
}

fn json(payload: &[u8]) -> serde_json::Value {
    serde_json::from_slice(payload).expect("payload is JSON")
}

#[test]
fn recorded_converse_stream_decodes_to_the_exact_message_sequence() {
    let run = decode_whole(BASIC);
    assert_eq!(run.error, None);
    assert_eq!(run.finish, Ok(()));
    assert_eq!(
        event_types(&run),
        [
            "messageStart",
            "contentBlockDelta",
            "contentBlockDelta",
            "contentBlockDelta",
            "contentBlockStop",
            "messageStop",
            "metadata"
        ]
    );
    for m in &run.messages {
        assert_eq!(m.message_type.as_deref(), Some("event"));
        assert_eq!(m.kind, MessageKind::Event);
        assert_eq!(m.content_type.as_deref(), Some("application/json"));
        let names: Vec<_> = m.headers.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(names, [":event-type", ":content-type", ":message-type"]);
    }
    let first = json(&run.messages[0].payload);
    assert_eq!(first["role"], "assistant");
    let text: String = run.messages[1..4]
        .iter()
        .map(|m| json(&m.payload)["delta"]["text"].as_str().unwrap().to_owned())
        .collect();
    assert!(text.starts_with("\nOnce upon a time, there was a little boy named Jack"));
    assert!(text.ends_with("stories about the birds he had helped."));
    assert_eq!(json(&run.messages[5].payload)["stopReason"], "end_turn");

    // Ground truth: the usage in the recording's metadata event.
    let meta = json(&run.messages[6].payload);
    assert_eq!(meta["usage"]["inputTokens"], 15);
    assert_eq!(meta["usage"]["outputTokens"], 142);
    assert_eq!(meta["usage"]["totalTokens"], 157);
    assert_eq!(meta["metrics"]["latencyMs"], 5841);
}

#[test]
fn decoder_counts_frames_and_bytes() {
    let mut dec = EventStreamDecoder::new();
    let mut rest = BASIC;
    let mut n = 0;
    while dec.decode(&mut rest).unwrap().is_some() {
        n += 1;
    }
    assert_eq!(n, 7);
    assert_eq!(dec.frames_decoded(), 7);
    assert_eq!(dec.bytes_consumed(), BASIC.len() as u64);
    // The largest frame in the recording is 0x1fc = 508 bytes; the buffer holds its body.
    assert_eq!(dec.buffer_capacity(), 508 - 12);
}

#[test]
fn recorded_broken_stream_is_a_typed_error_not_a_panic() {
    // The recording had a UTF-8 replacement character written over its first length byte.
    let run = decode_whole(BROKEN);
    assert!(run.messages.is_empty());
    let err = run.error.clone().expect("broken stream must fail");
    assert!(matches!(err, FrameError::PreludeCrc { offset: 0, .. }), "{err:?}");
    assert_eq!(run.finish, Err(err));
    assert_split_invariant(BROKEN, DEFAULT_MAX_FRAME_LEN);
}

#[test]
fn errors_are_sticky() {
    let mut dec = EventStreamDecoder::new();
    let mut rest = BROKEN;
    let first = dec.decode(&mut rest).unwrap_err();
    let mut more = BASIC;
    assert_eq!(dec.decode(&mut more).unwrap_err(), first);
    assert!(more.is_empty());
    assert_eq!(dec.error(), Some(&first));
}

#[test]
fn every_fixture_is_split_invariant() {
    for (name, bytes) in
        [("basic", BASIC), ("converse", CONVERSE), ("exception", EXCEPTION), ("invoke", INVOKE)]
    {
        let whole = decode_whole(bytes);
        assert_eq!(whole.error, None, "{name}");
        assert_eq!(whole.finish, Ok(()), "{name}");
        assert_split_invariant(bytes, DEFAULT_MAX_FRAME_LEN);
    }
}

#[test]
fn message_crc_mismatch_stops_at_the_corrupt_frame() {
    let mut bytes = BASIC.to_vec();
    // Frame 2 starts at 0x87; flip a payload byte inside it (the "c" of "contentBlockIndex").
    bytes[0xec] ^= 0x20;
    let run = decode_whole(&bytes);
    assert_eq!(run.messages.len(), 1);
    assert!(matches!(run.error, Some(FrameError::MessageCrc { offset: 0x87, .. })), "{:?}", run.error);
    assert_split_invariant(&bytes, DEFAULT_MAX_FRAME_LEN);
}

#[test]
fn prelude_crc_mismatch_is_caught_before_the_length_is_trusted() {
    let mut bytes = BASIC.to_vec();
    // Make frame 2 claim 0x0193 -> 0x7f0193 bytes; the prelude CRC no longer matches.
    bytes[0x87 + 1] = 0x7f;
    let run = decode_whole(&bytes);
    assert_eq!(run.messages.len(), 1);
    assert!(matches!(run.error, Some(FrameError::PreludeCrc { offset: 0x87, .. })), "{:?}", run.error);
    assert!(run.max_capacity < 0x7f0193);
}

/// A prelude with a correct CRC for the given lengths.
fn prelude(total_len: u32, headers_len: u32) -> Vec<u8> {
    let mut p = Vec::new();
    p.extend_from_slice(&total_len.to_be_bytes());
    p.extend_from_slice(&headers_len.to_be_bytes());
    let crc = crc32fast::hash(&p);
    p.extend_from_slice(&crc.to_be_bytes());
    p
}

/// A whole frame with correct CRCs around raw header bytes.
fn frame(headers: &[u8], payload: &[u8]) -> Vec<u8> {
    let total = 12 + headers.len() + payload.len() + 4;
    let mut f = prelude(total as u32, headers.len() as u32);
    f.extend_from_slice(headers);
    f.extend_from_slice(payload);
    let crc = crc32fast::hash(&f);
    f.extend_from_slice(&crc.to_be_bytes());
    f
}

fn string_header(name: &str, value: &str) -> Vec<u8> {
    let mut h = vec![name.len() as u8];
    h.extend_from_slice(name.as_bytes());
    h.push(7);
    h.extend_from_slice(&(value.len() as u16).to_be_bytes());
    h.extend_from_slice(value.as_bytes());
    h
}

#[test]
fn oversized_frame_is_rejected_from_its_prelude_alone() {
    // Only the 12-byte prelude of a ~4 GiB frame: the error must come before any body byte.
    let p = prelude(0xFFFF_FFF0, 10);
    let mut dec = EventStreamDecoder::new();
    let mut rest = &p[..];
    assert_eq!(
        dec.decode(&mut rest).unwrap_err(),
        FrameError::FrameTooLarge { total_len: 0xFFFF_FFF0, max: DEFAULT_MAX_FRAME_LEN, offset: 0 }
    );
    assert_eq!(dec.buffer_capacity(), 0);

    // A configured cap: basic.bin's 403-byte second frame exceeds 300.
    let run = decode_chunks([BASIC], 300);
    assert_eq!(run.messages.len(), 1);
    assert_eq!(run.error, Some(FrameError::FrameTooLarge { total_len: 0x193, max: 300, offset: 0x87 }));
    assert!(run.max_capacity <= 300);
    assert_split_invariant(BASIC, 300);
}

/// Total lengths of the frames in a well-formed stream, read from the preludes.
fn frame_lengths(mut bytes: &[u8]) -> Vec<usize> {
    let mut lens = Vec::new();
    while bytes.len() >= 4 {
        let len = u32::from_be_bytes(bytes[..4].try_into().unwrap()) as usize;
        lens.push(len);
        bytes = &bytes[len..];
    }
    lens
}

#[test]
fn buffer_capacity_never_exceeds_the_cap() {
    for bytes in [BASIC, CONVERSE, EXCEPTION, INVOKE] {
        let largest = *frame_lengths(bytes).iter().max().unwrap();
        // A cap of exactly the largest frame admits the whole stream ...
        let run = decode_chunks(bytes.chunks(7), largest as u32);
        assert_eq!(run.error, None);
        assert_eq!(run.finish, Ok(()));
        // ... and the buffer, reused across frames, holds at most one frame's body.
        assert!(run.max_capacity <= largest - 12, "{} > {}", run.max_capacity, largest - 12);
        // One byte less and the largest frame is refused.
        let run = decode_chunks(bytes.chunks(7), largest as u32 - 1);
        assert!(matches!(run.error, Some(FrameError::FrameTooLarge { .. })));
        assert!(run.max_capacity < largest);
    }
}

#[test]
fn impossible_lengths_are_typed_errors() {
    let mut dec = EventStreamDecoder::new();
    let p = prelude(15, 0);
    assert_eq!(dec.decode(&mut &p[..]).unwrap_err(), FrameError::FrameTooSmall { total_len: 15, offset: 0 });
    let mut dec = EventStreamDecoder::new();
    let p = prelude(40, 25);
    assert_eq!(
        dec.decode(&mut &p[..]).unwrap_err(),
        FrameError::HeadersOverflow { headers_len: 25, total_len: 40, offset: 0 }
    );
    // The smallest legal frame: no headers, no payload.
    let f = frame(&[], &[]);
    let run = decode_whole(&f);
    assert_eq!(run.error, None);
    assert_eq!(run.messages.len(), 1);
    assert_eq!(run.messages[0].kind, MessageKind::Unknown);
    assert!(run.messages[0].payload.is_empty());
}

#[test]
fn malformed_headers_are_typed_errors() {
    for bad in [
        vec![1, b'x', 10],            // unknown value type
        vec![1, b'x', 7, 0, 9, b'a'], // string longer than the headers
        vec![1, 0xff, 0],             // non-UTF-8 name
        vec![1, b'x', 7, 0, 1, 0xff], // non-UTF-8 string value
        vec![3, b'a'],                // name runs past the headers
    ] {
        let f = frame(&bad, b"{}");
        let run = decode_whole(&f);
        assert_eq!(run.error, Some(FrameError::MalformedHeader { offset: 0 }), "{bad:?}");
    }
}

#[test]
fn truncated_stream_is_reported_at_finish() {
    let run = decode_whole(&BASIC[..BASIC.len() - 1]);
    assert_eq!(run.error, None);
    assert_eq!(run.messages.len(), 6);
    assert_eq!(run.finish, Err(FrameError::Truncated { buffered: 0xeb - 1, expected: 0xeb }));

    // Cut inside the last frame's prelude.
    let last = BASIC.len() - 0xeb;
    let run = decode_whole(&BASIC[..last + 5]);
    assert_eq!(run.messages.len(), 6);
    assert_eq!(run.finish, Err(FrameError::Truncated { buffered: 5, expected: 12 }));
    assert_eq!(decode_whole(&[]).finish, Ok(()));
}

#[test]
fn every_header_value_type_decodes() {
    let mut h = string_header(":event-type", "x");
    h.extend_from_slice(&[1, b'b', 0, 1, b'c', 1, 1, b'n', 2, 0x80]);
    h.extend_from_slice(&[1, b's', 3, 0x01, 0x02]);
    h.extend_from_slice(&[1, b'i', 4, 0, 0, 1, 0]);
    h.extend_from_slice(&[1, b'l', 5, 0, 0, 0, 0, 0, 0, 0, 9]);
    h.extend_from_slice(&[2, b'b', b'y', 6, 0, 3, 1, 2, 3]);
    h.extend_from_slice(&[1, b't', 8, 0, 0, 1, 0x8b, 0xcf, 0xe5, 0x68, 0x00]);
    h.push(1);
    h.push(b'u');
    h.push(9);
    h.extend_from_slice(&[0xab; 16]);
    let f = frame(&h, b"payload");
    let mut dec = EventStreamDecoder::new();
    let m = dec.decode(&mut &f[..]).unwrap().unwrap();
    assert_eq!(m.event_type(), Some("x"));
    assert_eq!(m.header("b"), Some(HeaderValue::Bool(true)));
    assert_eq!(m.header("c"), Some(HeaderValue::Bool(false)));
    assert_eq!(m.header("n"), Some(HeaderValue::Byte(-128)));
    assert_eq!(m.header("s"), Some(HeaderValue::Short(0x0102)));
    assert_eq!(m.header("i"), Some(HeaderValue::Int(256)));
    assert_eq!(m.header("l"), Some(HeaderValue::Long(9)));
    assert_eq!(m.header("by"), Some(HeaderValue::Bytes(&[1, 2, 3])));
    assert_eq!(m.header("t"), Some(HeaderValue::Timestamp(1_700_000_000_000)));
    assert_eq!(m.header("u"), Some(HeaderValue::Uuid([0xab; 16])));
    assert_eq!(m.header("missing"), None);
    assert_eq!(m.payload(), b"payload");
    assert_eq!(m.headers().count(), 10);
}

#[test]
fn synthetic_converse_stream_carries_cache_usage_in_metadata() {
    let run = decode_whole(CONVERSE);
    assert_eq!(run.finish, Ok(()));
    assert_eq!(
        event_types(&run),
        [
            "messageStart",
            "contentBlockDelta",
            "contentBlockDelta",
            "contentBlockStop",
            "contentBlockDelta",
            "contentBlockDelta",
            "contentBlockStop",
            "messageStop",
            "metadata"
        ]
    );
    let meta = json(&run.messages[8].payload);
    let usage = &meta["usage"];
    assert_eq!(usage["inputTokens"], 25);
    assert_eq!(usage["outputTokens"], 57);
    assert_eq!(usage["cacheReadInputTokens"], 1920);
    assert_eq!(usage["cacheWriteInputTokens"], 387);
    // Bedrock's total counts cache reads and writes on top of inputTokens.
    assert_eq!(usage["totalTokens"], 25 + 57 + 1920 + 387);
    assert_eq!(meta["metrics"]["latencyMs"], 1234);
    let text = json(&run.messages[4].payload)["delta"]["text"].as_str().unwrap().to_owned();
    assert_eq!(text, "Caf\u{e9} steam rises \u{2615}\n");
}

#[test]
fn synthetic_exception_is_classified() {
    let run = decode_whole(EXCEPTION);
    assert_eq!(run.finish, Ok(()));
    assert_eq!(run.messages.len(), 3);
    let exc = &run.messages[2];
    assert_eq!(exc.kind, MessageKind::Exception);
    assert_eq!(exc.event_type, None);
    assert_eq!(exc.headers[0], (":exception-type".to_owned(), "String(\"throttlingException\")".to_owned()));
    assert_eq!(json(&exc.payload)["message"], "Too many requests, please wait before trying again.");
    let mut dec = EventStreamDecoder::new();
    let mut rest = EXCEPTION;
    let mut last = None;
    while let Some(m) = dec.decode(&mut rest).unwrap() {
        last = m.exception_type().map(str::to_owned);
    }
    assert_eq!(last.as_deref(), Some("throttlingException"));
}

#[test]
fn invoke_stream_chunks_unwrap_to_anthropic_events() {
    let run = decode_whole(INVOKE);
    assert_eq!(run.finish, Ok(()));
    assert!(run.messages.iter().all(|m| m.event_type.as_deref() == Some("chunk")));
    let mut buf = Vec::new();
    let mut types = Vec::new();
    let mut events = Vec::new();
    for m in &run.messages {
        decode_invoke_chunk(&m.payload, &mut buf).unwrap();
        let v = json(&buf);
        types.push(v["type"].as_str().unwrap().to_owned());
        events.push(v);
    }
    assert_eq!(
        types,
        [
            "message_start",
            "content_block_start",
            "content_block_delta",
            "content_block_delta",
            "content_block_stop",
            "message_delta",
            "message_stop"
        ]
    );
    let start = &events[0]["message"]["usage"];
    assert_eq!(start["input_tokens"], 21);
    assert_eq!(start["cache_creation_input_tokens"], 1500);
    assert_eq!(start["cache_read_input_tokens"], 640);
    assert_eq!(events[5]["usage"]["output_tokens"], 48);
    assert_eq!(events[3]["delta"]["text"], ", na\u{ef}ve world \u{2728}");
    let metrics = &events[6]["amazon-bedrock-invocationMetrics"];
    assert_eq!(metrics["inputTokenCount"], 21);
    assert_eq!(metrics["outputTokenCount"], 48);
    assert_eq!(metrics["invocationLatency"], 2211);
    assert_eq!(metrics["firstByteLatency"], 389);
    assert_eq!(metrics["cacheReadInputTokenCount"], 640);
    assert_eq!(metrics["cacheWriteInputTokenCount"], 1500);
}

#[test]
fn invoke_chunk_rejects_malformed_payloads() {
    let mut buf = vec![1, 2, 3];
    assert_eq!(decode_invoke_chunk(b"{\"p\":\"x\"}", &mut buf), Err(FrameError::InvalidChunk));
    assert!(buf.is_empty(), "output is cleared even on failure");
    assert_eq!(decode_invoke_chunk(b"not json", &mut buf), Err(FrameError::InvalidChunk));
    assert_eq!(decode_invoke_chunk(b"{\"bytes\":7}", &mut buf), Err(FrameError::InvalidChunk));
    assert!(matches!(
        decode_invoke_chunk(b"{\"bytes\":\"e30*\"}", &mut buf),
        Err(FrameError::InvalidBase64 { position: 3 })
    ));
    // JSON escapes inside the string are honoured (the Cow path).
    decode_invoke_chunk(b"{\"bytes\":\"e30\\u003d\"}", &mut buf).unwrap();
    assert_eq!(buf, b"{}");
}

/// Re-encodes a decoded message from its typed headers and payload.
fn encode(m: &tokenmeter::stream::eventstream::Message<'_>) -> Vec<u8> {
    let mut h = Vec::new();
    for header in m.headers() {
        h.push(header.name.len() as u8);
        h.extend_from_slice(header.name.as_bytes());
        match header.value {
            HeaderValue::Bool(true) => h.push(0),
            HeaderValue::Bool(false) => h.push(1),
            HeaderValue::Byte(v) => h.extend_from_slice(&[2, v as u8]),
            HeaderValue::Short(v) => {
                h.push(3);
                h.extend_from_slice(&v.to_be_bytes());
            }
            HeaderValue::Int(v) => {
                h.push(4);
                h.extend_from_slice(&v.to_be_bytes());
            }
            HeaderValue::Long(v) => {
                h.push(5);
                h.extend_from_slice(&v.to_be_bytes());
            }
            HeaderValue::Bytes(v) => {
                h.push(6);
                h.extend_from_slice(&(v.len() as u16).to_be_bytes());
                h.extend_from_slice(v);
            }
            HeaderValue::String(v) => {
                h.push(7);
                h.extend_from_slice(&(v.len() as u16).to_be_bytes());
                h.extend_from_slice(v.as_bytes());
            }
            HeaderValue::Timestamp(v) => {
                h.push(8);
                h.extend_from_slice(&v.to_be_bytes());
            }
            HeaderValue::Uuid(v) => {
                h.push(9);
                h.extend_from_slice(&v);
            }
        }
    }
    frame(&h, m.payload())
}

#[test]
fn decoding_is_lossless() {
    // Re-encoding every message reproduces the stream byte for byte: no header or payload
    // byte is dropped or misread, and the Python-made CRCs agree with crc32fast's.
    for bytes in [BASIC, CONVERSE, EXCEPTION, INVOKE] {
        let mut dec = EventStreamDecoder::new();
        let mut rest = bytes;
        let mut out = Vec::new();
        while let Some(m) = dec.decode(&mut rest).unwrap() {
            out.extend_from_slice(&encode(&m));
        }
        assert_eq!(out, bytes);
    }
}
