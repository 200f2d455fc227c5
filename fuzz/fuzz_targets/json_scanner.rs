//! The incremental JSON scanner (`json::Scanner`) every extractor reads bodies with.
//!
//! Checks, for arbitrary bytes and chunk splits, in single-value or sequence mode, with
//! string capture on everywhere or only on some paths, and with interest in everything or a
//! selective interest policy (all picked by the selector):
//! - whole and split feeding report the same scalars with the same paths, the same
//!   value ends, values count, error and `finish` result; errors are sticky;
//! - heap use stays bounded whatever the input;
//! - interest: `key`/`index`/`scalar`/`wants_string` are never called inside a value whose
//!   interest is 0, and every scalar carries the interest derived along its path;
//! - differential against serde_json (single-value mode, capture on): when serde_json
//!   accepts the body, the scanner accepts it too and reports exactly serde's scalars that the
//!   interest policy keeps, in document order with the same paths (keys over `MAX_KEY_BYTES`
//!   as `LongKey`, nothing below `MAX_TRACKED_DEPTH` containers), the same integers, and each
//!   string's text cut at `MAX_STRING_BYTES` on a character boundary;
//! - number text (asked for on some paths by a selector bit): at most `MAX_NUMBER_BYTES`, and
//!   against serde_json the same number (the same integer, or a negative, or a float) where a
//!   number's text was reported.
#![no_main]

use std::fmt;

use libfuzzer_sys::fuzz_target;
use serde::de::{DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor as SerdeVisitor};
use tokenmeter::json::{
    Interest, JsonError, Number, Path, Scalar, Scanner, Segment, Visitor, MAX_KEY_BYTES,
    MAX_NUMBER_BYTES, MAX_STRING_BYTES, MAX_TRACKED_DEPTH,
};
use tokenmeter_fuzz::SplitInput;

#[derive(Debug, Clone, PartialEq, Eq)]
enum Seg {
    Key(Vec<u8>),
    LongKey,
    Index(u64),
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Value {
    Null,
    Bool(bool),
    Integer(u64),
    OtherNumber,
    NumberText(String),
    Str {
        text: Option<String>,
        truncated: bool,
        raw_len: u64,
    },
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Event {
    Scalar(Vec<Seg>, Value),
    ValueEnd,
}

/// Which interest policy the visitor uses: everything, or a selective one that skips some
/// keys and indices and derives each child's interest from its parent's, so a scanner that
/// loses track of interest (or reports a skipped value) is caught.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Policy {
    All,
    Selective,
}

const ROOT: Interest = 0x9e37_79b9_7f4a_7c15;

fn key_interest(policy: Policy, parent: Interest, depth: usize, key: Option<&[u8]>) -> Interest {
    match (policy, key) {
        (Policy::All, _) => parent,
        (Policy::Selective, Some(k)) if k.first().is_some_and(|b| b % 3 == 0) => 0,
        (Policy::Selective, key) => {
            let mut h = parent.rotate_left(5) ^ depth as u64;
            for &b in key.unwrap_or(b"<long>") {
                h = (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3);
            }
            h | 1
        }
    }
}

fn index_interest(policy: Policy, parent: Interest, depth: usize, index: u64) -> Interest {
    match policy {
        Policy::All => parent,
        Policy::Selective if index % 4 == 3 => 0,
        Policy::Selective => (parent.rotate_left(3) ^ index ^ ((depth as u64) << 40)) | 1,
    }
}

struct Collect {
    policy: Policy,
    capture_all: bool,
    /// Ask for the text of numbers at even depths.
    number_text: bool,
    events: Vec<Event>,
}

impl Visitor for Collect {
    fn root(&mut self) -> Interest {
        ROOT
    }
    fn key(&mut self, parent: Interest, depth: usize, key: Option<&[u8]>) -> Interest {
        assert_ne!(parent, 0, "key() asked inside a skipped value");
        if let Some(k) = key {
            assert!(k.len() <= MAX_KEY_BYTES);
        }
        key_interest(self.policy, parent, depth, key)
    }
    fn index(&mut self, parent: Interest, depth: usize, index: u64) -> Interest {
        assert_ne!(parent, 0, "index() asked inside a skipped value");
        index_interest(self.policy, parent, depth, index)
    }
    fn wants_string(&mut self, interest: Interest, path: &Path<'_>) -> bool {
        assert_ne!(interest, 0, "wants_string() asked for a skipped value");
        self.capture_all || path.len() % 2 == 1
    }
    fn wants_number_text(&mut self, interest: Interest, path: &Path<'_>) -> bool {
        assert_ne!(interest, 0, "wants_number_text() asked for a skipped value");
        self.number_text && path.len() % 2 == 0
    }
    fn scalar(&mut self, interest: Interest, path: &Path<'_>, value: Scalar<'_>) {
        assert_ne!(interest, 0, "scalar reported with interest 0");
        let path = owned_path(path);
        assert_eq!(
            interest,
            path_interest(self.policy, &path),
            "interest not derived along the path"
        );
        let value = match value {
            Scalar::Null => Value::Null,
            Scalar::Bool(b) => Value::Bool(b),
            Scalar::Number(Number::Integer(n)) => Value::Integer(n),
            Scalar::Number(Number::Other) => Value::OtherNumber,
            Scalar::Number(Number::Text(t)) => {
                assert!(self.number_text && path.len() % 2 == 0, "number text not asked for");
                assert!(t.len() <= MAX_NUMBER_BYTES, "number text of {} bytes", t.len());
                Value::NumberText(t.to_owned())
            }
            Scalar::String(s) => {
                if let Some(t) = s.text {
                    // At most MAX_STRING_BYTES, lossy UTF-8 repair included.
                    assert!(
                        t.len() <= MAX_STRING_BYTES,
                        "captured text of {} bytes",
                        t.len()
                    );
                }
                Value::Str {
                    text: s.text.map(str::to_owned),
                    truncated: s.truncated,
                    raw_len: s.raw_len,
                }
            }
        };
        self.events.push(Event::Scalar(path, value));
    }
    fn value_end(&mut self) {
        self.events.push(Event::ValueEnd);
    }
}

fn owned_path(path: &Path<'_>) -> Vec<Seg> {
    assert!(path.len() <= MAX_TRACKED_DEPTH);
    (0..path.len())
        .map(|d| match path.get(d).expect("segment within len") {
            Segment::Key(k) => {
                assert!(k.len() <= MAX_KEY_BYTES);
                Seg::Key(k.to_vec())
            }
            Segment::LongKey => Seg::LongKey,
            Segment::Index(i) => Seg::Index(i),
        })
        .collect()
}

/// The interest the policy gives the value at `path`; 0 when some step skipped it.
fn path_interest(policy: Policy, path: &[Seg]) -> Interest {
    let mut interest = ROOT;
    for (depth, seg) in path.iter().enumerate() {
        if interest == 0 {
            return 0;
        }
        interest = match seg {
            Seg::Key(k) => key_interest(policy, interest, depth, Some(k)),
            Seg::LongKey => key_interest(policy, interest, depth, None),
            Seg::Index(i) => index_interest(policy, interest, depth, *i),
        };
    }
    interest
}

#[derive(Debug, PartialEq, Eq)]
struct Scanned {
    events: Vec<Event>,
    feed_error: Option<JsonError>,
    finish: Result<(), JsonError>,
    values: u64,
}

fn scan(
    chunks: &[&[u8]],
    sequence: bool,
    policy: Policy,
    capture_all: bool,
    number_text: bool,
) -> Scanned {
    let mut scanner = if sequence {
        Scanner::sequence()
    } else {
        Scanner::new()
    };
    let mut visitor = Collect {
        policy,
        capture_all,
        number_text,
        events: Vec::new(),
    };
    let mut feed_error = None;
    for chunk in chunks {
        if let Err(e) = scanner.feed(chunk, &mut visitor) {
            if let Some(first) = feed_error {
                assert_eq!(first, e, "feed error not sticky");
            }
            feed_error.get_or_insert(e);
            assert_eq!(scanner.error(), Some(e));
        }
        // The only heap is the repair buffer: one string of MAX_STRING_BYTES bytes with each
        // byte repaired to a 3-byte U+FFFD, at most doubled by amortised growth.
        assert!(
            scanner.heap_bytes() <= 6 * MAX_STRING_BYTES,
            "scanner heap grew: {}",
            scanner.heap_bytes()
        );
    }
    let finish = scanner.finish(&mut visitor);
    if let Some(e) = feed_error {
        assert_eq!(finish, Err(e));
    }
    Scanned {
        events: visitor.events,
        feed_error,
        finish,
        values: scanner.values(),
    }
}

/// What serde_json says a scalar is.
#[derive(Debug)]
enum Expect {
    Null,
    Bool(bool),
    U64(u64),
    I64,
    F64,
    Str(String),
}

/// Walks a document with serde_json, recording scalars in document order (duplicates kept).
struct Walk<'a> {
    path: &'a mut Vec<Seg>,
    out: &'a mut Vec<(Vec<Seg>, Expect)>,
}

impl Walk<'_> {
    fn push(self, e: Expect) {
        if self.path.len() <= MAX_TRACKED_DEPTH {
            self.out.push((self.path.clone(), e));
        }
    }
}

impl<'de> DeserializeSeed<'de> for Walk<'_> {
    type Value = ();
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> SerdeVisitor<'de> for Walk<'_> {
    type Value = ();
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("any JSON")
    }
    fn visit_unit<E>(self) -> Result<(), E> {
        self.push(Expect::Null);
        Ok(())
    }
    fn visit_bool<E>(self, v: bool) -> Result<(), E> {
        self.push(Expect::Bool(v));
        Ok(())
    }
    fn visit_u64<E>(self, v: u64) -> Result<(), E> {
        self.push(Expect::U64(v));
        Ok(())
    }
    fn visit_i64<E>(self, _: i64) -> Result<(), E> {
        self.push(Expect::I64);
        Ok(())
    }
    fn visit_f64<E>(self, _: f64) -> Result<(), E> {
        self.push(Expect::F64);
        Ok(())
    }
    fn visit_str<E>(self, v: &str) -> Result<(), E> {
        self.push(Expect::Str(v.to_owned()));
        Ok(())
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        let Walk { path, out } = self;
        let mut i = 0u64;
        loop {
            path.push(Seg::Index(i));
            let more = seq.next_element_seed(Walk {
                path: &mut *path,
                out: &mut *out,
            })?;
            path.pop();
            if more.is_none() {
                return Ok(());
            }
            i += 1;
        }
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        let Walk { path, out } = self;
        while let Some(key) = map.next_key::<String>()? {
            path.push(if key.len() > MAX_KEY_BYTES {
                Seg::LongKey
            } else {
                Seg::Key(key.into_bytes())
            });
            map.next_value_seed(Walk {
                path: &mut *path,
                out: &mut *out,
            })?;
            path.pop();
        }
        Ok(())
    }
}

fn serde_scalars(body: &[u8], policy: Policy) -> Option<Vec<(Vec<Seg>, Expect)>> {
    let mut de = serde_json::Deserializer::from_slice(body);
    let (mut path, mut out) = (Vec::new(), Vec::new());
    Walk {
        path: &mut path,
        out: &mut out,
    }
    .deserialize(&mut de)
    .ok()?;
    de.end().ok()?;
    out.retain(|(path, _)| path_interest(policy, path) != 0);
    Some(out)
}

fn cut(s: &str, max: usize) -> &str {
    let mut end = s.len().min(max);
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

fn check_against_serde(body: &[u8], policy: Policy, scanned: &Scanned) {
    let Some(expected) = serde_scalars(body, policy) else {
        return;
    };
    assert_eq!(
        scanned.feed_error, None,
        "scanner rejected JSON serde_json accepts"
    );
    assert_eq!(
        scanned.finish,
        Ok(()),
        "scanner did not finish JSON serde_json accepts"
    );
    assert_eq!(scanned.values, 1);
    let got: Vec<(&Vec<Seg>, &Value)> = scanned
        .events
        .iter()
        .filter_map(|e| match e {
            Event::Scalar(p, v) => Some((p, v)),
            Event::ValueEnd => None,
        })
        .collect();
    assert_eq!(
        got.len(),
        expected.len(),
        "scalar count differs: {got:?} vs {expected:?}"
    );
    for ((path, value), (want_path, want)) in got.into_iter().zip(&expected) {
        assert_eq!(path, want_path, "path differs");
        let ok = match (want, value) {
            (Expect::Null, Value::Null) => true,
            (Expect::Bool(a), Value::Bool(b)) => a == b,
            (Expect::U64(a), Value::Integer(b)) => a == b,
            (Expect::I64, Value::OtherNumber) => true,
            // An integer too large for u64 is a float to serde and saturates in the scanner.
            (Expect::F64, Value::OtherNumber | Value::Integer(u64::MAX)) => true,
            // Number text: the same number as serde's (an integer too large for u64 is a
            // float to serde).
            (Expect::U64(a), Value::NumberText(t)) => t.parse::<u64>() == Ok(*a),
            (Expect::I64, Value::NumberText(t)) => t.starts_with('-') && t.parse::<i64>().is_ok(),
            (Expect::F64, Value::NumberText(t)) => t.parse::<f64>().is_ok(),
            (
                Expect::Str(s),
                Value::Str {
                    text: Some(t),
                    truncated,
                    raw_len,
                },
            ) => {
                t == cut(s, MAX_STRING_BYTES)
                    && *truncated == (s.len() > MAX_STRING_BYTES)
                    && *raw_len >= s.len() as u64
            }
            _ => false,
        };
        assert!(
            ok,
            "scalar at {path:?} differs: serde {want:?}, scanner {value:?}"
        );
    }
}

fuzz_target!(|data: &[u8]| {
    let input = SplitInput::parse(data);
    let sequence = input.selector & 1 == 1;
    let capture_all = input.selector & 2 == 0;
    let policy = if input.selector & 4 == 0 {
        Policy::All
    } else {
        Policy::Selective
    };
    let number_text = input.selector & 8 != 0;
    let whole = scan(&[input.body], sequence, policy, capture_all, number_text);
    let split = scan(&input.chunks(), sequence, policy, capture_all, number_text);
    assert_eq!(whole, split, "split feeding changed the result");
    if !sequence && capture_all {
        check_against_serde(input.body, policy, &whole);
    }
});
