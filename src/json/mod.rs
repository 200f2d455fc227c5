//! The incremental JSON scanner every extractor reads bodies with.
//!
//! LLM bodies arrive in arbitrary chunks, can be huge (a 100 MB embeddings response, a
//! Responses API `response.completed` event carrying the whole response) and can be hostile
//! (100,000 nested brackets, 400-digit numbers). A tree parser would buffer the body; this
//! module instead runs a byte-oriented state machine that keeps only a bounded path (object
//! keys and array indices down to [`MAX_TRACKED_DEPTH`] levels) and reports each scalar with
//! its [`Path`] to a [`Visitor`]. Deeper nesting is only counted, never stacked, so memory is
//! fixed at construction and nothing recurses. String contents are skipped with `memchr`
//! unless the visitor asks for them, and then only the first [`MAX_STRING_BYTES`] are kept.
//! Numbers are classified on the fly (a token count is a non-negative integer); a visitor
//! that needs a number's exact decimal text (a provider-reported cost such as `1.2e-05`,
//! which no float may touch) asks for it and gets at most [`MAX_NUMBER_BYTES`] of it.
//! Invalid input moves the scanner into a typed [`JsonError`] state; it never panics.

mod path;
mod scanner;

pub use path::{Path, Segment, Step};
pub use scanner::Scanner;

/// Levels of nesting whose keys and indices are tracked. Values nested deeper are skipped
/// (their brackets are counted and their strings skipped) and never reported; no provider
/// puts usage deeper than a handful of levels.
pub const MAX_TRACKED_DEPTH: usize = 32;

/// Bytes of an object key that are kept for path matching. A longer key is reported as
/// [`Segment::LongKey`], which matches no pattern.
pub const MAX_KEY_BYTES: usize = 64;

/// Bytes of a string value kept when the visitor asks for it (model names, ids, reasons).
pub const MAX_STRING_BYTES: usize = 256;

/// Bytes of a number's text kept when the visitor asks for it ([`Visitor::wants_number_text`]).
/// A longer number (valid JSON allows any length) is reported without its text: no money
/// amount needs 64 characters, and the bound keeps the scanner's state fixed.
pub const MAX_NUMBER_BYTES: usize = 64;

/// A JSON number as far as metering cares.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Number<'a> {
    /// A non-negative integer without fraction or exponent; saturates at `u64::MAX`.
    Integer(u64),
    /// Anything else (negative, fractional, exponent): valid JSON but never a token count.
    Other,
    /// The number exactly as written (JSON number grammar, at most [`MAX_NUMBER_BYTES`]),
    /// reported instead of the two above when the visitor asked for the text and it fits.
    Text(&'a str),
}

/// A string value: its decoded text when the visitor asked for it, and its raw size.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct JsonStr<'a> {
    /// Decoded text (escapes resolved), at most [`MAX_STRING_BYTES`] bytes, cut at a character
    /// boundary; `None` when the visitor did not want it. Invalid UTF-8 becomes U+FFFD.
    pub text: Option<&'a str>,
    /// True when the text was cut at [`MAX_STRING_BYTES`].
    pub truncated: bool,
    /// Bytes between the quotes as they appeared on the wire (escapes undecoded), counted
    /// whether or not the text was captured; used to estimate streamed output size.
    pub raw_len: u64,
}

/// A scalar value reported to the visitor.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scalar<'a> {
    Null,
    Bool(bool),
    Number(Number<'a>),
    String(JsonStr<'a>),
}

impl Scalar<'_> {
    /// The value as a token count, when it is one.
    pub fn as_u64(&self) -> Option<u64> {
        match self {
            Scalar::Number(Number::Integer(n)) => Some(*n),
            _ => None,
        }
    }

    /// The text of a number whose text the visitor asked for.
    pub fn as_number_text(&self) -> Option<&str> {
        match self {
            Scalar::Number(Number::Text(t)) => Some(t),
            _ => None,
        }
    }

    /// The captured text of a string value.
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Scalar::String(s) => s.text,
            _ => None,
        }
    }

    pub fn as_bool(&self) -> Option<bool> {
        match self {
            Scalar::Bool(b) => Some(*b),
            _ => None,
        }
    }
}

/// A visitor's opaque per-value interest word. The scanner only stores and hands it back;
/// `0` means "nothing here or below matters" and makes the scanner skip the value unread
/// (containers by bracket counting), which is what keeps extraction fast. An extractor
/// typically uses it as a bitmask of the rules that can still match.
pub type Interest = u64;

/// What the scanner tells its consumer. Paths are relative to the current top-level value.
///
/// The interest methods default to "everything matters", so a visitor that only
/// implements [`Visitor::scalar`] sees every scalar with its path. `root`, `key`, `index`,
/// `wants_string` and `wants_number_text` must be pure functions of their arguments: the
/// scanner's fast path may ask again when it hands a value back to the general path.
pub trait Visitor {
    /// Interest of a top-level value.
    fn root(&mut self) -> Interest {
        Interest::MAX
    }

    /// Interest of the member `key` of an object with interest `parent`, at `depth` (0 for
    /// a member of the top-level object). `key` is `None` when it exceeded [`MAX_KEY_BYTES`].
    fn key(&mut self, parent: Interest, _depth: usize, _key: Option<&[u8]>) -> Interest {
        parent
    }

    /// Interest of element `index` of an array with interest `parent`, at `depth`.
    fn index(&mut self, parent: Interest, _depth: usize, _index: u64) -> Interest {
        parent
    }

    /// Asked when a string value with non-zero interest starts; return true to have its
    /// text captured (bounded). Skipped strings cost a `memchr` pass and nothing else.
    fn wants_string(&mut self, _interest: Interest, _path: &Path<'_>) -> bool {
        false
    }

    /// Asked when a number with non-zero interest starts; return true to have it reported as
    /// [`Number::Text`] (when it fits [`MAX_NUMBER_BYTES`]). Token counts do not need it: the
    /// default keeps the integer fast path free of copying.
    fn wants_number_text(&mut self, _interest: Interest, _path: &Path<'_>) -> bool {
        false
    }

    /// A scalar with non-zero interest at `path` (null, bool, number or string).
    fn scalar(&mut self, interest: Interest, path: &Path<'_>, value: Scalar<'_>);

    /// A top-level value ended (one NDJSON line, one document in a sequence).
    fn value_end(&mut self) {}
}

/// Why a body is not JSON. The offset counts bytes fed since construction or the last reset.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum JsonError {
    #[error("unexpected byte 0x{byte:02x} at offset {offset}")]
    UnexpectedByte { byte: u8, offset: u64 },
    #[error("invalid escape sequence at offset {offset}")]
    InvalidEscape { offset: u64 },
    #[error("invalid number at offset {offset}")]
    InvalidNumber { offset: u64 },
    #[error("input ended inside a value")]
    Truncated,
    #[error("input held no JSON value")]
    Empty,
}

#[cfg(test)]
mod tests;
