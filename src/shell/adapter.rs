//! The seam between the shell and the pipeline modules (`config`, `telemetry`).
//!
//! The shell was written against stubs; this file is the only place that knows their exact
//! shapes, so that merging the real `Config::from_json` and telemetry plan changes this file
//! and nothing else in the shell. Until then it accepts `{}` and publishes what the stub
//! `Record` holds (nothing).

use thiserror::Error;

use crate::config::Config;
use crate::host::{MetricKind, Metrics};
use crate::meter::Record;

/// Counter of requests that were not recognised as LLM traffic and passed through untouched.
/// Not part of the labelled output contract; named here until `telemetry` owns it.
pub(crate) const PASSTHROUGH_REQUESTS: &str = "tokenmeter_unrecognized_requests_total";

/// Why the plugin configuration was rejected; the message names the field.
#[derive(Debug, Error)]
pub(crate) enum ShellConfigError {
    #[error("plugin configuration is not valid JSON: {0}")]
    Json(#[from] serde_json::Error),
    #[error("plugin configuration must be a JSON object")]
    NotAnObject,
    #[error("plugin configuration: unknown field `{0}`")]
    UnknownField(String),
}

/// Parses the plugin configuration. An absent configuration is the same as `{}`.
pub(crate) fn parse_config(bytes: &[u8]) -> Result<Config, ShellConfigError> {
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Ok(Config::default());
    }
    let value: serde_json::Value = serde_json::from_slice(bytes)?;
    let object = value.as_object().ok_or(ShellConfigError::NotAnObject)?;
    if let Some(field) = object.keys().next() {
        return Err(ShellConfigError::UnknownField(field.clone()));
    }
    Ok(Config::default())
}

/// Per-VM telemetry state that outlives requests (cost carry, label cardinality).
#[derive(Default)]
pub(crate) struct TelemetryState {}

/// Filter-state pairs (key without the `wasm.` prefix, value) for one finished request.
pub(crate) fn filter_state(_record: &Record) -> Vec<(&'static str, String)> {
    Vec::new()
}

/// One stat change derived from a record.
pub(crate) struct MetricUpdate {
    pub(crate) kind: MetricKind,
    pub(crate) name: String,
    pub(crate) delta: u64,
}

/// The stat changes for one finished request; zero deltas are never returned.
pub(crate) fn metric_plan(_record: &Record, _state: &mut TelemetryState) -> Vec<MetricUpdate> {
    Vec::new()
}

/// Defines (cached) and increments the counter for a passthrough request.
pub(crate) fn passthrough_update() -> MetricUpdate {
    MetricUpdate { kind: MetricKind::Counter, name: PASSTHROUGH_REQUESTS.to_string(), delta: 1 }
}

/// Applies updates, returning the first error with the metric name for the caller to log.
pub(crate) fn apply(metrics: &mut dyn Metrics, updates: &[MetricUpdate]) -> Vec<(String, crate::host::HostError)> {
    let mut errors = Vec::new();
    for update in updates.iter().filter(|u| u.delta > 0) {
        let result = metrics.define(update.kind, &update.name).and_then(|id| match update.kind {
            MetricKind::Counter | MetricKind::Gauge => {
                metrics.increment(id, i64::try_from(update.delta).unwrap_or(i64::MAX))
            }
            MetricKind::Histogram => metrics.record(id, update.delta),
        });
        if let Err(e) = result {
            errors.push((update.name.clone(), e));
        }
    }
    errors
}
