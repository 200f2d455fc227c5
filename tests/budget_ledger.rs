//! Reservation and settlement against the in-memory shared store: limits, all-or-nothing
//! admission, soft budgets, compare-and-swap conflicts (injected, and real ones produced by a
//! concurrent worker finishing its update between our read and our write), store failure
//! policies, window rollovers and calendar-month boundaries.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing, clippy::panic)]

use std::cell::RefCell;
use tokenmeter::budget::ledger::read_counters;
use tokenmeter::budget::window::days_from_civil;
use tokenmeter::budget::{
    prepare, reserve, settle, Actual, BudgetConfig, BudgetError, Counters, Decision, Estimate, Outcome, Plan,
    RejectReason,
};
use tokenmeter::host::fake::FakeStore;
use tokenmeter::host::{Cas, HostError, SharedStore};
use tokenmeter::pricing::PicoUsd;

const USD: u64 = 1_000_000_000_000;
/// 2026-11-27T08:00:00Z
const NOW: u64 = 1_795_766_400_000;

fn config(json: &str) -> BudgetConfig {
    BudgetConfig::parse(json.as_bytes()).unwrap()
}

fn est(usd_pico: u64, tokens: u64) -> Estimate {
    Estimate {
        prompt_tokens: tokens,
        output_tokens: 0,
        usd: Some(PicoUsd(usd_pico)),
    }
}

fn actual(usd_pico: u64, tokens: u64) -> Actual {
    Actual {
        usd: Some(PicoUsd(usd_pico)),
        tokens,
    }
}

fn acme() -> [(&'static str, &'static str); 2] {
    [("customer", "acme"), ("user", "alice")]
}

fn counters(store: &FakeStore, c: &BudgetConfig, i: usize, values: &[(&str, &str)], now: u64) -> Counters {
    let v: Vec<(String, String)> = values.iter().map(|(a, b)| (a.to_string(), b.to_string())).collect();
    read_counters(store, &c.budgets[i], &v, now).unwrap().unwrap_or_default()
}

const ONE_DOLLAR_DAY: &str =
    r#"{"budgets":[{"id":"acme-daily","match":{"customer":"acme"},"limit_usd":"1","window":"day"}]}"#;

#[test]
fn hard_limit_counts_reservations_of_requests_in_flight() {
    let c = config(ONE_DOLLAR_DAY);
    let store = FakeStore::default();
    let plan = Plan::new(&c.budgets, &acme()[..]);
    let a = reserve(&store, &c, &plan, &est(USD * 4 / 10, 100), NOW);
    let b = reserve(&store, &c, &plan, &est(USD * 4 / 10, 100), NOW);
    assert_eq!(a.decision.outcome, Outcome::Allowed);
    assert_eq!(b.decision.outcome, Outcome::Allowed);
    assert_eq!(b.decision.remaining_usd, Some(PicoUsd(USD * 2 / 10)));
    // Nothing has been spent yet, but 0.8 is reserved: a third 0.4 would pass the limit.
    let third = reserve(&store, &c, &plan, &est(USD * 4 / 10, 100), NOW);
    assert_eq!(third.decision.outcome, Outcome::Rejected);
    // Only booked, not spent: retry in seconds, not at midnight.
    assert_eq!(third.decision.reason, Some(RejectReason::Reserved));
    assert_eq!(third.decision.budget_id.as_deref(), Some("acme-daily"));
    assert!(third.reservation.is_empty());
    assert_eq!(third.decision.retry_after_secs, Some(2));
    assert_eq!(third.decision.reset_unix_secs, Some(NOW / 1000 + 16 * 3600));
    // The first request settles cheaper than estimated; its slack frees room.
    let r = settle(&store, &c, a.reservation, actual(USD / 10, 50));
    assert_eq!(r, Default::default());
    let k = counters(&store, &c, 0, &[("customer", "acme")], NOW);
    assert_eq!((k.spent_pico, k.reserved_pico, k.inflight), (USD / 10, USD * 4 / 10, 1));
    let fourth = reserve(&store, &c, &plan, &est(USD * 4 / 10, 100), NOW);
    assert_eq!(fourth.decision.outcome, Outcome::Allowed);
    let _ = settle(&store, &c, b.reservation, actual(USD * 4 / 10, 100));
    let _ = settle(&store, &c, fourth.reservation, actual(USD * 3 / 10, 100));
    let k = counters(&store, &c, 0, &[("customer", "acme")], NOW);
    assert_eq!((k.spent_pico, k.reserved_pico, k.reserved_tokens, k.inflight), (USD * 8 / 10, 0, 0, 0));
    assert_eq!((k.spent_tokens, k.admitted), (250, 3));
    // Now the spend itself leaves no room: wait for the window's reset.
    let fifth = reserve(&store, &c, &plan, &est(USD * 3 / 10, 100), NOW);
    assert_eq!(fifth.decision.reason, Some(RejectReason::Limit));
    assert_eq!(fifth.decision.retry_after_secs, Some(16 * 3600), "08:00 -> midnight UTC");
    assert_eq!(fifth.decision.remaining_usd, Some(PicoUsd(USD * 2 / 10)));
}

#[test]
fn other_customers_do_not_match() {
    let c = config(ONE_DOLLAR_DAY);
    let plan = Plan::new(&c.budgets, &[("customer", "globex")][..]);
    assert!(plan.budgets.is_empty());
    let store = FakeStore::default();
    let adm = reserve(&store, &c, &plan, &est(USD * 100, 1), NOW);
    assert_eq!(adm.decision, Decision::allowed());
    assert!(adm.reservation.is_empty());
    assert!(store.data.borrow().is_empty());
    // A missing dimension is `unknown`, which a literal budget does not match either.
    assert!(Plan::new(&c.budgets, &[("user", "x")][..]).budgets.is_empty());
}

#[test]
fn exhausted_and_zero_budgets_reject_even_free_requests() {
    let c = config(r#"{"budgets":[{"id":"z","limit_tokens":0,"window":"minute"}]}"#);
    let store = FakeStore::default();
    let plan = Plan::new(&c.budgets, &acme()[..]);
    let zero = Estimate {
        prompt_tokens: 0,
        output_tokens: 0,
        usd: None,
    };
    assert_eq!(reserve(&store, &c, &plan, &zero, NOW).decision.outcome, Outcome::Rejected);
    let c = config(r#"{"budgets":[{"id":"t","limit_tokens":100,"window":"minute"}]}"#);
    let plan = Plan::new(&c.budgets, &acme()[..]);
    let a = reserve(&store, &c, &plan, &est(0, 100), NOW);
    assert_eq!(a.decision.outcome, Outcome::Allowed);
    assert_eq!(a.decision.remaining_tokens, Some(0));
    assert_eq!(reserve(&store, &c, &plan, &zero, NOW).decision.outcome, Outcome::Rejected);
    let _ = settle(&store, &c, a.reservation, actual(0, 100));
}

const TWO: &str = r#"{"budgets":[
  {"id":"acme-monthly","match":{"customer":"acme"},"limit_usd":"10","window":"month"},
  {"id":"user-hourly","match":{"user":"*"},"limit_tokens":1000,"window":"hour"}
]}"#;

#[test]
fn several_budgets_reserve_all_or_nothing() {
    let c = config(TWO);
    let store = FakeStore::default();
    let plan = Plan::new(&c.budgets, &acme()[..]);
    assert_eq!(plan.budgets.len(), 2);
    let a = reserve(&store, &c, &plan, &est(USD, 900), NOW);
    assert_eq!(a.decision.outcome, Outcome::Allowed);
    assert_eq!(a.reservation.budget_ids().collect::<Vec<_>>(), vec!["acme-monthly", "user-hourly"]);
    // Most utilised budget is reported: 90% of the hourly tokens vs 10% of the monthly USD.
    assert_eq!(a.decision.budget_id.as_deref(), Some("user-hourly"));
    assert_eq!(a.decision.remaining_tokens, Some(100));
    assert_eq!(a.decision.remaining_usd, None);
    // The USD budget has room, the user's token budget does not: nothing may stay reserved.
    let b = reserve(&store, &c, &plan, &est(USD, 200), NOW);
    assert_eq!(b.decision.outcome, Outcome::Rejected);
    assert_eq!(b.decision.budget_id.as_deref(), Some("user-hourly"));
    assert!(b.errors.is_empty());
    let m = counters(&store, &c, 0, &[("customer", "acme")], NOW);
    assert_eq!((m.reserved_pico, m.inflight, m.admitted), (USD, 1, 1), "b's reservation was released");
    // Another user of the same customer has their own hourly budget.
    let bob = [("customer", "acme"), ("user", "bob")];
    let c2 = reserve(&store, &c, &Plan::new(&c.budgets, &bob[..]), &est(USD, 200), NOW);
    assert_eq!(c2.decision.outcome, Outcome::Allowed);
    let _ = settle(&store, &c, a.reservation, actual(USD / 2, 800));
    let _ = settle(&store, &c, c2.reservation, actual(USD / 2, 150));
    let m = counters(&store, &c, 0, &[("customer", "acme")], NOW);
    assert_eq!((m.spent_pico, m.reserved_pico, m.inflight, m.admitted), (USD, 0, 0, 2));
    assert_eq!(counters(&store, &c, 1, &[("user", "alice")], NOW).spent_tokens, 800);
    assert_eq!(counters(&store, &c, 1, &[("user", "bob")], NOW).spent_tokens, 150);
}

#[test]
fn soft_budget_allows_flags_and_keeps_counting() {
    let c = config(r#"{"budgets":[{"id":"s","limit_usd":"1","window":"day","mode":"soft"}]}"#);
    let store = FakeStore::default();
    let plan = Plan::new(&c.budgets, &acme()[..]);
    let a = reserve(&store, &c, &plan, &est(USD * 2, 10), NOW);
    assert_eq!(a.decision.outcome, Outcome::SoftExceeded);
    assert_eq!(a.decision.budget_id.as_deref(), Some("s"));
    assert_eq!(a.decision.remaining_usd, Some(PicoUsd(0)));
    let _ = settle(&store, &c, a.reservation, actual(USD * 3, 10));
    assert_eq!(counters(&store, &c, 0, &[], NOW).spent_pico, USD * 3);
}

#[test]
fn unpriced_models_reserve_no_usd_unless_configured_to_reject() {
    let unpriced = Estimate {
        prompt_tokens: 10,
        output_tokens: 10,
        usd: None,
    };
    let c = config(TWO);
    let store = FakeStore::default();
    let plan = Plan::new(&c.budgets, &acme()[..]);
    let a = reserve(&store, &c, &plan, &unpriced, NOW);
    assert_eq!(a.decision.outcome, Outcome::Allowed);
    let _ = settle(&store, &c, a.reservation, Actual { usd: None, tokens: 25 });
    assert_eq!(counters(&store, &c, 0, &[("customer", "acme")], NOW).spent_pico, 0);
    assert_eq!(counters(&store, &c, 1, &[("user", "alice")], NOW).spent_tokens, 25);

    let strict = config(&TWO.replacen("{\"budgets\"", "{\"unpriced\":\"reject\",\"budgets\"", 1));
    let r = reserve(&store, &strict, &Plan::new(&strict.budgets, &acme()[..]), &unpriced, NOW);
    assert_eq!(r.decision.outcome, Outcome::Rejected);
    assert_eq!(r.decision.reason, Some(RejectReason::Unpriced));
    assert_eq!(r.decision.budget_id.as_deref(), Some("acme-monthly"));
}

#[test]
fn injected_cas_conflicts_below_the_retry_bound_are_invisible() {
    let c = config(TWO);
    let store = FakeStore::default();
    let plan = Plan::new(&c.budgets, &acme()[..]);
    store.inject_cas_conflicts.set(c.cas_retries - 1);
    let a = reserve(&store, &c, &plan, &est(USD, 10), NOW);
    assert!(a.errors.is_empty(), "{:?}", a.errors);
    assert_eq!(a.decision.outcome, Outcome::Allowed);
    store.inject_cas_conflicts.set(c.cas_retries - 1);
    let r = settle(&store, &c, a.reservation, actual(USD, 10));
    assert!(r.errors.is_empty());
    let m = counters(&store, &c, 0, &[("customer", "acme")], NOW);
    assert_eq!((m.spent_pico, m.reserved_pico, m.inflight), (USD, 0, 0));
}

#[test]
fn cas_exhaustion_fails_open_by_default_and_still_counts_the_spend() {
    let c = config(ONE_DOLLAR_DAY);
    let store = FakeStore::default();
    let plan = Plan::new(&c.budgets, &acme()[..]);
    store.inject_cas_conflicts.set(c.cas_retries);
    let a = reserve(&store, &c, &plan, &est(USD / 2, 10), NOW);
    assert_eq!(a.decision.outcome, Outcome::Allowed);
    assert!(a.decision.store_error);
    assert!(matches!(a.errors.as_slice(), [BudgetError::CasExhausted { .. }]));
    assert_eq!(store.inject_cas_conflicts.get(), 0);
    // Nothing was held, but the actual spend is still added at settlement.
    let r = settle(&store, &c, a.reservation, actual(USD / 4, 10));
    assert!(r.errors.is_empty());
    let k = counters(&store, &c, 0, &[("customer", "acme")], NOW);
    assert_eq!((k.spent_pico, k.reserved_pico, k.inflight), (USD / 4, 0, 0));
}

#[test]
fn cas_exhaustion_fails_closed_when_configured_and_releases_earlier_budgets() {
    let c = config(&TWO.replacen("{\"budgets\"", "{\"on_store_error\":\"reject\",\"budgets\"", 1));
    let store = FakeStore::default();
    let plan = Plan::new(&c.budgets, &acme()[..]);
    // Warm both keys so that conflicts hit existing records, then let the first budget
    // through and exhaust the second: 1 successful write, then `cas_retries` conflicts.
    let w = reserve(&store, &c, &plan, &est(1, 1), NOW);
    let _ = settle(&store, &c, w.reservation, actual(0, 0));
    struct FailSecondKey<'a>(&'a FakeStore, RefCell<u32>);
    impl SharedStore for FailSecondKey<'_> {
        fn get(&self, key: &str) -> Result<Option<(Vec<u8>, Cas)>, HostError> {
            self.0.get(key)
        }
        fn set(&self, key: &str, value: &[u8], cas: Option<Cas>) -> Result<(), HostError> {
            if key.contains("user-hourly") && *self.1.borrow() > 0 {
                *self.1.borrow_mut() -= 1;
                return Err(HostError::CasMismatch);
            }
            self.0.set(key, value, cas)
        }
    }
    let failing = FailSecondKey(&store, RefCell::new(c.cas_retries));
    let a = reserve(&failing, &c, &plan, &est(USD, 10), NOW);
    assert_eq!(a.decision.outcome, Outcome::Rejected);
    assert_eq!(a.decision.reason, Some(RejectReason::StoreError));
    assert_eq!(a.decision.budget_id.as_deref(), Some("user-hourly"));
    assert!(a.reservation.is_empty());
    let m = counters(&store, &c, 0, &[("customer", "acme")], NOW);
    assert_eq!((m.reserved_pico, m.inflight), (0, 0), "monthly reservation released");
}

#[test]
fn store_failure_is_reported_not_unwrapped() {
    struct Broken;
    impl SharedStore for Broken {
        fn get(&self, _: &str) -> Result<Option<(Vec<u8>, Cas)>, HostError> {
            Err(HostError::Failed)
        }
        fn set(&self, _: &str, _: &[u8], _: Option<Cas>) -> Result<(), HostError> {
            Err(HostError::Failed)
        }
    }
    let c = config(TWO);
    let plan = Plan::new(&c.budgets, &acme()[..]);
    let a = reserve(&Broken, &c, &plan, &est(USD, 10), NOW);
    assert_eq!(a.decision.outcome, Outcome::Allowed);
    assert_eq!(a.errors.len(), 2);
    let r = settle(&Broken, &c, a.reservation, actual(USD, 10));
    assert!(matches!(r.errors.as_slice(), [BudgetError::Store { source: HostError::Failed, .. }, _]));
}

#[test]
fn corrupt_record_is_a_store_error() {
    let c = config(ONE_DOLLAR_DAY);
    let store = FakeStore::default();
    let plan = Plan::new(&c.budgets, &acme()[..]);
    let a = reserve(&store, &c, &plan, &est(1, 1), NOW);
    let key = store.data.borrow().keys().next().cloned().unwrap();
    store.set(&key, b"\x09garbage", None).unwrap();
    let b = reserve(&store, &c, &plan, &est(1, 1), NOW);
    assert!(matches!(b.errors.as_slice(), [BudgetError::CorruptState { .. }]));
    let _ = settle(&store, &c, a.reservation, actual(0, 0));
}

type Intruder<'a> = Box<dyn FnOnce(&FakeStore) + 'a>;

/// A store in which another worker completes a whole operation between our read and our
/// write, as two Envoy workers would: the CAS mismatch is real, not injected.
struct Interleaved<'a> {
    inner: &'a FakeStore,
    intruders: RefCell<Vec<Intruder<'a>>>,
}

impl SharedStore for Interleaved<'_> {
    fn get(&self, key: &str) -> Result<Option<(Vec<u8>, Cas)>, HostError> {
        self.inner.get(key)
    }
    fn set(&self, key: &str, value: &[u8], cas: Option<Cas>) -> Result<(), HostError> {
        let next = self.intruders.borrow_mut().pop();
        if let Some(f) = next {
            f(self.inner);
        }
        self.inner.set(key, value, cas)
    }
}

#[test]
fn concurrent_worker_between_read_and_write_cannot_double_book() {
    let c = config(ONE_DOLLAR_DAY);
    let store = FakeStore::default();
    let plan = Plan::new(&c.budgets, &acme()[..]);
    // Create the key first (creation is the one write without CAS).
    let w = reserve(&store, &c, &plan, &est(1, 1), NOW);
    let _ = settle(&store, &c, w.reservation, actual(0, 0));
    let other = RefCell::new(None);
    let s = Interleaved {
        inner: &store,
        intruders: RefCell::new(vec![Box::new(|inner: &FakeStore| {
            // The other worker reserves 0.7 while we hold a stale read showing 0 used.
            *other.borrow_mut() = Some(reserve(inner, &c, &plan, &est(USD * 7 / 10, 1), NOW));
        })]),
    };
    let mine = reserve(&s, &c, &plan, &est(USD * 7 / 10, 1), NOW);
    drop(s);
    let other = other.into_inner().unwrap();
    assert_eq!(other.decision.outcome, Outcome::Allowed);
    // Our write lost the CAS, we re-read 0.7 reserved and rejected: 1.4 would pass $1.
    assert_eq!(mine.decision.outcome, Outcome::Rejected);
    let k = counters(&store, &c, 0, &[("customer", "acme")], NOW);
    assert_eq!((k.reserved_pico, k.inflight), (USD * 7 / 10, 1));
    let _ = settle(&store, &c, other.reservation, actual(USD / 2, 1));
}

#[test]
fn new_window_starts_at_zero_and_late_settlements_land_in_their_own_window() {
    let c = config(r#"{"budgets":[{"id":"m","limit_tokens":100,"window":"minute"}]}"#);
    let store = FakeStore::default();
    let plan = Plan::new(&c.budgets, &acme()[..]);
    let t0 = NOW + 59_000; // 08:00:59
    let a = reserve(&store, &c, &plan, &est(0, 100), t0);
    assert_eq!(a.decision.retry_after_secs, Some(1));
    assert_eq!(reserve(&store, &c, &plan, &est(0, 1), t0).decision.outcome, Outcome::Rejected);
    // 08:01:00: a new window, a fresh budget, while `a` is still streaming.
    let t1 = NOW + 60_000;
    let b = reserve(&store, &c, &plan, &est(0, 100), t1);
    assert_eq!(b.decision.outcome, Outcome::Allowed);
    // `a` ends in the next window but settles into the window that admitted it.
    let r = settle(&store, &c, a.reservation, actual(0, 70));
    assert_eq!(r.late, 0);
    let old = counters(&store, &c, 0, &[], t0);
    assert_eq!((old.spent_tokens, old.reserved_tokens, old.inflight), (70, 0, 0));
    let cur = counters(&store, &c, 0, &[], t1);
    assert_eq!((cur.spent_tokens, cur.reserved_tokens, cur.inflight), (0, 100, 1));
    // Two windows later the first slot is reused; a request that outlived a whole window
    // finds its window gone and is reported late rather than corrupting the new one.
    let t2 = NOW + 120_000;
    let c2 = reserve(&store, &c, &plan, &est(0, 10), t2);
    assert_eq!(c2.decision.outcome, Outcome::Allowed);
    assert_eq!(c2.decision.remaining_tokens, Some(90));
    let t3 = NOW + 180_000;
    let _d = reserve(&store, &c, &plan, &est(0, 10), t3);
    let r = settle(&store, &c, b.reservation, actual(0, 5));
    assert_eq!(r.late, 1);
    assert_eq!(counters(&store, &c, 0, &[], t3).spent_tokens, 0);
    assert_eq!(store.data.borrow().len(), 2, "keys do not grow with windows");
}

fn at(y: u64, m: u32, d: u32, secs_of_day: u64) -> u64 {
    (days_from_civil(y, m, d) * 86_400 + secs_of_day) * 1000
}

#[test]
fn month_budget_resets_at_new_year() {
    let c = config(r#"{"budgets":[{"id":"mo","limit_usd":"1","window":"month"}]}"#);
    let store = FakeStore::default();
    let plan = Plan::new(&c.budgets, &acme()[..]);
    let dec31 = at(2026, 12, 31, 86_399) + 999;
    let a = reserve(&store, &c, &plan, &est(USD, 1), dec31);
    assert_eq!(a.decision.reset_unix_secs, Some(at(2027, 1, 1, 0) / 1000));
    assert_eq!(a.decision.retry_after_secs, Some(1));
    assert_eq!(reserve(&store, &c, &plan, &est(1, 1), dec31).decision.outcome, Outcome::Rejected);
    let jan1 = at(2027, 1, 1, 0);
    let b = reserve(&store, &c, &plan, &est(USD, 1), jan1);
    assert_eq!(b.decision.outcome, Outcome::Allowed);
    assert_eq!(b.decision.reset_unix_secs, Some(at(2027, 2, 1, 0) / 1000));
    let _ = settle(&store, &c, a.reservation, actual(USD, 1));
    let _ = settle(&store, &c, b.reservation, actual(USD / 2, 1));
    assert_eq!(counters(&store, &c, 0, &[], dec31).spent_pico, USD);
    assert_eq!(counters(&store, &c, 0, &[], jan1).spent_pico, USD / 2);
}

#[test]
fn leap_day_belongs_to_february() {
    let c = config(r#"{"budgets":[{"id":"mo","limit_usd":"1","window":"month"}]}"#);
    let store = FakeStore::default();
    let plan = Plan::new(&c.budgets, &acme()[..]);
    let feb29 = at(2028, 2, 29, 43_200);
    let a = reserve(&store, &c, &plan, &est(USD, 1), feb29);
    assert_eq!(a.decision.reset_unix_secs, Some(at(2028, 3, 1, 0) / 1000));
    assert_eq!(a.decision.retry_after_secs, Some(43_200));
    assert_eq!(reserve(&store, &c, &plan, &est(1, 1), at(2028, 2, 1, 0)).decision.outcome, Outcome::Rejected);
    assert_eq!(reserve(&store, &c, &plan, &est(USD, 1), at(2028, 3, 1, 0)).decision.outcome, Outcome::Allowed);
    let _ = settle(&store, &c, a.reservation, actual(0, 0));
}

#[test]
fn prepare_creates_literal_keys_only() {
    let c = config(TWO);
    let store = FakeStore::default();
    assert!(prepare(&store, &c.budgets).is_empty());
    let keys: Vec<String> = store.data.borrow().keys().cloned().collect();
    assert_eq!(keys.len(), 2, "{keys:?}");
    assert!(keys.iter().all(|k| k.contains("|acme-monthly|month|") && k.ends_with("customer=acme")));
    // Empty prepared records read as fresh and are then written with CAS.
    let a = reserve(&store, &c, &Plan::new(&c.budgets, &acme()[..]), &est(USD, 1), NOW);
    assert_eq!(a.decision.outcome, Outcome::Allowed);
    let _ = settle(&store, &c, a.reservation, actual(USD, 1));
    assert_eq!(counters(&store, &c, 0, &[("customer", "acme")], NOW).spent_pico, USD);
}

#[test]
fn cap_only_rules_cap_without_touching_the_store() {
    let c = config(r#"{"budgets":[{"id":"cap","match":{"feature":"*"},"output_cap":128},{"id":"cap2","output_cap":64}]}"#);
    let plan = Plan::new(&c.budgets, &[("feature", "x")][..]);
    assert_eq!(plan.output_cap(), Some(64));
    assert!(!plan.has_limits());
    let store = FakeStore::default();
    let a = reserve(&store, &c, &plan, &est(USD, 1), NOW);
    assert_eq!(a.decision, Decision::allowed());
    assert!(a.reservation.is_empty() && store.data.borrow().is_empty());
}

#[test]
fn unknown_usage_charges_the_reservation_so_disconnecting_cannot_evade_a_budget() {
    let c = config(TWO);
    let store = FakeStore::default();
    let plan = Plan::new(&c.budgets, &acme()[..]);
    let a = reserve(&store, &c, &plan, &est(USD / 3, 300), NOW);
    let r = tokenmeter::budget::settle_reserved(&store, &c, a.reservation);
    assert_eq!(r, Default::default());
    let m = counters(&store, &c, 0, &[("customer", "acme")], NOW);
    assert_eq!((m.spent_pico, m.spent_tokens, m.reserved_pico, m.inflight), (USD / 3, 300, 0, 0));
    let u = counters(&store, &c, 1, &[("user", "alice")], NOW);
    assert_eq!((u.spent_tokens, u.reserved_tokens, u.inflight), (300, 0, 0));
    // Fail-open admissions are charged their estimate too.
    store.inject_cas_conflicts.set(c.cas_retries * 2);
    let b = reserve(&store, &c, &plan, &est(USD / 3, 100), NOW);
    assert!(b.decision.store_error);
    let _ = tokenmeter::budget::settle_reserved(&store, &c, b.reservation);
    let m = counters(&store, &c, 0, &[("customer", "acme")], NOW);
    assert_eq!((m.spent_pico, m.reserved_pico, m.inflight), (USD / 3 * 2, 0, 0));
}
