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
//!
//! SSE events go through the stream's prefix memo (`event_memo`): the bytes every chunk of
//! a stream repeats are scanned once or twice, and later events restore the scanner state
//! after them instead of scanning them again. The result is exactly that of plain scanning
//! (the tests below compare both at every split); what it saves is most of the per-event
//! JSON work of a chat stream.

use crate::json::{JsonError, Scanner};
use crate::stream::eventstream::{
    decode_invoke_chunk, EventStreamDecoder, FrameError, MessageKind,
};
use crate::stream::json_array::JsonArrayFramer;
use crate::stream::ndjson::{NdjsonFramer, Segment};
use crate::stream::{SseFramer, SseSink};
use crate::usage::{Conventions, Usage};

use super::event_memo::EventMemo;
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

/// Feeds one SSE event's data into the scanner, through the prefix memo when there is one.
struct EventSink<'a> {
    json: &'a mut Scanner,
    extractor: &'a mut Extractor,
    stats: &'a mut EventStats,
    memo: Option<&'a mut EventMemo>,
}

impl SseSink for EventSink<'_> {
    fn data(&mut self, bytes: &[u8]) {
        match self.memo.as_deref_mut() {
            Some(memo) => memo.data(bytes, self.json, self.extractor),
            None => {
                // A failure sticks in the scanner until the event ends; it is counted there.
                let _sticky = self.json.feed(bytes, self.extractor);
            }
        }
    }

    fn event_end(&mut self, _name: &[u8]) {
        if let Some(memo) = self.memo.as_deref_mut() {
            memo.event_end(self.json, self.extractor);
        }
        end_event(self.json, self.extractor, self.stats);
        if let Some(memo) = self.memo.as_deref_mut() {
            memo.learn(self.json, self.extractor);
        }
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
    /// Skips the prefix SSE events share; `None` only in tests comparing against it.
    memo: Option<EventMemo>,
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
            memo: Some(EventMemo::new()),
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
                    memo: self.memo.as_mut(),
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

    /// SSE events whose leading bytes matched the stream's memoised prefix, so the scanner
    /// state after them was restored instead of scanned (see `providers::event_memo`).
    pub fn prefix_memo_hits(&self) -> u64 {
        self.memo.as_ref().map_or(0, EventMemo::hits)
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
        let framers = self
            .framers
            .eventstream
            .as_ref()
            .map_or(0, |d| d.buffer_capacity())
            + self.framers.invoke_chunk.capacity();
        std::mem::size_of::<Self>()
            + self.json.heap_bytes()
            + self.memo.as_ref().map_or(0, EventMemo::heap_bytes)
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
                    memo: self.memo.as_mut(),
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
    //! The event-prefix memo against plain scanning: same outcome, whatever the chunking.
    #![allow(
        clippy::unwrap_used,
        clippy::expect_used,
        clippy::panic,
        clippy::indexing_slicing
    )]
    use super::*;
    use crate::providers::{Operation, Provider};

    const SSE: &str = "text/event-stream";

    fn scan_with(api: Api, chunks: &[&[u8]], memo: bool) -> (ResponseOutcome, u64) {
        let mut s = ResponseScanner::new(api, Some(SSE));
        if !memo {
            s.memo = None;
        }
        for c in chunks {
            s.feed(c);
        }
        (s.finish(), s.prefix_memo_hits())
    }

    /// Scans `body` whole, split in two at every offset (every 13th past 3 KB: the golden
    /// tests split the fixtures at every offset already) and byte by byte, with and without
    /// the memo, asserts every outcome equals the plain whole scan and returns it with the
    /// hits of the whole scan.
    fn same_with_and_without_memo(api: Api, body: &[u8]) -> (ResponseOutcome, u64) {
        let (plain, _) = scan_with(api, &[body], false);
        let (memo, hits) = scan_with(api, &[body], true);
        assert_eq!(memo, plain, "whole");
        let stride = if body.len() > 3000 { 13 } else { 1 };
        for cut in (0..=body.len()).step_by(stride) {
            let (a, b) = body.split_at(cut);
            assert_eq!(scan_with(api, &[a, b], true).0, plain, "split at {cut}");
        }
        let bytes: Vec<&[u8]> = body.chunks(1).collect();
        assert_eq!(scan_with(api, &bytes, true).0, plain, "byte by byte");
        assert_eq!(
            scan_with(api, &bytes, false).0,
            plain,
            "byte by byte, no memo"
        );
        (plain, hits)
    }

    const HEAD: &str = r#"{"id":"chatcmpl-1","object":"chat.completion.chunk","created":1,"model":"gpt-4o-mini","service_tier":"default","system_fingerprint":"fp_1","choices":["#;

    fn chat_event(choice: &str, tail: &str) -> String {
        format!("data: {HEAD}{choice}]{tail}}}\n\n")
    }

    fn delta(text: &str) -> String {
        format!(r#"{{"index":0,"delta":{{"content":"{text}"}},"finish_reason":null}}"#)
    }

    fn chat_stream(words: &[&str], last: &str) -> String {
        let mut body = chat_event(
            r#"{"index":0,"delta":{"role":"assistant","content":""},"finish_reason":null}"#,
            "",
        );
        for w in words {
            body.push_str(&chat_event(&delta(w), ""));
        }
        body.push_str(last);
        body.push_str("data: [DONE]\n\n");
        body
    }

    const USAGE: &str = r#","usage":{"prompt_tokens":11,"completion_tokens":7,"total_tokens":18}"#;

    #[test]
    fn every_sse_fixture_reads_the_same_with_the_memo_split_anywhere() {
        let fixtures: [(Api, &[u8]); 12] = [
            (
                Api::OpenAiChatCompletions,
                include_bytes!("../../tests/fixtures/openai/chat-streaming.sse"),
            ),
            (
                Api::OpenAiChatCompletions,
                include_bytes!("../../tests/fixtures/openai/chat-streaming-detailed-usage.sse"),
            ),
            (
                Api::OpenAiChatCompletions,
                include_bytes!("../../tests/fixtures/openai/chat-streaming-web-search.sse"),
            ),
            (
                Api::OpenAiChatCompletions,
                include_bytes!("../../tests/fixtures/openai/ag-chat-stream.sse"),
            ),
            (
                Api::OpenAiChatCompletions,
                include_bytes!("../../tests/fixtures/compat/groq-stream.sse"),
            ),
            (
                Api::OpenAiCompletions,
                include_bytes!("../../tests/fixtures/openai/completion-streaming.sse"),
            ),
            (
                Api::OpenAiCompletions,
                include_bytes!("../../tests/fixtures/openai/completion-streaming-usage.sse"),
            ),
            (
                Api::OpenAiResponses,
                include_bytes!("../../tests/fixtures/openai/responses-stream.sse"),
            ),
            (
                Api::AnthropicMessages,
                include_bytes!("../../tests/fixtures/anthropic/stream-basic.sse"),
            ),
            (
                Api::AnthropicMessages,
                include_bytes!("../../tests/fixtures/anthropic/synthetic-web-search-stream.sse"),
            ),
            (
                Api::GeminiGenerateContent,
                include_bytes!("../../tests/fixtures/gemini/stream.sse"),
            ),
            (
                Api::CohereChat,
                include_bytes!("../../tests/fixtures/cohere/chat-stream.sse"),
            ),
        ];
        let mut hits = 0;
        for (api, body) in fixtures {
            hits += same_with_and_without_memo(api, body).1;
        }
        // The fixtures are short, but the recorded chat streams do repeat their prefix: the
        // memo must have been used, or this test compared plain scanning with itself.
        assert!(hits >= 10, "memo hits over all fixtures: {hits}");
    }

    #[test]
    fn a_chat_stream_scans_its_shared_prefix_twice_then_restores_it() {
        let words = ["one", "two", "three", "four", "five", "six"];
        let body = chat_stream(&words, &chat_event("", USAGE));
        let (out, hits) = same_with_and_without_memo(Api::OpenAiChatCompletions, body.as_bytes());
        // The role chunk is the reference, the first delta teaches the memo, every later
        // chunk (four deltas and the usage chunk) restores it.
        assert_eq!(hits, 5);
        assert_eq!(out.usage.input_tokens, Some(11));
        assert_eq!(out.usage.output_tokens, Some(7));
        assert_eq!(out.facts.model.as_deref(), Some("gpt-4o-mini"));
        assert_eq!(out.facts.id.as_deref(), Some("chatcmpl-1"));
        assert_eq!(out.facts.service_tier.as_deref(), Some("default"));
        let text: u64 = words.iter().map(|w| w.len() as u64).sum();
        assert_eq!(out.facts.output_text_bytes, text);
    }

    #[test]
    fn a_usage_key_straddling_a_chunk_boundary_after_a_restored_prefix_is_read() {
        // Usage in a chunk that shares the memoised prefix (restored: 3 hits), and in
        // OpenAI's `choices: []` chunk, which departs from it inside the prefix (2 hits).
        for (last, want_hits) in [
            (chat_event(&delta("d"), USAGE), 3),
            (chat_event("", USAGE), 2),
        ] {
            let body = chat_stream(&["a", "b", "c"], &last);
            let at = body.rfind("\"usage\"").unwrap();
            for cut in at..at + "\"usage\":{\"prompt_tokens\"".len() {
                let (a, b) = body.as_bytes().split_at(cut);
                let (out, hits) = scan_with(Api::OpenAiChatCompletions, &[a, b], true);
                assert_eq!(out.usage.input_tokens, Some(11), "cut {cut}");
                assert_eq!(out.usage.output_tokens, Some(7), "cut {cut}");
                assert_eq!(hits, want_hits, "cut {cut}");
            }
        }
    }

    #[test]
    fn usage_written_inside_a_content_string_is_text_not_usage() {
        let sneaky = r#"the \"usage\":{\"prompt_tokens\":99,\"completion_tokens\":99}"#;
        let body = chat_stream(&["x", sneaky, "y"], &chat_event("", ""));
        let (out, hits) = same_with_and_without_memo(Api::OpenAiChatCompletions, body.as_bytes());
        assert!(hits > 0);
        assert_eq!(out.usage, Usage::default());
        assert_eq!(out.facts.output_text_bytes, 2 + sneaky.len() as u64);
    }

    #[test]
    fn facts_that_change_mid_stream_end_as_without_the_memo() {
        // The model changes inside the memoised prefix and back; the id changes in the
        // tail, after the prefix; the service tier only in one late event.
        let mut body = chat_stream(&["a", "b", "c"], "");
        body.push_str(&chat_event(&delta("d"), "").replace("gpt-4o-mini", "gpt-4o-mini-fallback"));
        body.push_str(&chat_event(&delta("e"), ""));
        body.push_str(&chat_event(&delta("f"), r#","id":"chatcmpl-2""#));
        body.push_str(&chat_event(&delta("g"), ""));
        body.push_str(&chat_event(&delta("h"), "").replace("\"default\"", "\"flex\""));
        let (out, _) = same_with_and_without_memo(Api::OpenAiChatCompletions, body.as_bytes());
        assert_eq!(out.facts.model.as_deref(), Some("gpt-4o-mini"));
        // The last event names chatcmpl-1 again in its (restored) prefix.
        assert_eq!(out.facts.id.as_deref(), Some("chatcmpl-1"));
        assert_eq!(out.facts.service_tier.as_deref(), Some("flex"));
    }

    #[test]
    fn broken_short_and_unrelated_events_read_the_same_with_the_memo() {
        let mut body = chat_stream(&["a", "b"], "");
        // An event that is a strict prefix of the memoised bytes, a broken one, keep-alives,
        // a multi-line event, an unrelated event type, then the usage chunk.
        body.push_str(&format!("data: {}\n\n", &HEAD[..60]));
        body.push_str(&format!(
            "data: {HEAD}{{\"index\":0,\"delta\":{{\"content\":\"x\"}}]]}}\n\n"
        ));
        body.push_str(": ping\n\ndata:\n\n");
        body.push_str(&format!(
            "data: {}\ndata: {}\n\n",
            &HEAD[..70],
            &chat_event(&delta("m"), "")[6 + 70..].trim_end()
        ));
        body.push_str("event: error\ndata: {\"error\":{\"message\":\"usage\"}}\n\n");
        body.push_str(&chat_event("", USAGE));
        let (out, _) = same_with_and_without_memo(Api::OpenAiChatCompletions, body.as_bytes());
        assert_eq!(out.usage.input_tokens, Some(11));
        assert!(out.error.is_some());
        // And a stream cut inside a memoised prefix.
        let cut = chat_stream(&["a", "b", "c"], &format!("data: {}", &HEAD[..50]));
        let cut = cut.trim_end_matches("data: [DONE]\n\n");
        let (out, _) = same_with_and_without_memo(Api::OpenAiChatCompletions, cut.as_bytes());
        assert_eq!(out.error, Some(ExtractError::Json(JsonError::Truncated)));
    }

    /// Deterministic xorshift for the generated streams.
    struct Rng(u64);

    impl Rng {
        fn below(&mut self, n: u64) -> u64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            self.0 % n
        }
    }

    #[test]
    fn generated_streams_in_random_chunks_read_the_same_with_the_memo() {
        let shapes = [
            chat_event(&delta("w"), ""),
            chat_event(&delta("w"), "").replace("gpt-4o-mini", "other-model"),
            chat_event(&delta("w"), "").replace("\"created\":1", "\"created\":2"),
            chat_event(r#"{"index":0,"delta":{},"finish_reason":"stop"}"#, ""),
            chat_event("", USAGE),
            chat_event("", &USAGE.replace("11", "12")),
            "data: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"text_delta\",\"text\":\"w\"}}\n\n".to_owned(),
            "data: {\"id\":\"x\",\"choices\":[{\"delta\":{\"content\":\"\\u00e9\\\"w\"}}]}\n\n".to_owned(),
            format!("data: {}\n\n", &HEAD[..90]),
        ];
        let mut rng = Rng(0x5eed);
        for round in 0..40 {
            let mut body = String::new();
            for _ in 0..rng.below(30) {
                body.push_str(&shapes[rng.below(shapes.len() as u64) as usize]);
            }
            let (plain, _) = scan_with(Api::OpenAiChatCompletions, &[body.as_bytes()], false);
            for _ in 0..8 {
                let mut chunks = Vec::new();
                let mut rest = body.as_bytes();
                while !rest.is_empty() {
                    let n = (1 + rng.below(120) as usize).min(rest.len());
                    let (a, b) = rest.split_at(n);
                    chunks.push(a);
                    rest = b;
                }
                let (out, _) = scan_with(Api::OpenAiChatCompletions, &chunks, true);
                assert_eq!(out, plain, "round {round}");
            }
        }
    }

    #[test]
    fn a_long_stream_keeps_the_memo_bounded() {
        let mut s = ResponseScanner::new(Api::OpenAiChatCompletions, Some(SSE));
        let baseline = s.retained_bytes();
        let mut rng = Rng(7);
        let mut pad = String::new();
        for i in 0..5000u64 {
            // Prefixes that keep changing length make the memo shrink and start over.
            if i % 3 == 0 {
                pad = "p".repeat(rng.below(600) as usize);
            }
            s.feed(format!("data: {{\"id\":\"{pad}\",\"n\":{i},\"choices\":[]}}\n\n").as_bytes());
            assert!(
                s.retained_bytes() <= baseline + (8 << 10),
                "{}",
                s.retained_bytes()
            );
        }
        assert!(s.prefix_memo_hits() > 0);
    }

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
