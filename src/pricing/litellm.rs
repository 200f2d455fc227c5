//! Import of LiteLLM's `model_prices_and_context_window.json`, the price list many users keep.
//!
//! The file is one JSON object: model name -> entry, prices in USD per single token written as
//! JSON numbers (`2.5e-06`). Each number is converted exactly: serde hands it over as an `f64`,
//! [`super::decimal::f64_text`] prints its shortest round-trip text (the digits the author
//! wrote, for the short decimals this file holds) and that text is scaled by 10^12 in integer
//! arithmetic. Sub-pico prices (a few models are listed at e.g. `1.41953125e-07` USD, i.e.
//! 141,953.125 pico) round half up to the pico once, at import.
//!
//! The file is streamed through a serde visitor straight into table entries: an unknown field
//! is read as a small `serde_json::Value` and dropped at once, so the import never holds a
//! `Value` tree of the 3.4 MB file. (`IgnoredAny` would skip it without allocating, but adds
//! serde_json's separate skipping parser, about 2.8 KB of wasm, for a load-time-only saving of
//! roughly 10% of the import's time.)
//!
//! Mapping (absent fields fall back as LiteLLM's own cost calculator does):
//! - `input_cost_per_token` is required; an entry without it (images, audio, seconds, the
//!   `sample_spec` documentation entry) is skipped.
//! - `output_cost_per_token` is required except for `mode: embedding` / `rerank` (0).
//! - `cache_read_input_token_cost` -> cached input (default: input);
//!   `cache_creation_input_token_cost` -> 5-minute write (default: input);
//!   `cache_creation_input_token_cost_above_1hr` -> 1-hour write (default: 5-minute write).
//! - `*_above_<N>k_tokens` (input, output, cache read, cache creation) -> a long-context card
//!   above N x 1000 input tokens; when several thresholds are listed the lowest is used. Its
//!   missing rates default to the standard ones, and its 1-hour write keeps the standard
//!   1h/5m ratio (LiteLLM does not list it).
//! - `*_priority` and `*_flex` (input and output both present) -> the priority / flex cards.
//! - `search_context_cost_per_query.search_context_size_medium` (USD per call) -> web search
//!   fee per call. `*_batches` fields are not read: batch is priced as 50% of the token cost,
//!   which is what every provider in the built-in table charges.
//! - `source` -> the entry's source; the effective date is unknown (empty).
//!
//! Precedence: [`PriceTable::layered`] builds what a configuration prices with -- the built-in
//! list, then the import (its entries replace built-in ones of the same name), then the
//! configured `prices.models` / `prices.aliases`, so an operator's override always wins.

use std::borrow::Cow;

use serde::de::{self, DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::Value;

use super::decimal::{f64_text, parse_scaled};
use super::{Entry, LongContext, ModelPrice, ModelPricing, PriceOverrides, PriceTable, PricingError};

/// USD per token -> pico-USD per token.
const PER_TOKEN: u32 = 12;

impl PriceTable {
    /// Builds a table from LiteLLM JSON (see the module docs for the mapping). Merge it over
    /// the built-in table with [`PriceTable::merge`] to let it take precedence.
    pub fn import_litellm(json: &[u8]) -> Result<PriceTable, PricingError> {
        let mut deserializer = serde_json::Deserializer::from_slice(json);
        let table = deserializer
            .deserialize_any(ListVisitor { null_is_none: false })
            .map_err(PricingError::LiteLlm)?;
        deserializer.end().map_err(PricingError::LiteLlm)?;
        // `ListVisitor` refuses `null` when told to, so the table is always there.
        Ok(table.unwrap_or_default())
    }

    fn from_litellm_entries(entries: Vec<Entry>) -> PriceTable {
        let mut table = PriceTable { version: Cow::Borrowed("litellm"), entries, ..PriceTable::default() };
        table.sort();
        table
    }

    /// Built-in prices, then `litellm` (if any) merged over them, then `overrides` applied on
    /// top. An override that applies to the built-in table also applies to any table with an
    /// import merged in (a merge only adds or replaces names), so overrides checked at load
    /// cannot fail later on a fetched list.
    pub fn layered(litellm: Option<PriceTable>, overrides: &PriceOverrides) -> Result<PriceTable, PricingError> {
        let mut table = PriceTable::builtin();
        if let Some(import) = litellm {
            table.merge(import);
        }
        table.with_overrides(overrides)
    }
}

/// Imports a LiteLLM list embedded in a larger JSON document, in the same pass that reads the
/// document (`next_value_seed(LiteLlmSeed)`), so that the list is never held as a
/// `serde_json::Value` or as a second copy of its text. `null` is no list (`None`); any other
/// non-object is an invalid-type error.
pub struct LiteLlmSeed;

impl<'de> DeserializeSeed<'de> for LiteLlmSeed {
    type Value = Option<PriceTable>;
    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Option<PriceTable>, D::Error> {
        deserializer.deserialize_any(ListVisitor { null_is_none: true })
    }
}

/// The type error of a visitor that accepts only an object, worded as the configuration words
/// its own (`expected an object, got a number`).
pub(crate) fn wrong_type<E: de::Error>(expected: &str, got: &str) -> E {
    E::custom(format_args!("expected {expected}, got {got}"))
}

/// The `visit_*` methods of a visitor driven by `deserialize_any` that accepts only an object:
/// every other JSON value is a [`wrong_type`] error. Visitors read through `deserialize_map`
/// (or that leave these to serde's defaults) report a wrong type through serde's
/// `invalid_type`, whose message formats the unexpected value; its float arm alone pulls
/// about 20 KB of core's float formatting into the module.
macro_rules! only_objects {
    ($expected:expr) => {
        fn visit_bool<E: serde::de::Error>(self, _: bool) -> Result<Self::Value, E> {
            Err($crate::pricing::wrong_type($expected, "a boolean"))
        }
        fn visit_i64<E: serde::de::Error>(self, _: i64) -> Result<Self::Value, E> {
            Err($crate::pricing::wrong_type($expected, "a number"))
        }
        fn visit_u64<E: serde::de::Error>(self, _: u64) -> Result<Self::Value, E> {
            Err($crate::pricing::wrong_type($expected, "a number"))
        }
        fn visit_f64<E: serde::de::Error>(self, _: f64) -> Result<Self::Value, E> {
            Err($crate::pricing::wrong_type($expected, "a number"))
        }
        fn visit_str<E: serde::de::Error>(self, _: &str) -> Result<Self::Value, E> {
            Err($crate::pricing::wrong_type($expected, "a string"))
        }
        fn visit_seq<A: serde::de::SeqAccess<'de>>(self, _: A) -> Result<Self::Value, A::Error> {
            Err($crate::pricing::wrong_type($expected, "an array"))
        }
    };
}
pub(crate) use only_objects;

/// A whole list: an object of model name -> entry; `null` is no list when `null_is_none`.
struct ListVisitor {
    null_is_none: bool,
}

impl<'de> Visitor<'de> for ListVisitor {
    type Value = Option<PriceTable>;
    fn expecting(&self, f: &mut core::fmt::Formatter) -> core::fmt::Result {
        f.write_str("a LiteLLM price list (an object of model name -> price entry)")
    }
    fn visit_unit<E: de::Error>(self) -> Result<Option<PriceTable>, E> {
        if self.null_is_none {
            Ok(None)
        } else {
            Err(wrong_type("an object", "null"))
        }
    }
    only_objects!("an object");
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Option<PriceTable>, A::Error> {
        let mut entries = Vec::new();
        while let Some(name) = map.next_key::<String>()? {
            let raw = map.next_value_seed(RawEntrySeed)?;
            // Lookups trim the id, so keys are stored trimmed or they could never resolve.
            let name = name.trim();
            if name == "sample_spec" || name.is_empty() {
                continue;
            }
            if let Some(pricing) = raw.into_pricing() {
                entries.push(Entry { name: Cow::Owned(name.to_owned()), pricing });
            }
        }
        Ok(Some(PriceTable::from_litellm_entries(entries)))
    }
}

/// The fields of one entry that pricing uses, as pico-USD per token.
#[derive(Default)]
struct RawEntry {
    input: Option<u64>,
    output: Option<u64>,
    cache_read: Option<u64>,
    cache_write: Option<u64>,
    cache_write_1h: Option<u64>,
    priority: RawCard,
    flex: RawCard,
    /// Lowest `above_<N>k_tokens` threshold seen, and its rates.
    long: Option<(u64, RawCard)>,
    web_search_per_call: Option<u64>,
    embedding_like: bool,
    source: Option<String>,
}

#[derive(Default, Clone, Copy)]
struct RawCard {
    input: Option<u64>,
    output: Option<u64>,
    cache_read: Option<u64>,
    cache_write: Option<u64>,
}

impl RawEntry {
    fn into_pricing(self) -> Option<ModelPricing> {
        let input = self.input?;
        let output = match self.output {
            Some(output) => output,
            None if self.embedding_like => 0,
            None => return None,
        };
        let cached_input = self.cache_read.unwrap_or(input);
        let cache_write_5m = self.cache_write.unwrap_or(input);
        let cache_write_1h = self.cache_write_1h.unwrap_or(cache_write_5m);
        let standard = ModelPrice { input, cached_input, cache_write_5m, cache_write_1h, output };
        let long_context = self.long.and_then(|(above_input_tokens, card)| {
            let long_input = card.input?;
            let long_5m = card.cache_write.unwrap_or(long_input);
            Some(LongContext {
                above_input_tokens,
                price: ModelPrice {
                    input: long_input,
                    cached_input: card.cache_read.unwrap_or(cached_input),
                    cache_write_5m: long_5m,
                    cache_write_1h: scale_ratio(long_5m, cache_write_1h, cache_write_5m),
                    output: card.output.unwrap_or(output),
                },
            })
        });
        let tier = |card: RawCard| {
            let (input, output) = (card.input?, card.output?);
            let cached_input = card.cache_read.unwrap_or(input);
            let cache_write_5m = card.cache_write.unwrap_or(input);
            Some(ModelPrice { input, cached_input, cache_write_5m, cache_write_1h: cache_write_5m, output })
        };
        Some(ModelPricing {
            standard,
            long_context,
            priority: tier(self.priority),
            flex: tier(self.flex),
            web_search_per_call: self.web_search_per_call,
            web_fetch_per_call: None,
            source: self.source.map_or(Cow::Borrowed("litellm"), Cow::Owned),
            effective_date: Cow::Borrowed(""),
        })
    }
}

/// `value * numerator / denominator`, rounded half up; `value` when the denominator is 0.
fn scale_ratio(value: u64, numerator: u64, denominator: u64) -> u64 {
    if denominator == 0 {
        return value;
    }
    let product = u128::from(value) * u128::from(numerator);
    let d = u128::from(denominator);
    let rounded = product / d + u128::from(product % d * 2 >= d);
    u64::try_from(rounded).unwrap_or(u64::MAX)
}

/// Which rate a LiteLLM key is.
enum Field {
    Input,
    Output,
    CacheRead,
    CacheWrite,
    CacheWrite1h,
    Priority(Rate),
    Flex(Rate),
    Long(u64, Rate),
    Search,
    Mode,
    Source,
    Other,
}

#[derive(Clone, Copy)]
enum Rate {
    Input,
    Output,
    CacheRead,
    CacheWrite,
}

impl Field {
    fn classify(key: &str) -> Field {
        match key {
            "input_cost_per_token" => return Field::Input,
            "output_cost_per_token" => return Field::Output,
            "cache_read_input_token_cost" => return Field::CacheRead,
            "cache_creation_input_token_cost" => return Field::CacheWrite,
            "cache_creation_input_token_cost_above_1hr" => return Field::CacheWrite1h,
            "search_context_cost_per_query" => return Field::Search,
            "mode" => return Field::Mode,
            "source" => return Field::Source,
            _ => {}
        }
        const BASES: [(&str, Rate); 4] = [
            ("input_cost_per_token", Rate::Input),
            ("output_cost_per_token", Rate::Output),
            ("cache_read_input_token_cost", Rate::CacheRead),
            ("cache_creation_input_token_cost", Rate::CacheWrite),
        ];
        for (base, rate) in BASES {
            let Some(rest) = key.strip_prefix(base) else { continue };
            match rest {
                "_priority" => return Field::Priority(rate),
                "_flex" => return Field::Flex(rate),
                _ => {}
            }
            let thousands = rest.strip_prefix("_above_").and_then(|r| r.strip_suffix("k_tokens"));
            if let Some(n) = thousands.and_then(|t| t.parse::<u64>().ok()) {
                return Field::Long(n.saturating_mul(1000), rate);
            }
        }
        Field::Other
    }
}

impl RawCard {
    fn set(&mut self, rate: Rate, value: Option<u64>) {
        let slot = match rate {
            Rate::Input => &mut self.input,
            Rate::Output => &mut self.output,
            Rate::CacheRead => &mut self.cache_read,
            Rate::CacheWrite => &mut self.cache_write,
        };
        *slot = value;
    }
}

struct RawEntrySeed;

impl<'de> DeserializeSeed<'de> for RawEntrySeed {
    type Value = RawEntry;
    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<RawEntry, D::Error> {
        deserializer.deserialize_any(EntryVisitor)
    }
}

/// Accepts any JSON value; only objects yield fields, anything else is an empty entry.
struct EntryVisitor;

impl<'de> Visitor<'de> for EntryVisitor {
    type Value = RawEntry;
    fn expecting(&self, f: &mut core::fmt::Formatter) -> core::fmt::Result {
        f.write_str("a price entry")
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<RawEntry, A::Error> {
        let mut raw = RawEntry::default();
        while let Some(key) = map.next_key::<KeyField>()? {
            match key.0 {
                Field::Input => raw.input = pico(&map.next_value::<Value>()?),
                Field::Output => raw.output = pico(&map.next_value::<Value>()?),
                Field::CacheRead => raw.cache_read = pico(&map.next_value::<Value>()?),
                Field::CacheWrite => raw.cache_write = pico(&map.next_value::<Value>()?),
                Field::CacheWrite1h => raw.cache_write_1h = pico(&map.next_value::<Value>()?),
                Field::Priority(rate) => raw.priority.set(rate, pico(&map.next_value::<Value>()?)),
                Field::Flex(rate) => raw.flex.set(rate, pico(&map.next_value::<Value>()?)),
                Field::Long(above, rate) => {
                    let value = pico(&map.next_value::<Value>()?);
                    match &mut raw.long {
                        Some((current, card)) if *current == above => card.set(rate, value),
                        Some((current, _)) if *current < above => {}
                        _ => {
                            let mut card = RawCard::default();
                            card.set(rate, value);
                            raw.long = Some((above, card));
                        }
                    }
                }
                Field::Search => {
                    let sizes = map.next_value::<Value>()?;
                    raw.web_search_per_call = sizes.get("search_context_size_medium").and_then(pico);
                }
                Field::Mode => {
                    let mode = map.next_value::<Value>()?;
                    raw.embedding_like = matches!(mode.as_str(), Some("embedding" | "rerank"));
                }
                Field::Source => {
                    if let Value::String(source) = map.next_value::<Value>()? {
                        raw.source = Some(source);
                    }
                }
                Field::Other => {
                    // Dropped at once (see the module docs on `IgnoredAny`).
                    map.next_value::<Value>()?;
                }
            }
        }
        Ok(raw)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<RawEntry, A::Error> {
        while seq.next_element::<Value>()?.is_some() {}
        Ok(RawEntry::default())
    }
    fn visit_bool<E: de::Error>(self, _: bool) -> Result<RawEntry, E> {
        Ok(RawEntry::default())
    }
    fn visit_i64<E: de::Error>(self, _: i64) -> Result<RawEntry, E> {
        Ok(RawEntry::default())
    }
    fn visit_u64<E: de::Error>(self, _: u64) -> Result<RawEntry, E> {
        Ok(RawEntry::default())
    }
    fn visit_f64<E: de::Error>(self, _: f64) -> Result<RawEntry, E> {
        Ok(RawEntry::default())
    }
    fn visit_str<E: de::Error>(self, _: &str) -> Result<RawEntry, E> {
        Ok(RawEntry::default())
    }
    fn visit_unit<E: de::Error>(self) -> Result<RawEntry, E> {
        Ok(RawEntry::default())
    }
}

/// A map key classified without allocating.
struct KeyField(Field);

impl<'de> de::Deserialize<'de> for KeyField {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct KeyVisitor;
        impl Visitor<'_> for KeyVisitor {
            type Value = KeyField;
            fn expecting(&self, f: &mut core::fmt::Formatter) -> core::fmt::Result {
                f.write_str("a field name")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<KeyField, E> {
                Ok(KeyField(Field::classify(v)))
            }
        }
        // JSON object keys are always strings, and `deserialize_any` on a key only ever
        // calls `visit_str` / `visit_borrowed_str`: no type-error path is instantiated.
        deserializer.deserialize_any(KeyVisitor)
    }
}

/// A USD amount -> pico-USD. Anything but a non-negative number is `None`, so one odd value
/// skips a rate rather than failing the whole import.
fn pico(value: &Value) -> Option<u64> {
    let Value::Number(number) = value else { return None };
    match number.as_u64() {
        Some(whole) => whole.checked_mul(1_000_000_000_000),
        None => parse_scaled(f64_text(number.as_f64()?).as_str(), PER_TOKEN).ok(),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    const SAMPLE: &str = r#"{
        "sample_spec": {"input_cost_per_token": 0.0, "output_cost_per_token": 0.0, "mode": "one of: chat"},
        "gpt-x": {"input_cost_per_token": 2.5e-06, "output_cost_per_token": 1e-05,
                  "cache_read_input_token_cost": 1.25e-06, "input_cost_per_token_priority": 4.25e-06,
                  "output_cost_per_token_priority": 1.7e-05, "input_cost_per_token_flex": 1.25e-06,
                  "output_cost_per_token_flex": 5e-06, "supports_vision": true, "tags": ["a", {"b": 1}],
                  "search_context_cost_per_query": {"search_context_size_low": 0.03, "search_context_size_medium": 0.035},
                  "source": "https://example.invalid/pricing", "litellm_provider": "openai", "mode": "chat"},
        "claude-x": {"input_cost_per_token": 3e-06, "output_cost_per_token": 1.5e-05,
                  "cache_read_input_token_cost": 3e-07, "cache_creation_input_token_cost": 3.75e-06,
                  "cache_creation_input_token_cost_above_1hr": 6e-06,
                  "input_cost_per_token_above_200k_tokens": 6e-06, "output_cost_per_token_above_200k_tokens": 2.25e-05,
                  "cache_creation_input_token_cost_above_200k_tokens": 7.5e-06,
                  "cache_read_input_token_cost_above_200k_tokens": 6e-07,
                  "input_cost_per_token_above_128k_tokens_priority": 1e-06},
        "embed-x": {"input_cost_per_token": 2e-08, "mode": "embedding"},
        "image-x": {"output_cost_per_image": 0.04, "mode": "image_generation"},
        "chat-without-output": {"input_cost_per_token": 1e-06, "mode": "chat"},
        "odd": 7,
        "sub-pico": {"input_cost_per_token": 1.41953125e-07, "output_cost_per_token": "n/a", "mode": "embedding"},
        "integer": {"input_cost_per_token": 0, "output_cost_per_token": 1}
    }"#;

    #[test]
    fn maps_fields_exactly() {
        let table = PriceTable::import_litellm(SAMPLE.as_bytes()).unwrap();
        assert_eq!(table.models().collect::<Vec<_>>(), ["claude-x", "embed-x", "gpt-x", "integer", "sub-pico"]);
        let (_, gpt) = table.resolve_pricing("gpt-x").unwrap();
        assert_eq!(gpt.standard, ModelPrice { input: 2_500_000, cached_input: 1_250_000, cache_write_5m: 2_500_000, cache_write_1h: 2_500_000, output: 10_000_000 });
        assert_eq!(gpt.priority.as_ref().map(|p| (p.input, p.cached_input, p.output)), Some((4_250_000, 4_250_000, 17_000_000)));
        assert_eq!(gpt.flex.as_ref().map(|p| (p.input, p.output)), Some((1_250_000, 5_000_000)));
        assert_eq!(gpt.web_search_per_call, Some(35_000_000_000));
        assert_eq!(gpt.source, "https://example.invalid/pricing");

        let (_, claude) = table.resolve_pricing("claude-x").unwrap();
        assert_eq!(claude.standard.cache_write_1h, 6_000_000);
        let long = claude.long_context.as_ref().unwrap();
        assert_eq!(long.above_input_tokens, 200_000);
        assert_eq!(long.price, ModelPrice { input: 6_000_000, cached_input: 600_000, cache_write_5m: 7_500_000, cache_write_1h: 12_000_000, output: 22_500_000 });
        assert!(claude.priority.is_none());

        let (_, embed) = table.resolve_pricing("embed-x").unwrap();
        assert_eq!((embed.standard.input, embed.standard.output), (20_000, 0));
        let (_, sub) = table.resolve_pricing("sub-pico").unwrap();
        assert_eq!(sub.standard.input, 141_953);
        let (_, int) = table.resolve_pricing("integer").unwrap();
        assert_eq!((int.standard.input, int.standard.output), (0, 1_000_000_000_000));
    }

    #[test]
    fn lowest_long_context_threshold_wins() {
        let json = r#"{"m": {"input_cost_per_token": 1e-06, "output_cost_per_token": 2e-06,
            "input_cost_per_token_above_272k_tokens": 4e-06, "input_cost_per_token_above_128k_tokens": 3e-06,
            "output_cost_per_token_above_128k_tokens": 5e-06}}"#;
        let table = PriceTable::import_litellm(json.as_bytes()).unwrap();
        let long = table.resolve_pricing("m").unwrap().1.long_context.clone().unwrap();
        assert_eq!((long.above_input_tokens, long.price.input, long.price.output), (128_000, 3_000_000, 5_000_000));
    }

    #[test]
    fn layering_is_builtin_then_import_then_overrides() {
        use crate::pricing::{DecimalPrice, ModelOverride};
        let json = br#"{"gpt-4o": {"input_cost_per_token": 1e-06, "output_cost_per_token": 2e-06},
                        "only-litellm": {"input_cost_per_token": 3e-07, "output_cost_per_token": 6e-07},
                        "overridden": {"input_cost_per_token": 3e-07, "output_cost_per_token": 6e-07}}"#;
        let mut overrides = PriceOverrides::default();
        let output_only = ModelOverride { output: Some(DecimalPrice::new("9")), ..ModelOverride::default() };
        overrides.models.push(("overridden".into(), output_only));
        let table = PriceTable::layered(Some(PriceTable::import_litellm(json).unwrap()), &overrides).unwrap();
        // The import replaces the built-in gpt-4o, adds its own models, and the override
        // replaces only the field it names.
        assert_eq!(table.resolve("gpt-4o").map(|(_, p)| (p.input, p.output)), Some((1_000_000, 2_000_000)));
        assert_eq!(table.resolve("only-litellm").map(|(_, p)| (p.input, p.output)), Some((300_000, 600_000)));
        assert_eq!(table.resolve("overridden").map(|(_, p)| (p.input, p.output)), Some((300_000, 9_000_000)));
        // Built-in models the import does not list are still priced.
        assert!(table.resolve("claude-sonnet-4-5").is_some());
        assert!(table.version().ends_with("+litellm+config"), "{}", table.version());
        // Without an import the override of a model nobody prices needs both rates.
        assert!(PriceTable::layered(None, &overrides).is_err());
    }

    #[test]
    fn broken_json_is_an_error() {
        assert!(matches!(PriceTable::import_litellm(b"{\"m\": "), Err(PricingError::LiteLlm(_))));
        assert!(matches!(PriceTable::import_litellm(b"[1]"), Err(PricingError::LiteLlm(_))));
        assert!(matches!(PriceTable::import_litellm(b"{} x"), Err(PricingError::LiteLlm(_))));
        for (json, got) in [(&b"null"[..], "null"), (b"2.5e-06", "a number"), (b"\"x\"", "a string")] {
            let e = PriceTable::import_litellm(json).unwrap_err().to_string();
            assert!(e.contains(&format!("expected an object, got {got}")), "{e}");
        }
    }
}
