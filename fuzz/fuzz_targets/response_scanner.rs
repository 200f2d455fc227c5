//! Response extraction (`providers::ResponseScanner`), per API and content type.
//!
//! The selector picks the API (chat completions, responses, embeddings, completions,
//! Anthropic messages) and the content type (none, so sniffed; JSON; SSE). Checks, for
//! arbitrary bodies and chunk splits:
//! - whole and split feeding give the same `ResponseOutcome` (usage, facts, errors);
//! - `finish` is idempotent and feeding after it changes nothing;
//! - normalising the usage and pricing it against the built-in table never panics
//!   (overflow checks are on in fuzz builds);
//! - captured strings stay bounded.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tokenmeter::json::MAX_STRING_BYTES;
use tokenmeter::pricing::{PriceTable, PricingContext};
use tokenmeter::providers::{Api, ResponseOutcome, ResponseScanner};
use tokenmeter_fuzz::SplitInput;

const APIS: [Api; 5] = [
    Api::OpenAiChatCompletions,
    Api::OpenAiResponses,
    Api::OpenAiEmbeddings,
    Api::OpenAiCompletions,
    Api::AnthropicMessages,
];
const CONTENT_TYPES: [Option<&str>; 3] = [
    None,
    Some("application/json"),
    Some("text/event-stream; charset=utf-8"),
];

fn scan(api: Api, content_type: Option<&str>, chunks: &[&[u8]]) -> ResponseOutcome {
    let mut scanner = ResponseScanner::new(api, content_type);
    for chunk in chunks {
        scanner.feed(chunk);
    }
    let outcome = scanner.finish();
    scanner.feed(b"{\"usage\":{\"prompt_tokens\":1}}\n\ndata: {}\n\n");
    assert_eq!(scanner.finish(), outcome, "finish is not idempotent");
    outcome
}

fuzz_target!(|data: &[u8]| {
    let input = SplitInput::parse(data);
    let api = APIS[usize::from(input.selector) % APIS.len()];
    let content_type = CONTENT_TYPES[usize::from(input.selector / 5) % CONTENT_TYPES.len()];
    let whole = scan(api, content_type, &[input.body]);
    let split = scan(api, content_type, &input.chunks());
    assert_eq!(whole, split, "split feeding changed the outcome");

    // Captured strings stay within the cap, lossy UTF-8 repair included.
    for s in [
        &whole.facts.model,
        &whole.facts.id,
        &whole.facts.finish_reason,
        &whole.facts.service_tier,
    ]
    .into_iter()
    .flatten()
    {
        assert!(
            s.len() <= MAX_STRING_BYTES,
            "captured string of {} bytes",
            s.len()
        );
    }
    assert!(whole.facts.output_text_bytes <= input.body.len() as u64);
    let normalized = whole.usage.normalize(whole.conventions);
    let table = PriceTable::builtin();
    let model = whole.facts.model.as_deref().unwrap_or("gpt-4o");
    for batch in [false, true] {
        let context = PricingContext {
            batch,
            ..PricingContext::default()
        };
        let _ = table.quote(model, &normalized, context);
    }
});
