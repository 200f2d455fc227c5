//! The built-in list prices: what `{}` configuration prices with.
//!
//! Rows are `static` data of `u32` rates so the table costs a few kilobytes of the `.wasm` and
//! no work until [`rows`] is turned into a `PriceTable` once per VM. A rate is pico-USD per
//! token, which is the same number as micro-USD per million tokens: `2_500_000` reads as
//! "$2.50 per 1M tokens". `u32` holds up to $4,294 per 1M tokens, far above any list price.
//!
//! Only prices the authors are confident of are listed; a model that is missing is unpriced
//! (cost `None`), which is better than a wrong number. Conventions for fields a provider does
//! not bill:
//! - OpenAI and Gemini do not charge for cache writes, so their cache-write rates equal the
//!   input rate: a reported cache write then costs what an uncached input token costs.
//! - A model without prompt caching has `cached_input == input`.
//! - Embedding models have `output == 0`: they produce no output tokens.

/// Version of the built-in table, published with prices so a cost can be traced to a list.
pub const VERSION: &str = "builtin-2026-11-01";

/// Where a row's prices are published. Kept as an index so the URLs are stored once.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Vendor {
    OpenAi,
    Anthropic,
    Gemini,
    DeepSeek,
    Groq,
    MistralAi,
    XAi,
    Cohere,
}

impl Vendor {
    pub fn source(self) -> &'static str {
        match self {
            Vendor::OpenAi => "https://platform.openai.com/docs/pricing",
            Vendor::Anthropic => "https://docs.anthropic.com/en/docs/about-claude/pricing",
            Vendor::Gemini => "https://ai.google.dev/gemini-api/docs/pricing",
            Vendor::DeepSeek => "https://api-docs.deepseek.com/quick_start/pricing",
            Vendor::Groq => "https://groq.com/pricing",
            Vendor::MistralAi => "https://mistral.ai/pricing",
            Vendor::XAi => "https://docs.x.ai/docs/models",
            Vendor::Cohere => "https://cohere.com/pricing",
        }
    }

    /// Server-side web search fee, pico-USD per call.
    ///
    /// Anthropic: $10 per 1,000 searches. OpenAI: the `web_search` tool is $10 per 1,000
    /// calls for every model (the older `web_search_preview` tool on non-reasoning models is
    /// $25 per 1,000; configure that per model if you use it). Gemini bills grounding per
    /// prompt with a daily free allowance, which a per-request meter cannot know: left unset.
    /// The OpenAI-compatible vendors and Cohere: no per-call search fee is metered.
    pub fn web_search_per_call(self) -> Option<u64> {
        match self {
            Vendor::OpenAi | Vendor::Anthropic => Some(10_000_000_000),
            Vendor::Gemini
            | Vendor::DeepSeek
            | Vendor::Groq
            | Vendor::MistralAi
            | Vendor::XAi
            | Vendor::Cohere => None,
        }
    }

    /// Server-side web fetch fee: Anthropic's web fetch tool costs nothing beyond its tokens.
    pub fn web_fetch_per_call(self) -> Option<u64> {
        match self {
            Vendor::Anthropic => Some(0),
            Vendor::OpenAi
            | Vendor::Gemini
            | Vendor::DeepSeek
            | Vendor::Groq
            | Vendor::MistralAi
            | Vendor::XAi
            | Vendor::Cohere => None,
        }
    }
}

/// One rate card: input, cached input, cache write 5m, cache write 1h, output.
pub type Card = [u32; 5];

/// Prompt size above which [`Row::long`] applies to all tokens (Anthropic 1M-context beta,
/// Gemini 2.5 Pro): "more than 200K input tokens".
pub const LONG_CONTEXT_ABOVE: u64 = 200_000;

pub struct Row {
    pub name: &'static str,
    pub vendor: Vendor,
    /// Date this list price took effect (model launch or last price change), `YYYY-MM-DD`
    /// or `YYYY-MM` where only the month is known.
    pub since: &'static str,
    pub standard: Card,
    /// Rates for the whole request once the prompt exceeds [`LONG_CONTEXT_ABOVE`].
    pub long: Option<&'static Card>,
    /// OpenAI `service_tier: "priority"` rates.
    pub priority: Option<&'static Card>,
    /// OpenAI `service_tier: "flex"` is offered, at half the standard rates.
    pub flex: bool,
}

/// OpenAI / Gemini card: no cache-write charge (writes cost the input rate).
const fn oa(input: u32, cached: u32, output: u32) -> Card {
    [input, cached, input, input, output]
}

/// Anthropic card with both cache-write TTLs.
const fn an(input: u32, cached: u32, write_5m: u32, write_1h: u32, output: u32) -> Card {
    [input, cached, write_5m, write_1h, output]
}

const fn openai(name: &'static str, since: &'static str, standard: Card) -> Row {
    Row { name, vendor: Vendor::OpenAi, since, standard, long: None, priority: None, flex: false }
}

const fn anthropic(name: &'static str, since: &'static str, standard: Card) -> Row {
    Row { name, vendor: Vendor::Anthropic, since, standard, long: None, priority: None, flex: false }
}

const fn gemini(name: &'static str, since: &'static str, standard: Card) -> Row {
    Row { name, vendor: Vendor::Gemini, since, standard, long: None, priority: None, flex: false }
}

/// A row of another vendor. The card is [`oa`]-shaped: none of these vendors bills cache
/// writes, and those without prompt caching have `cached == input`.
const fn vendor_row(vendor: Vendor, name: &'static str, since: &'static str, standard: Card) -> Row {
    Row { name, vendor, since, standard, long: None, priority: None, flex: false }
}

const fn with_priority(mut row: Row, priority: &'static Card) -> Row {
    row.priority = Some(priority);
    row
}

const fn with_flex(mut row: Row) -> Row {
    row.flex = true;
    row
}

const fn with_long(mut row: Row, long: &'static Card) -> Row {
    row.long = Some(long);
    row
}

/// Claude Sonnet 4 / 4.5: $3 / $0.30 / $3.75 / $6 / $15; above 200K input tokens
/// $6 / $0.60 / $7.50 / $12 / $22.50.
const SONNET_4: Card = an(3_000_000, 300_000, 3_750_000, 6_000_000, 15_000_000);
const SONNET_4_LONG: Card = an(6_000_000, 600_000, 7_500_000, 12_000_000, 22_500_000);
const OPUS_4: Card = an(15_000_000, 1_500_000, 18_750_000, 30_000_000, 75_000_000);

static ROWS: &[Row] = &[
    // --- OpenAI -----------------------------------------------------------------------------
    with_flex(with_priority(
        openai("gpt-5", "2025-08-07", oa(1_250_000, 125_000, 10_000_000)),
        &oa(2_500_000, 250_000, 20_000_000),
    )),
    with_flex(with_priority(
        openai("gpt-5-mini", "2025-08-07", oa(250_000, 25_000, 2_000_000)),
        &oa(450_000, 45_000, 3_600_000),
    )),
    with_flex(openai("gpt-5-nano", "2025-08-07", oa(50_000, 5_000, 400_000))),
    openai("gpt-5-chat-latest", "2025-08-07", oa(1_250_000, 125_000, 10_000_000)),
    openai("gpt-5-codex", "2025-09-23", oa(1_250_000, 125_000, 10_000_000)),
    openai("gpt-5-pro", "2025-10-06", oa(15_000_000, 15_000_000, 120_000_000)),
    with_flex(with_priority(
        openai("gpt-5.1", "2025-11-13", oa(1_250_000, 125_000, 10_000_000)),
        &oa(2_500_000, 250_000, 20_000_000),
    )),
    with_priority(
        openai("gpt-4.1", "2025-04-14", oa(2_000_000, 500_000, 8_000_000)),
        &oa(3_500_000, 875_000, 14_000_000),
    ),
    with_priority(
        openai("gpt-4.1-mini", "2025-04-14", oa(400_000, 100_000, 1_600_000)),
        &oa(700_000, 175_000, 2_800_000),
    ),
    with_priority(
        openai("gpt-4.1-nano", "2025-04-14", oa(100_000, 25_000, 400_000)),
        &oa(200_000, 50_000, 800_000),
    ),
    with_priority(
        openai("gpt-4o", "2024-10-01", oa(2_500_000, 1_250_000, 10_000_000)),
        &oa(4_250_000, 2_125_000, 17_000_000),
    ),
    // The first gpt-4o snapshot kept its launch price and never had prompt caching.
    openai("gpt-4o-2024-05-13", "2024-05-13", oa(5_000_000, 5_000_000, 15_000_000)),
    with_priority(
        openai("gpt-4o-mini", "2024-10-01", oa(150_000, 75_000, 600_000)),
        &oa(250_000, 125_000, 1_000_000),
    ),
    with_flex(with_priority(
        openai("o3", "2025-06-10", oa(2_000_000, 500_000, 8_000_000)),
        &oa(3_500_000, 875_000, 14_000_000),
    )),
    openai("o3-pro", "2025-06-10", oa(20_000_000, 20_000_000, 80_000_000)),
    with_flex(with_priority(
        openai("o4-mini", "2025-04-16", oa(1_100_000, 275_000, 4_400_000)),
        &oa(2_000_000, 500_000, 8_000_000),
    )),
    openai("o3-mini", "2025-01-31", oa(1_100_000, 550_000, 4_400_000)),
    openai("o1", "2024-12-17", oa(15_000_000, 7_500_000, 60_000_000)),
    openai("o1-pro", "2025-03-19", oa(150_000_000, 150_000_000, 600_000_000)),
    openai("gpt-4-turbo", "2024-04-09", oa(10_000_000, 10_000_000, 30_000_000)),
    openai("gpt-4", "2023-03-14", oa(30_000_000, 30_000_000, 60_000_000)),
    openai("gpt-3.5-turbo", "2024-01-25", oa(500_000, 500_000, 1_500_000)),
    openai("gpt-3.5-turbo-instruct", "2023-09-18", oa(1_500_000, 1_500_000, 2_000_000)),
    openai("text-embedding-3-small", "2024-01-25", oa(20_000, 20_000, 0)),
    openai("text-embedding-3-large", "2024-01-25", oa(130_000, 130_000, 0)),
    openai("text-embedding-ada-002", "2022-12-15", oa(100_000, 100_000, 0)),
    // --- Anthropic --------------------------------------------------------------------------
    anthropic("claude-opus-4-5", "2025-11-24", an(5_000_000, 500_000, 6_250_000, 10_000_000, 25_000_000)),
    anthropic("claude-opus-4-1", "2025-08-05", OPUS_4),
    anthropic("claude-opus-4", "2025-05-22", OPUS_4),
    with_long(anthropic("claude-sonnet-4-5", "2025-09-29", SONNET_4), &SONNET_4_LONG),
    with_long(anthropic("claude-sonnet-4", "2025-05-22", SONNET_4), &SONNET_4_LONG),
    anthropic("claude-3-7-sonnet", "2025-02-24", SONNET_4),
    anthropic("claude-3-5-sonnet", "2024-06-20", SONNET_4),
    anthropic("claude-haiku-4-5", "2025-10-15", an(1_000_000, 100_000, 1_250_000, 2_000_000, 5_000_000)),
    anthropic("claude-3-5-haiku", "2024-12", an(800_000, 80_000, 1_000_000, 1_600_000, 4_000_000)),
    anthropic("claude-3-opus", "2024-03-04", OPUS_4),
    anthropic("claude-3-haiku", "2024-03-13", an(250_000, 30_000, 300_000, 500_000, 1_250_000)),
    // --- Google Gemini (text / image / video input rates; audio input is billed higher) -------
    with_long(
        gemini("gemini-2.5-pro", "2025-06-17", oa(1_250_000, 125_000, 10_000_000)),
        &oa(2_500_000, 250_000, 15_000_000),
    ),
    gemini("gemini-2.5-flash", "2025-06-17", oa(300_000, 30_000, 2_500_000)),
    gemini("gemini-2.5-flash-lite", "2025-07-22", oa(100_000, 10_000, 400_000)),
    gemini("gemini-2.0-flash", "2025-02-05", oa(100_000, 25_000, 400_000)),
    gemini("gemini-2.0-flash-lite", "2025-02-25", oa(75_000, 75_000, 300_000)),
    // --- OpenAI legacy completions models (`/v1/completions`) ------------------------------
    openai("babbage-002", "2023-08-22", oa(400_000, 400_000, 400_000)),
    openai("davinci-002", "2023-08-22", oa(2_000_000, 2_000_000, 2_000_000)),
    // --- DeepSeek (V3.2-Exp prices; `prompt_cache_hit_tokens` billed at the cache-hit rate) --
    vendor_row(Vendor::DeepSeek, "deepseek-chat", "2025-09-29", oa(280_000, 28_000, 420_000)),
    vendor_row(Vendor::DeepSeek, "deepseek-reasoner", "2025-09-29", oa(280_000, 28_000, 420_000)),
    // --- Groq (no prompt caching on these models) -------------------------------------------
    vendor_row(Vendor::Groq, "llama-3.1-8b-instant", "2024-07", oa(50_000, 50_000, 80_000)),
    vendor_row(Vendor::Groq, "llama-3.3-70b-versatile", "2024-12", oa(590_000, 590_000, 790_000)),
    // --- Mistral AI (pinned versions; `-latest` aliases move between prices) ----------------
    vendor_row(Vendor::MistralAi, "mistral-small-2506", "2025-06", oa(100_000, 100_000, 300_000)),
    // --- xAI ---------------------------------------------------------------------------------
    vendor_row(Vendor::XAi, "grok-3-mini", "2025-04", oa(300_000, 75_000, 500_000)),
    // --- Cohere (billed units; no prompt caching) -------------------------------------------
    vendor_row(Vendor::Cohere, "command-a-03-2025", "2025-03-13", oa(2_500_000, 2_500_000, 10_000_000)),
    vendor_row(Vendor::Cohere, "command-r-08-2024", "2024-08-30", oa(150_000, 150_000, 600_000)),
    vendor_row(Vendor::Cohere, "command-r7b-12-2024", "2024-12-13", oa(37_500, 37_500, 150_000)),
];

/// The rows, in no particular order (the table sorts them).
pub fn rows() -> &'static [Row] {
    ROWS
}

/// Names that are spellings of another row: `(alias, canonical)`.
pub static ALIASES: &[(&str, &str)] = &[
    // Anthropic's aliases for the first snapshot of a family.
    ("claude-sonnet-4-0", "claude-sonnet-4"),
    ("claude-opus-4-0", "claude-opus-4"),
    // Vertex AI names Claude 3.5 Sonnet v2 `claude-3-5-sonnet-v2@20241022`.
    ("claude-3-5-sonnet-v2", "claude-3-5-sonnet"),
];
