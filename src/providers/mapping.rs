//! The declarative core of every extractor: a table from JSON paths to [`Usage`] fields and
//! response facts, applied by one [`Visitor`].
//!
//! Provider modules only list rules; this module owns the single merge rule of the crate:
//! a later value for a field replaces the earlier one. That covers Anthropic's
//! `message_start` + cumulative `message_delta`, OpenAI's final `choices: []` chunk and the
//! Responses API lifecycle events without any provider-specific merging code. `null`
//! never erases a value that was reported.

use crate::json::{Path, Scalar, Step, Visitor};
use crate::usage::Usage;

use super::ResponseFacts;

/// Where a matched value goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Target {
    Input,
    Output,
    CacheRead,
    CacheCreation,
    CacheCreation5m,
    CacheCreation1h,
    Reasoning,
    WebSearch,
    WebFetch,
    Model,
    Id,
    FinishReason,
    ServiceTier,
    /// Generated text; only its size is kept, to estimate output when usage is missing.
    OutputText,
}

impl Target {
    /// Targets whose string text must be captured (others are counters or sizes).
    fn captures_text(self) -> bool {
        matches!(
            self,
            Target::Model | Target::Id | Target::FinishReason | Target::ServiceTier
        )
    }
}

/// One mapping: the value at exactly `path` goes to `target`.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Rule {
    pub(crate) path: &'static [Step],
    pub(crate) target: Target,
}

pub(crate) const fn rule(path: &'static [Step], target: Target) -> Rule {
    Rule { path, target }
}

/// Applies a rule table to scanned values, accumulating usage and facts.
#[derive(Debug, Clone)]
pub(crate) struct Extractor {
    rules: &'static [Rule],
    pub(crate) usage: Usage,
    pub(crate) facts: ResponseFacts,
}

impl Extractor {
    pub(crate) fn new(rules: &'static [Rule]) -> Self {
        Self {
            rules,
            usage: Usage::default(),
            facts: ResponseFacts::default(),
        }
    }

    fn find(&self, path: &Path<'_>) -> Option<Target> {
        // Cheapest test first: most scalars sit at a depth no rule has.
        let len = path.len();
        self.rules
            .iter()
            .find(|r| r.path.len() == len && path.matches(r.path))
            .map(|r| r.target)
    }

    fn counter(&mut self, target: Target) -> Option<&mut Option<u64>> {
        let u = &mut self.usage;
        Some(match target {
            Target::Input => &mut u.input_tokens,
            Target::Output => &mut u.output_tokens,
            Target::CacheRead => &mut u.cache_read_tokens,
            Target::CacheCreation => &mut u.cache_creation_tokens,
            Target::CacheCreation5m => &mut u.cache_creation_5m_tokens,
            Target::CacheCreation1h => &mut u.cache_creation_1h_tokens,
            Target::Reasoning => &mut u.reasoning_tokens,
            Target::WebSearch => &mut u.web_search_requests,
            Target::WebFetch => &mut u.web_fetch_requests,
            _ => return None,
        })
    }

    fn label(&mut self, target: Target) -> Option<&mut Option<String>> {
        let f = &mut self.facts;
        Some(match target {
            Target::Model => &mut f.model,
            Target::Id => &mut f.id,
            Target::FinishReason => &mut f.finish_reason,
            Target::ServiceTier => &mut f.service_tier,
            _ => return None,
        })
    }
}

impl Visitor for Extractor {
    fn wants_string(&mut self, path: &Path<'_>) -> bool {
        self.find(path).is_some_and(Target::captures_text)
    }

    fn scalar(&mut self, path: &Path<'_>, value: Scalar<'_>) {
        let Some(target) = self.find(path) else {
            return;
        };
        if target == Target::OutputText {
            if let Scalar::String(s) = value {
                self.facts.output_text_bytes =
                    self.facts.output_text_bytes.saturating_add(s.raw_len);
            }
            return;
        }
        if let Some(n) = value.as_u64() {
            if let Some(slot) = self.counter(target) {
                *slot = Some(n);
            }
            return;
        }
        if let Some(text) = value.as_str() {
            // An empty id (some compatible servers send "") says nothing; keep what we had.
            if text.is_empty() {
                return;
            }
            if let Some(slot) = self.label(target) {
                match slot {
                    Some(existing) if existing == text => {}
                    _ => *slot = Some(text.to_owned()),
                }
            }
        }
    }
}
