//! JSON-array element framing against the Gemini fixtures: the streamed array built by
//! `tests/fixtures/gemini/gen_fixtures.py`, the recorded unary responses (framed as one
//! element), and hand-made edge cases. Elements must be identical whatever the chunk splits,
//! and the last element's `usageMetadata` must hold the fixture's final running totals. The
//! same generator's `alt=sse` twin is checked to say the same thing, so the two framings can
//! be cross-tested once the SSE framer lands.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing, clippy::panic)] // tests

use tokenmeter::stream::eventstream::FrameError;
use tokenmeter::stream::json_array::JsonArrayFramer;
use tokenmeter::stream::ndjson::Segment;

const STREAM: &[u8] = include_bytes!("fixtures/gemini/stream.json");
const STREAM_SSE: &[u8] = include_bytes!("fixtures/gemini/stream.sse");
const BASIC: &[u8] = include_bytes!("fixtures/gemini/basic.json");
const REASONING: &[u8] = include_bytes!("fixtures/gemini/reasoning.json");

#[derive(Debug, PartialEq)]
struct Run {
    elements: Vec<Vec<u8>>,
    /// An element still open when the input ended.
    partial: Option<Vec<u8>>,
    error: Option<FrameError>,
    finish: Result<(), FrameError>,
    single: bool,
}

fn frame<'a>(chunks: impl IntoIterator<Item = &'a [u8]>) -> Run {
    let mut framer = JsonArrayFramer::new();
    let mut elements = Vec::new();
    let mut current: Option<Vec<u8>> = None;
    let mut error = None;
    for chunk in chunks {
        for item in framer.feed(chunk) {
            match item {
                Ok(Segment::Data(d)) => {
                    assert!(!d.is_empty(), "Data is never empty");
                    current.get_or_insert_with(Vec::new).extend_from_slice(d);
                }
                Ok(Segment::End) => elements.push(current.take().expect("End closes an element")),
                Err(e) => {
                    assert!(error.is_none() || error.as_ref() == Some(&e), "one sticky error");
                    error = Some(e);
                }
            }
        }
    }
    assert_eq!(framer.elements() as usize, elements.len());
    Run { elements, partial: current, error, finish: framer.finish(), single: framer.is_single_object() }
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

fn assert_split_invariant(bytes: &[u8]) -> Run {
    let whole = frame([bytes]);
    for cut in 0..=bytes.len() {
        let (a, b) = bytes.split_at(cut);
        assert_eq!(frame([a, b]), whole, "split at {cut}");
    }
    assert_eq!(frame(bytes.chunks(1)), whole, "byte by byte");
    let mut rng = Rng(0x2545_F491_4F6C_DD1D);
    for round in 0..300 {
        let mut chunks = Vec::new();
        let mut rest = bytes;
        while !rest.is_empty() {
            let n = (rng.below(50) as usize).min(rest.len());
            let (a, b) = rest.split_at(n);
            chunks.push(a);
            rest = b;
        }
        assert_eq!(frame(chunks), whole, "random split round {round}");
    }
    whole
}

fn json(bytes: &[u8]) -> serde_json::Value {
    serde_json::from_slice(bytes).expect("element is JSON")
}

#[test]
fn gemini_streamed_array_frames_into_its_response_objects() {
    let run = assert_split_invariant(STREAM);
    assert_eq!(run.error, None);
    assert_eq!(run.finish, Ok(()));
    assert!(!run.single);
    assert_eq!(run.elements.len(), 4);
    // Each element is exactly one object: it parses alone, and re-joining the elements with
    // the separators gives back the body.
    let parsed: Vec<_> = run.elements.iter().map(|e| json(e)).collect();
    let rejoined = [b"[".to_vec(), run.elements.join(&b"\r\n,\r\n"[..]), b"]".to_vec()].concat();
    assert_eq!(rejoined, STREAM);
    assert_eq!(parsed[0]["candidates"][0]["content"]["parts"][0]["thought"], true);
    assert_eq!(
        parsed[2]["candidates"][0]["content"]["parts"][0]["text"],
        "see ]}, then [{ \u{6f22}\u{5b57} \u{1F600}"
    );

    // Running totals: the last element's usage is the answer; summing would be wrong.
    let last = &parsed[3]["usageMetadata"];
    assert_eq!(parsed[3]["candidates"][0]["finishReason"], "STOP");
    assert_eq!(last["promptTokenCount"], 1200);
    assert_eq!(last["cachedContentTokenCount"], 1024);
    assert_eq!(last["candidatesTokenCount"], 87);
    assert_eq!(last["thoughtsTokenCount"], 215);
    assert_eq!(last["toolUsePromptTokenCount"], 30);
    assert_eq!(last["totalTokenCount"], 1200 + 30 + 87 + 215);
    assert!(parsed[0]["usageMetadata"].get("candidatesTokenCount").is_none());
}

#[test]
fn gemini_sse_twin_carries_the_same_objects() {
    let text = std::str::from_utf8(STREAM_SSE).unwrap();
    let events: Vec<_> = text.split("\r\n\r\n").filter(|e| !e.is_empty()).collect();
    let from_sse: Vec<_> =
        events.iter().map(|e| json(e.strip_prefix("data: ").unwrap().as_bytes())).collect();
    let from_array: Vec<_> = frame([STREAM]).elements.iter().map(|e| json(e)).collect();
    assert_eq!(from_sse, from_array);
}

#[test]
fn unary_responses_are_one_element() {
    let run = assert_split_invariant(BASIC);
    assert!(run.single);
    assert_eq!(run.finish, Ok(()));
    assert_eq!(run.elements.len(), 1);
    let v = json(&run.elements[0]);
    assert_eq!(v["usageMetadata"]["promptTokenCount"], 8);
    assert_eq!(v["usageMetadata"]["candidatesTokenCount"], 6);
    assert_eq!(v["usageMetadata"]["totalTokenCount"], 14);

    let run = assert_split_invariant(REASONING);
    assert_eq!(run.elements.len(), 1);
    let v = json(&run.elements[0]);
    assert_eq!(v["usageMetadata"]["promptTokenCount"], 10);
    assert_eq!(v["usageMetadata"]["candidatesTokenCount"], 12);
    assert_eq!(v["usageMetadata"]["thoughtsTokenCount"], 5);
    assert_eq!(v["usageMetadata"]["totalTokenCount"], 27);
}

#[test]
fn strings_escapes_nesting_and_scalars() {
    let input = br#" [ {"a":"}]\"\\","b":[[{}],{"c":"[\\"}]} , 12.5e3,"x]\"",true , null,[1,[2]],{} ] "#;
    let run = assert_split_invariant(input);
    assert_eq!(run.error, None);
    assert_eq!(run.finish, Ok(()));
    let got: Vec<&[u8]> = run.elements.iter().map(Vec::as_slice).collect();
    assert_eq!(
        got,
        [
            &br#"{"a":"}]\"\\","b":[[{}],{"c":"[\\"}]}"#[..],
            b"12.5e3",
            br#""x]\"""#,
            b"true",
            b"null",
            b"[1,[2]]",
            b"{}",
        ]
    );
    let empty = assert_split_invariant(b"[]");
    assert!(empty.elements.is_empty());
    assert_eq!(empty.finish, Ok(()));
}

#[test]
fn a_non_json_body_is_a_typed_error() {
    let run = assert_split_invariant(b"  upstream connect error");
    assert_eq!(run.error, Some(FrameError::UnexpectedByte { byte: b'u', offset: 2 }));
    assert_eq!(run.finish, run.error.clone().map_or(Ok(()), Err));
    assert!(run.elements.is_empty());

    let run = assert_split_invariant(b"[{\"a\":1}, ) ]");
    assert_eq!(run.elements.len(), 1);
    assert_eq!(run.error, Some(FrameError::UnexpectedByte { byte: b')', offset: 10 }));

    let run = assert_split_invariant(b"[{}] junk");
    assert_eq!(run.elements.len(), 1);
    assert_eq!(run.error, Some(FrameError::UnexpectedByte { byte: b'j', offset: 5 }));
}

#[test]
fn errors_are_sticky_across_feeds() {
    let mut framer = JsonArrayFramer::new();
    let first: Vec<_> = framer.feed(b"<html>").collect();
    assert_eq!(first, [Err(FrameError::UnexpectedByte { byte: b'<', offset: 0 })]);
    let again: Vec<_> = framer.feed(b"[{}]").collect();
    assert_eq!(again, first);
    assert_eq!(framer.error(), Some(&FrameError::UnexpectedByte { byte: b'<', offset: 0 }));
}

#[test]
fn truncated_streams_are_unterminated() {
    let cut = STREAM.len() / 2;
    let run = frame([&STREAM[..cut]]);
    assert_eq!(run.error, None);
    assert!(matches!(run.finish, Err(FrameError::Unterminated { in_element: true, .. })));
    assert!(run.partial.is_some());

    let run = frame([&b"[{\"a\":1}\r\n,"[..]]);
    assert_eq!(run.elements.len(), 1);
    assert_eq!(run.finish, Err(FrameError::Unterminated { offset: 11, in_element: false }));
    assert_eq!(frame([&b""[..]]).finish, Err(FrameError::Unterminated { offset: 0, in_element: false }));
}

#[test]
fn memory_is_constant_in_element_size_and_depth() {
    // 200k nested arrays inside one 1 MiB+ string-bearing element: O(1) state, no buffer.
    let depth = 200_000;
    let mut body = b"[".to_vec();
    body.extend(std::iter::repeat_n(b'[', depth));
    body.extend_from_slice(b"\"");
    body.extend(std::iter::repeat_n(b'y', 1 << 20));
    body.extend_from_slice(b"\"");
    body.extend(std::iter::repeat_n(b']', depth));
    body.extend_from_slice(b",{}]");
    let mut framer = JsonArrayFramer::new();
    let mut ends = 0;
    let mut data = 0u64;
    for chunk in body.chunks(4096) {
        for item in framer.feed(chunk) {
            match item.unwrap() {
                Segment::Data(d) => data += d.len() as u64,
                Segment::End => ends += 1,
            }
        }
    }
    assert_eq!(ends, 2);
    assert_eq!(data, body.len() as u64 - 3);
    assert_eq!(framer.finish(), Ok(()));
    assert!(std::mem::size_of::<JsonArrayFramer>() <= 128, "the framer is O(1) state");
}
