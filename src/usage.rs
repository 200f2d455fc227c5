//! The one usage record every provider is normalised into.
//!
//! Providers disagree on what their counters mean: OpenAI's `prompt_tokens` already include
//! cached tokens, Anthropic's and Bedrock's `input_tokens` exclude cache reads and writes, and
//! Gemini's `candidatesTokenCount` excludes thinking tokens while OpenAI's `completion_tokens`
//! include reasoning. Extractors therefore record the provider's numbers as reported, in
//! [`Usage`] (an unreported counter is `None`, never 0), and declare the provider's
//! [`Conventions`]. [`Usage::normalize`] is the single place that turns them into the
//! OpenTelemetry GenAI meaning: input includes cache reads and writes, output includes
//! reasoning. Keeping it in one place is what stops cached and reasoning tokens from being
//! double-counted or dropped.
//!
//! Some providers also say what the request cost (OpenRouter's `usage.cost`). That amount is
//! carried as reported, next to the counters, and [`CostSource`] names where a request's cost
//! came from.

use crate::pricing::PicoUsd;

/// Counters exactly as one provider reported them. `None` means "not reported".
///
/// Extractors assign fields as values arrive; a later value for the same field replaces the
/// earlier one. That single rule covers Anthropic's `message_delta` (cumulative, merged with
/// `message_start`, never summed) and Gemini's running totals (keep the last).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Usage {
    /// Prompt tokens; whether cache tokens are inside is [`CacheConvention`].
    pub input_tokens: Option<u64>,
    /// Completion tokens; whether reasoning is inside is [`ReasoningConvention`].
    pub output_tokens: Option<u64>,
    /// Tokens read from the prompt cache.
    pub cache_read_tokens: Option<u64>,
    /// Tokens written to the prompt cache, all TTLs together, when the provider gives a total.
    pub cache_creation_tokens: Option<u64>,
    /// Cache writes with the 5-minute TTL, where the provider splits them.
    pub cache_creation_5m_tokens: Option<u64>,
    /// Cache writes with the 1-hour TTL, where the provider splits them.
    pub cache_creation_1h_tokens: Option<u64>,
    /// Reasoning / thinking tokens.
    pub reasoning_tokens: Option<u64>,
    /// Tool-use prompt tokens that the provider bills as input but reports apart (Gemini).
    pub tool_use_prompt_tokens: Option<u64>,
    /// Server-side web search calls, priced per call.
    pub web_search_requests: Option<u64>,
    /// Server-side web fetch calls, priced per call.
    pub web_fetch_requests: Option<u64>,
    /// What the provider says the request cost (OpenRouter `usage.cost`, USD credits), exact
    /// to the pico-dollar; it is what the user is billed, so it wins over the price table.
    pub cost: Option<PicoUsd>,
}

/// Whether a provider's input count already contains cache reads and writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CacheConvention {
    /// OpenAI, Azure, Gemini, DeepSeek: `prompt_tokens` include `cached_tokens`.
    InputIncludesCache,
    /// Anthropic, Bedrock: `input_tokens` exclude cache reads and cache writes.
    InputExcludesCache,
}

/// Whether a provider's output count already contains reasoning tokens.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReasoningConvention {
    /// OpenAI: `completion_tokens` include `reasoning_tokens`.
    OutputIncludesReasoning,
    /// Gemini: `candidatesTokenCount` excludes `thoughtsTokenCount`.
    OutputExcludesReasoning,
}

/// The conventions an extractor declares for the counters it fills.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Conventions {
    pub cache: CacheConvention,
    pub reasoning: ReasoningConvention,
}

impl Conventions {
    pub const OPENAI: Self = Self {
        cache: CacheConvention::InputIncludesCache,
        reasoning: ReasoningConvention::OutputIncludesReasoning,
    };
    pub const ANTHROPIC: Self = Self {
        cache: CacheConvention::InputExcludesCache,
        reasoning: ReasoningConvention::OutputIncludesReasoning,
    };
    /// Gemini: `promptTokenCount` includes cached content, `candidatesTokenCount` excludes
    /// `thoughtsTokenCount`.
    pub const GEMINI: Self = Self {
        cache: CacheConvention::InputIncludesCache,
        reasoning: ReasoningConvention::OutputExcludesReasoning,
    };
}

/// Usage in the OpenTelemetry GenAI meaning. Counts the provider did not report are 0;
/// whether anything was reported at all is carried by [`UsageSource`] next to it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct NormalizedUsage {
    /// All prompt tokens: uncached + cache reads + cache writes (+ tool-use prompt tokens).
    pub input_tokens: u64,
    /// All generated tokens, reasoning included.
    pub output_tokens: u64,
    pub cache_read_tokens: u64,
    /// All cache writes; equals `cache_creation_5m_tokens + cache_creation_1h_tokens` when the
    /// provider splits them, else the provider's total (and the split fields are 0).
    pub cache_creation_tokens: u64,
    pub cache_creation_5m_tokens: u64,
    pub cache_creation_1h_tokens: u64,
    pub reasoning_tokens: u64,
    pub web_search_requests: u64,
    pub web_fetch_requests: u64,
}

impl NormalizedUsage {
    /// Input tokens that were neither read from nor written to the cache.
    pub fn uncached_input_tokens(&self) -> u64 {
        self.input_tokens
            .saturating_sub(self.cache_read_tokens)
            .saturating_sub(self.cache_creation_tokens)
    }
}

/// Where the usage of a request came from; published as `llm.usage_source`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UsageSource {
    /// The provider reported it in the response.
    Reported,
    /// Not reported; estimated from request size and streamed content.
    Estimated,
    /// Not reported and not estimated: the body could not be read.
    Missing,
}

impl UsageSource {
    pub fn as_str(self) -> &'static str {
        match self {
            UsageSource::Reported => "reported",
            UsageSource::Estimated => "estimated",
            UsageSource::Missing => "missing",
        }
    }
}

/// Where the cost of a request came from; published as `llm.cost_source`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CostSource {
    /// The provider reported it in the response ([`Usage::cost`]).
    Provider,
    /// Computed from the usage and the price table.
    PriceTable,
}

impl CostSource {
    pub fn as_str(self) -> &'static str {
        match self {
            CostSource::Provider => "provider",
            CostSource::PriceTable => "price_table",
        }
    }
}

impl Usage {
    /// True when the provider reported any token counter at all.
    pub fn is_reported(&self) -> bool {
        self.input_tokens.is_some()
            || self.output_tokens.is_some()
            || self.cache_read_tokens.is_some()
            || self.cache_creation_tokens.is_some()
            || self.cache_creation_5m_tokens.is_some()
            || self.cache_creation_1h_tokens.is_some()
            || self.reasoning_tokens.is_some()
    }

    /// Turns provider counters into the OpenTelemetry meaning. Saturating arithmetic: a
    /// hostile body with huge numbers yields huge numbers, never a panic or a wrap.
    pub fn normalize(&self, conventions: Conventions) -> NormalizedUsage {
        let cache_read = self.cache_read_tokens.unwrap_or(0);
        let split_5m = self.cache_creation_5m_tokens.unwrap_or(0);
        let split_1h = self.cache_creation_1h_tokens.unwrap_or(0);
        let split_total = split_5m.saturating_add(split_1h);
        // Anthropic reports both the total and the split; the split wins when present so that
        // the TTLs are priced apart, and the total covers providers without a split.
        let cache_creation = match self.cache_creation_tokens {
            Some(total) if split_total == 0 => total,
            Some(total) => total.max(split_total),
            None => split_total,
        };
        // When only a total is known it is priced at the 5-minute rate; record it as such.
        let (cache_5m, cache_1h) = if split_total == 0 {
            (cache_creation, 0)
        } else {
            (split_5m.saturating_add(cache_creation - split_total), split_1h)
        };
        let reported_input = self.input_tokens.unwrap_or(0);
        let tool_prompt = self.tool_use_prompt_tokens.unwrap_or(0);
        let input = match conventions.cache {
            CacheConvention::InputIncludesCache => reported_input,
            CacheConvention::InputExcludesCache => reported_input
                .saturating_add(cache_read)
                .saturating_add(cache_creation),
        }
        .saturating_add(tool_prompt);
        let reasoning = self.reasoning_tokens.unwrap_or(0);
        let reported_output = self.output_tokens.unwrap_or(0);
        let output = match conventions.reasoning {
            ReasoningConvention::OutputIncludesReasoning => reported_output,
            ReasoningConvention::OutputExcludesReasoning => reported_output.saturating_add(reasoning),
        };
        NormalizedUsage {
            input_tokens: input,
            output_tokens: output,
            cache_read_tokens: cache_read,
            cache_creation_tokens: cache_creation,
            cache_creation_5m_tokens: cache_5m,
            cache_creation_1h_tokens: cache_1h,
            reasoning_tokens: reasoning,
            web_search_requests: self.web_search_requests.unwrap_or(0),
            web_fetch_requests: self.web_fetch_requests.unwrap_or(0),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn openai_prompt_tokens_already_include_cached_tokens() {
        let usage = Usage {
            input_tokens: Some(2006),
            output_tokens: Some(300),
            cache_read_tokens: Some(1920),
            reasoning_tokens: Some(192),
            ..Usage::default()
        };
        let n = usage.normalize(Conventions::OPENAI);
        assert_eq!(n.input_tokens, 2006);
        assert_eq!(n.uncached_input_tokens(), 86);
        assert_eq!(n.output_tokens, 300);
        assert_eq!(n.reasoning_tokens, 192);
    }

    #[test]
    fn anthropic_input_tokens_exclude_cache_reads_and_writes() {
        let usage = Usage {
            input_tokens: Some(10),
            output_tokens: Some(5),
            cache_read_tokens: Some(100),
            cache_creation_tokens: Some(50),
            cache_creation_5m_tokens: Some(20),
            cache_creation_1h_tokens: Some(30),
            ..Usage::default()
        };
        let n = usage.normalize(Conventions::ANTHROPIC);
        assert_eq!(n.input_tokens, 160);
        assert_eq!(n.uncached_input_tokens(), 10);
        assert_eq!(n.cache_creation_tokens, 50);
        assert_eq!((n.cache_creation_5m_tokens, n.cache_creation_1h_tokens), (20, 30));
    }

    #[test]
    fn a_cache_write_total_without_split_counts_as_five_minute_writes() {
        let usage = Usage { cache_creation_tokens: Some(40), ..Usage::default() };
        let n = usage.normalize(Conventions::ANTHROPIC);
        assert_eq!((n.cache_creation_5m_tokens, n.cache_creation_1h_tokens), (40, 0));
    }

    #[test]
    fn gemini_style_output_excludes_thoughts_and_is_summed_once() {
        let conventions = Conventions {
            cache: CacheConvention::InputIncludesCache,
            reasoning: ReasoningConvention::OutputExcludesReasoning,
        };
        let usage = Usage { output_tokens: Some(7), reasoning_tokens: Some(3), ..Usage::default() };
        assert_eq!(usage.normalize(conventions).output_tokens, 10);
    }

    #[test]
    fn hostile_counts_saturate_instead_of_wrapping() {
        let usage = Usage {
            input_tokens: Some(u64::MAX),
            cache_read_tokens: Some(u64::MAX),
            ..Usage::default()
        };
        assert_eq!(usage.normalize(Conventions::ANTHROPIC).input_tokens, u64::MAX);
    }

    #[test]
    fn nothing_reported_is_not_reported() {
        assert!(!Usage::default().is_reported());
    }
}
