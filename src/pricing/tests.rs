//! Unit tests of the table mechanics; the price list itself is asserted in
//! `tests/pricing_builtin.rs`. These also run on wasm32.

use super::*;

fn usage(input: u64, output: u64) -> NormalizedUsage {
    NormalizedUsage { input_tokens: input, output_tokens: output, ..NormalizedUsage::default() }
}

#[test]
fn usd_string_rounds_half_up_to_the_nano_dollar() {
    assert_eq!(PicoUsd(0).to_usd_string(), "0.000000000");
    assert_eq!(PicoUsd(435_000_000).to_usd_string(), "0.000435000");
    assert_eq!(PicoUsd(499).to_usd_string(), "0.000000000");
    assert_eq!(PicoUsd(500).to_usd_string(), "0.000000001");
    assert_eq!(PicoUsd(1_499).to_usd_string(), "0.000000001");
    assert_eq!(PicoUsd(1_500).to_usd_string(), "0.000000002");
    assert_eq!(PicoUsd(12_345_678_900_000).to_usd_string(), "12.345678900");
    assert_eq!(PicoUsd(999_999_999_999).to_usd_string(), "1.000000000");
    assert_eq!(PicoUsd(u64::MAX).to_usd_string(), "18446744.073709552");
}

#[test]
fn flex_halves_rounding_half_up() {
    let p = ModelPrice { input: 3, cached_input: 2, cache_write_5m: 1, cache_write_1h: 0, output: 5 };
    assert_eq!(p.halved(), ModelPrice { input: 2, cached_input: 1, cache_write_5m: 1, cache_write_1h: 0, output: 3 });
}

#[test]
fn merge_replaces_same_names_and_keeps_the_rest_sorted() {
    let mut a = PriceTable::empty();
    a.insert(Cow::Borrowed("b"), ModelPricing::from_price(ModelPrice { input: 1, ..ModelPrice::default() }));
    a.insert(Cow::Borrowed("d"), ModelPricing::from_price(ModelPrice { input: 2, ..ModelPrice::default() }));
    let mut b = PriceTable::empty();
    b.insert(Cow::Borrowed("a"), ModelPricing::from_price(ModelPrice { input: 3, ..ModelPrice::default() }));
    b.insert(Cow::Borrowed("d"), ModelPricing::from_price(ModelPrice { input: 4, ..ModelPrice::default() }));
    b.insert(Cow::Borrowed("e"), ModelPricing::from_price(ModelPrice { input: 5, ..ModelPrice::default() }));
    b.version = Cow::Borrowed("x");
    a.merge(b);
    assert_eq!(a.models().collect::<Vec<_>>(), ["a", "b", "d", "e"]);
    assert_eq!(a.resolve("d").map(|(_, p)| p.input), Some(4));
    assert_eq!(a.version(), "x");
}

#[test]
fn batch_halves_tokens_but_not_tool_fees() {
    let pricing = ModelPricing {
        web_search_per_call: Some(10),
        ..ModelPricing::from_price(ModelPrice { input: 3, output: 0, ..ModelPrice::default() })
    };
    let u = NormalizedUsage { web_search_requests: 2, ..usage(1, 0) };
    let q = pricing.quote(&u, PricingContext { service_tier: ServiceTier::Flex, batch: true });
    // 1 token x 3 pico = 3, halved half-up = 2, plus 2 x 10 fee.
    assert_eq!(q.cost, PicoUsd(22));
    assert_eq!(q.service_tier, ServiceTier::Standard);
    assert!(q.batch);
}

#[test]
fn unknown_tool_fee_adds_nothing() {
    let pricing = ModelPricing::from_price(ModelPrice { input: 3, ..ModelPrice::default() });
    let u = NormalizedUsage { web_search_requests: 5, web_fetch_requests: 5, ..usage(2, 0) };
    assert_eq!(pricing.quote(&u, PricingContext::default()).cost, PicoUsd(6));
}

#[test]
fn service_tier_names() {
    assert_eq!(ServiceTier::from_name("flex"), ServiceTier::Flex);
    assert_eq!(ServiceTier::from_name("priority"), ServiceTier::Priority);
    for name in ["default", "auto", "scale", "standard", "", "FLEX?"] {
        assert_eq!(ServiceTier::from_name(name), ServiceTier::Standard, "{name}");
    }
    assert_eq!(ServiceTier::Flex.as_str(), "flex");
}

#[test]
fn costs_saturate() {
    let p = ModelPrice { input: u64::MAX, output: u64::MAX, ..ModelPrice::default() };
    assert_eq!(cost(&p, &usage(u64::MAX, u64::MAX)), PicoUsd(u64::MAX));
}

#[test]
fn merged_aliases_prefer_the_incoming_table() {
    let priced = |input| ModelPricing::from_price(ModelPrice { input, ..ModelPrice::default() });
    let mut a = PriceTable::empty();
    a.insert(Cow::Borrowed("m1"), priced(1));
    a.insert(Cow::Borrowed("m2"), priced(2));
    a.insert_alias(Cow::Borrowed("x"), Cow::Borrowed("m1"));
    a.insert_alias(Cow::Borrowed("y"), Cow::Borrowed("m1"));
    let mut b = PriceTable::empty();
    b.insert_alias(Cow::Borrowed("x"), Cow::Borrowed("m2"));
    a.merge(b);
    assert_eq!(a.resolve("x").map(|(n, p)| (n, p.input)), Some(("m2", 2)));
    assert_eq!(a.resolve("y").map(|(n, _)| n), Some("m1"));
    // An alias whose target is gone resolves to nothing rather than to something else.
    a.insert_alias(Cow::Borrowed("z"), Cow::Borrowed("gone"));
    assert!(a.resolve("z").is_none());
}

#[test]
fn builtin_aliases_point_at_builtin_models() {
    let table = PriceTable::builtin();
    for (alias, target) in builtin::ALIASES {
        assert_eq!(table.resolve(alias).map(|(n, _)| n), Some(*target));
    }
}

#[test]
fn reported_service_tiers_map_to_contexts() {
    let ctx = |tier, batch| PricingContext { service_tier: tier, batch };
    assert_eq!(PricingContext::from_reported(None), ctx(ServiceTier::Standard, false));
    assert_eq!(PricingContext::from_reported(Some("default")), ctx(ServiceTier::Standard, false));
    assert_eq!(PricingContext::from_reported(Some("flex")), ctx(ServiceTier::Flex, false));
    assert_eq!(PricingContext::from_reported(Some("priority")), ctx(ServiceTier::Priority, false));
    assert_eq!(PricingContext::from_reported(Some("batch")), ctx(ServiceTier::Standard, true));
    assert_eq!(PricingContext::from_reported(Some("standard")), ctx(ServiceTier::Standard, false));
}

mod properties {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        /// The 9-place text reads back (exactly, in pico) as the pico amount rounded half up
        /// to the nano-dollar.
        #[test]
        fn usd_string_reads_back_as_the_rounded_amount(p in any::<u64>()) {
            let text = PicoUsd(p).to_usd_string();
            let nanos = u128::from(p / 1000) + u128::from(p % 1000 >= 500);
            // Only the last few nano-dollars below u64::MAX round past what a u64 holds.
            let expected = u64::try_from(nanos * 1000).map_err(|_| DecimalError::TooLarge);
            prop_assert_eq!(decimal::parse_scaled(&text, 12), expected);
        }

        /// Pricing is linear in each counter: two requests cost what their sum costs.
        #[test]
        fn cost_is_additive(
            // Up to 2^30 tokens per counter keeps every sum below u64::MAX, so saturation,
            // which is not additive, never engages.
            a in (0u64..1 << 30, 0u64..1 << 30, 0u64..1 << 30),
            b in (0u64..1 << 30, 0u64..1 << 30, 0u64..1 << 30),
        ) {
            let table = PriceTable::builtin();
            let price = table.resolve("claude-sonnet-4").unwrap().1;
            let u = |(input, read, output): (u64, u64, u64)| NormalizedUsage {
                input_tokens: input + read,
                cache_read_tokens: read,
                output_tokens: output,
                ..NormalizedUsage::default()
            };
            let sum = u((a.0 + b.0, a.1 + b.1, a.2 + b.2));
            prop_assert_eq!(cost(price, &sum).0, cost(price, &u(a)).0 + cost(price, &u(b)).0);
        }
    }
}

#[test]
fn sort_by_name_is_a_stable_sort() {
    // Every length up to 40 (odd and even run splits), with many equal names, against std.
    for len in 0..40u32 {
        let items: Vec<(String, u32)> = (0..len).map(|i| (format!("m{}", (i * 7 + 3) % 5), i)).collect();
        let mut ours = items.clone();
        sort_by_name(&mut ours, |item| &item.0);
        let mut std_sorted = items;
        std_sorted.sort_by(|a, b| a.0.cmp(&b.0));
        assert_eq!(ours, std_sorted, "len {len}");
    }
}
