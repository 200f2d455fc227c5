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
//!
//! Headers are forgeable by any client, so each dimension can instead be read from a list
//! of trusted sources ([`IdentitySource`]): dynamic metadata written by an earlier filter
//! (the JWT payload `jwt_authn` verified, say) or any other host property such as a mesh
//! peer's workload name. [`Attribution::resolve`] tries them in order. API keys are never
//! kept; [`api_key_id`] turns one into a short salted hash that can stand in for it in logs.


use crate::config::{AttributionConfig, IdentitySource};
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
    /// Reads attribution from request headers only (property sources count as absent);
    /// absent or blank headers give the default.
    pub fn from_headers(config: &AttributionConfig, header: &dyn Fn(&str) -> Option<String>) -> Self {
        Self::resolve(config, header, &|_| None)
    }
}

impl Attribution {
    /// Reads attribution from the configured sources of each dimension (the dimension's header
    /// when none are configured). The first source giving a non-blank value wins; properties
    /// that are not UTF-8 (numbers, structs) count as absent.
    pub fn resolve(
        config: &AttributionConfig,
        header: &dyn Fn(&str) -> Option<String>,
        property: &dyn Fn(&[&str]) -> Option<Vec<u8>>,
    ) -> Self {
        let read = |from: &[IdentitySource], default_header: &str| {
            let found = if from.is_empty() {
                header(default_header).filter(|v| !v.trim().is_empty())
            } else {
                from.iter().find_map(|source| read_source(source, header, property))
            };
            match found {
                Some(v) => log_safe(v.trim()),
                None => config.default_value.clone(),
            }
        };
        Self {
            feature: read(&config.feature_from, &config.feature_header),
            customer: read(&config.customer_from, &config.customer_header),
            user: read(&config.user_from, &config.user_header),
        }
    }
}

fn read_source(
    source: &IdentitySource,
    header: &dyn Fn(&str) -> Option<String>,
    property: &dyn Fn(&[&str]) -> Option<Vec<u8>>,
) -> Option<String> {
    let value = match source {
        IdentitySource::Header(name) => header(name)?,
        IdentitySource::Property(path) => {
            let path: Vec<&str> = path.iter().map(String::as_str).collect();
            String::from_utf8(property(&path)?).ok()?
        }
    };
    (!value.trim().is_empty()).then_some(value)
}

/// The request headers that carry attribution under `config`: removed before the request goes
/// upstream when `strip_headers` is set, so that upstreams never see (or trust) client values.
/// Each name once, in configuration order. A linear `contains` rather than sort + dedup: the
/// list is a handful of names, and a sort instantiation was 5 KB of the module.
pub fn attribution_headers(config: &AttributionConfig) -> Vec<String> {
    let sources = config.feature_from.iter().chain(&config.customer_from).chain(&config.user_from);
    let from_sources = sources.filter_map(|source| match source {
        IdentitySource::Header(name) => Some(name),
        IdentitySource::Property(_) => None,
    });
    let mut names: Vec<String> = Vec::new();
    for name in [&config.feature_header, &config.customer_header, &config.user_header].into_iter().chain(from_sources) {
        if !names.contains(name) {
            names.push(name.clone());
        }
    }
    names
}

/// Request headers that carry API keys, by provider convention (OpenAI `authorization`,
/// Anthropic `x-api-key`, Azure `api-key`, Gemini `x-goog-api-key`). Never logged.
pub const API_KEY_HEADERS: [&str; 4] = ["authorization", "x-api-key", "api-key", "x-goog-api-key"];

/// Filter-state key of the key id (`%FILTER_STATE(wasm.llm.api_key_id:PLAIN)%`).
pub const API_KEY_ID_FILTER_STATE: &str = "llm.api_key_id";

/// Hex digits of the key id: 64 bits, enough to tell keys apart, too short to be a key.
pub const API_KEY_ID_LEN: usize = 16;

/// A short stand-in for the request's API key: the first [`API_KEY_ID_LEN`] hex digits of
/// HMAC-SHA256(salt, key). `None` when no salt is configured or no key header is present.
/// For `Authorization: Bearer <key>` the key is the token; for AWS SigV4 it is the access key
/// id in `Credential=` (the rest changes per request); otherwise the whole header value.
pub fn api_key_id(config: &AttributionConfig, header: &dyn Fn(&str) -> Option<String>) -> Option<String> {
    let salt = config.api_key_salt.as_deref()?;
    let key = API_KEY_HEADERS.iter().find_map(|name| header(name).filter(|v| !v.trim().is_empty()))?;
    let key = key.trim();
    let key = if let Some(token) = key.strip_prefix("Bearer ").or_else(|| key.strip_prefix("bearer ")) {
        token.trim()
    } else if key.starts_with("AWS4-HMAC-SHA256") {
        key.split("Credential=").nth(1).and_then(|c| c.split('/').next()).unwrap_or(key)
    } else {
        key
    };
    let mac = sha256::hmac(salt.as_bytes(), key.as_bytes());
    Some(mac.iter().take(API_KEY_ID_LEN / 2).map(|b| format!("{b:02x}")).collect())
}

/// SHA-256 and HMAC-SHA256 (FIPS 180-4, RFC 2104), small enough to keep in the filter rather
/// than add a dependency for one hash per request.
// Indexing here is on fixed-size arrays with constant bounds (`w` has 64 words and `i` runs
// to 63; `chunks_exact(4)` yields 4 bytes; `key.len() <= 64` is checked before the copy), so
// none of it can fail on input.
#[allow(clippy::indexing_slicing)]
mod sha256 {
    const K: [u32; 64] = [
        0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5,
        0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174,
        0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da,
        0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967,
        0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85,
        0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070,
        0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
        0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2,
    ];

    pub(super) fn digest(data: &[u8]) -> [u8; 32] {
        let mut h: [u32; 8] = [
            0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a, 0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19,
        ];
        let mut message = data.to_vec();
        let bit_len = (data.len() as u64).wrapping_mul(8);
        message.push(0x80);
        while message.len() % 64 != 56 {
            message.push(0);
        }
        message.extend_from_slice(&bit_len.to_be_bytes());
        for block in message.chunks_exact(64) {
            let mut w = [0u32; 64];
            for (word, bytes) in w.iter_mut().zip(block.chunks_exact(4)) {
                *word = u32::from_be_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]);
            }
            for i in 16..64 {
                let s0 = w[i - 15].rotate_right(7) ^ w[i - 15].rotate_right(18) ^ (w[i - 15] >> 3);
                let s1 = w[i - 2].rotate_right(17) ^ w[i - 2].rotate_right(19) ^ (w[i - 2] >> 10);
                w[i] = w[i - 16].wrapping_add(s0).wrapping_add(w[i - 7]).wrapping_add(s1);
            }
            let [mut a, mut b, mut c, mut d, mut e, mut f, mut g, mut hh] = h;
            for (k, wi) in K.iter().zip(w.iter()) {
                let s1 = e.rotate_right(6) ^ e.rotate_right(11) ^ e.rotate_right(25);
                let ch = (e & f) ^ (!e & g);
                let t1 = hh.wrapping_add(s1).wrapping_add(ch).wrapping_add(*k).wrapping_add(*wi);
                let s0 = a.rotate_right(2) ^ a.rotate_right(13) ^ a.rotate_right(22);
                let maj = (a & b) ^ (a & c) ^ (b & c);
                let t2 = s0.wrapping_add(maj);
                hh = g;
                g = f;
                f = e;
                e = d.wrapping_add(t1);
                d = c;
                c = b;
                b = a;
                a = t1.wrapping_add(t2);
            }
            for (x, y) in h.iter_mut().zip([a, b, c, d, e, f, g, hh]) {
                *x = x.wrapping_add(y);
            }
        }
        let mut out = [0u8; 32];
        for (chunk, word) in out.chunks_exact_mut(4).zip(h) {
            chunk.copy_from_slice(&word.to_be_bytes());
        }
        out
    }

    pub(super) fn hmac(key: &[u8], message: &[u8]) -> [u8; 32] {
        let mut block = [0u8; 64];
        if key.len() > 64 {
            block[..32].copy_from_slice(&digest(key));
        } else {
            block[..key.len()].copy_from_slice(key);
        }
        let mut inner: Vec<u8> = block.iter().map(|b| b ^ 0x36).collect();
        inner.extend_from_slice(message);
        let mut outer: Vec<u8> = block.iter().map(|b| b ^ 0x5c).collect();
        outer.extend_from_slice(&digest(&inner));
        digest(&outer)
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
/// Sets hashed with [`crate::host::NameHasher`]: no hasher seed, so no randomness needed from
/// the host; only membership and size are asked, so iteration order never shows.
#[derive(Debug, Clone)]
pub struct CardinalityGuard {
    max: u64,
    /// The configured attribution default, admitted without using up the cap.
    default_value: String,
    /// Sets kept as maps to an unused `0`: the same map type as the cost carry and the shell's
    /// metric-id cache, so the module holds one copy of the hash map code, not two.
    seen: [crate::host::NameMap<u32>; 4],
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
        if exempt || seen.contains_key(value) {
            return Admitted { value: value.to_string(), overflowed: false };
        }
        if (seen.len() as u64) < self.max {
            seen.insert(value.to_string(), 0);
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
        if self.is_exempt(value) || self.seen.get(i).is_some_and(|s| s.contains_key(value)) {
            return Admitted { value: value.to_string(), overflowed: false };
        }
        let full = self.shared_full.get(i).copied().unwrap_or(true);
        let admitted = if full { Ok(false) } else { self.admit_in_store(i, dimension, value, store) };
        match admitted {
            Ok(true) => {
                if let Some(seen) = self.seen.get_mut(i) {
                    seen.insert(value.to_string(), 0);
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
                    seen.insert((*v).to_string(), 0);
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
            ..AttributionConfig::default()
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

    fn attribution_config(json: &str) -> AttributionConfig {
        crate::config::Config::from_json(json.as_bytes()).unwrap().attribution
    }

    fn jwt_metadata(path: &[&str]) -> Option<Vec<u8>> {
        let want = ["metadata", "filter_metadata", "envoy.filters.http.jwt_authn", "jwt_payload", "org"];
        (path == want).then(|| b"acme".to_vec())
    }

    #[test]
    fn a_trusted_source_ignores_the_forged_header() {
        let config = attribution_config(r#"{"attribution": {"customer_from": [{"jwt_claim": "org"}]}}"#);
        let forged = headers(&[("x-llm-customer", "victim"), ("x-llm-feature", "chat")]);
        let a = Attribution::resolve(&config, &forged, &jwt_metadata);
        assert_eq!(a.customer, "acme");
        // Other dimensions keep their headers.
        assert_eq!(a.feature, "chat");
        // Without a verified JWT the customer is the default, never the header.
        let a = Attribution::resolve(&config, &forged, &|_| None);
        assert_eq!(a.customer, "unknown");
    }

    #[test]
    fn sources_are_tried_in_order_and_skip_blank_or_binary_values() {
        let config = attribution_config(
            r#"{"attribution": {"customer_from": [
                {"metadata": ["ns", "tenant"]}, {"property": ["downstream_peer", "workload"]},
                {"header": "x-tenant"}]}}"#,
        );
        let peer = |path: &[&str]| match path {
            ["metadata", "filter_metadata", "ns", "tenant"] => Some(b"  ".to_vec()),
            ["downstream_peer", "workload"] => Some(b"billing-svc".to_vec()),
            _ => None,
        };
        let h = headers(&[("x-tenant", "from-header")]);
        assert_eq!(Attribution::resolve(&config, &h, &peer).customer, "billing-svc");
        let binary = |_: &[&str]| Some(vec![0xff, 0xfe, 0, 1]);
        assert_eq!(Attribution::resolve(&config, &h, &binary).customer, "from-header");
        assert_eq!(Attribution::resolve(&config, &|_| None, &|_| None).customer, "unknown");
    }

    #[test]
    fn property_values_are_made_log_safe() {
        let config = attribution_config(r#"{"attribution": {"user_from": [{"jwt_claim": "org"}]}}"#);
        let evil = |_: &[&str]| Some(b"a\nb".to_vec());
        assert_eq!(Attribution::resolve(&config, &|_| None, &evil).user, "a_b");
    }

    #[test]
    fn the_headers_to_strip_include_every_header_source() {
        let config = attribution_config(
            r#"{"attribution": {"customer_from": [{"jwt_claim": "org"}, {"header": "X-Tenant"}],
                "strip_headers": true}}"#,
        );
        assert!(config.strip_headers);
        assert_eq!(attribution_headers(&config), ["x-llm-feature", "x-llm-customer", "x-llm-user", "x-tenant"]);
        // A header named twice (as a dimension's header and as a source) is removed once.
        let twice = attribution_config(
            r#"{"attribution": {"user_from": [{"header": "x-llm-feature"}, {"header": "x-b"}, {"header": "x-b"}]}}"#,
        );
        assert_eq!(attribution_headers(&twice), ["x-llm-feature", "x-llm-customer", "x-llm-user", "x-b"]);
    }

    #[test]
    fn sha256_and_hmac_match_the_published_vectors() {
        let hex = |b: [u8; 32]| b.iter().map(|b| format!("{b:02x}")).collect::<String>();
        assert_eq!(hex(sha256::digest(b"abc")), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
        assert_eq!(hex(sha256::digest(b"")), "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
        let long = b"abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq";
        assert_eq!(hex(sha256::digest(long)), "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1");
        // RFC 4231 test cases 2 and 6 (a key longer than the block).
        assert_eq!(
            hex(sha256::hmac(b"Jefe", b"what do ya want for nothing?")),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
        assert_eq!(
            hex(sha256::hmac(&[0xaa; 131], b"Test Using Larger Than Block-Size Key - Hash Key First")),
            "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54"
        );
    }

    #[test]
    fn api_key_ids_are_short_salted_and_never_the_key() {
        let salted = attribution_config(r#"{"attribution": {"api_key_salt": "0123456789abcdef-salt"}}"#);
        let bearer = headers(&[("authorization", "Bearer sk-live-secret")]);
        let id = api_key_id(&salted, &bearer).unwrap();
        assert_eq!(id.len(), API_KEY_ID_LEN);
        assert!(id.bytes().all(|b| b.is_ascii_hexdigit()) && !id.contains("secret"));
        // The same key under another header convention has the same id; another key does not.
        assert_eq!(api_key_id(&salted, &headers(&[("x-api-key", "sk-live-secret")])), Some(id.clone()));
        assert_ne!(api_key_id(&salted, &headers(&[("api-key", "sk-live-other")])), Some(id.clone()));
        // Another salt gives another id: ids cannot be joined across deployments.
        let other = attribution_config(r#"{"attribution": {"api_key_salt": "another-salt-0123456789"}}"#);
        assert_ne!(api_key_id(&other, &bearer), Some(id));
        // SigV4: the access key id, not the per-request signature.
        let sig = |s: &'static str| {
            move |n: &str| (n == "authorization").then(|| format!("AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20260101/us-east-1/bedrock/aws4_request, Signature={s}"))
        };
        assert_eq!(api_key_id(&salted, &sig("aaaa")), api_key_id(&salted, &sig("bbbb")));
        // No salt or no key: no id.
        assert_eq!(api_key_id(&AttributionConfig::default(), &bearer), None);
        assert_eq!(api_key_id(&salted, &|_| None), None);
    }
}
