//! The declarative core of every extractor: a table from JSON paths to [`Usage`] fields and
//! response facts, applied by one [`Visitor`].
//!
//! Provider modules only list rules; this module owns the single merge rule of the crate:
//! a later value for a field replaces the earlier one. That covers Anthropic's
//! `message_start` + cumulative `message_delta`, OpenAI's final `choices: []` chunk and the
//! Responses API lifecycle events without any provider-specific merging code. `null`
//! never erases a value that was reported.

use std::borrow::Cow;
use std::sync::OnceLock;

use crate::json::{Interest, Path, Scalar, Step, Visitor};
use crate::pricing::{parse_scaled, PicoUsd};
use crate::usage::Usage;

/// Decimal places from USD to pico-USD.
const PICO_PER_USD_DIGITS: u32 = 12;

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
    /// Gemini `toolUsePromptTokenCount`: input billed apart from the prompt count.
    ToolUsePrompt,
    WebSearch,
    WebFetch,
    Model,
    Id,
    FinishReason,
    ServiceTier,
    /// Generated text; only its size is kept, to estimate output when usage is missing.
    OutputText,
    /// The provider-reported cost in USD (OpenRouter `usage.cost`), read from the number's
    /// exact text: a float would turn `0.000093` into a neighbour and drift in counters.
    Cost,
    /// OpenRouter BYOK: what the upstream provider billed to the caller's own key
    /// (`usage.cost_details.upstream_inference_cost`); `Cost` is then only OpenRouter's fee.
    UpstreamCost,
    /// OpenRouter `usage.is_byok`: whether `UpstreamCost` is billed on top of `Cost`.
    Byok,
    /// The `type` of a Responses API output item; each `web_search_call` is one billed
    /// search. Counted per top-level value (one response object) and then assigned, so the
    /// items repeated by later events replace rather than add.
    OutputItemType,
}

impl Target {
    /// Targets whose string text must be captured (others are counters or sizes).
    fn captures_text(self) -> bool {
        matches!(
            self,
            Target::Model
                | Target::Id
                | Target::FinishReason
                | Target::ServiceTier
                | Target::OutputItemType
        )
    }

    /// Whether applying a value twice leaves the same state as applying it once: plain
    /// assignments are, sizes and counts that add up are not. The event-prefix memo only
    /// replays prefixes made of replayable values. No wildcard arm: a new target must be
    /// classified here.
    fn replayable(self) -> bool {
        match self {
            Target::Input
            | Target::Output
            | Target::CacheRead
            | Target::CacheCreation
            | Target::CacheCreation5m
            | Target::CacheCreation1h
            | Target::Reasoning
            | Target::ToolUsePrompt
            | Target::WebSearch
            | Target::WebFetch
            | Target::Model
            | Target::Id
            | Target::FinishReason
            | Target::ServiceTier => true,
            // Sizes and counts add up; the cost parts combine in `settle_cost`, outside
            // `Usage`, so a prefix holding one is never memoised.
            Target::OutputText
            | Target::OutputItemType
            | Target::Cost
            | Target::UpstreamCost
            | Target::Byok => false,
        }
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

/// Most rules one table may hold: rule sets are tracked as bits of an [`Interest`].
pub(crate) const MAX_RULES: usize = 64;

/// Deepest rule path supported (the longest today has 7 steps).
const MAX_RULE_DEPTH: usize = 8;

/// One distinct step at one depth, and the rules that take it there.
#[derive(Debug, Clone, Copy)]
struct Node {
    depth: usize,
    key: &'static str,
    /// The key's first 8 bytes as a word ([`head`]), compared before anything else.
    head: u64,
    rules: Interest,
}

/// The first 8 bytes of a key, zero-padded, as one word: with the length it tells apart
/// every key of the tables in one compare, and only longer keys compare their tail.
#[inline]
fn head(key: &[u8]) -> u64 {
    let mut word = [0u8; 8];
    match key.get(..8) {
        Some(first) => word.copy_from_slice(first),
        None => {
            for (slot, byte) in word.iter_mut().zip(key) {
                *slot = *byte;
            }
        }
    }
    u64::from_le_bytes(word)
}

/// Bit of a key length in [`Table::lengths`]; lengths from 63 up share the top bit.
#[inline]
fn length_bit(len: usize) -> u64 {
    1 << len.min(63)
}

/// A rule table compiled into per-depth steps, so that the scanner's interest word is the
/// set of rules still matching along the current path: a key costs a few short compares,
/// a scalar one AND, and members no rule mentions are skipped by the scanner unread.
#[derive(Debug, Clone)]
pub(crate) struct Table {
    rules: &'static [Rule],
    /// Key steps, ordered by depth.
    keys: Vec<Node>,
    /// Where each depth's key steps start in `keys` (one past the last depth at the end).
    starts: [usize; MAX_RULE_DEPTH + 1],
    /// Key lengths of each depth's steps as [`length_bit`]s: most keys of a body (`object`,
    /// `created`, `logprobs`, ...) have a length no step has and are rejected by one AND.
    lengths: [u64; MAX_RULE_DEPTH],
    /// Rules taking any array index at each depth.
    any_index: [Interest; MAX_RULE_DEPTH],
    /// Rules whose path ends at each depth (path length).
    ends: [Interest; MAX_RULE_DEPTH + 1],
    all: Interest,
}

/// Every response table, compiled once per process on first use: compiling costs more
/// than scanning a 1 KB body, and used to be paid by every response.
static COMPILED: OnceLock<Vec<Table>> = OnceLock::new();

fn response_tables() -> [&'static [Rule]; 9] {
    use super::{anthropic, bedrock, cohere, gemini, ollama, openai};
    [
        openai::CHAT_COMPLETIONS,
        openai::COMPLETIONS,
        openai::EMBEDDINGS,
        openai::RESPONSES,
        anthropic::MESSAGES,
        gemini::GENERATE_CONTENT,
        bedrock::CONVERSE,
        cohere::CHAT,
        ollama::NATIVE,
    ]
}

/// Applies a rule table to scanned values, accumulating usage and facts.
#[derive(Debug, Clone)]
pub(crate) struct Extractor {
    /// Shared when the table is one of [`response_tables`], else compiled for this one.
    table: Cow<'static, Table>,
    pub(crate) usage: Usage,
    pub(crate) facts: ResponseFacts,
    /// `web_search_call` items seen in the current top-level value.
    web_search_calls: u64,
    /// OpenRouter's reported parts, combined into `usage.cost` by [`Extractor::settle_cost`].
    reported_fee: Option<u64>,
    upstream_cost: Option<u64>,
    byok: bool,
    /// Values reported with a target that is not [`Target::replayable`], plus top-level
    /// ends; zero after a prefix means replaying its assignments reproduces it.
    pub(crate) unreplayable: u64,
}

impl Extractor {
    pub(crate) fn new(rules: &'static [Rule]) -> Self {
        let compiled =
            COMPILED.get_or_init(|| response_tables().into_iter().map(Table::compile).collect());
        let table = match compiled.iter().find(|t| std::ptr::eq(t.rules, rules)) {
            Some(table) => Cow::Borrowed(table),
            None => Cow::Owned(Table::compile(rules)),
        };
        Self {
            table,
            usage: Usage::default(),
            facts: ResponseFacts::default(),
            web_search_calls: 0,
            reported_fee: None,
            upstream_cost: None,
            byok: false,
            unreplayable: 0,
        }
    }

    /// The request's cost from OpenRouter's parts: the fee, plus, for BYOK, what the upstream
    /// provider billed to the caller's key; both are money the caller spends on the request.
    /// Without BYOK `upstream_inference_cost` is null or already inside `cost`, so it is not
    /// added.
    fn settle_cost(&mut self) {
        let upstream = if self.byok { self.upstream_cost } else { None };
        let total = match (self.reported_fee, upstream) {
            (Some(fee), Some(up)) => Some(fee.saturating_add(up)),
            (fee, up) => fee.or(up),
        };
        if let Some(pico) = total {
            self.usage.cost = Some(PicoUsd(pico));
        }
    }

    /// The same table with nothing extracted yet: records what a prefix assigns.
    pub(crate) fn blank(&self) -> Self {
        Self {
            table: self.table.clone(),
            usage: Usage::default(),
            facts: ResponseFacts::default(),
            web_search_calls: 0,
            reported_fee: None,
            upstream_cost: None,
            byok: false,
            unreplayable: 0,
        }
    }
}

impl Table {
    fn compile(rules: &'static [Rule]) -> Self {
        let mut keys: Vec<Node> = Vec::new();
        let mut any_index = [0; MAX_RULE_DEPTH];
        let mut ends = [0; MAX_RULE_DEPTH + 1];
        let mut all = 0;
        // Rules past the limits are ignored; a unit test keeps every table within them.
        for (i, rule) in rules.iter().enumerate().take(MAX_RULES) {
            if rule.path.len() > MAX_RULE_DEPTH {
                continue;
            }
            let bit: Interest = 1 << i;
            all |= bit;
            if let Some(end) = ends.get_mut(rule.path.len()) {
                *end |= bit;
            }
            for (depth, step) in rule.path.iter().enumerate() {
                match *step {
                    Step::AnyIndex => {
                        if let Some(any) = any_index.get_mut(depth) {
                            *any |= bit;
                        }
                    }
                    Step::Key(key) => {
                        match keys.iter_mut().find(|n| n.depth == depth && n.key == key) {
                            Some(node) => node.rules |= bit,
                            None => keys.push(Node {
                                depth,
                                key,
                                head: head(key.as_bytes()),
                                rules: bit,
                            }),
                        }
                    }
                }
            }
        }
        // Grouped by depth, keeping first-seen order within a depth: a stable insertion sort
        // (tables have a few dozen keys, compiled once) that spares the std sort's code.
        for i in 1..keys.len() {
            let mut j = i;
            while j > 0 && keys.get(j - 1).map(|n| n.depth) > keys.get(j).map(|n| n.depth) {
                keys.swap(j - 1, j);
                j -= 1;
            }
        }
        let mut lengths = [0; MAX_RULE_DEPTH];
        for node in &keys {
            if let Some(mask) = lengths.get_mut(node.depth) {
                *mask |= length_bit(node.key.len());
            }
        }
        let mut starts = [keys.len(); MAX_RULE_DEPTH + 1];
        for (depth, start) in starts.iter_mut().enumerate() {
            *start = keys
                .iter()
                .position(|n| n.depth >= depth)
                .unwrap_or(keys.len());
        }
        Self {
            rules,
            keys,
            starts,
            lengths,
            any_index,
            ends,
            all,
        }
    }
}

impl Extractor {
    /// Applies what a [`blank`](Self::blank) extractor recorded from a prefix whose values
    /// were all replayable: every field it set is assigned, exactly as scanning the prefix
    /// again would. The destructuring names every field, so a new one must be handled here.
    pub(crate) fn replay(&mut self, usage: &Usage, facts: &ResponseFacts) {
        let Usage {
            input_tokens,
            output_tokens,
            cache_read_tokens,
            cache_creation_tokens,
            cache_creation_5m_tokens,
            cache_creation_1h_tokens,
            reasoning_tokens,
            tool_use_prompt_tokens,
            web_search_requests,
            web_fetch_requests,
            // Never set by a replayable target (see `Target::replayable`).
            cost: _,
        } = usage;
        let u = &mut self.usage;
        for (slot, value) in [
            (&mut u.input_tokens, input_tokens),
            (&mut u.output_tokens, output_tokens),
            (&mut u.cache_read_tokens, cache_read_tokens),
            (&mut u.cache_creation_tokens, cache_creation_tokens),
            (&mut u.cache_creation_5m_tokens, cache_creation_5m_tokens),
            (&mut u.cache_creation_1h_tokens, cache_creation_1h_tokens),
            (&mut u.reasoning_tokens, reasoning_tokens),
            (&mut u.tool_use_prompt_tokens, tool_use_prompt_tokens),
            (&mut u.web_search_requests, web_search_requests),
            (&mut u.web_fetch_requests, web_fetch_requests),
        ] {
            if value.is_some() {
                *slot = *value;
            }
        }
        // Sizes add up and are never replayed (a prefix holding one is not memoised).
        let ResponseFacts {
            model,
            id,
            finish_reason,
            service_tier,
            output_text_bytes: _,
        } = facts;
        let f = &mut self.facts;
        for (slot, value) in [
            (&mut f.model, model),
            (&mut f.id, id),
            (&mut f.finish_reason, finish_reason),
            (&mut f.service_tier, service_tier),
        ] {
            if let Some(text) = value {
                if slot.as_ref() != Some(text) {
                    *slot = Some(text.clone());
                }
            }
        }
    }

    /// Heap bytes this extractor owns: none when its table is the shared compiled one.
    pub(crate) fn heap_bytes(&self) -> usize {
        match &self.table {
            Cow::Borrowed(_) => 0,
            Cow::Owned(table) => table.keys.capacity() * std::mem::size_of::<Node>(),
        }
    }

    /// The rule fully matched by a value with `interest` at `depth`.
    fn target(&self, interest: Interest, depth: usize) -> Option<Target> {
        let done = interest & self.table.ends.get(depth).copied().unwrap_or(0);
        if done == 0 {
            return None;
        }
        let index = usize::try_from(done.trailing_zeros()).ok()?;
        self.table.rules.get(index).map(|r| r.target)
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
            Target::ToolUsePrompt => &mut u.tool_use_prompt_tokens,
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
    fn root(&mut self) -> Interest {
        self.table.all
    }

    fn key(&mut self, parent: Interest, depth: usize, key: Option<&[u8]>) -> Interest {
        let Some(key) = key else { return 0 };
        let lengths = self.table.lengths.get(depth).copied().unwrap_or(0);
        if parent == 0 || lengths & length_bit(key.len()) == 0 {
            return 0;
        }
        let start = self.table.starts.get(depth).copied().unwrap_or(usize::MAX);
        let end = self
            .table
            .starts
            .get(depth + 1)
            .copied()
            .unwrap_or(self.table.keys.len());
        let mut rules = 0;
        let key_head = head(key);
        for node in self.table.keys.get(start..end).unwrap_or(&[]) {
            // Rule set, length and first 8 bytes reject almost every key before the rest
            // of the bytes is compared.
            let want = node.key.as_bytes();
            if node.rules & parent != 0
                && node.head == key_head
                && want.len() == key.len()
                // Keys are short: a byte loop beats a `memcmp` call.
                && want.iter().zip(key).skip(8).all(|(a, b)| a == b)
            {
                rules |= node.rules;
            }
        }
        rules & parent
    }

    fn index(&mut self, parent: Interest, depth: usize, _index: u64) -> Interest {
        parent & self.table.any_index.get(depth).copied().unwrap_or(0)
    }

    fn value_end(&mut self) {
        self.unreplayable = self.unreplayable.saturating_add(1);
        if self.web_search_calls > 0 {
            self.usage.web_search_requests = Some(self.web_search_calls);
            self.web_search_calls = 0;
        }
    }

    fn wants_string(&mut self, interest: Interest, path: &Path<'_>) -> bool {
        self.target(interest, path.len())
            .is_some_and(Target::captures_text)
    }

    fn wants_number_text(&mut self, interest: Interest, path: &Path<'_>) -> bool {
        matches!(
            self.target(interest, path.len()),
            Some(Target::Cost | Target::UpstreamCost)
        )
    }

    fn scalar(&mut self, interest: Interest, path: &Path<'_>, value: Scalar<'_>) {
        let Some(target) = self.target(interest, path.len()) else {
            return;
        };
        if !target.replayable() {
            self.unreplayable = self.unreplayable.saturating_add(1);
        }
        if target == Target::OutputItemType {
            if value.as_str() == Some("web_search_call") {
                self.web_search_calls = self.web_search_calls.saturating_add(1);
            }
            return;
        }
        if matches!(target, Target::Cost | Target::UpstreamCost | Target::Byok) {
            match (target, value) {
                (Target::Byok, Scalar::Bool(byok)) => self.byok = byok,
                // Negative, too long or not a number (a string, null): not a cost; a later
                // valid value still replaces an earlier one.
                (_, value) => {
                    let Some(pico) = value
                        .as_number_text()
                        .and_then(|t| parse_scaled(t, PICO_PER_USD_DIGITS).ok())
                    else {
                        return;
                    };
                    if target == Target::Cost {
                        self.reported_fee = Some(pico);
                    } else {
                        self.upstream_cost = Some(pico);
                    }
                }
            }
            self.settle_cost();
            return;
        }
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

#[cfg(test)]
mod tests {
    #![allow(
        clippy::unwrap_used,
        clippy::expect_used,
        clippy::panic,
        clippy::indexing_slicing
    )]
    use super::*;
    use crate::providers::{anthropic, bedrock, cohere, gemini, ollama, openai};

    #[test]
    fn every_table_fits_the_interest_word() {
        for table in response_tables() {
            assert!(table.len() <= MAX_RULES);
            assert!(table
                .iter()
                .all(|r| !r.path.is_empty() && r.path.len() <= MAX_RULE_DEPTH));
        }
    }

    #[test]
    fn every_response_api_uses_a_table_compiled_once() {
        for api in crate::providers::Api::ALL {
            let extractor = Extractor::new(crate::providers::response_rules(api));
            assert!(matches!(extractor.table, Cow::Borrowed(_)), "{api:?}");
            assert_eq!(extractor.heap_bytes(), 0);
        }
        // A table outside the list still works, compiled for its extractor.
        static OTHER: &[Rule] = &[rule(&[Step::Key("n")], Target::Input)];
        let mut own = Extractor::new(OTHER);
        assert!(matches!(own.table, Cow::Owned(_)));
        let mut scanner = crate::json::Scanner::new();
        scanner.feed(br#"{"n":5}"#, &mut own).unwrap();
        assert_eq!(own.usage.input_tokens, Some(5));
    }

    #[test]
    fn no_two_rules_share_a_path() {
        for table in [
            openai::CHAT_COMPLETIONS,
            openai::RESPONSES,
            anthropic::MESSAGES,
            gemini::GENERATE_CONTENT,
            bedrock::CONVERSE,
            cohere::CHAT,
            ollama::NATIVE,
        ] {
            for (i, a) in table.iter().enumerate() {
                for b in table.iter().skip(i + 1) {
                    assert_ne!(a.path, b.path, "{:?}", a.path);
                }
            }
        }
    }
}
