//! Bounded gzip/deflate decoding (`decode::Decoder`).
//!
//! The selector picks gzip or deflate, the output bound, and whether the body is fed as is
//! (arbitrary compressed bytes) or is plain text that the target compresses first (raw
//! deflate, zlib, or gzip with optional name/comment fields and a second member). Checks:
//! - whole and split feeding give the same output, error, `finish` result and `total_out`,
//!   corrupt data included (everything decoded before the corruption, whatever the split);
//! - output never exceeds the bound, and `total_out` counts exactly what reached the sink;
//! - errors are sticky;
//! - round trip: compressed plain text decodes back to exactly that text (or to its first
//!   bytes and `TooLarge` when it is longer than the bound).
#![no_main]

use libfuzzer_sys::fuzz_target;
use miniz_oxide::deflate::{compress_to_vec, compress_to_vec_zlib};
use tokenmeter::decode::{Compression, DecodeError, Decoder};
use tokenmeter_fuzz::SplitInput;

#[derive(Debug, PartialEq, Eq)]
struct Decoded {
    output: Vec<u8>,
    error: Option<DecodeError>,
    finish: Result<(), DecodeError>,
    total_out: u64,
}

fn decode(compression: Compression, limit: u64, chunks: &[&[u8]]) -> Decoded {
    let mut decoder = Decoder::new(compression, limit);
    let mut output = Vec::new();
    let mut error = None;
    for chunk in chunks {
        let result = decoder.feed(chunk, &mut |piece: &[u8]| output.extend_from_slice(piece));
        if let Err(e) = result {
            if let Some(first) = &error {
                assert_eq!(first, &e, "error not sticky");
            }
            assert_eq!(decoder.error(), Some(&e));
            error.get_or_insert(e);
        }
        assert!(output.len() as u64 <= limit, "output past the bound");
        assert_eq!(decoder.total_out(), output.len() as u64);
    }
    let finish = decoder.finish();
    Decoded {
        output,
        error,
        finish,
        total_out: decoder.total_out(),
    }
}

fn gzip_member(body: &[u8], level: u8, named: bool) -> Vec<u8> {
    let flags = if named { 0x08 | 0x10 } else { 0 };
    let mut out = vec![0x1f, 0x8b, 8, flags, 0, 0, 0, 0, 0, 0xff];
    if named {
        out.extend_from_slice(b"name.json\0a comment\0");
    }
    out.extend_from_slice(&compress_to_vec(body, level));
    out.extend_from_slice(&crc32fast::hash(body).to_le_bytes());
    out.extend_from_slice(&(body.len() as u32).to_le_bytes());
    out
}

fuzz_target!(|data: &[u8]| {
    let input = SplitInput::parse(data);
    let s = input.selector;
    let limit = [1u64 << 20, 0, 7, 300][usize::from(s >> 2)];
    let round_trip = s & 2 != 0;
    let compression = if s & 1 == 0 {
        Compression::Gzip
    } else {
        Compression::Deflate
    };

    if !round_trip {
        let whole = decode(compression, limit, &[input.body]);
        let split = decode(compression, limit, &input.chunks());
        assert_eq!(whole, split, "split feeding changed the result");
        if whole.error.is_some() {
            assert_eq!(whole.finish.as_ref().err(), whole.error.as_ref());
        }
        return;
    }

    let plain = input.body;
    let level = (plain.first().copied().unwrap_or(0) % 10).max(1);
    let (compressed, expected): (Vec<u8>, Vec<u8>) = match compression {
        Compression::Gzip if plain.len() % 2 == 0 => {
            let mut two = gzip_member(plain, level, false);
            two.extend(gzip_member(plain, level, true));
            (two, [plain, plain].concat())
        }
        Compression::Gzip => (gzip_member(plain, level, true), plain.to_vec()),
        Compression::Deflate if plain.len() % 2 == 0 => {
            (compress_to_vec_zlib(plain, level), plain.to_vec())
        }
        Compression::Deflate => (compress_to_vec(plain, level), plain.to_vec()),
    };
    let chunks = tokenmeter_fuzz::split_cycling(&compressed, &[s | 1, 3, 250]);
    let got = decode(compression, limit, &chunks);
    if expected.len() as u64 <= limit {
        assert_eq!(got.error, None, "valid stream rejected");
        assert_eq!(got.finish, Ok(()));
        assert_eq!(got.output, expected, "round trip changed the bytes");
    } else {
        assert_eq!(got.error, Some(DecodeError::TooLarge { limit }));
        assert!(
            expected.starts_with(&got.output),
            "output before the bound differs"
        );
    }
});
