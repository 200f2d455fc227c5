//! Which requests are retries, read from request headers.
//!
//! A retried call costs money again, and a jump in retries is often the first sign of an
//! upstream in trouble, so retries are counted (and priced) on their own series. Nothing in
//! an LLM request body says "I am a retry"; the signal is in headers that SDKs and proxies
//! add: the official OpenAI and Anthropic SDKs (Stainless-generated) send
//! `x-stainless-retry-count` (0 on the first attempt), and Envoy sends
//! `x-envoy-attempt-count` (1 on the first attempt) when a route enables
//! `include_attempt_count_in_request`, which a front proxy that retries upstream of this
//! filter does. Deployments with their own conventions add rules in the configuration
//! (`retry_headers`).
//!
//! A request is classified once: a client retry wins over a proxy retry, so that a retried
//! SDK call that a proxy also retried is not counted twice.

/// Header the Stainless-generated SDKs (OpenAI, Anthropic) send: the retry number, 0 first.
pub const STAINLESS_RETRY_COUNT: &str = "x-stainless-retry-count";
/// Header Envoy sends with `include_attempt_count_in_request`: the attempt number, 1 first.
pub const ENVOY_ATTEMPT_COUNT: &str = "x-envoy-attempt-count";

/// Who retried the request; the `retry_source` metric label.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum RetrySource {
    /// The client (an SDK or the application) sent the call again.
    Client,
    /// A proxy between the client and this filter retried it.
    Proxy,
}

impl RetrySource {
    pub const ALL: [RetrySource; 2] = [RetrySource::Client, RetrySource::Proxy];

    /// The label value (and configuration spelling).
    pub fn name(self) -> &'static str {
        match self {
            RetrySource::Client => "client",
            RetrySource::Proxy => "proxy",
        }
    }

    pub fn from_name(name: &str) -> Option<RetrySource> {
        Self::ALL.into_iter().find(|s| s.name() == name)
    }
}

/// One header that marks a retry when its integer value is at least `min_value`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RetryRule {
    /// Lowercase header name.
    pub header: String,
    pub min_value: u64,
    pub source: RetrySource,
}

/// The rules that always apply; configured rules are added to these.
pub fn builtin_rules() -> Vec<RetryRule> {
    vec![
        RetryRule { header: STAINLESS_RETRY_COUNT.to_string(), min_value: 1, source: RetrySource::Client },
        RetryRule { header: ENVOY_ATTEMPT_COUNT.to_string(), min_value: 2, source: RetrySource::Proxy },
    ]
}

/// Classifies a request by its headers: `None` for a first attempt (or when no rule's header
/// holds an integer at or above its minimum), else who retried, the client winning.
/// Values that are not plain decimal integers are ignored, not guessed at.
pub fn classify(rules: &[RetryRule], header: &dyn Fn(&str) -> Option<String>) -> Option<RetrySource> {
    let mut found = None;
    for rule in rules {
        // A client match cannot be beaten; skip reading more headers.
        if found == Some(RetrySource::Client) {
            break;
        }
        if found == Some(rule.source) {
            continue;
        }
        let hit = header(&rule.header)
            .and_then(|v| v.trim().parse::<u64>().ok())
            .is_some_and(|n| n >= rule.min_value);
        if hit {
            found = Some(found.map_or(rule.source, |f: RetrySource| f.min(rule.source)));
        }
    }
    found
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing)]
    use super::*;

    fn headers(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let pairs: Vec<(String, String)> = pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        move |name| pairs.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone())
    }

    #[test]
    fn first_attempts_are_not_retries() {
        let rules = builtin_rules();
        assert_eq!(classify(&rules, &headers(&[])), None);
        assert_eq!(classify(&rules, &headers(&[(STAINLESS_RETRY_COUNT, "0"), (ENVOY_ATTEMPT_COUNT, "1")])), None);
    }

    #[test]
    fn sdk_retry_count_above_zero_is_a_client_retry() {
        assert_eq!(classify(&builtin_rules(), &headers(&[(STAINLESS_RETRY_COUNT, "1")])), Some(RetrySource::Client));
        assert_eq!(classify(&builtin_rules(), &headers(&[(STAINLESS_RETRY_COUNT, " 3 ")])), Some(RetrySource::Client));
    }

    #[test]
    fn envoy_attempt_count_above_one_is_a_proxy_retry() {
        assert_eq!(classify(&builtin_rules(), &headers(&[(ENVOY_ATTEMPT_COUNT, "2")])), Some(RetrySource::Proxy));
    }

    #[test]
    fn the_client_wins_when_both_apply_whatever_the_rule_order() {
        let both = headers(&[(STAINLESS_RETRY_COUNT, "1"), (ENVOY_ATTEMPT_COUNT, "3")]);
        assert_eq!(classify(&builtin_rules(), &both), Some(RetrySource::Client));
        let mut reversed = builtin_rules();
        reversed.reverse();
        assert_eq!(classify(&reversed, &both), Some(RetrySource::Client));
    }

    #[test]
    fn garbage_values_are_ignored() {
        for v in ["", "yes", "-1", "1.5", "99999999999999999999999"] {
            assert_eq!(classify(&builtin_rules(), &headers(&[(STAINLESS_RETRY_COUNT, v)])), None, "{v:?}");
        }
    }

    #[test]
    fn source_names_round_trip() {
        for s in RetrySource::ALL {
            assert_eq!(RetrySource::from_name(s.name()), Some(s));
        }
        assert_eq!(RetrySource::from_name("server"), None);
    }
}
