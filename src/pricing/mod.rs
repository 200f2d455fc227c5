//! Exact integer prices and costs: what a request's tokens cost, in pico-USD.
//!
//! This module owns the price table (built-in list prices, configured overrides, an optional
//! LiteLLM import), model-id resolution and the cost arithmetic. Money is integers end to end:
//! a rate is pico-USD (1e-12 USD) per token, a cost is pico-USD. That unit is fine enough that
//! no list price rounds ($0.005 per 1M tokens is 5,000 pico per token) and large enough that a
//! `u64` holds $18 million per request. Every operation saturates instead of wrapping, and a
//! model without a price is unpriced (`None`), never $0: a zero would silently hide spend.
//!
//! What a request costs depends on more than its model: Anthropic's and Gemini's long-context
//! tier re-prices the whole request once the prompt passes 200K tokens, OpenAI's flex and
//! priority service tiers and every provider's batch API change the rates, and server-side
//! tools bill per call. [`ModelPricing::quote`] applies all of these given a
//! [`PricingContext`]; the plain [`cost`] function prices standard rates only.
//!
//! Use: build the table once at configuration load --
//! `PriceTable::builtin().with_overrides(&overrides)?`, optionally after
//! `table.merge(PriceTable::import_litellm(bytes)?)` -- and per request call
//! `table.quote(model, &usage, PricingContext::from_reported(service_tier))`, which returns the
//! canonical model name (the normalised model label) and the [`Quote`], or `None` when the
//! model is unpriced. [`PriceTable::version`] names the list that priced it.

mod builtin;
pub mod decimal;
mod index;
mod litellm;
mod overrides;
mod resolve;

use std::borrow::Cow;

use crate::usage::NormalizedUsage;

pub use decimal::DecimalError;
pub(crate) use decimal::parse_scaled;
pub use litellm::LiteLlmSeed;
pub(crate) use litellm::{only_objects, wrong_type};
pub use overrides::{ModelOverride, PriceOverrides, RateOverride, DecimalPrice};
pub(crate) use overrides::{json_kind, unknown_field_message};

/// Errors of the pricing layer: a configured or imported price that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum PricingError {
    /// A price is not a usable decimal; `field` is the configuration path, e.g.
    /// `prices.models.gpt-4o.input`.
    #[error("{field}: invalid price \"{value}\": {reason}")]
    InvalidPrice { field: String, value: String, reason: DecimalError },
    /// A rate was not configured and there is no existing rate to keep (a new model without
    /// `input` / `output`, a new tier card, a long-context card without a threshold).
    #[error("{field}: required: the price table has no value to keep")]
    MissingField { field: String },
    /// The `prices` section has an unknown key or a value of the wrong JSON type.
    #[error("{field}: {message}")]
    InvalidOverride { field: String, message: String },
    /// An alias points at a name the table cannot resolve.
    #[error("{field}: alias target \"{target}\" is not a priced model")]
    UnknownAliasTarget { field: String, target: String },
    /// The LiteLLM price list is not valid JSON of the expected shape.
    #[error("litellm price list: {0}")]
    LiteLlm(#[source] serde_json::Error),
}

/// An amount of money in pico-USD (1e-12 USD).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct PicoUsd(pub u64);

impl PicoUsd {
    pub const ZERO: PicoUsd = PicoUsd(0);

    /// Decimal USD with 9 places (nano-dollars), e.g. `0.000435000`.
    ///
    /// Rounds half up to the nano-dollar: 500 pico and more round up, 499 and less down. The
    /// rounding only affects this text; sums are kept in pico, so adding many requests first
    /// and formatting once loses nothing.
    pub fn to_usd_string(self) -> String {
        let nanos = self.0 / 1000 + u64::from(self.0 % 1000 >= 500);
        format!("{}.{:09}", nanos / 1_000_000_000, nanos % 1_000_000_000)
    }

    pub fn saturating_add(self, other: PicoUsd) -> PicoUsd {
        PicoUsd(self.0.saturating_add(other.0))
    }

    pub fn saturating_mul(self, n: u64) -> PicoUsd {
        PicoUsd(self.0.saturating_mul(n))
    }
}

/// Rates of one model, pico-USD per token (equal to micro-USD per 1M tokens).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ModelPrice {
    pub input: u64,
    pub cached_input: u64,
    pub cache_write_5m: u64,
    pub cache_write_1h: u64,
    pub output: u64,
}

impl ModelPrice {
    fn from_card(card: [u32; 5]) -> ModelPrice {
        let [input, cached_input, cache_write_5m, cache_write_1h, output] = card.map(u64::from);
        ModelPrice { input, cached_input, cache_write_5m, cache_write_1h, output }
    }

    /// Every rate halved, rounding half up (flex is half of standard).
    fn halved(&self) -> ModelPrice {
        ModelPrice {
            input: half_up(self.input),
            cached_input: half_up(self.cached_input),
            cache_write_5m: half_up(self.cache_write_5m),
            cache_write_1h: half_up(self.cache_write_1h),
            output: half_up(self.output),
        }
    }
}

/// Half of `v`, rounding half up: flex rates and batch costs are 50%.
fn half_up(v: u64) -> u64 {
    v / 2 + v % 2
}

/// The higher rates a request pays once its prompt is long.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LongContext {
    /// The tier applies when input tokens (cache reads and writes included) are strictly
    /// greater than this: 200,000 tokens is still standard, 200,001 is long.
    pub above_input_tokens: u64,
    /// Rates for ALL tokens of such a request, not only those past the threshold.
    pub price: ModelPrice,
}

/// Everything known about one model's price.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModelPricing {
    pub standard: ModelPrice,
    pub long_context: Option<LongContext>,
    /// OpenAI `service_tier: "priority"` rates, where published.
    pub priority: Option<ModelPrice>,
    /// OpenAI `service_tier: "flex"` rates, for models that offer flex.
    pub flex: Option<ModelPrice>,
    /// Server-side web search, pico-USD per call; `None` when the fee is not known.
    pub web_search_per_call: Option<u64>,
    /// Server-side web fetch, pico-USD per call; `None` when the fee is not known.
    pub web_fetch_per_call: Option<u64>,
    /// Where the price is published (a URL), or `config` / the LiteLLM `source`.
    pub source: Cow<'static, str>,
    /// When the price took effect (`YYYY-MM-DD` or `YYYY-MM`); empty when unknown.
    pub effective_date: Cow<'static, str>,
}

impl ModelPricing {
    /// Standard-only pricing with no tiers or tool fees.
    pub fn from_price(standard: ModelPrice) -> ModelPricing {
        ModelPricing {
            standard,
            long_context: None,
            priority: None,
            flex: None,
            web_search_per_call: None,
            web_fetch_per_call: None,
            source: Cow::Borrowed(""),
            effective_date: Cow::Borrowed(""),
        }
    }

    /// The rates a request pays, and what was applied.
    ///
    /// Rules, in order:
    /// 1. A batch request ignores the service tier: the Batch API has its own 50% discount,
    ///    applied to the whole token cost by [`ModelPricing::quote`].
    /// 2. Flex / priority use their rate card when the model has one; otherwise the request
    ///    is priced at standard rates and [`Quote::service_tier`] says `Standard`.
    /// 3. On standard rates, a prompt above the long-context threshold pays the long-context
    ///    card for all of its tokens. (No model in the built-in table has both a long-context
    ///    tier and a flex or priority card.)
    pub fn rates(&self, input_tokens: u64, context: PricingContext) -> (&ModelPrice, ServiceTier, bool) {
        let tier = if context.batch { ServiceTier::Standard } else { context.service_tier };
        match tier {
            ServiceTier::Flex => {
                if let Some(flex) = &self.flex {
                    return (flex, ServiceTier::Flex, false);
                }
            }
            ServiceTier::Priority => {
                if let Some(priority) = &self.priority {
                    return (priority, ServiceTier::Priority, false);
                }
            }
            ServiceTier::Standard => {}
        }
        match &self.long_context {
            Some(long) if input_tokens > long.above_input_tokens => (&long.price, ServiceTier::Standard, true),
            _ => (&self.standard, ServiceTier::Standard, false),
        }
    }

    /// The full cost of one request: tokens at the applicable rates, halved (rounding half up
    /// to the pico) for batch, plus server-side tool fees, which no batch discount covers.
    /// A tool whose fee is unknown adds nothing: the token cost is still right, and a request
    /// is not made unpriced by one unknown fee.
    pub fn quote(&self, usage: &NormalizedUsage, context: PricingContext) -> Quote {
        let (rates, service_tier, long_context) = self.rates(usage.input_tokens, context);
        let mut tokens = cost(rates, usage).0;
        if context.batch {
            tokens = half_up(tokens);
        }
        let fee = |calls: u64, per_call: Option<u64>| calls.saturating_mul(per_call.unwrap_or(0));
        let total = tokens
            .saturating_add(fee(usage.web_search_requests, self.web_search_per_call))
            .saturating_add(fee(usage.web_fetch_requests, self.web_fetch_per_call));
        Quote { cost: PicoUsd(total), service_tier, batch: context.batch, long_context }
    }
}

/// OpenAI's `service_tier`, as the response reports it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum ServiceTier {
    #[default]
    Standard,
    Flex,
    Priority,
}

impl ServiceTier {
    /// Reads a provider's tier name. `default`, `auto`, `standard`, `scale` and anything
    /// unknown are standard rates: OpenAI reports the tier actually used in the response, and
    /// `scale` is billed by contract, not by list price.
    pub fn from_name(name: &str) -> ServiceTier {
        match name.trim() {
            "flex" => ServiceTier::Flex,
            "priority" => ServiceTier::Priority,
            _ => ServiceTier::Standard,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            ServiceTier::Standard => "standard",
            ServiceTier::Flex => "flex",
            ServiceTier::Priority => "priority",
        }
    }
}

/// How a request was served, as far as price is concerned.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PricingContext {
    pub service_tier: ServiceTier,
    /// The request went through a provider's Batch API (50% of the token cost).
    pub batch: bool,
}

impl PricingContext {
    /// The context a response reports: OpenAI's `service_tier` (`default`, `flex`, `priority`,
    /// `scale`) or Anthropic's `usage.service_tier` (`standard`, `priority`, `batch`; the
    /// latter in Message Batches results). `None` (not reported) is standard.
    pub fn from_reported(service_tier: Option<&str>) -> PricingContext {
        match service_tier.map(str::trim) {
            Some("batch") => PricingContext { service_tier: ServiceTier::Standard, batch: true },
            Some(name) => PricingContext { service_tier: ServiceTier::from_name(name), batch: false },
            None => PricingContext::default(),
        }
    }
}

/// A priced request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Quote {
    pub cost: PicoUsd,
    /// The tier whose rates were applied (standard when the requested tier has no rates).
    pub service_tier: ServiceTier,
    pub batch: bool,
    /// The long-context rates were applied.
    pub long_context: bool,
}

#[derive(Debug, Clone)]
struct Entry {
    name: Cow<'static, str>,
    pricing: ModelPricing,
}

/// The price table: built-in list prices plus configured overrides.
///
/// Entries and aliases are kept sorted by name (for listing and linear merges) and found
/// through a hash index over both, rebuilt whenever the table changes; see `index`.
#[derive(Debug, Clone, Default)]
pub struct PriceTable {
    version: Cow<'static, str>,
    entries: Vec<Entry>,
    /// `(alias, canonical name)`, sorted by alias.
    aliases: Vec<(Cow<'static, str>, Cow<'static, str>)>,
    /// Key ids `0..entries.len()` are entry names, then alias names in order.
    index: index::NameIndex,
}

impl PriceTable {
    /// The built-in list prices (see the `builtin` rows for sources and dates).
    pub fn builtin() -> Self {
        let entries = builtin::rows()
            .iter()
            .map(|row| {
                let standard = ModelPrice::from_card(row.standard);
                let flex = row.flex.then(|| standard.halved());
                Entry {
                    name: Cow::Borrowed(row.name),
                    pricing: ModelPricing {
                        long_context: row.long.map(|card| LongContext {
                            above_input_tokens: builtin::LONG_CONTEXT_ABOVE,
                            price: ModelPrice::from_card(*card),
                        }),
                        priority: row.priority.map(|card| ModelPrice::from_card(*card)),
                        flex,
                        web_search_per_call: row.vendor.web_search_per_call(),
                        web_fetch_per_call: row.vendor.web_fetch_per_call(),
                        source: Cow::Borrowed(row.vendor.source()),
                        effective_date: Cow::Borrowed(row.since),
                        standard,
                    },
                }
            })
            .collect();
        let aliases = builtin::ALIASES
            .iter()
            .map(|(alias, target)| (Cow::Borrowed(*alias), Cow::Borrowed(*target)))
            .collect();
        let mut table = PriceTable {
            version: Cow::Borrowed(builtin::VERSION),
            entries,
            aliases,
            index: index::NameIndex::default(),
        };
        table.sort();
        table
    }

    /// An empty table: every model unpriced.
    pub fn empty() -> Self {
        Self::default()
    }

    /// The table's version, e.g. `builtin-2026-11-01`; overrides and imports append
    /// `+config` / `+litellm`.
    pub fn version(&self) -> &str {
        &self.version
    }

    /// Number of priced model names (aliases not counted).
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Canonical model names, sorted.
    pub fn models(&self) -> impl Iterator<Item = &str> {
        self.entries.iter().map(|e| &*e.name)
    }

    /// Resolves a model id as sent or returned (dated, prefixed) to its canonical name and
    /// standard rates.
    pub fn resolve(&self, model: &str) -> Option<(&str, &ModelPrice)> {
        self.resolve_pricing(model).map(|(name, pricing)| (name, &pricing.standard))
    }

    /// Resolves a model id to its canonical name (the normalised model label) and its full
    /// pricing. See the `resolve` module for the spellings understood.
    pub fn resolve_pricing(&self, model: &str) -> Option<(&str, &ModelPricing)> {
        resolve::first_match(model, |candidate| self.lookup(candidate))
            .map(|entry| (&*entry.name, &entry.pricing))
    }

    /// Resolves and prices one request; `None` when the model is unpriced.
    pub fn quote(&self, model: &str, usage: &NormalizedUsage, context: PricingContext) -> Option<(&str, Quote)> {
        self.resolve_pricing(model)
            .map(|(name, pricing)| (name, pricing.quote(usage, context)))
    }

    /// Adds every entry and alias of `other`, replacing entries and aliases of the same name.
    /// A linear merge of two sorted lists, so merging a 5,000-entry import stays cheap.
    pub fn merge(&mut self, other: PriceTable) {
        let mut ours = core::mem::take(&mut self.entries).into_iter().peekable();
        let mut theirs = other.entries.into_iter().peekable();
        let mut merged = Vec::with_capacity(ours.len().saturating_add(theirs.len()));
        loop {
            let next = match (ours.peek(), theirs.peek()) {
                (Some(a), Some(b)) => match a.name.cmp(&b.name) {
                    core::cmp::Ordering::Less => ours.next(),
                    core::cmp::Ordering::Greater => theirs.next(),
                    core::cmp::Ordering::Equal => {
                        ours.next();
                        theirs.next()
                    }
                },
                (Some(_), None) => ours.next(),
                (None, _) => theirs.next(),
            };
            match next {
                Some(entry) => merged.push(entry),
                None => break,
            }
        }
        self.entries = merged;
        self.aliases.extend(other.aliases);
        // Stable sort + keep-first dedup would keep ours; put theirs first by reversing runs.
        self.aliases.reverse();
        sort_by_name(&mut self.aliases, |a| &a.0);
        self.aliases.dedup_by(|later, earlier| later.0 == earlier.0);
        self.reindex();
        if self.version.is_empty() {
            self.version = other.version;
        } else if !other.version.is_empty() {
            self.version = Cow::Owned(format!("{}+{}", self.version, other.version));
        }
    }

    fn lookup(&self, name: &str) -> Option<&Entry> {
        let id = self.index.get(name, |id| self.key_name(id))?;
        match self.entries.get(id as usize) {
            Some(entry) => Some(entry),
            None => {
                let alias = (id as usize).checked_sub(self.entries.len())?;
                let (_, target) = self.aliases.get(alias)?;
                let id = self.index.get(target, |id| self.key_name(id))?;
                self.entries.get(id as usize)
            }
        }
    }

    fn key_name(&self, id: u32) -> Option<&str> {
        let id = id as usize;
        match self.entries.get(id) {
            Some(entry) => Some(&entry.name),
            None => {
                let alias = id.checked_sub(self.entries.len())?;
                self.aliases.get(alias).map(|(name, _)| &**name)
            }
        }
    }

    fn reindex(&mut self) {
        let names = self.entries.iter().map(|e| &*e.name).chain(self.aliases.iter().map(|(a, _)| &**a));
        self.index = index::NameIndex::build(names);
    }

    fn insert(&mut self, name: Cow<'static, str>, pricing: ModelPricing) {
        match self.entries.binary_search_by(|e| (*e.name).cmp(&name)) {
            Ok(i) => {
                if let Some(entry) = self.entries.get_mut(i) {
                    entry.pricing = pricing;
                }
            }
            Err(i) => self.entries.insert(i, Entry { name, pricing }),
        }
        self.reindex();
    }

    fn insert_alias(&mut self, alias: Cow<'static, str>, target: Cow<'static, str>) {
        match self.aliases.binary_search_by(|(a, _)| (**a).cmp(&alias)) {
            Ok(i) => {
                if let Some(slot) = self.aliases.get_mut(i) {
                    slot.1 = target;
                }
            }
            Err(i) => self.aliases.insert(i, (alias, target)),
        }
        self.reindex();
    }

    fn sort(&mut self) {
        sort_by_name(&mut self.entries, |e| &e.name);
        self.entries.dedup_by(|later, earlier| later.name == earlier.name);
        sort_by_name(&mut self.aliases, |a| &a.0);
        self.aliases.dedup_by(|later, earlier| later.0 == earlier.0);
        self.reindex();
    }
}

/// Sorts `items` by name, keeping equal names in their order (the dedups above keep the first).
/// Every list goes through one non-generic merge sort of indices: std's stable sort is about
/// 4.5 KB of wasm per instantiation, and the table sorted entries and aliases separately (and
/// again on merge). Runs at configuration load only (budget matchers use it too).
pub(crate) fn sort_by_name<T>(items: &mut Vec<T>, name: impl Fn(&T) -> &str) {
    let order = stable_order(&items.iter().map(name).collect::<Vec<_>>());
    let mut slots: Vec<Option<T>> = items.drain(..).map(Some).collect();
    items.extend(order.into_iter().filter_map(|i| slots.get_mut(i).and_then(Option::take)));
}

/// The indices of `names` in stable sorted order: a bottom-up merge sort, log2(n) passes.
fn stable_order(names: &[&str]) -> Vec<usize> {
    let name = |i: usize| names.get(i).copied().unwrap_or_default();
    let mut order: Vec<usize> = (0..names.len()).collect();
    let mut width = 1;
    while width < order.len() {
        let mut next = Vec::with_capacity(order.len());
        for pair in order.chunks(width.saturating_mul(2)) {
            let (left, right) = pair.split_at(width.min(pair.len()));
            let (mut left, mut right) = (left.iter().copied().peekable(), right.iter().copied().peekable());
            loop {
                // Ties take the left run's item: that is what keeps the sort stable.
                let take_left = match (left.peek(), right.peek()) {
                    (Some(&l), Some(&r)) => name(l) <= name(r),
                    (Some(_), None) => true,
                    (None, Some(_)) => false,
                    (None, None) => break,
                };
                next.extend(if take_left { left.next() } else { right.next() });
            }
        }
        order = next;
        width = width.saturating_mul(2);
    }
    order
}

/// Cost of one request's usage at standard rates (no tiers, no tool fees).
pub fn cost(price: &ModelPrice, usage: &NormalizedUsage) -> PicoUsd {
    let t = |n: u64, p: u64| n.saturating_mul(p);
    PicoUsd(
        t(usage.uncached_input_tokens(), price.input)
            .saturating_add(t(usage.cache_read_tokens, price.cached_input))
            .saturating_add(t(usage.cache_creation_5m_tokens, price.cache_write_5m))
            .saturating_add(t(usage.cache_creation_1h_tokens, price.cache_write_1h))
            .saturating_add(t(usage.output_tokens, price.output)),
    )
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]
mod tests;
