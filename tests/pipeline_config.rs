//! The configuration documentation is checked against the code: its example must load, the
//! defaults it states must be the defaults, and its `stats_tags` must be the ones telemetry
//! needs. A doc that drifts from the code fails here.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing)]

use tokenmeter::config::{Config, ConfigError};
use tokenmeter::telemetry::{stats_tags_yaml, STATS_TAGS};

const DOC: &str = include_str!("../docs/configuration.md");

/// The bodies of the fenced blocks of a language in the doc.
fn blocks(lang: &str) -> Vec<String> {
    let fence = format!("```{lang}\n");
    DOC.split(fence.as_str()).skip(1).map(|rest| rest.split("```").next().unwrap().to_string()).collect()
}

#[test]
fn the_documented_example_loads_and_means_what_it_says() {
    let examples = blocks("json");
    assert_eq!(examples.len(), 1);
    let c = Config::from_json(examples[0].as_bytes()).unwrap();
    assert_eq!(c.azure_deployments.get("prod-gpt4o").map(String::as_str), Some("gpt-4o"));
    assert_eq!(c.routes.len(), 2);
    assert_eq!(c.routes[1].authority.as_deref(), Some("gateway.internal"));
}

#[test]
fn the_documented_defaults_are_the_defaults() {
    let example = Config::from_json(blocks("json")[0].as_bytes()).unwrap();
    let defaults = Config::from_json(b"{}").unwrap();
    // The example spells out every default for the scalar fields.
    assert_eq!(example.attribution, defaults.attribution);
    assert_eq!(example.max_decompressed_bytes, defaults.max_decompressed_bytes);
    assert_eq!(example.strip_accept_encoding, defaults.strip_accept_encoding);
    assert_eq!(example.metrics, defaults.metrics);
    for stated in [
        "| `feature_header` | `x-llm-feature` |",
        "| `customer_header` | `x-llm-customer` |",
        "| `user_header` | `x-llm-user` |",
        "| `default_value` | `unknown` |",
        "| `max_label_values` | `100` |",
        &format!("Default: `{}` (16 MiB).", defaults.max_decompressed_bytes),
    ] {
        assert!(DOC.contains(stated), "doc lacks {stated}");
    }
}

#[test]
fn the_documented_error_messages_are_real() {
    let e = Config::from_json(br#"{"attribution": {"customer_header": 5}}"#).unwrap_err();
    assert!(DOC.contains(&e.to_string()), "{e}");
    let e = Config::from_json(br#"{"routes": [{"path_prefix": "/", "api": "openai.responses"}, {"path_prefix": "/", "api": "openai.chat"}]}"#)
        .unwrap_err();
    let shown = e.to_string();
    let prefix = shown.split("openai.chat_completions").next().unwrap();
    assert!(DOC.contains(prefix), "{shown}");
    let e = Config::from_json(br#"{"atribution": {}}"#).unwrap_err();
    let shown = e.to_string();
    assert!(matches!(e, ConfigError::Field { .. }));
    assert!(DOC.contains(shown.split("`prices`").next().unwrap()), "{shown}");
}

#[test]
fn the_documented_stats_tags_are_the_ones_telemetry_embeds() {
    let yaml = &blocks("yaml")[0];
    let mut documented = Vec::new();
    let mut lines = yaml.lines().map(str::trim);
    while let Some(line) = lines.next() {
        if let Some(name) = line.strip_prefix("- tag_name: ") {
            let regex = lines.next().unwrap().strip_prefix("regex: ").unwrap();
            // YAML double-quoted: `\\` is one backslash.
            let regex = regex.trim_matches('"').replace("\\\\", "\\");
            documented.push((name.to_string(), regex));
        }
    }
    let expected: Vec<(String, String)> = STATS_TAGS.iter().map(|(n, r)| (n.to_string(), r.to_string())).collect();
    assert_eq!(documented, expected);
    assert!(yaml.contains(&stats_tags_yaml("  ")), "the doc block is what stats_tags_yaml renders");
}
