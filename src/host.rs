//! The host effects the core needs, as small traits.
//!
//! The core never calls proxy-wasm. What it needs from Envoy (shared data with
//! compare-and-swap, the clock, metrics) it asks through these traits; the shell implements
//! them with host calls, and tests implement them in memory, including compare-and-swap
//! conflicts. Errors are typed so that callers can take the fallback documented for each
//! callback instead of unwrapping.

use thiserror::Error;

/// Why a host call failed, reduced to what the core can act on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
pub enum HostError {
    /// The value or property does not exist (proxy-wasm `NotFound` / `BadArgument`).
    #[error("not available")]
    NotAvailable,
    /// A compare-and-swap write lost against a concurrent writer (proxy-wasm `CasMismatch`).
    #[error("compare-and-swap mismatch")]
    CasMismatch,
    /// Any other failure of the host.
    #[error("host call failed")]
    Failed,
}

/// A compare-and-swap token returned by [`SharedStore::get`].
pub type Cas = u32;

/// proxy-wasm shared data: a process-wide key/value store shared by all worker threads, that
/// survives plugin reconfiguration and VM reloads.
pub trait SharedStore {
    /// Reads a key. `Ok(None)` when it has never been written.
    fn get(&self, key: &str) -> Result<Option<(Vec<u8>, Cas)>, HostError>;
    /// Writes a key. With `cas = Some(c)` the write fails with [`HostError::CasMismatch`] if
    /// another writer has written since the read that returned `c`.
    fn set(&self, key: &str, value: &[u8], cas: Option<Cas>) -> Result<(), HostError>;
}

/// Wall-clock time, so that tests can pin windows and resets.
pub trait Clock {
    /// Milliseconds since the Unix epoch, UTC.
    fn now_unix_millis(&self) -> u64;
}

/// A map keyed by names, hashed with [`NameHasher`] (no random seed needed from the host).
pub type NameMap<V> = std::collections::HashMap<String, V, std::hash::BuildHasherDefault<NameHasher>>;

/// The hasher of every string-keyed map kept across requests (the shell's metric-id cache,
/// the label cardinality sets, the cost carry): one multiply per 8 bytes of the name
/// (FxHash's step). std's default SipHash needs a random seed, and asking WASI for it pulls
/// std's error formatting for WASI errors (with its Unicode tables) into the module, about
/// 8 KB; and one hash map family shared by all of them is smaller code than B-trees. Flooding is bounded:
/// every such map is capped (metric ids per kind, label values per dimension, carried series).
#[derive(Default, Clone, Copy)]
pub struct NameHasher(u64);

impl NameHasher {
    fn add(&mut self, word: u64) {
        self.0 = (self.0.rotate_left(5) ^ word).wrapping_mul(0x517c_c1b7_2722_0a95);
    }
}

impl std::hash::Hasher for NameHasher {
    fn write(&mut self, bytes: &[u8]) {
        let mut words = bytes.chunks_exact(8);
        for word in &mut words {
            let mut w = [0u8; 8];
            w.copy_from_slice(word);
            self.add(u64::from_le_bytes(w));
        }
        let rest = words.remainder();
        if !rest.is_empty() {
            let mut w = [0u8; 8];
            if let Some(head) = w.get_mut(..rest.len()) {
                head.copy_from_slice(rest);
            }
            self.add(u64::from_le_bytes(w) ^ ((rest.len() as u64) << 56));
        }
    }

    fn finish(&self) -> u64 {
        self.0
    }
}

/// Handle of a metric defined with the host.
pub type MetricId = u32;

/// The kinds of Envoy stats the filter defines.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MetricKind {
    Counter,
    Gauge,
    Histogram,
}

/// Envoy stats. Names carry Istio-style embedded tags (see `telemetry`).
pub trait Metrics {
    /// Defines (or looks up) a metric by its full name with embedded tags.
    fn define(&mut self, kind: MetricKind, name: &str) -> Result<MetricId, HostError>;
    /// Adds to a counter or gauge. Callers never add 0: Envoy answers that with an error.
    fn increment(&mut self, id: MetricId, delta: i64) -> Result<(), HostError>;
    /// Sets a gauge or records a histogram sample.
    fn record(&mut self, id: MetricId, value: u64) -> Result<(), HostError>;
}

#[doc(hidden)]
pub mod fake {
    //! In-memory hosts for tests. [`FakeStore`] can be told to fail the next N writes with a
    //! CAS mismatch, as a concurrent worker would.

    use super::*;
    use std::cell::{Cell, RefCell};
    use std::collections::HashMap;

    #[derive(Default)]
    pub struct FakeStore {
        pub data: RefCell<HashMap<String, (Vec<u8>, Cas)>>,
        /// Number of upcoming `set` calls that will fail with a CAS mismatch.
        pub inject_cas_conflicts: Cell<u32>,
    }

    impl SharedStore for FakeStore {
        fn get(&self, key: &str) -> Result<Option<(Vec<u8>, Cas)>, HostError> {
            Ok(self.data.borrow().get(key).cloned())
        }

        fn set(&self, key: &str, value: &[u8], cas: Option<Cas>) -> Result<(), HostError> {
            let pending = self.inject_cas_conflicts.get();
            if pending > 0 {
                self.inject_cas_conflicts.set(pending - 1);
                // A concurrent writer got in first: bump the version like it would.
                if let Some(entry) = self.data.borrow_mut().get_mut(key) {
                    entry.1 = entry.1.wrapping_add(1);
                }
                return Err(HostError::CasMismatch);
            }
            let mut data = self.data.borrow_mut();
            let current = data.get(key).map(|(_, c)| *c);
            if let (Some(expected), Some(actual)) = (cas, current) {
                if expected != actual {
                    return Err(HostError::CasMismatch);
                }
            }
            let next = current.map_or(1, |c| c.wrapping_add(1));
            data.insert(key.to_string(), (value.to_vec(), next));
            Ok(())
        }
    }

    pub struct FixedClock(pub Cell<u64>);

    impl Clock for FixedClock {
        fn now_unix_millis(&self) -> u64 {
            self.0.get()
        }
    }

    #[derive(Default)]
    pub struct FakeMetrics {
        pub names: Vec<(MetricKind, String)>,
        pub values: HashMap<MetricId, i64>,
        pub samples: HashMap<MetricId, Vec<u64>>,
    }

    impl FakeMetrics {
        /// Current value of a metric by full name, for assertions.
        pub fn value(&self, name: &str) -> Option<i64> {
            let id = self.names.iter().position(|(_, n)| n == name)?;
            self.values.get(&u32::try_from(id).ok()?).copied()
        }
    }

    impl Metrics for FakeMetrics {
        fn define(&mut self, kind: MetricKind, name: &str) -> Result<MetricId, HostError> {
            if let Some(i) = self.names.iter().position(|(_, n)| n == name) {
                return u32::try_from(i).map_err(|_| HostError::Failed);
            }
            self.names.push((kind, name.to_string()));
            u32::try_from(self.names.len() - 1).map_err(|_| HostError::Failed)
        }

        fn increment(&mut self, id: MetricId, delta: i64) -> Result<(), HostError> {
            if delta == 0 {
                // Mirrors Envoy, which rejects an increment of 0.
                return Err(HostError::Failed);
            }
            *self.values.entry(id).or_insert(0) += delta;
            Ok(())
        }

        fn record(&mut self, id: MetricId, value: u64) -> Result<(), HostError> {
            self.samples.entry(id).or_default().push(value);
            self.values.insert(id, i64::try_from(value).unwrap_or(i64::MAX));
            Ok(())
        }
    }
}
