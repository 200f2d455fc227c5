//! Admission by reservation: reserve before forwarding, settle when the exchange ends.
//!
//! Counting a request only after its response is how peers let concurrent requests overshoot
//! a limit. Here a request first *reserves* its worst-case estimate in every budget it
//! matches, with a compare-and-swap loop per budget key, and is rejected if a hard budget's
//! spent + reserved + this reservation would pass the limit. When the exchange ends (normally,
//! on client disconnect, or on upstream reset) [`settle`] releases the reservation and adds
//! the actual usage. So at any instant spent + reserved <= limit holds for a hard budget as long
//! as actual usage stays within estimates, and the overshoot is bounded by the estimation
//! error of the requests in flight (see `docs/budgets.md`).
//!
//! Several budgets are reserved all-or-nothing: when one rejects, the ones already reserved
//! are released before answering. A [`Reservation`] is consumed by [`settle`], so a request
//! cannot settle twice; the pipeline must call it exactly once on every path.

use super::config::{BudgetConfig, BudgetDef, MatchValue, Mode, StoreErrorPolicy, UnpricedPolicy};
use super::decision::{Decision, Outcome, RejectReason};
use super::estimate::Estimate;
use super::state::{state_key, Counters};
use super::window::{retry_after_secs, Window};
use super::BudgetError;
use crate::host::{HostError, SharedStore};
use crate::pricing::PicoUsd;

/// Looks up a request's attribution values by dimension name.
pub trait Dimensions {
    /// The request's value of `dimension`; `None` is treated as `unknown` (the attribution
    /// default), so requests without the header share one `unknown` budget.
    fn value(&self, dimension: &str) -> Option<&str>;
}

impl Dimensions for [(&str, &str)] {
    fn value(&self, dimension: &str) -> Option<&str> {
        self.iter().find(|(d, _)| *d == dimension).map(|(_, v)| *v)
    }
}

impl<const N: usize> Dimensions for [(&str, &str); N] {
    fn value(&self, dimension: &str) -> Option<&str> {
        self.as_slice().value(dimension)
    }
}

impl Dimensions for Vec<(String, String)> {
    fn value(&self, dimension: &str) -> Option<&str> {
        self.iter()
            .find(|(d, _)| d == dimension)
            .map(|(_, v)| v.as_str())
    }
}

impl Dimensions for std::collections::BTreeMap<String, String> {
    fn value(&self, dimension: &str) -> Option<&str> {
        self.get(dimension).map(String::as_str)
    }
}

impl Dimensions for std::collections::HashMap<String, String> {
    fn value(&self, dimension: &str) -> Option<&str> {
        self.get(dimension).map(String::as_str)
    }
}

/// One budget that matches a request, with the values that select its counters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Applicable<'c> {
    pub def: &'c BudgetDef,
    /// (dimension, request value) for every matched dimension, in the budget's order.
    pub values: Vec<(String, String)>,
}

/// The budgets that apply to one request.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Plan<'c> {
    pub budgets: Vec<Applicable<'c>>,
}

/// A sized handle on any [`Dimensions`] (slices included), so that it can be passed as
/// `&dyn Dimensions`.
struct AnyDims<'d, D: ?Sized>(&'d D);

impl<D: Dimensions + ?Sized> Dimensions for AnyDims<'_, D> {
    fn value(&self, dimension: &str) -> Option<&str> {
        self.0.value(dimension)
    }
}

impl<'c> Plan<'c> {
    /// Selects the budgets whose `match` the request satisfies.
    pub fn new(budgets: &'c [BudgetDef], dims: &(impl Dimensions + ?Sized)) -> Self {
        Self::select(budgets, &AnyDims(dims))
    }

    /// [`Plan::new`] once for every kind of `dims` (one copy of the loop in the module).
    fn select(budgets: &'c [BudgetDef], dims: &dyn Dimensions) -> Self {
        let mut out = Vec::new();
        'budgets: for def in budgets {
            let mut values = Vec::with_capacity(def.matcher.len());
            for (dim, want) in &def.matcher {
                let got = dims.value(dim).unwrap_or("unknown");
                if let MatchValue::Exact(v) = want {
                    if v != got {
                        continue 'budgets;
                    }
                }
                values.push((dim.clone(), got.to_string()));
            }
            out.push(Applicable { def, values });
        }
        Self { budgets: out }
    }

    /// The smallest output cap among the matching budgets.
    pub fn output_cap(&self) -> Option<u64> {
        self.budgets.iter().filter_map(|a| a.def.output_cap).min()
    }

    /// Whether any matching budget has a limit (else nothing needs reserving).
    pub fn has_limits(&self) -> bool {
        self.budgets.iter().any(|a| a.def.has_limit())
    }
}

/// What one request holds in shared data until it settles.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[must_use = "a reservation must be settled, or its budget stays held until the window ends"]
pub struct Reservation {
    entries: Vec<Held>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Held {
    budget_id: String,
    key: String,
    window_start: u64,
    /// The estimate reserved (or that would have been, when `held` is false).
    pico: u64,
    tokens: u64,
    /// False when the store failed and the request was let through without a reservation:
    /// settle then only adds the actual spend.
    held: bool,
}

impl Reservation {
    /// No budget to settle.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Budget ids this reservation touches, in configuration order.
    pub fn budget_ids(&self) -> impl Iterator<Item = &str> {
        self.entries.iter().map(|e| e.budget_id.as_str())
    }
}

/// One budget's state after admission, for the utilisation gauge.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Snapshot {
    pub budget_id: String,
    pub values: Vec<(String, String)>,
    pub outcome: Outcome,
    pub used_pico: u64,
    pub limit_usd: Option<PicoUsd>,
    pub used_tokens: u64,
    pub limit_tokens: Option<u64>,
    /// max(used/limit) over the budget's limits, in parts per million (may exceed 1e6).
    pub utilisation_ppm: u64,
    pub reset_unix_secs: u64,
    window: Window,
}

/// The answer to a reservation request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Admission {
    pub decision: Decision,
    /// Empty when rejected (everything already released) or when no budget has a limit.
    pub reservation: Reservation,
    /// Per-budget state for metrics, one per budget reached.
    pub snapshots: Vec<Snapshot>,
    /// Store failures met on the way (the decision already applied `on_store_error`).
    pub errors: Vec<BudgetError>,
}

/// What a request actually used, to settle with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Actual {
    /// `None` when unpriced: 0 USD is added, tokens still count.
    pub usd: Option<PicoUsd>,
    /// Input (including cache reads and writes) plus output tokens.
    pub tokens: u64,
}

/// The result of a settlement.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SettleReport {
    /// Budgets whose slot already moved two windows on: the spend belongs to a window that
    /// is over and is dropped (only requests longer than a whole window).
    pub late: u32,
    /// Budgets that could not be updated (store failure or CAS exhaustion).
    pub errors: Vec<BudgetError>,
}

enum Step<T> {
    Write(Counters, T),
    Keep(T),
}

/// One compare-and-swap read-modify-write of `key`, retried up to `retries` times.
fn update<S, T>(
    store: &S,
    key: &str,
    retries: u32,
    mut f: impl FnMut(Option<Counters>) -> Step<T>,
) -> Result<T, BudgetError>
where
    S: SharedStore + ?Sized,
{
    for _ in 0..retries.max(1) {
        let (current, cas) = match store.get(key) {
            Ok(Some((bytes, cas))) => {
                let c = Counters::decode(&bytes).map_err(|_| BudgetError::CorruptState {
                    key: key.to_string(),
                })?;
                (c, Some(cas))
            }
            Ok(None) | Err(HostError::NotAvailable) => (None, None),
            Err(source) => {
                return Err(BudgetError::Store {
                    key: key.to_string(),
                    source,
                })
            }
        };
        match f(current) {
            Step::Keep(t) => return Ok(t),
            // A key that does not exist yet is created without CAS (the proxy-wasm host has
            // no create-if-absent); see `prepare` and docs/budgets.md for the narrow race.
            Step::Write(next, t) => match store.set(key, &next.encode(), cas) {
                Ok(()) => return Ok(t),
                Err(HostError::CasMismatch) => continue,
                Err(source) => {
                    return Err(BudgetError::Store {
                        key: key.to_string(),
                        source,
                    })
                }
            },
        }
    }
    Err(BudgetError::CasExhausted {
        key: key.to_string(),
    })
}

/// Where one budget's counters live for the window containing `now_secs`.
struct Slot {
    key: String,
    window: Window,
    window_start: u64,
}

fn slot(a: &Applicable<'_>, now_secs: u64) -> Option<Slot> {
    let window = a.def.window?;
    let index = window.index(now_secs);
    Some(Slot {
        key: state_key(&a.def.id, window.name(), index % 2, &a.values),
        window,
        window_start: window.start_of_index(index),
    })
}

/// Creates the (empty) slots of budgets without `*` so that the first requests never create a
/// key without compare-and-swap. Call from the root context on configure; best effort.
pub fn prepare<S: SharedStore + ?Sized>(store: &S, budgets: &[BudgetDef]) -> Vec<BudgetError> {
    let mut errors = Vec::new();
    for def in budgets.iter().filter(|d| d.has_limit()) {
        let mut values = Vec::new();
        for (dim, v) in &def.matcher {
            match v {
                MatchValue::Exact(v) => values.push((dim.clone(), v.clone())),
                MatchValue::Each => continue,
            }
        }
        if values.len() != def.matcher.len() {
            continue;
        }
        let Some(window) = def.window else { continue };
        for s in 0..2 {
            let key = state_key(&def.id, window.name(), s, &values);
            match store.get(&key) {
                Ok(Some(_)) => {}
                Ok(None) | Err(HostError::NotAvailable) => {
                    if let Err(source) = store.set(&key, &[], None) {
                        errors.push(BudgetError::Store { key, source });
                    }
                }
                Err(source) => errors.push(BudgetError::Store { key, source }),
            }
        }
    }
    errors
}

/// `Retry-After` when a budget is only booked by requests in flight, not spent: LLM requests
/// settle within seconds to minutes, and sending the client to the end of the month would be
/// wrong when most reservations are released unspent.
pub const RESERVED_RETRY_SECS: u64 = 2;

fn exceeds(used: u64, add: u64, limit: u64) -> bool {
    // A zero-sized reservation still needs one unit of headroom: an exhausted budget
    // (used == limit, or a limit of 0) rejects everything.
    used.saturating_add(add.max(1)) > limit
}

fn ppm(used: u64, limit: u64) -> u64 {
    if limit == 0 {
        return if used == 0 { 0 } else { u64::MAX };
    }
    let v = u128::from(used) * 1_000_000 / u128::from(limit);
    u64::try_from(v).unwrap_or(u64::MAX)
}

fn snapshot(a: &Applicable<'_>, s: &Slot, c: &Counters, outcome: Outcome) -> Snapshot {
    let u_usd = a.def.limit_usd.map_or(0, |l| ppm(c.used_pico(), l.0));
    let u_tok = a.def.limit_tokens.map_or(0, |l| ppm(c.used_tokens(), l));
    Snapshot {
        budget_id: a.def.id.clone(),
        values: a.values.clone(),
        outcome,
        used_pico: c.used_pico(),
        limit_usd: a.def.limit_usd,
        used_tokens: c.used_tokens(),
        limit_tokens: a.def.limit_tokens,
        utilisation_ppm: u_usd.max(u_tok),
        reset_unix_secs: s.window.reset(c.window_start.max(s.window_start)),
        window: s.window,
    }
}

fn decision_from(
    s: &Snapshot,
    outcome: Outcome,
    reason: Option<RejectReason>,
    now_ms: u64,
) -> Decision {
    Decision {
        outcome,
        reason,
        budget_id: Some(s.budget_id.clone()),
        remaining_usd: s
            .limit_usd
            .map(|l| PicoUsd(l.0.saturating_sub(s.used_pico))),
        remaining_tokens: s.limit_tokens.map(|l| l.saturating_sub(s.used_tokens)),
        reset_unix_secs: Some(s.reset_unix_secs),
        retry_after_secs: Some(match reason {
            Some(RejectReason::Reserved) => {
                retry_after_secs(s.window, now_ms).min(RESERVED_RETRY_SECS)
            }
            _ => retry_after_secs(s.window, now_ms),
        }),
        store_error: false,
    }
}

enum Reserved {
    Ok {
        counters: Counters,
        soft_exceeded: bool,
    },
    Rejected {
        counters: Counters,
        reason: RejectReason,
    },
}

/// Reserves `estimate` in every budget of `plan` with a limit, all or nothing.
pub fn reserve<S: SharedStore + ?Sized>(
    store: &S,
    config: &BudgetConfig,
    plan: &Plan<'_>,
    estimate: &Estimate,
    now_unix_millis: u64,
) -> Admission {
    let now = now_unix_millis / 1000;
    let add_pico = estimate.usd.map_or(0, |u| u.0);
    let add_tokens = estimate.tokens();
    let mut entries: Vec<Held> = Vec::new();
    let mut snapshots: Vec<Snapshot> = Vec::new();
    let mut errors = Vec::new();
    let mut store_error = false;

    for a in &plan.budgets {
        let Some(s) = slot(a, now) else { continue };
        let def = a.def;
        let result = update(store, &s.key, config.cas_retries, |current| {
            // A record from an older window is that window's: this window starts at zero.
            let c = match current {
                Some(c) if c.window_start >= s.window_start => c,
                _ => Counters::fresh(s.window_start),
            };
            let over_usd = def
                .limit_usd
                .is_some_and(|l| exceeds(c.used_pico(), add_pico, l.0));
            let over_tokens = def
                .limit_tokens
                .is_some_and(|l| exceeds(c.used_tokens(), add_tokens, l));
            let unpriced_reject = estimate.usd.is_none()
                && def.limit_usd.is_some()
                && config.unpriced == UnpricedPolicy::Reject;
            if def.mode == Mode::Hard && (over_usd || over_tokens || unpriced_reject) {
                // Would the request fit if the reservations in flight settled at zero? Then
                // the budget is not spent, only booked, and a retry in seconds may succeed.
                let over_spent = def
                    .limit_usd
                    .is_some_and(|l| exceeds(c.spent_pico, add_pico, l.0))
                    || def
                        .limit_tokens
                        .is_some_and(|l| exceeds(c.spent_tokens, add_tokens, l));
                let reason = match (over_usd || over_tokens, over_spent) {
                    (true, true) => RejectReason::Limit,
                    (true, false) => RejectReason::Reserved,
                    (false, _) => RejectReason::Unpriced,
                };
                return Step::Keep(Reserved::Rejected {
                    counters: c,
                    reason,
                });
            }
            let mut n = c;
            n.reserved_pico = n.reserved_pico.saturating_add(add_pico);
            n.reserved_tokens = n.reserved_tokens.saturating_add(add_tokens);
            n.inflight = n.inflight.saturating_add(1);
            n.admitted = n.admitted.saturating_add(1);
            Step::Write(
                n,
                Reserved::Ok {
                    counters: n,
                    soft_exceeded: over_usd || over_tokens,
                },
            )
        });
        match result {
            Ok(Reserved::Ok {
                counters,
                soft_exceeded,
            }) => {
                let outcome = if soft_exceeded {
                    Outcome::SoftExceeded
                } else {
                    Outcome::Allowed
                };
                snapshots.push(snapshot(a, &s, &counters, outcome));
                entries.push(Held {
                    budget_id: def.id.clone(),
                    key: s.key,
                    window_start: counters.window_start,
                    pico: add_pico,
                    tokens: add_tokens,
                    held: true,
                });
            }
            Ok(Reserved::Rejected { counters, reason }) => {
                let snap = snapshot(a, &s, &counters, Outcome::Rejected);
                let decision =
                    decision_from(&snap, Outcome::Rejected, Some(reason), now_unix_millis);
                snapshots.push(snap);
                errors.extend(release(store, config.cas_retries, entries));
                return Admission {
                    decision: Decision {
                        store_error,
                        ..decision
                    },
                    reservation: Reservation::default(),
                    snapshots,
                    errors,
                };
            }
            Err(e) => {
                errors.push(e);
                store_error = true;
                match config.on_store_error {
                    StoreErrorPolicy::Allow => entries.push(Held {
                        budget_id: def.id.clone(),
                        key: s.key,
                        window_start: s.window_start,
                        pico: add_pico,
                        tokens: add_tokens,
                        held: false,
                    }),
                    StoreErrorPolicy::Reject => {
                        errors.extend(release(store, config.cas_retries, entries));
                        return Admission {
                            decision: Decision {
                                outcome: Outcome::Rejected,
                                reason: Some(RejectReason::StoreError),
                                budget_id: Some(def.id.clone()),
                                remaining_usd: None,
                                remaining_tokens: None,
                                reset_unix_secs: None,
                                retry_after_secs: Some(1),
                                store_error: true,
                            },
                            reservation: Reservation::default(),
                            snapshots,
                            errors,
                        };
                    }
                }
            }
        }
    }

    // Allowed. Report the first soft-exceeded budget, else the most utilised one.
    let binding = snapshots
        .iter()
        .find(|s| s.outcome == Outcome::SoftExceeded)
        .or_else(|| snapshots.iter().max_by_key(|s| s.utilisation_ppm));
    let decision = match binding {
        Some(s) => Decision {
            store_error,
            ..decision_from(s, s.outcome, None, now_unix_millis)
        },
        None => Decision {
            store_error,
            ..Decision::allowed()
        },
    };
    Admission {
        decision,
        reservation: Reservation { entries },
        snapshots,
        errors,
    }
}

/// Releases held reservations without spending (a later budget rejected the request).
fn release<S: SharedStore + ?Sized>(
    store: &S,
    retries: u32,
    entries: Vec<Held>,
) -> Vec<BudgetError> {
    let mut errors = Vec::new();
    for e in entries.iter().filter(|e| e.held) {
        let r = update(store, &e.key, retries, |current| match current {
            Some(c) if c.window_start == e.window_start => {
                let mut n = c;
                n.reserved_pico = n.reserved_pico.saturating_sub(e.pico);
                n.reserved_tokens = n.reserved_tokens.saturating_sub(e.tokens);
                n.inflight = n.inflight.saturating_sub(1);
                n.admitted = n.admitted.saturating_sub(1);
                Step::Write(n, ())
            }
            _ => Step::Keep(()),
        });
        if let Err(err) = r {
            errors.push(err);
        }
    }
    errors
}

/// Settles a reservation: releases what it held and adds what was actually used, in every
/// budget it reserved. Call exactly once per admitted request, on every ending (complete
/// response, client disconnect, upstream reset), with the usage seen so far.
pub fn settle<S: SharedStore + ?Sized>(
    store: &S,
    config: &BudgetConfig,
    reservation: Reservation,
    actual: Actual,
) -> SettleReport {
    let mut report = SettleReport::default();
    let add_pico = actual.usd.map_or(0, |u| u.0);
    for e in &reservation.entries {
        let r = update(store, &e.key, config.cas_retries, |current| {
            let mut n = match current {
                Some(c) if c.window_start == e.window_start => c,
                // Only a fail-open entry (nothing held) can find an older or missing record.
                Some(c) if c.window_start < e.window_start => Counters::fresh(e.window_start),
                None => Counters::fresh(e.window_start),
                Some(_) => return Step::Keep(false),
            };
            if e.held {
                n.reserved_pico = n.reserved_pico.saturating_sub(e.pico);
                n.reserved_tokens = n.reserved_tokens.saturating_sub(e.tokens);
                n.inflight = n.inflight.saturating_sub(1);
            }
            n.spent_pico = n.spent_pico.saturating_add(add_pico);
            n.spent_tokens = n.spent_tokens.saturating_add(actual.tokens);
            Step::Write(n, true)
        });
        match r {
            Ok(true) => {}
            Ok(false) => report.late = report.late.saturating_add(1),
            Err(err) => report.errors.push(err),
        }
    }
    report
}

/// Settles a request whose usage is entirely unknown (the stream ended before any usage was
/// reported and the pipeline has no estimate of its own) by charging the reservation itself.
/// Charging 0 instead would let a client evade a budget by disconnecting before the final
/// usage event; the reservation is the worst case the request was admitted for.
pub fn settle_reserved<S: SharedStore + ?Sized>(
    store: &S,
    config: &BudgetConfig,
    reservation: Reservation,
) -> SettleReport {
    let mut report = SettleReport::default();
    for e in reservation.entries {
        let charge = Actual {
            usd: Some(PicoUsd(e.pico)),
            tokens: e.tokens,
        };
        let one = Reservation { entries: vec![e] };
        let r = settle(store, config, one, charge);
        report.late = report.late.saturating_add(r.late);
        report.errors.extend(r.errors);
    }
    report
}

/// Reads one budget's current counters (for tests, debugging and the utilisation gauge).
pub fn read_counters<S: SharedStore + ?Sized>(
    store: &S,
    def: &BudgetDef,
    values: &[(String, String)],
    now_unix_millis: u64,
) -> Result<Option<Counters>, BudgetError> {
    let a = Applicable {
        def,
        values: values.to_vec(),
    };
    let Some(s) = slot(&a, now_unix_millis / 1000) else {
        return Ok(None);
    };
    match store.get(&s.key) {
        Ok(Some((bytes, _))) => match Counters::decode(&bytes) {
            Ok(Some(c)) if c.window_start == s.window_start => Ok(Some(c)),
            Ok(_) => Ok(None),
            Err(_) => Err(BudgetError::CorruptState { key: s.key }),
        },
        Ok(None) | Err(HostError::NotAvailable) => Ok(None),
        Err(source) => Err(BudgetError::Store { key: s.key, source }),
    }
}
