//! The usage guarantee for streams, response side: when the filter injected
//! `stream_options.include_usage`, the client receives exactly the stream it would have
//! received without it, while the meter still reads the usage; and when usage is missing
//! despite content, it is estimated.
//!
//! The expected client bytes are derived independently of the stripper: from the recorded
//! streams (which were recorded *with* include_usage), drop the `choices: []` event and the
//! `,"usage":null` text OpenAI adds to every other chunk.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use tokenmeter::config::Config;
use tokenmeter::meter::{Exchange, RequestHead};
use tokenmeter::providers::{Api, ResponseScanner};
use tokenmeter::stream::usage_strip::UsageChunkStripper;
use tokenmeter::usage::UsageSource;

const STREAMS: [&[u8]; 3] = [
    include_bytes!("fixtures/openai/ag-chat-stream.sse"),
    include_bytes!("fixtures/openai/chat-streaming-detailed-usage.sse"),
    include_bytes!("fixtures/openai/completion-streaming-usage.sse"),
];

/// What OpenAI sends without include_usage, derived with serde_json per event.
fn without_injection(stream: &[u8]) -> Vec<u8> {
    let text = std::str::from_utf8(stream).unwrap();
    let mut out = String::new();
    for event in text.split_inclusive("\n\n") {
        let data = event.trim_end().strip_prefix("data: ").unwrap_or("");
        if let Ok(v) = serde_json::from_str::<serde_json::Value>(data) {
            if v["choices"].as_array().is_some_and(Vec::is_empty) && v["usage"].is_object() {
                continue;
            }
        }
        out.push_str(&event.replace(",\"usage\":null", ""));
    }
    out.into_bytes()
}

/// Every byte of the first and last 1 KiB (the usage chunk and `[DONE]` are at the end),
/// and pseudo-random points in between: the streams are tens of KiB, and every split point
/// of all of them would take minutes in a debug build.
fn split_points(len: usize) -> Vec<usize> {
    let mut points: Vec<usize> = (0..=len.min(1024))
        .chain(len.saturating_sub(1024)..=len)
        .collect();
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    for _ in 0..200 {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        points.push((x % (len as u64 + 1)) as usize);
    }
    points
}

fn strip_pieces(pieces: &[&[u8]]) -> Vec<u8> {
    let mut s = UsageChunkStripper::default();
    let mut out = Vec::new();
    for p in pieces {
        s.feed(p, &mut out);
    }
    s.finish(&mut out);
    out
}

#[test]
fn the_fixtures_were_recorded_with_include_usage() {
    for stream in STREAMS {
        let want = without_injection(stream);
        assert!(want.len() < stream.len());
        let o = {
            let mut s = ResponseScanner::new(Api::OpenAiChatCompletions, Some("text/event-stream"));
            s.feed(stream);
            s.finish()
        };
        assert!(o.usage.is_reported());
    }
}

#[test]
fn client_bytes_equal_the_stream_without_injection_at_every_split() {
    for stream in STREAMS {
        let want = without_injection(stream);
        assert_eq!(strip_pieces(&[stream]), want);
        for i in split_points(stream.len()) {
            let (a, b) = stream.split_at(i);
            assert_eq!(strip_pieces(&[a, b]), want, "split at {i}");
        }
        let bytes: Vec<&[u8]> = stream.chunks(1).collect();
        assert_eq!(strip_pieces(&bytes), want);
        for size in [2, 3, 7, 64, 333] {
            let pieces: Vec<&[u8]> = stream.chunks(size).collect();
            assert_eq!(strip_pieces(&pieces), want, "chunks of {size}");
        }
    }
}

#[test]
fn crlf_streams_are_stripped_exactly_too() {
    for stream in STREAMS {
        let crlf = String::from_utf8(stream.to_vec())
            .unwrap()
            .replace('\n', "\r\n");
        let want = String::from_utf8(without_injection(stream))
            .unwrap()
            .replace('\n', "\r\n");
        let b = crlf.as_bytes();
        for i in split_points(b.len()) {
            let (x, y) = b.split_at(i);
            assert_eq!(strip_pieces(&[x, y]), want.as_bytes(), "split at {i}");
        }
    }
}

#[test]
fn holdback_is_bounded_by_the_current_event() {
    let stream = STREAMS[0];
    let longest_event = std::str::from_utf8(stream)
        .unwrap()
        .split_inclusive("\n\n")
        .map(str::len)
        .max()
        .unwrap();
    let mut s = UsageChunkStripper::default();
    let mut out = Vec::new();
    for b in stream.chunks(1) {
        s.feed(b, &mut out);
        assert!(s.held_bytes() <= longest_event);
    }
}

struct Head(&'static str);

impl RequestHead for Head {
    fn path(&self) -> Option<String> {
        Some(self.0.to_string())
    }
    fn authority(&self) -> Option<String> {
        Some("api.openai.com".into())
    }
    fn method(&self) -> Option<String> {
        Some("POST".into())
    }
    fn header(&self, _name: &str) -> Option<String> {
        None
    }
}

/// Drives an exchange the way the shell does; returns the record and the client's bytes.
fn drive(injected: bool, stream: &[u8], chunk: usize) -> (tokenmeter::meter::Record, Vec<u8>) {
    let config = Config::from_json(b"{}").unwrap();
    let (mut ex, _) = Exchange::begin(&config, &Head("/v1/chat/completions")).unwrap();
    ex.set_usage_injected(injected);
    ex.on_request_body(
        br#"{"model":"gpt-5-nano","stream":true,"messages":[{"role":"user","content":"Hi"}]}"#,
        true,
    );
    let ct = |name: &str| (name == "content-type").then(|| "text/event-stream".to_string());
    ex.on_response_headers(Some(200), &ct);
    assert_eq!(ex.rewrites_response_body(), injected);
    let mut client = Vec::new();
    let pieces: Vec<&[u8]> = stream.chunks(chunk).collect();
    for (i, piece) in pieces.iter().enumerate() {
        let end = i + 1 == pieces.len();
        ex.on_response_body(piece, end);
        match ex.filter_response_body(piece, end) {
            Some(bytes) => client.extend_from_slice(&bytes),
            None => client.extend_from_slice(piece),
        }
    }
    (ex.finish(0), client)
}

#[test]
fn an_injected_stream_is_metered_and_the_client_sees_the_plain_stream() {
    let stream = STREAMS[0];
    for chunk in [1, 5, 100, stream.len()] {
        let (record, client) = drive(true, stream, chunk);
        assert_eq!(client, without_injection(stream), "chunk {chunk}");
        assert_eq!(record.usage_source, UsageSource::Reported);
        assert!(record.usage.output_tokens > 0);
        assert!(record.cost.is_some());
    }
    // Not injected: the client's bytes are the upstream's, untouched.
    let (_, client) = drive(false, stream, 7);
    assert_eq!(client, stream);
}

#[test]
fn a_stream_without_usage_is_estimated_from_its_content() {
    let plain = without_injection(STREAMS[0]);
    let (record, _) = drive(false, &plain, 50);
    assert_eq!(record.usage_source, UsageSource::Estimated);
    assert_eq!(record.usage_missing_reason, Some("not_reported"));
    let request_bytes =
        br#"{"model":"gpt-5-nano","stream":true,"messages":[{"role":"user","content":"Hi"}]}"#.len()
            as u64;
    assert_eq!(record.usage.input_tokens, request_bytes.div_ceil(4));
    assert_eq!(
        record.usage.output_tokens,
        record.response.output_text_bytes.div_ceil(4)
    );
    assert!(record.usage.output_tokens > 0);
    // Priced on the estimate: an estimate is not a made-up $0, and not unpriced.
    assert!(record.cost.is_some_and(|c| c.0 > 0));
    let plan = tokenmeter::telemetry::TelemetryState::new(&Config::from_json(b"{}").unwrap())
        .plan(&record);
    assert!(plan
        .iter()
        .any(|u| u.name.ends_with("tokenmeter_usage_estimated_total")));
    assert!(plan
        .iter()
        .all(|u| !u.name.ends_with("tokenmeter_usage_missing_total")));
}
