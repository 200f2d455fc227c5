//! Server-Sent Events framing (`stream::sse::SseFramer`).
//!
//! Checks, for arbitrary bytes and chunk splits:
//! - the events (name, concatenated data, or the `[DONE]` marker), the `finish` result and
//!   the `events()`/`known_fields()` counters equal a reference model written from the SSE
//!   spec: lines end at `\r\n`, `\r` or `\n`; `:` lines are comments; `field: value` drops one
//!   space; `data` lines are joined with `\n`; a blank line dispatches an event that had data;
//!   names are cut at `MAX_EVENT_NAME`; data exactly `[DONE]` is the done marker; a body that
//!   ends inside an event still dispatches it and reports `Truncated` (an unterminated last
//!   line counts only once its colon arrived);
//! - whole and split feeding give the same result.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tokenmeter::stream::sse::MAX_EVENT_NAME;
use tokenmeter::stream::{SseError, SseFramer, SseSink};
use tokenmeter_fuzz::SplitInput;

#[derive(Debug, Clone, PartialEq, Eq)]
enum Event {
    Data { name: Vec<u8>, data: Vec<u8> },
    Done,
}

#[derive(Debug, PartialEq, Eq)]
struct Framed {
    events: Vec<Event>,
    finish: Result<(), SseError>,
    count: u64,
    fields: u64,
}

#[derive(Default)]
struct Collect {
    data: Vec<u8>,
    events: Vec<Event>,
}

impl SseSink for Collect {
    fn data(&mut self, bytes: &[u8]) {
        self.data.extend_from_slice(bytes);
    }
    fn event_end(&mut self, name: &[u8]) {
        assert!(name.len() <= MAX_EVENT_NAME);
        let data = std::mem::take(&mut self.data);
        self.events.push(Event::Data {
            name: name.to_vec(),
            data,
        });
    }
    fn done(&mut self) {
        assert!(self.data.is_empty(), "[DONE] leaked data to the sink");
        self.events.push(Event::Done);
    }
}

fn frame(chunks: &[&[u8]]) -> Framed {
    let mut framer = SseFramer::new();
    let mut sink = Collect::default();
    for chunk in chunks {
        framer.feed(chunk, &mut sink);
    }
    let finish = framer.finish(&mut sink);
    assert!(sink.data.is_empty(), "data left without an event end");
    Framed {
        events: sink.events,
        finish,
        count: framer.events(),
        fields: framer.known_fields(),
    }
}

/// Splits into lines; the bool says whether the last line was unterminated.
fn lines(body: &[u8]) -> (Vec<&[u8]>, Option<&[u8]>) {
    let mut out = Vec::new();
    let mut rest = body;
    loop {
        match rest.iter().position(|&b| b == b'\r' || b == b'\n') {
            Some(at) => {
                out.push(&rest[..at]);
                let skip = if rest[at] == b'\r' && rest.get(at + 1) == Some(&b'\n') {
                    2
                } else {
                    1
                };
                rest = &rest[at + skip..];
            }
            None => return (out, (!rest.is_empty()).then_some(rest)),
        }
    }
}

#[derive(Default)]
struct Model {
    data: Vec<u8>,
    has_data: bool,
    name: Vec<u8>,
    events: Vec<Event>,
    fields: u64,
}

impl Model {
    fn line(&mut self, line: &[u8]) {
        if line.is_empty() {
            self.dispatch();
            return;
        }
        if line[0] == b':' {
            return;
        }
        let (field, value) = match line.iter().position(|&b| b == b':') {
            Some(at) => {
                let value = &line[at + 1..];
                (&line[..at], value.strip_prefix(b" ").unwrap_or(value))
            }
            None => (line, &b""[..]),
        };
        match field {
            b"data" => {
                self.fields += 1;
                if self.has_data {
                    self.data.push(b'\n');
                }
                self.data.extend_from_slice(value);
                self.has_data = true;
            }
            b"event" => {
                self.fields += 1;
                self.name = value[..value.len().min(MAX_EVENT_NAME)].to_vec();
            }
            _ => {}
        }
    }

    fn dispatch(&mut self) {
        if self.has_data {
            let data = std::mem::take(&mut self.data);
            self.events.push(if data == b"[DONE]" {
                Event::Done
            } else {
                Event::Data {
                    name: self.name.clone(),
                    data,
                }
            });
        }
        self.has_data = false;
        self.data.clear();
        self.name.clear();
    }
}

fn model(body: &[u8]) -> Framed {
    let (complete, last) = lines(body);
    let mut m = Model::default();
    for line in complete {
        m.line(line);
    }
    // The framer acts on a line's value as it streams in, so an unterminated last line counts
    // once its colon was seen; one that never got a colon is dropped (the spec drops every
    // unterminated line; the framer keeps a cut final event so its usage is not lost).
    if let Some(line) = last.filter(|l| l.contains(&b':')) {
        m.line(line);
    }
    let finish = if m.has_data {
        m.dispatch();
        Err(SseError::Truncated)
    } else {
        Ok(())
    };
    Framed {
        count: m.events.len() as u64,
        events: m.events,
        finish,
        fields: m.fields,
    }
}

fuzz_target!(|data: &[u8]| {
    let input = SplitInput::parse(data);
    let whole = frame(&[input.body]);
    let split = frame(&input.chunks());
    assert_eq!(whole, split, "split feeding changed the result");
    assert_eq!(
        whole,
        model(input.body),
        "framer differs from the spec model"
    );
});
