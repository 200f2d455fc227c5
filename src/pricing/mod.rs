//! STUB owned by the pricing work: exact integer prices and costs.
//!
//! Contract for the pipeline: prices are pico-USD per token, costs are pico-USD, and a model
//! without a price is `None` ("unpriced"), never 0.

use crate::usage::NormalizedUsage;

/// An amount of money in pico-USD (1e-12 USD).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct PicoUsd(pub u64);

impl PicoUsd {
    /// Decimal USD string with 9 places, e.g. `0.000435000` (truncated below a nano-dollar).
    pub fn to_usd_string(self) -> String {
        let nanos = self.0 / 1000;
        format!("{}.{:09}", nanos / 1_000_000_000, nanos % 1_000_000_000)
    }
}

/// Prices of one model, pico-USD per token.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ModelPrice {
    pub input: u64,
    pub cached_input: u64,
    pub cache_write_5m: u64,
    pub cache_write_1h: u64,
    pub output: u64,
}

/// The price table: built-in list prices plus configured overrides.
#[derive(Debug, Clone, Default)]
pub struct PriceTable {}

impl PriceTable {
    pub fn builtin() -> Self {
        Self {}
    }
    /// Resolves a model id as sent or returned (dated, prefixed) to its canonical name and price.
    pub fn resolve(&self, _model: &str) -> Option<(&str, &ModelPrice)> {
        None
    }
}

/// Cost of one request's usage under a price.
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
