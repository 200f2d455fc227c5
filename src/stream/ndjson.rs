//! Newline-delimited JSON framing, for Ollama's native `/api/chat` and `/api/generate` streams
//! (one JSON object per line, the last one `"done": true` with `prompt_eval_count` and
//! `eval_count`).
//!
//! The framer buffers nothing: it reports where records start and end and hands out each
//! record's bytes as borrowed [`Segment::Data`] pieces of the caller's chunk, followed by
//! [`Segment::End`]. A streaming JSON scanner fed those pieces and reset at every `End` reads
//! lines of any length, split anywhere, in constant memory. Blank lines are skipped; a record's
//! leading whitespace is dropped and its trailing `\r` (CRLF input) is passed on as JSON
//! whitespace, because it may arrive in a later chunk than the line's last byte.
//!
//! [`Segment`] and the bounded [`RecordBuffer`] (for callers that want each record whole, e.g.
//! to hand to `serde_json`) are shared with the JSON-array framer in `json_array`.

use super::eventstream::FrameError;

/// One piece of framed output.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Segment<'a> {
    /// The next bytes of the current record, in order. A record may come in many pieces,
    /// split wherever the chunks were; never empty.
    Data(&'a [u8]),
    /// The current record is complete; the next `Data` starts a new one.
    End,
}

/// Incremental NDJSON framer; O(1) memory.
///
/// ```
/// # use tokenmeter::stream::ndjson::{NdjsonFramer, Segment};
/// let mut framer = NdjsonFramer::new();
/// let mut lines = Vec::new();
/// let mut line = Vec::new();
/// for chunk in [&b"{\"a\":1}\n{\"b\""[..], b":2}\n"] {
///     for seg in framer.feed(chunk) {
///         match seg {
///             Segment::Data(d) => line.extend_from_slice(d),
///             Segment::End => lines.push(std::mem::take(&mut line)),
///         }
///     }
/// }
/// assert!(framer.finish().is_none());
/// assert_eq!(lines, [b"{\"a\":1}".to_vec(), b"{\"b\":2}".to_vec()]);
/// ```
#[derive(Debug, Default, Clone)]
pub struct NdjsonFramer {
    in_record: bool,
    records: u64,
}

impl NdjsonFramer {
    pub fn new() -> Self {
        Self::default()
    }

    /// Frames one chunk. Drain the returned iterator before feeding the next chunk: the
    /// framer's state advances as the iterator does.
    pub fn feed<'f, 'c>(&'f mut self, chunk: &'c [u8]) -> NdjsonSegments<'f, 'c> {
        NdjsonSegments { framer: self, rest: chunk, end_next: false }
    }

    /// Call at end of stream. A last line without a trailing newline is still a record:
    /// returns `Some(Segment::End)` to close it, `None` when no record was open.
    pub fn finish(&mut self) -> Option<Segment<'static>> {
        if self.in_record {
            self.in_record = false;
            self.records = self.records.saturating_add(1);
            Some(Segment::End)
        } else {
            None
        }
    }

    /// Records completed so far.
    pub fn records(&self) -> u64 {
        self.records
    }

    /// True between a record's first byte and its end.
    pub fn in_record(&self) -> bool {
        self.in_record
    }
}

/// Segments of one chunk; see [`NdjsonFramer::feed`].
#[derive(Debug)]
pub struct NdjsonSegments<'f, 'c> {
    framer: &'f mut NdjsonFramer,
    rest: &'c [u8],
    /// The last `Data` ran up to a newline: `End` comes next.
    end_next: bool,
}

impl<'c> Iterator for NdjsonSegments<'_, 'c> {
    type Item = Segment<'c>;

    fn next(&mut self) -> Option<Segment<'c>> {
        if self.end_next {
            self.end_next = false;
            return Some(self.close());
        }
        if !self.framer.in_record {
            // Between records: skip blank lines and indentation without emitting anything.
            let start = self.rest.iter().position(|b| !matches!(b, b' ' | b'\t' | b'\r' | b'\n'));
            let start = start?;
            self.rest = self.rest.get(start..).unwrap_or_default();
            self.framer.in_record = true;
        }
        if self.rest.is_empty() {
            return None;
        }
        match memchr::memchr(b'\n', self.rest) {
            Some(nl) => {
                let (data, after) = self.rest.split_at(nl);
                self.rest = after.get(1..).unwrap_or_default();
                if data.is_empty() {
                    Some(self.close())
                } else {
                    self.end_next = true;
                    Some(Segment::Data(data))
                }
            }
            None => Some(Segment::Data(std::mem::take(&mut self.rest))),
        }
    }
}

impl NdjsonSegments<'_, '_> {
    fn close(&mut self) -> Segment<'static> {
        self.framer.in_record = false;
        self.framer.records = self.framer.records.saturating_add(1);
        Segment::End
    }
}

/// Collects [`Segment`]s into whole records, for callers that need a record in one slice.
/// Memory is bounded: the buffer never grows past `max_record_len`; a longer record is
/// dropped and reported as [`FrameError::RecordTooLarge`] at its end, and the next record is
/// collected normally (the framing itself is intact, only that record is lost).
#[derive(Debug, Clone)]
pub struct RecordBuffer {
    buf: Vec<u8>,
    max: u32,
    overflowed: bool,
    complete: bool,
}

impl RecordBuffer {
    pub fn new(max_record_len: u32) -> Self {
        Self { buf: Vec::new(), max: max_record_len, overflowed: false, complete: false }
    }

    /// Takes one segment. Returns `Some` at each record end: the whole record, or
    /// `RecordTooLarge`. The returned slice lives until the next call.
    pub fn push(&mut self, seg: Segment<'_>) -> Option<Result<&[u8], FrameError>> {
        if self.complete {
            self.complete = false;
            self.overflowed = false;
            self.buf.clear();
        }
        match seg {
            Segment::Data(d) => {
                if self.overflowed {
                    return None;
                }
                let needed = self.buf.len().saturating_add(d.len());
                if needed as u64 > u64::from(self.max) {
                    self.overflowed = true;
                    self.buf.clear();
                    return None;
                }
                if needed > self.buf.capacity() {
                    // Amortised doubling, but never past the cap, so capacity <= max.
                    let cap = self.max as usize;
                    let target = needed.max(self.buf.capacity().saturating_mul(2)).min(cap);
                    self.buf.reserve_exact(target.saturating_sub(self.buf.len()));
                }
                self.buf.extend_from_slice(d);
                None
            }
            Segment::End => {
                self.complete = true;
                if self.overflowed {
                    Some(Err(FrameError::RecordTooLarge { max: self.max }))
                } else {
                    Some(Ok(&self.buf))
                }
            }
        }
    }

    /// Capacity of the buffer; never above the cap.
    pub fn capacity(&self) -> usize {
        self.buf.capacity()
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // tests: a failure should panic
mod tests {
    use super::*;

    fn frame(chunks: &[&[u8]]) -> Vec<Segment<'static>> {
        // Leak-free owned comparison: map Data to an owned marker by length.
        let mut f = NdjsonFramer::new();
        let mut out = Vec::new();
        for c in chunks {
            for s in f.feed(c) {
                out.push(match s {
                    Segment::Data(d) => Segment::Data(if d.is_empty() { b"" } else { b"x" }),
                    Segment::End => Segment::End,
                });
            }
        }
        out.extend(f.finish());
        out
    }

    #[test]
    fn blank_lines_and_indentation_make_no_records() {
        assert_eq!(frame(&[b"\n\r\n  \n\t"]), []);
        assert_eq!(frame(&[b"\n {}\n\n"]), [Segment::Data(b"x"), Segment::End]);
    }

    #[test]
    fn newline_at_chunk_start_closes_the_open_record() {
        assert_eq!(
            frame(&[b"{}", b"\n{}"]),
            [Segment::Data(b"x"), Segment::End, Segment::Data(b"x"), Segment::End]
        );
    }

    #[test]
    fn record_buffer_caps_and_recovers() {
        let mut rb = RecordBuffer::new(4);
        assert_eq!(rb.push(Segment::Data(b"abc")), None);
        assert_eq!(rb.push(Segment::Data(b"de")), None);
        assert_eq!(rb.push(Segment::End), Some(Err(FrameError::RecordTooLarge { max: 4 })));
        assert_eq!(rb.push(Segment::Data(b"ab")), None);
        assert_eq!(rb.push(Segment::Data(b"cd")), None);
        assert_eq!(rb.push(Segment::End), Some(Ok(&b"abcd"[..])));
        assert!(rb.capacity() <= 4);
    }
}
