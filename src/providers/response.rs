//! The response side: picks JSON or SSE framing, streams the body through the JSON scanner
//! and the API's rule table, and says at the end what was read and whether it could be.
//!
//! Framing follows the content type (`text/event-stream` is SSE, anything else JSON); when
//! the content type is missing the first non-whitespace byte decides (`{`/`[` JSON, else
//! SSE). In SSE mode each event's data is one JSON document: the scanner is reset between
//! events, a broken event is counted and skipped, and `[DONE]` never reaches it.

use crate::json::{JsonError, Scanner};
use crate::stream::{SseFramer, SseSink};

use super::mapping::Extractor;
use super::{response_rules, Api, ExtractError, ResponseOutcome};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Framing {
    /// No content type: decided by the first non-whitespace byte.
    Sniff,
    Json,
    Sse,
}

/// Per-stream event bookkeeping.
#[derive(Debug, Clone, Copy, Default)]
struct EventStats {
    parsed: u64,
    failed: u64,
    first_error: Option<JsonError>,
}

/// Feeds one SSE event's data into the scanner.
struct EventSink<'a> {
    json: &'a mut Scanner,
    extractor: &'a mut Extractor,
    stats: &'a mut EventStats,
}

impl SseSink for EventSink<'_> {
    fn data(&mut self, bytes: &[u8]) {
        // A failure sticks in the scanner until the event ends; it is counted there.
        let _sticky = self.json.feed(bytes, self.extractor);
    }

    fn event_end(&mut self, _name: &[u8]) {
        match self.json.finish(self.extractor) {
            Ok(()) => self.stats.parsed = self.stats.parsed.saturating_add(1),
            // `data:` with nothing in it (a keep-alive) is not a broken event.
            Err(JsonError::Empty) => {}
            Err(error) => {
                self.stats.failed = self.stats.failed.saturating_add(1);
                self.stats.first_error.get_or_insert(error);
            }
        }
        self.json.reset();
    }

    fn done(&mut self) {
        self.stats.parsed = self.stats.parsed.saturating_add(1);
    }
}

/// Incremental scanner of a (decompressed) response body: JSON or SSE by content type.
pub struct ResponseScanner {
    api: Api,
    framing: Framing,
    json: Scanner,
    sse: SseFramer,
    extractor: Extractor,
    stats: EventStats,
    outcome: Option<ResponseOutcome>,
}

impl ResponseScanner {
    pub fn new(api: Api, content_type: Option<&str>) -> Self {
        let framing = match content_type.map(str::trim) {
            None | Some("") => Framing::Sniff,
            Some(ct) if ct.to_ascii_lowercase().contains("text/event-stream") => Framing::Sse,
            Some(_) => Framing::Json,
        };
        Self {
            api,
            framing,
            json: Scanner::new(),
            sse: SseFramer::new(),
            extractor: Extractor::new(response_rules(api)),
            stats: EventStats::default(),
            outcome: None,
        }
    }

    /// Scans one chunk. Never fails: faults are recorded and reported by `finish`.
    pub fn feed(&mut self, chunk: &[u8]) {
        if self.outcome.is_some() {
            return;
        }
        let mut chunk = chunk;
        if self.framing == Framing::Sniff {
            let Some(first) = chunk.iter().position(|b| !b.is_ascii_whitespace()) else {
                return;
            };
            chunk = chunk.get(first..).unwrap_or(&[]);
            self.framing = match chunk.first() {
                Some(b'{' | b'[') => Framing::Json,
                _ => Framing::Sse,
            };
        }
        match self.framing {
            Framing::Json => {
                // A failure sticks in the scanner and is read back in `finish`.
                let _sticky = self.json.feed(chunk, &mut self.extractor);
            }
            Framing::Sse => {
                let mut sink = EventSink {
                    json: &mut self.json,
                    extractor: &mut self.extractor,
                    stats: &mut self.stats,
                };
                self.sse.feed(chunk, &mut sink);
            }
            Framing::Sniff => {}
        }
    }

    /// Bytes of generated content (text, reasoning, tool arguments) read so far; it turns
    /// non-zero at the chunk that carries the first token, which is what time to first token
    /// measures. Role-only and empty deltas do not count.
    pub fn output_text_bytes(&self) -> u64 {
        self.extractor.facts.output_text_bytes
    }

    /// Bytes this scanner holds, inline and on the heap: fixed at construction plus the
    /// short captured labels (model, id, finish reason, service tier). It does not grow
    /// with the body; tests assert the bound.
    pub fn retained_bytes(&self) -> usize {
        let facts = &self.extractor.facts;
        let labels = [
            &facts.model,
            &facts.id,
            &facts.finish_reason,
            &facts.service_tier,
        ]
        .iter()
        .map(|s| s.as_ref().map_or(0, String::capacity))
        .sum::<usize>();
        std::mem::size_of::<Self>() + self.json.heap_bytes() + self.extractor.heap_bytes() + labels
    }

    /// Ends the body and reports. Later calls return the same outcome.
    pub fn finish(&mut self) -> ResponseOutcome {
        if let Some(outcome) = &self.outcome {
            return outcome.clone();
        }
        let (error, readable) = match self.framing {
            Framing::Sniff => (Some(ExtractError::Empty), false),
            Framing::Json => match self.json.finish(&mut self.extractor) {
                Ok(()) => (None, true),
                Err(JsonError::Empty) => (Some(ExtractError::Empty), false),
                Err(e) => (Some(ExtractError::Json(e)), false),
            },
            Framing::Sse => {
                let mut sink = EventSink {
                    json: &mut self.json,
                    extractor: &mut self.extractor,
                    stats: &mut self.stats,
                };
                let framing = self.sse.finish(&mut sink).err();
                let error = self
                    .stats
                    .first_error
                    .map(ExtractError::Json)
                    .or(framing.map(ExtractError::Sse))
                    .or((self.stats.parsed == 0).then_some(ExtractError::Empty));
                // A stream is readable when its events parsed; one broken event among good
                // ones does not make the usage of the others unreadable.
                (error, self.stats.parsed > 0 && self.stats.failed == 0)
            }
        };
        let usage = self.extractor.usage.clone();
        let outcome = ResponseOutcome {
            unreadable: !readable && !usage.is_reported(),
            usage,
            conventions: self.api.conventions(),
            facts: self.extractor.facts.clone(),
            error,
        };
        self.outcome = Some(outcome.clone());
        outcome
    }
}
