//! Property tests for the three framers: on arbitrary and on corrupted input they never
//! panic, stay within their memory cap, and give the same answer however the input is split;
//! on generated JSON they recover exactly the records that were written.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing, clippy::panic)] // tests

use proptest::prelude::*;
use tokenmeter::stream::eventstream::{EventStreamDecoder, FrameError};
use tokenmeter::stream::json_array::JsonArrayFramer;
use tokenmeter::stream::ndjson::{NdjsonFramer, Segment};

const CONVERSE: &[u8] = include_bytes!("fixtures/bedrock/converse_stream.bin");
const INVOKE: &[u8] = include_bytes!("fixtures/bedrock/invoke_stream.bin");

/// Cuts `bytes` at the given offsets (taken modulo the length, sorted).
fn split<'a>(bytes: &'a [u8], cuts: &[usize]) -> Vec<&'a [u8]> {
    let mut cuts: Vec<usize> = cuts.iter().map(|c| c % (bytes.len() + 1)).collect();
    cuts.sort_unstable();
    let mut out = Vec::new();
    let mut at = 0;
    for c in cuts {
        out.push(&bytes[at..c]);
        at = c;
    }
    out.push(&bytes[at..]);
    out
}

type EsOut = (Vec<(Option<String>, Vec<u8>)>, Option<FrameError>, Result<(), FrameError>);

fn eventstream(chunks: &[&[u8]], cap: u32) -> EsOut {
    let mut dec = EventStreamDecoder::with_max_frame_len(cap);
    let mut msgs = Vec::new();
    let mut err = None;
    for chunk in chunks {
        let mut rest = *chunk;
        loop {
            match dec.decode(&mut rest) {
                Ok(Some(m)) => msgs.push((m.event_type().map(str::to_owned), m.payload().to_vec())),
                Ok(None) => break,
                Err(e) => {
                    err.get_or_insert(e);
                    break;
                }
            }
            assert!(dec.buffer_capacity() <= cap as usize);
        }
    }
    (msgs, err, dec.finish())
}

type SegOut = (Vec<Vec<u8>>, Option<Vec<u8>>, Option<FrameError>);

fn json_array(chunks: &[&[u8]]) -> (SegOut, Result<(), FrameError>) {
    let mut f = JsonArrayFramer::new();
    let (mut done, mut cur, mut err) = (Vec::new(), None::<Vec<u8>>, None);
    for chunk in chunks {
        for item in f.feed(chunk) {
            match item {
                Ok(Segment::Data(d)) => cur.get_or_insert_with(Vec::new).extend_from_slice(d),
                Ok(Segment::End) => done.push(cur.take().unwrap_or_default()),
                Err(e) => err = Some(e),
            }
        }
    }
    ((done, cur, err), f.finish())
}

fn ndjson(chunks: &[&[u8]]) -> Vec<Vec<u8>> {
    let mut f = NdjsonFramer::new();
    let (mut done, mut cur) = (Vec::new(), None::<Vec<u8>>);
    let mut take = |seg: Segment<'_>, cur: &mut Option<Vec<u8>>| match seg {
        Segment::Data(d) => cur.get_or_insert_with(Vec::new).extend_from_slice(d),
        Segment::End => done.push(cur.take().unwrap_or_default()),
    };
    for chunk in chunks {
        for seg in f.feed(chunk) {
            take(seg, &mut cur);
        }
    }
    if let Some(seg) = f.finish() {
        take(seg, &mut cur);
    }
    assert!(cur.is_none());
    done
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn eventstream_survives_arbitrary_bytes(bytes in proptest::collection::vec(any::<u8>(), 0..600),
                                             cuts in proptest::collection::vec(any::<usize>(), 0..6)) {
        let whole = eventstream(&[&bytes], 256);
        prop_assert_eq!(eventstream(&split(&bytes, &cuts), 256), whole);
    }

    #[test]
    fn eventstream_survives_corrupted_fixtures(which in 0..2usize, at in any::<usize>(), xor in 1..=255u8,
                                                truncate in any::<usize>(),
                                                cuts in proptest::collection::vec(any::<usize>(), 0..6)) {
        let mut bytes = [CONVERSE, INVOKE][which].to_vec();
        let at = at % bytes.len();
        bytes[at] ^= xor;
        bytes.truncate(truncate % (bytes.len() + 1));
        let whole = eventstream(&[&bytes], 1024);
        // A flipped byte is always caught by one of the checks, never decoded silently.
        prop_assert!(whole.1.is_some() || whole.2.is_err() || (at >= bytes.len()));
        prop_assert_eq!(eventstream(&split(&bytes, &cuts), 1024), whole);
    }

    #[test]
    fn json_array_survives_arbitrary_bytes(bytes in proptest::collection::vec(any::<u8>(), 0..300),
                                           cuts in proptest::collection::vec(any::<usize>(), 0..6)) {
        prop_assert_eq!(json_array(&split(&bytes, &cuts)), json_array(&[&bytes]));
    }

    #[test]
    fn json_array_recovers_generated_elements(texts in proptest::collection::vec(any::<String>(), 0..6),
                                              pretty in any::<bool>(),
                                              cuts in proptest::collection::vec(any::<usize>(), 0..8)) {
        // Objects whose strings hold arbitrary Unicode, quotes, backslashes and brackets.
        let values: Vec<serde_json::Value> = texts
            .iter()
            .map(|t| serde_json::json!({"text": t, "nested": [[t], {"k": t}], "n": t.len()}))
            .collect();
        let body = if pretty {
            serde_json::to_vec_pretty(&values).unwrap()
        } else {
            serde_json::to_vec(&values).unwrap()
        };
        let ((elements, partial, err), finish) = json_array(&split(&body, &cuts));
        prop_assert_eq!(err, None);
        prop_assert_eq!(partial, None);
        prop_assert_eq!(finish, Ok(()));
        let parsed: Vec<serde_json::Value> =
            elements.iter().map(|e| serde_json::from_slice(e).unwrap()).collect();
        prop_assert_eq!(parsed, values);
    }

    #[test]
    fn ndjson_recovers_generated_lines(texts in proptest::collection::vec(any::<String>(), 0..6),
                                       crlf in any::<bool>(),
                                       cuts in proptest::collection::vec(any::<usize>(), 0..8)) {
        let mut body = Vec::new();
        let mut expected = Vec::new();
        for t in &texts {
            let line = serde_json::to_vec(&serde_json::json!({"response": t, "done": false})).unwrap();
            body.extend_from_slice(&line);
            body.extend_from_slice(if crlf { b"\r\n" } else { b"\n" });
            expected.push(serde_json::from_slice::<serde_json::Value>(&line).unwrap());
        }
        let records = ndjson(&split(&body, &cuts));
        let parsed: Vec<serde_json::Value> =
            records.iter().map(|r| serde_json::from_slice(r).unwrap()).collect();
        prop_assert_eq!(parsed, expected);
    }

    #[test]
    fn ndjson_is_split_invariant_on_arbitrary_bytes(bytes in proptest::collection::vec(any::<u8>(), 0..300),
                                                    cuts in proptest::collection::vec(any::<usize>(), 0..6)) {
        prop_assert_eq!(ndjson(&split(&bytes, &cuts)), ndjson(&[&bytes]));
    }
}
