//! The built-in price list, asserted price by price in pico-USD per token, and the cost rules
//! that use it: resolution of real-world model ids, long-context and service tiers, tool fees.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

use tokenmeter::pricing::{cost, ModelPrice, PicoUsd, PriceTable, PricingContext, ServiceTier};
use tokenmeter::usage::{Conventions, NormalizedUsage, Usage};

/// $ per 1M tokens written as pico-USD per token: `M` = $1 per 1M tokens.
const M: u64 = 1_000_000;

/// (model, input, cached input, cache write 5m, cache write 1h, output) in pico-USD / token.
/// Non-Anthropic models bill no cache writes: their write rates equal input.
const EXPECTED: &[(&str, u64, u64, u64, u64, u64)] = &[
    ("babbage-002", 400_000, 400_000, 400_000, 400_000, 400_000),
    ("claude-3-5-haiku", 800_000, 80_000, M, 1_600_000, 4 * M),
    ("claude-3-5-sonnet", 3 * M, 300_000, 3_750_000, 6 * M, 15 * M),
    ("claude-3-7-sonnet", 3 * M, 300_000, 3_750_000, 6 * M, 15 * M),
    ("claude-3-haiku", 250_000, 30_000, 300_000, 500_000, 1_250_000),
    ("claude-3-opus", 15 * M, 1_500_000, 18_750_000, 30 * M, 75 * M),
    ("claude-haiku-4-5", M, 100_000, 1_250_000, 2 * M, 5 * M),
    ("claude-opus-4", 15 * M, 1_500_000, 18_750_000, 30 * M, 75 * M),
    ("claude-opus-4-1", 15 * M, 1_500_000, 18_750_000, 30 * M, 75 * M),
    ("claude-opus-4-5", 5 * M, 500_000, 6_250_000, 10 * M, 25 * M),
    ("claude-sonnet-4", 3 * M, 300_000, 3_750_000, 6 * M, 15 * M),
    ("claude-sonnet-4-5", 3 * M, 300_000, 3_750_000, 6 * M, 15 * M),
    ("command-a-03-2025", 2_500_000, 2_500_000, 2_500_000, 2_500_000, 10 * M),
    ("command-r-08-2024", 150_000, 150_000, 150_000, 150_000, 600_000),
    ("command-r7b-12-2024", 37_500, 37_500, 37_500, 37_500, 150_000),
    ("davinci-002", 2 * M, 2 * M, 2 * M, 2 * M, 2 * M),
    ("deepseek-chat", 280_000, 28_000, 280_000, 280_000, 420_000),
    ("deepseek-reasoner", 280_000, 28_000, 280_000, 280_000, 420_000),
    ("gemini-2.0-flash", 100_000, 25_000, 100_000, 100_000, 400_000),
    ("gemini-2.0-flash-lite", 75_000, 75_000, 75_000, 75_000, 300_000),
    ("gemini-2.5-flash", 300_000, 30_000, 300_000, 300_000, 2_500_000),
    ("gemini-2.5-flash-lite", 100_000, 10_000, 100_000, 100_000, 400_000),
    ("gemini-2.5-pro", 1_250_000, 125_000, 1_250_000, 1_250_000, 10 * M),
    ("gpt-3.5-turbo", 500_000, 500_000, 500_000, 500_000, 1_500_000),
    ("gpt-3.5-turbo-instruct", 1_500_000, 1_500_000, 1_500_000, 1_500_000, 2 * M),
    ("gpt-4", 30 * M, 30 * M, 30 * M, 30 * M, 60 * M),
    ("gpt-4-turbo", 10 * M, 10 * M, 10 * M, 10 * M, 30 * M),
    ("gpt-4.1", 2 * M, 500_000, 2 * M, 2 * M, 8 * M),
    ("gpt-4.1-mini", 400_000, 100_000, 400_000, 400_000, 1_600_000),
    ("gpt-4.1-nano", 100_000, 25_000, 100_000, 100_000, 400_000),
    ("gpt-4o", 2_500_000, 1_250_000, 2_500_000, 2_500_000, 10 * M),
    ("gpt-4o-2024-05-13", 5 * M, 5 * M, 5 * M, 5 * M, 15 * M),
    ("gpt-4o-mini", 150_000, 75_000, 150_000, 150_000, 600_000),
    ("gpt-5", 1_250_000, 125_000, 1_250_000, 1_250_000, 10 * M),
    ("gpt-5-chat-latest", 1_250_000, 125_000, 1_250_000, 1_250_000, 10 * M),
    ("gpt-5-codex", 1_250_000, 125_000, 1_250_000, 1_250_000, 10 * M),
    ("gpt-5-mini", 250_000, 25_000, 250_000, 250_000, 2 * M),
    ("gpt-5-nano", 50_000, 5_000, 50_000, 50_000, 400_000),
    ("gpt-5-pro", 15 * M, 15 * M, 15 * M, 15 * M, 120 * M),
    ("gpt-5.1", 1_250_000, 125_000, 1_250_000, 1_250_000, 10 * M),
    ("grok-3-mini", 300_000, 75_000, 300_000, 300_000, 500_000),
    ("llama-3.1-8b-instant", 50_000, 50_000, 50_000, 50_000, 80_000),
    ("llama-3.3-70b-versatile", 590_000, 590_000, 590_000, 590_000, 790_000),
    ("mistral-small-2506", 100_000, 100_000, 100_000, 100_000, 300_000),
    ("o1", 15 * M, 7_500_000, 15 * M, 15 * M, 60 * M),
    ("o1-pro", 150 * M, 150 * M, 150 * M, 150 * M, 600 * M),
    ("o3", 2 * M, 500_000, 2 * M, 2 * M, 8 * M),
    ("o3-mini", 1_100_000, 550_000, 1_100_000, 1_100_000, 4_400_000),
    ("o3-pro", 20 * M, 20 * M, 20 * M, 20 * M, 80 * M),
    ("o4-mini", 1_100_000, 275_000, 1_100_000, 1_100_000, 4_400_000),
    ("text-embedding-3-large", 130_000, 130_000, 130_000, 130_000, 0),
    ("text-embedding-3-small", 20_000, 20_000, 20_000, 20_000, 0),
    ("text-embedding-ada-002", 100_000, 100_000, 100_000, 100_000, 0),
];

/// (model, input, cached input, output) for OpenAI `service_tier: "priority"`.
const PRIORITY: &[(&str, u64, u64, u64)] = &[
    ("gpt-4.1", 3_500_000, 875_000, 14 * M),
    ("gpt-4.1-mini", 700_000, 175_000, 2_800_000),
    ("gpt-4.1-nano", 200_000, 50_000, 800_000),
    ("gpt-4o", 4_250_000, 2_125_000, 17 * M),
    ("gpt-4o-mini", 250_000, 125_000, M),
    ("gpt-5", 2_500_000, 250_000, 20 * M),
    ("gpt-5-mini", 450_000, 45_000, 3_600_000),
    ("gpt-5.1", 2_500_000, 250_000, 20 * M),
    ("o3", 3_500_000, 875_000, 14 * M),
    ("o4-mini", 2 * M, 500_000, 8 * M),
];

/// (model, input, cached input, output) for `service_tier: "flex"` (half of standard).
const FLEX: &[(&str, u64, u64, u64)] = &[
    ("gpt-5", 625_000, 62_500, 5 * M),
    ("gpt-5-mini", 125_000, 12_500, M),
    ("gpt-5-nano", 25_000, 2_500, 200_000),
    ("gpt-5.1", 625_000, 62_500, 5 * M),
    ("o3", M, 250_000, 4 * M),
    ("o4-mini", 550_000, 137_500, 2_200_000),
];

fn table() -> PriceTable {
    PriceTable::builtin()
}

fn std_price(model: &str) -> ModelPrice {
    table().resolve(model).unwrap().1.clone()
}

#[test]
fn every_builtin_price_in_pico_per_token() {
    let table = table();
    let names: Vec<&str> = table.models().collect();
    let expected_names: Vec<&str> = EXPECTED.iter().map(|row| row.0).collect();
    assert_eq!(names, expected_names, "the table lists exactly the asserted models");
    for &(model, input, cached_input, cache_write_5m, cache_write_1h, output) in EXPECTED {
        let (name, price) = table.resolve(model).unwrap();
        assert_eq!(name, model);
        assert_eq!(
            *price,
            ModelPrice { input, cached_input, cache_write_5m, cache_write_1h, output },
            "{model}"
        );
    }
}

#[test]
fn every_priority_and_flex_price_in_pico_per_token() {
    let table = table();
    for &(model, input, cached, output) in PRIORITY {
        let p = table.resolve_pricing(model).unwrap().1.priority.clone().expect(model);
        assert_eq!((p.input, p.cached_input, p.output), (input, cached, output), "{model}");
    }
    for &(model, input, cached, output) in FLEX {
        let p = table.resolve_pricing(model).unwrap().1.flex.clone().expect(model);
        assert_eq!((p.input, p.cached_input, p.output), (input, cached, output), "{model}");
    }
    let with_priority = table.models().filter(|m| table.resolve_pricing(m).unwrap().1.priority.is_some()).count();
    let with_flex = table.models().filter(|m| table.resolve_pricing(m).unwrap().1.flex.is_some()).count();
    assert_eq!((with_priority, with_flex), (PRIORITY.len(), FLEX.len()));
}

#[test]
fn long_context_cards() {
    let table = table();
    for model in ["claude-sonnet-4", "claude-sonnet-4-5"] {
        let long = table.resolve_pricing(model).unwrap().1.long_context.clone().unwrap();
        assert_eq!(long.above_input_tokens, 200_000);
        assert_eq!(
            long.price,
            ModelPrice { input: 6 * M, cached_input: 600_000, cache_write_5m: 7_500_000, cache_write_1h: 12 * M, output: 22_500_000 }
        );
    }
    let long = table.resolve_pricing("gemini-2.5-pro").unwrap().1.long_context.clone().unwrap();
    assert_eq!((long.price.input, long.price.cached_input, long.price.output), (2_500_000, 250_000, 15 * M));
    let with_long = table.models().filter(|m| table.resolve_pricing(m).unwrap().1.long_context.is_some()).count();
    assert_eq!(with_long, 3);
}

#[test]
fn every_entry_has_a_source_and_date_and_the_table_a_version() {
    let table = table();
    assert_eq!(table.version(), "builtin-2026-11-01");
    for model in table.models() {
        let pricing = table.resolve_pricing(model).unwrap().1;
        assert!(pricing.source.starts_with("https://"), "{model}");
        let date = &*pricing.effective_date;
        assert!(date.len() == 10 || date.len() == 7, "{model}: {date}");
        assert!(date.starts_with("20"), "{model}: {date}");
    }
}

#[test]
fn tool_fees_per_call() {
    let table = table();
    let claude = table.resolve_pricing("claude-sonnet-4-5").unwrap().1;
    assert_eq!(claude.web_search_per_call, Some(10_000_000_000), "$10 per 1,000 searches");
    assert_eq!(claude.web_fetch_per_call, Some(0), "web fetch is free beyond tokens");
    let gpt = table.resolve_pricing("gpt-4.1").unwrap().1;
    assert_eq!(gpt.web_search_per_call, Some(10_000_000_000));
    assert_eq!(gpt.web_fetch_per_call, None);
    assert_eq!(table.resolve_pricing("gemini-2.5-flash").unwrap().1.web_search_per_call, None);
}

#[test]
fn resolves_real_world_ids() {
    let table = table();
    let cases = [
        ("gpt-4o-2024-08-06", "gpt-4o"),
        ("gpt-4o-2024-11-20", "gpt-4o"),
        ("gpt-4o-2024-05-13", "gpt-4o-2024-05-13"),
        ("gpt-4o-mini", "gpt-4o-mini"),
        ("gpt-4o-mini-2024-07-18", "gpt-4o-mini"),
        ("gpt-4.1-mini", "gpt-4.1-mini"),
        ("gpt-4.1-mini-2025-04-14", "gpt-4.1-mini"),
        ("gpt-4.1-2025-04-14", "gpt-4.1"),
        ("gpt-4.1-nano-2025-04-14", "gpt-4.1-nano"),
        ("gpt-5-nano-2025-08-07", "gpt-5-nano"),
        ("gpt-5-mini-2025-08-07", "gpt-5-mini"),
        ("gpt-5-2025-08-07", "gpt-5"),
        ("o3-2025-04-16", "o3"),
        ("o4-mini-2025-04-16", "o4-mini"),
        ("gpt-4-turbo-2024-04-09", "gpt-4-turbo"),
        ("openai/gpt-4o", "gpt-4o"),
        ("claude-sonnet-4-20250514", "claude-sonnet-4"),
        ("claude-sonnet-4-5-20250929", "claude-sonnet-4-5"),
        ("claude-sonnet-4-0", "claude-sonnet-4"),
        ("claude-opus-4-1-20250805", "claude-opus-4-1"),
        ("claude-opus-4-20250514", "claude-opus-4"),
        ("claude-opus-4-5-20251101", "claude-opus-4-5"),
        ("claude-haiku-4-5-20251001", "claude-haiku-4-5"),
        ("claude-3-5-haiku-20241022", "claude-3-5-haiku"),
        ("claude-3-5-haiku-latest", "claude-3-5-haiku"),
        ("claude-3-7-sonnet-latest", "claude-3-7-sonnet"),
        ("anthropic.claude-sonnet-4-20250514-v1:0", "claude-sonnet-4"),
        ("us.anthropic.claude-sonnet-4-20250514-v1:0", "claude-sonnet-4"),
        ("eu.anthropic.claude-3-5-haiku-20241022-v1:0", "claude-3-5-haiku"),
        ("apac.anthropic.claude-sonnet-4-5-20250929-v1:0", "claude-sonnet-4-5"),
        ("global.anthropic.claude-haiku-4-5-20251001-v1:0", "claude-haiku-4-5"),
        ("anthropic.claude-3-5-sonnet-20241022-v2:0", "claude-3-5-sonnet"),
        (
            "arn:aws:bedrock:us-east-1:123456789012:inference-profile/us.anthropic.claude-opus-4-1-20250805-v1:0",
            "claude-opus-4-1",
        ),
        ("arn:aws:bedrock:us-west-2::foundation-model/anthropic.claude-3-haiku-20240307-v1:0", "claude-3-haiku"),
        ("claude-sonnet-4@20250514", "claude-sonnet-4"),
        ("claude-opus-4-1@20250805", "claude-opus-4-1"),
        ("claude-3-5-sonnet-v2@20241022", "claude-3-5-sonnet"),
        ("claude-3-5-haiku@20241022", "claude-3-5-haiku"),
        ("claude-sonnet-4-5@default", "claude-sonnet-4-5"),
        ("publishers/anthropic/models/claude-sonnet-4-5@20250929", "claude-sonnet-4-5"),
        (
            "projects/p/locations/us-east5/publishers/anthropic/models/claude-haiku-4-5@20251001",
            "claude-haiku-4-5",
        ),
        ("models/gemini-2.5-pro", "gemini-2.5-pro"),
        ("publishers/google/models/gemini-2.5-flash", "gemini-2.5-flash"),
        ("gemini-2.5-flash-lite", "gemini-2.5-flash-lite"),
        ("gemini-2.0-flash-001", "gemini-2.0-flash"),
        (" gpt-4o ", "gpt-4o"),
    ];
    for (id, canonical) in cases {
        assert_eq!(table.resolve(id).map(|(name, _)| name), Some(canonical), "{id}");
    }
}

/// The OpenAI-compatible vendors, Cohere and OpenAI's legacy completions models resolve by the
/// ids their APIs answer with, each to its vendor's published list and effective date.
#[test]
fn compatible_vendor_and_legacy_ids_resolve_with_their_source() {
    let table = table();
    let cases = [
        ("babbage-002", "babbage-002", "https://platform.openai.com/docs/pricing", "2023-08-22"),
        ("deepseek-chat", "deepseek-chat", "https://api-docs.deepseek.com/quick_start/pricing", "2025-09-29"),
        ("llama-3.1-8b-instant", "llama-3.1-8b-instant", "https://groq.com/pricing", "2024-07"),
        ("mistral-small-2506", "mistral-small-2506", "https://mistral.ai/pricing", "2025-06"),
        ("grok-3-mini", "grok-3-mini", "https://docs.x.ai/docs/models", "2025-04"),
        ("command-a-03-2025", "command-a-03-2025", "https://cohere.com/pricing", "2025-03-13"),
        ("command-r-08-2024", "command-r-08-2024", "https://cohere.com/pricing", "2024-08-30"),
    ];
    for (id, name, source, since) in cases {
        let (resolved, pricing) = table.resolve_pricing(id).unwrap();
        assert_eq!((resolved, &*pricing.source, &*pricing.effective_date), (name, source, since), "{id}");
        if !source.starts_with("https://platform.openai.com") {
            assert_eq!(pricing.web_search_per_call, None, "{id}: no per-call fee is metered");
        }
    }
    // Words are never stripped: a neighbouring size or an unpinned alias stays unpriced.
    for id in ["deepseek-coder", "llama-3.1-70b-instant", "mistral-small-latest", "grok-3", "command-r"] {
        assert!(table.resolve(id).is_none(), "{id} must be unpriced");
    }
}

#[test]
fn lookalikes_and_unknown_models_are_unpriced() {
    let table = table();
    for id in [
        "gpt-4o-mini-audio-preview",
        "gpt-4o-realtime-preview",
        "gpt-3.5-turbo-0613",
        "gpt-4-1106-preview",
        "ft:gpt-4o-mini-2024-07-18:acme::abc123",
        "claude-sonnet-5",
        "claude",
        "gpt",
        "llama-3.1-70b",
        "mistral.mistral-large-2402-v1:0",
        "gemini-2.5-flash-preview-09-2025",
        "",
    ] {
        assert!(table.resolve(id).is_none(), "{id} must be unpriced");
        assert!(table.quote(id, &NormalizedUsage::default(), PricingContext::default()).is_none(), "{id}");
    }
    assert!(PriceTable::empty().resolve("gpt-4o").is_none());
}

#[test]
fn cost_of_a_known_openai_usage_is_exact() {
    // 2,006 prompt tokens of which 1,920 cached, 300 completion tokens on gpt-4o:
    // 86 x $2.50/M + 1,920 x $1.25/M + 300 x $10/M = $0.000215 + $0.0024 + $0.003 = $0.005615
    let usage = Usage {
        input_tokens: Some(2006),
        output_tokens: Some(300),
        cache_read_tokens: Some(1920),
        ..Usage::default()
    }
    .normalize(Conventions::OPENAI);
    let price = std_price("gpt-4o-2024-08-06");
    assert_eq!(cost(&price, &usage), PicoUsd(5_615_000_000));
    assert_eq!(cost(&price, &usage).to_usd_string(), "0.005615000");
}

#[test]
fn cost_of_a_known_anthropic_usage_with_both_cache_ttls_is_exact() {
    // claude-sonnet-4-5: 10 input, 100 cache reads, 20 5m writes, 30 1h writes, 5 output:
    // 10x$3 + 100x$0.30 + 20x$3.75 + 30x$6 + 5x$15 per 1M = $390 per 1M = $0.000390
    let usage = Usage {
        input_tokens: Some(10),
        output_tokens: Some(5),
        cache_read_tokens: Some(100),
        cache_creation_tokens: Some(50),
        cache_creation_5m_tokens: Some(20),
        cache_creation_1h_tokens: Some(30),
        ..Usage::default()
    }
    .normalize(Conventions::ANTHROPIC);
    let table = table();
    let (name, quote) = table.quote("claude-sonnet-4-5-20250929", &usage, PricingContext::default()).unwrap();
    assert_eq!(name, "claude-sonnet-4-5");
    assert_eq!(quote.cost, PicoUsd(390_000_000));
    assert_eq!(quote.cost.to_usd_string(), "0.000390000");
}

#[test]
fn n_identical_requests_cost_exactly_n_times_one() {
    // gpt-5-nano: 7 uncached input x 50,000 + 3 output x 400,000 = 1,550,000 pico ($0.00000155).
    let usage = NormalizedUsage { input_tokens: 7, output_tokens: 3, ..NormalizedUsage::default() };
    let table = table();
    let one = table.quote("gpt-5-nano", &usage, PricingContext::default()).unwrap().1.cost;
    assert_eq!(one, PicoUsd(1_550_000));
    let mut total = PicoUsd::ZERO;
    for _ in 0..1000 {
        total = total.saturating_add(table.quote("gpt-5-nano", &usage, PricingContext::default()).unwrap().1.cost);
    }
    assert_eq!(total, one.saturating_mul(1000));
    assert_eq!(total.to_usd_string(), "0.001550000");
    // A cost that is not a whole nano-dollar: one flex gpt-5-nano cached token is 2,500 pico
    // (2.5 nano-dollars). Summing in pico and formatting once keeps it exact.
    let cached = NormalizedUsage { input_tokens: 1, cache_read_tokens: 1, ..NormalizedUsage::default() };
    let flex = PricingContext { service_tier: ServiceTier::Flex, batch: false };
    let one = table.quote("gpt-5-nano", &cached, flex).unwrap().1.cost;
    assert_eq!(one, PicoUsd(2_500));
    assert_eq!(one.to_usd_string(), "0.000000003", "2.5 nano-dollars round half up for display");
    let mut total = PicoUsd::ZERO;
    for _ in 0..4 {
        total = total.saturating_add(one);
    }
    assert_eq!(total.to_usd_string(), "0.000000010", "4 x 2.5 = 10 nano-dollars, not 4 x 3");
}

#[test]
fn long_context_threshold_is_strictly_above_200k_and_reprices_every_token() {
    let table = table();
    // Anthropic: input_tokens excludes cache; the threshold counts cache reads and writes too.
    let at = |input: u64, cache_read: u64, output: u64| {
        Usage {
            input_tokens: Some(input),
            cache_read_tokens: Some(cache_read),
            output_tokens: Some(output),
            ..Usage::default()
        }
        .normalize(Conventions::ANTHROPIC)
    };
    let std_ctx = PricingContext::default();
    let exactly = table.quote("claude-sonnet-4-20250514", &at(150_000, 50_000, 1_000), std_ctx).unwrap().1;
    assert!(!exactly.long_context);
    // 150,000 x 3M + 50,000 x 0.3M + 1,000 x 15M pico
    assert_eq!(exactly.cost, PicoUsd(150_000 * 3 * M + 50_000 * 300_000 + 1_000 * 15 * M));
    let above = table.quote("claude-sonnet-4-20250514", &at(150_001, 50_000, 1_000), std_ctx).unwrap().1;
    assert!(above.long_context);
    assert_eq!(above.cost, PicoUsd(150_001 * 6 * M + 50_000 * 600_000 + 1_000 * 22_500_000));
    // Gemini 2.5 Pro: prompt tokens include cached ones.
    let gem = |input: u64| NormalizedUsage { input_tokens: input, cache_read_tokens: 100_000, output_tokens: 10, ..NormalizedUsage::default() };
    let q = table.quote("gemini-2.5-pro", &gem(200_000), std_ctx).unwrap().1;
    assert_eq!(q.cost, PicoUsd(100_000 * 1_250_000 + 100_000 * 125_000 + 10 * 10 * M));
    let q = table.quote("gemini-2.5-pro", &gem(200_001), std_ctx).unwrap().1;
    assert_eq!(q.cost, PicoUsd(100_001 * 2_500_000 + 100_000 * 250_000 + 10 * 15 * M));
    // Models without a long-context tier never switch.
    let q = table.quote("claude-opus-4-1", &at(500_000, 0, 0), std_ctx).unwrap().1;
    assert!(!q.long_context);
    assert_eq!(q.cost, PicoUsd(500_000 * 15 * M));
}

#[test]
fn long_context_one_hour_cache_writes_double_the_long_input_rate() {
    let usage = Usage {
        input_tokens: Some(200_000),
        cache_creation_tokens: Some(10),
        cache_creation_1h_tokens: Some(10),
        ..Usage::default()
    }
    .normalize(Conventions::ANTHROPIC);
    let q = table().quote("claude-sonnet-4-5", &usage, PricingContext::default()).unwrap().1;
    assert!(q.long_context);
    assert_eq!(q.cost, PicoUsd(200_000 * 6 * M + 10 * 12 * M));
}

#[test]
fn service_tiers_and_batch() {
    let table = table();
    let usage = NormalizedUsage { input_tokens: 1_000, cache_read_tokens: 200, output_tokens: 100, ..NormalizedUsage::default() };
    let ctx = |tier: ServiceTier, batch: bool| PricingContext { service_tier: tier, batch };
    let gpt5 = |c| table.quote("gpt-5-2025-08-07", &usage, c).unwrap().1;
    let standard = 800 * 1_250_000 + 200 * 125_000 + 100 * 10 * M;
    assert_eq!(gpt5(ctx(ServiceTier::Standard, false)).cost, PicoUsd(standard));
    let flex = gpt5(ctx(ServiceTier::Flex, false));
    assert_eq!((flex.cost, flex.service_tier), (PicoUsd(standard / 2), ServiceTier::Flex));
    let priority = gpt5(ctx(ServiceTier::Priority, false));
    assert_eq!((priority.cost, priority.service_tier), (PicoUsd(standard * 2), ServiceTier::Priority));
    let batch = gpt5(ctx(ServiceTier::Priority, true));
    assert_eq!((batch.cost, batch.service_tier, batch.batch), (PicoUsd(standard / 2), ServiceTier::Standard, true));
    // gpt-4o has priority but no flex: flex requests are priced (and reported) as standard.
    let q = table.quote("gpt-4o", &usage, ctx(ServiceTier::Flex, false)).unwrap().1;
    assert_eq!(q.service_tier, ServiceTier::Standard);
    assert_eq!(q.cost, PicoUsd(800 * 2_500_000 + 200 * 1_250_000 + 100 * 10 * M));
    let q = table.quote("gpt-4o", &usage, ctx(ServiceTier::Priority, false)).unwrap().1;
    assert_eq!(q.cost, PicoUsd(800 * 4_250_000 + 200 * 2_125_000 + 100 * 17 * M));
    // Anthropic batch halves long-context requests too.
    let long = NormalizedUsage { input_tokens: 300_000, ..NormalizedUsage::default() };
    let q = table.quote("claude-sonnet-4", &long, ctx(ServiceTier::Standard, true)).unwrap().1;
    assert!(q.long_context && q.batch);
    assert_eq!(q.cost, PicoUsd(300_000 * 6 * M / 2));
}

#[test]
fn web_search_and_fetch_fees_add_per_call() {
    let usage = NormalizedUsage {
        input_tokens: 1_000,
        output_tokens: 100,
        web_search_requests: 3,
        web_fetch_requests: 2,
        ..NormalizedUsage::default()
    };
    let q = table().quote("claude-opus-4-5", &usage, PricingContext::default()).unwrap().1;
    // tokens: 1,000 x $5/M + 100 x $25/M = $0.0075; searches: 3 x $0.01 = $0.03; fetches free.
    assert_eq!(q.cost, PicoUsd(1_000 * 5 * M + 100 * 25 * M + 3 * 10_000_000_000));
    assert_eq!(q.cost.to_usd_string(), "0.037500000");
}
