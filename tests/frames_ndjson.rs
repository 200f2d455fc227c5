//! NDJSON framing against the Ollama `/api/chat` and `/api/generate` fixtures: records must
//! come out whole and identical whatever the chunk splits, in O(1) framer memory, and the
//! final `done: true` record must carry the fixture's token counts.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing, clippy::panic)] // tests

use tokenmeter::stream::eventstream::FrameError;
use tokenmeter::stream::ndjson::{NdjsonFramer, RecordBuffer, Segment};

const CHAT: &[u8] = include_bytes!("fixtures/ollama/chat.ndjson");
const GENERATE: &[u8] = include_bytes!("fixtures/ollama/generate.ndjson");

/// Frames `chunks`, assembling records; also checks segment invariants on the way.
fn frame<'a>(chunks: impl IntoIterator<Item = &'a [u8]>) -> Vec<Vec<u8>> {
    let mut framer = NdjsonFramer::new();
    let mut records = Vec::new();
    let mut current: Option<Vec<u8>> = None;
    let mut push = |seg: Segment<'_>, current: &mut Option<Vec<u8>>| match seg {
        Segment::Data(d) => {
            assert!(!d.is_empty(), "Data is never empty");
            assert!(!d.contains(&b'\n'), "Data never spans a newline");
            current.get_or_insert_with(Vec::new).extend_from_slice(d);
        }
        Segment::End => records.push(current.take().expect("End closes an open record")),
    };
    for chunk in chunks {
        for seg in framer.feed(chunk) {
            push(seg, &mut current);
        }
    }
    if let Some(seg) = framer.finish() {
        push(seg, &mut current);
    }
    assert!(current.is_none(), "finish closes the last record");
    assert_eq!(framer.records() as usize, records.len());
    records
}

struct Rng(u64);
impl Rng {
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D) % n
    }
}

fn assert_split_invariant(bytes: &[u8]) -> Vec<Vec<u8>> {
    let whole = frame([bytes]);
    for cut in 0..=bytes.len() {
        let (a, b) = bytes.split_at(cut);
        assert_eq!(frame([a, b]), whole, "split at {cut}");
    }
    assert_eq!(frame(bytes.chunks(1)), whole, "byte by byte");
    let mut rng = Rng(0xD1B5_4A32_D192_ED03);
    for round in 0..300 {
        let mut chunks = Vec::new();
        let mut rest = bytes;
        while !rest.is_empty() {
            let n = (rng.below(40) as usize).min(rest.len());
            let (a, b) = rest.split_at(n);
            chunks.push(a);
            rest = b;
        }
        assert_eq!(frame(chunks), whole, "random split round {round}");
    }
    whole
}

fn json(record: &[u8]) -> serde_json::Value {
    serde_json::from_slice(record).expect("record is JSON")
}

#[test]
fn ollama_chat_stream_frames_into_its_lines() {
    let records = assert_split_invariant(CHAT);
    assert_eq!(records.len(), 5);
    let lines: Vec<&[u8]> = CHAT.split(|&b| b == b'\n').filter(|l| !l.is_empty()).collect();
    assert_eq!(records, lines);
    let text: String =
        records.iter().map(|r| json(r)["message"]["content"].as_str().unwrap().to_owned()).collect();
    assert_eq!(text, "Caf\u{e9} au lait \u{2615}\n\nIt is {\"hot\"} [really]\\.");
    assert!(records[..4].iter().all(|r| json(r)["done"] == false));
    let last = json(&records[4]);
    assert_eq!(last["done"], true);
    assert_eq!(last["done_reason"], "stop");
    assert_eq!(last["prompt_eval_count"], 26);
    assert_eq!(last["eval_count"], 282);
}

#[test]
fn ollama_generate_stream_frames_into_its_lines() {
    let records = assert_split_invariant(GENERATE);
    assert_eq!(records.len(), 4);
    let last = json(&records[3]);
    assert_eq!(last["done"], true);
    assert_eq!(last["prompt_eval_count"], 31);
    assert_eq!(last["eval_count"], 7);
    assert_eq!(last["context"].as_array().unwrap().len(), 10);
}

#[test]
fn crlf_blank_lines_and_a_missing_final_newline() {
    let input = b"\r\n{\"a\":1}\r\n\r\n\n  {\"b\":2}\n{\"c\":3}";
    let records = assert_split_invariant(input);
    // The trailing '\r' stays with its record: it is JSON whitespace to the scanner.
    assert_eq!(records, [&b"{\"a\":1}\r"[..], b"{\"b\":2}", b"{\"c\":3}"]);
    assert!(records.iter().all(|r| serde_json::from_slice::<serde_json::Value>(r).is_ok()));
    assert!(frame([&b""[..]]).is_empty());
    assert!(frame([&b"\n\n \r\n"[..]]).is_empty());
}

#[test]
fn long_lines_stream_through_without_buffering() {
    // A 3 MiB line: the framer hands out pieces of each chunk, never a copy.
    let mut line = b"{\"response\":\"".to_vec();
    line.resize(3 << 20, b'x');
    line.extend_from_slice(b"\"}\n{}\n");
    let mut framer = NdjsonFramer::new();
    let (mut data_bytes, mut ends) = (0u64, 0);
    for chunk in line.chunks(4096) {
        for seg in framer.feed(chunk) {
            match seg {
                Segment::Data(d) => {
                    assert!(d.len() <= chunk.len());
                    assert!(chunk.as_ptr_range().contains(&d.as_ptr()), "Data borrows the chunk");
                    data_bytes += d.len() as u64;
                }
                Segment::End => ends += 1,
            }
        }
    }
    assert_eq!(ends, 2);
    assert_eq!(data_bytes, line.len() as u64 - 2);
    assert!(std::mem::size_of::<NdjsonFramer>() <= 16, "the framer is O(1) state");
}

#[test]
fn record_buffer_collects_whole_lines_within_its_cap() {
    let mut rb = RecordBuffer::new(200);
    let mut framer = NdjsonFramer::new();
    let mut lines = Vec::new();
    let mut errors = Vec::new();
    for chunk in CHAT.chunks(13) {
        for seg in framer.feed(chunk) {
            match rb.push(seg) {
                Some(Ok(line)) => lines.push(line.to_vec()),
                Some(Err(e)) => errors.push(e),
                None => {}
            }
            assert!(rb.capacity() <= 200);
        }
    }
    // The final line (292 bytes) is over the cap; the four before it fit.
    assert_eq!(lines.len(), 4);
    assert_eq!(errors, [FrameError::RecordTooLarge { max: 200 }]);
    assert_eq!(json(&lines[1])["message"]["content"], " au lait \u{2615}");
}
