//! The proxy-wasm shell: the only code that names `proxy_wasm`, compiled only on wasm32.
//!
//! It owns the Envoy side of the filter and nothing else: it reads the plugin configuration,
//! turns host callbacks into calls on the core's per-request [`crate::meter::Exchange`], and
//! carries the resulting record back to Envoy as filter state and stats. It never parses a
//! body, prices or decides; that keeps everything that can be wrong about bytes or money in
//! the sans-io core, where it is tested natively and on wasm32.
//!
//! Every host call's `Result` is handled: the failure is logged with the context id and the
//! callback takes its documented fallback (usually "let traffic continue unmetered").

mod adapter;
mod host;
mod http;
mod root;

use proxy_wasm::hostcalls;
use proxy_wasm::types::LogLevel;

proxy_wasm::main! {{
    // Installed before anything else runs so that a panic anywhere leaves a line in Envoy's
    // log; the release profile aborts after the hook, and FAIL_RELOAD brings a fresh VM up.
    std::panic::set_hook(Box::new(|info| {
        log(LogLevel::Critical, 0, &format!("panic: {info}"));
    }));
    proxy_wasm::set_root_context(|context_id| Box::new(root::Root::new(context_id)));
}}

/// Logs one line prefixed with the context id. A failed log call has nowhere left to be
/// reported, so it is dropped on purpose.
pub(crate) fn log(level: LogLevel, context_id: u32, message: &str) {
    let line = format!("[ctx {context_id}] {message}");
    if hostcalls::log(level, &line).is_err() {
        // Logging is the fallback of every other host call; there is no fallback for it.
    }
}
