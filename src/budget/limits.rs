//! Limits pulled at run time: stored once in shared data, picked up by every worker.
//!
//! The root context pulls the limits document from the billing system and, only if it parses
//! and names known dimensions, stores the raw bytes under [`LIMITS_KEY`] ([`store_limits`]).
//! Every worker's root context then calls [`LimitsCache::refresh`] on its timer: it re-parses
//! only when the key's CAS changed, and keeps the last good budgets if anything goes wrong, so
//! a bad pull or a bad document never removes limits that were working. Refreshing on the
//! timer rather than per request matters: proxy-wasm returns shared data by copy, and copying
//! a document of thousands of budgets on every request would dominate the filter's cost.

use super::config::{validate_dimensions, BudgetConfig, BudgetDef, LimitsDoc};
use super::state::LIMITS_KEY;
use super::BudgetError;
use crate::host::{Cas, HostError, SharedStore};

/// Validates a pulled document and stores it for all workers. Returns the parsed document
/// (for logging its version). On error nothing is written: the last good limits stay.
pub fn store_limits<S: SharedStore + ?Sized>(
    store: &S,
    body: &[u8],
    extra_dimensions: &[&str],
) -> Result<LimitsDoc, BudgetError> {
    let doc = LimitsDoc::parse(body)?;
    validate_dimensions(&doc.budgets, "budgets", extra_dimensions)?;
    // Unconditional: every puller writes a whole, valid document; the last one wins.
    store
        .set(LIMITS_KEY, body, None)
        .map_err(|source| BudgetError::Store {
            key: LIMITS_KEY.to_string(),
            source,
        })?;
    Ok(doc)
}

/// The budgets in effect in one worker: configured budgets merged with the last good pulled
/// document.
#[derive(Debug, Clone, Default)]
pub struct LimitsCache {
    cas: Option<Cas>,
    version: Option<String>,
    budgets: Vec<BudgetDef>,
}

impl LimitsCache {
    /// Starts with the configured budgets.
    pub fn new(config: &BudgetConfig) -> Self {
        Self {
            cas: None,
            version: None,
            budgets: config.budgets.clone(),
        }
    }

    /// The budgets to plan requests against.
    pub fn budgets(&self) -> &[BudgetDef] {
        &self.budgets
    }

    /// `version` of the pulled document in effect, if any.
    pub fn version(&self) -> Option<&str> {
        self.version.as_deref()
    }

    /// Picks up a newly stored document. `Ok(true)` when the budgets changed; on error the
    /// previous budgets stay in effect.
    pub fn refresh<S: SharedStore + ?Sized>(
        &mut self,
        store: &S,
        config: &BudgetConfig,
        extra_dimensions: &[&str],
    ) -> Result<bool, BudgetError> {
        let (bytes, cas) = match store.get(LIMITS_KEY) {
            Ok(Some(v)) => v,
            Ok(None) | Err(HostError::NotAvailable) => return Ok(false),
            Err(source) => {
                return Err(BudgetError::Store {
                    key: LIMITS_KEY.to_string(),
                    source,
                })
            }
        };
        if self.cas == Some(cas) || bytes.is_empty() {
            return Ok(false);
        }
        // Remember the CAS even if the document is bad, so that it is not re-parsed (and
        // re-reported) on every tick until a new one arrives.
        self.cas = Some(cas);
        let doc = LimitsDoc::parse(&bytes)?;
        validate_dimensions(&doc.budgets, "budgets", extra_dimensions)?;
        self.budgets = doc.merge_into(&config.budgets);
        self.version = doc.version;
        Ok(true)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::indexing_slicing)]
mod tests {
    use super::*;
    use crate::host::fake::FakeStore;
    use crate::pricing::PicoUsd;

    const CONFIG: &str = r#"{"budgets":[{"id":"a","limit_usd":"1","window":"day"}]}"#;

    #[test]
    fn pulled_limits_reach_every_worker_and_bad_pulls_keep_the_last_good() {
        let config = BudgetConfig::parse(CONFIG.as_bytes()).unwrap();
        let store = FakeStore::default();
        let mut w1 = LimitsCache::new(&config);
        let mut w2 = LimitsCache::new(&config);
        assert_eq!(w1.refresh(&store, &config, &[]), Ok(false));
        assert_eq!(w1.budgets()[0].limit_usd, Some(PicoUsd(1_000_000_000_000)));

        let doc = br#"{"version":"v2","budgets":[{"id":"a","limit_usd":"2","window":"day"}]}"#;
        assert_eq!(
            store_limits(&store, doc, &[]).unwrap().version.as_deref(),
            Some("v2")
        );
        for w in [&mut w1, &mut w2] {
            assert_eq!(w.refresh(&store, &config, &[]), Ok(true));
            assert_eq!(
                w.refresh(&store, &config, &[]),
                Ok(false),
                "unchanged CAS: no re-parse"
            );
            assert_eq!(w.budgets()[0].limit_usd, Some(PicoUsd(2_000_000_000_000)));
            assert_eq!(w.version(), Some("v2"));
        }

        // A bad pull is refused before it reaches shared data.
        let bad = br#"{"budgets":[{"id":"a","limit_usd":"two","window":"day"}]}"#;
        assert!(store_limits(&store, bad, &[]).is_err());
        let unknown_dim =
            br#"{"budgets":[{"id":"a","match":{"team":"x"},"limit_usd":"3","window":"day"}]}"#;
        assert!(store_limits(&store, unknown_dim, &[]).is_err());
        assert_eq!(w1.refresh(&store, &config, &[]), Ok(false));
        // Even a bad document written behind our back leaves the last good budgets in place.
        store.set(LIMITS_KEY, b"{", None).unwrap();
        assert!(w1.refresh(&store, &config, &[]).is_err());
        assert_eq!(w1.refresh(&store, &config, &[]), Ok(false));
        assert_eq!(w1.budgets()[0].limit_usd, Some(PicoUsd(2_000_000_000_000)));
    }
}
