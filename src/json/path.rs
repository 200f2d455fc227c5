//! Where a scalar sits: the bounded stack of keys and indices above it, and the static
//! patterns extractors match it against.

use super::{Interest, MAX_KEY_BYTES, MAX_TRACKED_DEPTH};

/// One open container as the scanner tracks it.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Frame {
    pub(crate) object: bool,
    /// Index of the current element (arrays only).
    pub(crate) index: u64,
    /// Length of the current key in the frame's key slot (objects only).
    pub(crate) key_len: u8,
    /// The current key was longer than [`MAX_KEY_BYTES`].
    pub(crate) key_long: bool,
    /// The visitor's interest in this container.
    pub(crate) own: Interest,
    /// The visitor's interest in the current member or element.
    pub(crate) member: Interest,
}

/// One step of a path as reported.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Segment<'a> {
    /// An object member, with its decoded key.
    Key(&'a [u8]),
    /// An object member whose key was too long to keep; matches nothing.
    LongKey,
    /// An array element.
    Index(u64),
}

/// One step of a static pattern.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    Key(&'static str),
    /// Any array element (`choices[*]`).
    AnyIndex,
}

/// The path of the value being reported, root first.
#[derive(Debug, Clone, Copy)]
pub struct Path<'a> {
    pub(crate) frames: &'a [Frame],
    pub(crate) keys: &'a [[u8; MAX_KEY_BYTES]; MAX_TRACKED_DEPTH],
}

impl<'a> Path<'a> {
    /// Number of segments (0 for a top-level scalar).
    pub fn len(&self) -> usize {
        self.frames.len()
    }

    pub fn is_empty(&self) -> bool {
        self.frames.is_empty()
    }

    /// The segment at `depth` (0 is the outermost).
    pub fn get(&self, depth: usize) -> Option<Segment<'a>> {
        let frame = self.frames.get(depth)?;
        if !frame.object {
            return Some(Segment::Index(frame.index));
        }
        if frame.key_long {
            return Some(Segment::LongKey);
        }
        let key = self.keys.get(depth)?.get(..usize::from(frame.key_len))?;
        Some(Segment::Key(key))
    }

    /// The innermost segment.
    pub fn last(&self) -> Option<Segment<'a>> {
        self.get(self.len().checked_sub(1)?)
    }

    /// True when the path is exactly `steps`. Compares innermost first, where paths differ.
    pub fn matches(&self, steps: &[Step]) -> bool {
        if steps.len() != self.frames.len() {
            return false;
        }
        steps
            .iter()
            .enumerate()
            .rev()
            .all(|(depth, step)| match (step, self.get(depth)) {
                (Step::Key(want), Some(Segment::Key(got))) => want.as_bytes() == got,
                (Step::AnyIndex, Some(Segment::Index(_))) => true,
                _ => false,
            })
    }

    /// True when the path starts with `steps` (and may go deeper).
    pub fn starts_with(&self, steps: &[Step]) -> bool {
        if steps.len() > self.frames.len() {
            return false;
        }
        steps
            .iter()
            .enumerate()
            .all(|(depth, step)| match (step, self.get(depth)) {
                (Step::Key(want), Some(Segment::Key(got))) => want.as_bytes() == got,
                (Step::AnyIndex, Some(Segment::Index(_))) => true,
                _ => false,
            })
    }
}
