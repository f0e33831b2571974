//! The TCP ports a capture holds besides the ones analysed, so that a report with nothing on
//! `--port` can say where the traffic is.
//!
//! Owns a tally per port of the segments that were not followed: packets, payload bytes,
//! connections opened (SYNs), and whether the first bytes of its data segments look like
//! rchat's frames (the frame magic) or like a text chat (short printable lines). A connection
//! is counted under its server's port: the destination of a SYN, else the lower of its two
//! ports (clients take high ephemeral ports). The tally holds at most one entry per port, so it
//! is bounded whatever the capture, and it looks at most [`LOOK_AT`] bytes of at most
//! [`LOOKS_PER_PORT`] segments per port.

use std::collections::HashMap;

use serde::Serialize;

use crate::analyze::input::decode::{Segment, flags};
use crate::protocol::wire::MAGIC;

/// Data segments per port whose first bytes are looked at.
pub const LOOKS_PER_PORT: u32 = 64;
/// The most bytes looked at per segment.
pub const LOOK_AT: usize = 256;
/// How many ports a report lists.
pub const LISTED: usize = 10;

/// What the capture holds on one port that was not analysed.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct PortSeen {
    /// The port (the server's side of its connections).
    pub port: u16,
    /// TCP segments to or from it.
    pub packets: u64,
    /// Their payload bytes, as captured.
    pub bytes: u64,
    /// Connections opened to it (SYNs seen).
    pub connections: u64,
    /// Data segments that start with rchat's frame magic.
    pub rchat_segments: u32,
    /// Data segments that are printable text.
    pub text_segments: u32,
    /// Data segments looked at.
    pub looked_at: u32,
}

impl PortSeen {
    /// What its traffic looks like: `"rchat"`, `"text"` or `None` (neither, or not seen).
    pub fn looks_like(&self) -> Option<&'static str> {
        if self.rchat_segments > 0 {
            Some("rchat")
        } else if self.looked_at > 0 && self.text_segments * 2 > self.looked_at {
            Some("text")
        } else {
            None
        }
    }
}

/// The tally of the ports not analysed.
#[derive(Debug, Default)]
pub struct PortTally {
    ports: HashMap<u16, PortSeen>,
}

impl PortTally {
    /// Count a segment that the analysis did not follow.
    pub fn note(&mut self, seg: &Segment<'_>) {
        let syn = seg.flags & flags::SYN != 0 && seg.flags & flags::ACK == 0;
        let port = if syn { seg.dport } else { seg.sport.min(seg.dport) };
        let p = self.ports.entry(port).or_insert_with(|| PortSeen { port, ..PortSeen::default() });
        p.packets += 1;
        p.connections += u64::from(syn);
        let payload = seg.payload.bytes();
        p.bytes += payload.len() as u64;
        if payload.is_empty() || p.looked_at >= LOOKS_PER_PORT {
            return;
        }
        p.looked_at += 1;
        if payload.starts_with(&MAGIC) {
            p.rchat_segments += 1;
        } else if is_text(payload.get(..LOOK_AT).unwrap_or(payload)) {
            p.text_segments += 1;
        }
    }

    /// The busiest ports, most packets first (then the lower port), at most [`LISTED`].
    pub fn busiest(&self) -> Vec<PortSeen> {
        let mut all: Vec<PortSeen> = self.ports.values().cloned().collect();
        all.sort_by(|a, b| b.packets.cmp(&a.packets).then(a.port.cmp(&b.port)));
        all.truncate(LISTED);
        all
    }
}

/// Whether `bytes` read as text a person typed: valid UTF-8 (a character cut at the end is
/// allowed) with no control characters but tab, CR and LF.
fn is_text(bytes: &[u8]) -> bool {
    let valid = match std::str::from_utf8(bytes) {
        Ok(s) => s,
        Err(e) if e.error_len().is_none() => {
            std::str::from_utf8(bytes.get(..e.valid_up_to()).unwrap_or(&[])).unwrap_or("")
        }
        Err(_) => return false,
    };
    !valid.is_empty() && valid.chars().all(|c| !c.is_control() || matches!(c, '\t' | '\r' | '\n'))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::analyze::input::Captured;
    use std::net::{IpAddr, Ipv4Addr};

    fn seg(sport: u16, dport: u16, fl: u8, payload: &[u8]) -> Segment<'_> {
        let ip = IpAddr::V4(Ipv4Addr::LOCALHOST);
        Segment {
            src: ip,
            dst: ip,
            sport,
            dport,
            seq: 1,
            flags: fl,
            payload: Captured::from(payload),
            cut: 0,
        }
    }

    #[test]
    fn counts_under_the_server_port_and_tells_text_from_rchat() {
        let mut t = PortTally::default();
        t.note(&seg(50000, 5000, flags::SYN, b""));
        t.note(&seg(5000, 50000, flags::SYN | flags::ACK, b""));
        t.note(&seg(50000, 5000, flags::ACK, "hi there, Привет\n".as_bytes()));
        t.note(&seg(5000, 50000, flags::ACK, b"yes\r\n"));
        t.note(&seg(40000, 7000, flags::ACK, b"RCHT\x01\x00\x00\x00"));
        t.note(&seg(40001, 443, flags::ACK, &[0x16, 3, 1, 0, 200, 1, 0]));
        let b = t.busiest();
        assert_eq!(b.len(), 3);
        assert_eq!((b[0].port, b[0].packets, b[0].connections, b[0].bytes), (5000, 4, 1, 28));
        assert_eq!(b[0].looks_like(), Some("text"));
        assert_eq!((b[1].port, b[1].looks_like()), (443, None));
        assert_eq!((b[2].port, b[2].looks_like()), (7000, Some("rchat")));
    }

    #[test]
    fn bounded_by_ports_and_looks() {
        let mut t = PortTally::default();
        let big = vec![b'a'; 10_000];
        for i in 0..200u32 {
            t.note(&seg(60000, 1000 + (i % 20) as u16, flags::ACK, &big));
        }
        let b = t.busiest();
        assert_eq!(b.len(), LISTED);
        assert!(b.iter().all(|p| p.looked_at == 10 && p.text_segments == 10));
        let mut one = PortTally::default();
        for _ in 0..1000 {
            one.note(&seg(60000, 80, flags::ACK, b"GET / HTTP/1.1\r\n"));
        }
        assert_eq!(one.busiest()[0].looked_at, LOOKS_PER_PORT);
    }

    #[test]
    fn text_allows_a_character_cut_at_the_end_but_no_controls() {
        assert!(is_text("Привет".as_bytes().get(..5).unwrap()));
        assert!(!is_text(b"\x1b[2J"));
        assert!(!is_text(&[0xff, 0xfe]));
        assert!(!is_text(b""));
    }
}
