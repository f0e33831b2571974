//! Stage 2, streams: TCP segments come in; each connection's two directions go out as
//! in-order bytes, gaps and retransmissions, handed to a [`Sink`] as soon as they are known,
//! and cut into messages ([`messages`]).
//!
//! Owns connection tracking and TCP reassembly ([`flows`]: the flow table; `half`: one
//! direction's out-of-order buffer; [`stats`]: its counters), the way Wireshark's Follow TCP
//! Stream shows a connection, and cutting a direction into messages as it flows past. Memory
//! depends on the number of live connections and the out-of-order cap, never on the size of
//! the capture. It sees bytes as [`Captured`] and cuts pieces out of them, never asking where
//! they lie in the file. It must never look at what the bytes mean beyond where a message ends
//! (and, for [`ports`], the tally of the ports not followed, whether their first bytes look
//! like rchat's frames or text), never check checksums (offload makes them wrong), and never
//! keep a whole stream.

pub mod flows;
mod half;
pub mod messages;
pub mod ports;
pub mod stats;
#[cfg(test)]
mod tests;

use std::net::IpAddr;

use crate::analyze::input::Captured;

pub use flows::{OOO_CAP, Reassembler, Stream};
pub use stats::{Gap, HalfStats};

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

/// Where reassembled bytes go.
pub trait Sink {
    /// A new stream begins.
    fn open(&mut self, stream: usize, client: (IpAddr, u16), server: (IpAddr, u16));
    /// In-order bytes of one direction, starting at stream offset `offset` (straight from a
    /// segment, or a copy of bytes kept out of order: the [`Captured`] tells a sink that cares
    /// where they came from). `new_run` is true when the other direction sent data since this
    /// direction last did (or this is the direction's first data). `time_ns` is when the
    /// packet that delivered them was captured (nanoseconds since the Unix epoch): the segment
    /// itself, or the one that filled the hole in front of bytes kept out of order.
    fn data(
        &mut self,
        stream: usize,
        dir: Dir,
        offset: u64,
        bytes: Captured<'_>,
        new_run: bool,
        time_ns: i64,
    );
    /// `len` bytes at `offset` are missing from the capture: lost, or (`snaplen`) sent but cut
    /// off by the capture's snaplen.
    fn gap(&mut self, stream: usize, dir: Dir, offset: u64, len: u64, snaplen: bool);
    /// Bytes at `offset`, all of them delivered before, arrived again. The sink may compare
    /// them with what it was given.
    fn retransmit(&mut self, stream: usize, dir: Dir, offset: u64, bytes: &[u8]);
    /// The stream is over: no more calls for it.
    fn close(&mut self, stream: usize);
}
