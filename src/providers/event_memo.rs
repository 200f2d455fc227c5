//! Memo of the prefix a stream's events share, so the JSON scanner reads it once per stream
//! rather than once per event.
//!
//! Every chunk of a chat stream starts with the same ~200 bytes
//! (`{"id":"chatcmpl-..","object":"chat.completion.chunk","created":..,"model":"..",
//! "system_fingerprint":"..","choices":[{"index":0,"delta":{"content":"`), and so does every
//! Anthropic `content_block_delta`; only the tail differs. Scanning that prefix again costs
//! more than the rest of the event, and all it does is assign the same id and model again.
//! The memo keeps the prefix bytes, the scanner state right after them and the assignments
//! they made. An event whose data starts with exactly those bytes gets that state restored
//! and those assignments replayed, and only its tail is scanned.
//!
//! Exact by construction, not by guessing which keys matter: the scanner is deterministic
//! and resumable after any byte (the property every split-at-each-offset test relies on),
//! and a prefix is memoised only when everything it did to the extractor was an assignment
//! ([`Extractor::unreplayable`] stays 0: no text sizes, item counts or value ends, which add
//! up). So a hit leaves scanner and extractor exactly as scanning the prefix would have,
//! whatever the tail holds (`usage`, a new model, a broken document). An event that departs
//! from the prefix gets the bytes matched so far fed from the memo (they are equal) and the
//! rest scanned as usual; nothing from the input is buffered or copied.
//!
//! Learning: the first event's leading bytes become the reference; when the next event
//! shares at least [`MIN_PREFIX`] bytes with it, that common part (cut before any value
//! that is not replayable) is scanned once more on the side to take the snapshot. A later
//! event that departs early shrinks the memo to what it shares, or, after
//! [`MAX_MISSES`] short matches in a row, makes the memo start over from the next event.
//! Memory is bounded: two buffers of at most [`MAX_PREFIX`] bytes plus one scanner copy and
//! a few labels (a few KiB), allocated when the memo first learns.

use crate::json::Scanner;
use crate::usage::Usage;

use super::mapping::Extractor;
use super::ResponseFacts;

/// Longest prefix memoised.
pub(crate) const MAX_PREFIX: usize = 512;

/// Shortest prefix worth a snapshot: below this, restoring the scanner costs more than
/// scanning the bytes.
pub(crate) const MIN_PREFIX: usize = 32;

/// Consecutive events sharing less than [`MIN_PREFIX`] bytes with the memo before it is
/// dropped and learnt again.
pub(crate) const MAX_MISSES: u32 = 2;

/// The state after a prefix: scanner and the assignments the prefix made.
#[derive(Clone)]
struct Snapshot {
    /// Prefix length: `reference[..cut]`.
    cut: usize,
    scanner: Scanner,
    usage: Usage,
    facts: ResponseFacts,
}

/// Where the current event stands against the memo.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// Every byte so far equals the snapshot's prefix and none was fed to the scanner.
    Holding,
    /// Still equal to the reference, but bytes go to the scanner (learning, or no match
    /// possible): only the length of the common part is tracked.
    Comparing,
    /// Departed from the reference (or the snapshot was restored): plain scanning.
    Scanning,
}

/// Per-stream prefix memo. See the [module docs](self).
#[derive(Clone)]
pub(crate) struct EventMemo {
    /// Leading bytes of a recent event's data.
    reference: Vec<u8>,
    snapshot: Option<Box<Snapshot>>,
    /// Leading bytes of the current event, kept only while learning.
    current: Vec<u8>,
    phase: Phase,
    /// Bytes of the current event equal to `reference` so far.
    matched: usize,
    /// The current event's scanner state came from the snapshot.
    hit: bool,
    misses: u32,
    /// Events whose prefix was restored rather than scanned.
    hits: u64,
}

impl Default for EventMemo {
    fn default() -> Self {
        Self::new()
    }
}

impl EventMemo {
    pub(crate) fn new() -> Self {
        Self {
            reference: Vec::new(),
            snapshot: None,
            current: Vec::new(),
            phase: Phase::Comparing,
            matched: 0,
            hit: false,
            misses: 0,
            hits: 0,
        }
    }

    /// Events that skipped their prefix.
    pub(crate) fn hits(&self) -> u64 {
        self.hits
    }

    /// Heap bytes held (bounded by [`MAX_PREFIX`] and the labels' caps).
    pub(crate) fn heap_bytes(&self) -> usize {
        let snapshot = self.snapshot.as_ref().map_or(0, |s| {
            let labels = [
                &s.facts.model,
                &s.facts.id,
                &s.facts.finish_reason,
                &s.facts.service_tier,
            ]
            .iter()
            .map(|l| l.as_ref().map_or(0, String::capacity))
            .sum::<usize>();
            std::mem::size_of::<Snapshot>() + s.scanner.heap_bytes() + labels
        });
        self.reference.capacity() + self.current.capacity() + snapshot
    }

    /// Bytes of the current event's data. Whatever is not held back goes to `json`.
    pub(crate) fn data(&mut self, bytes: &[u8], json: &mut Scanner, extractor: &mut Extractor) {
        let mut rest = bytes;
        if self.phase != Phase::Scanning {
            let limit = match (&self.snapshot, self.phase) {
                (Some(s), Phase::Holding) => s.cut,
                _ => self.reference.len(),
            };
            let want = self.reference.get(self.matched..limit).unwrap_or(&[]);
            let same = match rest.get(..want.len()) {
                // Usually the whole prefix is there and equal: one `memcmp`.
                Some(head) if head == want => want.len(),
                _ => common_len(want, rest),
            };
            let before = self.matched;
            self.matched = before.saturating_add(same);
            let whole = same == want.len();
            if self.phase == Phase::Holding {
                match &self.snapshot {
                    Some(snap) if whole => {
                        // The prefix is complete: continue from its state.
                        json.resume_from(&snap.scanner);
                        extractor.replay(&snap.usage, &snap.facts);
                        self.hit = true;
                        self.hits = self.hits.saturating_add(1);
                        self.phase = Phase::Scanning;
                        rest = rest.get(same..).unwrap_or(&[]);
                    }
                    Some(_) if same == rest.len() => return,
                    _ => {
                        // Departed: the held bytes are the reference's own.
                        let held = self.reference.get(..before).unwrap_or(&[]);
                        if !held.is_empty() {
                            let _sticky = json.feed(held, extractor);
                        }
                        self.phase = Phase::Scanning;
                    }
                }
            } else if !whole || self.matched >= self.reference.len() {
                self.phase = Phase::Scanning;
            }
        }
        if self.snapshot.is_none() && self.current.len() < MAX_PREFIX {
            let room = MAX_PREFIX.saturating_sub(self.current.len());
            self.current
                .extend_from_slice(rest.get(..room.min(rest.len())).unwrap_or(rest));
        }
        if !rest.is_empty() {
            // A failure sticks in the scanner until the event ends; it is counted there.
            let _sticky = json.feed(rest, extractor);
        }
    }

    /// The current event's data ended: feeds what is still held (the event was a strict
    /// prefix of the memo), then learns from the event. Call before the scanner is finished.
    pub(crate) fn event_end(&mut self, json: &mut Scanner, extractor: &mut Extractor) {
        if self.phase == Phase::Holding && self.snapshot.is_some() && self.matched > 0 {
            let held = self.reference.get(..self.matched).unwrap_or(&[]);
            let _sticky = json.feed(held, extractor);
        }
    }

    /// After the event's document was finished (`json` is reset): updates the memo for the
    /// next event.
    pub(crate) fn learn(&mut self, json: &Scanner, extractor: &Extractor) {
        let shared = self.matched;
        match self.snapshot.as_ref().map(|s| s.cut) {
            Some(_) if self.hit => self.misses = 0,
            Some(cut) => {
                if shared >= MIN_PREFIX {
                    self.misses = 0;
                    self.snapshot = build(&self.reference, shared.min(cut), json, extractor);
                } else {
                    self.misses = self.misses.saturating_add(1);
                    if self.misses >= MAX_MISSES {
                        self.snapshot = None;
                        self.reference.clear();
                        self.misses = 0;
                    }
                }
            }
            None => {
                if !self.reference.is_empty() && shared >= MIN_PREFIX {
                    self.snapshot = build(&self.reference, shared, json, extractor);
                }
                if self.snapshot.is_none() {
                    std::mem::swap(&mut self.reference, &mut self.current);
                }
                self.current.clear();
            }
        }
        self.phase = if self.snapshot.is_some() {
            Phase::Holding
        } else {
            Phase::Comparing
        };
        self.matched = 0;
        self.hit = false;
    }
}

/// Length of the common start of `a` and `b`.
fn common_len(a: &[u8], b: &[u8]) -> usize {
    // Word-at-a-time compare: the memoised prefix is a few hundred bytes per event.
    let mut at = 0;
    for (x, y) in a.chunks_exact(8).zip(b.chunks_exact(8)) {
        if x != y {
            break;
        }
        at += 8;
    }
    let tail_a = a.get(at..).unwrap_or(&[]);
    let tail_b = b.get(at..).unwrap_or(&[]);
    at + tail_a
        .iter()
        .zip(tail_b)
        .take_while(|(x, y)| x == y)
        .count()
}

/// Scans `reference[..len]` on the side and snapshots the state, cut before the first value
/// that is not replayable. `None` when what remains is shorter than [`MIN_PREFIX`] or the
/// prefix is not valid JSON so far. `fresh` is the stream's scanner at an event start (its
/// mode is kept).
fn build(
    reference: &[u8],
    len: usize,
    fresh: &Scanner,
    extractor: &Extractor,
) -> Option<Box<Snapshot>> {
    // End the prefix after a structural byte rather than inside a key or value: the
    // scanner resumes in its member fast path instead of halfway through a string. (Any
    // cut is exact; this one is only faster.)
    let len = reference
        .get(..len)?
        .iter()
        .rposition(|b| matches!(b, b'{' | b'[' | b',' | b':'))
        .map_or(len, |at| at + 1);
    let prefix = reference.get(..len)?;
    let blank_scanner = || {
        let mut s = fresh.clone();
        s.reset();
        s
    };
    let (mut scanner, mut effects) = (blank_scanner(), extractor.blank());
    let _sticky = scanner.feed(prefix, &mut effects);
    let mut cut = len;
    if effects.unreplayable > 0 {
        // Find the byte that reported it, one byte at a time (resumable by design), and
        // scan again up to just before it.
        let (mut probe, mut probe_effects) = (blank_scanner(), extractor.blank());
        cut = 0;
        for byte in prefix.chunks(1) {
            let _sticky = probe.feed(byte, &mut probe_effects);
            if probe_effects.unreplayable > 0 {
                break;
            }
            cut += 1;
        }
        scanner = blank_scanner();
        effects = extractor.blank();
        let _sticky = scanner.feed(prefix.get(..cut)?, &mut effects);
    }
    if cut < MIN_PREFIX || scanner.error().is_some() || effects.unreplayable > 0 {
        return None;
    }
    Some(Box::new(Snapshot {
        cut,
        scanner,
        usage: effects.usage,
        facts: effects.facts,
    }))
}
