//! Plugin configuration (`config::Config::from_json`).
//!
//! Checks, for arbitrary bytes: loading never panics; bytes serde_json rejects are a
//! `Syntax` error, or a field error naming `prices` when the bad bytes sit inside it (read in
//! the same pass, see config.rs); every other rejection names a field path; whitespace is the default
//! configuration; an accepted configuration answers route lookups and keeps its documented
//! bounds (`max_decompressed_bytes` > 0, `metrics.max_label_values` within its maximum).
#![no_main]

use libfuzzer_sys::fuzz_target;
use tokenmeter::config::{Config, ConfigError, MAX_MAX_LABEL_VALUES};

fuzz_target!(|data: &[u8]| {
    let serde_ok = serde_json::from_slice::<serde_json::Value>(data).is_ok();
    let blank = data.iter().all(u8::is_ascii_whitespace);
    match Config::from_json(data) {
        Ok(config) => {
            assert!(serde_ok || blank, "accepted bytes that are not JSON");
            assert!(config.max_decompressed_bytes > 0);
            assert!(config.metrics.max_label_values > 0);
            assert!(config.metrics.max_label_values <= MAX_MAX_LABEL_VALUES);
            for (path, authority) in [
                ("/v1/chat/completions", "api.openai.com"),
                ("/", ""),
                ("", "x:1"),
            ] {
                let _ = config.route_override(path, authority);
            }
        }
        Err(ConfigError::Syntax(_)) => {
            assert!(!serde_ok && !blank, "valid JSON reported as a syntax error")
        }
        Err(e @ ConfigError::Field { .. }) => {
            // `prices` is read in the same pass as the syntax (a LiteLLM list there may be
            // megabytes), so bad JSON inside it is reported against that field.
            let in_prices = e.path().is_some_and(|p| p.starts_with("prices"));
            assert!(serde_ok || in_prices, "field error outside `prices` for bytes that are not JSON");
            assert!(e.path().is_some());
        }
    }
});
