//! Inputs the fuzzers (fuzz/, target `pricing`) found against price-table loading. Each test
//! feeds the minimised input through the public API and checks the invariant the target
//! asserted: every model a table lists (and every model the configuration names) resolves.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)] // tests

use tokenmeter::pricing::{PriceOverrides, PriceTable};

// A LiteLLM key with surrounding whitespace is imported as is, but `resolve` trims the id it
// looks up, so the entry is listed yet unreachable (found as "xublicai/allenai/Olmo-3-7B-Think ").
#[test]
fn litellm_entry_with_surrounding_whitespace_resolves_or_is_rejected() {
    let json = br#"{"my-model ": {"input_cost_per_token": 1e-06, "output_cost_per_token": 2e-06}}"#;
    let Ok(table) = PriceTable::import_litellm(json) else {
        return;
    };
    let names: Vec<String> = table.models().map(str::to_owned).collect();
    for name in &names {
        assert!(
            table.resolve(name).is_some(),
            "listed model {name:?} does not resolve"
        );
    }
}

// The same through the plugin configuration: an override for " my-model" is accepted at load
// and then never applies, so the operator's price is silently ignored.
#[test]
fn configured_price_with_surrounding_whitespace_applies_or_is_rejected() {
    let json = r#"{"models": {" my-model": {"input": "1", "output": "2"}}}"#;
    let overrides: PriceOverrides = serde_json::from_str(json).unwrap();
    if let Ok(table) = PriceTable::builtin().with_overrides(&overrides) {
        assert!(
            table.resolve(" my-model").is_some(),
            "configured model does not resolve"
        );
    }
}
