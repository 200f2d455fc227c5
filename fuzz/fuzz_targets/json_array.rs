//! JSON-array element framing (`stream::json_array::JsonArrayFramer`), Gemini's unary-SSE-less
//! `streamGenerateContent` body.
//!
//! Checks, for arbitrary bytes and chunk splits:
//! - whole and split feeding give the same elements, error and `finish` result, no `Data`
//!   piece is empty, and errors are sticky;
//! - differential against serde_json: when the body is a valid JSON array, the framer yields
//!   exactly its elements (each parses to the same value) and finishes cleanly; when it is a
//!   single object, it yields that object as the only element.
#![no_main]

use libfuzzer_sys::fuzz_target;
use serde_json::Value;
use tokenmeter::stream::eventstream::FrameError;
use tokenmeter::stream::json_array::JsonArrayFramer;
use tokenmeter::stream::ndjson::Segment;
use tokenmeter_fuzz::SplitInput;

#[derive(Debug, PartialEq, Eq)]
struct Framed {
    elements: Vec<Vec<u8>>,
    /// Bytes of an element still open at the end.
    open: Option<Vec<u8>>,
    error: Option<FrameError>,
    finish: Result<(), FrameError>,
    count: u64,
    single: bool,
}

fn frame(chunks: &[&[u8]]) -> Framed {
    let mut framer = JsonArrayFramer::new();
    let (mut elements, mut open, mut error) = (Vec::new(), None::<Vec<u8>>, None);
    for chunk in chunks {
        let mut errors_in_chunk = 0;
        for item in framer.feed(chunk) {
            match item {
                Ok(Segment::Data(d)) => {
                    assert!(!d.is_empty(), "empty Data segment");
                    open.get_or_insert_with(Vec::new).extend_from_slice(d);
                }
                Ok(Segment::End) => elements.push(open.take().expect("End without Data")),
                Err(e) => {
                    errors_in_chunk += 1;
                    if let Some(first) = &error {
                        assert_eq!(first, &e, "error not sticky");
                    }
                    error.get_or_insert(e);
                }
            }
        }
        assert!(errors_in_chunk <= 1, "more than one error from one chunk");
        if error.is_some() {
            assert_eq!(errors_in_chunk, 1, "sticky error not repeated");
        }
    }
    assert_eq!(framer.error(), error.as_ref());
    Framed {
        elements,
        open,
        error,
        finish: framer.finish(),
        count: framer.elements(),
        single: framer.is_single_object(),
    }
}

fuzz_target!(|data: &[u8]| {
    let input = SplitInput::parse(data);
    let whole = frame(&[input.body]);
    let split = frame(&input.chunks());
    assert_eq!(whole, split, "split feeding changed the result");
    assert_eq!(whole.count, whole.elements.len() as u64);

    match serde_json::from_slice::<Value>(input.body) {
        Ok(Value::Array(items)) => {
            assert_eq!(whole.error, None, "valid array rejected");
            assert_eq!(whole.finish, Ok(()), "valid array not finished");
            assert_eq!(whole.elements.len(), items.len(), "element count differs");
            for (bytes, item) in whole.elements.iter().zip(&items) {
                let parsed: Value = serde_json::from_slice(bytes).expect("element is not JSON");
                assert_eq!(&parsed, item, "element differs");
            }
        }
        Ok(object @ Value::Object(_)) => {
            assert!(whole.single);
            assert_eq!(whole.finish, Ok(()), "single object not finished");
            assert_eq!(whole.elements.len(), 1);
            let parsed: Value = serde_json::from_slice(&whole.elements[0]).expect("not JSON");
            assert_eq!(parsed, object);
        }
        _ => {}
    }
});
