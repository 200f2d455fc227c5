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

use serde::de::{self, Deserializer};
use serde::Deserialize;
use serde_json::{Map, Value};

use super::decimal::parse_scaled;
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

    /// Other JSON types are kept as a description that never parses, so the error is raised
    /// by `with_overrides`, which knows the field's path and shows the value.
    fn from_value(v: &Value) -> Self {
        let text = match v {
            Value::String(s) => s.clone(),
            // Integers as written; fractions in their shortest round-trip form (`0.075`).
            Value::Number(n) => n.to_string(),
            Value::Bool(b) => b.to_string(),
            Value::Array(_) => "[...]".to_owned(),
            Value::Object(_) => "{...}".to_owned(),
            Value::Null => String::new(),
        };
        DecimalPrice(text)
    }

    fn scaled(&self, scale: u32, field: &str) -> Result<u64, PricingError> {
        parse_scaled(&self.0, scale).map_err(|reason| PricingError::InvalidPrice {
            field: field.to_owned(),
            value: self.0.clone(),
            reason,
        })
    }
}

/// The `prices` section of the plugin configuration; see the module docs for the shape.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PriceOverrides {
    /// By model name, in name order (as JSON objects are read).
    pub models: Vec<(String, ModelOverride)>,
    /// Alias -> target, in alias order (as JSON objects are read).
    pub aliases: Vec<(String, String)>,
}

/// One model's configured price. Rates are USD per 1M tokens; tool fees USD per 1,000 calls.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
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
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RateOverride {
    pub input: Option<DecimalPrice>,
    pub cached_input: Option<DecimalPrice>,
    pub cache_write_5m: Option<DecimalPrice>,
    pub cache_write_1h: Option<DecimalPrice>,
    pub output: Option<DecimalPrice>,
}

/// The `long_context` card: rates for the whole request above `above_input_tokens`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LongContextOverride {
    pub above_input_tokens: Option<u64>,
    pub input: Option<DecimalPrice>,
    pub cached_input: Option<DecimalPrice>,
    pub cache_write_5m: Option<DecimalPrice>,
    pub cache_write_1h: Option<DecimalPrice>,
    pub output: Option<DecimalPrice>,
}

// The section is read by walking the `Value` by hand rather than through serde derives: the
// derives instantiated serde's map visitor for each of the four shapes, about 25 KB of the
// module for code that runs once per configuration load. The first five keys of each card are
// the shared rate fields, in [`RateOverride`]'s order.
const PRICES_FIELDS: [&str; 2] = ["models", "aliases"];
const RATE_FIELDS: [&str; 5] = ["input", "cached_input", "cache_write_5m", "cache_write_1h", "output"];
const MODEL_FIELDS: [&str; 10] = [
    "input",
    "cached_input",
    "cache_write_5m",
    "cache_write_1h",
    "output",
    "long_context",
    "priority",
    "flex",
    "web_search_per_1k_calls",
    "web_fetch_per_1k_calls",
];
const LONG_CONTEXT_FIELDS: [&str; 6] =
    ["input", "cached_input", "cache_write_5m", "cache_write_1h", "output", "above_input_tokens"];

/// An unknown key, worded as serde's `deny_unknown_fields` words it; the configuration's own
/// objects use the same wording.
pub(crate) fn unknown_field_message(key: &str, names: &[&str]) -> String {
    let expected = match names {
        [] => "there are no fields".to_owned(),
        [one] => format!("expected `{one}`"),
        [a, b] => format!("expected `{a}` or `{b}`"),
        _ => format!("expected one of `{}`", names.join("`, `")),
    };
    format!("unknown field `{key}`, {expected}")
}

/// `"an object"` etc.: how a JSON value's type is named in configuration errors.
pub(crate) fn json_kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

fn shape_error(field: &str, message: String) -> PricingError {
    PricingError::InvalidOverride { field: field.to_owned(), message }
}

fn as_object<'v>(v: &'v Value, field: &str) -> Result<&'v Map<String, Value>, PricingError> {
    match v {
        Value::Object(map) => Ok(map),
        other => Err(shape_error(field, format!("expected an object, got {}", json_kind(other)))),
    }
}

/// The object's values by key, in the order of `names`; `null` counts as absent.
fn take_fields<'v>(
    map: &'v Map<String, Value>,
    field: &str,
    names: &[&str],
    out: &mut [Option<&'v Value>],
) -> Result<(), PricingError> {
    for (key, value) in map {
        let Some(slot) = names.iter().position(|n| n == key).and_then(|i| out.get_mut(i)) else {
            return Err(shape_error(&format!("{field}.{key}"), unknown_field_message(key, names)));
        };
        if !value.is_null() {
            *slot = Some(value);
        }
    }
    Ok(())
}

fn decimal(v: Option<&Value>) -> Option<DecimalPrice> {
    v.map(DecimalPrice::from_value)
}

fn rate_card(v: &Value, field: &str) -> Result<RateOverride, PricingError> {
    let mut f = [None; 5];
    take_fields(as_object(v, field)?, field, &RATE_FIELDS, &mut f)?;
    let [input, cached_input, cache_write_5m, cache_write_1h, output] = f.map(decimal);
    Ok(RateOverride { input, cached_input, cache_write_5m, cache_write_1h, output })
}

impl PriceOverrides {
    /// Reads the `prices` object; errors name the field, e.g. `prices.models.m.inptu`.
    pub fn from_value(v: &Value) -> Result<Self, PricingError> {
        Self::from_map(as_object(v, "prices")?)
    }

    /// [`PriceOverrides::from_value`] for the section's object.
    pub fn from_map(map: &Map<String, Value>) -> Result<Self, PricingError> {
        let mut top = [None; 2];
        take_fields(map, "prices", &PRICES_FIELDS, &mut top)?;
        let [models, aliases] = top;
        Self::from_parts(models, aliases)
    }

    /// The section from its `models` and `aliases` members (`None` when absent or `null`), for
    /// a caller that has already split the `prices` object (the plugin configuration, which
    /// would otherwise copy both members into a new map).
    pub fn from_parts(models: Option<&Value>, aliases: Option<&Value>) -> Result<Self, PricingError> {
        let mut out = PriceOverrides::default();
        if let Some(models) = models {
            for (name, model) in as_object(models, "prices.models")? {
                let field = format!("prices.models.{name}");
                out.models.push((name.clone(), ModelOverride::from_value(model, &field)?));
            }
        }
        if let Some(aliases) = aliases {
            for (alias, target) in as_object(aliases, "prices.aliases")? {
                let Value::String(target) = target else {
                    let got = json_kind(target);
                    return Err(shape_error(&format!("prices.aliases.{alias}"), format!("expected a string, got {got}")));
                };
                out.aliases.push((alias.clone(), target.clone()));
            }
        }
        Ok(out)
    }
}

/// For tests and tools that read a `prices` document directly; the plugin configuration calls
/// [`PriceOverrides::from_value`].
impl<'de> Deserialize<'de> for PriceOverrides {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let value = Value::deserialize(deserializer)?;
        PriceOverrides::from_value(&value).map_err(de::Error::custom)
    }
}

impl ModelOverride {
    fn from_value(v: &Value, field: &str) -> Result<Self, PricingError> {
        let mut f = [None; 10];
        take_fields(as_object(v, field)?, field, &MODEL_FIELDS, &mut f)?;
        let [input, cached_input, cache_write_5m, cache_write_1h, output, long_context, priority, flex, web_search, web_fetch] = f;
        let long_context = match long_context {
            None => None,
            Some(v) => {
                let field = format!("{field}.long_context");
                let mut l = [None; 6];
                take_fields(as_object(v, &field)?, &field, &LONG_CONTEXT_FIELDS, &mut l)?;
                let [input, cached_input, cache_write_5m, cache_write_1h, output, above] = l;
                let above_input_tokens = match above {
                    None => None,
                    Some(v) => Some(v.as_u64().ok_or_else(|| {
                        let got = if v.is_number() { "a negative or fractional number" } else { json_kind(v) };
                        shape_error(&format!("{field}.above_input_tokens"), format!("expected a non-negative integer, got {got}"))
                    })?),
                };
                let [input, cached_input, cache_write_5m, cache_write_1h, output] =
                    [input, cached_input, cache_write_5m, cache_write_1h, output].map(decimal);
                Some(LongContextOverride { above_input_tokens, input, cached_input, cache_write_5m, cache_write_1h, output })
            }
        };
        let card = |v: Option<&Value>, name: &str| v.map(|v| rate_card(v, &format!("{field}.{name}"))).transpose();
        Ok(ModelOverride {
            input: decimal(input),
            cached_input: decimal(cached_input),
            cache_write_5m: decimal(cache_write_5m),
            cache_write_1h: decimal(cache_write_1h),
            output: decimal(output),
            long_context,
            priority: card(priority, "priority")?,
            flex: card(flex, "flex")?,
            web_search_per_1k_calls: decimal(web_search),
            web_fetch_per_1k_calls: decimal(web_fetch),
        })
    }
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

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::indexing_slicing)]
    use super::*;

    fn shape_err(json: &str) -> String {
        let v: Value = serde_json::from_str(json).unwrap();
        match PriceOverrides::from_value(&v) {
            Err(PricingError::InvalidOverride { field, message }) => format!("{field}: {message}"),
            other => format!("not a shape error: {other:?}"),
        }
    }

    #[test]
    fn shape_errors_name_the_nested_field() {
        assert_eq!(shape_err("[]"), "prices: expected an object, got an array");
        assert_eq!(shape_err(r#"{"models": []}"#), "prices.models: expected an object, got an array");
        assert_eq!(shape_err(r#"{"models": {"m": 1}}"#), "prices.models.m: expected an object, got a number");
        assert_eq!(
            shape_err(r#"{"models": {"m": {"flex": {"inptu": "1"}}}}"#),
            "prices.models.m.flex.inptu: unknown field `inptu`, expected one of `input`, `cached_input`, \
             `cache_write_5m`, `cache_write_1h`, `output`"
        );
        assert_eq!(shape_err(r#"{"aliases": {"a": 1}}"#), "prices.aliases.a: expected a string, got a number");
        assert_eq!(
            shape_err(r#"{"models": {"m": {"long_context": {"above_input_tokens": -1}}}}"#),
            "prices.models.m.long_context.above_input_tokens: expected a non-negative integer, got a negative or fractional number"
        );
        assert_eq!(shape_err(r#"{"x": 1}"#), "prices.x: unknown field `x`, expected `models` or `aliases`");
    }

    #[test]
    fn values_keep_their_text_and_null_is_absent() {
        let v: Value = serde_json::from_str(
            r#"{"models": {"b": {"input": 0.075, "output": "1.50", "cached_input": null, "flex": {"input": -2}},
                           "a": {"input": true, "long_context": {"above_input_tokens": 200000, "output": 10}}},
                "aliases": {"dep": "b"}}"#,
        )
        .unwrap();
        let o = PriceOverrides::from_value(&v).unwrap();
        // In name order, as the table applies them.
        assert_eq!(o.models.iter().map(|(n, _)| n.as_str()).collect::<Vec<_>>(), ["a", "b"]);
        let (a, b) = (&o.models[0].1, &o.models[1].1);
        assert_eq!(b.input, Some(DecimalPrice::new("0.075")));
        assert_eq!(b.output, Some(DecimalPrice::new("1.50")));
        assert_eq!(b.cached_input, None);
        assert_eq!(b.flex.as_ref().unwrap().input, Some(DecimalPrice::new("-2")));
        assert_eq!(a.input, Some(DecimalPrice::new("true")));
        let long = a.long_context.as_ref().unwrap();
        assert_eq!((long.above_input_tokens, long.output.clone()), (Some(200_000), Some(DecimalPrice::new("10"))));
        assert_eq!(o.aliases, [("dep".to_string(), "b".to_string())]);
    }
}
