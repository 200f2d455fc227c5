//! Removes what `stream_options.include_usage` added to an OpenAI-style SSE stream, when the
//! filter injected that option on the way up and the client never asked for it.
//!
//! With the option, OpenAI (and compatible servers) change the stream in two ways: every
//! chunk gains a top-level `"usage":null` member, and one extra chunk with `"choices":[]`
//! and the usage object is sent before `data: [DONE]`. The stripper undoes both, so the
//! client receives exactly the bytes it would have received without the injection, while
//! the meter (fed the original bytes) still sees the usage.
//!
//! Holdback: the stripper holds back at most the bytes of the current, incomplete SSE event
//! -- an event is released (rewritten, dropped or unchanged) as soon as its terminating blank
//! line arrives, which is also the earliest a client could act on it, so no event is delayed.
//! The holdback is capped ([`DEFAULT_MAX_HELD`]): an event that grows past the cap cannot
//! be the small usage chunk worth rewriting, so the held bytes are released unchanged and the
//! rest of that event passes straight through (fail open). Line endings may be `\n`, `\r\n`
//! or `\r`, and a `\r\n` split across chunks is handled (its `\n` follows the fate of its
//! event). Bytes after the last blank line are released unchanged at the end of the stream.
//!
//! Only whole-event decisions are made, on the raw bytes: the event's single `data:` line
//! is read by a small top-level member walker (no allocation, no full JSON parse); anything
//! it does not recognise is passed through untouched.

/// Default holdback cap: far above any usage chunk (under 1 KiB), and bounded.
pub const DEFAULT_MAX_HELD: usize = 64 * 1024;

/// What became of the events seen so far.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct StripStats {
    /// Usage-only chunks removed.
    pub dropped_events: u64,
    /// Events whose `"usage":null` member was removed.
    pub rewritten_events: u64,
    /// Events released unchanged because they outgrew the holdback cap.
    pub over_cap_events: u64,
}

/// Incremental, bounded remover of the injected usage chunk and `"usage":null` members.
#[derive(Debug, Clone)]
pub struct UsageChunkStripper {
    held: Vec<u8>,
    max_held: usize,
    /// The current event outgrew the cap: its bytes go straight out until it ends.
    passing: bool,
    /// Bytes on the current line, terminators excluded.
    line_len: u64,
    /// The last byte was a `\r` ending a non-blank line: a following `\n` completes it.
    after_cr: bool,
    /// The last byte was a `\r` ending an event; a following `\n` shares the event's fate:
    /// `Some(true)` when the event was dropped.
    lf_fate: Option<bool>,
    stats: StripStats,
}

impl Default for UsageChunkStripper {
    fn default() -> Self {
        Self::new(DEFAULT_MAX_HELD)
    }
}

impl UsageChunkStripper {
    pub fn new(max_held: usize) -> Self {
        Self {
            held: Vec::new(),
            max_held,
            passing: false,
            line_len: 0,
            after_cr: false,
            lf_fate: None,
            stats: StripStats::default(),
        }
    }

    pub fn stats(&self) -> StripStats {
        self.stats
    }

    /// Bytes currently held back (never more than the cap plus one byte).
    pub fn held_bytes(&self) -> usize {
        self.held.len()
    }

    /// Consumes one chunk and appends what the client should receive now to `out`.
    pub fn feed(&mut self, chunk: &[u8], out: &mut Vec<u8>) {
        for &b in chunk {
            if let Some(dropped) = self.lf_fate.take() {
                if b == b'\n' {
                    if !dropped {
                        out.push(b);
                    }
                    continue;
                }
            }
            if self.after_cr {
                self.after_cr = false;
                if b == b'\n' {
                    self.push(b, out);
                    continue;
                }
            }
            self.push(b, out);
            match b {
                b'\r' | b'\n' => {
                    if self.line_len == 0 {
                        let dropped = self.dispatch(out);
                        if b == b'\r' {
                            self.lf_fate = Some(dropped);
                        }
                    } else {
                        self.line_len = 0;
                        self.after_cr = b == b'\r';
                    }
                }
                _ => self.line_len = self.line_len.saturating_add(1),
            }
        }
    }

    /// Ends the stream: an unterminated last event is released unchanged.
    pub fn finish(&mut self, out: &mut Vec<u8>) {
        out.append(&mut self.held);
        self.passing = false;
        self.line_len = 0;
        self.after_cr = false;
        self.lf_fate = None;
    }

    fn push(&mut self, b: u8, out: &mut Vec<u8>) {
        if self.passing {
            out.push(b);
            return;
        }
        self.held.push(b);
        if self.held.len() > self.max_held {
            out.append(&mut self.held);
            self.passing = true;
            self.stats.over_cap_events = self.stats.over_cap_events.saturating_add(1);
        }
    }

    /// The current event is complete: releases, rewrites or drops it. True when dropped.
    fn dispatch(&mut self, out: &mut Vec<u8>) -> bool {
        self.line_len = 0;
        if self.passing {
            self.passing = false;
            return false;
        }
        let verdict = judge(&self.held);
        match verdict {
            Verdict::Drop => {
                self.stats.dropped_events = self.stats.dropped_events.saturating_add(1);
                self.held.clear();
                return true;
            }
            Verdict::Remove(start, end) => {
                let (head, tail) = self.held.split_at(start.min(self.held.len()));
                out.extend_from_slice(head);
                out.extend_from_slice(tail.get(end.saturating_sub(start)..).unwrap_or(&[]));
                self.stats.rewritten_events = self.stats.rewritten_events.saturating_add(1);
            }
            Verdict::Keep => out.extend_from_slice(&self.held),
        }
        self.held.clear();
        false
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Verdict {
    Keep,
    Drop,
    /// Remove `held[start..end]`.
    Remove(usize, usize),
}

/// Decides on one complete event (its bytes, blank line included).
fn judge(event: &[u8]) -> Verdict {
    // Exactly one `data:` line: the JSON chunk. Anything else is left alone.
    let mut data: Option<(usize, &[u8])> = None;
    let mut offset = 0;
    for line in event.split_inclusive(|&b| b == b'\n' || b == b'\r') {
        let start = offset;
        offset += line.len();
        let content = line
            .iter()
            .rposition(|&b| b != b'\n' && b != b'\r')
            .map_or(&[][..], |end| line.get(..=end).unwrap_or(&[]));
        if let Some(rest) = content.strip_prefix(b"data:") {
            if data.is_some() {
                return Verdict::Keep;
            }
            let (skip, value) = match rest.strip_prefix(b" ") {
                Some(v) => (6, v),
                None => (5, rest),
            };
            data = Some((start + skip, value));
        }
    }
    let Some((at, json)) = data else {
        return Verdict::Keep;
    };
    let Some(members) = top_level_members(json) else {
        return Verdict::Keep;
    };
    let value = |key: &[u8]| {
        members
            .iter()
            .find(|m| json.get(m.key.0..m.key.1) == Some(key))
            .and_then(|m| json.get(m.value.0..m.value.1))
    };
    let choices_empty = value(b"choices").is_some_and(|v| {
        v.first() == Some(&b'[')
            && v.iter()
                .skip(1)
                .take_while(|b| b.is_ascii_whitespace())
                .count()
                + 2
                == v.len()
    });
    let usage = value(b"usage");
    if choices_empty && usage.is_some_and(|v| v.first() == Some(&b'{')) {
        return Verdict::Drop;
    }
    let Some(i) = members.iter().position(|m| {
        json.get(m.key.0..m.key.1) == Some(b"usage")
            && json.get(m.value.0..m.value.1) == Some(b"null")
    }) else {
        return Verdict::Keep;
    };
    let (Some(this), prev, next) = (
        members.get(i),
        i.checked_sub(1).and_then(|p| members.get(p)),
        members.get(i + 1),
    ) else {
        return Verdict::Keep;
    };
    // `,"usage":null` after a previous member, else `"usage":null,` before the next.
    let (start, end) = match (prev, next) {
        (Some(p), _) => (p.value.1, this.value.1),
        (None, Some(n)) => (this.key.0.saturating_sub(1), n.key.0.saturating_sub(1)),
        (None, None) => (this.key.0.saturating_sub(1), this.value.1),
    };
    Verdict::Remove(at + start, at + end)
}

/// One top-level member: the key's bytes (inside the quotes) and the value's bytes.
#[derive(Debug, Clone, Copy)]
struct Member {
    key: (usize, usize),
    value: (usize, usize),
}

/// Most members read from one chunk object; OpenAI chunks have about ten.
const MAX_MEMBERS: usize = 32;

/// Walks the top-level object of `json` without parsing nested values; `None` when it is
/// not a well-formed object (as far as the walk can tell) or has too many members.
fn top_level_members(json: &[u8]) -> Option<Vec<Member>> {
    let mut i = skip_ws(json, 0);
    if json.get(i) != Some(&b'{') {
        return None;
    }
    i = skip_ws(json, i + 1);
    let mut members = Vec::new();
    if json.get(i) == Some(&b'}') {
        return Some(members);
    }
    loop {
        if json.get(i) != Some(&b'"') {
            return None;
        }
        let key_end = string_end(json, i + 1)?;
        let key = (i + 1, key_end);
        i = skip_ws(json, key_end + 1);
        if json.get(i) != Some(&b':') {
            return None;
        }
        let value_start = skip_ws(json, i + 1);
        let value_end = value_end(json, value_start)?;
        if members.len() >= MAX_MEMBERS {
            return None;
        }
        members.push(Member {
            key,
            value: (value_start, value_end),
        });
        i = skip_ws(json, value_end);
        match json.get(i) {
            Some(b',') => i = skip_ws(json, i + 1),
            Some(b'}') => return (skip_ws(json, i + 1) == json.len()).then_some(members),
            _ => return None,
        }
    }
}

fn skip_ws(json: &[u8], mut i: usize) -> usize {
    while json
        .get(i)
        .is_some_and(|b| matches!(b, b' ' | b'\t' | b'\n' | b'\r'))
    {
        i += 1;
    }
    i
}

/// Index of the closing quote of a string whose contents start at `i`.
fn string_end(json: &[u8], mut i: usize) -> Option<usize> {
    loop {
        match json.get(i)? {
            b'"' => return Some(i),
            b'\\' => i += 2,
            _ => i += 1,
        }
    }
}

/// One past the end of the value starting at `i`.
fn value_end(json: &[u8], i: usize) -> Option<usize> {
    match json.get(i)? {
        b'"' => string_end(json, i + 1).map(|e| e + 1),
        b'{' | b'[' => {
            let mut depth: u64 = 0;
            let mut j = i;
            loop {
                match json.get(j)? {
                    b'"' => j = string_end(json, j + 1)?,
                    b'{' | b'[' => depth += 1,
                    b'}' | b']' => {
                        depth = depth.checked_sub(1)?;
                        if depth == 0 {
                            return Some(j + 1);
                        }
                    }
                    _ => {}
                }
                j += 1;
            }
        }
        _ => {
            let mut j = i;
            while json
                .get(j)
                .is_some_and(|b| !matches!(b, b',' | b'}' | b']' | b' ' | b'\t' | b'\n' | b'\r'))
            {
                j += 1;
            }
            (j > i).then_some(j)
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::indexing_slicing)]
    use super::*;

    fn strip(input: &[u8]) -> Vec<u8> {
        let mut s = UsageChunkStripper::default();
        let mut out = Vec::new();
        s.feed(input, &mut out);
        s.finish(&mut out);
        out
    }

    #[test]
    fn usage_null_is_removed_wherever_it_sits() {
        assert_eq!(
            strip(b"data: {\"a\":1,\"usage\":null,\"b\":2}\n\n"),
            b"data: {\"a\":1,\"b\":2}\n\n"
        );
        assert_eq!(
            strip(b"data: {\"usage\":null,\"b\":2}\n\n"),
            b"data: {\"b\":2}\n\n"
        );
        assert_eq!(
            strip(b"data: {\"a\":1, \"usage\" : null }\n\n"),
            b"data: {\"a\":1 }\n\n"
        );
        assert_eq!(strip(b"data: {\"usage\":null}\n\n"), b"data: {}\n\n");
        // Nested `usage` members are not the injected one.
        let nested = b"data: {\"x\":{\"usage\":null}}\n\n";
        assert_eq!(strip(nested), nested);
    }

    #[test]
    fn only_usage_only_chunks_are_dropped() {
        assert_eq!(
            strip(b"data: {\"choices\":[],\"usage\":{\"prompt_tokens\":1}}\n\ndata: [DONE]\n\n"),
            b"data: [DONE]\n\n"
        );
        for keep in [
            &b"data: {\"choices\":[{}],\"usage\":{\"prompt_tokens\":1}}\n\n"[..],
            b"data: {\"choices\":[],\"usage\":null}\n\n",
            b"data: [DONE]\n\n",
            b": comment\n\n",
            b"data: {\"choices\":[]\n",
        ] {
            let want = if keep == b"data: {\"choices\":[],\"usage\":null}\n\n" {
                b"data: {\"choices\":[]}\n\n".to_vec()
            } else {
                keep.to_vec()
            };
            assert_eq!(strip(keep), want);
        }
    }

    #[test]
    fn crlf_split_between_chunks_follows_its_event() {
        let body = b"data: {\"choices\":[],\"usage\":{}}\r\n\r\ndata: [DONE]\r\n\r\n";
        for i in 0..=body.len() {
            let mut s = UsageChunkStripper::default();
            let mut out = Vec::new();
            s.feed(&body[..i], &mut out);
            s.feed(&body[i..], &mut out);
            s.finish(&mut out);
            assert_eq!(out, b"data: [DONE]\r\n\r\n", "split at {i}");
        }
    }

    #[test]
    fn events_past_the_cap_pass_through_unchanged() {
        let mut s = UsageChunkStripper::new(16);
        let mut out = Vec::new();
        let big = b"data: {\"choices\":[],\"usage\":{\"prompt_tokens\":12345}}\n\n";
        s.feed(big, &mut out);
        assert!(s.held_bytes() <= 17);
        s.finish(&mut out);
        assert_eq!(out, big);
        assert_eq!(s.stats().over_cap_events, 1);
    }
}
