//! The engine: how the work on each direction's bytes is done, and where. Reassembly's events
//! come in (through the [`Sink`](crate::analyze::stream::Sink) that [`parallel::Sharded`]
//! is); each direction's finished result goes out ([`direction::DirectionResult`]).
//!
//! Owns the worker threads and their batches ([`parallel`]), the consumers every in-order
//! byte passes through once ([`direction`]: hash, message splitter and classifier, rchat
//! recogniser, [`preview`], `--extract` file), SHA-256 of several directions at once
//! ([`digest`]), the recent bytes retransmissions are compared with ([`recent`]), and cache
//! hints ([`cache`]). With `input`, it is the one stage that knows where captured bytes lie in
//! the file: it shares the reader's blocks with the workers instead of copying them, and notes
//! positions instead of bytes where that saves a copy. It must never reorder the events of one
//! stream, never decide what bytes mean (that is for `stream`, `recognise` and `classify`),
//! and keep memory bounded whatever the capture size.

pub mod cache;
pub mod digest;
pub mod direction;
pub mod parallel;
pub mod preview;
pub mod recent;

use crate::analyze::input::Captured;

/// In-order bytes of one direction, as [`Sink::data`](crate::analyze::stream::Sink::data) gets
/// them.
#[derive(Debug, Clone, Copy)]
pub struct Delivered<'a> {
    /// Stream offset of the first byte.
    pub offset: u64,
    /// The bytes, and where they came from: straight from a mapped window of the capture file,
    /// or a copy of bytes that were, may be read back later instead of kept.
    pub bytes: Captured<'a>,
    /// See [`Sink::data`](crate::analyze::stream::Sink::data).
    pub new_run: bool,
    /// When the packet that delivered them was captured (nanoseconds since the Unix epoch).
    pub time_ns: i64,
}

#[cfg(test)]
mod tests {
    use std::net::{IpAddr, Ipv4Addr};

    use crate::analyze::input::Captured;
    use crate::analyze::input::captured::position_in;
    use crate::analyze::input::decode::{Segment, flags};
    use crate::analyze::stream::{Dir, Reassembler, Sink};

    const C: IpAddr = IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1));
    const S: IpAddr = IpAddr::V4(Ipv4Addr::new(10, 0, 0, 2));

    fn seg(seq: u32, fl: u8, payload: Captured<'_>) -> Segment<'_> {
        Segment { src: C, dst: S, sport: 40000, dport: 9999, seq, flags: fl, payload, cut: 0 }
    }

    /// A sink whose segments all come from one buffer (the "capture file"), each saying where it
    /// is in it, and checks that every copy handed back says truly where its bytes were.
    struct Located<'f> {
        file: &'f [u8],
        got: Vec<u8>,
        copies: usize,
    }

    impl Sink for Located<'_> {
        fn open(&mut self, _s: usize, _c: (IpAddr, u16), _v: (IpAddr, u16)) {}
        fn data(&mut self, _s: usize, _d: Dir, off: u64, bytes: Captured<'_>, _n: bool, _t: i64) {
            assert_eq!(off as usize, self.got.len());
            let b = bytes.bytes();
            // A copy (bytes not in the file's memory) that says where it came from.
            if let Some(at) = bytes.file_at().filter(|_| position_in(self.file, b).is_none()) {
                assert_eq!(self.file.get(at as usize..at as usize + b.len()), Some(b), "at {at}");
                self.copies += 1;
            }
            self.got.extend_from_slice(b);
        }
        fn gap(&mut self, _s: usize, _d: Dir, _o: u64, _l: u64, _c: bool) {
            panic!("no gap expected");
        }
        fn retransmit(&mut self, _s: usize, _d: Dir, _o: u64, _b: &[u8]) {}
        fn close(&mut self, _s: usize) {}
    }

    #[test]
    fn bytes_kept_out_of_order_say_where_they_are_in_the_file() {
        // Segments of "0123456789ABCDEFGHIJ" (sequence 101 on), each at its own place in the
        // file, arriving out of order and overlapping what is already kept.
        let file = b"..GHIJ..6789ABCDEF..56789..01234..";
        let piece = |s: &str| {
            let at = file.windows(s.len()).position(|w| w == s.as_bytes()).unwrap();
            Captured::copied_from(&file[at..at + s.len()], Some(at as u64))
        };
        let mut r = Reassembler::new(vec![9999]);
        let mut sink = Located { file, got: Vec::new(), copies: 0 };
        r.segment(&seg(100, flags::SYN, Captured::default()), 0, &mut sink);
        r.segment(&seg(106, flags::ACK, piece("56789")), 1, &mut sink);
        // Its first bytes are kept already: only "ABCDEF", from its fifth byte on, is new.
        r.segment(&seg(107, flags::ACK, piece("6789ABCDEF")), 2, &mut sink);
        r.segment(&seg(117, flags::ACK, piece("GHIJ")), 3, &mut sink);
        r.segment(&seg(101, flags::ACK, piece("01234")), 4, &mut sink);
        r.finish_all(&mut sink);
        assert_eq!(sink.got, b"0123456789ABCDEFGHIJ");
        assert_eq!(sink.copies, 4);
    }
}
