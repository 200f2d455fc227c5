//! Price overrides and additions from plugin configuration.
//!
//! The pipeline embeds [`PriceOverrides`] in its configuration under the key `prices`. The
//! JSON shape (every key optional; prices are USD per 1M tokens, given as decimal strings for
//! exactness or as JSON numbers):
//!
//! ```json
//! {
//!   "prices": {
//!     "models": {
//!       "gpt-4o": { "input": "2.50", "cached_input": "1.25", "output": "10" },
//!       "my-finetune": {
//!         "input": "0.30", "cached_input": "0.15", "output": 1.2,
//!         "cache_write_5m": "0.375", "cache_write_1h": "0.60",
//!         "long_context": { "above_input_tokens": 200000, "input": "0.60", "output": "2.40" },
//!         "priority": { "input": "0.50", "output": "2" },
//!         "flex": { "input": "0.15", "output": "0.60" },
//!         "web_search_per_1k_calls": "10",
//!         "web_fetch_per_1k_calls": "0"
//!       }
//!     },
//!     "aliases": { "my-azure-deployment": "gpt-4o" }
//!   }
//! }
//! ```
//!
//! Semantics: a model name that already resolves in the table (built-in or imported, dated
//! and prefixed spellings included) starts from that price and the fields given replace
//! fields; the result is stored under the name exactly as written, so an override for
//! `gpt-4o-2024-08-06` leaves `gpt-4o` alone while one for `gpt-4o` reaches every dated
//! `gpt-4o-*` id without its own entry. A name that resolves to nothing must give `input` and
//! `output`; its `cached_input` and cache writes default to `input` (no discount, no
//! premium), and `cache_write_1h` to `cache_write_5m`. Within `long_context`, `priority` and
//! `flex` the same rules apply against the existing card of that kind. Aliases map a name
//! (typically an Azure deployment) to a model; the target must resolve, and the alias takes
//! the target's canonical name as its label. Errors name the offending field, e.g.
//! `prices.models.my-finetune.output: required for a model that is not in the price table`.

use std::borrow::Cow;
use std::collections::BTreeMap;

use serde::de::{self, Deserializer, Visitor};
use serde::Deserialize;

use super::decimal::{f64_text, parse_scaled};
use super::{LongContext, ModelPrice, ModelPricing, PriceTable, PricingError};

/// A decimal number as written in configuration: a JSON string (exact) or number.
///
/// The unit depends on the field: USD per 1M tokens for rates, USD per 1,000 calls for tool
/// fees. Numbers are kept as their shortest round-trip text, which is exact for up to 15
/// significant digits; strings are kept verbatim. The value is checked when applied, so the
/// error can name the field.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DecimalPrice(pub String);

impl DecimalPrice {
    pub fn new(text: &str) -> Self {
        DecimalPrice(text.to_owned())
    }

    fn scaled(&self, scale: u32, field: &str) -> Result<u64, PricingError> {
        parse_scaled(&self.0, scale).map_err(|reason| PricingError::InvalidPrice {
            field: field.to_owned(),
            value: self.0.clone(),
            reason,
        })
    }
}

impl<'de> Deserialize<'de> for DecimalPrice {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct DecimalVisitor;
        impl<'de> Visitor<'de> for DecimalVisitor {
            type Value = DecimalPrice;
            fn expecting(&self, f: &mut core::fmt::Formatter) -> core::fmt::Result {
                f.write_str("a decimal number or a string holding one")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
                Ok(DecimalPrice(v.to_owned()))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Self::Value, E> {
                Ok(DecimalPrice(v.to_string()))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Self::Value, E> {
                Ok(DecimalPrice(v.to_string()))
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<Self::Value, E> {
                Ok(DecimalPrice(f64_text(v).as_str().to_owned()))
            }
            // Other JSON types are kept as a description that never parses, so the error is
            // raised by `with_overrides`, which knows the field's path.
            fn visit_bool<E: de::Error>(self, v: bool) -> Result<Self::Value, E> {
                Ok(DecimalPrice(v.to_string()))
            }
            fn visit_seq<A: de::SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
                while seq.next_element::<de::IgnoredAny>()?.is_some() {}
                Ok(DecimalPrice("[...]".to_owned()))
            }
            fn visit_map<A: de::MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
                while map.next_entry::<de::IgnoredAny, de::IgnoredAny>()?.is_some() {}
                Ok(DecimalPrice("{...}".to_owned()))
            }
        }
        deserializer.deserialize_any(DecimalVisitor)
    }
}

/// The `prices` section of the plugin configuration; see the module docs for the shape.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PriceOverrides {
    #[serde(default)]
    pub models: BTreeMap<String, ModelOverride>,
    #[serde(default)]
    pub aliases: BTreeMap<String, String>,
}

/// One model's configured price. Rates are USD per 1M tokens; tool fees USD per 1,000 calls.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelOverride {
    pub input: Option<DecimalPrice>,
    pub cached_input: Option<DecimalPrice>,
    pub cache_write_5m: Option<DecimalPrice>,
    pub cache_write_1h: Option<DecimalPrice>,
    pub output: Option<DecimalPrice>,
    pub long_context: Option<LongContextOverride>,
    pub priority: Option<RateOverride>,
    pub flex: Option<RateOverride>,
    pub web_search_per_1k_calls: Option<DecimalPrice>,
    pub web_fetch_per_1k_calls: Option<DecimalPrice>,
}

/// A rate card inside a model override (`priority`, `flex`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RateOverride {
    pub input: Option<DecimalPrice>,
    pub cached_input: Option<DecimalPrice>,
    pub cache_write_5m: Option<DecimalPrice>,
    pub cache_write_1h: Option<DecimalPrice>,
    pub output: Option<DecimalPrice>,
}

/// The `long_context` card: rates for the whole request above `above_input_tokens`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LongContextOverride {
    pub above_input_tokens: Option<u64>,
    pub input: Option<DecimalPrice>,
    pub cached_input: Option<DecimalPrice>,
    pub cache_write_5m: Option<DecimalPrice>,
    pub cache_write_1h: Option<DecimalPrice>,
    pub output: Option<DecimalPrice>,
}

/// USD per 1M tokens -> pico-USD per token.
const PER_MILLION_TOKENS: u32 = 6;
/// USD per 1,000 calls -> pico-USD per call.
const PER_THOUSAND_CALLS: u32 = 9;

struct Rates<'a> {
    input: &'a Option<DecimalPrice>,
    cached_input: &'a Option<DecimalPrice>,
    cache_write_5m: &'a Option<DecimalPrice>,
    cache_write_1h: &'a Option<DecimalPrice>,
    output: &'a Option<DecimalPrice>,
}

impl Rates<'_> {
    /// Field-by-field: given value, else the base card's, else the documented default.
    fn apply(&self, base: Option<&ModelPrice>, field: &str) -> Result<ModelPrice, PricingError> {
        let given = |v: &Option<DecimalPrice>, name: &str| -> Result<Option<u64>, PricingError> {
            v.as_ref().map(|p| p.scaled(PER_MILLION_TOKENS, &format!("{field}.{name}"))).transpose()
        };
        let required = |v: Option<u64>, from_base: Option<u64>, name: &str| {
            v.or(from_base)
                .ok_or_else(|| PricingError::MissingField { field: format!("{field}.{name}") })
        };
        let input = required(given(self.input, "input")?, base.map(|b| b.input), "input")?;
        let output = required(given(self.output, "output")?, base.map(|b| b.output), "output")?;
        let cached_input = given(self.cached_input, "cached_input")?
            .or(base.map(|b| b.cached_input))
            .unwrap_or(input);
        let cache_write_5m = given(self.cache_write_5m, "cache_write_5m")?
            .or(base.map(|b| b.cache_write_5m))
            .unwrap_or(input);
        let cache_write_1h = given(self.cache_write_1h, "cache_write_1h")?
            .or(base.map(|b| b.cache_write_1h))
            .unwrap_or(cache_write_5m);
        Ok(ModelPrice { input, cached_input, cache_write_5m, cache_write_1h, output })
    }
}

/// The three override types share the five rate fields; serde's `flatten` would merge them
/// but cannot be combined with `deny_unknown_fields`, so each lends them out here instead.
macro_rules! lend_rates {
    ($($ty:ty),*) => {$(
        impl $ty {
            fn rates(&self) -> Rates<'_> {
                Rates {
                    input: &self.input,
                    cached_input: &self.cached_input,
                    cache_write_5m: &self.cache_write_5m,
                    cache_write_1h: &self.cache_write_1h,
                    output: &self.output,
                }
            }
        }
    )*};
}

lend_rates!(ModelOverride, RateOverride, LongContextOverride);

impl ModelOverride {
    fn apply(&self, base: Option<&ModelPricing>, field: &str) -> Result<ModelPricing, PricingError> {
        let standard = self.rates().apply(base.map(|b| &b.standard), field)?;
        let base_long = base.and_then(|b| b.long_context.as_ref());
        let long_context = match &self.long_context {
            None => base_long.cloned(),
            Some(long) => {
                let long_field = format!("{field}.long_context");
                let above_input_tokens = long
                    .above_input_tokens
                    .or(base_long.map(|l| l.above_input_tokens))
                    .ok_or_else(|| PricingError::MissingField {
                        field: format!("{long_field}.above_input_tokens"),
                    })?;
                let price = long.rates().apply(base_long.map(|l| &l.price), &long_field)?;
                Some(LongContext { above_input_tokens, price })
            }
        };
        let card = |given: &Option<RateOverride>, existing: Option<&ModelPrice>, name: &str| match given {
            None => Ok(existing.cloned()),
            Some(o) => o.rates().apply(existing, &format!("{field}.{name}")).map(Some),
        };
        let priority = card(&self.priority, base.and_then(|b| b.priority.as_ref()), "priority")?;
        let flex = card(&self.flex, base.and_then(|b| b.flex.as_ref()), "flex")?;
        let fee = |given: &Option<DecimalPrice>, existing: Option<u64>, name: &str| match given {
            None => Ok(existing),
            Some(p) => p.scaled(PER_THOUSAND_CALLS, &format!("{field}.{name}")).map(Some),
        };
        let web_search_per_call =
            fee(&self.web_search_per_1k_calls, base.and_then(|b| b.web_search_per_call), "web_search_per_1k_calls")?;
        let web_fetch_per_call =
            fee(&self.web_fetch_per_1k_calls, base.and_then(|b| b.web_fetch_per_call), "web_fetch_per_1k_calls")?;
        Ok(ModelPricing {
            standard,
            long_context,
            priority,
            flex,
            web_search_per_call,
            web_fetch_per_call,
            source: Cow::Borrowed("config"),
            effective_date: Cow::Borrowed(""),
        })
    }
}

impl PriceTable {
    /// Applies configured overrides, additions and aliases; see the module docs for the rules.
    /// On error the table is not returned, so a bad configuration is rejected at load.
    pub fn with_overrides(mut self, overrides: &PriceOverrides) -> Result<Self, PricingError> {
        for (name, model) in &overrides.models {
            let field = format!("prices.models.{name}");
            let base = self.resolve_pricing(name).map(|(_, pricing)| pricing.clone());
            let pricing = model.apply(base.as_ref(), &field)?;
            // Lookups trim the id they are given, so a name stored with surrounding
            // whitespace could never be found: store it the way it will be looked up.
            self.insert(Cow::Owned(name.trim().to_owned()), pricing);
        }
        for (alias, target) in &overrides.aliases {
            let canonical = match self.resolve_pricing(target) {
                Some((canonical, _)) => canonical.to_owned(),
                None => {
                    return Err(PricingError::UnknownAliasTarget {
                        field: format!("prices.aliases.{alias}"),
                        target: target.clone(),
                    })
                }
            };
            self.insert_alias(Cow::Owned(alias.trim().to_owned()), Cow::Owned(canonical));
        }
        if !overrides.models.is_empty() || !overrides.aliases.is_empty() {
            self.version = Cow::Owned(format!("{}+config", self.version));
        }
        Ok(self)
    }
}
