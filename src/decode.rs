//! Bounded streaming decompression of `content-encoding: gzip` and `deflate` bodies.
//!
//! The filter normally removes `accept-encoding` so upstreams answer uncompressed, but a
//! client or an upstream can still send compressed bodies, and usage hides at their end. This
//! decoder inflates chunk by chunk with fixed memory: miniz_oxide's core inflater and its 32 KiB
//! window, whose freshly written bytes are handed to a sink straight from the window, so
//! nothing grows with the body. The total output is capped (`max_decompressed_bytes`): a gzip
//! bomb stops at the cap with [`DecodeError::TooLarge`] instead of eating CPU or memory.
//!
//! Output depends only on the bytes, never on how they were split into chunks. That holds for
//! corrupt data too: everything the inflater decoded before the bad symbol reaches the sink
//! before [`DecodeError::Corrupt`], the same prefix for any split (usage read from it must not
//! change with the network's chunking). The core inflater is driven directly rather than
//! through miniz_oxide's `stream` wrapper because the wrapper copies the window into a
//! separate buffer and, on an error, drops whatever did not fit -- an amount that depends on
//! where the input was cut.
//!
//! Gzip headers (RFC 1952, with FEXTRA/FNAME/FCOMMENT/FHCRC) are parsed byte by byte, so any
//! chunk split works; trailers are skipped without checking the CRC (the meter reads bodies,
//! it does not vouch for them) and concatenated members are decoded in turn. HTTP `deflate`
//! is meant to be zlib (RFC 1950) but some servers send raw deflate (RFC 1951); the first two
//! bytes tell them apart, as browsers do.

use miniz_oxide::inflate::core::inflate_flags::{
    TINFL_FLAG_HAS_MORE_INPUT, TINFL_FLAG_IGNORE_ADLER32, TINFL_FLAG_PARSE_ZLIB_HEADER,
};
use miniz_oxide::inflate::core::{decompress, DecompressorOxide, TINFL_LZ_DICT_SIZE};
use miniz_oxide::inflate::TINFLStatus;
use thiserror::Error;

/// The LZ77 window, a power of two as the wrapping core inflater requires; the largest piece
/// handed to the sink.
const WINDOW_LEN: usize = TINFL_LZ_DICT_SIZE;

/// Input may continue in a later call; the checksum is skipped (see the module doc).
const RAW_FLAGS: u32 = TINFL_FLAG_HAS_MORE_INPUT | TINFL_FLAG_IGNORE_ADLER32;
const ZLIB_FLAGS: u32 = RAW_FLAGS | TINFL_FLAG_PARSE_ZLIB_HEADER;

const GZIP_FIXED_HEADER_LEN: u8 = 10;
const GZIP_TRAILER_LEN: u8 = 8;
const FHCRC: u8 = 0x02;
const FEXTRA: u8 = 0x04;
const FNAME: u8 = 0x08;
const FCOMMENT: u8 = 0x10;
const FRESERVED: u8 = 0xE0;

/// Why decoding stopped. After any error the decoder ignores further input.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum DecodeError {
    /// The decompressed body exceeded the configured bound; output stopped at the bound.
    #[error("decompressed body exceeds {limit} bytes")]
    TooLarge { limit: u64 },
    /// The gzip header is not a gzip header.
    #[error("invalid gzip header")]
    BadHeader,
    /// The compressed data is corrupt.
    #[error("corrupt compressed data")]
    Corrupt,
    /// The body ended before the compressed stream did.
    #[error("compressed body is truncated")]
    Truncated,
    /// A content encoding the decoder does not implement (`br`, `zstd`, stacked encodings).
    #[error("unsupported content encoding `{0}`")]
    Unsupported(String),
}

impl DecodeError {
    /// A short stable name for records and logs.
    pub fn kind(&self) -> &'static str {
        match self {
            DecodeError::TooLarge { .. } => "decompressed_too_large",
            DecodeError::BadHeader | DecodeError::Corrupt => "corrupt_encoding",
            DecodeError::Truncated => "truncated_encoding",
            DecodeError::Unsupported(_) => "unsupported_encoding",
        }
    }
}

/// The compressions the decoder understands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compression {
    Gzip,
    /// zlib-wrapped or raw deflate, detected from the data.
    Deflate,
}

/// Reads a `content-encoding` header value: `Ok(None)` for identity (no decoding needed).
pub fn parse_content_encoding(value: &str) -> Result<Option<Compression>, DecodeError> {
    let v = value.trim();
    if v.is_empty() || v.eq_ignore_ascii_case("identity") {
        Ok(None)
    } else if v.eq_ignore_ascii_case("gzip") || v.eq_ignore_ascii_case("x-gzip") {
        Ok(Some(Compression::Gzip))
    } else if v.eq_ignore_ascii_case("deflate") {
        Ok(Some(Compression::Deflate))
    } else {
        Err(DecodeError::Unsupported(v.chars().take(32).collect()))
    }
}

/// Where the decoder is within the compressed stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// Gzip member header: the fixed 10 bytes.
    GzipFixed { got: u8 },
    /// FEXTRA length, little endian.
    GzipExtraLen { got: u8, len: u16 },
    GzipExtra { remaining: u16 },
    GzipName,
    GzipComment,
    GzipHeaderCrc { remaining: u8 },
    /// Deflate: waiting for the first byte to tell zlib from raw.
    DeflateSniff,
    /// Deflate: one byte held back while waiting for the second.
    DeflateSniffed { first: u8 },
    /// Inflating.
    Body,
    GzipTrailer { remaining: u8 },
    /// Gzip member complete; more input may start another member.
    MemberEnd,
    /// Deflate stream complete; trailing bytes are ignored.
    Done,
    Failed,
}

/// A streaming, bounded gzip/deflate decoder.
pub struct Decoder {
    compression: Compression,
    inflater: Box<DecompressorOxide>,
    /// The inflater's wrapping window; `window_pos` is where it writes next.
    window: Box<[u8]>,
    window_pos: usize,
    /// `RAW_FLAGS` or `ZLIB_FLAGS`, for the current deflate stream.
    flags: u32,
    phase: Phase,
    gzip_flags: u8,
    total_out: u64,
    limit: u64,
    error: Option<DecodeError>,
}

impl std::fmt::Debug for Decoder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Decoder")
            .field("compression", &self.compression)
            .field("phase", &self.phase)
            .field("total_out", &self.total_out)
            .field("limit", &self.limit)
            .finish()
    }
}

impl Decoder {
    /// A decoder that delivers at most `max_output` decompressed bytes.
    pub fn new(compression: Compression, max_output: u64) -> Self {
        let phase = match compression {
            Compression::Gzip => Phase::GzipFixed { got: 0 },
            Compression::Deflate => Phase::DeflateSniff,
        };
        Self {
            compression,
            inflater: Box::default(),
            window: vec![0u8; WINDOW_LEN].into_boxed_slice(),
            window_pos: 0,
            flags: RAW_FLAGS,
            phase,
            gzip_flags: 0,
            total_out: 0,
            limit: max_output,
            error: None,
        }
    }

    /// Decompressed bytes delivered so far.
    pub fn total_out(&self) -> u64 {
        self.total_out
    }

    /// The error that stopped decoding, if any.
    pub fn error(&self) -> Option<&DecodeError> {
        self.error.as_ref()
    }

    /// Decodes one chunk of compressed input, handing decompressed pieces to `sink`.
    /// Once an error has been returned, later calls return it again without work.
    pub fn feed(&mut self, input: &[u8], sink: &mut dyn FnMut(&[u8])) -> Result<(), DecodeError> {
        if let Some(e) = &self.error {
            return Err(e.clone());
        }
        let result = self.feed_inner(input, sink);
        if let Err(e) = &result {
            self.error = Some(e.clone());
            self.phase = Phase::Failed;
        }
        result
    }

    /// Declares the end of the compressed input: an unfinished stream is [`DecodeError::Truncated`].
    pub fn finish(&mut self) -> Result<(), DecodeError> {
        if let Some(e) = &self.error {
            return Err(e.clone());
        }
        match self.phase {
            Phase::MemberEnd | Phase::Done => Ok(()),
            // Nothing at all arrived: an empty body is not an error.
            Phase::GzipFixed { got: 0 } | Phase::DeflateSniff if self.total_out == 0 => Ok(()),
            _ => {
                self.error = Some(DecodeError::Truncated);
                Err(DecodeError::Truncated)
            }
        }
    }

    fn feed_inner(&mut self, mut input: &[u8], sink: &mut dyn FnMut(&[u8])) -> Result<(), DecodeError> {
        while !input.is_empty() {
            input = match self.phase {
                Phase::Body => {
                    let rest = self.inflate(input, sink)?;
                    // The inflater always consumes input it can use; refusing all of it
                    // would spin this loop forever, so treat it as corrupt data.
                    if self.phase == Phase::Body && rest.len() == input.len() {
                        return Err(DecodeError::Corrupt);
                    }
                    rest
                }
                Phase::DeflateSniffed { first } => {
                    let Some((&second, rest)) = input.split_first() else { break };
                    self.start_deflate(is_zlib_header(first, second));
                    // The held byte goes in first; the decompressor keeps state between calls.
                    let first = [first];
                    let held = self.inflate(&first, sink)?;
                    if !held.is_empty() {
                        return Err(DecodeError::Corrupt);
                    }
                    if self.phase == Phase::Body {
                        self.inflate(std::slice::from_ref(&second), sink)?;
                    }
                    rest
                }
                Phase::Done | Phase::Failed => return Ok(()),
                _ => self.header_byte(input)?,
            };
        }
        Ok(())
    }

    fn start_deflate(&mut self, zlib: bool) {
        self.start_body(if zlib { ZLIB_FLAGS } else { RAW_FLAGS });
    }

    /// Starts a fresh deflate stream; the window is cleared so a corrupt back-reference into
    /// it reads zeros, not an earlier member.
    fn start_body(&mut self, flags: u32) {
        self.inflater.init();
        self.window.fill(0);
        self.window_pos = 0;
        self.flags = flags;
        self.phase = Phase::Body;
    }

    /// Consumes header, sniff and trailer bytes one at a time; returns the rest of the input.
    fn header_byte<'a>(&mut self, input: &'a [u8]) -> Result<&'a [u8], DecodeError> {
        let Some((&b, rest)) = input.split_first() else { return Ok(input) };
        self.phase = match self.phase {
            Phase::GzipFixed { got } => {
                let ok = match got {
                    0 => b == 0x1f,
                    1 => b == 0x8b,
                    2 => b == 8, // CM: deflate is the only method defined
                    3 => {
                        self.gzip_flags = b;
                        b & FRESERVED == 0
                    }
                    _ => true,
                };
                if !ok {
                    return Err(DecodeError::BadHeader);
                }
                if got + 1 < GZIP_FIXED_HEADER_LEN {
                    Phase::GzipFixed { got: got + 1 }
                } else {
                    self.after_gzip_field(FEXTRA)
                }
            }
            Phase::GzipExtraLen { got: 0, .. } => Phase::GzipExtraLen { got: 1, len: u16::from(b) },
            Phase::GzipExtraLen { len, .. } => {
                let len = len | (u16::from(b) << 8);
                if len == 0 {
                    self.after_gzip_field(FNAME)
                } else {
                    Phase::GzipExtra { remaining: len }
                }
            }
            Phase::GzipExtra { remaining } => {
                // Skip the whole extra field at once rather than byte by byte.
                let take = usize::from(remaining).min(input.len());
                let left = remaining.saturating_sub(u16::try_from(take).unwrap_or(u16::MAX));
                self.phase = if left == 0 { self.after_gzip_field(FNAME) } else { Phase::GzipExtra { remaining: left } };
                return Ok(input.get(take..).unwrap_or_default());
            }
            Phase::GzipName | Phase::GzipComment => {
                let field = if self.phase == Phase::GzipName { FCOMMENT } else { FHCRC };
                return Ok(match memchr::memchr(0, input) {
                    Some(nul) => {
                        self.phase = self.after_gzip_field(field);
                        input.get(nul + 1..).unwrap_or_default()
                    }
                    None => &[],
                });
            }
            Phase::GzipHeaderCrc { remaining } => {
                if remaining > 1 {
                    Phase::GzipHeaderCrc { remaining: remaining - 1 }
                } else {
                    self.start_body(RAW_FLAGS);
                    self.phase
                }
            }
            Phase::GzipTrailer { remaining } => {
                if remaining > 1 {
                    Phase::GzipTrailer { remaining: remaining - 1 }
                } else {
                    Phase::MemberEnd
                }
            }
            Phase::MemberEnd => {
                if b == 0 {
                    // Some servers pad after the last member; zero bytes are not a member.
                    Phase::MemberEnd
                } else {
                    return Ok(self.start_member(input));
                }
            }
            Phase::DeflateSniff => Phase::DeflateSniffed { first: b },
            other => other,
        };
        Ok(rest)
    }

    fn start_member<'a>(&mut self, input: &'a [u8]) -> &'a [u8] {
        self.gzip_flags = 0;
        self.phase = Phase::GzipFixed { got: 0 };
        input
    }

    /// The next header phase at or after `field` (FEXTRA, FNAME, FCOMMENT, FHCRC in order)
    /// whose flag is set, else the body.
    fn after_gzip_field(&mut self, field: u8) -> Phase {
        let flags = self.gzip_flags;
        if field == FEXTRA && flags & FEXTRA != 0 {
            return Phase::GzipExtraLen { got: 0, len: 0 };
        }
        if (field == FEXTRA || field == FNAME) && flags & FNAME != 0 {
            return Phase::GzipName;
        }
        if field != FHCRC && flags & FCOMMENT != 0 {
            return Phase::GzipComment;
        }
        if flags & FHCRC != 0 {
            return Phase::GzipHeaderCrc { remaining: 2 };
        }
        self.start_body(RAW_FLAGS);
        Phase::Body
    }

    /// Runs the inflater over `input` until it needs more input or the stream ends; returns
    /// the unconsumed input (only non-empty once the deflate stream has ended).
    fn inflate<'a>(&mut self, mut input: &'a [u8], sink: &mut dyn FnMut(&[u8])) -> Result<&'a [u8], DecodeError> {
        loop {
            let start = self.window_pos;
            let (status, consumed, written) = decompress(&mut self.inflater, input, &mut self.window, start, self.flags);
            input = input.get(consumed..).unwrap_or_default();
            // Bytes decoded before a failure are delivered too: they are part of the stream
            // whatever the split, and the caller learns of the failure right after.
            if written > 0 {
                self.window_pos = (start + written) & (WINDOW_LEN - 1);
                self.emit(start, written, sink)?;
            }
            match status {
                TINFLStatus::Done => {
                    self.phase = match self.compression {
                        Compression::Gzip => Phase::GzipTrailer { remaining: GZIP_TRAILER_LEN },
                        Compression::Deflate => Phase::Done,
                    };
                    return Ok(input);
                }
                // Every byte was taken into the inflater's bit buffer.
                TINFLStatus::NeedsMoreInput => return Ok(input),
                // The window's end was reached: it wraps, and decoding goes on.
                TINFLStatus::HasMoreOutput if consumed > 0 || written > 0 => {}
                _ => return Err(DecodeError::Corrupt),
            }
        }
    }

    /// Hands `written` bytes at `start` in the window to the sink, up to the output bound.
    fn emit(&mut self, start: usize, written: usize, sink: &mut dyn FnMut(&[u8])) -> Result<(), DecodeError> {
        let room = self.limit.saturating_sub(self.total_out);
        let n = u64::try_from(written).unwrap_or(u64::MAX);
        let deliver = usize::try_from(n.min(room)).unwrap_or(0);
        if let Some(piece) = self.window.get(start..start.saturating_add(deliver)) {
            if !piece.is_empty() {
                sink(piece);
            }
        }
        self.total_out = self.total_out.saturating_add(n.min(room));
        if n > room {
            return Err(DecodeError::TooLarge { limit: self.limit });
        }
        Ok(())
    }
}

/// RFC 1950: CM = 8, window <= 32 KiB, and the 16-bit header a multiple of 31.
fn is_zlib_header(cmf: u8, flg: u8) -> bool {
    cmf & 0x0f == 8 && cmf >> 4 <= 7 && (u16::from(cmf) << 8 | u16::from(flg)) % 31 == 0
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing)]
    use super::*;
    use miniz_oxide::deflate::{compress_to_vec, compress_to_vec_zlib};

    /// A body with structure and some repetition, like a JSON response.
    fn sample(len: usize) -> Vec<u8> {
        let mut out = Vec::with_capacity(len);
        let mut x: u32 = 12345;
        while out.len() < len {
            x = x.wrapping_mul(1_103_515_245).wrapping_add(12345);
            let word = ["{\"usage\":", "\"prompt_tokens\":", "42,", "lorem ", "ipsum\n"][(x >> 16) as usize % 5];
            out.extend_from_slice(word.as_bytes());
            out.push(b'a' + (x >> 24) as u8 % 26);
        }
        out.truncate(len);
        out
    }

    fn gzip(data: &[u8], flags: u8) -> Vec<u8> {
        let mut out = vec![0x1f, 0x8b, 8, flags, 1, 2, 3, 4, 0, 3];
        if flags & FEXTRA != 0 {
            out.extend_from_slice(&[5, 0, b'A', b'B', 3, 0, 9]);
        }
        if flags & FNAME != 0 {
            out.extend_from_slice(b"usage.json\0");
        }
        if flags & FCOMMENT != 0 {
            out.extend_from_slice(b"a comment\0");
        }
        if flags & FHCRC != 0 {
            out.extend_from_slice(&[0xaa, 0xbb]);
        }
        out.extend_from_slice(&compress_to_vec(data, 6));
        out.extend_from_slice(&crc32fast::hash(data).to_le_bytes());
        out.extend_from_slice(&(data.len() as u32).to_le_bytes());
        out
    }

    fn decode_chunks(c: Compression, chunks: &[&[u8]], limit: u64) -> (Vec<u8>, Result<(), DecodeError>) {
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

    /// Decodes `encoded` split at every byte position (two chunks), and byte by byte.
    fn assert_every_split(c: Compression, encoded: &[u8], expected: &[u8]) {
        for i in 0..=encoded.len() {
            let (a, b) = encoded.split_at(i);
            let (out, r) = decode_chunks(c, &[a, b], u64::MAX);
            assert_eq!(r, Ok(()), "split at {i}");
            assert!(out == expected, "split at {i}: output differs");
        }
        let bytes: Vec<&[u8]> = encoded.chunks(1).collect();
        let (out, r) = decode_chunks(c, &bytes, u64::MAX);
        assert_eq!(r, Ok(()));
        assert!(out == expected, "byte by byte: output differs");
    }

    #[test]
    fn gzip_round_trips_at_every_split_with_every_header_field() {
        let data = sample(3000);
        for flags in [0, FEXTRA, FNAME, FCOMMENT, FHCRC, FEXTRA | FNAME | FCOMMENT | FHCRC] {
            assert_every_split(Compression::Gzip, &gzip(&data, flags), &data);
        }
    }

    #[test]
    fn zlib_and_raw_deflate_round_trip_at_every_split() {
        let data = sample(3000);
        assert_every_split(Compression::Deflate, &compress_to_vec_zlib(&data, 6), &data);
        assert_every_split(Compression::Deflate, &compress_to_vec(&data, 6), &data);
        // Stored (uncompressed) blocks exercise a different inflater path.
        assert_every_split(Compression::Deflate, &compress_to_vec(&data, 0), &data);
    }

    #[test]
    fn output_larger_than_the_window_and_buffer_is_complete() {
        // Highly compressible: one small input chunk expands past the 32 KiB window and the
        // 8 KiB output buffer, so pending output must be drained.
        let data = sample(200_000);
        let mut big = data.clone();
        big.extend(std::iter::repeat_n(b'x', 300_000));
        for encoded in [gzip(&big, 0), compress_to_vec_zlib(&big, 9)] {
            let c = if encoded[0] == 0x1f { Compression::Gzip } else { Compression::Deflate };
            let chunks: Vec<&[u8]> = encoded.chunks(4096).collect();
            let (out, r) = decode_chunks(c, &chunks, u64::MAX);
            assert_eq!(r, Ok(()));
            assert!(out == big);
        }
    }

    #[test]
    fn concatenated_gzip_members_are_decoded_in_turn() {
        let (a, b) = (sample(500), b"second member".to_vec());
        let mut encoded = gzip(&a, 0);
        encoded.extend_from_slice(&gzip(&b, FNAME));
        let mut expected = a.clone();
        expected.extend_from_slice(&b);
        assert_every_split(Compression::Gzip, &encoded, &expected);
    }

    #[test]
    fn a_gzip_bomb_stops_at_the_bound_with_bounded_output() {
        // 16 MiB of zeros compresses to ~16 KiB (kept modest for the wasm32 test runner).
        let zeros = vec![0u8; 16 * 1024 * 1024];
        let bomb = gzip(&zeros, 0);
        drop(zeros);
        assert!(bomb.len() < 50_000);
        let limit = 1024 * 1024 + 7;
        let mut d = Decoder::new(Compression::Gzip, limit);
        let (mut delivered, mut largest, mut calls) = (0u64, 0usize, 0u32);
        let mut result = Ok(());
        for chunk in bomb.chunks(16 * 1024) {
            result = d.feed(chunk, &mut |p: &[u8]| {
                delivered += p.len() as u64;
                largest = largest.max(p.len());
                calls += 1;
            });
            if result.is_err() {
                break;
            }
        }
        assert_eq!(result, Err(DecodeError::TooLarge { limit }));
        assert_eq!(delivered, limit, "output stops exactly at the bound");
        assert_eq!(d.total_out(), limit);
        assert!(largest <= WINDOW_LEN, "pieces never exceed the fixed window");
        // Sticky: later input does no work.
        let mut more = 0;
        assert!(d.feed(&bomb[..100], &mut |p: &[u8]| more += p.len()).is_err());
        assert_eq!(more, 0);
        assert_eq!(d.finish(), Err(DecodeError::TooLarge { limit }));
    }

    #[test]
    fn output_exactly_at_the_bound_is_accepted() {
        let data = sample(10_000);
        let (out, r) = decode_chunks(Compression::Gzip, &[&gzip(&data, 0)], 10_000);
        assert_eq!((out.len(), r), (10_000, Ok(())));
        let (_, r) = decode_chunks(Compression::Gzip, &[&gzip(&data, 0)], 9_999);
        assert_eq!(r, Err(DecodeError::TooLarge { limit: 9_999 }));
    }

    #[test]
    fn bad_headers_corruption_and_truncation_are_reported() {
        let data = sample(2000);
        let (_, r) = decode_chunks(Compression::Gzip, &[b"{\"not\":\"gzip\"}"], u64::MAX);
        assert_eq!(r, Err(DecodeError::BadHeader));
        let mut reserved = gzip(&data, 0);
        reserved[3] = 0x20;
        assert_eq!(decode_chunks(Compression::Gzip, &[&reserved], u64::MAX).1, Err(DecodeError::BadHeader));
        let encoded = gzip(&data, 0);
        let cut = &encoded[..encoded.len() / 2];
        assert_eq!(decode_chunks(Compression::Gzip, &[cut], u64::MAX).1, Err(DecodeError::Truncated));
        // A gzip trailer cut short is truncation too.
        let cut = &encoded[..encoded.len() - 3];
        assert_eq!(decode_chunks(Compression::Gzip, &[cut], u64::MAX).1, Err(DecodeError::Truncated));
        // Block type 3 is invalid in deflate.
        assert_eq!(decode_chunks(Compression::Deflate, &[&[0x07, 0, 0, 0]], u64::MAX).1, Err(DecodeError::Corrupt));
        // An empty body is fine.
        assert_eq!(decode_chunks(Compression::Gzip, &[], u64::MAX), (Vec::new(), Ok(())));
    }

    #[test]
    fn bytes_decoded_before_corruption_all_arrive_at_every_split() {
        // A 20,000-byte stored block (more than miniz_oxide's stream wrapper could hand over
        // in one call) followed by a block of the invalid type 3: the corruption is found in
        // the same inflater call that decoded the block when the body comes whole, in a later
        // one when it is split. Either way all 20,000 bytes, then `Corrupt`.
        let data = sample(20_000);
        let mut deflate = vec![0x00, 0x20, 0x4e, 0xdf, 0xb1];
        deflate.extend_from_slice(&data);
        deflate.extend_from_slice(&[0x07, 0, 0, 0]);
        let mut gzip = vec![0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 3];
        gzip.extend_from_slice(&deflate);
        for (c, bad) in [(Compression::Deflate, deflate), (Compression::Gzip, gzip)] {
            let whole = decode_chunks(c, &[&bad], u64::MAX);
            assert_eq!(whole.1, Err(DecodeError::Corrupt));
            assert!(whole.0 == data, "{c:?} whole: {} bytes", whole.0.len());
            for i in (0..=bad.len()).step_by(101) {
                let (a, b) = bad.split_at(i);
                let split = decode_chunks(c, &[a, b], u64::MAX);
                assert!(split == whole, "{c:?} split at {i}: {} bytes, {:?}", split.0.len(), split.1);
            }
            let small: Vec<&[u8]> = bad.chunks(7).collect();
            assert!(decode_chunks(c, &small, u64::MAX) == whole, "{c:?} in 7-byte chunks");
        }
    }

    #[test]
    fn content_encoding_values_are_classified() {
        assert_eq!(parse_content_encoding("gzip"), Ok(Some(Compression::Gzip)));
        assert_eq!(parse_content_encoding(" X-GZIP "), Ok(Some(Compression::Gzip)));
        assert_eq!(parse_content_encoding("deflate"), Ok(Some(Compression::Deflate)));
        assert_eq!(parse_content_encoding("identity"), Ok(None));
        assert_eq!(parse_content_encoding(""), Ok(None));
        assert_eq!(parse_content_encoding("br"), Err(DecodeError::Unsupported("br".into())));
        assert!(parse_content_encoding("gzip, br").is_err());
    }
}
