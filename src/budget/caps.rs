//! Output caps: clamp a request's max-output-tokens field, or add one, before it goes upstream.
//!
//! Capping output is the cheapest cost control there is, and it also bounds the reservation.
//! The field differs per API:
//!
//! | API                       | fields clamped                              | added when absent        |
//! |---------------------------|---------------------------------------------|--------------------------|
//! | OpenAI chat completions   | `max_completion_tokens`, `max_tokens`       | configurable, see below  |
//! | OpenAI completions        | `max_tokens`                                | `max_tokens`             |
//! | OpenAI responses          | `max_output_tokens`                         | `max_output_tokens`      |
//! | Anthropic messages        | `max_tokens`                                | `max_tokens`             |
//! | Gemini generateContent    | `generationConfig.maxOutputTokens` (or snake case) | `generationConfig.maxOutputTokens` |
//! | Bedrock Converse          | `inferenceConfig.maxTokens`                 | `inferenceConfig.maxTokens` |
//!
//! For chat completions OpenAI deprecated `max_tokens` and its reasoning models (o-series,
//! gpt-5) reject it, while older OpenAI-compatible servers only know `max_tokens`. Both are
//! clamped when present; when neither is, [`ChatField::MaxCompletionTokens`] is the right
//! choice for OpenAI and Azure, [`ChatField::MaxTokens`] for compatible servers that predate
//! it. A field that is `null` counts as absent; a field that is not a number is left alone
//! (the upstream rejects it as it would have anyway).
//!
//! The body is parsed with `serde_json` only when it is at most `max_rewrite_bytes`; larger
//! bodies and non-JSON bodies pass unchanged. Re-serialising sorts object keys (serde_json
//! without `preserve_order`); no supported API gives key order a meaning.

use super::BudgetError;
use serde_json::{Map, Value};

/// Which field a chat-completions request gets when it has none.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChatField {
    MaxCompletionTokens,
    MaxTokens,
}

/// The request dialect, which decides the field names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CapDialect {
    OpenAiChat(ChatField),
    OpenAiCompletions,
    OpenAiResponses,
    AnthropicMessages,
    Gemini,
    BedrockConverse,
}

/// Clamps the output-token fields of `body` to `cap`, adding the dialect's field when the
/// request has none. `Ok(None)` means the body already complies and is forwarded unchanged.
pub fn apply_output_cap(
    body: &[u8],
    dialect: CapDialect,
    cap: u64,
    max_rewrite_bytes: u64,
) -> Result<Option<Vec<u8>>, BudgetError> {
    if u64::try_from(body.len()).unwrap_or(u64::MAX) > max_rewrite_bytes {
        return Err(BudgetError::BodyTooLarge {
            limit: max_rewrite_bytes,
        });
    }
    let mut value: Value =
        serde_json::from_slice(body).map_err(|_| BudgetError::BodyNotJsonObject)?;
    let root = value
        .as_object_mut()
        .ok_or(BudgetError::BodyNotJsonObject)?;
    let changed = match dialect {
        CapDialect::OpenAiChat(add) => {
            let add = match add {
                ChatField::MaxCompletionTokens => "max_completion_tokens",
                ChatField::MaxTokens => "max_tokens",
            };
            clamp_fields(root, &["max_completion_tokens", "max_tokens"], add, cap)
        }
        CapDialect::OpenAiCompletions | CapDialect::AnthropicMessages => {
            clamp_fields(root, &["max_tokens"], "max_tokens", cap)
        }
        CapDialect::OpenAiResponses => {
            clamp_fields(root, &["max_output_tokens"], "max_output_tokens", cap)
        }
        CapDialect::Gemini => {
            // The REST API accepts both proto JSON spellings; clamp whichever the client used.
            let parent = if root.contains_key("generation_config")
                && !root.contains_key("generationConfig")
            {
                "generation_config"
            } else {
                "generationConfig"
            };
            nested(
                root,
                parent,
                &["maxOutputTokens", "max_output_tokens"],
                "maxOutputTokens",
                cap,
            )
        }
        CapDialect::BedrockConverse => {
            nested(root, "inferenceConfig", &["maxTokens"], "maxTokens", cap)
        }
    };
    if !changed {
        return Ok(None);
    }
    serde_json::to_vec(&value)
        .map(Some)
        .map_err(|_| BudgetError::BodyNotJsonObject)
}

fn nested(
    root: &mut Map<String, Value>,
    parent: &str,
    fields: &[&str],
    add: &str,
    cap: u64,
) -> bool {
    let entry = root
        .entry(parent.to_string())
        .or_insert_with(|| Value::Object(Map::new()));
    if entry.is_null() {
        *entry = Value::Object(Map::new());
    }
    match entry.as_object_mut() {
        Some(obj) => clamp_fields(obj, fields, add, cap),
        // Not an object: the upstream will reject the request anyway; leave it.
        None => false,
    }
}

/// Clamps every present numeric field; adds `add` when none is present. Returns whether
/// anything changed.
fn clamp_fields(obj: &mut Map<String, Value>, fields: &[&str], add: &str, cap: u64) -> bool {
    let mut present = false;
    let mut changed = false;
    for f in fields {
        match obj.get_mut(*f) {
            None | Some(Value::Null) => {}
            Some(v) => {
                present = true;
                let over = match v.as_u64() {
                    Some(n) => n > cap,
                    // Negative or fractional numbers: out of range for every API; clamp.
                    None => v.is_number(),
                };
                if over {
                    *v = Value::from(cap);
                    changed = true;
                }
            }
        }
    }
    if !present {
        obj.insert(add.to_string(), Value::from(cap));
        changed = true;
    }
    changed
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::indexing_slicing)]
mod tests {
    use super::*;

    fn run(body: &str, d: CapDialect, cap: u64) -> Option<Value> {
        apply_output_cap(body.as_bytes(), d, cap, 1 << 20)
            .unwrap()
            .map(|b| serde_json::from_slice(&b).unwrap())
    }

    #[test]
    fn openai_chat_clamps_both_fields_and_adds_configured_one() {
        let chat = CapDialect::OpenAiChat(ChatField::MaxCompletionTokens);
        let v = run(r#"{"model":"gpt-4o","max_tokens":9000}"#, chat, 500).unwrap();
        assert_eq!(v["max_tokens"], 500);
        assert!(v.get("max_completion_tokens").is_none());
        let v = run(r#"{"model":"o3","max_completion_tokens":9000}"#, chat, 500).unwrap();
        assert_eq!(v["max_completion_tokens"], 500);
        let v = run(r#"{"model":"o3","max_completion_tokens":null}"#, chat, 500).unwrap();
        assert_eq!(v["max_completion_tokens"], 500);
        let v = run(r#"{"model":"gpt-4o"}"#, chat, 500).unwrap();
        assert_eq!(v["max_completion_tokens"], 500);
        assert!(v.get("max_tokens").is_none());
        let v = run(
            r#"{"model":"llama"}"#,
            CapDialect::OpenAiChat(ChatField::MaxTokens),
            500,
        )
        .unwrap();
        assert_eq!(v["max_tokens"], 500);
    }

    #[test]
    fn within_cap_is_unchanged() {
        let chat = CapDialect::OpenAiChat(ChatField::MaxCompletionTokens);
        assert_eq!(run(r#"{"max_tokens":100}"#, chat, 500), None);
        assert_eq!(
            run(r#"{"max_tokens":500}"#, CapDialect::AnthropicMessages, 500),
            None
        );
        assert_eq!(
            run(
                r#"{"max_output_tokens":1}"#,
                CapDialect::OpenAiResponses,
                500
            ),
            None
        );
    }

    #[test]
    fn responses_anthropic_completions() {
        let v = run(r#"{"input":"hi"}"#, CapDialect::OpenAiResponses, 64).unwrap();
        assert_eq!(v["max_output_tokens"], 64);
        let v = run(
            r#"{"max_tokens":4096,"messages":[]}"#,
            CapDialect::AnthropicMessages,
            64,
        )
        .unwrap();
        assert_eq!(v["max_tokens"], 64);
        assert_eq!(v["messages"], serde_json::json!([]));
        let v = run(
            r#"{"prompt":"x","max_tokens":-1}"#,
            CapDialect::OpenAiCompletions,
            64,
        )
        .unwrap();
        assert_eq!(v["max_tokens"], 64);
    }

    #[test]
    fn gemini_nested_both_spellings() {
        let v = run(r#"{"contents":[]}"#, CapDialect::Gemini, 32).unwrap();
        assert_eq!(v["generationConfig"]["maxOutputTokens"], 32);
        let v = run(
            r#"{"generationConfig":{"temperature":0.5,"maxOutputTokens":8192}}"#,
            CapDialect::Gemini,
            32,
        )
        .unwrap();
        assert_eq!(v["generationConfig"]["maxOutputTokens"], 32);
        assert_eq!(v["generationConfig"]["temperature"], 0.5);
        let v = run(
            r#"{"generation_config":{"max_output_tokens":8192}}"#,
            CapDialect::Gemini,
            32,
        )
        .unwrap();
        assert_eq!(v["generation_config"]["max_output_tokens"], 32);
        assert!(v.get("generationConfig").is_none());
    }

    #[test]
    fn bedrock_converse() {
        let v = run(
            r#"{"messages":[],"inferenceConfig":{"maxTokens":2000}}"#,
            CapDialect::BedrockConverse,
            10,
        )
        .unwrap();
        assert_eq!(v["inferenceConfig"]["maxTokens"], 10);
    }

    #[test]
    fn oversized_and_non_json_bodies_are_refused() {
        let chat = CapDialect::OpenAiChat(ChatField::MaxCompletionTokens);
        assert_eq!(
            apply_output_cap(br#"{"max_tokens":9}"#, chat, 1, 4),
            Err(BudgetError::BodyTooLarge { limit: 4 })
        );
        assert_eq!(
            apply_output_cap(b"[1]", chat, 1, 100),
            Err(BudgetError::BodyNotJsonObject)
        );
        assert_eq!(
            apply_output_cap(b"{\"a\":", chat, 1, 100),
            Err(BudgetError::BodyNotJsonObject)
        );
    }
}
