//! Budget configuration and pulled limits documents: what is accepted, and that every rejection
//! names the offending field so an operator can fix it.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing, clippy::panic)]

use tokenmeter::budget::config::{parse_usd, MAX_LIMIT_USD};
use tokenmeter::budget::{
    BudgetConfig, BudgetError, LimitsDoc, MatchValue, Mode, StoreErrorPolicy, UnpricedPolicy, Window,
};
use tokenmeter::pricing::decimal::parse_scaled;
use tokenmeter::pricing::PicoUsd;

const FULL: &str = r#"{
  "default_max_output_tokens": 2048,
  "remaining_headers": true,
  "on_store_error": "reject",
  "unpriced": "reject",
  "bytes_per_token": 3,
  "cas_retries": 8,
  "limits_source": {"cluster": "billing", "path": "/limits", "interval_seconds": 10, "timeout_ms": 500},
  "budgets": [
    {"id": "acme-monthly", "match": {"customer": "acme"}, "limit_usd": "100.25", "window": "month"},
    {"id": "per-user-hourly", "match": {"user": "*", "feature": "search"}, "limit_tokens": 50000,
     "window": "hour", "mode": "soft", "output_cap": 512},
    {"id": "cap-only", "match": {"feature": "summarise"}, "output_cap": 256}
  ]
}"#;

fn err(json: &str) -> String {
    BudgetConfig::parse(json.as_bytes()).unwrap_err().to_string()
}

#[test]
fn full_config_parses() {
    let c = BudgetConfig::parse(FULL.as_bytes()).unwrap();
    assert_eq!(c.default_max_output_tokens, 2048);
    assert!(c.remaining_headers);
    assert_eq!(c.on_store_error, StoreErrorPolicy::Reject);
    assert_eq!(c.unpriced, UnpricedPolicy::Reject);
    assert_eq!(c.bytes_per_token, 3);
    assert_eq!(c.cas_retries, 8);
    let src = c.limits_source.as_ref().unwrap();
    assert_eq!((src.cluster.as_str(), src.path.as_str(), src.authority.as_str()), ("billing", "/limits", "billing"));
    assert_eq!((src.interval_seconds, src.timeout_ms), (10, 500));
    assert_eq!(c.budgets.len(), 3);
    let b = &c.budgets[0];
    assert_eq!(b.limit_usd, Some(PicoUsd(100_250_000_000_000)));
    assert_eq!(b.window, Some(Window::Month));
    assert_eq!(b.mode, Mode::Hard);
    let u = &c.budgets[1];
    // Sorted by dimension so that the state key does not depend on JSON key order.
    assert_eq!(
        u.matcher,
        vec![
            ("feature".to_string(), MatchValue::Exact("search".into())),
            ("user".to_string(), MatchValue::Each)
        ]
    );
    assert_eq!((u.limit_tokens, u.mode, u.output_cap), (Some(50_000), Mode::Soft, Some(512)));
    assert!(!c.budgets[2].has_limit());
    c.validate_dimensions(&[]).unwrap();
}

#[test]
fn empty_section_gets_defaults() {
    let c = BudgetConfig::parse(b"{}").unwrap();
    assert_eq!(c, BudgetConfig::default());
    assert_eq!(c.default_max_output_tokens, 4096);
    assert_eq!(c.on_store_error, StoreErrorPolicy::Allow);
}

#[test]
fn usd_is_parsed_exactly_without_floats() {
    let usd = |text: &str| parse_usd(&serde_json::Value::String(text.into()), "f").map(|p| p.0).ok();
    assert_eq!(usd("0.000000000001"), Some(1));
    assert_eq!(usd("0.1"), Some(100_000_000_000));
    assert_eq!(usd(".5"), Some(500_000_000_000));
    assert_eq!(usd(" 12.50 "), Some(12_500_000_000_000));
    assert_eq!(usd("18446744"), Some(18_446_744_000_000_000_000));
    assert_eq!(usd("18446745"), None, "above the maximum");
    assert_eq!(usd("0.0000000000001"), None, "13 decimals");
    for bad in ["", ".", "-1", "1,5", "1.2.3", "1 0", "NaN", "0x10"] {
        assert_eq!(usd(bad), None, "{bad:?}");
    }
    // JSON numbers: 0.1 + 0.2 style float noise must not leak into limits.
    let v: serde_json::Value = serde_json::from_str("[0.1, 12.34, 100, 0.000001, 2.5e3]").unwrap();
    let got: Vec<u64> = v.as_array().unwrap().iter().map(|x| parse_usd(x, "f").unwrap().0).collect();
    assert_eq!(got, vec![100_000_000_000, 12_340_000_000_000, 100_000_000_000_000, 1_000_000, 2_500_000_000_000_000]);
}

#[test]
fn limits_and_prices_read_one_decimal_grammar() {
    // A limit is read by the price parser: every spelling a price accepts (sign, exponent,
    // trailing point) means the same amount here, and what it rejects is rejected here too.
    for (text, pico) in [("+5", 5_000_000_000_000), ("2.5e3", 2_500_000_000_000_000), ("7.", 7_000_000_000_000), ("1E-12", 1)] {
        let value = serde_json::Value::String(text.into());
        assert_eq!(parse_usd(&value, "f"), Ok(PicoUsd(pico)), "{text}");
        assert_eq!(parse_scaled(text, 12), Ok(pico), "{text}");
    }
    for text in ["1e", "--1", "1.2.3", "five"] {
        assert!(parse_usd(&serde_json::Value::String(text.into()), "f").is_err(), "{text}");
        assert!(parse_scaled(text, 12).is_err(), "{text}");
    }
}

#[test]
fn limits_above_the_maximum_are_rejected_naming_it() {
    let max = format!("at most {MAX_LIMIT_USD} USD");
    let config = |limit: &str| {
        BudgetConfig::parse(format!(r#"{{"budgets":[{{"id":"a","limit_usd":{limit},"window":"day"}}]}}"#).as_bytes())
    };
    let c = config(r#""18446744""#).unwrap();
    assert_eq!(c.budgets[0].limit_usd, Some(PicoUsd(18_446_744_000_000_000_000)));
    assert_eq!(c.budgets[0].limit_usd.unwrap().to_usd_string(), "18446744.000000000");
    assert_eq!(config("18446744").unwrap(), c, "a JSON integer reads the same");
    // Still below u64::MAX pico-USD, but above the documented bound; then past u64 itself,
    // as a string, an integer and a float.
    for limit in [r#""18446744.000000000001""#, r#""18446744.07""#, r#""18446745""#, "18446745", "1e8", "20000000.5"] {
        let e = config(limit).unwrap_err().to_string();
        assert!(e.starts_with("budget.budgets[0].limit_usd: expected"), "{limit}: {e}");
        assert!(e.ends_with(&max), "{limit}: {e}");
    }
    // The pulled limits document reads limits the same way.
    let e = LimitsDoc::parse(br#"{"budgets":[{"id":"a","limit_usd":"18446744.5","window":"day"}]}"#)
        .unwrap_err()
        .to_string();
    assert!(e.starts_with("budgets[0].limit_usd: expected") && e.ends_with(&max), "{e}");
}

#[test]
fn errors_name_the_field() {
    let cases: &[(&str, &str)] = &[
        (r#"{"budgets":[{"id":"a","limit_usd":"1","window":"week"}]}"#, "budget.budgets[0].window"),
        (r#"{"budgets":[{"id":"a","limt_usd":"1","window":"day"}]}"#, "budget.budgets[0].limt_usd: unknown field"),
        (r#"{"budgets":[{"id":"a","limit_usd":"1.0000000000001","window":"day"}]}"#, "budget.budgets[0].limit_usd"),
        (r#"{"budgets":[{"id":"a","limit_usd":-3,"window":"day"}]}"#, "budget.budgets[0].limit_usd"),
        (r#"{"budgets":[{"id":"a","limit_tokens":"many","window":"day"}]}"#, "budget.budgets[0].limit_tokens"),
        (r#"{"budgets":[{"id":"a","limit_tokens":5}]}"#, "budget.budgets[0].window: required"),
        (r#"{"budgets":[{"id":"a","window":"day"}]}"#, "budget.budgets[0].limit_usd, limit_tokens or output_cap: required"),
        (r#"{"budgets":[{"limit_tokens":5,"window":"day"}]}"#, "budget.budgets[0].id: required"),
        (r#"{"budgets":[{"id":"a b","limit_tokens":5,"window":"day"}]}"#, "budget.budgets[0].id"),
        (r#"{"budgets":[{"id":"a","limit_tokens":5,"window":"day","mode":"strict"}]}"#, "budget.budgets[0].mode"),
        (r#"{"budgets":[{"id":"a","limit_tokens":5,"window":"day","match":{"user":7}}]}"#, "budget.budgets[0].match.user"),
        (r#"{"budgets":[{"id":"a","limit_tokens":5,"window":"day","output_cap":0}]}"#, "budget.budgets[0].output_cap"),
        (
            r#"{"budgets":[{"id":"a","limit_tokens":5,"window":"day"},{"id":"a","limit_tokens":6,"window":"day"}]}"#,
            "budget.budgets[1].id: duplicate budget id `a`",
        ),
        (r#"{"budgets":{}}"#, "budget.budgets"),
        (r#"{"remaining_headers":"yes"}"#, "budget.remaining_headers"),
        (r#"{"on_store_error":"panic"}"#, "budget.on_store_error"),
        (r#"{"unpriced":"free"}"#, "budget.unpriced"),
        (r#"{"default_max_output_tokens":0}"#, "budget.default_max_output_tokens"),
        (r#"{"cas_retries":100000}"#, "budget.cas_retries"),
        (r#"{"limits_source":{"path":"/x"}}"#, "budget.limits_source.cluster: required"),
        (r#"{"limits_source":{"cluster":"c","path":"x"}}"#, "budget.limits_source.path"),
        (r#"{"limits_source":{"cluster":"c","interval":5}}"#, "budget.limits_source.interval: unknown field"),
        (r#"{"limits_source":{"cluster":"c","interval_seconds":0}}"#, "budget.limits_source.interval_seconds"),
        (r#"{"budget":[]}"#, "budget.budget: unknown field"),
        (r#"[]"#, "budget: expected an object"),
    ];
    for (json, want) in cases {
        let e = err(json);
        assert!(e.starts_with(want), "{json}\n  got:  {e}\n  want: {want}...");
    }
}

#[test]
fn unknown_dimension_is_named() {
    let c = BudgetConfig::parse(br#"{"budgets":[{"id":"a","match":{"team":"*"},"limit_tokens":5,"window":"day"}]}"#)
        .unwrap();
    let e = c.validate_dimensions(&[]).unwrap_err().to_string();
    assert!(e.starts_with("budget.budgets[0].match.team"), "{e}");
    c.validate_dimensions(&["team"]).unwrap();
}

#[test]
fn config_embeds_through_serde_with_the_field_path() {
    #[derive(serde::Deserialize, Debug)]
    #[serde(deny_unknown_fields)]
    struct Plugin {
        #[serde(default)]
        #[allow(dead_code)]
        budget: Option<BudgetConfig>,
    }
    let ok: Plugin = serde_json::from_str(&format!(r#"{{"budget":{FULL}}}"#)).unwrap();
    assert_eq!(ok.budget.unwrap().budgets.len(), 3);
    let e = serde_json::from_str::<Plugin>(r#"{"budget":{"budgets":[{"id":"a","limit_usd":"x","window":"day"}]}}"#)
        .unwrap_err()
        .to_string();
    assert!(e.contains("budget.budgets[0].limit_usd"), "{e}");
}

const DOC: &str = r#"{
  "version": "2026-11-27T08:00:00Z",
  "budgets": [
    {"id": "acme-monthly", "match": {"customer": "acme"}, "limit_usd": 250, "window": "month", "mode": "hard"},
    {"id": "globex-daily", "match": {"customer": "globex"}, "limit_usd": "5.5", "limit_tokens": 1000000, "window": "day", "mode": "soft"}
  ]
}"#;

#[test]
fn limits_document_parses_and_overrides_by_id() {
    let doc = LimitsDoc::parse(DOC.as_bytes()).unwrap();
    assert_eq!(doc.version.as_deref(), Some("2026-11-27T08:00:00Z"));
    assert_eq!(doc.budgets[0].limit_usd, Some(PicoUsd(250_000_000_000_000)));
    assert_eq!(doc.budgets[1].limit_usd, Some(PicoUsd(5_500_000_000_000)));
    let config = BudgetConfig::parse(FULL.as_bytes()).unwrap();
    let merged = doc.merge_into(&config.budgets);
    let ids: Vec<&str> = merged.iter().map(|b| b.id.as_str()).collect();
    assert_eq!(ids, vec!["acme-monthly", "per-user-hourly", "cap-only", "globex-daily"]);
    assert_eq!(merged[0].limit_usd, Some(PicoUsd(250_000_000_000_000)), "pulled limit wins");
    assert_eq!(merged[1], config.budgets[1], "configured budget not in the doc stays");
}

#[test]
fn limits_document_errors_name_the_field() {
    let cases: &[(&str, &str)] = &[
        (r#"{"version":"1"}"#, "budgets: required"),
        (r#"{"budgets":[{"id":"a","limit_usd":"ten","window":"day"}]}"#, "budgets[0].limit_usd"),
        (r#"{"budgets":[{"id":"a","limit_usd":"1","window":"day"},{"id":"b","limit_usd":"1","window":"year"}]}"#, "budgets[1].window"),
        (r#"{"budgets":[],"plan":"gold"}"#, "plan: unknown field"),
        (r#"{"budgets":[], "version": []}"#, "version"),
        (r#"{"budgets":["#, "limits document: not valid JSON"),
        (r#""budgets""#, "limits document: expected an object"),
    ];
    for (json, want) in cases {
        let e = LimitsDoc::parse(json.as_bytes()).unwrap_err();
        let s = e.to_string();
        assert!(s.starts_with(want), "{json}\n  got:  {s}\n  want: {want}...");
        assert!(!matches!(e, BudgetError::Store { .. }));
    }
}
