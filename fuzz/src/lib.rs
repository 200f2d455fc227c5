//! Helpers shared by the fuzz targets.
//!
//! Most targets check split-invariance: a streaming parser must give the same answer
//! whether the body arrives whole or in pieces cut anywhere. The fuzzer has to be able to
//! *choose* the cuts, so that a cut that breaks a parser can be found and minimised like any
//! other input. [`SplitInput`] therefore reads a small header off the front of the input:
//!
//! ```text
//! byte 0      low nibble: n, the number of chunk-size bytes that follow (0..=15)
//!             high nibble: a selector each target uses for its own mode (cap, API, ...)
//! bytes 1..=n chunk sizes, used in turn and cycled until the body is used up
//!             (a 0 feeds an empty chunk, which parsers must also accept)
//! the rest    the body
//! ```
//!
//! With n = 0 (or all sizes 0) the body is fed in one chunk. Seed files made from fixtures
//! by `run.sh` get a few such headers in front.

/// A fuzz input split into a mode selector, chunk sizes and the body.
#[derive(Debug, Clone, Copy)]
pub struct SplitInput<'a> {
    /// High nibble of the first byte (0..=15), for the target to pick a mode.
    pub selector: u8,
    sizes: &'a [u8],
    /// The bytes to parse.
    pub body: &'a [u8],
}

impl<'a> SplitInput<'a> {
    pub fn parse(data: &'a [u8]) -> Self {
        let Some((&head, rest)) = data.split_first() else {
            return Self {
                selector: 0,
                sizes: &[],
                body: &[],
            };
        };
        let n = usize::from(head & 0x0f).min(rest.len());
        let (sizes, body) = rest.split_at(n);
        Self {
            selector: head >> 4,
            sizes,
            body,
        }
    }

    /// The body cut into chunks by the header's sizes.
    pub fn chunks(&self) -> Vec<&'a [u8]> {
        split_cycling(self.body, self.sizes)
    }
}

/// Cuts `body` into chunks whose lengths cycle through `sizes`; one chunk when `sizes` is
/// empty or all zero. Empty chunks (size 0) are kept.
pub fn split_cycling<'a>(body: &'a [u8], sizes: &[u8]) -> Vec<&'a [u8]> {
    if sizes.iter().all(|&s| s == 0) {
        return vec![body];
    }
    let mut out = Vec::new();
    let mut rest = body;
    for &size in sizes.iter().cycle() {
        if rest.is_empty() {
            break;
        }
        let (chunk, tail) = rest.split_at(usize::from(size).min(rest.len()));
        out.push(chunk);
        rest = tail;
    }
    out
}

/// Standard base64 with `=` padding (RFC 4648 section 4), the reference for the decoder.
pub fn base64_encode(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let sextet = |v: u32| char::from(ALPHABET[(v & 63) as usize]);
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for group in bytes.chunks(3) {
        let b = |i: usize| u32::from(group.get(i).copied().unwrap_or(0));
        let acc = (b(0) << 16) | (b(1) << 8) | b(2);
        out.push(sextet(acc >> 18));
        out.push(sextet(acc >> 12));
        out.push(if group.len() > 1 {
            sextet(acc >> 6)
        } else {
            '='
        });
        out.push(if group.len() > 2 { sextet(acc) } else { '=' });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_selects_sizes_and_body() {
        let input = SplitInput::parse(&[0x32, 1, 2, b'a', b'b', b'c', b'd']);
        assert_eq!(input.selector, 3);
        assert_eq!(input.body, b"abcd");
        assert_eq!(input.chunks(), [&b"a"[..], b"bc", b"d"]);
        assert_eq!(SplitInput::parse(&[0x00, b'x']).chunks(), [&b"x"[..]]);
        assert_eq!(split_cycling(b"ab", &[0, 1]), [&b""[..], b"a", b"", b"b"]);
    }

    #[test]
    fn base64_reference_matches_rfc_vectors() {
        for (dec, enc) in [
            ("", ""),
            ("f", "Zg=="),
            ("fo", "Zm8="),
            ("foo", "Zm9v"),
            ("foobar", "Zm9vYmFy"),
        ] {
            assert_eq!(base64_encode(dec.as_bytes()), enc);
        }
    }
}
