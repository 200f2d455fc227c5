//! Request extraction (`providers::RequestScanner`): model, stream flag, output cap, choices,
//! under every API's path table.
//!
//! Checks, for arbitrary bodies and chunk splits (the selector picks the API):
//! - whole and split feeding give the same `RequestFacts`;
//! - `body_bytes` counts every byte fed;
//! - a body serde_json accepts is never `unreadable`, and its top-level `"model"` string
//!   (the last one, when repeated) is what was captured, cut at `MAX_STRING_BYTES`.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tokenmeter::json::MAX_STRING_BYTES;
use tokenmeter::providers::{Api, RequestFacts, RequestScanner};
use tokenmeter_fuzz::SplitInput;

fn scan(api: Api, chunks: &[&[u8]]) -> RequestFacts {
    let mut scanner = RequestScanner::new(api);
    for chunk in chunks {
        scanner.feed(chunk);
    }
    scanner.finish()
}

fuzz_target!(|data: &[u8]| {
    let input = SplitInput::parse(data);
    let api = Api::ALL[usize::from(input.selector) % Api::ALL.len()];
    let whole = scan(api, &[input.body]);
    let split = scan(api, &input.chunks());
    assert_eq!(whole, split, "split feeding changed the facts");
    assert_eq!(whole.body_bytes, input.body.len() as u64);
    // The model stays within the cap, lossy UTF-8 repair included.
    if let Some(model) = &whole.model {
        assert!(
            model.len() <= MAX_STRING_BYTES,
            "model of {} bytes",
            model.len()
        );
    }
    if let Ok(value) = serde_json::from_slice::<serde_json::Value>(input.body) {
        assert!(!whole.unreadable, "valid JSON marked unreadable");
        // serde_json keeps the last of duplicate keys, as the scanner does.
        if let Some(serde_json::Value::String(model)) = value.get("model") {
            let mut end = model.len().min(MAX_STRING_BYTES);
            while !model.is_char_boundary(end) {
                end -= 1;
            }
            assert_eq!(whole.model.as_deref(), Some(&model[..end]), "model differs");
        }
    }
});
