//! Incremental Server-Sent Events framing that streams each event's data instead of
//! buffering it.
//!
//! Chat streams are many small events, but one Responses API `response.completed` event
//! carries the whole response and can be megabytes, so the framer never holds an event:
//! it hands the bytes of `data:` lines to an [`SseSink`] as they arrive (lines of one event
//! joined with `\n`, as the spec builds the data buffer) and signals the blank line that
//! ends the event. What it keeps is a field name (a few bytes), the event name (capped at
//! [`MAX_EVENT_NAME`]) and the first bytes of the data while they could still be the
//! `[DONE]` sentinel. Line endings `\n`, `\r\n` and `\r` are all accepted, split anywhere.

use memchr::memchr2;

/// Bytes of an `event:` name that are kept; longer names are cut (they match nothing).
pub const MAX_EVENT_NAME: usize = 64;

/// Longest field name worth reading (`event`, `data`, `id`, `retry`).
const MAX_FIELD_NAME: usize = 8;

const DONE: &[u8] = b"[DONE]";

/// The line almost every event consists of.
const DATA_FIELD: &[u8] = b"data:";

/// Receives one stream's events.
pub trait SseSink {
    /// Bytes of the current event's data as they arrive.
    fn data(&mut self, bytes: &[u8]);
    /// The current event ended. `name` is its `event:` field (empty when absent, cut at
    /// [`MAX_EVENT_NAME`]). Only events that had at least one `data:` line are dispatched.
    fn event_end(&mut self, name: &[u8]);
    /// An event whose data was exactly `[DONE]` (OpenAI's end marker); no data was sent.
    fn done(&mut self) {}
}

/// What went wrong with the framing itself. Bad data inside an event is the sink's business.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum SseError {
    /// The body ended inside an event (no blank line after its data); the partial event was
    /// still dispatched so a complete JSON payload is not lost.
    #[error("stream ended inside an event")]
    Truncated,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum LineState {
    /// At the start of a line.
    Start,
    /// Reading a field name.
    Field,
    /// Right after `field:`; one leading space is dropped.
    ValueStart,
    Value,
    /// A comment or a field we ignore: skip to the end of the line.
    Ignore,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Field {
    Data,
    Event,
    Other,
}

/// Incremental SSE framer. See the [module docs](self).
#[derive(Debug, Clone)]
pub struct SseFramer {
    state: LineState,
    /// The previous byte was `\r`: a following `\n` belongs to the same line ending.
    after_cr: bool,
    field_name: [u8; MAX_FIELD_NAME],
    field_len: usize,
    field_long: bool,
    field: Field,
    name: [u8; MAX_EVENT_NAME],
    name_len: usize,
    /// The current event had a `data:` line.
    has_data: bool,
    /// Data bytes held while they are still a prefix of `[DONE]`.
    head: [u8; 6],
    head_len: usize,
    /// The data stopped looking like `[DONE]`; everything now goes straight to the sink.
    head_diverged: bool,
    events: u64,
    fields: u64,
}

impl Default for SseFramer {
    fn default() -> Self {
        Self::new()
    }
}

impl SseFramer {
    pub fn new() -> Self {
        Self {
            state: LineState::Start,
            after_cr: false,
            field_name: [0; MAX_FIELD_NAME],
            field_len: 0,
            field_long: false,
            field: Field::Other,
            name: [0; MAX_EVENT_NAME],
            name_len: 0,
            has_data: false,
            head: [0; 6],
            head_len: 0,
            head_diverged: false,
            events: 0,
            fields: 0,
        }
    }

    /// Events dispatched so far (including `[DONE]`).
    pub fn events(&self) -> u64 {
        self.events
    }

    /// `data:` and `event:` lines seen so far; zero means the body does not look like SSE.
    pub fn known_fields(&self) -> u64 {
        self.fields
    }

    /// Frames one chunk.
    pub fn feed<S: SseSink + ?Sized>(&mut self, chunk: &[u8], sink: &mut S) {
        let mut rest = chunk;
        while let Some(&byte) = rest.first() {
            if self.after_cr {
                self.after_cr = false;
                if byte == b'\n' {
                    rest = rest.get(1..).unwrap_or(&[]);
                    continue;
                }
            }
            let consumed = match self.state {
                LineState::Value | LineState::Ignore => self.value_bytes(rest, sink),
                LineState::Start if rest.starts_with(DATA_FIELD) => self.data_line(rest, sink),
                _ => {
                    self.structural(byte, sink);
                    1
                }
            };
            rest = rest.get(consumed..).unwrap_or(&[]);
        }
    }

    /// Ends the body. A final event without its blank line is still dispatched.
    pub fn finish<S: SseSink + ?Sized>(&mut self, sink: &mut S) -> Result<(), SseError> {
        let mid_line = self.state != LineState::Start;
        if mid_line {
            self.end_line(sink);
        }
        if self.has_data {
            self.dispatch(sink);
            return Err(SseError::Truncated);
        }
        Ok(())
    }

    fn structural<S: SseSink + ?Sized>(&mut self, byte: u8, sink: &mut S) {
        match self.state {
            LineState::Start => match byte {
                b'\n' | b'\r' => {
                    self.after_cr = byte == b'\r';
                    self.dispatch(sink);
                }
                b':' => self.state = LineState::Ignore,
                _ => {
                    self.field_len = 0;
                    self.field_long = false;
                    self.state = LineState::Field;
                    self.field_byte(byte);
                }
            },
            LineState::Field => match byte {
                b':' => self.begin_value(sink),
                b'\n' | b'\r' => {
                    // A field without a colon has an empty value.
                    self.begin_value(sink);
                    self.after_cr = byte == b'\r';
                    self.end_line(sink);
                }
                _ => self.field_byte(byte),
            },
            LineState::ValueStart => {
                self.state = LineState::Value;
                if byte != b' ' {
                    self.after_cr = false;
                    let one = [byte];
                    self.value_bytes(&one, sink);
                }
            }
            LineState::Value | LineState::Ignore => {}
        }
    }

    /// A line starting with `data:` whole in the chunk: what the per-byte states would do
    /// for the field name, the colon and the optional space, in one step. Returns the bytes
    /// consumed.
    fn data_line<S: SseSink + ?Sized>(&mut self, rest: &[u8], sink: &mut S) -> usize {
        if let Some(name) = self.field_name.get_mut(..4) {
            name.copy_from_slice(b"data");
        }
        self.field_len = 4;
        self.field_long = false;
        self.begin_value(sink);
        if rest.get(DATA_FIELD.len()) == Some(&b' ') {
            self.state = LineState::Value;
            DATA_FIELD.len() + 1
        } else {
            DATA_FIELD.len()
        }
    }

    fn field_byte(&mut self, byte: u8) {
        match self.field_name.get_mut(self.field_len) {
            Some(slot) => {
                *slot = byte;
                self.field_len = self.field_len.saturating_add(1);
            }
            None => self.field_long = true,
        }
    }

    fn begin_value<S: SseSink + ?Sized>(&mut self, sink: &mut S) {
        let name = self.field_name.get(..self.field_len).unwrap_or(&[]);
        self.field = match (self.field_long, name) {
            (false, b"data") => Field::Data,
            (false, b"event") => Field::Event,
            _ => Field::Other,
        };
        match self.field {
            Field::Data => {
                self.fields = self.fields.saturating_add(1);
                if self.has_data {
                    self.data_bytes(b"\n", sink);
                }
                self.has_data = true;
            }
            Field::Event => {
                self.fields = self.fields.saturating_add(1);
                self.name_len = 0;
            }
            Field::Other => {}
        }
        self.state = LineState::ValueStart;
    }

    /// Bytes of a field value (or an ignored line) up to the end of the line. Returns how
    /// many bytes of `rest` were consumed, line ending included.
    fn value_bytes<S: SseSink + ?Sized>(&mut self, rest: &[u8], sink: &mut S) -> usize {
        let end = memchr2(b'\n', b'\r', rest);
        let content = match end {
            Some(at) => rest.get(..at).unwrap_or(rest),
            None => rest,
        };
        if self.state != LineState::Ignore {
            match self.field {
                Field::Data => self.data_bytes(content, sink),
                Field::Event => {
                    let room = MAX_EVENT_NAME.saturating_sub(self.name_len);
                    let take = content.len().min(room);
                    let end_at = self.name_len.saturating_add(take);
                    if let (Some(dst), Some(src)) = (
                        self.name.get_mut(self.name_len..end_at),
                        content.get(..take),
                    ) {
                        dst.copy_from_slice(src);
                        self.name_len = end_at;
                    }
                }
                Field::Other => {}
            }
        }
        match end {
            Some(at) => {
                self.after_cr = rest.get(at) == Some(&b'\r');
                self.end_line(sink);
                at.saturating_add(1)
            }
            None => rest.len(),
        }
    }

    fn end_line<S: SseSink + ?Sized>(&mut self, _sink: &mut S) {
        self.state = LineState::Start;
    }

    /// Data bytes pass through the `[DONE]` gate: held while they could be the sentinel.
    fn data_bytes<S: SseSink + ?Sized>(&mut self, bytes: &[u8], sink: &mut S) {
        if bytes.is_empty() {
            return;
        }
        if self.head_diverged {
            sink.data(bytes);
            return;
        }
        let start = self.head_len;
        let fits = start.saturating_add(bytes.len()) <= DONE.len();
        let matches = fits && DONE.get(start..start.saturating_add(bytes.len())) == Some(bytes);
        if matches {
            let end = start.saturating_add(bytes.len());
            if let Some(dst) = self.head.get_mut(start..end) {
                dst.copy_from_slice(bytes);
                self.head_len = end;
            }
            return;
        }
        self.head_diverged = true;
        if self.head_len > 0 {
            let held = self.head;
            sink.data(held.get(..self.head_len).unwrap_or(&[]));
        }
        sink.data(bytes);
    }

    fn dispatch<S: SseSink + ?Sized>(&mut self, sink: &mut S) {
        if self.has_data {
            self.events = self.events.saturating_add(1);
            if !self.head_diverged && self.head.get(..self.head_len) == Some(DONE) {
                sink.done();
            } else {
                if !self.head_diverged && self.head_len > 0 {
                    let held = self.head;
                    sink.data(held.get(..self.head_len).unwrap_or(&[]));
                }
                sink.event_end(self.name.get(..self.name_len).unwrap_or(&[]));
            }
        }
        self.has_data = false;
        self.head_len = 0;
        self.head_diverged = false;
        self.name_len = 0;
    }
}

#[cfg(test)]
mod tests {
    #![allow(
        clippy::unwrap_used,
        clippy::expect_used,
        clippy::panic,
        clippy::indexing_slicing
    )]
    use super::*;

    /// Records events as (name, data) pairs, `[DONE]` as ("[DONE]", "").
    #[derive(Default)]
    struct Collect {
        current: Vec<u8>,
        events: Vec<(String, String)>,
    }

    impl SseSink for Collect {
        fn data(&mut self, bytes: &[u8]) {
            self.current.extend_from_slice(bytes);
        }
        fn event_end(&mut self, name: &[u8]) {
            let data = String::from_utf8(std::mem::take(&mut self.current)).unwrap();
            self.events
                .push((String::from_utf8(name.to_vec()).unwrap(), data));
        }
        fn done(&mut self) {
            self.events.push(("[DONE]".into(), String::new()));
        }
    }

    fn frame_chunks(chunks: &[&[u8]]) -> (Vec<(String, String)>, Result<(), SseError>) {
        let mut framer = SseFramer::new();
        let mut sink = Collect::default();
        for chunk in chunks {
            framer.feed(chunk, &mut sink);
        }
        let result = framer.finish(&mut sink);
        (sink.events, result)
    }

    fn frame(body: &[u8]) -> (Vec<(String, String)>, Result<(), SseError>) {
        frame_chunks(&[body])
    }

    fn ev(name: &str, data: &str) -> (String, String) {
        (name.to_string(), data.to_string())
    }

    #[test]
    fn named_events_and_done() {
        let (events, result) = frame(b"event: a\ndata: {\"x\":1}\n\ndata: [DONE]\n\n");
        assert_eq!(events, vec![ev("a", "{\"x\":1}"), ev("[DONE]", "")]);
        assert_eq!(result, Ok(()));
    }

    #[test]
    fn crlf_and_cr_line_endings() {
        let expected = vec![ev("e", "1"), ev("", "2")];
        assert_eq!(
            frame(b"event: e\r\ndata: 1\r\n\r\ndata: 2\r\n\r\n").0,
            expected
        );
        assert_eq!(frame(b"event: e\rdata: 1\r\rdata: 2\r\r").0, expected);
    }

    #[test]
    fn crlf_split_between_chunks_is_one_line_ending() {
        let (events, _) = frame_chunks(&[b"data: 1\r", b"\n\r", b"\ndata: 2\r\n\r\n"]);
        assert_eq!(events, vec![ev("", "1"), ev("", "2")]);
    }

    #[test]
    fn multi_line_data_is_joined_with_newline() {
        assert_eq!(
            frame(b"data: {\"a\":\ndata: 1}\n\n").0,
            vec![ev("", "{\"a\":\n1}")]
        );
    }

    #[test]
    fn comments_unknown_fields_and_dataless_events_are_ignored() {
        let (events, _) = frame(b": keep-alive\n\nid: 7\nretry: 10\n\nevent: ping\n\ndata: x\n\n");
        assert_eq!(events, vec![ev("", "x")]);
    }

    #[test]
    fn only_one_space_after_the_colon_is_dropped() {
        assert_eq!(
            frame(b"data:x\n\ndata:  y\n\n").0,
            vec![ev("", "x"), ev("", " y")]
        );
    }

    #[test]
    fn done_prefix_that_diverges_is_data() {
        let (events, _) = frame_chunks(&[b"data: [DO", b"NE", b"X]\n\ndata: [\n\ndata: [DONE]"]);
        assert_eq!(
            events,
            vec![ev("", "[DONEX]"), ev("", "["), ev("[DONE]", "")]
        );
    }

    #[test]
    fn missing_final_blank_line_still_dispatches_but_reports_truncation() {
        let (events, result) = frame(b"data: {\"a\":1}");
        assert_eq!(events, vec![ev("", "{\"a\":1}")]);
        assert_eq!(result, Err(SseError::Truncated));
    }

    #[test]
    fn event_name_is_capped() {
        let long = "n".repeat(200);
        let body = format!("event: {long}\ndata: 1\n\n");
        let (events, _) = frame(body.as_bytes());
        assert_eq!(events[0].0.len(), MAX_EVENT_NAME);
    }

    #[test]
    fn every_split_point_gives_the_same_events() {
        let body: &[u8] =
            b"event: message_start\r\ndata: {\"a\":1}\r\n\r\n: c\n\nevent: x\rdata: [DONE]\r\rdata: a\ndata: b\n\ndata:x\ndata:\ndata:  y\n\ndatum: z\ndata\n\n";
        let whole = frame(body);
        // The `data:` shortcut (whole lines in one chunk) and the byte states agree.
        assert_eq!(
            whole.0[whole.0.len() - 2..],
            [ev("", "x\n\n y"), ev("", "")]
        );
        for cut in 0..=body.len() {
            let (a, b) = body.split_at(cut);
            assert_eq!(frame_chunks(&[a, b]), whole, "split at {cut}");
        }
        let bytes: Vec<&[u8]> = body.chunks(1).collect();
        assert_eq!(frame_chunks(&bytes), whole);
    }

    #[test]
    fn not_sse_has_no_known_fields() {
        let mut framer = SseFramer::new();
        let mut sink = Collect::default();
        framer.feed(b"this isn't sse at all!\n", &mut sink);
        assert_eq!(framer.known_fields(), 0);
        assert!(sink.events.is_empty());
    }
}
