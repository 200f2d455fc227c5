//! Price overrides, additions and aliases from plugin configuration, and the errors that name
//! the offending field.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

use tokenmeter::pricing::{DecimalError, ModelPrice, PicoUsd, PriceOverrides, PriceTable, PricingContext, PricingError, ServiceTier};
use tokenmeter::usage::NormalizedUsage;

fn overrides(json: &str) -> PriceOverrides {
    serde_json::from_str(json).unwrap()
}

fn apply(json: &str) -> Result<PriceTable, PricingError> {
    PriceTable::builtin().with_overrides(&overrides(json))
}

fn error_text(json: &str) -> String {
    apply(json).map(|_| ()).unwrap_err().to_string()
}

#[test]
fn empty_overrides_change_nothing() {
    let table = apply("{}").unwrap();
    assert_eq!(table.version(), "builtin-2026-11-01");
    assert_eq!(table.len(), PriceTable::builtin().len());
}

#[test]
fn a_partial_override_replaces_only_the_given_fields() {
    let table = apply(r#"{"models": {"gpt-4o": {"input": "2.00", "output": 8}}}"#).unwrap();
    assert_eq!(table.version(), "builtin-2026-11-01+config");
    let (name, pricing) = table.resolve_pricing("gpt-4o-2024-08-06").unwrap();
    assert_eq!(name, "gpt-4o", "dated ids follow the overridden model");
    assert_eq!(
        pricing.standard,
        ModelPrice { input: 2_000_000, cached_input: 1_250_000, cache_write_5m: 2_500_000, cache_write_1h: 2_500_000, output: 8_000_000 }
    );
    assert_eq!(pricing.source, "config");
    assert_eq!(pricing.priority.as_ref().map(|p| p.input), Some(4_250_000), "tiers are kept");
    assert_eq!(pricing.web_search_per_call, Some(10_000_000_000));
    // An entry with its own name is not touched by an override of another.
    assert_eq!(table.resolve("gpt-4o-2024-05-13").unwrap().1.input, 5_000_000);
    assert_eq!(table.resolve("gpt-4o-mini").unwrap().1.input, 150_000);
}

#[test]
fn an_override_of_a_dated_id_inherits_and_leaves_the_family_alone() {
    let table = apply(r#"{"models": {"claude-sonnet-4-20250514": {"output": "14"}}}"#).unwrap();
    let (name, pricing) = table.resolve_pricing("claude-sonnet-4-20250514").unwrap();
    assert_eq!(name, "claude-sonnet-4-20250514");
    assert_eq!((pricing.standard.input, pricing.standard.output), (3_000_000, 14_000_000));
    assert_eq!(pricing.long_context.as_ref().unwrap().price.input, 6_000_000);
    assert_eq!(table.resolve("claude-sonnet-4").unwrap().1.output, 15_000_000);
}

#[test]
fn a_new_model_with_defaults() {
    let table = apply(r#"{"models": {"llama-3.1-70b": {"input": "0.075", "output": "0.30"}}}"#).unwrap();
    let (name, pricing) = table.resolve_pricing("openai/llama-3.1-70b").unwrap();
    assert_eq!(name, "llama-3.1-70b");
    assert_eq!(
        pricing.standard,
        ModelPrice { input: 75_000, cached_input: 75_000, cache_write_5m: 75_000, cache_write_1h: 75_000, output: 300_000 }
    );
    assert_eq!((pricing.web_search_per_call, pricing.priority.is_none(), pricing.long_context.is_none()), (None, true, true));
}

#[test]
fn a_full_new_model() {
    let json = r#"{"models": {"my-finetune": {
        "input": "0.30", "cached_input": "0.15", "output": 1.2,
        "cache_write_5m": "0.375", "cache_write_1h": "0.60",
        "long_context": {"above_input_tokens": 100000, "input": "0.60", "output": "2.40"},
        "priority": {"input": "0.50", "output": "2"},
        "flex": {"input": "0.15", "output": "0.60"},
        "web_search_per_1k_calls": "25", "web_fetch_per_1k_calls": 0
    }}}"#;
    let table = apply(json).unwrap();
    let pricing = table.resolve_pricing("my-finetune").unwrap().1;
    assert_eq!(
        pricing.standard,
        ModelPrice { input: 300_000, cached_input: 150_000, cache_write_5m: 375_000, cache_write_1h: 600_000, output: 1_200_000 }
    );
    let long = pricing.long_context.as_ref().unwrap();
    assert_eq!(long.above_input_tokens, 100_000);
    assert_eq!(
        long.price,
        ModelPrice { input: 600_000, cached_input: 600_000, cache_write_5m: 600_000, cache_write_1h: 600_000, output: 2_400_000 }
    );
    assert_eq!(pricing.priority.as_ref().map(|p| (p.input, p.output)), Some((500_000, 2_000_000)));
    assert_eq!(pricing.flex.as_ref().map(|p| (p.input, p.output)), Some((150_000, 600_000)));
    assert_eq!((pricing.web_search_per_call, pricing.web_fetch_per_call), (Some(25_000_000_000), Some(0)));

    let usage = NormalizedUsage { input_tokens: 100_001, output_tokens: 1, web_search_requests: 2, ..NormalizedUsage::default() };
    let q = table.quote("my-finetune", &usage, PricingContext::default()).unwrap().1;
    assert!(q.long_context);
    assert_eq!(q.cost, PicoUsd(100_001 * 600_000 + 2_400_000 + 2 * 25_000_000_000));
    let q = table.quote("my-finetune", &usage, PricingContext { service_tier: ServiceTier::Flex, batch: false }).unwrap().1;
    assert_eq!(q.cost, PicoUsd(100_001 * 150_000 + 600_000 + 2 * 25_000_000_000));
}

#[test]
fn numbers_and_strings_convert_exactly() {
    let table = apply(r#"{"models": {"m": {"input": 0.075, "output": "0.075", "cached_input": 1e-3, "cache_write_5m": 3}}}"#).unwrap();
    let p = table.resolve("m").unwrap().1.clone();
    assert_eq!((p.input, p.output, p.cached_input, p.cache_write_5m), (75_000, 75_000, 1_000, 3_000_000));
}

#[test]
fn aliases_take_the_targets_canonical_name() {
    let table = apply(
        r#"{"models": {"house-model": {"input": 1, "output": 2}},
            "aliases": {"prod-gpt4o": "gpt-4o-2024-08-06", "house": "house-model"}}"#,
    )
    .unwrap();
    let (name, price) = table.resolve("prod-gpt4o").unwrap();
    assert_eq!((name, price.input), ("gpt-4o", 2_500_000));
    assert_eq!(table.resolve("azure/prod-gpt4o").unwrap().0, "gpt-4o");
    assert_eq!(table.resolve("house").unwrap().0, "house-model");
}

#[test]
fn errors_name_the_field() {
    assert_eq!(
        error_text(r#"{"models": {"new-model": {"input": "1"}}}"#),
        "prices.models.new-model.output: required: the price table has no value to keep"
    );
    assert_eq!(
        error_text(r#"{"models": {"gpt-4o": {"input": "abc"}}}"#),
        r#"prices.models.gpt-4o.input: invalid price "abc": not a decimal number"#
    );
    assert_eq!(
        error_text(r#"{"models": {"gpt-4o": {"cached_input": -1}}}"#),
        r#"prices.models.gpt-4o.cached_input: invalid price "-1": negative prices are not allowed"#
    );
    assert_eq!(
        error_text(r#"{"models": {"x": {"input": 1, "output": 1, "long_context": {"input": 2, "output": 2}}}}"#),
        "prices.models.x.long_context.above_input_tokens: required: the price table has no value to keep"
    );
    assert_eq!(
        error_text(r#"{"models": {"gpt-5": {"priority": {"output": "1e30"}}}}"#),
        r#"prices.models.gpt-5.priority.output: invalid price "1e30": too large"#
    );
    assert_eq!(
        error_text(r#"{"models": {"gpt-4o-mini": {"flex": {"output": "1"}}}}"#),
        "prices.models.gpt-4o-mini.flex.input: required: the price table has no value to keep"
    );
    assert_eq!(
        error_text(r#"{"models": {"gpt-4o": {"web_search_per_1k_calls": "ten"}}}"#),
        r#"prices.models.gpt-4o.web_search_per_1k_calls: invalid price "ten": not a decimal number"#
    );
    assert_eq!(
        error_text(r#"{"aliases": {"prod": "gpt-9"}}"#),
        r#"prices.aliases.prod: alias target "gpt-9" is not a priced model"#
    );
    let err = apply(r#"{"models": {"gpt-4o": {"input": "x"}}}"#).map(|_| ()).unwrap_err();
    assert!(matches!(err, PricingError::InvalidPrice { reason: DecimalError::Syntax, .. }));
}

#[test]
fn unknown_keys_are_rejected_by_name() {
    for (json, key) in [
        (r#"{"model": {}}"#, "model"),
        (r#"{"models": {"m": {"inptu": 1}}}"#, "inptu"),
        (r#"{"models": {"m": {"priority": {"input": 1, "x": 1}}}}"#, "x"),
        (r#"{"models": {"m": {"long_context": {"threshold": 1}}}}"#, "threshold"),
    ] {
        let err = serde_json::from_str::<PriceOverrides>(json).unwrap_err().to_string();
        assert!(err.contains(&format!("unknown field `{key}`")), "{err}");
    }
    // A value of the wrong JSON type is reported with its field path, like a bad decimal.
    assert_eq!(
        error_text(r#"{"models": {"m": {"input": true, "output": 1}}}"#),
        r#"prices.models.m.input: invalid price "true": not a decimal number"#
    );
    assert_eq!(
        error_text(r#"{"models": {"gpt-4o": {"long_context": {"output": [1]}}}}"#),
        r#"prices.models.gpt-4o.long_context.above_input_tokens: required: the price table has no value to keep"#
    );
    assert_eq!(
        error_text(r#"{"models": {"gpt-4o": {"output": {"usd": 1}}}}"#),
        r#"prices.models.gpt-4o.output: invalid price "{...}": not a decimal number"#
    );
    // `null` is "not given".
    assert!(apply(r#"{"models": {"gpt-4o": {"input": null}}}"#).is_ok());
}
