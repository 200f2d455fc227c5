//! What a budget decided, and how that is told to the client and the access log.
//!
//! A rejection must look like the provider's own rate-limit error, so that the caller's SDK
//! raises its usual exception (`openai.RateLimitError`, `anthropic.RateLimitError`, ...) and
//! its retry logic reads `Retry-After`. The OpenAI and Anthropic SDKs retry a 429 on their own
//! unless told otherwise, and ignore a `Retry-After` above 60 s in favour of short backoff; for
//! a budget that resets in hours that is pointless traffic, so such rejections also carry
//! `x-should-retry: false`, which both SDKs obey.

use super::window::format_utc;
use crate::pricing::PicoUsd;

/// Response headers carrying the deciding budget (on 429s, and on allowed responses when
/// `remaining_headers` is on).
pub const HEADER_BUDGET_ID: &str = "x-tokenmeter-budget-id";
/// Remaining USD of the deciding budget after this request's reservation, 9 decimals.
pub const HEADER_REMAINING_USD: &str = "x-tokenmeter-budget-remaining-usd";
/// Remaining tokens of the deciding budget after this request's reservation.
pub const HEADER_REMAINING_TOKENS: &str = "x-tokenmeter-budget-remaining-tokens";
/// Unix epoch seconds at which the deciding budget's window resets.
pub const HEADER_RESET: &str = "x-tokenmeter-budget-reset";

/// Filter state keys (the output contract; the pipeline may re-export them from `telemetry`).
pub const STATE_BUDGET_ID: &str = "llm.budget.id";
pub const STATE_BUDGET_DECISION: &str = "llm.budget.decision";
pub const STATE_BUDGET_REMAINING_USD: &str = "llm.budget.remaining_usd";

/// `llm.budget.decision`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Outcome {
    Allowed,
    Rejected,
    SoftExceeded,
}

impl Outcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Allowed => "allowed",
            Outcome::Rejected => "rejected",
            Outcome::SoftExceeded => "soft_exceeded",
        }
    }
}

/// Why a request was rejected.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RejectReason {
    /// The reservation would pass a hard limit, and what is already spent leaves no room.
    Limit,
    /// The reservation would pass a hard limit only because of reservations of requests in
    /// flight; `Retry-After` is a few seconds, not the window's reset.
    Reserved,
    /// `unpriced: reject` and the model has no price.
    Unpriced,
    /// Shared data failed and `on_store_error: reject`.
    StoreError,
}

/// The budget decision for one request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decision {
    pub outcome: Outcome,
    pub reason: Option<RejectReason>,
    /// The rejecting budget; else the first soft-exceeded one; else the most utilised one.
    /// `None` when no budget with a limit matched.
    pub budget_id: Option<String>,
    /// Of the deciding budget, after this request's reservation (before it, when rejected).
    pub remaining_usd: Option<PicoUsd>,
    pub remaining_tokens: Option<u64>,
    pub reset_unix_secs: Option<u64>,
    pub retry_after_secs: Option<u64>,
    /// Some budget could not be read or written; `on_store_error` decided.
    pub store_error: bool,
}

impl Decision {
    /// No budget applied.
    pub fn allowed() -> Self {
        Self {
            outcome: Outcome::Allowed,
            reason: None,
            budget_id: None,
            remaining_usd: None,
            remaining_tokens: None,
            reset_unix_secs: None,
            retry_after_secs: None,
            store_error: false,
        }
    }

    /// Filter state entries: `llm.budget.id`, `llm.budget.decision`,
    /// `llm.budget.remaining_usd` (empty when the budget has no USD limit). Empty when no
    /// budget applied, so the access log shows `-`.
    pub fn filter_state(&self) -> Vec<(&'static str, String)> {
        let Some(id) = &self.budget_id else {
            return Vec::new();
        };
        vec![
            (STATE_BUDGET_ID, id.clone()),
            (STATE_BUDGET_DECISION, self.outcome.as_str().to_string()),
            (
                STATE_BUDGET_REMAINING_USD,
                self.remaining_usd
                    .map(PicoUsd::to_usd_string)
                    .unwrap_or_default(),
            ),
        ]
    }

    /// The remaining-budget headers (without `retry-after`).
    pub fn headers(&self) -> Vec<(&'static str, String)> {
        let mut out = Vec::new();
        if let Some(id) = &self.budget_id {
            out.push((HEADER_BUDGET_ID, id.clone()));
        }
        if let Some(usd) = self.remaining_usd {
            out.push((HEADER_REMAINING_USD, usd.to_usd_string()));
        }
        if let Some(t) = self.remaining_tokens {
            out.push((HEADER_REMAINING_TOKENS, t.to_string()));
        }
        if let Some(r) = self.reset_unix_secs {
            out.push((HEADER_RESET, r.to_string()));
        }
        out
    }

    fn message(&self) -> String {
        let id = self.budget_id.as_deref().unwrap_or("");
        let mut m = match self.reason {
            Some(RejectReason::Unpriced) => {
                format!("Budget '{id}' rejects requests for models without a price.")
            }
            Some(RejectReason::StoreError) => {
                format!("Budget '{id}' could not be checked; retry shortly.")
            }
            Some(RejectReason::Reserved) => {
                format!("Budget '{id}' is fully reserved by requests in flight; retry shortly.")
            }
            _ => format!("Budget '{id}' exceeded."),
        };
        if let Some(usd) = self.remaining_usd {
            m.push_str(&format!(" Remaining: {} USD.", usd.to_usd_string()));
        }
        if let Some(t) = self.remaining_tokens {
            m.push_str(&format!(" Remaining: {t} tokens."));
        }
        if let Some(r) = self.reset_unix_secs {
            m.push_str(&format!(" Resets at {}.", format_utc(r)));
        }
        m
    }
}

/// Which provider's error shape a rejection uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorDialect {
    /// OpenAI, Azure OpenAI and OpenAI-compatible routes.
    OpenAi,
    Anthropic,
    Gemini,
    /// Bedrock runtime (InvokeModel / Converse): error code in `x-amzn-errortype`.
    Bedrock,
}

/// A complete local reply for the shell's `send_http_response`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejection {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

/// The 429 for a rejected decision in the caller's API shape.
pub fn rejection(decision: &Decision, dialect: ErrorDialect) -> Rejection {
    let message = decision.message();
    // Built by hand (keys in the sorted order serde_json's map wrote them in): the `json!`
    // form cost about 5 KB of module for four fixed shapes.
    let mut body = String::with_capacity(message.len().saturating_add(120));
    let (head, tail) = match dialect {
        // The shape of OpenAI's own 429s; SDKs key on the status, tools on `code`.
        ErrorDialect::OpenAi => (
            r#"{"error":{"code":"rate_limit_exceeded","message":"#,
            r#","param":null,"type":"budget_exceeded"}}"#,
        ),
        ErrorDialect::Anthropic => (r#"{"error":{"message":"#, r#","type":"rate_limit_error"},"type":"error"}"#),
        ErrorDialect::Gemini => (r#"{"error":{"code":429,"message":"#, r#","status":"RESOURCE_EXHAUSTED"}}"#),
        ErrorDialect::Bedrock => (r#"{"message":"#, "}"),
    };
    body.push_str(head);
    crate::telemetry::push_json_string(&mut body, &message);
    body.push_str(tail);
    let mut headers: Vec<(String, String)> =
        vec![("content-type".into(), "application/json".into())];
    if dialect == ErrorDialect::Bedrock {
        headers.push(("x-amzn-errortype".into(), "ThrottlingException".into()));
    }
    let retry_after = decision.retry_after_secs.unwrap_or(1);
    headers.push(("retry-after".into(), retry_after.to_string()));
    if retry_after > 60 {
        headers.push(("x-should-retry".into(), "false".into()));
    }
    headers.extend(
        decision
            .headers()
            .into_iter()
            .map(|(k, v)| (k.to_string(), v)),
    );
    Rejection {
        status: 429,
        headers,
        body: body.into_bytes(),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::indexing_slicing)]
mod tests {
    use super::*;

    fn rejected() -> Decision {
        Decision {
            outcome: Outcome::Rejected,
            reason: Some(RejectReason::Limit),
            budget_id: Some("acme-monthly".into()),
            remaining_usd: Some(PicoUsd(1_500_000_000)),
            remaining_tokens: None,
            reset_unix_secs: Some(1_796_083_200),
            retry_after_secs: Some(3_600),
            store_error: false,
        }
    }

    fn header<'a>(r: &'a Rejection, name: &str) -> Option<&'a str> {
        r.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    #[test]
    fn openai_shape_and_headers() {
        let r = rejection(&rejected(), ErrorDialect::OpenAi);
        assert_eq!(r.status, 429);
        let v: serde_json::Value = serde_json::from_slice(&r.body).unwrap_or_default();
        assert_eq!(v["error"]["code"], "rate_limit_exceeded");
        assert_eq!(v["error"]["param"], serde_json::Value::Null);
        let msg = v["error"]["message"].as_str().unwrap_or("");
        assert!(
            msg.contains("acme-monthly") && msg.contains("0.001500000 USD"),
            "{msg}"
        );
        assert!(msg.contains("2026-12-01T00:00:00Z"), "{msg}");
        assert_eq!(header(&r, "retry-after"), Some("3600"));
        assert_eq!(header(&r, "x-should-retry"), Some("false"));
        assert_eq!(header(&r, HEADER_REMAINING_USD), Some("0.001500000"));
        assert_eq!(header(&r, HEADER_RESET), Some("1796083200"));
        assert_eq!(header(&r, HEADER_REMAINING_TOKENS), None);
    }

    #[test]
    fn anthropic_gemini_bedrock_shapes() {
        let mut d = rejected();
        d.retry_after_secs = Some(30);
        let a = rejection(&d, ErrorDialect::Anthropic);
        let v: serde_json::Value = serde_json::from_slice(&a.body).unwrap_or_default();
        assert_eq!(v["type"], "error");
        assert_eq!(v["error"]["type"], "rate_limit_error");
        assert_eq!(
            header(&a, "x-should-retry"),
            None,
            "short waits are left to the SDK"
        );
        let g = rejection(&d, ErrorDialect::Gemini);
        let v: serde_json::Value = serde_json::from_slice(&g.body).unwrap_or_default();
        assert_eq!(v["error"]["status"], "RESOURCE_EXHAUSTED");
        assert_eq!(v["error"]["code"], 429);
        let b = rejection(&d, ErrorDialect::Bedrock);
        assert_eq!(header(&b, "x-amzn-errortype"), Some("ThrottlingException"));
    }

    #[test]
    fn filter_state_values() {
        let fs = rejected().filter_state();
        assert_eq!(
            fs,
            vec![
                ("llm.budget.id", "acme-monthly".to_string()),
                ("llm.budget.decision", "rejected".to_string()),
                ("llm.budget.remaining_usd", "0.001500000".to_string()),
            ]
        );
        assert!(Decision::allowed().filter_state().is_empty());
    }

    #[test]
    fn rejection_bodies_are_byte_for_byte_what_serde_json_wrote() {
        let d = Decision { budget_id: Some("a\"b\\c\n\t\r\u{1}\u{8}\u{c}\u{1f}é/<".into()), ..rejected() };
        let m = d.message();
        let cases = [
            (
                ErrorDialect::OpenAi,
                serde_json::json!({"error": {"message": m, "type": "budget_exceeded", "param": null,
                                             "code": "rate_limit_exceeded"}}),
            ),
            (
                ErrorDialect::Anthropic,
                serde_json::json!({"type": "error", "error": {"type": "rate_limit_error", "message": m}}),
            ),
            (
                ErrorDialect::Gemini,
                serde_json::json!({"error": {"code": 429, "message": m, "status": "RESOURCE_EXHAUSTED"}}),
            ),
            (ErrorDialect::Bedrock, serde_json::json!({"message": m})),
        ];
        for (dialect, expected) in cases {
            let body = rejection(&d, dialect).body;
            assert_eq!(String::from_utf8(body).unwrap(), serde_json::to_string(&expected).unwrap(), "{dialect:?}");
        }
    }
}
