//! The root context: plugin configuration and the state shared by every request of a VM.
//!
//! A configuration that does not parse is rejected (`on_configure` returns false, which makes
//! Envoy refuse the listener) with a log line naming the field; it is never half-applied.

use std::cell::RefCell;
use std::rc::Rc;

use proxy_wasm::hostcalls;
use proxy_wasm::traits::{Context, HttpContext, RootContext};
use proxy_wasm::types::{BufferType, ContextType, LogLevel};

use super::adapter::{self, TelemetryState};
use super::host::HostMetrics;
use super::http::Http;
use super::log;
use crate::config::Config;

/// What every request of this VM reads. Envoy runs one VM per worker thread and calls it
/// single-threaded, so `Rc`/`RefCell` is enough.
pub(crate) struct Shared {
    pub(crate) config: Config,
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
}

impl Root {
    pub(crate) fn new(context_id: u32) -> Self {
        Self { context_id, vm: Rc::new(VmState::default()), shared: None }
    }
}

impl Context for Root {}

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
                    Err(_) => log(LogLevel::Warn, self.context_id, "telemetry state busy; kept"),
                }
                self.shared = Some(Rc::new(Shared { config, vm: Rc::clone(&self.vm) }));
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

    fn create_http_context(&self, context_id: u32) -> Option<Box<dyn HttpContext>> {
        // Returning None makes the SDK panic; a context without configuration passes through.
        Some(Box::new(Http::new(context_id, self.shared.clone())))
    }

    fn get_type(&self) -> Option<ContextType> {
        Some(ContextType::HttpContext)
    }
}
