//! Price inputs: LiteLLM import (`PriceTable::import_litellm`), configured overrides
//! (`PriceOverrides` applied with `PriceTable::with_overrides`) and decimal amounts
//! (`budget::config::parse_usd`, `PicoUsd::to_usd_string`).
//!
//! The selector picks the input kind. Checks:
//! - LiteLLM / overrides: never panic; every model an accepted table lists resolves in it;
//!   quoting every model with huge token counts never panics (overflow checks are on);
//! - amounts: parsing never panics; a formatted amount parses back to itself rounded to the
//!   nano-dollar; a 12-place decimal written from the input parses to that exact value; and
//!   any text the budget amount parser accepts, used as a configured price, is accepted by
//!   the price parser with the same value (scaled to per-token, rounded half up).
#![no_main]

use libfuzzer_sys::fuzz_target;
use tokenmeter::budget::config::parse_usd;
use tokenmeter::pricing::{PicoUsd, PriceOverrides, PriceTable, PricingContext};
use tokenmeter::usage::NormalizedUsage;

/// A budget amount as `limit_usd` holds it (a JSON string).
fn budget_amount(text: &str) -> Option<PicoUsd> {
    parse_usd(&serde_json::Value::String(text.to_owned()), "limit_usd").ok()
}

fn usage(seed: u64) -> NormalizedUsage {
    NormalizedUsage {
        input_tokens: seed,
        output_tokens: seed.rotate_left(7),
        cache_read_tokens: seed / 3,
        cache_creation_tokens: seed / 5,
        cache_creation_5m_tokens: seed / 7,
        cache_creation_1h_tokens: seed / 11,
        reasoning_tokens: seed / 2,
        web_search_requests: seed % 1000,
        web_fetch_requests: seed % 77,
    }
}

/// `to_usd_string` rounds half up to the nano-dollar.
fn rounded_nanos(p: PicoUsd) -> u64 {
    p.0 / 1000 + u64::from(p.0 % 1000 >= 500)
}

fn quote_all(table: &PriceTable) {
    let models: Vec<String> = table.models().map(str::to_owned).collect();
    assert_eq!(models.len(), table.len());
    for model in &models {
        assert!(
            table.resolve(model).is_some(),
            "listed model {model:?} does not resolve"
        );
        for seed in [0, 1_000_000, u64::MAX] {
            for batch in [false, true] {
                let context = PricingContext {
                    batch,
                    ..PricingContext::default()
                };
                assert!(table.quote(model, &usage(seed), context).is_some());
            }
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&selector, body)) = data.split_first() else {
        return;
    };
    match selector % 3 {
        0 => {
            if let Ok(table) = PriceTable::import_litellm(body) {
                quote_all(&table);
                let mut merged = PriceTable::builtin();
                merged.merge(table);
                quote_all(&merged);
            }
        }
        1 => {
            if let Ok(overrides) = serde_json::from_slice::<PriceOverrides>(body) {
                if let Ok(table) = PriceTable::builtin().with_overrides(&overrides) {
                    let models = overrides.models.iter().map(|(name, _)| name);
                    for name in models.chain(overrides.aliases.iter().map(|(alias, _)| alias)) {
                        assert!(
                            table.resolve(name).is_some(),
                            "configured {name:?} does not resolve"
                        );
                    }
                    quote_all(&table);
                }
            }
        }
        _ => {
            // Two decimal readers must agree: the budget amount parser (exact pico-USD) and
            // the price parser behind `prices.models.*.input` (USD per 1M tokens, scale 6).
            let Ok(text) = std::str::from_utf8(body) else {
                return;
            };
            if let Some(pico) = budget_amount(text) {
                assert_eq!(
                    budget_amount(&pico.to_usd_string()).map(|p| p.0 / 1000),
                    Some(rounded_nanos(pico))
                );
                let expected = pico.0 / 1_000_000 + u64::from(pico.0 % 1_000_000 >= 500_000);
                // Built as a value: accepted amounts may hold whitespace that JSON text must escape.
                let json = serde_json::json!({"models": {"fuzz-model": {"input": text, "output": "1"}}});
                let overrides: PriceOverrides = serde_json::from_value(json).expect("override JSON");
                match PriceTable::builtin().with_overrides(&overrides) {
                    Ok(table) => {
                        let (_, price) = table.resolve("fuzz-model").expect("override resolves");
                        assert_eq!(price.input, expected, "price parser disagrees on {text:?}");
                    }
                    Err(e) => {
                        panic!("price parser rejected {text:?} that the amount parser read: {e}")
                    }
                }
            }
            let mut raw = [0u8; 8];
            for (dst, src) in raw.iter_mut().zip(body) {
                *dst = *src;
            }
            let pico = PicoUsd(u64::from_le_bytes(raw) % 18_446_744_000_000_000_000);
            let exact = format!(
                "{}.{:012}",
                pico.0 / 1_000_000_000_000,
                pico.0 % 1_000_000_000_000
            );
            assert_eq!(budget_amount(&exact), Some(pico), "{exact} misread");
            let text = pico.to_usd_string();
            assert_eq!(
                budget_amount(&text).map(|p| p.0 / 1000),
                Some(rounded_nanos(pico)),
                "{text}"
            );
        }
    }
});
