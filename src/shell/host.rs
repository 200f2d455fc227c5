//! The core's host traits ([`crate::host`]) implemented with proxy-wasm host calls.
//!
//! proxy-wasm statuses are reduced to [`HostError`] the way the core can act on them:
//! `NotFound`/`BadArgument` mean "not available", `CasMismatch` is a lost compare-and-swap,
//! anything else is a failure. Metric ids are cached per full stat name because
//! `define_metric` is a host round trip and the same names recur on every request.

use std::time::UNIX_EPOCH;

use proxy_wasm::hostcalls;
use proxy_wasm::types::{MapType, MetricType, Status};

use crate::host::{Cas, Clock, HostError, MetricId, MetricKind, Metrics, NameMap, SharedStore};

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
    ids: [NameMap<MetricId>; 3],
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

/// A header map as (name, value) bytes, in the host's order.
pub(crate) type HeaderPairs = Vec<(Vec<u8>, Vec<u8>)>;

/// All pairs of a header map in one host call, names and values as bytes.
///
/// One `proxy_get_header_map_pairs` costs about as much as two single-header reads that find
/// a value (each value read makes the host call back into the module's allocator), and the
/// request head is consulted for up to a dozen names (route, attribution, retries, encoding),
/// most of them absent. The SDK's own `get_map_bytes` unwraps the UTF-8 conversion of every
/// name, so a name that is not UTF-8 would abort the VM; this reads the same host buffer and
/// parses it without a panic path (a malformed buffer yields the pairs read so far).
pub(crate) fn header_pairs(map: MapType) -> Result<HeaderPairs, HostError> {
    let bytes = raw::header_map_pairs(map as u32)?;
    Ok(parse_pairs(&bytes))
}

/// The proxy-wasm map encoding: `u32` count, `count` pairs of `u32` (name length, value
/// length), then each name and value followed by a NUL byte. Lengths are little-endian.
fn parse_pairs(bytes: &[u8]) -> HeaderPairs {
    let u32_at = |at: usize| -> Option<usize> {
        let word = bytes.get(at..at.checked_add(4)?)?;
        usize::try_from(u32::from_le_bytes(<[u8; 4]>::try_from(word).ok()?)).ok()
    };
    let Some(count) = u32_at(0) else { return Vec::new() };
    // Each pair takes at least 10 bytes; a count beyond that is a malformed buffer.
    let count = count.min(bytes.len() / 10);
    let mut pairs = Vec::with_capacity(count);
    let Some(mut at) = count.checked_mul(8).and_then(|n| n.checked_add(4)) else { return pairs };
    for n in 0..count {
        let sizes = n.checked_mul(8).and_then(|s| s.checked_add(4)).and_then(|s| Some((u32_at(s)?, u32_at(s.checked_add(4)?)?)));
        let Some((name_len, value_len)) = sizes else { break };
        let name_end = at.saturating_add(name_len);
        let value_at = name_end.saturating_add(1);
        let value_end = value_at.saturating_add(value_len);
        let (Some(name), Some(value)) = (bytes.get(at..name_end), bytes.get(value_at..value_end)) else { break };
        pairs.push((name.to_vec(), value.to_vec()));
        at = value_end.saturating_add(1);
    }
    pairs
}

/// The one host import the SDK offers no panic-free wrapper for.
#[allow(unsafe_code)]
mod raw {
    use crate::host::HostError;

    #[link(wasm_import_module = "env")]
    extern "C" {
        // Declared as the SDK declares it (same import), with plain integers so that an
        // unexpected status from the host is a value, not an invalid enum.
        fn proxy_get_header_map_pairs(map_type: u32, return_data: *mut *mut u8, return_size: *mut usize) -> u32;
    }

    const OK: u32 = 0;
    const NOT_FOUND: u32 = 1;
    const BAD_ARGUMENT: u32 = 2;

    pub(super) fn header_map_pairs(map_type: u32) -> Result<Vec<u8>, HostError> {
        let mut data: *mut u8 = std::ptr::null_mut();
        let mut size: usize = 0;
        // SAFETY: the host writes a pointer and a size into the two out-parameters. The pointer
        // is either null or a block of exactly `size` bytes that the host obtained from this
        // module's `proxy_on_memory_allocate` (the SDK's allocator: a leaked boxed slice of
        // `size` bytes), whose ownership passes to us; rebuilding it as a Vec of that length
        // and capacity frees it exactly as the SDK's own wrappers do.
        let status = unsafe { proxy_get_header_map_pairs(map_type, &mut data, &mut size) };
        match status {
            OK if data.is_null() => Ok(Vec::new()),
            // SAFETY: see above; `data` is non-null here.
            OK => Ok(unsafe { Vec::from_raw_parts(data, size, size) }),
            NOT_FOUND | BAD_ARGUMENT => Err(HostError::NotAvailable),
            _ => Err(HostError::Failed),
        }
    }
}
