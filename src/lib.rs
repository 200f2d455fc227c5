//! tokenmeter: a proxy-wasm HTTP filter that meters, prices and caps LLM API traffic.
//!
//! The crate is split the way the filter is built. Everything except [`shell`] is the
//! sans-io core: plain Rust that never names `proxy_wasm`, unit-tested natively and on
//! wasm32. It turns bytes into facts (providers, stream framing, the incremental JSON
//! scanner), facts into money (usage normalisation, pricing, budgets) and money into names
//! (attribution, telemetry). The shell is the thin proxy-wasm layer that feeds it host
//! callbacks and carries its answers back to Envoy; host effects reach the core through the
//! traits in [`host`].

pub mod admission;
pub mod attribution;
pub mod budget;
pub mod config;
pub mod decode;
pub mod host;
pub mod json;
pub mod meter;
pub mod pricing;
pub mod retry;
pub mod providers;
pub mod stream;
pub mod telemetry;
pub mod usage;

#[cfg(target_arch = "wasm32")]
mod shell;
