//! Inputs the fuzzers (fuzz/) found against the JSON scanner and the extractors built on it.
//! Each test feeds the minimised input through the public API and checks the contract the
//! fuzz target asserted.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)] // tests

use tokenmeter::json::{Interest, Path, Scalar, Scanner, Visitor, MAX_STRING_BYTES};
use tokenmeter::providers::{Api, RequestScanner, ResponseScanner};

/// Captures every string value's text length.
#[derive(Default)]
struct StringLens(Vec<usize>);

impl Visitor for StringLens {
    fn wants_string(&mut self, _interest: Interest, _path: &Path<'_>) -> bool {
        true
    }
    fn scalar(&mut self, _interest: Interest, _path: &Path<'_>, value: Scalar<'_>) {
        if let Some(text) = value.as_str() {
            self.0.push(text.len());
        }
    }
}

/// A JSON string of `n` bytes that are not UTF-8 (0xff never is).
fn invalid_utf8_string(n: usize) -> Vec<u8> {
    let mut body = vec![b'"'];
    body.extend(std::iter::repeat_n(0xffu8, n));
    body.push(b'"');
    body
}

// fuzz target json_scanner: `JsonStr::text` is documented as "at most MAX_STRING_BYTES bytes",
// but invalid bytes are repaired to U+FFFD (3 bytes each) after the cut, so 100 invalid bytes
// come back as 300 bytes of text.
#[test]
fn captured_text_with_invalid_utf8_stays_within_max_string_bytes() {
    let mut scanner = Scanner::new();
    let mut lens = StringLens::default();
    scanner.feed(&invalid_utf8_string(100), &mut lens).unwrap();
    scanner.finish(&mut lens).unwrap();
    assert_eq!(lens.0.len(), 1);
    assert!(lens.0[0] <= MAX_STRING_BYTES, "text of {} bytes", lens.0[0]);
}

// fuzz targets request_scanner / response_scanner: the same repair lets a model name exceed
// MAX_STRING_BYTES, and it ends up in filter state, metric labels and the record.
#[test]
fn request_and_response_model_with_invalid_utf8_stay_bounded() {
    let mut body = b"{\"model\":".to_vec();
    body.extend(invalid_utf8_string(100));
    body.push(b'}');

    let mut request = RequestScanner::new(Api::OpenAiChatCompletions);
    request.feed(&body);
    let model = request.finish().model.expect("model captured");
    assert!(
        model.len() <= MAX_STRING_BYTES,
        "request model of {} bytes",
        model.len()
    );

    let mut response = ResponseScanner::new(Api::OpenAiChatCompletions, Some("application/json"));
    response.feed(&body);
    let model = response.finish().facts.model.expect("model captured");
    assert!(
        model.len() <= MAX_STRING_BYTES,
        "response model of {} bytes",
        model.len()
    );
}

// The valid-UTF-8 side of the same contract holds today and must keep holding.
#[test]
fn captured_text_is_cut_at_max_string_bytes_on_a_char_boundary() {
    let text = "é".repeat(MAX_STRING_BYTES); // 2 bytes each
    let body = format!("\"{text}\"");
    let mut scanner = Scanner::new();
    let mut lens = StringLens::default();
    // Split inside a character to cover the chunk boundary too.
    let (a, b) = body.as_bytes().split_at(101);
    scanner.feed(a, &mut lens).unwrap();
    scanner.feed(b, &mut lens).unwrap();
    scanner.finish(&mut lens).unwrap();
    assert_eq!(lens.0, [MAX_STRING_BYTES]);
}
