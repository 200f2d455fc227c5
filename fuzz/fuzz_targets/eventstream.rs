//! AWS eventstream decoder (`stream::eventstream::EventStreamDecoder`).
//!
//! Checks, for arbitrary bytes, a frame cap picked by the selector and chunk splits picked by
//! the input header:
//! - whole and split feeding give the same messages, error, `finish` result and counters;
//! - the frame buffer's capacity never exceeds the cap;
//! - every message re-encodes (prelude, typed headers, payload, both CRCs) to exactly the
//!   bytes it was decoded from, so the decoded frames tile the consumed input;
//! - a clean stream consumed every byte.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tokenmeter::stream::eventstream::{
    decode_invoke_chunk, EventStreamDecoder, FrameError, HeaderValue, Message,
    DEFAULT_MAX_FRAME_LEN,
};
use tokenmeter_fuzz::SplitInput;

#[derive(Debug, PartialEq, Eq)]
struct Decoded {
    /// Each message as its re-encoded header block and payload.
    messages: Vec<(Vec<u8>, Vec<u8>)>,
    error: Option<FrameError>,
    finish: Result<(), FrameError>,
    frames: u64,
    consumed: u64,
}

fn encode_headers(msg: &Message<'_>) -> Vec<u8> {
    let mut out = Vec::new();
    for h in msg.headers() {
        out.push(u8::try_from(h.name.len()).expect("header names are at most 255 bytes"));
        out.extend_from_slice(h.name.as_bytes());
        match h.value {
            HeaderValue::Bool(true) => out.push(0),
            HeaderValue::Bool(false) => out.push(1),
            HeaderValue::Byte(v) => {
                out.push(2);
                out.extend_from_slice(&v.to_be_bytes());
            }
            HeaderValue::Short(v) => {
                out.push(3);
                out.extend_from_slice(&v.to_be_bytes());
            }
            HeaderValue::Int(v) => {
                out.push(4);
                out.extend_from_slice(&v.to_be_bytes());
            }
            HeaderValue::Long(v) => {
                out.push(5);
                out.extend_from_slice(&v.to_be_bytes());
            }
            HeaderValue::Bytes(v) => {
                out.push(6);
                out.extend_from_slice(&u16::try_from(v.len()).expect("u16 length").to_be_bytes());
                out.extend_from_slice(v);
            }
            HeaderValue::String(v) => {
                out.push(7);
                out.extend_from_slice(&u16::try_from(v.len()).expect("u16 length").to_be_bytes());
                out.extend_from_slice(v.as_bytes());
            }
            HeaderValue::Timestamp(v) => {
                out.push(8);
                out.extend_from_slice(&v.to_be_bytes());
            }
            HeaderValue::Uuid(v) => {
                out.push(9);
                out.extend_from_slice(&v);
            }
        }
    }
    out
}

fn encode_frame(headers: &[u8], payload: &[u8]) -> Vec<u8> {
    let total = u32::try_from(16 + headers.len() + payload.len()).expect("frame fits u32");
    let mut out = Vec::new();
    out.extend_from_slice(&total.to_be_bytes());
    out.extend_from_slice(&u32::try_from(headers.len()).expect("fits").to_be_bytes());
    let prelude_crc = crc32fast::hash(&out);
    out.extend_from_slice(&prelude_crc.to_be_bytes());
    out.extend_from_slice(headers);
    out.extend_from_slice(payload);
    let crc = crc32fast::hash(&out);
    out.extend_from_slice(&crc.to_be_bytes());
    out
}

fn decode(chunks: &[&[u8]], cap: u32) -> Decoded {
    let mut dec = EventStreamDecoder::with_max_frame_len(cap);
    let mut messages = Vec::new();
    let mut error = None;
    let mut scratch = Vec::new();
    for chunk in chunks {
        let mut rest = *chunk;
        loop {
            let result = dec.decode(&mut rest);
            match result {
                Ok(Some(msg)) => {
                    // Exercise the accessors; their answers are re-checked via the encoding.
                    let _ = (
                        msg.kind(),
                        msg.event_type(),
                        msg.content_type(),
                        msg.exception_type(),
                    );
                    if decode_invoke_chunk(msg.payload(), &mut scratch).is_ok() {
                        assert!(scratch.len() <= msg.payload().len());
                    }
                    messages.push((encode_headers(&msg), msg.payload().to_vec()));
                }
                Ok(None) => {
                    assert!(rest.is_empty(), "Ok(None) left input unconsumed");
                    break;
                }
                Err(e) => {
                    assert!(rest.is_empty(), "an error must consume the chunk");
                    assert_eq!(dec.error(), Some(&e));
                    error.get_or_insert(e);
                    break;
                }
            }
            assert!(
                dec.buffer_capacity() <= cap.max(16) as usize,
                "frame buffer above the cap"
            );
        }
        assert!(
            dec.buffer_capacity() <= cap.max(16) as usize,
            "frame buffer above the cap"
        );
    }
    Decoded {
        messages,
        error,
        finish: dec.finish(),
        frames: dec.frames_decoded(),
        consumed: dec.bytes_consumed(),
    }
}

fuzz_target!(|data: &[u8]| {
    let input = SplitInput::parse(data);
    let cap = match input.selector & 3 {
        0 => DEFAULT_MAX_FRAME_LEN,
        1 => 16,
        2 => 100,
        _ => 4096,
    };
    let whole = decode(&[input.body], cap);
    let split = decode(&input.chunks(), cap);
    assert_eq!(whole, split, "split feeding changed the result");

    assert_eq!(whole.frames, whole.messages.len() as u64);
    let reencoded: Vec<u8> = whole
        .messages
        .iter()
        .flat_map(|(h, p)| encode_frame(h, p))
        .collect();
    assert!(reencoded.len() as u64 <= whole.consumed);
    assert_eq!(
        input.body.get(..reencoded.len()),
        Some(&reencoded[..]),
        "decoded frames do not re-encode to the input"
    );
    if whole.error.is_none() {
        assert_eq!(whole.consumed, input.body.len() as u64);
        if whole.finish.is_ok() {
            assert_eq!(
                reencoded, input.body,
                "a clean stream must be exactly its frames"
            );
        } else {
            assert!(matches!(whole.finish, Err(FrameError::Truncated { .. })));
        }
    } else {
        assert_eq!(whole.finish, Err(whole.error.clone().expect("checked")));
    }
});
