//! Inputs the fuzzers (fuzz/, target `decode`) found against the bounded gzip/deflate decoder.
//! Each test feeds the minimised input through the public API and checks the invariant the
//! target asserted: any chunk split gives the same output and result as the whole body.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)] // tests

use tokenmeter::decode::{Compression, DecodeError, Decoder};

/// Corrupt raw deflate (it starts with `\n`, a stored-block header that is never completed
/// properly) that inflates to ~8 KiB before the decoder notices.
const CORRUPT_DEFLATE: [u8; 100] = [
    0x0a, 0x20, 0x49, 0x50, 0x65, 0x38, 0x79, 0x68, 0x74, 0x38, 0x6f, 0x38, 0x79, 0x68, 0x74, 0x50,
    0x7a, 0x54, 0x68, 0x50, 0x79, 0x68, 0x74, 0x50, 0x7a, 0x54, 0x68, 0x74, 0x50, 0x7a, 0x54, 0x68,
    0x74, 0x50, 0x65, 0x38, 0x79, 0x68, 0x74, 0x50, 0x7a, 0x54, 0x68, 0x38, 0x79, 0x68, 0x74, 0x50,
    0x7a, 0x54, 0x68, 0x50, 0x79, 0x68, 0x74, 0x50, 0x7a, 0x54, 0x68, 0x74, 0x50, 0x7a, 0x54, 0x68,
    0x50, 0x79, 0x68, 0x74, 0x50, 0x65, 0x38, 0x79, 0x68, 0x74, 0x50, 0x7a, 0x54, 0x68, 0x38, 0x79,
    0x68, 0x74, 0x50, 0x7a, 0x54, 0x7a, 0x54, 0x68, 0x38, 0x79, 0x68, 0x74, 0x50, 0x7a, 0x54, 0x68,
    0x50, 0x49, 0x00, 0x6e,
];

/// The chunk sizes the fuzzer chose, cycled over the body.
const SIZES: [usize; 12] = [20, 0, 32, 48, 123, 28, 6, 0, 28, 0, 48, 123];

fn decode(chunks: &[&[u8]]) -> (Vec<u8>, Option<DecodeError>, Result<(), DecodeError>) {
    let mut decoder = Decoder::new(Compression::Deflate, 1 << 20);
    let mut output = Vec::new();
    let mut error = None;
    for chunk in chunks {
        if let Err(e) = decoder.feed(chunk, &mut |piece: &[u8]| output.extend_from_slice(piece)) {
            error.get_or_insert(e);
        }
    }
    let finish = decoder.finish();
    (output, error, finish)
}

// Both feeds end in `Corrupt`. Before the fix the whole body delivered 8,193 bytes first and
// the split one 8,231: miniz_oxide's stream wrapper dropped decoded bytes that did not fit its
// output buffer when the error came, an amount set by where the chunks were cut. The decoder
// now delivers every byte decoded before the bad symbol, whatever the split.
#[test]
fn corrupt_deflate_gives_the_same_output_however_split() {
    let mut chunks = Vec::new();
    let mut rest = &CORRUPT_DEFLATE[..];
    for &size in SIZES.iter().cycle() {
        if rest.is_empty() {
            break;
        }
        let (chunk, tail) = rest.split_at(size.min(rest.len()));
        chunks.push(chunk);
        rest = tail;
    }
    let whole = decode(&[&CORRUPT_DEFLATE]);
    let split = decode(&chunks);
    assert_eq!(whole.1, Some(DecodeError::Corrupt));
    assert_eq!(
        (whole.0.len(), &whole.1, &whole.2),
        (split.0.len(), &split.1, &split.2)
    );
    assert_eq!(whole.0, split.0);
}
