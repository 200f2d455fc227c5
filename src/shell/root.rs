//! The root context: plugin configuration and the state shared by every request of a VM.
//!
//! A configuration that does not parse is rejected (`on_configure` returns false, which makes
//! Envoy refuse the listener) with a log line naming the field; it is never half-applied.
//!
//! Budgets: on configure the root context creates the fixed budgets' shared-data keys and a
//! per-worker [`LimitsCache`]. With a `limits_source`, a one-second tick refreshes the cache
//! from shared data (cheap: it re-parses only when the stored document changed) and, when this
//! worker wins the pull lease, GETs the limits document through the configured cluster. A
//! document is stored only if it parses; a failed pull keeps the last good limits and is
//! counted.
//!
//! Prices: with `prices.litellm_source`, the same tick fetches the LiteLLM price list at start
//! (first tick, about a second after configure) and every `interval_seconds`, and swaps in the
//! table built from it (built-in < list < `prices.models`); until the first fetch succeeds the
//! table built at configure prices requests. A failed fetch or a body that does not import
//! keeps the last good table, is logged and counted, and is retried sooner than the interval.
//!
//! Each worker fetches for itself rather than one worker fetching and sharing the body
//! through shared data: every VM has to import the list into its own heap anyway (VMs share
//! no memory), and proxy-wasm returns shared data by copy, so sharing would save only the
//! download while keeping a second multi-megabyte copy in the host for the life of the process
//! and adding a lease whose failure modes the pricing path does not need. The cost is one GET
//! per worker per interval, from a cluster the operator chose.
//!
//! Configure and each applied fetch log, at info, how many models were imported, how long it
//! took (host clock) and the wasm linear memory before and after: memory never shrinks, so
//! "after" bounds the peak the import needed.

use std::cell::RefCell;
use std::rc::Rc;
use std::time::{Duration, SystemTime};

use proxy_wasm::hostcalls;
use proxy_wasm::traits::{Context, HttpContext, RootContext};
use proxy_wasm::types::{BufferType, ContextType, LogLevel, MapType, Status};

use super::adapter::{self, TelemetryState};
use super::host::{HostClock, HostMetrics, HostSharedStore};
use super::http::Http;
use super::log;
use crate::admission;
use crate::budget::{self, LimitsCache};
use crate::config::Config;

/// How often each worker looks for newly pulled limits (and whether a pull or a price-list
/// fetch is due).
const TICK: Duration = Duration::from_secs(1);
/// Delay before retrying a failed price-list fetch (at most the configured interval): soon
/// enough that a price server restart is picked up quickly, rare enough that a broken list is
/// not downloaded every second.
const PRICE_LIST_RETRY_MILLIS: u64 = 10_000;

/// What every request of this VM reads. Envoy runs one VM per worker thread and calls it
/// single-threaded, so `Rc`/`RefCell` is enough.
pub(crate) struct Shared {
    pub(crate) config: Config,
    /// The budgets in effect in this worker: configured ones merged with pulled limits.
    pub(crate) limits: Rc<RefCell<LimitsCache>>,
    /// Per-VM state that must survive reconfiguration: metric ids and cost carries.
    pub(crate) vm: Rc<VmState>,
}

#[derive(Default)]
pub(crate) struct VmState {
    pub(crate) metrics: RefCell<HostMetrics>,
    pub(crate) telemetry: RefCell<TelemetryState>,
}

pub(crate) struct Root {
    context_id: u32,
    vm: Rc<VmState>,
    shared: Option<Rc<Shared>>,
    /// Token of the limits pull in flight, if any.
    pull_token: Option<u32>,
    /// Token of the price-list fetch in flight, if any.
    price_token: Option<u32>,
    /// When the next price-list fetch is due (Unix ms; 0: on the next tick).
    price_due_millis: u64,
}

/// The wasm linear memory in KiB (64 KiB pages). It only grows, so a reading after an import
/// bounds the peak the import needed.
fn memory_kib() -> u64 {
    u64::try_from(core::arch::wasm32::memory_size::<0>()).unwrap_or(u64::MAX).saturating_mul(64)
}

/// Tenths of a millisecond since `start` on the host clock, `None` when the clock cannot be
/// read. Integers rather than an `f64` shown with `{:.1}`: core's fixed-precision float
/// formatting is several KB of wasm that nothing else needs.
fn elapsed_tenth_millis(start: Option<SystemTime>) -> Option<u64> {
    let now = hostcalls::get_current_time().ok()?;
    let micros = now.duration_since(start?).ok()?.as_micros();
    Some(u64::try_from(micros.saturating_add(50) / 100).unwrap_or(u64::MAX))
}

/// Shows an optional duration for a log line (`12.3 ms`).
fn shown_millis(tenths: Option<u64>) -> String {
    tenths.map_or_else(|| "? ms".to_string(), |t| format!("{}.{} ms", t / 10, t % 10))
}

impl Root {
    pub(crate) fn new(context_id: u32) -> Self {
        Self {
            context_id,
            vm: Rc::new(VmState::default()),
            shared: None,
            pull_token: None,
            price_token: None,
            price_due_millis: 0,
        }
    }

    fn log(&self, level: LogLevel, message: &str) {
        log(level, self.context_id, message);
    }

    fn count(&self, updates: &[crate::telemetry::MetricUpdate]) {
        match self.vm.metrics.try_borrow_mut() {
            Ok(mut metrics) => {
                let failed = adapter::apply(&mut *metrics, updates);
                if failed > 0 {
                    self.log(LogLevel::Warn, &format!("{failed} budget or price-list metric updates failed"));
                }
            }
            Err(_) => self.log(LogLevel::Warn, "metrics state busy; budget or price-list stats dropped"),
        }
    }

    /// Picks up limits another worker stored. A bad stored document keeps the last good limits.
    fn refresh_limits(&self) {
        let Some(shared) = &self.shared else { return };
        let Ok(mut cache) = shared.limits.try_borrow_mut() else {
            self.log(LogLevel::Warn, "limits cache busy; refresh skipped");
            return;
        };
        match cache.refresh(&HostSharedStore, &shared.config.budget, &[]) {
            Ok(true) => self.log(
                LogLevel::Info,
                &format!("budget limits updated (version {})", cache.version().unwrap_or("-")),
            ),
            Ok(false) => {}
            Err(error) => self.log(LogLevel::Warn, &format!("stored budget limits kept: {error}")),
        }
    }

    /// The clock, or `None` after logging why it could not be read.
    fn now_or_log(&self) -> Option<u64> {
        HostClock
            .try_now_unix_millis()
            .map_err(|error| self.log(LogLevel::Warn, &format!("cannot read the clock: {error}")))
            .ok()
    }

    /// Starts a GET of a JSON document from `cluster` (limits, price list); the answer comes
    /// to `on_http_call_response` under the returned token.
    fn get_json(&self, cluster: &str, path: &str, authority: &str, timeout_ms: u64) -> Result<u32, Status> {
        let headers = vec![
            (":method", "GET"),
            (":path", path),
            (":authority", authority),
            ("accept", "application/json"),
        ];
        self.dispatch_http_call(cluster, headers, None, vec![], Duration::from_millis(timeout_ms))
    }

    /// Starts a pull of the limits document if one is due and this worker holds the lease.
    fn maybe_pull(&mut self) {
        let Some(shared) = self.shared.clone() else { return };
        let Some(source) = &shared.config.budget.limits_source else { return };
        if self.pull_token.is_some() {
            return;
        }
        let Some(now) = self.now_or_log() else { return };
        let interval = source.interval_seconds.saturating_mul(1000);
        if !admission::claim_pull(&HostSharedStore, now, interval) {
            return;
        }
        match self.get_json(&source.cluster, &source.path, &source.authority, source.timeout_ms) {
            Ok(token) => self.pull_token = Some(token),
            Err(status) => {
                self.log(
                    LogLevel::Warn,
                    &format!("cannot pull budget limits from cluster {}: {status:?}", source.cluster),
                );
                self.count(&crate::telemetry::limits_pull_plan(false));
            }
        }
    }

    /// Starts a fetch of the LiteLLM price list if one is configured and due.
    fn maybe_fetch_prices(&mut self) {
        let Some(shared) = self.shared.clone() else { return };
        let Some(source) = &shared.config.prices.litellm_source else { return };
        if self.price_token.is_some() {
            return;
        }
        let Some(now) = self.now_or_log() else { return };
        if now < self.price_due_millis {
            return;
        }
        match self.get_json(&source.cluster, &source.path, &source.authority, source.timeout_ms) {
            Ok(token) => {
                self.price_token = Some(token);
                self.price_due_millis = now.saturating_add(source.interval_seconds.saturating_mul(1000));
            }
            Err(status) => {
                self.log(
                    LogLevel::Warn,
                    &format!("cannot fetch the price list from cluster {}: {status:?}", source.cluster),
                );
                self.price_fetch_failed(now);
            }
        }
    }

    /// Counts a failed price-list fetch and schedules the retry.
    fn price_fetch_failed(&mut self, now_millis: u64) {
        self.count(&crate::telemetry::price_list_fetch_plan(false));
        let interval = self
            .shared
            .as_ref()
            .and_then(|s| s.config.prices.litellm_source.as_ref())
            .map_or(PRICE_LIST_RETRY_MILLIS, |s| s.interval_seconds.saturating_mul(1000));
        self.price_due_millis = now_millis.saturating_add(interval.min(PRICE_LIST_RETRY_MILLIS));
    }

    /// A fetched price list: imported and swapped in, or refused with the last good table kept.
    fn on_price_list(&mut self, status: Option<u16>, body: &[u8]) {
        let Some(shared) = self.shared.clone() else { return };
        // A fetch started under a configuration that has since dropped the source.
        if shared.config.prices.litellm_source.is_none() {
            return;
        }
        let memory_before = memory_kib();
        let start = hostcalls::get_current_time().ok();
        let outcome = match status {
            Some(200) => shared.config.price_table_with_litellm(body).map_err(|e| e.to_string()),
            Some(s) => Err(format!("status {s}")),
            None => Err("no response".to_string()),
        };
        let took = elapsed_tenth_millis(start);
        match outcome {
            Ok((table, imported)) => {
                self.log(
                    LogLevel::Info,
                    &format!(
                        "prices: fetched LiteLLM list ({} bytes) imported {imported} models in {}; \
                         table {} has {} models; wasm memory {memory_before} -> {} KiB",
                        body.len(),
                        shown_millis(took),
                        table.version(),
                        table.len(),
                        memory_kib(),
                    ),
                );
                self.count(&crate::telemetry::price_list_fetch_plan(true));
                // Swapped in place: exchanges under way keep the table they took at their start.
                if !shared.config.set_price_table(table) {
                    self.log(LogLevel::Warn, "price table busy; fetched list dropped");
                }
            }
            Err(error) => {
                self.log(LogLevel::Warn, &format!("price list fetch failed, last good table kept: {error}"));
                match HostClock.try_now_unix_millis() {
                    Ok(now) => self.price_fetch_failed(now),
                    // Without a clock the retry waits for the interval set at dispatch.
                    Err(_) => self.count(&crate::telemetry::price_list_fetch_plan(false)),
                }
            }
        }
    }

    /// The status and body of a finished `dispatch_http_call`; no status when the call failed
    /// (timeout, no healthy host, reset).
    fn call_response(&self, body_size: usize, what: &str) -> (Option<u16>, Vec<u8>) {
        let status = match hostcalls::get_map_value_bytes(MapType::HttpCallResponseHeaders, ":status") {
            Ok(Some(s)) => String::from_utf8_lossy(&s).trim().parse::<u16>().ok(),
            Ok(None) | Err(_) => None,
        };
        let body = match hostcalls::get_buffer(BufferType::HttpCallResponseBody, 0, body_size) {
            Ok(b) => b.unwrap_or_default(),
            Err(status) => {
                self.log(LogLevel::Warn, &format!("cannot read the {what} response: {status:?}"));
                Vec::new()
            }
        };
        (status, body)
    }
}

impl Context for Root {
    fn on_http_call_response(
        &mut self,
        token_id: u32,
        _num_headers: usize,
        body_size: usize,
        _num_trailers: usize,
    ) {
        if self.price_token == Some(token_id) {
            self.price_token = None;
            let (status, body) = self.call_response(body_size, "price list");
            self.on_price_list(status, &body);
            return;
        }
        if self.pull_token != Some(token_id) {
            return;
        }
        self.pull_token = None;
        let (status, body) = self.call_response(body_size, "limits");
        let outcome = match status {
            Some(200) => budget::limits::store_limits(&HostSharedStore, &body, &[])
                .map(|doc| doc.version)
                .map_err(|e| e.to_string()),
            Some(s) => Err(format!("status {s}")),
            None => Err("no response".to_string()),
        };
        match outcome {
            Ok(version) => {
                self.log(
                    LogLevel::Info,
                    &format!("budget limits pulled (version {})", version.as_deref().unwrap_or("-")),
                );
                self.count(&crate::telemetry::limits_pull_plan(true));
                self.refresh_limits();
            }
            Err(error) => {
                self.log(LogLevel::Warn, &format!("budget limits pull failed, last good kept: {error}"));
                self.count(&crate::telemetry::limits_pull_plan(false));
            }
        }
    }
}

impl RootContext for Root {
    fn on_configure(&mut self, plugin_configuration_size: usize) -> bool {
        let bytes = match hostcalls::get_buffer(
            BufferType::PluginConfiguration,
            0,
            plugin_configuration_size,
        ) {
            Ok(bytes) => bytes.unwrap_or_default(),
            Err(status) => {
                log(
                    LogLevel::Error,
                    self.context_id,
                    &format!("cannot read the plugin configuration: {status:?}"),
                );
                return false;
            }
        };
        let memory_before = memory_kib();
        let start = hostcalls::get_current_time().ok();
        let parsed = adapter::parse_config(&bytes);
        let took = elapsed_tenth_millis(start);
        match parsed {
            Ok(config) => {
                // Dominated by an inline `prices.litellm` import when there is one.
                log(
                    LogLevel::Info,
                    self.context_id,
                    &format!(
                        "prices: {} models imported from prices.litellm; configuration ({} bytes) \
                         parsed in {}; table {} has {} models; wasm memory {memory_before} -> {} KiB",
                        config.prices.litellm_models,
                        bytes.len(),
                        shown_millis(took),
                        config.price_table().version(),
                        config.price_table().len(),
                        memory_kib(),
                    ),
                );
                // The label cap comes from the configuration: rebuild the telemetry state (what
                // it drops is under one nano-USD per series).
                match self.vm.telemetry.try_borrow_mut() {
                    Ok(mut telemetry) => *telemetry = adapter::telemetry_state(&config),
                    Err(_) => log(
                        LogLevel::Warn,
                        self.context_id,
                        "telemetry state busy; kept",
                    ),
                }
                // Budget state lives in shared data keyed by budget id, so it survives this
                // reconfiguration; only the fixed keys are created (best effort).
                for error in budget::prepare(&HostSharedStore, &config.budget.budgets) {
                    log(LogLevel::Warn, self.context_id, &format!("budget state: {error}"));
                }
                let pulls = config.budget.limits_source.is_some();
                let fetches = config.prices.litellm_source.is_some();
                let limits = Rc::new(RefCell::new(LimitsCache::new(&config.budget)));
                self.shared = Some(Rc::new(Shared {
                    config,
                    limits,
                    vm: Rc::clone(&self.vm),
                }));
                // Limits pulled before this reconfiguration stay in effect.
                if pulls {
                    self.refresh_limits();
                }
                // A new configuration fetches its price list on the next tick.
                self.price_due_millis = 0;
                let period = if pulls || fetches { TICK } else { Duration::ZERO };
                if let Err(status) = hostcalls::set_tick_period(period) {
                    log(LogLevel::Warn, self.context_id, &format!("cannot set the tick period: {status:?}"));
                }
                log(LogLevel::Info, self.context_id, "configured");
                true
            }
            Err(error) => {
                log(
                    LogLevel::Error,
                    self.context_id,
                    &format!("rejected plugin configuration: {error}"),
                );
                false
            }
        }
    }

    fn on_tick(&mut self) {
        self.refresh_limits();
        self.maybe_pull();
        self.maybe_fetch_prices();
    }

    fn create_http_context(&self, context_id: u32) -> Option<Box<dyn HttpContext>> {
        // Returning None makes the SDK panic; a context without configuration passes through.
        Some(Box::new(Http::new(context_id, self.shared.clone())))
    }

    fn get_type(&self) -> Option<ContextType> {
        Some(ContextType::HttpContext)
    }
}
