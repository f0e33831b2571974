//! The flow table: which connection a segment belongs to, and each connection's state.
//!
//! Owns connection tracking (4-tuple plus a generation, so a reused port pair after a new SYN
//! is a new stream and a retransmitted SYN is not), who is client and server, the ports
//! followed, FIN and RST, and flushing what is left at the end of the capture. Each direction's
//! bytes are put in order by `half`.

use std::collections::HashMap;
use std::net::IpAddr;

use super::half::{Half, flush, insert};
use super::stats::HalfStats;
use super::{Dir, Sink};
use crate::analyze::input::decode::{Segment, flags};

/// Out-of-order bytes kept per direction before the hole in front of them is declared a gap.
pub const OOO_CAP: usize = 4 * 1024 * 1024;

/// A pause this long between a sender's segments ends its write: what follows is a new run.
pub const WRITE_PAUSE_NS: i64 = 30_000_000;
/// A segment with PSH ends the sender's write when it carries fewer bytes than this (or than
/// the direction's largest segment so far): the short tail of a write. Full-size segments of
/// a bulk transfer, which some stacks mark with PSH too, do not cut it into messages.
pub const WRITE_TAIL: u32 = 1200;

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
    pub(super) closed: bool,
    pub(super) last_data: Option<Dir>,
    pub(super) halves: [Half; 2],
}

impl Stream {
    /// Counters of one direction.
    pub fn stats(&self, dir: Dir) -> HalfStats {
        self.halves[dir.index()].stats.to_stats()
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
            if seg.cut > 0 {
                half.stats.rare().snaplen_cut_bytes += u64::from(seg.cut);
            }
            let off = half.offset_of(data_seq);
            if closed {
                // Late copies after the stream ended: counted, never delivered.
                if !seg.payload.is_empty() {
                    half.stats.rare().retransmitted_bytes += seg.payload.len() as u64;
                }
            } else {
                let len = seg.payload.len() as u64 + u64::from(seg.cut);
                let end = off + len as i64;
                let fresh = end > half.next as i64;
                if fresh && half.last_data_ns != 0 && ts_ns - half.last_data_ns >= WRITE_PAUSE_NS {
                    half.write_ended = true;
                }
                if fresh {
                    half.last_data_ns = ts_ns;
                }
                let len32 = u32::try_from(len).unwrap_or(u32::MAX);
                let tail = len32 < WRITE_TAIL || len32 < half.largest;
                half.largest = half.largest.max(len32);
                insert(stream, dir, off, seg.payload, u64::from(seg.cut), self.ooo_cap, sink);
                let half = &mut stream.halves[dir.index()];
                if seg.flags & flags::PSH != 0 && tail && fresh && half.next as i64 >= end {
                    // Delivered up to its end: the write is over.
                    half.write_ended = true;
                }
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
        if id == self.streams.capacity() {
            // A quarter more at a time, not twice as many: with tens of thousands of
            // connections, a doubled table would be half empty (large blocks are moved by
            // remapping, not copied).
            self.streams.reserve_exact((id / 4).max(64));
        }
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
            h.clear_buffer();
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
