//! AWS `application/vnd.amazon.eventstream` framing, for Bedrock `ConverseStream` and
//! `InvokeModelWithResponseStream` responses.
//!
//! This module owns the binary frame codec and nothing above it: it turns arbitrary response
//! chunks into whole, checksum-verified messages (headers plus payload bytes), and offers
//! [`decode_invoke_chunk`] to unwrap the base64 `{"bytes":"..."}` payload that
//! `InvokeModelWithResponseStream` puts around each provider event. Which events carry usage,
//! and what the counters mean, belongs to the Bedrock extractor.
//!
//! A frame is a 12-byte prelude (total length u32 BE, headers length u32 BE, CRC32 of those
//! 8 bytes), the headers, the payload, and a CRC32 of everything before it. The prelude is
//! checked *before* the rest is buffered: a corrupted or hostile length would otherwise make us
//! wait for (and allocate) gigabytes, or, after a mid-frame split, read payload bytes as the
//! next prelude and mis-frame the rest of the stream. Frames above a configurable cap are
//! rejected with [`FrameError::FrameTooLarge`] for the same reason, so the one partial-frame
//! buffer, reused across frames, never holds more than the cap. Only whole frames are decoded,
//! and a message is handed out only after its CRC matched.
//!
//! [`FrameError`] is also the error type of the NDJSON and JSON-array framers next door, so
//! the stream layer has one error enum for its binary and text framers.

/// Bytes in the prelude: total length, headers length, prelude CRC.
pub const PRELUDE_LEN: u32 = 12;
/// The smallest legal frame: a prelude and a message CRC, no headers, no payload.
pub const MIN_FRAME_LEN: u32 = PRELUDE_LEN + 4;
/// Default frame cap. Bedrock events are a few KiB; 1 MiB leaves room for large tool inputs.
pub const DEFAULT_MAX_FRAME_LEN: u32 = 1 << 20;

/// Everything that can go wrong while framing a response stream.
///
/// Framer errors are sticky: once a framer failed, it repeats the error and consumes nothing
/// more, because after a framing error no later byte can be trusted to start a record. The
/// exceptions are per-item: `InvalidChunk`/`InvalidBase64` concern one Bedrock chunk, and
/// `RecordTooLarge` one collected record; the stream framing around them is intact.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FrameError {
    /// A frame's declared length exceeds the cap; nothing of it was buffered.
    #[error("eventstream frame of {total_len} bytes exceeds the {max} byte cap (at byte {offset})")]
    FrameTooLarge { total_len: u32, max: u32, offset: u64 },
    /// A frame's declared length is below the 16 bytes every frame needs.
    #[error("eventstream frame of {total_len} bytes is shorter than the minimum (at byte {offset})")]
    FrameTooSmall { total_len: u32, offset: u64 },
    /// The declared headers do not fit inside the declared frame.
    #[error(
        "eventstream headers length {headers_len} does not fit a {total_len} byte frame (at byte {offset})"
    )]
    HeadersOverflow { headers_len: u32, total_len: u32, offset: u64 },
    /// The prelude checksum does not match: the stream is corrupt or mis-framed.
    #[error("eventstream prelude CRC mismatch: frame says {expected:#010x}, computed {computed:#010x} (at byte {offset})")]
    PreludeCrc { expected: u32, computed: u32, offset: u64 },
    /// The message checksum does not match.
    #[error("eventstream message CRC mismatch: frame says {expected:#010x}, computed {computed:#010x} (frame at byte {offset})")]
    MessageCrc { expected: u32, computed: u32, offset: u64 },
    /// A header is truncated, has an unknown value type, or a non-UTF-8 name or string.
    #[error("malformed eventstream header in the frame at byte {offset}")]
    MalformedHeader { offset: u64 },
    /// The stream ended inside a frame or record.
    #[error("stream ended inside a frame: {buffered} bytes buffered, {expected} expected")]
    Truncated { buffered: u64, expected: u64 },
    /// A Bedrock `chunk` payload was not `{"bytes":"<base64>"}`.
    #[error("eventstream chunk payload is not a {{\"bytes\": ...}} object")]
    InvalidChunk,
    /// A base64 string holds a byte outside the standard alphabet or bad padding.
    #[error("invalid base64 at byte {position}")]
    InvalidBase64 { position: u64 },
    /// A JSON-array stream did not start with `[` (or `{`), or had junk between elements.
    #[error("unexpected byte {byte:#04x} in a JSON array stream at byte {offset}")]
    UnexpectedByte { byte: u8, offset: u64 },
    /// A JSON-array stream ended before its closing `]` (or its single object's `}`).
    #[error("JSON array stream ended unterminated at byte {offset} (inside an element: {in_element})")]
    Unterminated { offset: u64, in_element: bool },
    /// A record collected whole by `ndjson::RecordBuffer` grew past its cap.
    #[error("record exceeds the {max} byte cap")]
    RecordTooLarge { max: u32 },
}

/// One header value, as typed on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HeaderValue<'a> {
    Bool(bool),
    Byte(i8),
    Short(i16),
    Int(i32),
    Long(i64),
    Bytes(&'a [u8]),
    String(&'a str),
    /// Milliseconds since the Unix epoch.
    Timestamp(i64),
    Uuid([u8; 16]),
}

/// One header: name and typed value, borrowed from the frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header<'a> {
    pub name: &'a str,
    pub value: HeaderValue<'a>,
}

/// What `:message-type` says a message is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MessageKind {
    /// `event`: a normal stream event; `:event-type` names it.
    Event,
    /// `exception`: a modelled error (e.g. `throttlingException`); `:exception-type` names it.
    Exception,
    /// `error`: an unmodelled error; `:error-code` and `:error-message` describe it.
    Error,
    /// No or another `:message-type`.
    Unknown,
}

/// A whole, CRC-verified message. Borrows the decoder's buffer, so it lives until the next
/// call into the decoder.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Message<'a> {
    headers: &'a [u8],
    payload: &'a [u8],
}

impl<'a> Message<'a> {
    /// The headers, in wire order.
    pub fn headers(&self) -> Headers<'a> {
        Headers { rest: self.headers }
    }

    /// The first header with this name.
    pub fn header(&self, name: &str) -> Option<HeaderValue<'a>> {
        self.headers().find(|h| h.name == name).map(|h| h.value)
    }

    /// The first string header with this name; `None` when absent or not a string.
    pub fn header_str(&self, name: &str) -> Option<&'a str> {
        match self.header(name) {
            Some(HeaderValue::String(s)) => Some(s),
            _ => None,
        }
    }

    /// `:event-type`, e.g. `messageStart`, `contentBlockDelta`, `metadata`, `chunk`.
    pub fn event_type(&self) -> Option<&'a str> {
        self.header_str(":event-type")
    }

    /// `:message-type`: `event`, `exception` or `error`.
    pub fn message_type(&self) -> Option<&'a str> {
        self.header_str(":message-type")
    }

    /// `:content-type`, usually `application/json`.
    pub fn content_type(&self) -> Option<&'a str> {
        self.header_str(":content-type")
    }

    /// `:exception-type` of an exception message.
    pub fn exception_type(&self) -> Option<&'a str> {
        self.header_str(":exception-type")
    }

    /// `:message-type`, classified.
    pub fn kind(&self) -> MessageKind {
        match self.message_type() {
            Some("event") => MessageKind::Event,
            Some("exception") => MessageKind::Exception,
            Some("error") => MessageKind::Error,
            _ => MessageKind::Unknown,
        }
    }

    /// The payload bytes (JSON for Bedrock).
    pub fn payload(&self) -> &'a [u8] {
        self.payload
    }
}

/// Iterator over a verified message's headers.
#[derive(Debug, Clone)]
pub struct Headers<'a> {
    rest: &'a [u8],
}

impl<'a> Iterator for Headers<'a> {
    type Item = Header<'a>;

    fn next(&mut self) -> Option<Header<'a>> {
        // The decoder validated every header before handing out the message, so a parse
        // failure here cannot happen; ending the iteration is the harmless answer anyway.
        let (header, rest) = parse_header(self.rest)?;
        self.rest = rest;
        Some(header)
    }
}

fn split_u16(b: &[u8]) -> Option<(u16, &[u8])> {
    let (n, rest) = b.split_first_chunk::<2>()?;
    Some((u16::from_be_bytes(*n), rest))
}

/// Parses one header off the front of `b`; `None` when truncated or malformed.
fn parse_header(b: &[u8]) -> Option<(Header<'_>, &[u8])> {
    let (&name_len, rest) = b.split_first()?;
    let (name, rest) = rest.split_at_checked(usize::from(name_len))?;
    let name = std::str::from_utf8(name).ok()?;
    let (&ty, rest) = rest.split_first()?;
    let (value, rest) = match ty {
        0 => (HeaderValue::Bool(true), rest),
        1 => (HeaderValue::Bool(false), rest),
        2 => {
            let (v, rest) = rest.split_first_chunk::<1>()?;
            (HeaderValue::Byte(i8::from_be_bytes(*v)), rest)
        }
        3 => {
            let (v, rest) = rest.split_first_chunk::<2>()?;
            (HeaderValue::Short(i16::from_be_bytes(*v)), rest)
        }
        4 => {
            let (v, rest) = rest.split_first_chunk::<4>()?;
            (HeaderValue::Int(i32::from_be_bytes(*v)), rest)
        }
        5 | 8 => {
            let (v, rest) = rest.split_first_chunk::<8>()?;
            let v = i64::from_be_bytes(*v);
            let value = if ty == 5 { HeaderValue::Long(v) } else { HeaderValue::Timestamp(v) };
            (value, rest)
        }
        6 | 7 => {
            let (len, rest) = split_u16(rest)?;
            let (v, rest) = rest.split_at_checked(usize::from(len))?;
            let value = if ty == 6 {
                HeaderValue::Bytes(v)
            } else {
                HeaderValue::String(std::str::from_utf8(v).ok()?)
            };
            (value, rest)
        }
        9 => {
            let (v, rest) = rest.split_first_chunk::<16>()?;
            (HeaderValue::Uuid(*v), rest)
        }
        _ => return None,
    };
    Some((Header { name, value }, rest))
}

/// The frame whose prelude has been accepted and whose body is being buffered.
#[derive(Debug, Clone, Copy)]
struct Pending {
    total_len: u32,
    headers_len: u32,
    /// Stream offset of the frame's first byte, for error reports.
    offset: u64,
}

/// Incremental eventstream decoder. Feed it chunks of any size; it yields whole messages.
///
/// ```
/// # use tokenmeter::stream::eventstream::{EventStreamDecoder, FrameError};
/// # fn on_chunk(dec: &mut EventStreamDecoder, chunk: &[u8]) -> Result<(), FrameError> {
/// let mut rest = chunk;
/// while let Some(msg) = dec.decode(&mut rest)? {
///     let _ = (msg.event_type(), msg.payload());
/// }
/// # Ok(()) }
/// ```
#[derive(Debug)]
pub struct EventStreamDecoder {
    max_frame_len: u32,
    prelude: [u8; PRELUDE_LEN as usize],
    prelude_have: u8,
    pending: Option<Pending>,
    /// Headers, payload and message CRC of the pending frame; reused across frames.
    body: Vec<u8>,
    /// `body` holds a message handed out by the last call; drop it on the next call.
    delivered: bool,
    failed: Option<FrameError>,
    /// Stream bytes consumed so far.
    offset: u64,
    frames: u64,
}

impl Default for EventStreamDecoder {
    fn default() -> Self {
        Self::new()
    }
}

impl EventStreamDecoder {
    /// A decoder with the default 1 MiB frame cap.
    pub fn new() -> Self {
        Self::with_max_frame_len(DEFAULT_MAX_FRAME_LEN)
    }

    /// A decoder rejecting frames longer than `max_frame_len` bytes (prelude and CRCs
    /// included). Values below the 16-byte minimum frame are raised to it.
    pub fn with_max_frame_len(max_frame_len: u32) -> Self {
        Self {
            max_frame_len: max_frame_len.max(MIN_FRAME_LEN),
            prelude: [0; PRELUDE_LEN as usize],
            prelude_have: 0,
            pending: None,
            body: Vec::new(),
            delivered: false,
            failed: None,
            offset: 0,
            frames: 0,
        }
    }

    /// The frame cap in bytes.
    pub fn max_frame_len(&self) -> u32 {
        self.max_frame_len
    }

    /// Consumes bytes from the front of `input` until one message is complete or `input` is
    /// empty. Returns `Ok(Some(message))` for each whole verified frame (call again with the
    /// same `input` for the next), `Ok(None)` once `input` is used up mid-frame or between
    /// frames. Errors are sticky and consume all of `input`.
    pub fn decode(&mut self, input: &mut &[u8]) -> Result<Option<Message<'_>>, FrameError> {
        if let Some(err) = &self.failed {
            *input = &[];
            return Err(err.clone());
        }
        if self.delivered {
            self.delivered = false;
            self.body.clear();
            self.prelude_have = 0;
            self.pending = None;
        }
        loop {
            let Some(pending) = self.pending else {
                if !self.fill_prelude(input) {
                    return Ok(None);
                }
                match self.accept_prelude() {
                    Ok(pending) => {
                        self.pending = Some(pending);
                        self.body.clear();
                        // Exact: the body buffer's capacity stays at the largest accepted
                        // frame, which the prelude check bounded by the cap.
                        self.body.reserve_exact(body_len(pending));
                    }
                    Err(err) => return Err(self.fail(err, input)),
                }
                continue;
            };
            let want = body_len(pending).saturating_sub(self.body.len());
            let (take, rest) = input.split_at(want.min(input.len()));
            self.body.extend_from_slice(take);
            *input = rest;
            self.offset = self.offset.saturating_add(take.len() as u64);
            if self.body.len() < body_len(pending) {
                return Ok(None);
            }
            if let Err(err) = self.verify(pending) {
                return Err(self.fail(err, input));
            }
            self.delivered = true;
            self.frames = self.frames.saturating_add(1);
            // `accept_prelude` checked headers_len <= body length - 4, so neither fallback
            // below can be taken; they only keep this path free of indexing.
            let (headers, rest) =
                self.body.split_at_checked(pending.headers_len as usize).unwrap_or((&[], &[]));
            let payload = rest.get(..rest.len().saturating_sub(4)).unwrap_or(&[]);
            return Ok(Some(Message { headers, payload }));
        }
    }

    /// Call at end of stream: `Err(Truncated)` when it stopped inside a frame, the sticky
    /// error if decoding failed, `Ok(())` when every byte belonged to a whole frame.
    pub fn finish(&self) -> Result<(), FrameError> {
        if let Some(err) = &self.failed {
            return Err(err.clone());
        }
        if self.delivered {
            return Ok(());
        }
        match self.pending {
            Some(p) => Err(FrameError::Truncated {
                buffered: u64::from(PRELUDE_LEN).saturating_add(self.body.len() as u64),
                expected: u64::from(p.total_len),
            }),
            None if self.prelude_have > 0 => Err(FrameError::Truncated {
                buffered: u64::from(self.prelude_have),
                expected: u64::from(PRELUDE_LEN),
            }),
            None => Ok(()),
        }
    }

    /// Whole frames decoded so far.
    pub fn frames_decoded(&self) -> u64 {
        self.frames
    }

    /// Stream bytes consumed so far.
    pub fn bytes_consumed(&self) -> u64 {
        self.offset
    }

    /// Capacity of the reused frame buffer; never above the frame cap.
    pub fn buffer_capacity(&self) -> usize {
        self.body.capacity()
    }

    /// The sticky error, if decoding failed.
    pub fn error(&self) -> Option<&FrameError> {
        self.failed.as_ref()
    }

    fn fail(&mut self, err: FrameError, input: &mut &[u8]) -> FrameError {
        *input = &[];
        self.pending = None;
        // Release the buffer: nothing more will be decoded from this stream.
        self.body = Vec::new();
        self.failed = Some(err.clone());
        err
    }

    /// Moves prelude bytes from `input`; true once all 12 are in.
    fn fill_prelude(&mut self, input: &mut &[u8]) -> bool {
        let have = usize::from(self.prelude_have);
        let slot = self.prelude.get_mut(have..).unwrap_or(&mut []);
        let n = slot.len().min(input.len());
        let (take, rest) = input.split_at(n);
        if let Some(dst) = slot.get_mut(..n) {
            dst.copy_from_slice(take);
        }
        *input = rest;
        // n <= 12, so the narrowing and the sum cannot overflow.
        self.prelude_have = self.prelude_have.saturating_add(n as u8);
        self.offset = self.offset.saturating_add(n as u64);
        u32::from(self.prelude_have) == PRELUDE_LEN
    }

    /// Checks the buffered prelude: CRC first, then the lengths against the cap.
    fn accept_prelude(&self) -> Result<Pending, FrameError> {
        let offset = self.offset.saturating_sub(u64::from(PRELUDE_LEN));
        let [t0, t1, t2, t3, h0, h1, h2, h3, c0, c1, c2, c3] = self.prelude;
        let total_len = u32::from_be_bytes([t0, t1, t2, t3]);
        let headers_len = u32::from_be_bytes([h0, h1, h2, h3]);
        let expected = u32::from_be_bytes([c0, c1, c2, c3]);
        let computed = crc32_finish(crc32_update(CRC32_INIT, &[t0, t1, t2, t3, h0, h1, h2, h3]));
        if computed != expected {
            return Err(FrameError::PreludeCrc { expected, computed, offset });
        }
        if total_len > self.max_frame_len {
            return Err(FrameError::FrameTooLarge { total_len, max: self.max_frame_len, offset });
        }
        if total_len < MIN_FRAME_LEN {
            return Err(FrameError::FrameTooSmall { total_len, offset });
        }
        if headers_len > total_len - MIN_FRAME_LEN {
            return Err(FrameError::HeadersOverflow { headers_len, total_len, offset });
        }
        Ok(Pending { total_len, headers_len, offset })
    }

    /// Checks the message CRC and that the headers parse, on a fully buffered frame.
    fn verify(&self, p: Pending) -> Result<(), FrameError> {
        let split = self.body.len().saturating_sub(4);
        let (covered, crc) = self.body.split_at_checked(split).unwrap_or((&[], &[]));
        let expected = crc.first_chunk::<4>().map(|c| u32::from_be_bytes(*c)).unwrap_or_default();
        let computed = crc32_finish(crc32_update(crc32_update(CRC32_INIT, &self.prelude), covered));
        if computed != expected {
            return Err(FrameError::MessageCrc { expected, computed, offset: p.offset });
        }
        let mut headers =
            covered.get(..p.headers_len as usize).ok_or(FrameError::MalformedHeader { offset: p.offset })?;
        while !headers.is_empty() {
            let (_, rest) = parse_header(headers).ok_or(FrameError::MalformedHeader { offset: p.offset })?;
            headers = rest;
        }
        Ok(())
    }
}

/// Bytes after the prelude: headers, payload, message CRC. The prelude check guarantees
/// `total_len >= 16` and `total_len <= cap`, so this fits `usize` on 32-bit targets.
/// CRC-32 (IEEE 802.3, as zlib computes it) state before any byte.
const CRC32_INIT: u32 = 0xFFFF_FFFF;

/// One table lookup per byte. crc32fast's slice-by-16 tables were 16 KiB of the module's
/// 400 KB budget; Bedrock frames are a few KiB, so the bytewise loop costs microseconds per
/// stream, and only on eventstream responses.
const CRC32_TABLE: [u32; 256] = crc32_table();

// Evaluated at compile time: an out-of-range index fails the build, never a request.
#[allow(clippy::indexing_slicing)]
const fn crc32_table() -> [u32; 256] {
    let mut table = [0u32; 256];
    let mut i = 0;
    while i < 256 {
        let mut c = i as u32;
        let mut bit = 0;
        while bit < 8 {
            c = if c & 1 == 1 { 0xEDB8_8320 ^ (c >> 1) } else { c >> 1 };
            bit += 1;
        }
        table[i] = c;
        i += 1;
    }
    table
}

fn crc32_update(mut crc: u32, bytes: &[u8]) -> u32 {
    for &b in bytes {
        // The index is a byte, so the lookup always hits.
        let entry = CRC32_TABLE.get(usize::from(crc as u8 ^ b)).copied().unwrap_or_default();
        crc = entry ^ (crc >> 8);
    }
    crc
}

fn crc32_finish(crc: u32) -> u32 {
    !crc
}

fn body_len(p: Pending) -> usize {
    (p.total_len - PRELUDE_LEN) as usize
}

/// Decodes standard base64 (RFC 4648 alphabet, `=` padding optional) and appends the bytes
/// to `out`. Whitespace and the URL-safe alphabet are rejected: Bedrock sends neither.
pub fn decode_base64_into(input: &[u8], out: &mut Vec<u8>) -> Result<(), FrameError> {
    fn sextet(c: u8) -> Option<u32> {
        let v = match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            _ => return None,
        };
        Some(u32::from(v))
    }
    let data_len = input.iter().rposition(|&c| c != b'=').map_or(0, |i| i + 1);
    let (data, padding) = input.split_at(data_len);
    // At most two '=', and only where padding completes a quartet.
    if padding.len() > 2 || (!padding.is_empty() && (data_len + padding.len()) % 4 != 0) {
        return Err(FrameError::InvalidBase64 { position: data_len as u64 });
    }
    out.reserve(data.len() / 4 * 3 + 2);
    let mut chunks = data.chunks_exact(4);
    let mut position: u64 = 0;
    for quad in &mut chunks {
        let mut acc = 0u32;
        for &c in quad {
            let v = sextet(c).ok_or(FrameError::InvalidBase64 { position })?;
            acc = (acc << 6) | v;
            position += 1;
        }
        let [_, a, b, c] = acc.to_be_bytes();
        out.extend_from_slice(&[a, b, c]);
    }
    let tail = chunks.remainder();
    let mut acc = 0u32;
    for &c in tail {
        acc = (acc << 6) | sextet(c).ok_or(FrameError::InvalidBase64 { position })?;
        position += 1;
    }
    match tail.len() {
        0 => {}
        // Two sextets carry one byte, three carry two; the leftover low bits must be zero.
        2 if acc & 0xF == 0 => out.push((acc >> 4) as u8),
        3 if acc & 0x3 == 0 => out.extend_from_slice(&((acc >> 2) as u16).to_be_bytes()),
        _ => return Err(FrameError::InvalidBase64 { position }),
    }
    Ok(())
}

/// Unwraps an `InvokeModelWithResponseStream` `chunk` payload, `{"bytes":"<base64>"}` (other
/// members such as the `p` padding are ignored), into the provider's event JSON. `out` is
/// cleared first so one buffer can be reused across chunks; it grows to at most 3/4 of the
/// payload, itself bounded by the frame cap.
///
/// Read through `serde_json::Value`, whose parser the module has anyway: a derived struct
/// instantiated a second serde_json reader (about 8 KB of the module) for one string field.
pub fn decode_invoke_chunk(payload: &[u8], out: &mut Vec<u8>) -> Result<(), FrameError> {
    out.clear();
    let chunk: serde_json::Value = serde_json::from_slice(payload).map_err(|_| FrameError::InvalidChunk)?;
    let bytes = chunk.get("bytes").and_then(serde_json::Value::as_str).ok_or(FrameError::InvalidChunk)?;
    decode_base64_into(bytes.as_bytes(), out)
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::indexing_slicing)] // tests: a failure should panic
mod tests {
    use super::*;

    #[test]
    fn crc32_matches_the_ieee_check_value_and_crc32fast() {
        let crc = |b: &[u8]| crc32_finish(crc32_update(CRC32_INIT, b));
        assert_eq!(crc(b"123456789"), 0xCBF4_3926);
        assert_eq!(crc(b""), 0);
        let data: Vec<u8> = (0..=255u8).cycle().take(1000).collect();
        assert_eq!(crc(&data), crc32fast::hash(&data));
        let (a, b) = data.split_at(333);
        assert_eq!(crc32_finish(crc32_update(crc32_update(CRC32_INIT, a), b)), crc32fast::hash(&data));
    }

    fn b64(s: &str) -> Result<Vec<u8>, FrameError> {
        let mut out = Vec::new();
        decode_base64_into(s.as_bytes(), &mut out).map(|()| out)
    }

    #[test]
    fn base64_matches_rfc4648_vectors() {
        for (enc, dec) in [
            ("", ""),
            ("Zg==", "f"),
            ("Zm8=", "fo"),
            ("Zm9v", "foo"),
            ("Zm9vYg==", "foob"),
            ("Zm9vYmE=", "fooba"),
            ("Zm9vYmFy", "foobar"),
            ("Zm9vYg", "foob"),
            ("Zm9vYmE", "fooba"),
        ] {
            assert_eq!(b64(enc).unwrap(), dec.as_bytes(), "{enc}");
        }
        assert_eq!(b64("+/+/").unwrap(), [0xfb, 0xff, 0xbf]);
    }

    #[test]
    fn base64_rejects_bad_input() {
        for bad in ["Zm9v!", "Z", "Zm9vY", "Zm9=v", "Zh==", "Zm9=", "Zg===", "Z===", "Zm 9v", "Zm-_"] {
            assert!(matches!(b64(bad), Err(FrameError::InvalidBase64 { .. })), "{bad}");
        }
    }

    #[test]
    fn header_parser_reads_every_type() {
        let mut h = Vec::new();
        let mut push = |name: &str, ty: u8, value: &[u8]| {
            h.push(name.len() as u8);
            h.extend_from_slice(name.as_bytes());
            h.push(ty);
            h.extend_from_slice(value);
        };
        push("t", 0, &[]);
        push("f", 1, &[]);
        push("b", 2, &[0xff]);
        push("s", 3, &(-2i16).to_be_bytes());
        push("i", 4, &7i32.to_be_bytes());
        push("l", 5, &(-9i64).to_be_bytes());
        push("by", 6, &[0, 2, 1, 2]);
        push("st", 7, &[0, 2, b'h', b'i']);
        push("ts", 8, &1_700_000_000_000i64.to_be_bytes());
        push("u", 9, &[7; 16]);
        let msg = Message { headers: &h, payload: b"" };
        let values: Vec<_> = msg.headers().map(|h| h.value).collect();
        assert_eq!(
            values,
            [
                HeaderValue::Bool(true),
                HeaderValue::Bool(false),
                HeaderValue::Byte(-1),
                HeaderValue::Short(-2),
                HeaderValue::Int(7),
                HeaderValue::Long(-9),
                HeaderValue::Bytes(&[1, 2]),
                HeaderValue::String("hi"),
                HeaderValue::Timestamp(1_700_000_000_000),
                HeaderValue::Uuid([7; 16]),
            ]
        );
        assert_eq!(msg.header_str("st"), Some("hi"));
        assert_eq!(msg.header_str("i"), None);
        // Truncated value and unknown type end the walk instead of reading past the end.
        assert!(parse_header(&[1, b'x', 4, 0, 0]).is_none());
        assert!(parse_header(&[1, b'x', 10]).is_none());
        assert!(parse_header(&[1, 0xff, 0]).is_none());
    }
}
