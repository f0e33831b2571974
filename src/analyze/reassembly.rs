//! TCP reassembly: turning segments back into the two byte streams of each connection, the way
//! Wireshark's Follow TCP Stream shows them.
//!
//! Owns connection tracking (4-tuple plus a generation, so a reused port pair after a new SYN
//! is a new stream and a retransmitted SYN is not), who is client and server, the 64-bit
//! unwrapped offset of every byte (sequence numbers wrap), out-of-order data (bounded per
//! direction), retransmissions and overlaps (first copy wins, conflicting copies counted), gaps
//! (reported and skipped), FIN and RST, and flushing what is left at the end of the capture.
//! In-order bytes are pushed to a [`Sink`] as soon as they are known, so memory depends on the
//! number of live connections and the out-of-order cap, never on the size of the capture. It
//! never looks at what the bytes mean and never checks checksums (offload makes them wrong).

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::fs::File;
use std::net::IpAddr;
use std::sync::Arc;

use crate::analyze::input::decode::{Segment, flags};
use crate::analyze::input::{Block, READ_BACK_MIN, read_back};

/// Out-of-order bytes kept per direction before the hole in front of them is declared a gap.
pub const OOO_CAP: usize = 4 * 1024 * 1024;
/// Most recent in-order bytes remembered per direction (by the sink), to tell whether a
/// retransmission carried the same bytes as the first copy.
pub const RECENT: usize = 16 * 1024;
/// Gaps listed per direction (more are counted in `missing_bytes` only).
const MAX_GAPS: usize = 1000;

/// One direction of a connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Dir {
    /// From the client (the SYN sender) to the server.
    ClientToServer = 0,
    /// From the server to the client.
    ServerToClient = 1,
}

impl Dir {
    fn index(self) -> usize {
        self as usize
    }
}

/// In-order bytes of one direction, as [`Sink::data`] gets them.
#[derive(Debug, Clone, Copy)]
pub struct Delivered<'a> {
    /// Stream offset of the first byte.
    pub offset: u64,
    /// The bytes.
    pub bytes: &'a [u8],
    /// See [`Sink::data`].
    pub new_run: bool,
    /// Where the bytes are in the capture file, when they are read straight from it (a
    /// mapped window) or are a copy of bytes that were: the sink may read them back later
    /// instead of keeping a copy.
    pub file_at: Option<u64>,
}

/// Where reassembled bytes go.
pub trait Sink {
    /// A new stream begins.
    fn open(&mut self, stream: usize, client: (IpAddr, u16), server: (IpAddr, u16));
    /// In-order bytes of one direction, starting at stream offset `offset`. `new_run` is true
    /// when the other direction sent data since this direction last did (or this is the
    /// direction's first data).
    fn data(&mut self, stream: usize, dir: Dir, offset: u64, bytes: &[u8], new_run: bool);
    /// [`Sink::data`] for bytes reassembly kept out of order, a copy of the capture file's
    /// bytes at `file_at` (as [`Sink::locate`] told). A sink that notes where bytes are in the
    /// file instead of copying them may do so for these too.
    fn data_copied(
        &mut self,
        stream: usize,
        dir: Dir,
        offset: u64,
        bytes: &[u8],
        new_run: bool,
        file_at: u64,
    ) {
        let _ = file_at;
        self.data(stream, dir, offset, bytes, new_run);
    }
    /// `len` bytes at `offset` are missing from the capture: lost, or (`snaplen`) sent but cut
    /// off by the capture's snaplen.
    fn gap(&mut self, stream: usize, dir: Dir, offset: u64, len: u64, snaplen: bool);
    /// Bytes at `offset`, all of them delivered before, arrived again. The sink may compare
    /// them with what it was given (see [`Recent`]).
    fn retransmit(&mut self, stream: usize, dir: Dir, offset: u64, bytes: &[u8]);
    /// The stream is over: no more calls for it.
    fn close(&mut self, stream: usize);
    /// The shared block the bytes of the next segments come from. A sink that hands bytes to
    /// another thread may keep a reference to it instead of copying them; others ignore it.
    fn backing(&mut self, _block: &Arc<Block>) {}
    /// Where `bytes`, which reassembly is about to copy, are in the capture file, if the
    /// sink can tell (they lie in a mapped window it was given by [`Sink::backing`]).
    fn locate(&self, _bytes: &[u8]) -> Option<u64> {
        None
    }
}

/// A range of bytes missing from a direction.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct Gap {
    /// Stream offset of the first missing byte.
    pub offset: u64,
    /// How many bytes are missing.
    pub length: u64,
}

/// Counters of one direction.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HalfStats {
    /// Segments seen in this direction (with or without payload).
    pub packets: u64,
    /// Reassembled bytes delivered.
    pub bytes: u64,
    /// Bytes missing from the capture (sum of the gaps).
    pub missing_bytes: u64,
    /// The gaps, up to a limit.
    pub gaps: Vec<Gap>,
    /// Payload bytes that arrived again after a first copy.
    pub retransmitted_bytes: u64,
    /// Retransmitted segments whose bytes differed from the first copy, among those still
    /// buffered out of order (the sink counts the others).
    pub conflicting_retransmissions: u64,
    /// Payload bytes a short snaplen kept out of the file.
    pub snaplen_cut_bytes: u64,
    /// Payload bytes sent before the point where the capture picked the stream up.
    pub before_start_bytes: u64,
}

/// The last [`RECENT`] bytes of a direction, to compare retransmissions with.
///
/// Bytes are copied into a ring, except pieces whose place in the capture file is known
/// ([`Delivered::file_at`]): of those only the position is noted, and the few that a
/// retransmission needs are found in a mapped window of the file still at hand, or read back.
#[derive(Debug, Default)]
pub struct Recent {
    ring: Vec<u8>,
    /// Stream offset just past the last byte remembered.
    end: u64,
    /// No byte before this offset is remembered (a gap came before it).
    valid_from: u64,
    /// Empty while every remembered byte is in the ring; otherwise where each remembered byte
    /// is, oldest first. Pieces shorter than [`READ_BACK_MIN`] go to the ring, so there are at
    /// most a few dozen spans.
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
        match file_at.filter(|_| bytes.len() >= READ_BACK_MIN) {
            Some(at) => {
                if self.spans.is_empty() && offset > self.oldest() {
                    // Until now everything was in the ring.
                    let start = self.oldest();
                    self.spans.push_back(Span { start, len: offset - start, file_at: None });
                }
                self.spans.push_back(Span { start: offset, len, file_at: Some(at) });
            }
            None => {
                self.copy_to_ring(offset, bytes);
                if !self.spans.is_empty() {
                    match self.spans.back_mut() {
                        Some(s) if s.file_at.is_none() && s.start + s.len == offset => s.len += len,
                        _ => self.spans.push_back(Span { start: offset, len, file_at: None }),
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

    /// The first byte still remembered.
    fn oldest(&self) -> u64 {
        self.valid_from.max(self.end.saturating_sub(RECENT as u64))
    }

    fn copy_to_ring(&mut self, offset: u64, bytes: &[u8]) {
        if self.ring.is_empty() {
            self.ring = vec![0; RECENT];
        }
        // Only the last RECENT bytes matter; copy them in at most two pieces.
        let skip = bytes.len().saturating_sub(RECENT);
        let tail = bytes.get(skip..).unwrap_or(&[]);
        let at = ((offset + skip as u64) % RECENT as u64) as usize;
        let first = tail.len().min(RECENT - at);
        let (a, b) = tail.split_at(first);
        if let Some(dst) = self.ring.get_mut(at..at + a.len()) {
            dst.copy_from_slice(a);
        }
        if let Some(dst) = self.ring.get_mut(..b.len()) {
            dst.copy_from_slice(b);
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
                self.remember_piece(p.offset, p.bytes, p.file_at);
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
        // At most RECENT bytes (checked by the caller): in at most two pieces of the ring.
        let at = (offset % RECENT as u64) as usize;
        let (a, b) = bytes.split_at(bytes.len().min(RECENT - at));
        let differ = |ring: Option<&[u8]>, piece: &[u8]| ring.is_some_and(|r| r != piece);
        differ(self.ring.get(at..at + a.len()), a) || differ(self.ring.get(..b.len()), b)
    }
}

#[derive(Debug)]
enum Piece {
    /// A copy of segment bytes, and where they are in the capture file if known.
    Data(Vec<u8>, Option<u64>),
    /// Bytes known to exist but cut off by the snaplen.
    Hole(u64),
}

impl Piece {
    fn len(&self) -> u64 {
        match self {
            Piece::Data(d, _) => d.len() as u64,
            Piece::Hole(n) => *n,
        }
    }
}

#[derive(Debug, Default)]
struct Half {
    isn: Option<u32>,
    anchored: bool,
    /// Sequence number of stream offset 0.
    base: u32,
    /// Offset of the next in-order byte.
    next: u64,
    ooo: BTreeMap<u64, Piece>,
    ooo_bytes: usize,
    fin: Option<u64>,
    stats: HalfStats,
}

impl Half {
    fn anchor(&mut self, seq: u32) {
        self.anchored = true;
        self.base = seq;
        self.next = 0;
    }

    /// Unwrap a sequence number to a stream offset near `next` (may be negative).
    fn offset_of(&self, seq: u32) -> i64 {
        let here = self.base.wrapping_add(self.next as u32);
        self.next as i64 + i64::from(seq.wrapping_sub(here) as i32)
    }

    fn add_gap(&mut self, offset: u64, length: u64) {
        self.stats.missing_bytes += length;
        if self.stats.gaps.len() < MAX_GAPS {
            self.stats.gaps.push(Gap { offset, length });
        }
    }
}

/// One connection (a stream in the report).
#[derive(Debug)]
pub struct Stream {
    /// Number in order of first packet, from 0.
    pub id: usize,
    /// Client address and port.
    pub client: (IpAddr, u16),
    /// Server address and port.
    pub server: (IpAddr, u16),
    /// First packet, nanoseconds since the epoch.
    pub start_ns: i64,
    /// Last packet.
    pub end_ns: i64,
    /// Whether the capture holds the client's SYN.
    pub saw_syn: bool,
    /// Whether a RST ended it.
    pub reset: bool,
    /// Whether the out-of-order cap forced a gap.
    pub overflowed: bool,
    closed: bool,
    last_data: Option<Dir>,
    halves: [Half; 2],
}

impl Stream {
    /// Counters of one direction.
    pub fn stats(&self, dir: Dir) -> &HalfStats {
        &self.halves[dir.index()].stats
    }
}

type Key = (IpAddr, u16, IpAddr, u16);

fn key_of(a: (IpAddr, u16), b: (IpAddr, u16)) -> Key {
    if a <= b { (a.0, a.1, b.0, b.1) } else { (b.0, b.1, a.0, a.1) }
}

/// Tracks every connection on the chosen ports.
#[derive(Debug)]
pub struct Reassembler {
    /// Ports analysed; empty means every port.
    ports: Vec<u16>,
    /// foldhash, seeded at random per process: much faster than the default SipHash, and a
    /// capture cannot choose its collisions without knowing the seed.
    conns: HashMap<Key, usize, foldhash::fast::RandomState>,
    streams: Vec<Stream>,
    ooo_cap: usize,
}

impl Reassembler {
    /// Follow streams where either end uses one of `ports` (every stream when empty).
    pub fn new(ports: Vec<u16>) -> Self {
        Self::with_cap(ports, OOO_CAP)
    }

    /// As [`Reassembler::new`] with a different out-of-order cap (for tests).
    pub fn with_cap(ports: Vec<u16>, ooo_cap: usize) -> Self {
        Reassembler { ports, conns: HashMap::default(), streams: Vec::new(), ooo_cap }
    }

    fn wanted(&self, port: u16) -> bool {
        self.ports.contains(&port)
    }

    /// Feed one segment captured at `ts_ns`. Returns whether it belonged to the analysis.
    pub fn segment(&mut self, seg: &Segment<'_>, ts_ns: i64, sink: &mut impl Sink) -> bool {
        if !self.ports.is_empty() && !self.wanted(seg.sport) && !self.wanted(seg.dport) {
            return false;
        }
        let src = (seg.src, seg.sport);
        let dst = (seg.dst, seg.dport);
        let key = key_of(src, dst);
        let is_syn = seg.flags & flags::SYN != 0 && seg.flags & flags::ACK == 0;
        let idx = match self.conns.get(&key).copied() {
            Some(i) => {
                let s = &self.streams[i];
                let from_client = s.client == src;
                let same_syn =
                    from_client && s.halves[Dir::ClientToServer.index()].isn == Some(seg.seq);
                if is_syn && !same_syn {
                    // Port pair reused: a new generation.
                    self.finish(i, sink);
                    self.open(key, src, dst, seg, ts_ns, sink)
                } else {
                    i
                }
            }
            None => self.open(key, src, dst, seg, ts_ns, sink),
        };
        let Some(stream) = self.streams.get_mut(idx) else { return true };
        stream.end_ns = stream.end_ns.max(ts_ns);
        stream.start_ns = stream.start_ns.min(ts_ns);
        let dir = if stream.client == src { Dir::ClientToServer } else { Dir::ServerToClient };
        let closed = stream.closed;
        let half = &mut stream.halves[dir.index()];
        half.stats.packets += 1;
        let syn = seg.flags & flags::SYN != 0;
        if syn && half.isn.is_none() {
            half.isn = Some(seg.seq);
            if !half.anchored {
                half.anchor(seg.seq.wrapping_add(1));
            }
        }
        let data_seq = seg.seq.wrapping_add(u32::from(syn));
        let has_data = !seg.payload.is_empty() || seg.cut > 0;
        let fin = seg.flags & flags::FIN != 0;
        if (has_data || fin) && !half.anchored {
            half.anchor(data_seq);
        }
        if has_data {
            half.stats.snaplen_cut_bytes += u64::from(seg.cut);
            let off = half.offset_of(data_seq);
            if closed {
                // Late copies after the stream ended: counted, never delivered.
                half.stats.retransmitted_bytes += seg.payload.len() as u64;
            } else {
                insert(stream, dir, off, seg.payload, u64::from(seg.cut), self.ooo_cap, sink);
            }
        }
        let half = &mut stream.halves[dir.index()];
        if fin && half.fin.is_none() && half.anchored {
            let end = half.offset_of(data_seq) + seg.payload.len() as i64 + i64::from(seg.cut);
            half.fin = Some(end.max(0) as u64);
        }
        let rst = seg.flags & flags::RST != 0;
        if rst {
            stream.reset = true;
        }
        if !stream.closed {
            let done = |h: &Half| h.fin.is_some_and(|f| h.next >= f);
            let both_fin = done(&stream.halves[0]) && done(&stream.halves[1]);
            if rst || both_fin {
                self.finish(idx, sink);
            }
        }
        true
    }

    fn open(
        &mut self,
        key: Key,
        src: (IpAddr, u16),
        dst: (IpAddr, u16),
        seg: &Segment<'_>,
        ts_ns: i64,
        sink: &mut impl Sink,
    ) -> usize {
        let syn = seg.flags & flags::SYN != 0;
        let ack = seg.flags & flags::ACK != 0;
        let src_is_client = if syn {
            !ack
        } else if self.ports.is_empty() {
            // Every port analysed: the higher (ephemeral-looking) port is the client.
            src.1 >= dst.1
        } else if self.wanted(dst.1) != self.wanted(src.1) {
            self.wanted(dst.1)
        } else {
            true
        };
        let (client, server) = if src_is_client { (src, dst) } else { (dst, src) };
        let id = self.streams.len();
        self.streams.push(Stream {
            id,
            client,
            server,
            start_ns: ts_ns,
            end_ns: ts_ns,
            saw_syn: syn && !ack,
            reset: false,
            overflowed: false,
            closed: false,
            last_data: None,
            halves: [Half::default(), Half::default()],
        });
        self.conns.insert(key, id);
        sink.open(id, client, server);
        id
    }

    /// Flush and close one stream.
    fn finish(&mut self, idx: usize, sink: &mut impl Sink) {
        let Some(stream) = self.streams.get_mut(idx) else { return };
        if stream.closed {
            return;
        }
        for dir in [Dir::ClientToServer, Dir::ServerToClient] {
            flush(stream, dir, sink);
            let h = &mut stream.halves[dir.index()];
            if let Some(f) = h.fin
                && f > h.next
            {
                let (at, len) = (h.next, f - h.next);
                h.add_gap(at, len);
                h.next = f;
                sink.gap(stream.id, dir, at, len, false);
            }
            h.ooo = BTreeMap::new();
            h.ooo_bytes = 0;
        }
        stream.closed = true;
        sink.close(stream.id);
    }

    /// End of capture: flush every stream still open and hand back all streams in order.
    pub fn finish_all(mut self, sink: &mut impl Sink) -> Vec<Stream> {
        for i in 0..self.streams.len() {
            self.finish(i, sink);
        }
        self.streams
    }
}

/// Hand in-order bytes to the sink: straight from the segment, or (`copied_from`) a copy of
/// the capture file's bytes there.
fn deliver(
    stream: &mut Stream,
    dir: Dir,
    bytes: &[u8],
    copied_from: Option<u64>,
    sink: &mut impl Sink,
) {
    if bytes.is_empty() {
        return;
    }
    let new_run = stream.last_data != Some(dir);
    stream.last_data = Some(dir);
    let h = &mut stream.halves[dir.index()];
    match copied_from {
        Some(at) => sink.data_copied(stream.id, dir, h.next, bytes, new_run, at),
        None => sink.data(stream.id, dir, h.next, bytes, new_run),
    }
    h.next += bytes.len() as u64;
    h.stats.bytes += bytes.len() as u64;
}

fn insert(
    stream: &mut Stream,
    dir: Dir,
    off: i64,
    data: &[u8],
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
        h.stats.before_start_bytes += drop as u64;
        data = data.get(drop..).unwrap_or(&[]);
        cut = cut.saturating_sub(before - drop as u64);
        off = 0;
    }
    let mut off = off as u64;
    // Nothing after the FIN counts.
    if let Some(f) = h.fin {
        let end = off + data.len() as u64;
        if end > f {
            let keep = f.saturating_sub(off).min(data.len() as u64) as usize;
            data = data.get(..keep).unwrap_or(&[]);
            cut = 0;
        }
    }
    // Already delivered: a retransmission (first copy wins).
    if off < h.next {
        let old = (h.next - off).min(data.len() as u64) as usize;
        let (seen, rest) = data.split_at(old);
        h.stats.retransmitted_bytes += seen.len() as u64;
        // Whether the bytes differ from the first copy is for the sink to tell: it saw them.
        sink.retransmit(stream.id, dir, off, seen);
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
        deliver(stream, dir, data, None, sink);
        if cut > 0 {
            let h = &mut stream.halves[dir.index()];
            let at = h.next;
            h.add_gap(at, cut);
            h.next += cut;
            sink.gap(stream.id, dir, at, cut, true);
        }
        return;
    }
    let file_at = sink.locate(data);
    let h = &mut stream.halves[dir.index()];
    store(h, off, data, file_at);
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

/// Store out-of-order bytes, keeping only what no earlier copy covers; `file_at` is where
/// `data` is in the capture file, if known.
fn store(h: &mut Half, off: u64, data: &[u8], file_at: Option<u64>) {
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
            let slice_at =
                |a: u64, b: u64| data.get((a - off) as usize..(b - off) as usize).unwrap_or(&[]);
            let new = slice_at(s2, e2);
            h.stats.retransmitted_bytes += e2 - s2;
            if let Some(Piece::Data(old, _)) = h.ooo.get(&s) {
                let old = old.get((s2 - s) as usize..(e2 - s) as usize).unwrap_or(&[]);
                if old != new {
                    h.stats.conflicting_retransmissions += 1;
                }
            }
        }
        cursor = cursor.max(e2);
    }
    if cursor < end {
        fresh.push((cursor, end));
    }
    for (a, b) in fresh {
        let bytes = data.get((a - off) as usize..(b - off) as usize).unwrap_or(&[]).to_vec();
        h.ooo_bytes += bytes.len();
        h.ooo.insert(a, Piece::Data(bytes, file_at.map(|at| at + (a - off))));
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
        if let Piece::Data(d, _) = &piece {
            h.ooo_bytes -= d.len();
        }
        if k + plen <= h.next {
            continue;
        }
        let skip = (h.next - k) as usize;
        match piece {
            Piece::Data(d, file_at) => {
                let d = d.get(skip..).unwrap_or(&[]);
                deliver(stream, dir, d, file_at.map(|at| at + skip as u64), sink);
            }
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

fn flush(stream: &mut Stream, dir: Dir, sink: &mut impl Sink) {
    while skip_to_first(stream, dir, sink) {}
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::Ipv4Addr;

    #[derive(Default)]
    struct Collect {
        bytes: [Vec<u8>; 2],
        gaps: Vec<(Dir, u64, u64)>,
        closed: Vec<usize>,
        conflicts: u64,
    }

    impl Sink for Collect {
        fn open(&mut self, _s: usize, _c: (IpAddr, u16), _v: (IpAddr, u16)) {}
        fn data(&mut self, _s: usize, dir: Dir, off: u64, bytes: &[u8], _n: bool) {
            assert_eq!(off as usize, self.bytes[dir.index()].len() + self.gap_len(dir));
            self.bytes[dir.index()].extend_from_slice(bytes);
        }
        fn gap(&mut self, _s: usize, dir: Dir, off: u64, len: u64, _cut: bool) {
            self.gaps.push((dir, off, len));
        }
        fn retransmit(&mut self, _s: usize, dir: Dir, off: u64, bytes: &[u8]) {
            let have = &self.bytes[dir.index()];
            let old = have.get(off as usize..off as usize + bytes.len());
            if old != Some(bytes) {
                self.conflicts += 1;
            }
        }
        fn close(&mut self, s: usize) {
            self.closed.push(s);
        }
    }

    impl Collect {
        fn gap_len(&self, dir: Dir) -> usize {
            self.gaps.iter().filter(|g| g.0 == dir).map(|g| g.2 as usize).sum()
        }
    }

    const C: IpAddr = IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1));
    const S: IpAddr = IpAddr::V4(Ipv4Addr::new(10, 0, 0, 2));

    fn seg(from_client: bool, seq: u32, fl: u8, payload: &[u8]) -> Segment<'_> {
        let (src, dst, sport, dport) =
            if from_client { (C, S, 40000, 9999) } else { (S, C, 9999, 40000) };
        Segment { src, dst, sport, dport, seq, flags: fl, payload, cut: 0 }
    }

    /// A sink whose segments all come from one buffer (the "capture file"): it can locate
    /// them, and checks that every copy handed back says truly where its bytes were.
    struct Located<'f> {
        file: &'f [u8],
        got: Vec<u8>,
        copies: usize,
    }

    impl Sink for Located<'_> {
        fn open(&mut self, _s: usize, _c: (IpAddr, u16), _v: (IpAddr, u16)) {}
        fn data(&mut self, _s: usize, _d: Dir, off: u64, bytes: &[u8], _n: bool) {
            assert_eq!(off as usize, self.got.len());
            self.got.extend_from_slice(bytes);
        }
        fn data_copied(&mut self, s: usize, d: Dir, off: u64, b: &[u8], n: bool, at: u64) {
            assert_eq!(self.file.get(at as usize..at as usize + b.len()), Some(b), "at {at}");
            self.copies += 1;
            self.data(s, d, off, b, n);
        }
        fn gap(&mut self, _s: usize, _d: Dir, _o: u64, _l: u64, _c: bool) {
            panic!("no gap expected");
        }
        fn retransmit(&mut self, _s: usize, _d: Dir, _o: u64, _b: &[u8]) {}
        fn close(&mut self, _s: usize) {}
        fn locate(&self, bytes: &[u8]) -> Option<u64> {
            let at = (bytes.as_ptr() as usize).checked_sub(self.file.as_ptr() as usize)?;
            Some(at as u64)
        }
    }

    #[test]
    fn bytes_kept_out_of_order_say_where_they_are_in_the_file() {
        // Segments of "0123456789ABCDEFGHIJ" (sequence 101 on), each at its own place in the
        // file, arriving out of order and overlapping what is already kept.
        let file = b"..GHIJ..6789ABCDEF..56789..01234..";
        let piece = |s: &str| {
            let at = file.windows(s.len()).position(|w| w == s.as_bytes()).unwrap();
            &file[at..at + s.len()]
        };
        let mut r = Reassembler::new(vec![9999]);
        let mut sink = Located { file, got: Vec::new(), copies: 0 };
        r.segment(&seg(true, 100, flags::SYN, b""), 0, &mut sink);
        r.segment(&seg(true, 106, flags::ACK, piece("56789")), 1, &mut sink);
        // Its first bytes are kept already: only "ABCDEF", from its fifth byte on, is new.
        r.segment(&seg(true, 107, flags::ACK, piece("6789ABCDEF")), 2, &mut sink);
        r.segment(&seg(true, 117, flags::ACK, piece("GHIJ")), 3, &mut sink);
        r.segment(&seg(true, 101, flags::ACK, piece("01234")), 4, &mut sink);
        r.finish_all(&mut sink);
        assert_eq!(sink.got, b"0123456789ABCDEFGHIJ");
        assert_eq!(sink.copies, 4);
    }

    #[test]
    fn wraps_reorders_and_flushes() {
        let mut r = Reassembler::new(vec![9999]);
        let mut sink = Collect::default();
        let isn = u32::MAX - 2;
        r.segment(&seg(true, isn, flags::SYN, b""), 0, &mut sink);
        r.segment(&seg(true, isn.wrapping_add(4), flags::ACK, b"def"), 1, &mut sink);
        r.segment(&seg(true, isn.wrapping_add(1), flags::ACK, b"abc"), 2, &mut sink);
        r.segment(&seg(true, isn.wrapping_add(1), flags::ACK, b"abX"), 3, &mut sink);
        r.segment(&seg(true, isn.wrapping_add(10), flags::ACK, b"jk"), 4, &mut sink);
        let streams = r.finish_all(&mut sink);
        assert_eq!(sink.bytes[0], b"abcdefjk");
        assert_eq!(sink.gaps, vec![(Dir::ClientToServer, 6, 3)]);
        let st = streams[0].stats(Dir::ClientToServer);
        assert_eq!(st.retransmitted_bytes, 3);
        assert_eq!(sink.conflicts, 1);
        assert_eq!(st.missing_bytes, 3);
    }

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
                bytes: &data[w[0]..w[1]],
                new_run: false,
                file_at: Some(w[0] as u64),
            })
            .collect();
        let mut copied = Recent::default();
        for p in &pieces {
            copied.remember(p.offset, p.bytes);
        }
        let mut one_by_one = Recent::default();
        for p in &pieces {
            one_by_one.remember_piece(p.offset, p.bytes, p.file_at);
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

    #[test]
    fn overlapping_out_of_order_first_copy_wins() {
        let mut r = Reassembler::new(vec![9999]);
        let mut sink = Collect::default();
        r.segment(&seg(true, 100, flags::ACK, b"0"), 0, &mut sink);
        r.segment(&seg(true, 105, flags::ACK, b"56789"), 1, &mut sink);
        r.segment(&seg(true, 103, flags::ACK, b"34XX"), 2, &mut sink);
        r.segment(&seg(true, 101, flags::ACK, b"12"), 3, &mut sink);
        r.finish_all(&mut sink);
        assert_eq!(sink.bytes[0], b"0123456789");
    }

    #[test]
    fn new_syn_after_close_is_new_stream_retransmitted_syn_is_not() {
        let mut r = Reassembler::new(vec![9999]);
        let mut sink = Collect::default();
        r.segment(&seg(true, 1, flags::SYN, b""), 0, &mut sink);
        r.segment(&seg(true, 1, flags::SYN, b""), 0, &mut sink);
        r.segment(&seg(true, 2, flags::RST, b""), 0, &mut sink);
        r.segment(&seg(true, 5000, flags::SYN, b""), 0, &mut sink);
        let streams = r.finish_all(&mut sink);
        assert_eq!(streams.len(), 2);
        assert_eq!(sink.closed, vec![0, 1]);
    }

    #[test]
    fn ooo_cap_declares_gap() {
        let mut r = Reassembler::with_cap(vec![9999], 10);
        let mut sink = Collect::default();
        r.segment(&seg(true, 0, flags::ACK, b"a"), 0, &mut sink);
        for i in 0..5u32 {
            r.segment(&seg(true, 10 + i * 4, flags::ACK, b"wxyz"), 0, &mut sink);
        }
        assert!(!sink.gaps.is_empty());
        let streams = r.finish_all(&mut sink);
        assert!(streams[0].overflowed);
        assert_eq!(sink.bytes[0].len(), 21);
    }

    mod model {
        use super::*;
        use proptest::prelude::*;
        use std::collections::HashMap;

        /// Checks that every stream's offsets line up, per direction.
        #[derive(Default)]
        struct Checker {
            next: HashMap<(usize, Dir), u64>,
            open: Vec<usize>,
            closed: Vec<usize>,
        }

        impl Sink for Checker {
            fn open(&mut self, s: usize, _c: (IpAddr, u16), _v: (IpAddr, u16)) {
                self.open.push(s);
            }
            fn data(&mut self, s: usize, dir: Dir, off: u64, bytes: &[u8], _n: bool) {
                let next = self.next.entry((s, dir)).or_insert(0);
                assert_eq!(*next, off, "stream {s} {dir:?}");
                assert!(!bytes.is_empty());
                *next += bytes.len() as u64;
            }
            fn gap(&mut self, s: usize, dir: Dir, off: u64, len: u64, _cut: bool) {
                let next = self.next.entry((s, dir)).or_insert(0);
                assert_eq!(*next, off, "stream {s} {dir:?} gap");
                assert!(len > 0);
                *next += len;
            }
            fn retransmit(&mut self, s: usize, dir: Dir, off: u64, bytes: &[u8]) {
                let next = self.next.get(&(s, dir)).copied().unwrap_or(0);
                assert!(off + bytes.len() as u64 <= next, "retransmission past what was sent");
            }
            fn close(&mut self, s: usize) {
                assert!(!self.closed.contains(&s), "stream {s} closed twice");
                self.closed.push(s);
            }
        }

        /// Cut `data` at the given sizes; each piece is (offset, bytes).
        fn pieces(data: &[u8], sizes: &[usize]) -> Vec<(usize, Vec<u8>)> {
            let mut out = Vec::new();
            let mut at = 0;
            let mut i = 0;
            while at < data.len() {
                let n = sizes[i % sizes.len()].min(data.len() - at);
                out.push((at, data[at..at + n].to_vec()));
                at += n;
                i += 1;
            }
            out
        }

        proptest! {
            #![proptest_config(ProptestConfig { cases: 1000, .. ProptestConfig::default() })]

            /// Any order, any duplicates, any ISN: the bytes come out as they were sent.
            #[test]
            fn reordered_and_duplicated_segments_reassemble_exactly(
                data in proptest::collection::vec(any::<u8>(), 1..3000),
                sizes in proptest::collection::vec(1usize..400, 1..8),
                swaps in proptest::collection::vec((any::<prop::sample::Index>(), 0usize..6), 0..40),
                dups in proptest::collection::vec(any::<prop::sample::Index>(), 0..10),
                isn in any::<u32>(),
            ) {
                let mut segs = pieces(&data, &sizes);
                for d in &dups {
                    let s = segs[d.index(segs.len())].clone();
                    segs.push(s);
                }
                for (i, dist) in &swaps {
                    let a = i.index(segs.len());
                    let b = (a + dist).min(segs.len() - 1);
                    segs.swap(a, b);
                }
                let mut r = Reassembler::new(vec![9999]);
                let mut sink = Collect::default();
                r.segment(&seg(true, isn, flags::SYN, b""), 0, &mut sink);
                for (off, bytes) in &segs {
                    let s = seg(true, isn.wrapping_add(1).wrapping_add(*off as u32), flags::ACK, bytes);
                    r.segment(&s, 0, &mut sink);
                }
                let streams = r.finish_all(&mut sink);
                prop_assert_eq!(&sink.bytes[0], &data);
                prop_assert_eq!(streams[0].stats(Dir::ClientToServer).missing_bytes, 0);
                prop_assert_eq!(sink.conflicts, 0);
                prop_assert_eq!(streams[0].stats(Dir::ClientToServer).conflicting_retransmissions, 0);
            }

            /// Arbitrary segments (any flags, any sequence numbers, tiny out-of-order cap):
            /// never a panic, and the offsets handed to the sink always line up.
            #[test]
            fn arbitrary_segments_never_panic(
                segs in proptest::collection::vec(
                    (any::<bool>(), any::<u32>(), any::<u8>(), 0usize..64, 0u32..4),
                    0..60,
                ),
                near in any::<bool>(),
            ) {
                let mut r = Reassembler::with_cap(vec![9999], 100);
                let mut sink = Checker::default();
                let payload = [0x5au8; 64];
                for (from_client, seq, fl, len, cut) in segs {
                    // Half the runs keep sequence numbers close together, to reach deep paths.
                    let seq = if near { seq % 300 } else { seq };
                    let mut s = seg(from_client, seq, fl & 0x17, &payload[..len]);
                    s.cut = cut;
                    r.segment(&s, 0, &mut sink);
                }
                let streams = r.finish_all(&mut sink);
                prop_assert_eq!(sink.open.len(), streams.len());
                prop_assert_eq!(sink.closed.len(), streams.len());
                for st in &streams {
                    for dir in [Dir::ClientToServer, Dir::ServerToClient] {
                        let h = st.stats(dir);
                        let seen = sink.next.get(&(st.id, dir)).copied().unwrap_or(0);
                        prop_assert_eq!(h.bytes + h.missing_bytes, seen);
                    }
                }
            }

            /// Lost segments: what arrives sits at its offset, the rest is reported as gaps.
            #[test]
            fn lost_segments_leave_exact_gaps(
                data in proptest::collection::vec(any::<u8>(), 1..3000),
                sizes in proptest::collection::vec(1usize..400, 1..8),
                lost in proptest::collection::vec(any::<bool>(), 1..16),
            ) {
                let segs = pieces(&data, &sizes);
                let mut r = Reassembler::new(vec![9999]);
                let mut sink = Collect::default();
                r.segment(&seg(true, 0, flags::SYN, b""), 0, &mut sink);
                let mut kept = vec![false; data.len()];
                for (i, (off, bytes)) in segs.iter().enumerate() {
                    if lost[i % lost.len()] && i > 0 {
                        continue;
                    }
                    kept[*off..off + bytes.len()].iter_mut().for_each(|k| *k = true);
                    r.segment(&seg(true, 1 + *off as u32, flags::ACK, bytes), 0, &mut sink);
                }
                let streams = r.finish_all(&mut sink);
                let last_kept = kept.iter().rposition(|k| *k).map_or(0, |p| p + 1);
                let expect: Vec<u8> =
                    data[..last_kept].iter().zip(&kept).filter(|(_, k)| **k).map(|(b, _)| *b).collect();
                prop_assert_eq!(&sink.bytes[0], &expect);
                let missing = kept[..last_kept].iter().filter(|k| !**k).count() as u64;
                prop_assert_eq!(streams[0].stats(Dir::ClientToServer).missing_bytes, missing);
            }
        }
    }
}
