//! Who a request is billed to, and how those names may appear in metrics.
//!
//! Attribution comes from request headers (by default `x-llm-feature`, `x-llm-customer`,
//! `x-llm-user`; `unknown` when absent). Header values are client-controlled, so two
//! different treatments exist:
//!
//! - for filter state and access logs ([`Attribution`]), values are kept close to what was
//!   sent but bounded in length and stripped of control characters (no log injection);
//! - for metric labels ([`sanitize_label`]), values are reduced to `[A-Za-z0-9_\-:/.@]`,
//!   capped at 64 bytes, because they are embedded in Envoy stat names as
//!   `name=.=value;.;` and a `;` or `=` in a value would forge or break tags; and the number
//!   of distinct values is capped per dimension by a [`CardinalityGuard`] so that a client
//!   cannot blow up the metrics backend. Past the cap a value becomes `other` and an overflow
//!   counter records it.
//!
//! The user identity is not a metric label unless `metrics.user_label` says so: it is
//! unbounded by nature and personal. When configured it is capped like the others.

use std::collections::BTreeSet;

use crate::config::AttributionConfig;
use crate::host::{HostError, SharedStore};

/// Longest metric label value, in bytes.
pub const MAX_LABEL_LEN: usize = 64;
/// Longest attribution value kept for filter state and logs, in bytes.
pub const MAX_LOG_VALUE_LEN: usize = 256;
/// The label value that replaces values past the cardinality cap.
pub const OVERFLOW_VALUE: &str = "other";

/// Attribution of one request, log-safe (bounded, no control characters).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attribution {
    pub feature: String,
    pub customer: String,
    /// For filter state and logs; a metric label only with `metrics.user_label`.
    pub user: String,
}

impl Default for Attribution {
    fn default() -> Self {
        let unknown = crate::config::DEFAULT_ATTRIBUTION_VALUE.to_string();
        Self { feature: unknown.clone(), customer: unknown.clone(), user: unknown }
    }
}

impl Attribution {
    /// Reads attribution from request headers; absent or blank headers give the default.
    pub fn from_headers(config: &AttributionConfig, header: &dyn Fn(&str) -> Option<String>) -> Self {
        let read = |name: &str| match header(name) {
            Some(v) if !v.trim().is_empty() => log_safe(v.trim()),
            _ => config.default_value.clone(),
        };
        Self {
            feature: read(&config.feature_header),
            customer: read(&config.customer_header),
            user: read(&config.user_header),
        }
    }
}

/// Bounds a value for filter state and logs: control characters become `_`, and the value is
/// cut at [`MAX_LOG_VALUE_LEN`] bytes on a character boundary.
pub fn log_safe(value: &str) -> String {
    let mut out = String::with_capacity(value.len().min(MAX_LOG_VALUE_LEN));
    for c in value.chars() {
        let c = if c.is_control() { '_' } else { c };
        if out.len() + c.len_utf8() > MAX_LOG_VALUE_LEN {
            break;
        }
        out.push(c);
    }
    out
}

/// Reduces a value to a metric-label-safe string: characters outside `[A-Za-z0-9_\-:/.@]`
/// become `_` (so `;` and `=` can never form the `;.;` / `=.=` tag delimiters), capped at
/// [`MAX_LABEL_LEN`] bytes. An empty value becomes `unknown`.
pub fn sanitize_label(value: &str) -> String {
    if value.is_empty() {
        return crate::config::DEFAULT_ATTRIBUTION_VALUE.to_string();
    }
    value
        .chars()
        .take(MAX_LABEL_LEN)
        .map(|c| if c.is_ascii_alphanumeric() || "_-:/.@".contains(c) { c } else { '_' })
        .collect()
}

/// A label dimension whose values come from clients and therefore need a cardinality cap.
/// The provider is a closed set and needs none.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Dimension {
    Model,
    Feature,
    Customer,
    /// Only a label when `metrics.user_label` is set.
    User,
}

impl Dimension {
    /// The dimensions every attributed metric carries (the user only when configured).
    pub const ALL: [Dimension; 3] = [Dimension::Model, Dimension::Feature, Dimension::Customer];

    /// The metric label name of the dimension, also the `dimension` label of the overflow counter.
    pub fn label(self) -> &'static str {
        match self {
            Dimension::Model => crate::telemetry::LABEL_MODEL,
            Dimension::Feature => crate::telemetry::LABEL_FEATURE,
            Dimension::Customer => crate::telemetry::LABEL_CUSTOMER,
            Dimension::User => crate::telemetry::LABEL_USER,
        }
    }

    fn index(self) -> usize {
        match self {
            Dimension::Model => 0,
            Dimension::Feature => 1,
            Dimension::Customer => 2,
            Dimension::User => 3,
        }
    }
}

/// Prefix of the shared-data keys holding each dimension's admitted values.
pub const SHARED_KEY_PREFIX: &str = "tokenmeter.labels.v1.";

/// Compare-and-swap attempts before falling back to the VM-local set.
const CAS_ATTEMPTS: u32 = 4;

/// Caps the distinct label values per dimension. One per VM, owned by the root context and
/// passed in. Envoy runs one VM per worker thread, so with [`CardinalityGuard::admit`] alone
/// the cap is per worker; [`CardinalityGuard::admit_shared`] makes it per process by keeping
/// the admitted values in proxy-wasm shared data (read once per new value, then cached).
/// B-tree sets, not hash sets: no hasher seed, so no randomness needed from the host.
#[derive(Debug, Clone)]
pub struct CardinalityGuard {
    max: u64,
    /// The configured attribution default, admitted without using up the cap.
    default_value: String,
    seen: [BTreeSet<String>; 4],
    overflows: [u64; 4],
    /// The shared set was full when last read; it never shrinks, so no need to read again.
    shared_full: [bool; 4],
}

impl CardinalityGuard {
    /// A guard admitting `max_values_per_dimension` distinct values per dimension, with the
    /// built-in default value `unknown`.
    pub fn new(max_values_per_dimension: u64) -> Self {
        Self {
            max: max_values_per_dimension,
            default_value: crate::config::DEFAULT_ATTRIBUTION_VALUE.to_string(),
            seen: Default::default(),
            overflows: [0; 4],
            shared_full: [false; 4],
        }
    }

    /// A guard with the configured cap (`metrics.max_label_values`) and default value.
    pub fn from_config(config: &crate::config::Config) -> Self {
        Self {
            default_value: config.attribution.default_value.clone(),
            ..Self::new(config.metrics.max_label_values)
        }
    }

    /// Admits a (sanitised) label value: the value itself if already seen or under the cap,
    /// else `other` with the dimension's overflow count incremented. `other`, `unknown` (no
    /// model) and the configured attribution default are always admitted and do not use up
    /// the cap.
    pub fn admit(&mut self, dimension: Dimension, value: &str) -> Admitted {
        let i = dimension.index();
        let (Some(seen), Some(overflow)) = (self.seen.get_mut(i), self.overflows.get_mut(i)) else {
            return Admitted { value: OVERFLOW_VALUE.to_string(), overflowed: true };
        };
        let exempt = value == OVERFLOW_VALUE
            || value == crate::config::DEFAULT_ATTRIBUTION_VALUE
            || value == self.default_value;
        if exempt || seen.contains(value) {
            return Admitted { value: value.to_string(), overflowed: false };
        }
        if (seen.len() as u64) < self.max {
            seen.insert(value.to_string());
            return Admitted { value: value.to_string(), overflowed: false };
        }
        *overflow = overflow.saturating_add(1);
        Admitted { value: OVERFLOW_VALUE.to_string(), overflowed: true }
    }

    /// Like [`CardinalityGuard::admit`], but the cap is shared by every VM of the process
    /// through `store`. A value seen before costs no host call; a new one costs a read and,
    /// if admitted, a compare-and-swap write. If the store fails, the VM-local cap applies.
    /// Two first writers racing on an empty key can both win, so the shared set may exceed
    /// the cap by a value or two; it cannot grow without bound.
    pub fn admit_shared(&mut self, dimension: Dimension, value: &str, store: &dyn SharedStore) -> Admitted {
        let i = dimension.index();
        if self.is_exempt(value) || self.seen.get(i).is_some_and(|s| s.contains(value)) {
            return Admitted { value: value.to_string(), overflowed: false };
        }
        let full = self.shared_full.get(i).copied().unwrap_or(true);
        let admitted = if full { Ok(false) } else { self.admit_in_store(i, dimension, value, store) };
        match admitted {
            Ok(true) => {
                if let Some(seen) = self.seen.get_mut(i) {
                    seen.insert(value.to_string());
                }
                Admitted { value: value.to_string(), overflowed: false }
            }
            Ok(false) => {
                if let Some(f) = self.shared_full.get_mut(i) {
                    *f = true;
                }
                if let Some(o) = self.overflows.get_mut(i) {
                    *o = o.saturating_add(1);
                }
                Admitted { value: OVERFLOW_VALUE.to_string(), overflowed: true }
            }
            Err(_) => self.admit(dimension, value),
        }
    }

    /// The shared-data key of a dimension's admitted values (one value per line).
    pub fn shared_key(dimension: Dimension) -> String {
        format!("{SHARED_KEY_PREFIX}{}", dimension.label())
    }

    /// `Ok(true)` when the value is (now) in the shared set, `Ok(false)` when the set is full.
    fn admit_in_store(&mut self, i: usize, dimension: Dimension, value: &str, store: &dyn SharedStore) -> Result<bool, HostError> {
        let key = Self::shared_key(dimension);
        for _ in 0..CAS_ATTEMPTS {
            let (bytes, cas) = match store.get(&key)? {
                Some((bytes, cas)) => (bytes, Some(cas)),
                None => (Vec::new(), None),
            };
            let text = String::from_utf8_lossy(&bytes);
            let listed: Vec<&str> = text.split('\n').filter(|v| !v.is_empty()).collect();
            // Learn what other VMs admitted, so that their values need no host call here.
            if let Some(seen) = self.seen.get_mut(i) {
                for v in &listed {
                    if (seen.len() as u64) >= self.max {
                        break;
                    }
                    seen.insert((*v).to_string());
                }
            }
            if listed.contains(&value) {
                return Ok(true);
            }
            if listed.len() as u64 >= self.max {
                return Ok(false);
            }
            let mut next = bytes.clone();
            if !next.is_empty() {
                next.push(b'\n');
            }
            next.extend_from_slice(value.as_bytes());
            match store.set(&key, &next, cas) {
                Ok(()) => return Ok(true),
                Err(HostError::CasMismatch) => continue,
                Err(e) => return Err(e),
            }
        }
        Err(HostError::CasMismatch)
    }

    fn is_exempt(&self, value: &str) -> bool {
        value == OVERFLOW_VALUE || value == crate::config::DEFAULT_ATTRIBUTION_VALUE || value == self.default_value
    }

    /// How many values of a dimension were turned into `other` so far.
    pub fn overflow_count(&self, dimension: Dimension) -> u64 {
        self.overflows.get(dimension.index()).copied().unwrap_or(0)
    }

    /// Distinct values admitted so far in a dimension.
    pub fn distinct(&self, dimension: Dimension) -> u64 {
        self.seen.get(dimension.index()).map_or(0, |s| s.len() as u64)
    }
}

/// The outcome of [`CardinalityGuard::admit`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Admitted {
    pub value: String,
    /// True when the value was replaced by `other`.
    pub overflowed: bool,
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing)]
    use super::*;

    fn headers(pairs: &'static [(&'static str, &'static str)]) -> impl Fn(&str) -> Option<String> {
        move |name| pairs.iter().find(|(k, _)| *k == name).map(|(_, v)| v.to_string())
    }

    #[test]
    fn absent_or_blank_headers_default_to_unknown() {
        let a = Attribution::from_headers(&AttributionConfig::default(), &headers(&[("x-llm-feature", "  ")]));
        assert_eq!(a, Attribution::default());
        assert_eq!((a.feature.as_str(), a.customer.as_str(), a.user.as_str()), ("unknown", "unknown", "unknown"));
    }

    #[test]
    fn configured_headers_and_default_are_used() {
        let config = AttributionConfig {
            feature_header: "x-f".into(),
            customer_header: "x-c".into(),
            user_header: "x-u".into(),
            default_value: "none".into(),
        };
        let a = Attribution::from_headers(&config, &headers(&[("x-f", "search"), ("x-u", "alice@example.com")]));
        assert_eq!(a.feature, "search");
        assert_eq!(a.customer, "none");
        assert_eq!(a.user, "alice@example.com");
    }

    #[test]
    fn log_values_lose_control_characters_and_are_bounded() {
        assert_eq!(log_safe("a\nb\r\tc"), "a_b__c");
        let long = "é".repeat(300);
        let cut = log_safe(&long);
        assert!(cut.len() <= MAX_LOG_VALUE_LEN && cut.len() >= MAX_LOG_VALUE_LEN - 1);
        assert!(cut.chars().all(|c| c == 'é'));
    }

    #[test]
    fn labels_cannot_forge_tag_delimiters() {
        assert_eq!(sanitize_label("acme;.;customer=.=evil"), "acme_._customer_._evil");
        assert_eq!(sanitize_label("gpt-4.1-mini"), "gpt-4.1-mini");
        assert_eq!(sanitize_label("models/gemini:1.5@eu_west"), "models/gemini:1.5@eu_west");
        assert_eq!(sanitize_label("a b\"c{}é"), "a_b_c___");
        assert_eq!(sanitize_label(""), "unknown");
        assert_eq!(sanitize_label(&"x".repeat(100)).len(), MAX_LABEL_LEN);
        assert_eq!(sanitize_label(&"é".repeat(100)), "_".repeat(MAX_LABEL_LEN));
    }

    #[test]
    fn values_past_the_cap_become_other_and_are_counted() {
        let mut g = CardinalityGuard::new(2);
        assert_eq!(g.admit(Dimension::Customer, "a").value, "a");
        assert_eq!(g.admit(Dimension::Customer, "b").value, "b");
        let third = g.admit(Dimension::Customer, "c");
        assert_eq!(third, Admitted { value: "other".into(), overflowed: true });
        // Values seen before the cap keep their own series.
        assert_eq!(g.admit(Dimension::Customer, "a").value, "a");
        assert_eq!(g.admit(Dimension::Customer, "d").value, "other");
        assert_eq!(g.overflow_count(Dimension::Customer), 2);
        assert_eq!(g.distinct(Dimension::Customer), 2);
        // The default never uses up the cap, and dimensions are independent.
        assert!(!g.admit(Dimension::Customer, "unknown").overflowed);
        assert_eq!(g.admit(Dimension::Feature, "c").value, "c");
        assert_eq!(g.overflow_count(Dimension::Feature), 0);
    }

    #[test]
    fn a_shared_cap_holds_across_vms() {
        use crate::host::fake::FakeStore;
        let store = FakeStore::default();
        let (mut a, mut b) = (CardinalityGuard::new(2), CardinalityGuard::new(2));
        assert_eq!(a.admit_shared(Dimension::Customer, "x", &store).value, "x");
        assert_eq!(b.admit_shared(Dimension::Customer, "y", &store).value, "y");
        // The process-wide set is full: a third value is `other` on every VM...
        assert_eq!(a.admit_shared(Dimension::Customer, "z", &store).value, "other");
        assert_eq!(b.admit_shared(Dimension::Customer, "z", &store).value, "other");
        // ...while values admitted by another VM keep their series.
        assert_eq!(a.admit_shared(Dimension::Customer, "y", &store).value, "y");
        assert_eq!(a.overflow_count(Dimension::Customer), 1);
        let key = CardinalityGuard::shared_key(Dimension::Customer);
        assert_eq!(key, "tokenmeter.labels.v1.customer");
        assert_eq!(store.data.borrow().get(&key).unwrap().0, b"x\ny".to_vec());
        // Other dimensions have their own sets.
        assert_eq!(a.admit_shared(Dimension::Feature, "z", &store).value, "z");
    }

    #[test]
    fn shared_admission_retries_cas_conflicts_and_falls_back_to_local() {
        use crate::host::fake::FakeStore;
        let store = FakeStore::default();
        let mut g = CardinalityGuard::new(3);
        g.admit_shared(Dimension::Feature, "a", &store);
        store.inject_cas_conflicts.set(2);
        assert_eq!(g.admit_shared(Dimension::Feature, "b", &store).value, "b");
        let key = CardinalityGuard::shared_key(Dimension::Feature);
        assert_eq!(store.data.borrow().get(&key).unwrap().0, b"a\nb".to_vec());
        // Conflicts on every attempt: the local cap decides, traffic is never affected.
        store.inject_cas_conflicts.set(100);
        assert_eq!(g.admit_shared(Dimension::Feature, "c", &store).value, "c");
        assert_eq!(store.data.borrow().get(&key).unwrap().0, b"a\nb".to_vec());
    }

    #[test]
    fn the_configured_default_does_not_use_up_the_cap() {
        let config = crate::config::Config::from_json(
            br#"{"attribution": {"default_value": "none"}, "metrics": {"max_label_values": 1}}"#,
        )
        .unwrap();
        let mut g = CardinalityGuard::from_config(&config);
        assert!(!g.admit(Dimension::Feature, "none").overflowed);
        assert_eq!(g.admit(Dimension::Feature, "search").value, "search");
        assert_eq!(g.admit(Dimension::Feature, "chat").value, "other");
        assert_eq!(g.distinct(Dimension::Feature), 1);
    }
}
