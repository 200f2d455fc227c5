//! The state machine behind [`Scanner`]: one byte-level state plus a fixed-size path.
//!
//! Every piece of a value that can straddle a chunk boundary (a key, a string, an escape, a
//! `\uXXXX` surrogate pair, a number, a literal) lives in the state, so `feed` can stop
//! after any byte and resume with the next chunk. The hot paths work on whole slices rather
//! than bytes: string contents are skipped with `memchr`, skipped containers by a table
//! scan for the five bytes that matter, and digit runs in a tight loop. The only heap use
//! is a small scratch string for lossy UTF-8 repair, bounded by [`MAX_STRING_BYTES`]. A
//! number's text is copied only when the visitor asked for it, into a fixed buffer of
//! [`MAX_NUMBER_BYTES`]; token counts never pay for that copy.

use memchr::memchr2;

use super::path::{Frame, Path};
use super::{
    Interest, JsonError, JsonStr, Number, Scalar, Visitor, MAX_KEY_BYTES, MAX_NUMBER_BYTES,
    MAX_STRING_BYTES, MAX_TRACKED_DEPTH,
};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Expecting a value: document start, after `:` or after `,` in an array.
    Value,
    /// After `[`: a value or `]`.
    ArrayFirst,
    /// After `{`: a key or `}`.
    ObjectFirst,
    /// After `,` in an object: a key.
    ObjectKey,
    /// After a key: `:`.
    Colon,
    /// After a value inside a container: `,` or the closing bracket.
    After,
    /// After a complete top-level value: whitespace, or the next value in sequence mode.
    TopAfter,
    /// Inside a string (key or value).
    Str,
    /// After a backslash inside a string.
    Escape,
    /// Inside the four hex digits of `\u`.
    Unicode,
    Number,
    Literal,
    /// Inside a skipped container (uninteresting, or nested beyond [`MAX_TRACKED_DEPTH`]):
    /// only brackets are counted and strings skipped.
    Skip,
    SkipStr,
    SkipEscape,
    Failed,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum NumPhase {
    Minus,
    Zero,
    Int,
    Dot,
    Frac,
    Exp,
    ExpSign,
    ExpDigits,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Lit {
    True,
    False,
    Null,
}

impl Lit {
    fn text(self) -> &'static [u8] {
        match self {
            Lit::True => b"true",
            Lit::False => b"false",
            Lit::Null => b"null",
        }
    }

    fn scalar(self) -> Scalar<'static> {
        match self {
            Lit::True => Scalar::Bool(true),
            Lit::False => Scalar::Bool(false),
            Lit::Null => Scalar::Null,
        }
    }
}

/// Bytes that matter inside a skipped container.
// Constant indices below 256 into a 256-entry table, evaluated at compile time: an
// out-of-range index would fail the build, never the filter.
#[allow(clippy::indexing_slicing)]
static SKIP_STOP: [bool; 256] = {
    let mut table = [false; 256];
    table[b'"' as usize] = true;
    table[b'{' as usize] = true;
    table[b'}' as usize] = true;
    table[b'[' as usize] = true;
    table[b']' as usize] = true;
    table
};

/// Incremental JSON scanner with bounded memory. See the [module docs](super).
///
/// ```
/// use tokenmeter::json::{Interest, Path, Scalar, Scanner, Step, Visitor};
///
/// struct PromptTokens(Option<u64>);
/// impl Visitor for PromptTokens {
///     fn scalar(&mut self, _: Interest, path: &Path<'_>, value: Scalar<'_>) {
///         if path.matches(&[Step::Key("usage"), Step::Key("prompt_tokens")]) {
///             self.0 = value.as_u64();
///         }
///     }
/// }
///
/// let mut scanner = Scanner::new();
/// let mut found = PromptTokens(None);
/// scanner.feed(br#"{"usage":{"prompt_"#, &mut found).unwrap();
/// scanner.feed(br#"tokens":12}}"#, &mut found).unwrap();
/// scanner.finish(&mut found).unwrap();
/// assert_eq!(found.0, Some(12));
/// ```
#[derive(Clone)]
pub struct Scanner {
    state: State,
    /// Accept several whitespace-separated top-level values (NDJSON, concatenated JSON).
    sequence: bool,
    /// Open containers that are tracked in `frames`.
    depth: usize,
    /// Open containers being skipped (only in the skip states).
    deep: u64,
    frames: [Frame; MAX_TRACKED_DEPTH],
    keys: [[u8; MAX_KEY_BYTES]; MAX_TRACKED_DEPTH],
    /// Interest of the value being read; a scalar with interest 0 is not reported.
    interest: Interest,
    str_key: bool,
    str_capture: bool,
    str_buf: [u8; MAX_STRING_BYTES],
    str_len: usize,
    str_truncated: bool,
    str_raw: u64,
    hex_got: u8,
    hex_acc: u16,
    high_surrogate: Option<u16>,
    num_phase: NumPhase,
    num_value: u64,
    num_integer: bool,
    /// The visitor asked for the current number's text ([`Visitor::wants_number_text`]).
    num_capture: bool,
    /// The text so far did not fit [`MAX_NUMBER_BYTES`]; the number is reported without it.
    num_long: bool,
    num_len: usize,
    num_buf: [u8; MAX_NUMBER_BYTES],
    lit: Lit,
    lit_pos: usize,
    /// Bytes fed before the current chunk, for error offsets.
    offset: u64,
    error: Option<JsonError>,
    values: u64,
    /// Scratch for strings that need lossy UTF-8 repair.
    repaired: String,
}

impl Default for Scanner {
    fn default() -> Self {
        Self::new()
    }
}

fn is_ws(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\n' | b'\r')
}

/// Finds the first `"` or `\\`. Most keys and values are short, and for them checking a
/// word (8 bytes) at a time beats `memchr`'s setup; past 32 bytes `memchr` takes over.
#[inline]
pub(super) fn string_stop(s: &[u8]) -> Option<usize> {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGH: u64 = 0x8080_8080_8080_8080;
    const QUOTES: u64 = ONES * b'"' as u64;
    const SLASHES: u64 = ONES * b'\\' as u64;
    let mut at = 0usize;
    for chunk in s.chunks_exact(8).take(4) {
        let mut word = [0u8; 8];
        word.copy_from_slice(chunk);
        let w = u64::from_le_bytes(word);
        let (q, b) = (w ^ QUOTES, w ^ SLASHES);
        // A byte of q or b is zero where w holds a quote or a backslash; the lowest flagged
        // byte is exact (borrows only create false flags above a real one).
        let hits = ((q.wrapping_sub(ONES) & !q) | (b.wrapping_sub(ONES) & !b)) & HIGH;
        if hits != 0 {
            return Some(at + (hits.trailing_zeros() / 8) as usize);
        }
        at += 8;
    }
    let rest = s.get(at..)?;
    if rest.len() < 8 {
        return rest
            .iter()
            .position(|&c| c == b'"' || c == b'\\')
            .map(|p| at + p);
    }
    memchr2(b'"', b'\\', rest).map(|p| at + p)
}

fn skip_ws(bytes: &[u8], mut at: usize) -> usize {
    while bytes.get(at).is_some_and(|&b| is_ws(b)) {
        at += 1;
    }
    at
}

/// Where a scalar starting at `at` ends, when it is complete in `bytes` (followed by at
/// least one more byte) and valid; `None` sends the caller to the general path.
fn skip_scalar(bytes: &[u8], at: usize) -> Option<usize> {
    let rest = bytes.get(at..)?;
    let len = match *rest.first()? {
        b'"' => {
            let end = string_stop(rest.get(1..)?)?;
            // Escapes are validated by the general path only.
            (rest.get(end + 1) == Some(&b'"')).then_some(end + 2)?
        }
        b't' => rest.starts_with(b"true").then_some(4)?,
        b'f' => rest.starts_with(b"false").then_some(5)?,
        b'n' => rest.starts_with(b"null").then_some(4)?,
        b'-' | b'0'..=b'9' => {
            let len = rest
                .iter()
                .take_while(|b| matches!(b, b'0'..=b'9' | b'-' | b'+' | b'.' | b'e' | b'E'))
                .count();
            valid_number(rest.get(..len)?).then_some(len)?
        }
        _ => return None,
    };
    // The byte after the token must be here too (a number or literal could go on).
    (rest.len() > len).then_some(at + len)
}

/// JSON number grammar: `-?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?`.
fn valid_number(n: &[u8]) -> bool {
    let digits = |s: &[u8], from: usize| {
        s.iter()
            .skip(from)
            .take_while(|b| b.is_ascii_digit())
            .count()
    };
    let mut i = usize::from(n.first() == Some(&b'-'));
    match n.get(i) {
        Some(b'0') => i += 1,
        Some(b'1'..=b'9') => i += digits(n, i),
        _ => return false,
    }
    if n.get(i) == Some(&b'.') {
        let d = digits(n, i + 1);
        if d == 0 {
            return false;
        }
        i += 1 + d;
    }
    if matches!(n.get(i), Some(b'e' | b'E')) {
        i += 1;
        if matches!(n.get(i), Some(b'+' | b'-')) {
            i += 1;
        }
        let d = digits(n, i);
        if d == 0 {
            return false;
        }
        i += d;
    }
    i == n.len()
}

fn hex_value(b: u8) -> Option<u16> {
    match b {
        b'0'..=b'9' => Some(u16::from(b - b'0')),
        b'a'..=b'f' => Some(u16::from(b - b'a' + 10)),
        b'A'..=b'F' => Some(u16::from(b - b'A' + 10)),
        _ => None,
    }
}

impl Scanner {
    /// A scanner for exactly one top-level value.
    pub fn new() -> Self {
        Self {
            state: State::Value,
            sequence: false,
            depth: 0,
            deep: 0,
            frames: [Frame::default(); MAX_TRACKED_DEPTH],
            keys: [[0; MAX_KEY_BYTES]; MAX_TRACKED_DEPTH],
            interest: 0,
            str_key: false,
            str_capture: false,
            str_buf: [0; MAX_STRING_BYTES],
            str_len: 0,
            str_truncated: false,
            str_raw: 0,
            hex_got: 0,
            hex_acc: 0,
            high_surrogate: None,
            num_phase: NumPhase::Int,
            num_value: 0,
            num_integer: true,
            num_capture: false,
            num_long: false,
            num_len: 0,
            num_buf: [0; MAX_NUMBER_BYTES],
            lit: Lit::Null,
            lit_pos: 0,
            offset: 0,
            error: None,
            values: 0,
            repaired: String::new(),
        }
    }

    /// A scanner for a sequence of whitespace-separated top-level values (NDJSON).
    pub fn sequence() -> Self {
        Self {
            sequence: true,
            ..Self::new()
        }
    }

    /// Forgets everything and expects a new document (one SSE event's data).
    pub fn reset(&mut self) {
        self.state = State::Value;
        self.depth = 0;
        self.deep = 0;
        self.high_surrogate = None;
        self.offset = 0;
        self.error = None;
        self.values = 0;
    }

    /// The error the scanner stopped at, if any.
    pub fn error(&self) -> Option<JsonError> {
        self.error
    }

    /// Number of complete top-level values seen.
    pub fn values(&self) -> u64 {
        self.values
    }

    /// True before any byte of a value was seen (only whitespace so far).
    pub fn is_pristine(&self) -> bool {
        self.state == State::Value && self.depth == 0 && self.values == 0
    }

    /// Heap bytes the scanner holds; bounded regardless of input.
    pub fn heap_bytes(&self) -> usize {
        self.repaired.capacity()
    }

    /// Continues exactly where `other` stopped, as if this scanner had been reset and fed
    /// the same bytes. Unlike `clone_from` it copies only the live part of the path (the
    /// frames and keys up to the current depth, the captured string so far), which is what
    /// makes resuming after a memoised event prefix cheap. Slots past the live part are
    /// never read before being written, as after [`reset`](Self::reset). The destructuring
    /// names every field, so a new one must be handled here.
    pub fn resume_from(&mut self, other: &Scanner) {
        let Scanner {
            state,
            sequence,
            depth,
            deep,
            frames,
            keys,
            interest,
            str_key,
            str_capture,
            str_buf,
            str_len,
            str_truncated,
            str_raw,
            hex_got,
            hex_acc,
            high_surrogate,
            num_phase,
            num_value,
            num_integer,
            num_capture,
            num_long,
            num_len,
            num_buf,
            lit,
            lit_pos,
            offset,
            error,
            values,
            repaired,
        } = other;
        let live = (*depth).min(MAX_TRACKED_DEPTH);
        if let (Some(dst), Some(src)) = (self.frames.get_mut(..live), frames.get(..live)) {
            dst.copy_from_slice(src);
        }
        if let (Some(dst), Some(src)) = (self.keys.get_mut(..live), keys.get(..live)) {
            dst.copy_from_slice(src);
        }
        let number = (*num_len).min(MAX_NUMBER_BYTES);
        if let (Some(dst), Some(src)) = (self.num_buf.get_mut(..number), num_buf.get(..number)) {
            dst.copy_from_slice(src);
        }
        let captured = (*str_len).min(MAX_STRING_BYTES);
        if let (Some(dst), Some(src)) = (self.str_buf.get_mut(..captured), str_buf.get(..captured))
        {
            dst.copy_from_slice(src);
        }
        self.state = *state;
        self.sequence = *sequence;
        self.depth = *depth;
        self.deep = *deep;
        self.interest = *interest;
        self.str_key = *str_key;
        self.str_capture = *str_capture;
        self.str_len = *str_len;
        self.str_truncated = *str_truncated;
        self.str_raw = *str_raw;
        self.hex_got = *hex_got;
        self.hex_acc = *hex_acc;
        self.high_surrogate = *high_surrogate;
        self.num_phase = *num_phase;
        self.num_value = *num_value;
        self.num_integer = *num_integer;
        self.num_capture = *num_capture;
        self.num_long = *num_long;
        self.num_len = *num_len;
        self.lit = *lit;
        self.lit_pos = *lit_pos;
        self.offset = *offset;
        self.error = *error;
        self.values = *values;
        self.repaired.clone_from(repaired);
    }

    #[inline]
    fn path(&self) -> Path<'_> {
        Path {
            frames: self.frames.get(..self.depth).unwrap_or(&[]),
            keys: &self.keys,
        }
    }

    #[inline]
    fn top(&mut self) -> Option<&mut Frame> {
        let depth = self.depth.checked_sub(1)?;
        self.frames.get_mut(depth)
    }

    fn fail<T>(&mut self, error: JsonError) -> Result<T, JsonError> {
        self.state = State::Failed;
        self.error = Some(error);
        Err(error)
    }

    fn unexpected<T>(&mut self, byte: u8, at: u64) -> Result<T, JsonError> {
        self.fail(JsonError::UnexpectedByte { byte, offset: at })
    }

    /// Scans one chunk. After an error every later call returns that error.
    pub fn feed<V: Visitor + ?Sized>(
        &mut self,
        chunk: &[u8],
        visitor: &mut V,
    ) -> Result<(), JsonError> {
        if let Some(error) = self.error {
            return Err(error);
        }
        let mut i = 0usize;
        while let Some(rest) = chunk.get(i..) {
            let Some(&byte) = rest.first() else { break };
            let consumed = match self.state {
                State::Str => self.scan_string(rest, visitor),
                State::SkipStr => self.skip_string(rest),
                State::Skip => self.skip_structure(rest, visitor),
                State::Number if self.num_phase == NumPhase::Int && byte.is_ascii_digit() => {
                    self.digits(rest)
                }
                State::After | State::ObjectKey | State::ObjectFirst => {
                    match self.fast_members(rest, visitor) {
                        0 => {
                            let at = self.offset.saturating_add(i as u64);
                            usize::from(self.step(byte, at, visitor)?)
                        }
                        n => n,
                    }
                }
                // The most common structural transition, without the general dispatch.
                State::Colon if byte == b':' => {
                    self.state = State::Value;
                    1
                }
                _ => {
                    let at = self.offset.saturating_add(i as u64);
                    usize::from(self.step(byte, at, visitor)?)
                }
            };
            // Cannot overflow: `consumed` never exceeds what is left of the chunk.
            i += consumed;
        }
        self.offset = self.offset.saturating_add(chunk.len() as u64);
        Ok(())
    }

    /// Ends the input: completes a trailing top-level number and reports truncation.
    pub fn finish<V: Visitor + ?Sized>(&mut self, visitor: &mut V) -> Result<(), JsonError> {
        if let Some(error) = self.error {
            return Err(error);
        }
        match self.state {
            State::TopAfter => Ok(()),
            State::Number if self.depth == 0 && self.number_complete() => {
                self.report_number(visitor);
                self.after_value(visitor);
                Ok(())
            }
            State::Value if self.depth == 0 && self.values == 0 => Err(JsonError::Empty),
            _ => Err(JsonError::Truncated),
        }
    }

    /// One byte in a structural state. Returns whether the byte was consumed (a number
    /// ends at the first byte that is not part of it, which is then scanned again).
    #[inline]
    fn step<V: Visitor + ?Sized>(
        &mut self,
        byte: u8,
        at: u64,
        visitor: &mut V,
    ) -> Result<bool, JsonError> {
        match self.state {
            State::Value => self.begin_value(byte, at, visitor)?,
            State::ArrayFirst => {
                if byte == b']' {
                    self.close(false, byte, at, visitor)?;
                } else {
                    self.begin_value(byte, at, visitor)?;
                }
            }
            State::ObjectFirst | State::ObjectKey => match byte {
                b'"' => self.begin_string(true, false),
                b'}' if self.state == State::ObjectFirst => self.close(true, byte, at, visitor)?,
                b if is_ws(b) => {}
                b => return self.unexpected(b, at),
            },
            State::Colon => match byte {
                b':' => self.state = State::Value,
                b if is_ws(b) => {}
                b => return self.unexpected(b, at),
            },
            State::After => match byte {
                b',' => self.next_member(byte, at, visitor)?,
                b'}' => self.close(true, byte, at, visitor)?,
                b']' => self.close(false, byte, at, visitor)?,
                b if is_ws(b) => {}
                b => return self.unexpected(b, at),
            },
            State::TopAfter => {
                if !is_ws(byte) {
                    if !self.sequence {
                        return self.unexpected(byte, at);
                    }
                    self.begin_value(byte, at, visitor)?;
                }
            }
            State::Escape => self.escape(byte, at)?,
            State::Unicode => {
                let Some(digit) = hex_value(byte) else {
                    return self.fail(JsonError::InvalidEscape { offset: at });
                };
                self.str_raw = self.str_raw.wrapping_add(1);
                self.hex_acc = (self.hex_acc << 4) | digit;
                self.hex_got = self.hex_got.saturating_add(1);
                if self.hex_got == 4 {
                    self.code_unit(self.hex_acc);
                    self.state = State::Str;
                }
            }
            State::Number => return self.number(byte, at, visitor),
            State::Literal => {
                let text = self.lit.text();
                if text.get(self.lit_pos) != Some(&byte) {
                    return self.unexpected(byte, at);
                }
                self.lit_pos = self.lit_pos.saturating_add(1);
                if self.lit_pos == text.len() {
                    if self.interest != 0 {
                        visitor.scalar(self.interest, &self.path(), self.lit.scalar());
                    }
                    self.after_value(visitor);
                }
            }
            State::SkipEscape => self.state = State::SkipStr,
            // Handled on whole slices by `feed`; listed so the match stays exhaustive.
            State::Str | State::SkipStr | State::Skip => {}
            State::Failed => return Err(self.error.unwrap_or(JsonError::Truncated)),
        }
        Ok(true)
    }

    /// The fast path over object members nobody wants: `, "key": value` in one pass over
    /// the slice, without the per-byte dispatch. It only commits whole members (or a key
    /// whose value it hands to the general machine), and backs off to the general path at
    /// anything unusual (an escape, a chunk boundary, a malformed token), which then
    /// decides exactly as if the fast path did not exist. Returns the bytes consumed.
    fn fast_members<V: Visitor + ?Sized>(&mut self, rest: &[u8], visitor: &mut V) -> usize {
        let Some(depth) = self.depth.checked_sub(1) else {
            return 0;
        };
        let Some(&Frame {
            object: true, own, ..
        }) = self.frames.get(depth)
        else {
            return 0;
        };
        let mut committed = 0usize;
        let mut expect_comma = self.state == State::After;
        loop {
            let mut p = skip_ws(rest, committed);
            if expect_comma {
                if rest.get(p) != Some(&b',') {
                    break;
                }
                p = skip_ws(rest, p + 1);
            }
            if rest.get(p) != Some(&b'"') {
                break;
            }
            let key_start = p + 1;
            let Some(key_len) = rest.get(key_start..).and_then(string_stop) else {
                break;
            };
            let key_end = key_start + key_len;
            if rest.get(key_end) != Some(&b'"') {
                break;
            }
            let Some(key) = rest.get(key_start..key_end) else {
                break;
            };
            p = skip_ws(rest, key_end + 1);
            if rest.get(p) != Some(&b':') {
                break;
            }
            p = skip_ws(rest, p + 1);
            let Some(&first) = rest.get(p) else {
                break;
            };
            let interest = visitor.key(own, depth, (key.len() <= MAX_KEY_BYTES).then_some(key));
            let scalar_end = if matches!(first, b'{' | b'[') {
                None
            } else {
                skip_scalar(rest, p)
            };
            let reported = match scalar_end {
                Some(_) if interest == 0 => true,
                Some(end) => {
                    self.set_key(depth, key, interest);
                    self.fast_scalar(rest.get(p..end).unwrap_or(&[]), interest, visitor)
                }
                None => false,
            };
            let (Some(end), true) = (scalar_end, reported) else {
                // The general machine takes the value from here, with the key in place:
                // containers, and scalars not provably complete, valid and simple.
                self.set_key(depth, key, interest);
                self.state = State::Value;
                return p;
            };
            committed = end;
            expect_comma = true;
            self.state = State::After;
        }
        committed
    }

    /// Reports a complete, valid scalar token found by the fast path, as the general path
    /// would. Returns false (having reported nothing) for what only the general path
    /// handles: a wanted string that is too long or not UTF-8.
    fn fast_scalar<V: Visitor + ?Sized>(
        &mut self,
        token: &[u8],
        interest: Interest,
        visitor: &mut V,
    ) -> bool {
        let value = match token.first() {
            Some(b'"') => {
                let content = token.get(1..token.len().saturating_sub(1)).unwrap_or(&[]);
                let raw_len = content.len() as u64;
                if visitor.wants_string(interest, &self.path()) {
                    if content.len() > MAX_STRING_BYTES {
                        return false;
                    }
                    let Ok(text) = std::str::from_utf8(content) else {
                        return false;
                    };
                    visitor.scalar(
                        interest,
                        &self.path(),
                        Scalar::String(JsonStr {
                            text: Some(text),
                            truncated: false,
                            raw_len,
                        }),
                    );
                    return true;
                }
                Scalar::String(JsonStr {
                    text: None,
                    truncated: false,
                    raw_len,
                })
            }
            Some(b't') => Scalar::Bool(true),
            Some(b'f') => Scalar::Bool(false),
            Some(b'n') => Scalar::Null,
            // A number (`skip_scalar` validated the grammar): its text when asked and it
            // fits, as the general path would report it.
            _ if token.len() <= MAX_NUMBER_BYTES
                && visitor.wants_number_text(interest, &self.path()) =>
            {
                match std::str::from_utf8(token) {
                    Ok(text) => Scalar::Number(Number::Text(text)),
                    Err(_) => return false,
                }
            }
            _ if token.iter().all(u8::is_ascii_digit) => {
                Scalar::Number(Number::Integer(token.iter().fold(0u64, |n, &d| {
                    n.saturating_mul(10).saturating_add(u64::from(d - b'0'))
                })))
            }
            _ => Scalar::Number(Number::Other),
        };
        visitor.scalar(interest, &self.path(), value);
        true
    }

    /// Stores a key found by the fast path as the general machine would have.
    fn set_key(&mut self, depth: usize, key: &[u8], interest: Interest) {
        let (Some(frame), Some(slot)) = (self.frames.get_mut(depth), self.keys.get_mut(depth))
        else {
            return;
        };
        frame.member = interest;
        match (slot.get_mut(..key.len()), u8::try_from(key.len())) {
            (Some(dst), Ok(len)) => {
                dst.copy_from_slice(key);
                frame.key_len = len;
                frame.key_long = false;
            }
            _ => frame.key_long = true,
        }
    }

    /// `,` after a value in a container.
    #[inline]
    fn next_member<V: Visitor + ?Sized>(
        &mut self,
        byte: u8,
        at: u64,
        visitor: &mut V,
    ) -> Result<(), JsonError> {
        let depth = self.depth.saturating_sub(1);
        let Some(frame) = self.top() else {
            return self.unexpected(byte, at);
        };
        if frame.object {
            self.state = State::ObjectKey;
        } else {
            frame.index = frame.index.saturating_add(1);
            let (own, index) = (frame.own, frame.index);
            let member = if own == 0 {
                0
            } else {
                visitor.index(own, depth, index)
            };
            if let Some(frame) = self.top() {
                frame.member = member;
            }
            self.state = State::Value;
        }
        Ok(())
    }

    #[inline]
    fn begin_value<V: Visitor + ?Sized>(
        &mut self,
        byte: u8,
        at: u64,
        visitor: &mut V,
    ) -> Result<(), JsonError> {
        if is_ws(byte) {
            return Ok(());
        }
        self.interest = match self.depth.checked_sub(1).and_then(|d| self.frames.get(d)) {
            Some(frame) => frame.member,
            None => visitor.root(),
        };
        match byte {
            b'{' | b'[' => self.open(byte == b'{', visitor),
            b'"' => {
                let capture =
                    self.interest != 0 && visitor.wants_string(self.interest, &self.path());
                self.begin_string(false, capture);
            }
            b'-' | b'0'..=b'9' => {
                let capture =
                    self.interest != 0 && visitor.wants_number_text(self.interest, &self.path());
                self.begin_number(byte, capture);
            }
            b't' => self.begin_literal(Lit::True),
            b'f' => self.begin_literal(Lit::False),
            b'n' => self.begin_literal(Lit::Null),
            b => return self.unexpected(b, at),
        }
        Ok(())
    }

    fn open<V: Visitor + ?Sized>(&mut self, object: bool, visitor: &mut V) {
        let own = self.interest;
        let depth = self.depth;
        match self.frames.get_mut(depth) {
            Some(frame) if own != 0 => {
                *frame = Frame {
                    object,
                    own,
                    ..Frame::default()
                };
                if !object {
                    frame.member = visitor.index(own, depth, 0);
                }
                self.depth = depth.saturating_add(1);
                self.state = if object {
                    State::ObjectFirst
                } else {
                    State::ArrayFirst
                };
            }
            // Uninteresting or too deep to track: count brackets until it closes again.
            _ => {
                self.deep = 1;
                self.state = State::Skip;
            }
        }
    }

    fn close<V: Visitor + ?Sized>(
        &mut self,
        object: bool,
        byte: u8,
        at: u64,
        visitor: &mut V,
    ) -> Result<(), JsonError> {
        match self.top() {
            Some(frame) if frame.object == object => {
                self.depth = self.depth.saturating_sub(1);
                self.after_value(visitor);
                Ok(())
            }
            _ => self.unexpected(byte, at),
        }
    }

    #[inline]
    fn after_value<V: Visitor + ?Sized>(&mut self, visitor: &mut V) {
        if self.depth == 0 {
            self.values = self.values.saturating_add(1);
            self.state = State::TopAfter;
            visitor.value_end();
        } else {
            self.state = State::After;
        }
    }

    /// Inside a skipped container: finds the bytes that change nesting or open a string.
    fn skip_structure<V: Visitor + ?Sized>(&mut self, rest: &[u8], visitor: &mut V) -> usize {
        for (i, &byte) in rest.iter().enumerate() {
            if !SKIP_STOP.get(usize::from(byte)).copied().unwrap_or(false) {
                continue;
            }
            match byte {
                b'"' => {
                    self.state = State::SkipStr;
                    return i.saturating_add(1);
                }
                b'{' | b'[' => self.deep = self.deep.saturating_add(1),
                _ => {
                    self.deep = self.deep.saturating_sub(1);
                    if self.deep == 0 {
                        self.after_value(visitor);
                        return i.saturating_add(1);
                    }
                }
            }
        }
        rest.len()
    }

    fn skip_string(&mut self, rest: &[u8]) -> usize {
        match string_stop(rest) {
            None => rest.len(),
            Some(end) => {
                self.state = if rest.get(end) == Some(&b'"') {
                    State::Skip
                } else {
                    State::SkipEscape
                };
                end.saturating_add(1)
            }
        }
    }

    #[inline]
    fn begin_string(&mut self, key: bool, capture: bool) {
        self.state = State::Str;
        self.str_key = key;
        self.str_capture = capture;
        self.str_len = 0;
        self.str_truncated = false;
        self.str_raw = 0;
        self.high_surrogate = None;
        if key {
            if let Some(frame) = self.top() {
                frame.key_len = 0;
                frame.key_long = false;
            }
        }
    }

    /// The hot loop: finds the end of the string or the next escape with `memchr`.
    /// Returns the bytes consumed.
    #[inline]
    fn scan_string<V: Visitor + ?Sized>(&mut self, rest: &[u8], visitor: &mut V) -> usize {
        let keep = self.str_key || self.str_capture;
        match string_stop(rest) {
            None => {
                self.str_raw = self.str_raw.wrapping_add(rest.len() as u64);
                if keep {
                    self.push_text(rest);
                }
                rest.len()
            }
            Some(end) => {
                let (content, tail) = rest.split_at_checked(end).unwrap_or((rest, &[]));
                self.str_raw = self.str_raw.wrapping_add(end as u64);
                if keep {
                    self.push_text(content);
                }
                if tail.first() == Some(&b'"') {
                    self.end_string(visitor);
                } else {
                    self.str_raw = self.str_raw.wrapping_add(1);
                    self.state = State::Escape;
                }
                end.saturating_add(1)
            }
        }
    }

    fn escape(&mut self, byte: u8, at: u64) -> Result<(), JsonError> {
        self.str_raw = self.str_raw.wrapping_add(1);
        let decoded = match byte {
            b'"' | b'\\' | b'/' => byte,
            b'b' => 0x08,
            b'f' => 0x0c,
            b'n' => b'\n',
            b'r' => b'\r',
            b't' => b'\t',
            b'u' => {
                self.hex_got = 0;
                self.hex_acc = 0;
                self.state = State::Unicode;
                return Ok(());
            }
            _ => return self.fail(JsonError::InvalidEscape { offset: at }),
        };
        self.push_text(&[decoded]);
        self.state = State::Str;
        Ok(())
    }

    /// One `\uXXXX` code unit: pairs surrogates, and turns lone ones into U+FFFD.
    fn code_unit(&mut self, unit: u16) {
        if let Some(high) = self.high_surrogate.take() {
            if (0xDC00..=0xDFFF).contains(&unit) {
                let code =
                    0x10000 + ((u32::from(high) - 0xD800) << 10) + (u32::from(unit) - 0xDC00);
                self.push_char(char::from_u32(code).unwrap_or(char::REPLACEMENT_CHARACTER));
                return;
            }
            self.push_char(char::REPLACEMENT_CHARACTER);
        }
        if (0xD800..=0xDBFF).contains(&unit) {
            self.high_surrogate = Some(unit);
        } else {
            self.push_char(char::from_u32(u32::from(unit)).unwrap_or(char::REPLACEMENT_CHARACTER));
        }
    }

    fn push_char(&mut self, c: char) {
        let mut buf = [0u8; 4];
        self.push_bytes(c.encode_utf8(&mut buf).as_bytes());
    }

    /// Decoded text outside a `\u` escape: a pending high surrogate was lone.
    #[inline]
    fn push_text(&mut self, bytes: &[u8]) {
        if bytes.is_empty() {
            return;
        }
        if self.high_surrogate.take().is_some() {
            self.push_char(char::REPLACEMENT_CHARACTER);
        }
        self.push_bytes(bytes);
    }

    #[inline]
    fn push_bytes(&mut self, bytes: &[u8]) {
        if self.str_key {
            let Some(slot) = self.depth.checked_sub(1) else {
                return;
            };
            let (Some(frame), Some(key)) = (self.frames.get_mut(slot), self.keys.get_mut(slot))
            else {
                return;
            };
            if frame.key_long {
                return;
            }
            let start = usize::from(frame.key_len);
            let end = start.saturating_add(bytes.len());
            match (key.get_mut(start..end), u8::try_from(end)) {
                (Some(dst), Ok(len)) => {
                    dst.copy_from_slice(bytes);
                    frame.key_len = len;
                }
                _ => frame.key_long = true,
            }
        } else if self.str_capture && !self.str_truncated {
            let room = MAX_STRING_BYTES.saturating_sub(self.str_len);
            let take = bytes.len().min(room);
            let end = self.str_len.saturating_add(take);
            if let (Some(dst), Some(src)) =
                (self.str_buf.get_mut(self.str_len..end), bytes.get(..take))
            {
                dst.copy_from_slice(src);
                self.str_len = end;
            }
            if take < bytes.len() {
                self.str_truncated = true;
            }
        }
    }

    fn end_string<V: Visitor + ?Sized>(&mut self, visitor: &mut V) {
        if self.high_surrogate.take().is_some() {
            self.push_char(char::REPLACEMENT_CHARACTER);
        }
        if self.str_key {
            self.end_key(visitor);
            return;
        }
        if self.interest == 0 {
            self.after_value(visitor);
            return;
        }
        let raw_len = self.str_raw;
        let truncated = self.str_truncated;
        if !self.str_capture {
            let value = Scalar::String(JsonStr {
                text: None,
                truncated,
                raw_len,
            });
            visitor.scalar(self.interest, &self.path(), value);
            self.after_value(visitor);
            return;
        }
        let bytes = self.str_buf.get(..self.str_len).unwrap_or(&[]);
        let mut repair_cut = false;
        // A cut string may end inside a character; drop that partial character. Anything
        // else that is not UTF-8 is repaired rather than rejected: it is only a label.
        let text = match std::str::from_utf8(bytes) {
            Ok(text) => text,
            Err(e) if truncated && e.error_len().is_none() => bytes
                .get(..e.valid_up_to())
                .and_then(|b| std::str::from_utf8(b).ok())
                .unwrap_or(""),
            Err(_) => {
                // Each invalid byte becomes a 3-byte U+FFFD, so a repaired string can outgrow
                // the cap: stop at the cap (on a character boundary) and call it truncated.
                self.repaired.clear();
                repair_capped(bytes, &mut self.repaired, &mut repair_cut);
                self.repaired.as_str()
            }
        };
        let value = Scalar::String(JsonStr {
            text: Some(text),
            truncated: truncated || repair_cut,
            raw_len,
        });
        visitor.scalar(self.interest, &self.path(), value);
        self.after_value(visitor);
    }

    /// A key is complete: ask the visitor how interesting its value is.
    #[inline]
    fn end_key<V: Visitor + ?Sized>(&mut self, visitor: &mut V) {
        self.state = State::Colon;
        let depth = self.depth.saturating_sub(1);
        let (Some(frame), Some(key)) = (self.frames.get(depth), self.keys.get(depth)) else {
            return;
        };
        let key = if frame.key_long {
            None
        } else {
            key.get(..usize::from(frame.key_len))
        };
        let member = visitor.key(frame.own, depth, key);
        if let Some(frame) = self.frames.get_mut(depth) {
            frame.member = member;
        }
    }

    /// Starts a number at its first byte (`-` or a digit).
    fn begin_number(&mut self, first: u8, capture: bool) {
        self.state = State::Number;
        (self.num_phase, self.num_value, self.num_integer) = match first {
            b'-' => (NumPhase::Minus, 0, false),
            b'0' => (NumPhase::Zero, 0, true),
            d => (NumPhase::Int, u64::from(d.wrapping_sub(b'0')), true),
        };
        self.num_capture = capture;
        self.num_long = false;
        self.num_len = 0;
        if capture {
            self.push_number_text(&[first]);
        }
    }

    /// Appends to the captured number text; past [`MAX_NUMBER_BYTES`] the text is dropped.
    fn push_number_text(&mut self, bytes: &[u8]) {
        if self.num_long {
            return;
        }
        let end = self.num_len.saturating_add(bytes.len());
        match self.num_buf.get_mut(self.num_len..end) {
            Some(dst) => {
                dst.copy_from_slice(bytes);
                self.num_len = end;
            }
            None => self.num_long = true,
        }
    }

    fn number_complete(&self) -> bool {
        matches!(
            self.num_phase,
            NumPhase::Zero | NumPhase::Int | NumPhase::Frac | NumPhase::ExpDigits
        )
    }

    fn report_number<V: Visitor + ?Sized>(&mut self, visitor: &mut V) {
        if self.interest == 0 {
            return;
        }
        let text = match (self.num_capture, self.num_long) {
            // The buffer holds only bytes the number grammar accepted: ASCII.
            (true, false) => self
                .num_buf
                .get(..self.num_len)
                .and_then(|b| std::str::from_utf8(b).ok()),
            _ => None,
        };
        let number = match text {
            Some(text) => Number::Text(text),
            None if self.num_integer => Number::Integer(self.num_value),
            None => Number::Other,
        };
        visitor.scalar(self.interest, &self.path(), Scalar::Number(number));
    }

    /// A run of integer digits (the common case) without the per-byte state dispatch.
    /// Returns the digits consumed; 0 when `rest` starts with something else.
    #[inline]
    fn digits(&mut self, rest: &[u8]) -> usize {
        let run = rest.iter().take_while(|b| b.is_ascii_digit()).count();
        for &b in rest.iter().take(run) {
            self.num_value = self
                .num_value
                .saturating_mul(10)
                .saturating_add(u64::from(b - b'0'));
        }
        if self.num_capture {
            self.push_number_text(rest.get(..run).unwrap_or(&[]));
        }
        run
    }

    fn number<V: Visitor + ?Sized>(
        &mut self,
        byte: u8,
        at: u64,
        visitor: &mut V,
    ) -> Result<bool, JsonError> {
        use NumPhase::*;
        let next = match (self.num_phase, byte) {
            (Minus, b'0') => Zero,
            (Minus, b'1'..=b'9') => Int,
            (Int, b'0'..=b'9') => {
                self.num_value = self
                    .num_value
                    .saturating_mul(10)
                    .saturating_add(u64::from(byte - b'0'));
                Int
            }
            (Zero | Int, b'.') => Dot,
            (Dot | Frac, b'0'..=b'9') => Frac,
            (Zero | Int | Frac, b'e' | b'E') => Exp,
            (Exp, b'+' | b'-') => ExpSign,
            (Exp | ExpSign | ExpDigits, b'0'..=b'9') => ExpDigits,
            _ if self.number_complete()
                && !byte.is_ascii_digit()
                && !matches!(byte, b'.' | b'e' | b'E' | b'+' | b'-') =>
            {
                self.report_number(visitor);
                self.after_value(visitor);
                // The terminating byte belongs to the next token.
                return Ok(false);
            }
            _ => return self.fail(JsonError::InvalidNumber { offset: at }),
        };
        if !matches!(next, Int | Zero) {
            self.num_integer = false;
        }
        if self.num_capture {
            self.push_number_text(&[byte]);
        }
        self.num_phase = next;
        Ok(true)
    }

    fn begin_literal(&mut self, lit: Lit) {
        self.state = State::Literal;
        self.lit = lit;
        self.lit_pos = 1;
    }
}

/// Appends `bytes` to `out` with each invalid UTF-8 sequence replaced by U+FFFD, stopping
/// before `out` would pass [`MAX_STRING_BYTES`]; `cut` is set when something was left out.
fn repair_capped(bytes: &[u8], out: &mut String, cut: &mut bool) {
    let mut push = |piece: &str, out: &mut String| -> bool {
        let room = MAX_STRING_BYTES.saturating_sub(out.len());
        if piece.len() <= room {
            out.push_str(piece);
            return true;
        }
        let mut end = room;
        while end > 0 && !piece.is_char_boundary(end) {
            end -= 1;
        }
        out.push_str(piece.get(..end).unwrap_or(""));
        *cut = true;
        false
    };
    for chunk in bytes.utf8_chunks() {
        if !push(chunk.valid(), out) {
            return;
        }
        if !chunk.invalid().is_empty() && !push("\u{FFFD}", out) {
            return;
        }
    }
}
