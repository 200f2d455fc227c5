//! The per-budget counters kept in proxy-wasm shared data, and the keys they live under.
//!
//! One key per (budget id, window kind, resolved match values, slot) holds a fixed 57-byte
//! record: a version byte and seven little-endian u64s. Fixed-size binary keeps every
//! compare-and-swap write small and decoding allocation-free; the version byte lets a newer
//! plugin (shared data survives a VM reload) recognise records it did not write.
//!
//! Shared data in proxy-wasm 0.2 cannot delete a key, so keys must not be minted per window
//! (a minute budget would add 525,600 keys a year per value). Instead each budget alternates
//! between two slots, `window index % 2`: the record carries its window start, and a reserve
//! that finds a record from an older window starts it over at zero. The previous window's slot
//! stays intact for a whole window, so requests admitted just before a reset still settle into
//! the window that admitted them. Keys therefore grow only with distinct match values
//! (2 per value per budget), never with time.

/// Version byte of the record layout below.
pub const STATE_VERSION: u8 = 1;
/// Encoded record length.
pub const STATE_LEN: usize = 1 + 8 * 7;
/// Match values longer than this are truncated before they go into a key, bounding key size
/// when a `*` dimension comes from a client-controlled header.
pub const MAX_KEY_VALUE_BYTES: usize = 128;
/// Prefix of every budget state key.
pub const KEY_PREFIX: &str = "tokenmeter.budget.v1";
/// Shared-data key under which the root context stores the last good pulled limits document
/// (the raw JSON bytes, written only after [`super::LimitsDoc::parse`] accepted them).
pub const LIMITS_KEY: &str = "tokenmeter.budget.limits.v1";

/// Spend and reservations of one budget in one window.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counters {
    /// Unix seconds at which this record's window starts.
    pub window_start: u64,
    pub spent_pico: u64,
    pub spent_tokens: u64,
    pub reserved_pico: u64,
    pub reserved_tokens: u64,
    /// Reservations currently held; 0 when nothing is in flight.
    pub inflight: u64,
    /// Requests admitted into this window.
    pub admitted: u64,
}

/// The record could not be decoded (wrong version or length).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Corrupt;

impl Counters {
    /// A fresh record for the window starting at `window_start`.
    pub fn fresh(window_start: u64) -> Self {
        Self {
            window_start,
            ..Self::default()
        }
    }

    /// Spent plus reserved USD: what admission compares to the limit.
    pub fn used_pico(&self) -> u64 {
        self.spent_pico.saturating_add(self.reserved_pico)
    }

    /// Spent plus reserved tokens.
    pub fn used_tokens(&self) -> u64 {
        self.spent_tokens.saturating_add(self.reserved_tokens)
    }

    pub fn encode(&self) -> [u8; STATE_LEN] {
        let mut out = [0u8; STATE_LEN];
        let fields = [
            self.window_start,
            self.spent_pico,
            self.spent_tokens,
            self.reserved_pico,
            self.reserved_tokens,
            self.inflight,
            self.admitted,
        ];
        let mut iter = out.iter_mut();
        if let Some(b) = iter.next() {
            *b = STATE_VERSION;
        }
        for (slot, byte) in iter.zip(fields.iter().flat_map(|f| f.to_le_bytes())) {
            *slot = byte;
        }
        out
    }

    /// `Ok(None)` for an empty value (a key that was cleared); `Err` for anything not ours.
    pub fn decode(bytes: &[u8]) -> Result<Option<Self>, Corrupt> {
        if bytes.is_empty() {
            return Ok(None);
        }
        let (version, rest) = bytes.split_first().ok_or(Corrupt)?;
        if *version != STATE_VERSION || rest.len() != STATE_LEN - 1 {
            return Err(Corrupt);
        }
        let mut f = [0u64; 7];
        for (v, chunk) in f.iter_mut().zip(rest.chunks_exact(8)) {
            let arr: [u8; 8] = chunk.try_into().map_err(|_| Corrupt)?;
            *v = u64::from_le_bytes(arr);
        }
        let [window_start, spent_pico, spent_tokens, reserved_pico, reserved_tokens, inflight, admitted] =
            f;
        Ok(Some(Self {
            window_start,
            spent_pico,
            spent_tokens,
            reserved_pico,
            reserved_tokens,
            inflight,
            admitted,
        }))
    }
}

/// The key of one budget's slot. `values` are the request's values of the budget's matched
/// dimensions, in the budget's (sorted) dimension order.
///
/// Layout: `tokenmeter.budget.v1|<id>|<window>|<slot>|<dim>=<value>&...` with values
/// percent-encoded (`|`, `&`, `=`, `%`, controls and non-ASCII), so distinct values never
/// collide and the key stays ASCII.
pub fn state_key(id: &str, window: &str, slot: u64, values: &[(String, String)]) -> String {
    let mut key = format!("{KEY_PREFIX}|{id}|{window}|{slot}|");
    for (i, (dim, value)) in values.iter().enumerate() {
        if i > 0 {
            key.push('&');
        }
        escape_into(&mut key, dim.as_bytes());
        key.push('=');
        let raw = value.as_bytes();
        escape_into(&mut key, raw.get(..MAX_KEY_VALUE_BYTES).unwrap_or(raw));
    }
    key
}

fn escape_into(out: &mut String, bytes: &[u8]) {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    for &b in bytes {
        if b.is_ascii_graphic() && !matches!(b, b'|' | b'&' | b'=' | b'%') {
            out.push(char::from(b));
        } else {
            out.push('%');
            out.push(char::from(
                HEX.get(usize::from(b >> 4)).copied().unwrap_or(b'0'),
            ));
            out.push(char::from(
                HEX.get(usize::from(b & 15)).copied().unwrap_or(b'0'),
            ));
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::indexing_slicing)]
mod tests {
    use super::*;

    #[test]
    fn record_round_trips_and_carries_version() {
        let c = Counters {
            window_start: 1_700_000_000,
            spent_pico: u64::MAX,
            spent_tokens: 3,
            reserved_pico: 4,
            reserved_tokens: 5,
            inflight: 6,
            admitted: 7,
        };
        let bytes = c.encode();
        assert_eq!(bytes[0], STATE_VERSION);
        assert_eq!(Counters::decode(&bytes), Ok(Some(c)));
        assert_eq!(Counters::decode(&[]), Ok(None));
        let mut wrong = bytes;
        wrong[0] = 2;
        assert_eq!(Counters::decode(&wrong), Err(Corrupt));
        assert_eq!(Counters::decode(&bytes[..20]), Err(Corrupt));
    }

    #[test]
    fn keys_escape_separators_so_values_cannot_collide() {
        let a = state_key("b", "day", 0, &[("user".into(), "x&user=y".into())]);
        let b = state_key(
            "b",
            "day",
            0,
            &[("user".into(), "x".into()), ("user".into(), "y".into())],
        );
        assert_ne!(a, b);
        assert_eq!(a, "tokenmeter.budget.v1|b|day|0|user=x%26user%3Dy");
        let k = state_key("b", "month", 1, &[("customer".into(), "Ünï code|%".into())]);
        assert!(k.is_ascii());
        assert!(k.ends_with("customer=%C3%9Cn%C3%AF%20code%7C%25"));
    }

    #[test]
    fn long_values_are_truncated() {
        let long = "v".repeat(10_000);
        let k = state_key("b", "hour", 0, &[("user".into(), long)]);
        assert!(k.len() < 200);
    }
}
