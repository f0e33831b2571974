//! Captured bytes and where they came from: the one type every stage after `input` passes
//! bytes in.
//!
//! A [`Captured`] is a slice of bytes and its [`Origin`]: inside one of the reader's shared
//! blocks (a mapped window of the capture file, or a read buffer), a copy of the file's bytes
//! at a known position, or nowhere known. The stages that only read bytes (`stream`,
//! `recognise`, `classify`, `report`) see [`Captured::bytes`] and cut pieces out of it with
//! [`Captured::get`] and [`Captured::split_at`], which keep the origin right; only `input` and
//! `engine` ask where the bytes are (`Captured::file_at`, `Captured::shared_block`), to
//! share a block instead of copying it, or to note a position instead of copying the bytes and
//! read them back later (`read_back`).

use std::ops::Range;
use std::sync::Arc;

use super::Block;

/// Captured bytes and where they came from.
#[derive(Debug, Clone, Copy, Default)]
pub struct Captured<'a> {
    bytes: &'a [u8],
    origin: Origin<'a>,
}

/// Where captured bytes came from; opaque outside `input` and `engine`.
#[derive(Debug, Clone, Copy, Default)]
pub struct Origin<'a>(Place<'a>);

#[derive(Debug, Clone, Copy, Default)]
enum Place<'a> {
    /// Not known (a reassembled IP datagram, a test's bytes).
    #[default]
    Unknown,
    /// Inside this shared block of the reader (when the bytes lie in it).
    Block(&'a Arc<Block>),
    /// A copy of the capture file's bytes from this position on.
    File(u64),
}

impl<'a> From<&'a [u8]> for Captured<'a> {
    fn from(bytes: &'a [u8]) -> Self {
        Captured { bytes, origin: Origin::default() }
    }
}

impl<'a> Captured<'a> {
    /// The bytes.
    #[inline]
    pub fn bytes(&self) -> &'a [u8] {
        self.bytes
    }

    /// How many bytes.
    #[inline]
    pub fn len(&self) -> usize {
        self.bytes.len()
    }

    /// True when there are none.
    #[inline]
    pub fn is_empty(&self) -> bool {
        self.bytes.is_empty()
    }

    /// The bytes in `range`, with their origin; `None` if the range is out of bounds.
    #[inline]
    pub fn get(&self, range: Range<usize>) -> Option<Captured<'a>> {
        let start = range.start;
        let bytes = self.bytes.get(range)?;
        Some(Captured { bytes, origin: self.origin.shifted(start) })
    }

    /// The bytes from `start` on (none if `start` is past the end).
    #[inline]
    pub fn after(&self, start: usize) -> Captured<'a> {
        self.get(start..self.len()).unwrap_or_default()
    }

    /// The first `n` bytes (all of them if there are fewer).
    #[inline]
    pub fn first(&self, n: usize) -> Captured<'a> {
        self.get(0..n.min(self.len())).unwrap_or_default()
    }

    /// The first `mid` bytes and the rest (`mid` past the end: all of them, and none).
    #[inline]
    pub fn split_at(&self, mid: usize) -> (Captured<'a>, Captured<'a>) {
        (self.first(mid), self.after(mid))
    }

    /// The bytes of `part`, which must lie inside these bytes, with their origin; bytes that
    /// do not lie inside keep no origin.
    pub fn within(&self, part: &'a [u8]) -> Captured<'a> {
        match position_in(self.bytes, part) {
            Some(start) => Captured { bytes: part, origin: self.origin.shifted(start) },
            None => Captured::from(part),
        }
    }

    /// A copy of the bytes that still knows where in the capture file they came from.
    pub fn to_copy(&self) -> CapturedCopy {
        CapturedCopy { bytes: self.bytes.to_vec(), file_at: self.file_at() }
    }

    /// Bytes lying in one of the reader's shared blocks.
    pub(in crate::analyze) fn in_block(block: &'a Arc<Block>, bytes: &'a [u8]) -> Self {
        Captured { bytes, origin: Origin(Place::Block(block)) }
    }

    /// Bytes that are a copy of the capture file's bytes at `file_at`, when that is known.
    pub(in crate::analyze) fn copied_from(bytes: &'a [u8], file_at: Option<u64>) -> Self {
        let origin = Origin(file_at.map_or(Place::Unknown, Place::File));
        Captured { bytes, origin }
    }

    /// Where the first byte is in the capture file, when the bytes lie in a mapped window of
    /// it or are a copy of bytes that did.
    pub(in crate::analyze) fn file_at(&self) -> Option<u64> {
        match self.origin.0 {
            Place::Unknown => None,
            Place::File(at) => Some(at),
            Place::Block(block) => Some(block.file_at()? + position_in(block, self.bytes)? as u64),
        }
    }

    /// The capture file the bytes can be read back from, when they lie in a mapped window of
    /// it.
    pub(in crate::analyze) fn file(&self) -> Option<&'a Arc<std::fs::File>> {
        match self.origin.0 {
            Place::Block(block) => block.file(),
            _ => None,
        }
    }

    /// The shared block the bytes lie in, and where in it they start.
    pub(in crate::analyze) fn shared_block(&self) -> Option<(&'a Arc<Block>, usize)> {
        match self.origin.0 {
            Place::Block(block) => Some((block, position_in(block, self.bytes)?)),
            _ => None,
        }
    }
}

impl Origin<'_> {
    /// The origin of the bytes `n` further on.
    #[inline]
    fn shifted(self, n: usize) -> Self {
        match self.0 {
            Place::File(at) => Origin(Place::File(at + n as u64)),
            other => Origin(other),
        }
    }
}

/// Where `part` starts in `whole`, if it lies inside it.
pub(in crate::analyze) fn position_in(whole: &[u8], part: &[u8]) -> Option<usize> {
    let base = whole.as_ptr() as usize;
    let at = part.as_ptr() as usize;
    (at >= base && at + part.len() <= base + whole.len()).then(|| at - base)
}

/// Captured bytes copied out of the reader's blocks, still knowing where in the capture file
/// they came from (when they did).
#[derive(Debug, Clone)]
pub struct CapturedCopy {
    bytes: Vec<u8>,
    file_at: Option<u64>,
}

impl CapturedCopy {
    /// The copied bytes, with their origin.
    pub fn captured(&self) -> Captured<'_> {
        Captured::copied_from(&self.bytes, self.file_at)
    }

    /// The copied bytes.
    pub fn bytes(&self) -> &[u8] {
        &self.bytes
    }

    /// How many bytes.
    pub fn len(&self) -> usize {
        self.bytes.len()
    }

    /// True when there are none.
    pub fn is_empty(&self) -> bool {
        self.bytes.is_empty()
    }
}
