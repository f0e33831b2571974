//! Reassembly checked: hand-made cases and property tests against a model.

use std::net::{IpAddr, Ipv4Addr};

use super::*;
use crate::analyze::input::Captured;
use crate::analyze::input::decode::{Segment, flags};

#[derive(Default)]
struct Collect {
    bytes: [Vec<u8>; 2],
    gaps: Vec<(Dir, u64, u64)>,
    closed: Vec<usize>,
    conflicts: u64,
    /// Where each direction's runs start.
    runs: Vec<(Dir, u64)>,
    /// Each piece's direction, offset and time.
    times: Vec<(Dir, u64, i64)>,
}

impl Sink for Collect {
    fn open(&mut self, _s: usize, _c: (IpAddr, u16), _v: (IpAddr, u16)) {}
    fn data(&mut self, _s: usize, dir: Dir, off: u64, bytes: Captured<'_>, new_run: bool, t: i64) {
        assert_eq!(off as usize, self.bytes[dir.index()].len() + self.gap_len(dir));
        self.times.push((dir, off, t));
        if new_run {
            self.runs.push((dir, off));
        }
        self.bytes[dir.index()].extend_from_slice(bytes.bytes());
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
    Segment { src, dst, sport, dport, seq, flags: fl, payload: Captured::from(payload), cut: 0 }
}

#[test]
fn runs_end_at_a_reply_a_short_push_or_a_pause() {
    use Dir::{ClientToServer as Up, ServerToClient as Down};
    let mut r = Reassembler::new(vec![9999]);
    let mut sink = Collect::default();
    let (psh, ms) = (flags::ACK | flags::PSH, 1_000_000);
    let full = [7u8; 1448];
    r.segment(&seg(true, 0, flags::SYN, b""), 0, &mut sink);
    // Two writes 1 ms apart, each ended by PSH: two runs.
    r.segment(&seg(true, 1, psh, b"key"), ms, &mut sink);
    r.segment(&seg(true, 4, psh, b"first"), 2 * ms, &mut sink);
    // Then a write without PSH: one run for two segments 1 ms apart, a new one 40 ms later.
    r.segment(&seg(true, 9, flags::ACK, b"ab"), 3 * ms, &mut sink);
    r.segment(&seg(true, 11, flags::ACK, b"cd"), 4 * ms, &mut sink);
    r.segment(&seg(true, 13, flags::ACK, b"ef"), 44 * ms, &mut sink);
    // The other side answers: a run of its own, and the next bytes start another.
    r.segment(&seg(false, 0, flags::SYN | flags::ACK, b""), 45 * ms, &mut sink);
    r.segment(&seg(false, 1, psh, b"ok"), 46 * ms, &mut sink);
    // Full-size segments marked PSH, back to back: one bulk run, cut by its short tail.
    for i in 0..3u32 {
        r.segment(&seg(true, 15 + i * 1448, psh, &full), 47 * ms + i64::from(i), &mut sink);
    }
    r.segment(&seg(true, 15 + 3 * 1448, psh, b"tail"), 48 * ms, &mut sink);
    r.segment(&seg(true, 15 + 3 * 1448 + 4, psh, b"next"), 49 * ms, &mut sink);
    r.finish_all(&mut sink);
    let tail = 14 + 3 * 1448;
    assert_eq!(
        sink.runs,
        vec![(Up, 0), (Up, 3), (Up, 8), (Up, 12), (Down, 0), (Up, 14), (Up, tail + 4)],
        "{:?}",
        sink.runs
    );
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
fn bytes_are_of_the_time_of_the_packet_that_delivered_them() {
    let mut r = Reassembler::new(vec![9999]);
    let mut sink = Collect::default();
    r.segment(&seg(true, 0, flags::SYN, b""), 10, &mut sink);
    r.segment(&seg(true, 1, flags::ACK, b"ab"), 20, &mut sink);
    // Out of order at 30, delivered when the hole in front of it is filled at 40.
    r.segment(&seg(true, 5, flags::ACK, b"ef"), 30, &mut sink);
    r.segment(&seg(true, 3, flags::ACK, b"cd"), 40, &mut sink);
    // A retransmission at 50 delivers nothing; the rest is flushed at the end, of the time
    // of the last segment that brought new bytes (60, behind a hole).
    r.segment(&seg(true, 1, flags::ACK, b"ab"), 50, &mut sink);
    r.segment(&seg(true, 9, flags::ACK, b"ij"), 60, &mut sink);
    r.finish_all(&mut sink);
    let up = Dir::ClientToServer;
    assert_eq!(sink.times, vec![(up, 0, 20), (up, 2, 40), (up, 4, 40), (up, 8, 60)]);
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
        fn data(&mut self, s: usize, dir: Dir, off: u64, b: Captured<'_>, _n: bool, _t: i64) {
            let bytes = b;
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
