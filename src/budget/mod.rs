//! Budgets: per-customer / feature / user limits in USD and tokens, enforced by reservation.
//!
//! This is the sans-io core of budget enforcement. It owns the configuration and the pulled
//! limits document ([`config`]), window arithmetic ([`window`]), the counters kept in shared
//! data ([`state`]), the worst-case estimate of a request ([`mod@estimate`]), reservation and
//! settlement with compare-and-swap ([`ledger`]), the decision and the 429 in the caller's API
//! shape ([`decision`]), and output caps ([`caps`]). Shared data is reached only through
//! [`crate::host::SharedStore`], so every path, including CAS conflicts and store failures,
//! is tested in memory.
//!
//! The pipeline drives it in this order (see `docs/budgets.md`):
//! 1. root context: [`BudgetConfig`], [`ledger::prepare`], and for pulled limits
//!    [`limits::store_limits`] on each pull and [`LimitsCache::refresh`] on each tick;
//! 2. request body complete: [`admit()`] does steps 2 and 3 in one call.
//!    `Plan::new(cache.budgets(), &dims)`; if `plan.output_cap()` is
//!    set, [`caps::apply_output_cap`] and replace the body;
//! 3. [`estimate()`] with the model's price, then [`ledger::reserve`];
//!    rejected -> [`decision::rejection`] as a local reply; allowed -> keep the
//!    [`ledger::Reservation`] in the exchange;
//! 4. at the end of the exchange, whatever the ending: [`ledger::settle`] with the usage seen,
//!    or [`ledger::settle_reserved`] when nothing at all is known.

pub mod admit;
pub mod caps;
pub mod config;
pub mod decision;
pub mod estimate;
pub mod ledger;
pub mod limits;
pub mod state;
pub mod window;

pub use admit::{admit, AdmitRequest, Admitted};
pub use caps::{apply_output_cap, CapDialect, ChatField};
pub use config::{
    BudgetConfig, BudgetDef, LimitsDoc, LimitsSource, MatchValue, Mode, StoreErrorPolicy,
    UnpricedPolicy,
};
pub use decision::{rejection, Decision, ErrorDialect, Outcome, RejectReason, Rejection};
pub use estimate::{estimate, Estimate, EstimateInput};
pub use ledger::{
    prepare, reserve, settle, settle_reserved, Actual, Admission, Dimensions, Plan, Reservation,
    SettleReport, Snapshot,
};
pub use limits::LimitsCache;
pub use state::{Counters, LIMITS_KEY};
pub use window::Window;

use crate::host::HostError;
use thiserror::Error;

/// Everything that can go wrong in the budget layer.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum BudgetError {
    /// A configuration or limits-document field nobody reads (likely misspelt).
    #[error("{field}: unknown field")]
    UnknownField { field: String },
    /// A required field is absent.
    #[error("{field}: required")]
    Missing { field: String },
    /// A field has the wrong type or value.
    #[error("{field}: expected {expected}")]
    Invalid {
        field: String,
        expected: &'static str,
    },
    /// Two budgets share an id (ids key the shared-data state).
    #[error("{field}: duplicate budget id `{id}`")]
    DuplicateId { field: String, id: String },
    /// The configuration or document is not JSON.
    #[error("{field}: not valid JSON: {detail}")]
    NotJson { field: String, detail: String },
    /// Shared data failed.
    #[error("shared data `{key}`: {source}")]
    Store { key: String, source: HostError },
    /// Every compare-and-swap attempt lost against concurrent writers.
    #[error("shared data `{key}`: compare-and-swap retries exhausted")]
    CasExhausted { key: String },
    /// A budget record this version cannot read.
    #[error("shared data `{key}`: unreadable budget state")]
    CorruptState { key: String },
    /// The request body is larger than the output-cap rewrite will parse.
    #[error("request body larger than the {limit}-byte rewrite limit")]
    BodyTooLarge { limit: u64 },
    /// The request body is not a JSON object.
    #[error("request body is not a JSON object")]
    BodyNotJsonObject,
}
