//! The core's host traits ([`crate::host`]) implemented with proxy-wasm host calls.
//!
//! proxy-wasm statuses are reduced to [`HostError`] the way the core can act on them:
//! `NotFound`/`BadArgument` mean "not available", `CasMismatch` is a lost compare-and-swap,
//! anything else is a failure. Metric ids are cached per full stat name because
//! `define_metric` is a host round trip and the same names recur on every request.

use std::collections::HashMap;
use std::time::UNIX_EPOCH;

use proxy_wasm::hostcalls;
use proxy_wasm::types::{MetricType, Status};

use crate::host::{Cas, Clock, HostError, MetricId, MetricKind, Metrics, SharedStore};

/// Upper bound on cached metric ids. Names carry label values, so a hostile mix of
/// attribution headers could otherwise grow the cache without end; past the bound, names are
/// defined again on each use (the host dedupes them), which is slower but correct.
const METRIC_CACHE_LIMIT: usize = 4096;

pub(crate) fn host_error(status: Status) -> HostError {
    match status {
        Status::NotFound | Status::BadArgument => HostError::NotAvailable,
        Status::CasMismatch => HostError::CasMismatch,
        _ => HostError::Failed,
    }
}

/// Envoy stats, with a per-VM cache of metric ids.
#[derive(Default)]
pub(crate) struct HostMetrics {
    /// One map per metric kind, keyed by the full stat name: looked up by `&str`, so a hit
    /// (every request after the first with the same labels) allocates nothing.
    ids: [HashMap<String, MetricId>; 3],
}

fn metric_type(kind: MetricKind) -> (u8, MetricType) {
    match kind {
        MetricKind::Counter => (0, MetricType::Counter),
        MetricKind::Gauge => (1, MetricType::Gauge),
        MetricKind::Histogram => (2, MetricType::Histogram),
    }
}

impl Metrics for HostMetrics {
    fn define(&mut self, kind: MetricKind, name: &str) -> Result<MetricId, HostError> {
        let (tag, host_kind) = metric_type(kind);
        let Some(ids) = self.ids.get_mut(usize::from(tag)) else {
            return hostcalls::define_metric(host_kind, name).map_err(host_error);
        };
        if let Some(id) = ids.get(name) {
            return Ok(*id);
        }
        let id = hostcalls::define_metric(host_kind, name).map_err(host_error)?;
        if ids.len() < METRIC_CACHE_LIMIT {
            ids.insert(name.to_string(), id);
        }
        Ok(id)
    }

    fn increment(&mut self, id: MetricId, delta: i64) -> Result<(), HostError> {
        if delta == 0 {
            // Envoy answers an increment of 0 with an error; it changes nothing anyway.
            return Ok(());
        }
        hostcalls::increment_metric(id, delta).map_err(host_error)
    }

    fn record(&mut self, id: MetricId, value: u64) -> Result<(), HostError> {
        hostcalls::record_metric(id, value).map_err(host_error)
    }
}

/// proxy-wasm shared data (process-wide, survives VM reloads).
pub(crate) struct HostSharedStore;

impl SharedStore for HostSharedStore {
    fn get(&self, key: &str) -> Result<Option<(Vec<u8>, Cas)>, HostError> {
        match hostcalls::get_shared_data(key).map_err(host_error)? {
            (Some(value), Some(cas)) => Ok(Some((value, cas))),
            // A value without a CAS token cannot be updated safely; an empty one was deleted.
            (Some(value), None) => Ok(Some((value, 0))),
            (None, _) => Ok(None),
        }
    }

    fn set(&self, key: &str, value: &[u8], cas: Option<Cas>) -> Result<(), HostError> {
        hostcalls::set_shared_data(key, Some(value), cas).map_err(host_error)
    }
}

/// The host's wall clock.
pub(crate) struct HostClock;

impl HostClock {
    pub(crate) fn try_now_unix_millis(&self) -> Result<u64, HostError> {
        let now = hostcalls::get_current_time().map_err(host_error)?;
        let since = now
            .duration_since(UNIX_EPOCH)
            .map_err(|_| HostError::Failed)?;
        Ok(u64::try_from(since.as_millis()).unwrap_or(u64::MAX))
    }
}

impl Clock for HostClock {
    fn now_unix_millis(&self) -> u64 {
        // The trait is infallible; a host without a clock reads as the epoch, which callers
        // treat as "unknown time" rather than failing the request.
        self.try_now_unix_millis().unwrap_or(0)
    }
}
