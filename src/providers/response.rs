//! The response side: picks the framing, streams the body through the JSON scanner and the
//! API's rule table, and says at the end what was read and whether it could be.
//!
//! Framing follows the content type: `text/event-stream` is SSE,
//! `application/vnd.amazon.eventstream` is Bedrock's binary eventstream, `*ndjson` is
//! NDJSON (Ollama), and anything else JSON -- for Gemini a streamed JSON array, cut into
//! elements (a single object is one element). When the content type is missing the first
//! non-whitespace byte decides (`{`/`[` JSON, else SSE). In every streamed mode each event's
//! data is one JSON document: the scanner is reset between events, a broken event is counted
//! and skipped, and `[DONE]` never reaches it. `InvokeModelWithResponseStream` `chunk`
//! events are unwrapped (base64) before scanning; the buffer for that is bounded by the
//! eventstream frame cap.

use crate::json::{JsonError, Scanner};
use crate::stream::eventstream::{
    decode_invoke_chunk, EventStreamDecoder, FrameError, MessageKind,
};
use crate::stream::json_array::JsonArrayFramer;
use crate::stream::ndjson::{NdjsonFramer, Segment};
use crate::stream::{SseFramer, SseSink};
use crate::usage::{Conventions, Usage};

use super::mapping::Extractor;
use super::{response_rules, Api, ExtractError, ResponseOutcome, Route};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Framing {
    /// No content type: decided by the first non-whitespace byte.
    Sniff,
    Json,
    Sse,
    EventStream,
    JsonArray,
    Ndjson,
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
        end_event(self.json, self.extractor, self.stats);
    }

    fn done(&mut self) {
        self.stats.parsed = self.stats.parsed.saturating_add(1);
    }
}

/// Ends one streamed event's JSON document: counts it and resets the scanner.
fn end_event(json: &mut Scanner, extractor: &mut Extractor, stats: &mut EventStats) {
    match json.finish(extractor) {
        Ok(()) => stats.parsed = stats.parsed.saturating_add(1),
        // `data:` with nothing in it (a keep-alive) is not a broken event.
        Err(JsonError::Empty) => {}
        Err(error) => {
            stats.failed = stats.failed.saturating_add(1);
            stats.first_error.get_or_insert(error);
        }
    }
    json.reset();
}

/// Framers of the streamed formats other than SSE, created when the content type says so.
#[derive(Debug, Default)]
struct Framers {
    eventstream: Option<EventStreamDecoder>,
    json_array: Option<JsonArrayFramer>,
    ndjson: Option<NdjsonFramer>,
    /// Reused buffer for unwrapped `InvokeModelWithResponseStream` chunks.
    invoke_chunk: Vec<u8>,
    /// First framing fault of the non-SSE framers.
    error: Option<FrameError>,
    /// An eventstream `exception`/`error` message arrived.
    exception: bool,
}

/// Incremental scanner of a (decompressed) response body, framed by content type.
pub struct ResponseScanner {
    api: Api,
    framing: Framing,
    json: Scanner,
    sse: SseFramer,
    framers: Framers,
    extractor: Extractor,
    stats: EventStats,
    /// Usage from response headers (Bedrock `x-amzn-bedrock-*-token-count`), used when the
    /// body reports none.
    header_usage: Usage,
    /// What the counters mean: the API's, or the route's where a vendor differs.
    conventions: Conventions,
    outcome: Option<ResponseOutcome>,
}

impl ResponseScanner {
    pub fn new(api: Api, content_type: Option<&str>) -> Self {
        let ct = content_type.map(|c| c.trim().to_ascii_lowercase());
        let framing = match ct.as_deref() {
            None | Some("") => Framing::Sniff,
            Some(ct) if ct.contains("text/event-stream") => Framing::Sse,
            Some(ct) if ct.contains("vnd.amazon.eventstream") => Framing::EventStream,
            Some(ct) if ct.contains("ndjson") => Framing::Ndjson,
            Some(_) => Framing::Json,
        };
        let mut scanner = Self {
            api,
            framing: Framing::Sniff,
            json: Scanner::new(),
            sse: SseFramer::new(),
            framers: Framers::default(),
            extractor: Extractor::new(response_rules(api)),
            stats: EventStats::default(),
            header_usage: Usage::default(),
            conventions: api.conventions(),
            outcome: None,
        };
        scanner.set_framing(framing);
        scanner
    }

    /// A scanner for a route: the route's API, with the route's counting conventions (a
    /// vendor may count differently from the API it speaks, see [`Route::conventions`]).
    pub fn for_route(route: Route, content_type: Option<&str>) -> Self {
        let mut scanner = Self::new(route.api, content_type);
        scanner.conventions = route.conventions();
        scanner
    }

    fn set_framing(&mut self, framing: Framing) {
        // Gemini's default stream is a JSON array of response objects; the array framer also
        // takes a single object, so every Gemini JSON body goes through it.
        let framing = match framing {
            Framing::Json if self.api == Api::GeminiGenerateContent => Framing::JsonArray,
            other => other,
        };
        match framing {
            Framing::EventStream => self.framers.eventstream = Some(EventStreamDecoder::new()),
            Framing::JsonArray => self.framers.json_array = Some(JsonArrayFramer::new()),
            Framing::Ndjson => self.framers.ndjson = Some(NdjsonFramer::new()),
            _ => {}
        }
        self.framing = framing;
    }

    /// Token counts from response headers, used only when the body reports no usage
    /// (Bedrock `InvokeModel` puts them in `x-amzn-bedrock-input-token-count` and
    /// `x-amzn-bedrock-output-token-count`).
    pub fn set_header_usage(&mut self, input: Option<u64>, output: Option<u64>) {
        self.header_usage.input_tokens = input;
        self.header_usage.output_tokens = output;
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
            let framing = match chunk.first() {
                Some(b'{' | b'[') => Framing::Json,
                _ => Framing::Sse,
            };
            self.set_framing(framing);
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
            Framing::EventStream => self.feed_eventstream(chunk),
            Framing::JsonArray | Framing::Ndjson => self.feed_segments(chunk),
            Framing::Sniff => {}
        }
    }

    /// Bytes of generated content (text, reasoning, tool arguments) read so far; it turns
    /// non-zero at the chunk that carries the first token, which is what time to first token
    /// measures. Role-only and empty deltas do not count.
    pub fn output_text_bytes(&self) -> u64 {
        self.extractor.facts.output_text_bytes
    }

    /// NDJSON records or JSON-array elements, each one JSON document.
    fn feed_segments(&mut self, chunk: &[u8]) {
        let Self {
            json,
            framers,
            extractor,
            stats,
            ..
        } = self;
        let mut on_segment = |seg: Segment<'_>| match seg {
            Segment::Data(d) => {
                // A failure sticks in the scanner until the record ends; counted there.
                let _sticky = json.feed(d, extractor);
            }
            Segment::End => end_event(json, extractor, stats),
        };
        if let Some(f) = framers.ndjson.as_mut() {
            for seg in f.feed(chunk) {
                on_segment(seg);
            }
        } else if let Some(f) = framers.json_array.as_mut() {
            for seg in f.feed(chunk) {
                match seg {
                    Ok(seg) => on_segment(seg),
                    Err(e) => {
                        framers.error.get_or_insert(e);
                        break;
                    }
                }
            }
        }
    }

    /// Bedrock eventstream frames: each event payload is one JSON document; `chunk` events
    /// (`InvokeModelWithResponseStream`) wrap the provider's event in base64.
    fn feed_eventstream(&mut self, chunk: &[u8]) {
        let Self {
            json,
            framers,
            extractor,
            stats,
            ..
        } = self;
        let Some(decoder) = framers.eventstream.as_mut() else {
            return;
        };
        let mut rest = chunk;
        loop {
            let message = match decoder.decode(&mut rest) {
                Ok(Some(m)) => m,
                Ok(None) => break,
                Err(e) => {
                    framers.error.get_or_insert(e);
                    break;
                }
            };
            match message.kind() {
                MessageKind::Event | MessageKind::Unknown => {}
                MessageKind::Exception | MessageKind::Error => {
                    framers.exception = true;
                    continue;
                }
            }
            let payload = if message.event_type() == Some("chunk") {
                match decode_invoke_chunk(message.payload(), &mut framers.invoke_chunk) {
                    Ok(()) => framers.invoke_chunk.as_slice(),
                    Err(e) => {
                        stats.failed = stats.failed.saturating_add(1);
                        framers.error.get_or_insert(e);
                        continue;
                    }
                }
            } else {
                message.payload()
            };
            let _sticky = json.feed(payload, extractor);
            end_event(json, extractor, stats);
        }
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
        // Bedrock's frame buffer is bounded by the eventstream frame cap, the unwrapped
        // chunk buffer by 3/4 of it.
        let framers = self.framers.eventstream.as_ref().map_or(0, |d| d.buffer_capacity())
            + self.framers.invoke_chunk.capacity();
        std::mem::size_of::<Self>()
            + self.json.heap_bytes()
            + self.extractor.heap_bytes()
            + labels
            + framers
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
            Framing::EventStream | Framing::JsonArray | Framing::Ndjson => {
                let framing = match (
                    &self.framers.eventstream,
                    &self.framers.json_array,
                    &mut self.framers.ndjson,
                ) {
                    (Some(d), _, _) => d.finish().err(),
                    (_, Some(f), _) => f.finish().err(),
                    (_, _, Some(f)) => {
                        // A last record without its newline is still a record.
                        if let Some(Segment::End) = f.finish() {
                            end_event(&mut self.json, &mut self.extractor, &mut self.stats);
                        }
                        None
                    }
                    _ => None,
                };
                let framing = self.framers.error.clone().or(framing);
                let error = self
                    .stats
                    .first_error
                    .map(ExtractError::Json)
                    .or(framing.map(ExtractError::Frame))
                    .or(self
                        .framers
                        .exception
                        .then_some(ExtractError::StreamException))
                    .or((self.stats.parsed == 0).then_some(ExtractError::Empty));
                (error, self.stats.parsed > 0 && self.stats.failed == 0)
            }
        };
        let mut usage = self.extractor.usage.clone();
        if !usage.is_reported() && self.header_usage.is_reported() {
            usage = self.header_usage.clone();
        }
        let outcome = ResponseOutcome {
            unreadable: !readable && !usage.is_reported(),
            usage,
            conventions: self.conventions,
            facts: self.extractor.facts.clone(),
            error,
        };
        self.outcome = Some(outcome.clone());
        outcome
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing)]
    use super::*;
    use crate::providers::{Operation, Provider};

    const XAI: &[u8] = include_bytes!("../../tests/fixtures/compat/xai-chat.json");

    fn chat(provider: Provider) -> Route {
        Route { provider, operation: Operation::Chat, api: Api::OpenAiChatCompletions }
    }

    fn scan(route: Route, body: &[u8]) -> crate::usage::NormalizedUsage {
        let mut scanner = ResponseScanner::for_route(route, Some("application/json"));
        scanner.feed(body);
        let outcome = scanner.finish();
        outcome.usage.normalize(outcome.conventions)
    }

    #[test]
    fn xai_reasoning_outside_completion_tokens_is_added_to_the_output() {
        // completion_tokens 9 + reasoning_tokens 94: xAI bills 103 output tokens.
        let u = scan(chat(Provider::XAi), XAI);
        assert_eq!((u.input_tokens, u.cache_read_tokens), (32, 6));
        assert_eq!((u.output_tokens, u.reasoning_tokens), (103, 94));
    }

    #[test]
    fn openai_reasoning_stays_inside_completion_tokens() {
        // The same bytes from OpenAI mean reasoning is part of completion_tokens.
        let u = scan(chat(Provider::OpenAi), XAI);
        assert_eq!(u.output_tokens, 9);
        assert_eq!(ResponseScanner::new(Api::OpenAiChatCompletions, None).conventions, Conventions::OPENAI);
    }
}
