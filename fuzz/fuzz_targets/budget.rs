//! Budget inputs: the pulled limits document (`budget::LimitsDoc::parse`), the budget
//! configuration (`BudgetConfig::parse`), shared-data counter records (`Counters::decode`)
//! and the output-cap request rewrite (`apply_output_cap`).
//!
//! The selector picks the input kind. Checks:
//! - limits / config: never panic; an accepted document merges over nothing to itself and
//!   its budget ids are unique;
//! - counters: decoding arbitrary shared-data bytes never panics, and whatever decodes
//!   re-encodes to the same bytes;
//! - output cap: a rewritten body is a JSON object whose numeric cap fields are at most the
//!   cap; an unchanged body already complied.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tokenmeter::budget::config::{BudgetConfig, LimitsDoc};
use tokenmeter::budget::{apply_output_cap, CapDialect, ChatField, Counters};

const DIALECTS: [(CapDialect, &[&str]); 5] = [
    (
        CapDialect::OpenAiChat(ChatField::MaxCompletionTokens),
        &["max_completion_tokens", "max_tokens"],
    ),
    (
        CapDialect::OpenAiChat(ChatField::MaxTokens),
        &["max_completion_tokens", "max_tokens"],
    ),
    (CapDialect::OpenAiCompletions, &["max_tokens"]),
    (CapDialect::OpenAiResponses, &["max_output_tokens"]),
    (CapDialect::AnthropicMessages, &["max_tokens"]),
];

fn check_cap(body: &[u8], sel: u8) {
    let (dialect, fields) = DIALECTS[usize::from(sel) % DIALECTS.len()];
    let cap = [0u64, 1, 4096, u64::MAX][usize::from(sel / 5) % 4];
    let Ok(result) = apply_output_cap(body, dialect, cap, 1 << 16) else {
        return;
    };
    let out = result.as_deref().unwrap_or(body);
    let value: serde_json::Value = serde_json::from_slice(out).expect("cap output is not JSON");
    let object = value.as_object().expect("cap output is not an object");
    for field in fields {
        if let Some(n) = object.get(*field).and_then(serde_json::Value::as_u64) {
            assert!(n <= cap, "{field} = {n} above the cap {cap}");
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&selector, body)) = data.split_first() else {
        return;
    };
    match selector % 4 {
        0 => {
            if let Ok(doc) = LimitsDoc::parse(body) {
                assert_eq!(doc.merge_into(&[]), doc.budgets);
                let mut ids: Vec<&str> = doc.budgets.iter().map(|b| b.id.as_str()).collect();
                ids.sort_unstable();
                let n = ids.len();
                ids.dedup();
                assert_eq!(ids.len(), n, "duplicate budget ids accepted");
            }
        }
        1 => {
            let _ = BudgetConfig::parse(body);
        }
        2 => {
            if let Ok(Some(counters)) = Counters::decode(body) {
                assert_eq!(&counters.encode()[..], body, "counters do not re-encode");
            }
        }
        _ => check_cap(body, selector / 4),
    }
});
