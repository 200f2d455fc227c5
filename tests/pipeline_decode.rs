//! Property tests of the bounded decoder: any body, any chunking, any limit.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing)]

use miniz_oxide::deflate::{compress_to_vec, compress_to_vec_zlib};
use proptest::prelude::*;
use tokenmeter::decode::{Compression, DecodeError, Decoder};

fn gzip(data: &[u8], name: Option<&[u8]>) -> Vec<u8> {
    let flags = if name.is_some() { 0x08 } else { 0 };
    let mut out = vec![0x1f, 0x8b, 8, flags, 0, 0, 0, 0, 0, 255];
    if let Some(n) = name {
        out.extend_from_slice(n);
        out.push(0);
    }
    out.extend_from_slice(&compress_to_vec(data, 6));
    out.extend_from_slice(&crc32fast::hash(data).to_le_bytes());
    out.extend_from_slice(&(data.len() as u32).to_le_bytes());
    out
}

/// Splits `data` at the given (unsorted, possibly out-of-range) cut points.
fn split<'a>(data: &'a [u8], cuts: &[usize]) -> Vec<&'a [u8]> {
    let mut cuts: Vec<usize> = cuts.iter().map(|c| c % (data.len() + 1)).collect();
    cuts.sort_unstable();
    let mut out = Vec::new();
    let mut at = 0;
    for c in cuts {
        out.push(&data[at..c]);
        at = c;
    }
    out.push(&data[at..]);
    out
}

fn decode(c: Compression, chunks: &[&[u8]], limit: u64) -> (Vec<u8>, Result<(), DecodeError>) {
    let mut d = Decoder::new(c, limit);
    let mut out = Vec::new();
    for chunk in chunks {
        if let Err(e) = d.feed(chunk, &mut |p: &[u8]| out.extend_from_slice(p)) {
            return (out, Err(e));
        }
    }
    let r = d.finish();
    (out, r)
}

/// Compressible bodies: runs of a few symbols.
fn body() -> impl Strategy<Value = Vec<u8>> {
    prop::collection::vec((prop::sample::select(b"{}\":,ab0 \n".to_vec()), 1usize..40), 0..200)
        .prop_map(|runs| runs.into_iter().flat_map(|(b, n)| std::iter::repeat_n(b, n)).collect())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    #[test]
    fn any_body_round_trips_under_any_chunking(data in body(), cuts in prop::collection::vec(any::<usize>(), 0..12), kind in 0u8..4) {
        let (c, encoded) = match kind {
            0 => (Compression::Gzip, gzip(&data, None)),
            1 => (Compression::Gzip, gzip(&data, Some(b"body.json"))),
            2 => (Compression::Deflate, compress_to_vec_zlib(&data, 6)),
            _ => (Compression::Deflate, compress_to_vec(&data, 1)),
        };
        let (out, r) = decode(c, &split(&encoded, &cuts), u64::MAX);
        prop_assert_eq!(r, Ok(()));
        prop_assert_eq!(out, data);
    }

    #[test]
    fn output_never_exceeds_the_limit_and_is_a_prefix(data in body(), limit in 0u64..3000, cuts in prop::collection::vec(any::<usize>(), 0..6)) {
        let encoded = gzip(&data, None);
        let (out, r) = decode(Compression::Gzip, &split(&encoded, &cuts), limit);
        prop_assert!(out.len() as u64 <= limit);
        prop_assert_eq!(&out[..], &data[..out.len()]);
        if data.len() as u64 > limit {
            prop_assert_eq!(r, Err(DecodeError::TooLarge { limit }));
        } else {
            prop_assert_eq!(r, Ok(()));
        }
    }

    #[test]
    fn garbage_never_panics_and_stays_bounded(junk in prop::collection::vec(any::<u8>(), 0..600), gz in any::<bool>(), cuts in prop::collection::vec(any::<usize>(), 0..6)) {
        // Behind a valid gzip header the junk reaches the inflater rather than the header check.
        let (c, input) = if gz {
            (Compression::Gzip, [&[0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 255][..], &junk].concat())
        } else {
            (Compression::Deflate, junk)
        };
        let (out, _) = decode(c, &split(&input, &cuts), 10_000);
        prop_assert!(out.len() <= 10_000);
    }
}
