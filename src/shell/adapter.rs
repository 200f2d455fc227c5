//! The seam between the shell and the pipeline modules (`config`, `telemetry`).
//!
//! This file is the only place in the shell that knows the shapes of the configuration and
//! the telemetry plan, so that a change in either touches one file of the shell.

use crate::config::{Config, ConfigError};
use crate::host::{Metrics, SharedStore};
use crate::meter::Record;
use crate::telemetry;

pub(crate) use crate::telemetry::TelemetryState;

/// Parses the plugin configuration; an absent configuration is the same as `{}`. The error's
/// message names the offending field.
pub(crate) fn parse_config(bytes: &[u8]) -> Result<Config, ConfigError> {
    Config::from_json(bytes)
}

/// Telemetry state for a (re)configured plugin: the label cap comes from the configuration.
pub(crate) fn telemetry_state(config: &Config) -> TelemetryState {
    TelemetryState::new(config)
}

/// Filter-state pairs (key without the `wasm.` prefix, value) for one finished request.
pub(crate) fn filter_state(record: &Record) -> Vec<(&'static str, String)> {
    telemetry::filter_state(record)
}

/// The stat changes for one finished request; zero deltas are never planned. The label cap is
/// kept process-wide through shared data, so that every worker's VM admits the same values.
pub(crate) fn metric_plan(
    record: &Record,
    state: &mut TelemetryState,
    store: &dyn SharedStore,
) -> Vec<telemetry::MetricUpdate> {
    state.plan_shared(record, store)
}

/// The stat change for a request that is not LLM traffic.
pub(crate) fn passthrough_plan() -> Vec<telemetry::MetricUpdate> {
    telemetry::unrecognized_plan()
}

/// Applies a plan through the host; returns how many updates failed.
pub(crate) fn apply(metrics: &mut dyn Metrics, plan: &[telemetry::MetricUpdate]) -> u32 {
    telemetry::apply(plan, metrics)
}
