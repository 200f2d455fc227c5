//! Element framing for a JSON array streamed over time: Gemini `streamGenerateContent`
//! without `alt=sse` answers `[{...}\n,\r\n{...}\n]`, one response object per element, the
//! usage in each element's `usageMetadata` (running totals, so the last one wins).
//!
//! The framer finds element boundaries without parsing: it tracks only bracket depth, whether
//! it is inside a string, and whether the last byte was a backslash. That is enough to know
//! where an element ends, costs O(1) memory for any element size or nesting depth, and leaves
//! validation to the JSON scanner that consumes the elements. Output is the same
//! [`Segment`] stream as the NDJSON framer: each element's bytes (separators and surrounding
//! whitespace removed), then `End`, so one scanner-driving loop serves both formats.
//!
//! A body whose first value is an object rather than an array (a unary response, or an
//! error object sent instead of the stream) is framed as a single element, so callers need no
//! separate path for it.

use super::eventstream::FrameError;
use super::ndjson::Segment;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Before the first value.
    Start,
    /// Inside the top-level array, between elements.
    Between,
    /// Inside an element.
    Element,
    /// After the closing `]` (or the single top-level object).
    Done,
}

/// Incremental JSON-array element framer; O(1) memory.
#[derive(Debug, Clone)]
pub struct JsonArrayFramer {
    state: State,
    /// Open `{`/`[` inside the current element.
    depth: u64,
    in_string: bool,
    escaped: bool,
    /// The current element is a bare scalar (number, literal) ended by a delimiter.
    scalar: bool,
    /// The body is one object, not an array.
    single: bool,
    offset: u64,
    elements: u64,
    failed: Option<FrameError>,
}

impl Default for JsonArrayFramer {
    fn default() -> Self {
        Self::new()
    }
}

impl JsonArrayFramer {
    pub fn new() -> Self {
        Self {
            state: State::Start,
            depth: 0,
            in_string: false,
            escaped: false,
            scalar: false,
            single: false,
            offset: 0,
            elements: 0,
            failed: None,
        }
    }

    /// Frames one chunk. Drain the returned iterator before feeding the next chunk. It yields
    /// `Ok` segments, or one `Err` (then ends) if the body is not a JSON array or object;
    /// the error is sticky, every later `feed` yields it once more.
    pub fn feed<'f, 'c>(&'f mut self, chunk: &'c [u8]) -> JsonArraySegments<'f, 'c> {
        JsonArraySegments { framer: self, rest: chunk, end_next: false, errored: false }
    }

    /// Call at end of stream: `Ok(())` when the array (or object) was closed,
    /// [`FrameError::Unterminated`] when the body stopped early, the sticky error otherwise.
    pub fn finish(&self) -> Result<(), FrameError> {
        if let Some(err) = &self.failed {
            return Err(err.clone());
        }
        match self.state {
            State::Done => Ok(()),
            State::Start | State::Between | State::Element => Err(FrameError::Unterminated {
                offset: self.offset,
                in_element: self.state == State::Element,
            }),
        }
    }

    /// Elements completed so far.
    pub fn elements(&self) -> u64 {
        self.elements
    }

    /// True when the body was a single object instead of an array.
    pub fn is_single_object(&self) -> bool {
        self.single
    }

    /// The sticky error, if framing failed.
    pub fn error(&self) -> Option<&FrameError> {
        self.failed.as_ref()
    }

    /// Enters an element whose first byte is `b`; the scan then starts at that byte.
    fn start_element(&mut self, b: u8) {
        self.state = State::Element;
        self.depth = 0;
        self.in_string = false;
        self.escaped = false;
        self.scalar = !matches!(b, b'{' | b'[' | b'"');
    }

    /// Scans element bytes from the start of `b`. Returns how many bytes belong to the
    /// element and whether it ended there.
    fn scan_element(&mut self, b: &[u8]) -> (usize, bool) {
        let mut i = 0;
        while let Some(&c) = b.get(i) {
            if self.in_string {
                if self.escaped {
                    self.escaped = false;
                    i += 1;
                    continue;
                }
                // Jump to the next quote or backslash: string bodies are most of the bytes.
                match memchr::memchr2(b'"', b'\\', b.get(i..).unwrap_or_default()) {
                    None => return (b.len(), false),
                    Some(j) => {
                        i += j;
                        if b.get(i) == Some(&b'\\') {
                            self.escaped = true;
                        } else {
                            self.in_string = false;
                            if self.depth == 0 {
                                return (i + 1, true);
                            }
                        }
                        i += 1;
                    }
                }
                continue;
            }
            if self.scalar {
                if matches!(c, b',' | b']' | b'}' | b' ' | b'\t' | b'\r' | b'\n') {
                    return (i, true);
                }
                i += 1;
                continue;
            }
            match c {
                b'"' => self.in_string = true,
                b'{' | b'[' => self.depth = self.depth.saturating_add(1),
                b'}' | b']' => {
                    self.depth = self.depth.saturating_sub(1);
                    if self.depth == 0 {
                        return (i + 1, true);
                    }
                }
                _ => {}
            }
            i += 1;
        }
        (b.len(), false)
    }
}

/// Segments of one chunk; see [`JsonArrayFramer::feed`].
#[derive(Debug)]
pub struct JsonArraySegments<'f, 'c> {
    framer: &'f mut JsonArrayFramer,
    rest: &'c [u8],
    end_next: bool,
    errored: bool,
}

fn is_ws(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\r' | b'\n')
}

impl<'c> JsonArraySegments<'_, 'c> {
    fn advance(&mut self, n: usize) {
        self.framer.offset = self.framer.offset.saturating_add(n as u64);
        self.rest = self.rest.get(n..).unwrap_or_default();
    }

    fn close(&mut self) -> Segment<'static> {
        let f = &mut *self.framer;
        f.elements = f.elements.saturating_add(1);
        f.state = if f.single { State::Done } else { State::Between };
        Segment::End
    }

    fn fail(&mut self, byte: u8) -> FrameError {
        let err = FrameError::UnexpectedByte { byte, offset: self.framer.offset };
        self.framer.failed = Some(err.clone());
        self.rest = &[];
        err
    }
}

impl<'c> Iterator for JsonArraySegments<'_, 'c> {
    type Item = Result<Segment<'c>, FrameError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.errored {
            return None;
        }
        if let Some(err) = &self.framer.failed {
            self.errored = true;
            self.rest = &[];
            return Some(Err(err.clone()));
        }
        if self.end_next {
            self.end_next = false;
            return Some(Ok(self.close()));
        }
        loop {
            let &b = self.rest.first()?;
            match self.framer.state {
                State::Start | State::Between | State::Done if is_ws(b) => self.advance(1),
                State::Start => match b {
                    b'[' => {
                        self.framer.state = State::Between;
                        self.advance(1);
                    }
                    b'{' => {
                        self.framer.single = true;
                        self.framer.start_element(b);
                    }
                    _ => {
                        self.errored = true;
                        return Some(Err(self.fail(b)));
                    }
                },
                // Commas are separators; counting them would be validation, left to the
                // scanner's view of each element.
                State::Between if b == b',' => self.advance(1),
                State::Between if b == b']' => {
                    self.framer.state = State::Done;
                    self.advance(1);
                }
                State::Between => match b {
                    b'{' | b'[' | b'"' | b'-' | b'0'..=b'9' | b't' | b'f' | b'n' => {
                        self.framer.start_element(b);
                    }
                    _ => {
                        self.errored = true;
                        return Some(Err(self.fail(b)));
                    }
                },
                State::Element => {
                    let (n, ended) = self.framer.scan_element(self.rest);
                    let (data, _) = self.rest.split_at(n.min(self.rest.len()));
                    self.advance(n);
                    if ended {
                        if data.is_empty() {
                            return Some(Ok(self.close()));
                        }
                        self.end_next = true;
                    }
                    if data.is_empty() {
                        return None;
                    }
                    return Some(Ok(Segment::Data(data)));
                }
                State::Done => {
                    self.errored = true;
                    return Some(Err(self.fail(b)));
                }
            }
        }
    }
}
