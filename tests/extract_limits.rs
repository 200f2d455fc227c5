//! The extraction layer under hostile or broken bodies: it never panics, keeps memory
//! bounded, and says `unreadable` exactly when no usage could be read.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use tokenmeter::json::JsonError;
use tokenmeter::providers::{Api, ExtractError, ResponseOutcome, ResponseScanner};

fn scan(api: Api, content_type: Option<&str>, chunks: &[&[u8]]) -> ResponseOutcome {
    let mut scanner = ResponseScanner::new(api, content_type);
    for chunk in chunks {
        scanner.feed(chunk);
    }
    scanner.finish()
}

const ANTHROPIC_JSON: &[u8] = include_bytes!("fixtures/anthropic/basic.json");
const ANTHROPIC_SSE: &[u8] = include_bytes!("fixtures/anthropic/stream-basic.sse");
const OPENAI_SSE: &[u8] = include_bytes!("fixtures/openai/ag-chat-stream.sse");

/// A stream cut between events, with no usage yet, stays readable: the pipeline then
/// estimates from what was streamed. A JSON body cut anywhere is unreadable unless its
/// usage had already been read.
#[test]
fn a_body_cut_short_is_unreadable_only_when_nothing_usable_was_read() {
    for (api, ct, body) in [
        (
            Api::AnthropicMessages,
            Some("application/json"),
            ANTHROPIC_JSON,
        ),
        (
            Api::AnthropicMessages,
            Some("text/event-stream"),
            ANTHROPIC_SSE,
        ),
        (
            Api::OpenAiChatCompletions,
            Some("text/event-stream"),
            OPENAI_SSE,
        ),
    ] {
        // Every length of the small bodies; every 7th of the long stream (debug-build time).
        let step = if body.len() > 4096 { 7 } else { 1 };
        for len in (0..body.len()).step_by(step) {
            let out = scan(api, ct, &[&body[..len]]);
            // Reported usage is never unreadable, and unreadable always says why.
            assert!(!(out.usage.is_reported() && out.unreadable), "cut at {len}");
            assert!(!out.unreadable || out.error.is_some(), "cut at {len}");
            if ct == Some("application/json") {
                assert_eq!(out.unreadable, !out.usage.is_reported(), "cut at {len}");
            }
        }
    }
    // Cut inside the final usage object: the anthropic body keeps nothing it had not read.
    let cut = ANTHROPIC_JSON
        .windows(15)
        .position(|w| w == b"\"output_tokens\"")
        .unwrap();
    let out = scan(
        Api::AnthropicMessages,
        Some("application/json"),
        &[&ANTHROPIC_JSON[..cut]],
    );
    assert_eq!(out.usage.input_tokens, Some(15));
    assert_eq!(out.usage.output_tokens, None);
    assert_eq!(out.error, Some(ExtractError::Json(JsonError::Truncated)));
    assert!(!out.unreadable);
}

#[test]
fn a_stream_cut_after_its_usage_event_keeps_the_usage() {
    let end = OPENAI_SSE
        .windows(12)
        .position(|w| w == b"data: [DONE]")
        .unwrap();
    let out = scan(
        Api::OpenAiChatCompletions,
        Some("text/event-stream"),
        &[&OPENAI_SSE[..end - 1]],
    );
    assert_eq!(out.usage.output_tokens, Some(286));
    assert!(!out.unreadable);
}

#[test]
fn non_json_bodies_are_unreadable() {
    for (ct, body) in [
        (
            Some("text/html"),
            &b"<html><body>502 Bad Gateway</body></html>"[..],
        ),
        (
            Some("application/json"),
            b"upstream connect error or disconnect/reset before headers",
        ),
        (None, b"\n\nupstream request timeout"),
        (Some("application/json"), b""),
        (None, b""),
        (None, b"   \r\n"),
    ] {
        let out = scan(Api::OpenAiChatCompletions, ct, &[body]);
        assert!(out.unreadable, "{:?}", String::from_utf8_lossy(body));
        assert!(out.error.is_some());
        assert!(!out.usage.is_reported());
    }
}

#[test]
fn invalid_utf8_does_not_hide_usage() {
    let body = b"{\"model\":\"gpt\xff-4o\",\"choices\":[{\"message\":{\"content\":\"\xc3\x28\xa0\xa1\"}}],\"usage\":{\"prompt_tokens\":3,\"completion_tokens\":4}}";
    let out = scan(
        Api::OpenAiChatCompletions,
        Some("application/json"),
        &[body],
    );
    assert_eq!(out.usage.input_tokens, Some(3));
    assert_eq!(out.usage.output_tokens, Some(4));
    assert_eq!(out.facts.model.as_deref(), Some("gpt\u{fffd}-4o"));
    // A multi-byte character split across chunks is reassembled before decoding.
    let body = "{\"model\":\"modèle\"}".as_bytes();
    let split = body.iter().position(|b| *b == 0xc3).unwrap() + 1;
    let out = scan(
        Api::OpenAiChatCompletions,
        None,
        &[&body[..split], &body[split..]],
    );
    assert_eq!(out.facts.model.as_deref(), Some("modèle"));
}

#[test]
fn hostile_numbers_saturate() {
    let body = br#"{"usage":{"prompt_tokens":340282366920938463463374607431768211456,"completion_tokens":-5,"prompt_tokens_details":{"cached_tokens":1.5}}}"#;
    let out = scan(Api::OpenAiChatCompletions, None, &[body]);
    assert_eq!(out.usage.input_tokens, Some(u64::MAX));
    assert_eq!(out.usage.output_tokens, None);
    assert_eq!(out.usage.cache_read_tokens, None);
    assert!(!out.unreadable);
}

#[test]
fn deep_nesting_in_a_response_is_skipped_and_usage_after_it_read() {
    let mut body = String::from(r#"{"choices":[{"message":{"content":"x","tool_calls":"#);
    body.push_str(&"[".repeat(100_000));
    body.push_str(&"]".repeat(100_000));
    body.push_str(r#"}}],"usage":{"prompt_tokens":11,"completion_tokens":12}}"#);
    let out = scan(Api::OpenAiChatCompletions, None, &[body.as_bytes()]);
    assert_eq!(
        (out.usage.input_tokens, out.usage.output_tokens),
        (Some(11), Some(12))
    );
    // And in an SSE event, 100,000 deep, cut into pieces.
    let event = format!(
        "data: {{\"x\":{}{}}}\n\n",
        "{\"a\":".repeat(50_000),
        "1}".repeat(50_000)
    );
    let chunks: Vec<&[u8]> = event.as_bytes().chunks(4096).collect();
    let out = scan(
        Api::OpenAiChatCompletions,
        Some("text/event-stream"),
        &chunks,
    );
    assert!(!out.unreadable);
}

#[test]
fn crlf_streams_read_like_lf_streams() {
    let crlf: Vec<u8> = String::from_utf8(OPENAI_SSE.to_vec())
        .unwrap()
        .replace('\n', "\r\n")
        .into_bytes();
    let cr: Vec<u8> = String::from_utf8(OPENAI_SSE.to_vec())
        .unwrap()
        .replace('\n', "\r")
        .into_bytes();
    let lf = scan(
        Api::OpenAiChatCompletions,
        Some("text/event-stream"),
        &[OPENAI_SSE],
    );
    assert_eq!(
        scan(
            Api::OpenAiChatCompletions,
            Some("text/event-stream"),
            &[&crlf]
        ),
        lf
    );
    assert_eq!(
        scan(
            Api::OpenAiChatCompletions,
            Some("text/event-stream"),
            &[&cr]
        ),
        lf
    );
    // Cuts near every line ending: the CR LF pair split across chunks is the hard case.
    for cut in (1..crlf.len()).filter(|&c| crlf[c - 1] == b'\r' || c % 97 == 0) {
        let (a, b) = crlf.split_at(cut);
        assert_eq!(
            scan(
                Api::OpenAiChatCompletions,
                Some("text/event-stream"),
                &[a, b]
            ),
            lf
        );
    }
}

#[test]
fn anthropic_message_delta_with_only_output_keeps_the_start_counts() {
    let body = b"event: message_start\ndata: {\"type\":\"message_start\",\"message\":{\"id\":\"msg_1\",\"model\":\"claude-x\",\"usage\":{\"input_tokens\":25,\"cache_read_input_tokens\":100,\"output_tokens\":1}}}\n\nevent: message_delta\ndata: {\"type\":\"message_delta\",\"delta\":{\"stop_reason\":\"max_tokens\"},\"usage\":{\"output_tokens\":15}}\n\n";
    let out = scan(Api::AnthropicMessages, Some("text/event-stream"), &[body]);
    assert_eq!(out.usage.input_tokens, Some(25));
    assert_eq!(out.usage.cache_read_tokens, Some(100));
    assert_eq!(out.usage.output_tokens, Some(15));
    assert_eq!(out.facts.finish_reason.as_deref(), Some("max_tokens"));
    let n = out.usage.normalize(out.conventions);
    assert_eq!(n.input_tokens, 125);
}

#[test]
fn responses_api_terminal_events_all_carry_usage() {
    for (event, status) in [
        ("response.completed", "completed"),
        ("response.incomplete", "incomplete"),
        ("response.failed", "failed"),
    ] {
        let body = format!(
            "event: response.created\ndata: {{\"type\":\"response.created\",\"response\":{{\"id\":\"resp_1\",\"model\":\"gpt-5\",\"status\":\"in_progress\",\"usage\":null}}}}\n\n\
             event: {event}\ndata: {{\"type\":\"{event}\",\"response\":{{\"id\":\"resp_1\",\"model\":\"gpt-5\",\"status\":\"{status}\",\"output\":[{{\"type\":\"message\",\"content\":[{{\"type\":\"output_text\",\"text\":\"hi\"}}]}}],\"usage\":{{\"input_tokens\":100,\"input_tokens_details\":{{\"cached_tokens\":40}},\"output_tokens\":30,\"output_tokens_details\":{{\"reasoning_tokens\":20}}}}}}}}\n\n"
        );
        let out = scan(
            Api::OpenAiResponses,
            Some("text/event-stream"),
            &[body.as_bytes()],
        );
        assert_eq!(out.usage.input_tokens, Some(100), "{event}");
        assert_eq!(out.usage.cache_read_tokens, Some(40));
        assert_eq!(out.usage.output_tokens, Some(30));
        assert_eq!(out.usage.reasoning_tokens, Some(20));
        assert_eq!(out.facts.finish_reason.as_deref(), Some(status));
    }
}

#[test]
fn one_broken_event_among_good_ones_keeps_the_usage() {
    let body = b"data: {\"model\":\"m\"}\n\ndata: {oops\n\ndata: {\"usage\":{\"prompt_tokens\":1,\"completion_tokens\":2}}\n\ndata: [DONE]\n\n";
    let out = scan(
        Api::OpenAiChatCompletions,
        Some("text/event-stream"),
        &[body],
    );
    assert_eq!(out.usage.output_tokens, Some(2));
    assert!(!out.unreadable);
    assert!(matches!(
        out.error,
        Some(ExtractError::Json(JsonError::UnexpectedByte {
            byte: b'o',
            ..
        }))
    ));
}

/// Streams a synthetic embeddings body of about `mb` MB in 64 KiB chunks without ever
/// holding it, and checks the scanner's footprint after every chunk.
fn embeddings_in_chunks(mb: usize) {
    let mut scanner = ResponseScanner::new(Api::OpenAiEmbeddings, Some("application/json"));
    let baseline = scanner.retained_bytes();
    scanner.feed(b"{\"object\":\"list\",\"data\":[");
    let vector: String = (0..1536)
        .map(|i| format!("-0.0{:07},", i * 7919 % 10_000_000))
        .collect();
    let item = format!(
        "{{\"object\":\"embedding\",\"index\":0,\"embedding\":[{}0.5]}},",
        vector
    );
    let mut chunk = Vec::with_capacity(64 << 10);
    let mut sent = 0usize;
    // Each item ends with a comma, so the items and the closing item form a valid array.
    while sent < mb << 20 {
        for byte in item.bytes() {
            chunk.push(byte);
            if chunk.len() == 64 << 10 {
                scanner.feed(&chunk);
                sent += chunk.len();
                chunk.clear();
                assert!(
                    scanner.retained_bytes() <= baseline + 1024,
                    "{}",
                    scanner.retained_bytes()
                );
            }
        }
    }
    chunk.extend_from_slice(b"{\"object\":\"embedding\",\"index\":1,\"embedding\":[0.1]}],\"model\":\"text-embedding-3-small\",\"usage\":{\"prompt_tokens\":123456,\"total_tokens\":123456}}");
    scanner.feed(&chunk);
    let out = scanner.finish();
    assert_eq!(out.error, None);
    assert_eq!(out.usage.input_tokens, Some(123_456));
    assert_eq!(out.facts.model.as_deref(), Some("text-embedding-3-small"));
    assert!(scanner.retained_bytes() <= baseline + 1024);
    // The whole scanner, inline state included, is a few KiB whatever the body size.
    assert!(baseline < 8 << 10, "{baseline}");
}

#[test]
fn a_large_embeddings_body_streams_in_bounded_memory() {
    embeddings_in_chunks(8);
}

#[test]
#[ignore = "100 MB; run in --release"]
fn a_100_mb_embeddings_body_streams_in_bounded_memory() {
    embeddings_in_chunks(100);
}
