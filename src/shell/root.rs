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

use std::cell::RefCell;
use std::rc::Rc;
use std::time::Duration;

use proxy_wasm::hostcalls;
use proxy_wasm::traits::{Context, HttpContext, RootContext};
use proxy_wasm::types::{BufferType, ContextType, LogLevel, MapType};

use super::adapter::{self, TelemetryState};
use super::host::{HostClock, HostMetrics, HostSharedStore};
use super::http::Http;
use super::log;
use crate::admission;
use crate::budget::{self, LimitsCache};
use crate::config::Config;

/// How often each worker looks for newly pulled limits (and whether a pull is due).
const LIMITS_TICK: Duration = Duration::from_secs(1);

/// What every request of this VM reads. Envoy runs one VM per worker thread and calls it
/// single-threaded, so `Rc`/`RefCell` is enough.
pub(crate) struct Shared {
    pub(crate) config: Config,
    /// The budgets in effect in this worker: configured ones merged with pulled limits.
    pub(crate) limits: RefCell<LimitsCache>,
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
}

impl Root {
    pub(crate) fn new(context_id: u32) -> Self {
        Self {
            context_id,
            vm: Rc::new(VmState::default()),
            shared: None,
            pull_token: None,
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
                    self.log(LogLevel::Warn, &format!("{failed} budget metric updates failed"));
                }
            }
            Err(_) => self.log(LogLevel::Warn, "metrics state busy; budget stats dropped"),
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

    /// Starts a pull of the limits document if one is due and this worker holds the lease.
    fn maybe_pull(&mut self) {
        let Some(shared) = self.shared.clone() else { return };
        let Some(source) = &shared.config.budget.limits_source else { return };
        if self.pull_token.is_some() {
            return;
        }
        let now = match HostClock.try_now_unix_millis() {
            Ok(now) => now,
            Err(error) => {
                self.log(LogLevel::Warn, &format!("cannot read the clock: {error}"));
                return;
            }
        };
        let interval = source.interval_seconds.saturating_mul(1000);
        if !admission::claim_pull(&HostSharedStore, now, interval) {
            return;
        }
        let headers = vec![
            (":method", "GET"),
            (":path", source.path.as_str()),
            (":authority", source.authority.as_str()),
            ("accept", "application/json"),
        ];
        let timeout = Duration::from_millis(source.timeout_ms);
        match self.dispatch_http_call(&source.cluster, headers, None, vec![], timeout) {
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
}

impl Context for Root {
    fn on_http_call_response(
        &mut self,
        token_id: u32,
        _num_headers: usize,
        body_size: usize,
        _num_trailers: usize,
    ) {
        if self.pull_token != Some(token_id) {
            return;
        }
        self.pull_token = None;
        let status = match hostcalls::get_map_value_bytes(MapType::HttpCallResponseHeaders, ":status") {
            Ok(Some(s)) => String::from_utf8_lossy(&s).trim().parse::<u16>().ok(),
            // No headers: the call failed (timeout, no healthy host, reset).
            Ok(None) | Err(_) => None,
        };
        let body = match hostcalls::get_buffer(BufferType::HttpCallResponseBody, 0, body_size) {
            Ok(b) => b.unwrap_or_default(),
            Err(status) => {
                self.log(LogLevel::Warn, &format!("cannot read the limits response: {status:?}"));
                Vec::new()
            }
        };
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
        match adapter::parse_config(&bytes) {
            Ok(config) => {
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
                let limits = RefCell::new(LimitsCache::new(&config.budget));
                self.shared = Some(Rc::new(Shared {
                    config,
                    limits,
                    vm: Rc::clone(&self.vm),
                }));
                // Limits pulled before this reconfiguration stay in effect.
                if pulls {
                    self.refresh_limits();
                }
                let period = if pulls { LIMITS_TICK } else { Duration::ZERO };
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
    }

    fn create_http_context(&self, context_id: u32) -> Option<Box<dyn HttpContext>> {
        // Returning None makes the SDK panic; a context without configuration passes through.
        Some(Box::new(Http::new(context_id, self.shared.clone())))
    }

    fn get_type(&self) -> Option<ContextType> {
        Some(ContextType::HttpContext)
    }
}
