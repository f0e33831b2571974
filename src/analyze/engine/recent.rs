//! The last bytes of each direction, kept to tell whether a retransmission carried the same
//! bytes as the first copy.

use std::collections::VecDeque;
use std::fs::File;
use std::sync::Arc;

use super::Delivered;
use crate::analyze::GrowFromOne;
use crate::analyze::input::{Block, READ_BACK_MIN, read_back};

/// Most recent in-order bytes remembered per direction (by the sink), to tell whether a
/// retransmission carried the same bytes as the first copy.
pub const RECENT: usize = 16 * 1024;
/// The ring's size when it is made.
pub const MIN_RING: usize = 64;
/// Short pieces noted by their position in the file, before the first copied byte, at most:
/// a direction of a few short lines keeps their positions, not a ring.
const SHORT_NOTES: usize = 4;

/// The last [`RECENT`] bytes of a direction, to compare retransmissions with.
///
/// Bytes are copied into a ring, except pieces whose place in the capture file is known
/// ([`Delivered::bytes`]) and that are long ([`READ_BACK_MIN`]) or among the first few short
/// ones (`SHORT_NOTES`): of those only the position is noted, and the few that a
/// retransmission needs are found in a mapped window of the file still at hand, or read back.
/// The ring is made at the first copy, as small as the copied bytes it must hold (from
/// [`MIN_RING`] bytes), and grows by doubling up to [`RECENT`]: a direction of a few short
/// lines keeps their positions, or a few hundred bytes, not 16 KiB.
#[derive(Debug, Default)]
pub struct Recent {
    /// Byte at stream offset `o` is at `o % ring.len()`; its length is a power of two, at
    /// least the span from the oldest copied byte still remembered to `ring_end`.
    ring: Vec<u8>,
    /// Stream offset just past the last byte copied into the ring.
    ring_end: u64,
    /// Stream offset just past the last byte remembered.
    end: u64,
    /// No byte before this offset is remembered (a gap came before it).
    valid_from: u64,
    /// Empty while every remembered byte is in the ring; otherwise where each remembered byte
    /// is, oldest first. Pieces shorter than [`READ_BACK_MIN`] go to the ring but for the first
    /// `SHORT_NOTES`, so there are at most a few dozen spans.
    spans: VecDeque<Span>,
}

#[derive(Debug, Clone, Copy)]
struct Span {
    /// Stream offset of the first byte.
    start: u64,
    len: u64,
    /// Position of the first byte in the capture file, or `None`: in the ring.
    file_at: Option<u64>,
}

impl Recent {
    /// Remember bytes delivered at `offset`.
    pub fn remember(&mut self, offset: u64, bytes: &[u8]) {
        self.remember_piece(offset, bytes, None);
    }

    /// The next bytes start at `offset`: if that is not where the last ones ended, forget
    /// everything before it.
    fn continue_at(&mut self, offset: u64) {
        if offset != self.end {
            self.valid_from = offset;
            self.spans.clear();
        }
    }

    fn remember_piece(&mut self, offset: u64, bytes: &[u8], file_at: Option<u64>) {
        self.continue_at(offset);
        let len = bytes.len() as u64;
        match file_at.filter(|_| self.notes(bytes.len())) {
            Some(at) => {
                if self.spans.is_empty() && offset > self.oldest() {
                    // Until now everything was in the ring.
                    let start = self.oldest();
                    self.spans.push_grown(Span { start, len: offset - start, file_at: None });
                }
                self.spans.push_grown(Span { start: offset, len, file_at: Some(at) });
            }
            None => {
                self.copy_to_ring(offset, bytes);
                if !self.spans.is_empty() {
                    match self.spans.back_mut() {
                        Some(s) if s.file_at.is_none() && s.start + s.len == offset => s.len += len,
                        _ => self.spans.push_grown(Span { start: offset, len, file_at: None }),
                    }
                }
            }
        }
        self.end = offset + len;
        let oldest = self.oldest();
        while self.spans.front().is_some_and(|s| s.start + s.len <= oldest) {
            self.spans.pop_front();
        }
    }

    /// Whether a piece of `len` bytes whose place in the file is known is noted by it: a long
    /// one always, a short one only before the ring is made, and the first few (each costs a
    /// span).
    fn notes(&self, len: usize) -> bool {
        len >= READ_BACK_MIN || (self.ring.is_empty() && self.spans.len() < SHORT_NOTES)
    }

    /// The first byte still remembered.
    fn oldest(&self) -> u64 {
        self.valid_from.max(self.end.saturating_sub(RECENT as u64))
    }

    fn copy_to_ring(&mut self, offset: u64, bytes: &[u8]) {
        let end = offset + bytes.len() as u64;
        // The oldest byte remembered once these are, and the oldest of those in the ring.
        let oldest = self.valid_from.max(end.saturating_sub(RECENT as u64));
        let lowest = if self.spans.is_empty() {
            oldest
        } else {
            self.spans
                .iter()
                .find(|s| s.file_at.is_none() && s.start + s.len > oldest)
                .map_or(offset, |s| s.start.max(oldest))
        };
        // At most RECENT: `lowest` is never older than `oldest`.
        let need = end.saturating_sub(lowest.min(offset)).min(RECENT as u64) as usize;
        if need > self.ring.len() {
            self.grow(need.next_power_of_two().clamp(MIN_RING, RECENT), lowest);
        }
        let size = self.ring.len();
        // Only the last `size` bytes matter; copy them in at most two pieces.
        let skip = bytes.len().saturating_sub(size);
        let tail = bytes.get(skip..).unwrap_or(&[]);
        let at = ((offset + skip as u64) % size as u64) as usize;
        let first = tail.len().min(size - at);
        let (a, b) = tail.split_at(first);
        if let Some(dst) = self.ring.get_mut(at..at + a.len()) {
            dst.copy_from_slice(a);
        }
        if let Some(dst) = self.ring.get_mut(..b.len()) {
            dst.copy_from_slice(b);
        }
        self.ring_end = end;
    }

    /// Make the ring `size` bytes long, moving the bytes it holds from stream offset `from`
    /// to where they go in the larger ring.
    fn grow(&mut self, size: usize, from: u64) {
        let old = std::mem::replace(&mut self.ring, vec![0; size]);
        if old.is_empty() {
            return;
        }
        let (old_size, new_size) = (old.len() as u64, size as u64);
        // Every copied byte still remembered is in [from, ring_end), at most the old size.
        let mut o = from.max(self.ring_end.saturating_sub(old_size));
        while o < self.ring_end {
            let (src, dst) = ((o % old_size) as usize, (o % new_size) as usize);
            // A run that wraps in neither ring.
            let n = (old.len() - src).min(size - dst).min((self.ring_end - o) as usize);
            if let (Some(to), Some(piece)) =
                (self.ring.get_mut(dst..dst + n), old.get(src..src + n))
            {
                to.copy_from_slice(piece);
            }
            o += n as u64;
        }
    }

    /// Remember several pieces delivered one after the other: the same as
    /// [`Recent::remember`] on each in turn (reading back from the file where a piece says
    /// it is in it), but the bytes of those that the later ones push out of the last
    /// [`RECENT`] are not copied.
    pub fn remember_all(&mut self, pieces: &[Delivered<'_>]) {
        // The first piece, from the end, that still reaches into the last RECENT bytes.
        let mut kept = 0usize;
        let mut from = pieces.len();
        while from > 0 && kept < RECENT {
            from -= 1;
            kept += pieces.get(from).map_or(0, |p| p.bytes.len());
        }
        for (i, p) in pieces.iter().enumerate() {
            if i < from {
                self.continue_at(p.offset);
                self.end = p.offset + p.bytes.len() as u64;
            } else {
                // Only pieces that may be noted by position need to say where they are.
                let at = if self.notes(p.bytes.len()) { p.bytes.file_at() } else { None };
                self.remember_piece(p.offset, p.bytes.bytes(), at);
            }
        }
    }

    /// Whether `bytes` at `offset` differ from what was remembered there (false when those
    /// bytes are no longer, or never were, remembered, or cannot be read back). Bytes noted by
    /// their position in the capture file are looked for in `mapped` (windows of the file
    /// still at hand) first, then read back from `file`.
    pub fn differs(
        &self,
        offset: u64,
        bytes: &[u8],
        file: Option<&File>,
        mapped: &[Arc<Block>],
    ) -> bool {
        let len = bytes.len() as u64;
        if offset < self.oldest() || offset + len > self.end || bytes.is_empty() {
            return false;
        }
        if self.spans.is_empty() {
            return self.ring_differs(offset, bytes);
        }
        let mut back = Vec::new();
        for s in &self.spans {
            let from = s.start.max(offset);
            let to = (s.start + s.len).min(offset + len);
            if from >= to {
                continue;
            }
            let Some(piece) = bytes.get((from - offset) as usize..(to - offset) as usize) else {
                return false;
            };
            let differ = match s.file_at.map(|at| at + (from - s.start)) {
                None => self.ring_differs(from, piece),
                Some(at) => match mapped.iter().find_map(|b| b.bytes_at(at, piece.len())) {
                    Some(old) => old != piece,
                    None => {
                        back.resize(piece.len(), 0);
                        match file {
                            Some(f) if read_back(f, at, &mut back) => back != piece,
                            _ => return false,
                        }
                    }
                },
            };
            if differ {
                return true;
            }
        }
        false
    }

    fn ring_differs(&self, offset: u64, bytes: &[u8]) -> bool {
        if self.ring.is_empty() {
            return false;
        }
        // Bytes the ring holds (checked by the caller): in at most two pieces of it.
        let size = self.ring.len();
        let at = (offset % size as u64) as usize;
        let (a, b) = bytes.split_at(bytes.len().min(size - at));
        let differ = |ring: Option<&[u8]>, piece: &[u8]| ring.is_some_and(|r| r != piece);
        differ(self.ring.get(at..at + a.len()), a) || differ(self.ring.get(..b.len()), b)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::analyze::input::Captured;

    #[test]
    fn recent_bytes_compare_only_what_is_remembered() {
        let mut r = Recent::default();
        r.remember(0, b"abcdef");
        assert!(!r.differs(1, b"bcd", None, &[]));
        assert!(r.differs(1, b"bXd", None, &[]));
        assert!(!r.differs(4, b"efgh", None, &[]), "past the end: unknown");
        r.remember(100, b"xyz"); // after a gap
        assert!(!r.differs(0, b"ZZZ", None, &[]), "before the gap: forgotten");
        let big = vec![7u8; RECENT + 10];
        r.remember(103, &big);
        assert!(!r.differs(103, &[1], None, &[]), "pushed out of the window");
        assert!(r.differs(103 + big.len() as u64 - 1, &[1], None, &[]));
    }

    /// Whether `bytes` at `offset` differ from the stream, by the rule [`Recent::differs`]
    /// follows, worked out from the whole stream: only bytes all within the last [`RECENT`]
    /// delivered since the last discontinuity are known.
    fn model_differs(stream: &[u8], from: u64, end: u64, offset: u64, bytes: &[u8]) -> bool {
        let oldest = from.max(end.saturating_sub(RECENT as u64));
        let len = bytes.len() as u64;
        if offset < oldest || offset + len > end || bytes.is_empty() {
            return false;
        }
        stream.get(offset as usize..(offset + len) as usize) != Some(bytes)
    }

    #[test]
    fn a_ring_that_grows_answers_as_a_full_one() {
        // Pieces of every size (short ones copied, long ones noted by their place in the
        // file), with discontinuities, checked after each piece against the whole stream.
        let data: Vec<u8> = (0..200_000u32).map(|i| (i * 31 + i / 97) as u8).collect();
        let path =
            tempfile::Builder::new().prefix("rchat-ring-").tempfile().unwrap().into_temp_path();
        std::fs::write(&path, &data).unwrap();
        let file = File::open(&path).unwrap();
        let mut next = crate::analyze::xorshift(0x1234_5678_9abc_def1);
        let mut r = Recent::default();
        let (mut offset, mut from) = (0u64, 0u64);
        let mut sizes = Vec::new();
        for i in 0..600 {
            let len = match next() % 10 {
                0..=5 => 1 + (next() % 200) as usize,
                6 | 7 => 512 + (next() % 1500) as usize,
                8 => (next() % 40) as usize,
                _ => (next() % 20_000) as usize,
            };
            if next().is_multiple_of(60) {
                // Bytes missing: what came before is forgotten.
                offset += 1 + next() % 3000;
                from = offset;
            }
            if offset as usize + len > data.len() {
                break;
            }
            let piece = &data[offset as usize..offset as usize + len];
            // Short ones are noted only while nothing was copied and they are few.
            let noted = !next().is_multiple_of(4);
            r.remember_piece(offset, piece, noted.then_some(offset));
            offset += len as u64;
            sizes.push(r.ring.len());
            for _ in 0..8 {
                let back = next() % (RECENT as u64 + 2000);
                let at = offset.saturating_sub(back);
                let n = (1 + next() % 3000).min(offset - at);
                let mut probe = data[at as usize..(at + n) as usize].to_vec();
                let want = model_differs(&data, from, offset, at, &probe);
                assert_eq!(r.differs(at, &probe, Some(&file), &[]), want, "piece {i}");
                if let Some(b) = probe.get_mut((next() % n.max(1)) as usize) {
                    *b ^= 0x40;
                }
                let want = model_differs(&data, from, offset, at, &probe);
                assert_eq!(r.differs(at, &probe, Some(&file), &[]), want, "piece {i}, changed");
            }
        }
        assert!(sizes.iter().all(|&s| s == 0 || (s.is_power_of_two() && s <= RECENT)));
        // A direction of a few short lines keeps a small ring.
        let mut lines = Recent::default();
        lines.remember(0, b"hello there\n");
        lines.remember(12, b"see you at six\n");
        assert_eq!(lines.ring.len(), MIN_RING);
        assert!(lines.differs(12, b"see you at 6", None, &[]));
        assert!(!lines.differs(0, b"hello there\nsee", None, &[]));
        // With their place in the file known, the first few short pieces keep no ring at all.
        let mut noted = Recent::default();
        for (i, at) in [0u64, 300, 700].into_iter().enumerate() {
            noted.remember_piece(i as u64 * 100, &data[at as usize..at as usize + 100], Some(at));
        }
        assert!(noted.ring.is_empty());
        assert!(!noted.differs(120, &data[320..370], Some(&file), &[]));
        assert!(noted.differs(120, &data[321..371], Some(&file), &[]));
        let across = [&data[50..100], &data[300..350]].concat();
        assert!(!noted.differs(50, &across, Some(&file), &[]));
        // More of them are copied from then on.
        for i in 3..10u64 {
            noted.remember_piece(i * 100, &data[1000..1100], Some(1000));
        }
        assert_eq!(noted.ring.len(), 1024);
        assert!(!noted.differs(250, &data[750..800], Some(&file), &[]));
        assert!(!noted.differs(950, &data[1050..1100], Some(&file), &[]));
        assert!(noted.differs(950, &data[1051..1101], Some(&file), &[]));
    }

    #[test]
    fn recent_bytes_read_back_from_the_file_compare_the_same() {
        // The same pieces remembered by copy and by position in a file must answer alike.
        let data: Vec<u8> = (0..3 * RECENT as u32).map(|i| (i * 7 + i / 251) as u8).collect();
        let path =
            tempfile::Builder::new().prefix("rchat-recent-").tempfile().unwrap().into_temp_path();
        std::fs::write(&path, &data).unwrap();
        let file = File::open(&path).unwrap();
        let cuts = [0usize, 1500, 1600, 1700, 4000, 9000, 9100, 20_000, 30_000, 3 * RECENT];
        let pieces: Vec<Delivered<'_>> = cuts
            .windows(2)
            .map(|w| Delivered {
                offset: w[0] as u64,
                bytes: Captured::copied_from(&data[w[0]..w[1]], Some(w[0] as u64)),
                new_run: false,
                time_ns: 0,
            })
            .collect();
        let mut copied = Recent::default();
        for p in &pieces {
            copied.remember(p.offset, p.bytes.bytes());
        }
        let mut one_by_one = Recent::default();
        for p in &pieces {
            one_by_one.remember_piece(p.offset, p.bytes.bytes(), p.bytes.file_at());
        }
        let mut at_once = Recent::default();
        at_once.remember_all(&pieces[..4]);
        at_once.remember_all(&pieces[4..]);
        assert!(!one_by_one.spans.is_empty() && !at_once.spans.is_empty());
        let end = data.len();
        for (from, len) in [(end - 10, 10), (end - RECENT, RECENT), (end - 9000, 3000), (0, 5)] {
            let same = &data[from..from + len];
            let mut other = same.to_vec();
            other[len / 2] ^= 1;
            for r in [&copied, &one_by_one, &at_once] {
                let known = from >= end - RECENT;
                assert!(!r.differs(from as u64, same, Some(&file), &[]), "{from}+{len}");
                assert_eq!(r.differs(from as u64, &other, Some(&file), &[]), known, "{from}+{len}");
            }
        }
        // A file that cannot be read back: nothing is known...
        assert!(!one_by_one.differs((end - 10) as u64, &[0; 10], None, &[]));
        // ...unless a mapped window of it still holds the bytes.
        let early = Arc::new(Block::map_for_test(&file, 0, 4096));
        let window = Arc::new(Block::map_for_test(&file, (end - RECENT) as u64, RECENT));
        let both = [early, window];
        for r in [&one_by_one, &at_once] {
            let from = end - 9000;
            let mut other = data[from..from + 3000].to_vec();
            assert!(!r.differs(from as u64, &other, None, &both));
            other[100] ^= 1;
            assert!(r.differs(from as u64, &other, None, &both));
            assert!(!r.differs(from as u64, &other, None, &both[..1]), "not in the window");
        }
        drop(file);
    }
}
