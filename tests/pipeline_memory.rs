//! Per-request memory is bounded: an `Exchange` fed a gzip bomb, or a long plain body, holds
//! no more memory at the end than after its first chunk. Measured with a counting allocator,
//! so this file holds a single test (the counter is process-wide).
// A global allocator needs `unsafe impl`; it only forwards to `System` and counts.
#![allow(unsafe_code)]
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing)]

use std::alloc::{GlobalAlloc, Layout, System};
use std::collections::HashMap;
use std::sync::atomic::{AtomicIsize, Ordering};

use miniz_oxide::deflate::compress_to_vec;
use tokenmeter::config::Config;
use tokenmeter::meter::{Exchange, RequestHead};

struct Counting;

static LIVE: AtomicIsize = AtomicIsize::new(0);
static PEAK: AtomicIsize = AtomicIsize::new(0);

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let p = unsafe { System.alloc(layout) };
        if !p.is_null() {
            let now = LIVE.fetch_add(layout.size() as isize, Ordering::SeqCst) + layout.size() as isize;
            PEAK.fetch_max(now, Ordering::SeqCst);
        }
        p
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) };
        LIVE.fetch_sub(layout.size() as isize, Ordering::SeqCst);
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

struct Head;

impl RequestHead for Head {
    fn path(&self) -> Option<String> {
        Some("/v1/chat/completions".into())
    }
    fn authority(&self) -> Option<String> {
        Some("api.openai.com".into())
    }
    fn method(&self) -> Option<String> {
        Some("POST".into())
    }
    fn header(&self, _: &str) -> Option<String> {
        None
    }
}

/// Peak bytes allocated while streaming `body` through an exchange, above the level after
/// the first chunk (when all per-request state exists).
fn peak_growth(config: &Config, encoding: Option<&str>, body: &[u8]) -> isize {
    let (mut ex, _) = Exchange::begin(config, &Head).unwrap();
    ex.on_request_body(b"{\"model\":\"gpt-4o\"}", true);
    let mut headers = HashMap::new();
    headers.insert("content-type".to_string(), "application/json".to_string());
    if let Some(e) = encoding {
        headers.insert("content-encoding".to_string(), e.to_string());
    }
    ex.on_response_headers(Some(200), &|n| headers.get(n).cloned());
    let mut chunks = body.chunks(16 * 1024);
    ex.on_response_body(chunks.next().unwrap_or_default(), false);
    let base = LIVE.load(Ordering::SeqCst);
    PEAK.store(base, Ordering::SeqCst);
    for c in chunks {
        ex.on_response_body(c, false);
    }
    ex.on_response_body(&[], true);
    let growth = PEAK.load(Ordering::SeqCst) - base;
    let _ = ex.finish(0);
    growth
}

#[test]
fn memory_does_not_grow_with_the_body() {
    let config = Config::from_json(
        br#"{"routes": [{"path_prefix": "/v1/", "api": "openai.chat_completions"}], "max_decompressed_bytes": 4194304}"#,
    )
    .unwrap();

    // A gzip bomb: 32 MiB of zeros, capped at 4 MiB of output.
    let zeros = vec![0u8; 32 * 1024 * 1024];
    let mut bomb = vec![0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 3];
    bomb.extend_from_slice(&compress_to_vec(&zeros, 6));
    drop(zeros);
    let growth = peak_growth(&config, Some("gzip"), &bomb);
    assert!(growth < 4096, "gzip bomb grew memory by {growth} bytes");

    // A long uncompressed body.
    let plain = vec![b' '; 8 * 1024 * 1024];
    let growth = peak_growth(&config, None, &plain);
    assert!(growth < 4096, "plain body grew memory by {growth} bytes");
}
