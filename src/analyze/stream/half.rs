//! One direction of a connection: where its next byte is, the bytes that came out of order,
//! and how they are handed on in order.
//!
//! Owns sequence-number unwrapping, retransmissions and overlaps (first copy wins, conflicting
//! copies among those still buffered counted), the out-of-order buffer and its cap, gaps, and
//! delivery to the [`Sink`]. It never looks at what the bytes mean.

use std::collections::BTreeMap;

use super::flows::Stream;
use super::stats::{Counters, Gap};
use super::{Dir, Sink};
use crate::analyze::input::{Captured, CapturedCopy};

/// Gaps listed per direction (more are counted in `missing_bytes` only).
const MAX_GAPS: usize = 1000;

#[derive(Debug)]
enum Piece {
    /// A copy of segment bytes (which knows where they came from).
    Data(CapturedCopy),
    /// Bytes known to exist but cut off by the snaplen.
    Hole(u64),
}

impl Piece {
    fn len(&self) -> u64 {
        match self {
            Piece::Data(d) => d.len() as u64,
            Piece::Hole(n) => *n,
        }
    }
}

#[derive(Debug, Default)]
pub(super) struct Half {
    pub(super) isn: Option<u32>,
    pub(super) anchored: bool,
    /// Sequence number of stream offset 0.
    pub(super) base: u32,
    /// Offset of the next in-order byte.
    pub(super) next: u64,
    ooo: BTreeMap<u64, Piece>,
    ooo_bytes: usize,
    pub(super) fin: Option<u64>,
    pub(super) stats: Counters,
    /// The sender's write ended with the last bytes delivered: the next ones start a run.
    pub(super) write_ended: bool,
    /// When the last segment with payload came (nanoseconds; 0: none yet).
    pub(super) last_data_ns: i64,
    /// The largest payload of one segment so far (captured and cut bytes).
    pub(super) largest: u32,
}

impl Half {
    pub(super) fn anchor(&mut self, seq: u32) {
        self.anchored = true;
        self.base = seq;
        self.next = 0;
    }

    /// Unwrap a sequence number to a stream offset near `next` (may be negative).
    pub(super) fn offset_of(&self, seq: u32) -> i64 {
        let here = self.base.wrapping_add(self.next as u32);
        self.next as i64 + i64::from(seq.wrapping_sub(here) as i32)
    }

    /// Forget what is buffered out of order (the stream is over).
    pub(super) fn clear_buffer(&mut self) {
        self.ooo = BTreeMap::new();
        self.ooo_bytes = 0;
    }

    pub(super) fn add_gap(&mut self, offset: u64, length: u64) {
        let rare = self.stats.rare();
        rare.missing_bytes += length;
        if rare.gaps.len() < MAX_GAPS {
            rare.gaps.push(Gap { offset, length });
        }
    }
}

/// Hand in-order bytes to the sink: straight from the segment, or a copy kept out of order.
fn deliver(stream: &mut Stream, dir: Dir, bytes: Captured<'_>, sink: &mut impl Sink) {
    if bytes.is_empty() {
        return;
    }
    let h = &mut stream.halves[dir.index()];
    let new_run = stream.last_data != Some(dir) || h.write_ended;
    h.write_ended = false;
    stream.last_data = Some(dir);
    // The last segment that brought new bytes is the one that delivers them.
    sink.data(stream.id, dir, h.next, bytes, new_run, h.last_data_ns);
    h.next += bytes.len() as u64;
    h.stats.bytes += bytes.len() as u64;
}

pub(super) fn insert(
    stream: &mut Stream,
    dir: Dir,
    off: i64,
    data: Captured<'_>,
    cut: u64,
    cap: usize,
    sink: &mut impl Sink,
) {
    let h = &mut stream.halves[dir.index()];
    let mut off = off;
    let mut data = data;
    let mut cut = cut;
    // Bytes from before the point where this direction was picked up.
    if off < 0 {
        let before = (-off) as u64;
        let drop = before.min(data.len() as u64) as usize;
        if drop > 0 {
            h.stats.rare().before_start_bytes += drop as u64;
        }
        data = data.after(drop);
        cut = cut.saturating_sub(before - drop as u64);
        off = 0;
    }
    let mut off = off as u64;
    // Nothing after the FIN counts.
    if let Some(f) = h.fin {
        let end = off + data.len() as u64;
        if end > f {
            let keep = f.saturating_sub(off).min(data.len() as u64) as usize;
            data = data.first(keep);
            cut = 0;
        }
    }
    // Already delivered: a retransmission (first copy wins).
    if off < h.next {
        let old = (h.next - off).min(data.len() as u64) as usize;
        let (seen, rest) = data.split_at(old);
        if !seen.is_empty() {
            h.stats.rare().retransmitted_bytes += seen.len() as u64;
        }
        // Whether the bytes differ from the first copy is for the sink to tell: it saw them.
        sink.retransmit(stream.id, dir, off, seen.bytes());
        data = rest;
        off += old as u64;
        if data.is_empty() {
            let covered = (h.next - off).min(cut);
            cut -= covered;
            off += covered;
            if cut == 0 {
                return;
            }
        }
    }
    if off == h.next && h.ooo.is_empty() {
        deliver(stream, dir, data, sink);
        if cut > 0 {
            let h = &mut stream.halves[dir.index()];
            let at = h.next;
            h.add_gap(at, cut);
            h.next += cut;
            sink.gap(stream.id, dir, at, cut, true);
        }
        return;
    }
    let h = &mut stream.halves[dir.index()];
    store(h, off, data);
    if cut > 0 {
        let at = off + data.len() as u64;
        h.ooo.entry(at).or_insert(Piece::Hole(cut));
    }
    drain(stream, dir, sink);
    let h = &mut stream.halves[dir.index()];
    if h.ooo_bytes > cap {
        stream.overflowed = true;
        while stream.halves[dir.index()].ooo_bytes > cap / 2 {
            if !skip_to_first(stream, dir, sink) {
                break;
            }
        }
    }
}

/// Store out-of-order bytes, keeping only what no earlier copy covers (each copy knows where
/// its bytes came from).
fn store(h: &mut Half, off: u64, data: Captured<'_>) {
    let end = off + data.len() as u64;
    let mut pieces: Vec<(u64, u64)> = Vec::new(); // covered [start, end) by earlier copies
    if let Some((&k, p)) = h.ooo.range(..off).next_back()
        && k + p.len() > off
    {
        pieces.push((k, k + p.len()));
    }
    for (&k, p) in h.ooo.range(off..end) {
        pieces.push((k, k + p.len()));
    }
    let mut cursor = off;
    let mut fresh: Vec<(u64, u64)> = Vec::new();
    for (s, e) in pieces {
        let s2 = s.max(off);
        let e2 = e.min(end);
        if s2 > cursor {
            fresh.push((cursor, s2));
        }
        if e2 > s2 {
            let slice_at = |a: u64, b: u64| {
                data.bytes().get((a - off) as usize..(b - off) as usize).unwrap_or(&[])
            };
            let new = slice_at(s2, e2);
            h.stats.rare().retransmitted_bytes += e2 - s2;
            if let Some(Piece::Data(old)) = h.ooo.get(&s) {
                let old = old.bytes().get((s2 - s) as usize..(e2 - s) as usize).unwrap_or(&[]);
                if old != new {
                    h.stats.rare().conflicting_retransmissions += 1;
                }
            }
        }
        cursor = cursor.max(e2);
    }
    if cursor < end {
        fresh.push((cursor, end));
    }
    for (a, b) in fresh {
        let piece = data.get((a - off) as usize..(b - off) as usize).unwrap_or_default().to_copy();
        h.ooo_bytes += piece.len();
        h.ooo.insert(a, Piece::Data(piece));
    }
}

/// Deliver stored pieces that are now in order.
fn drain(stream: &mut Stream, dir: Dir, sink: &mut impl Sink) {
    loop {
        let h = &mut stream.halves[dir.index()];
        let Some(entry) = h.ooo.first_entry() else { return };
        let k = *entry.key();
        if k > h.next {
            return;
        }
        let piece = entry.remove();
        let plen = piece.len();
        if let Piece::Data(d) = &piece {
            h.ooo_bytes -= d.len();
        }
        if k + plen <= h.next {
            continue;
        }
        let skip = (h.next - k) as usize;
        match piece {
            Piece::Data(d) => deliver(stream, dir, d.captured().after(skip), sink),
            Piece::Hole(n) => {
                let n = n - skip as u64;
                let at = h.next;
                h.add_gap(at, n);
                h.next += n;
                sink.gap(stream.id, dir, at, n, true);
            }
        }
    }
}

/// Declare the hole before the first stored piece a gap and deliver what follows it.
/// Returns false when nothing is stored.
fn skip_to_first(stream: &mut Stream, dir: Dir, sink: &mut impl Sink) -> bool {
    let h = &mut stream.halves[dir.index()];
    let Some((&k, _)) = h.ooo.first_key_value() else { return false };
    if k > h.next {
        let at = h.next;
        h.add_gap(at, k - at);
        h.next = k;
        sink.gap(stream.id, dir, at, k - at, false);
    }
    drain(stream, dir, sink);
    true
}

pub(super) fn flush(stream: &mut Stream, dir: Dir, sink: &mut impl Sink) {
    while skip_to_first(stream, dir, sink) {}
}
