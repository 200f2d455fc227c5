//! Base64 decoding for Bedrock `InvokeModelWithResponseStream` chunks
//! (`stream::eventstream::decode_base64_into` and `decode_invoke_chunk`).
//!
//! Checks, both ways round:
//! - the input read as base64: anything accepted re-encodes to the same text (padding
//!   optional but, when present, exactly where it belongs), the bytes are appended after
//!   what `out` held, and a rejection names a position inside the input;
//! - the input read as raw bytes: their canonical encoding, padded or not, decodes back to
//!   them, and so does a `{"bytes": "..."}` chunk payload holding it.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tokenmeter::stream::eventstream::{decode_base64_into, decode_invoke_chunk, FrameError};
use tokenmeter_fuzz::base64_encode;

fuzz_target!(|data: &[u8]| {
    // As base64 text, decoded after a prefix that must survive.
    let prefix_len = data.first().map_or(0, |b| usize::from(b & 7));
    let mut out = vec![0xA5; prefix_len];
    match decode_base64_into(data, &mut out) {
        Ok(()) => {
            assert!(
                out[..prefix_len].iter().all(|&b| b == 0xA5),
                "prefix overwritten"
            );
            let decoded = &out[prefix_len..];
            let canonical = base64_encode(decoded);
            let text = std::str::from_utf8(data).expect("accepted base64 is ASCII");
            if text.ends_with('=') {
                assert_eq!(text, canonical, "accepted non-canonical padded base64");
            } else {
                assert_eq!(
                    text,
                    canonical.trim_end_matches('='),
                    "accepted non-canonical base64"
                );
            }
        }
        Err(FrameError::InvalidBase64 { position }) => {
            assert!(
                position <= data.len() as u64,
                "error position past the input"
            );
        }
        Err(other) => panic!("unexpected error {other:?}"),
    }

    // As raw bytes: the canonical encodings must decode back.
    let canonical = base64_encode(data);
    for text in [canonical.as_str(), canonical.trim_end_matches('=')] {
        let mut out = Vec::new();
        decode_base64_into(text.as_bytes(), &mut out).expect("canonical base64 rejected");
        assert_eq!(out, data);
    }
    let payload = format!(r#"{{"bytes":"{canonical}","p":"abc"}}"#);
    let mut out = vec![1, 2, 3];
    decode_invoke_chunk(payload.as_bytes(), &mut out).expect("chunk payload rejected");
    assert_eq!(out, data, "decode_invoke_chunk must clear and decode");
});
