//! Who is waiting to handshake with a host: the connections accepted whose handshake has not
//! finished, capped in all and per source address, as OpenSSH caps its unauthenticated
//! connections (MaxStartups, PerSourceMaxStartups).
//!
//! A connection that never says anything (a classmate's `nc`, a port scanner, a script that
//! reopens them) must not keep a real joiner out: when the list is full, or the newcomer's
//! address has its share, the oldest candidate that has sent nothing (of that address first)
//! is closed to make room, and only when every candidate has spoken is the newcomer refused.
//! A real joiner answers the host's HELLO at once, so it is never the one closed for long. It
//! knows connections and addresses only: what a handshake says is for the link.

use std::net::{IpAddr, Shutdown, SocketAddr, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

/// Handshakes a host runs at once.
pub const MAX_CANDIDATES: usize = 64;
/// Of which from one address.
pub const MAX_PER_SOURCE: usize = 8;

/// One connection being handshaken with.
#[derive(Debug)]
struct Candidate {
    addr: SocketAddr,
    /// A handle on its socket, to close it.
    stream: TcpStream,
    /// Set by its reader at the first byte.
    heard: Arc<AtomicBool>,
    /// When it was admitted.
    since: Instant,
}

/// The host's pending handshakes, oldest first.
#[derive(Debug, Default)]
pub struct Candidates {
    list: Vec<Candidate>,
    /// Closed to make room: their handshakes end in an error nobody needs to hear about.
    dropped: Vec<SocketAddr>,
}

/// What to do with a new connection.
#[derive(Debug)]
pub enum Admission {
    /// Handshake with it.
    Admitted {
        /// For its reader to set at the first byte.
        heard: Arc<AtomicBool>,
        /// The candidate closed to make room, if one was.
        dropped: Option<SocketAddr>,
    },
    /// Turn it away: every candidate has spoken.
    Refused,
}

impl Candidates {
    /// An empty list.
    pub fn new() -> Self {
        Self::default()
    }

    /// Handshakes waiting.
    pub fn len(&self) -> usize {
        self.list.len()
    }

    /// True when none is waiting.
    pub fn is_empty(&self) -> bool {
        self.list.is_empty()
    }

    /// A new connection from `addr`; `stream` is a handle on its socket.
    pub fn admit(&mut self, addr: SocketAddr, stream: TcpStream) -> Admission {
        let mut dropped = None;
        if !self.has_room(addr.ip()) {
            dropped = self.make_room(addr.ip(), Duration::ZERO);
            if dropped.is_none() {
                return Admission::Refused;
            }
        }
        Admission::Admitted { heard: self.enter(addr, stream), dropped }
    }

    /// Whether a connection from `ip` can be admitted without closing another.
    pub fn has_room(&self, ip: IpAddr) -> bool {
        self.list.len() < MAX_CANDIDATES && self.of_source_count(ip) < MAX_PER_SOURCE
    }

    fn of_source_count(&self, ip: IpAddr) -> usize {
        self.list.iter().filter(|c| same_source(c.addr.ip(), ip)).count()
    }

    /// Admit `addr` (the caller checked [`Candidates::has_room`]); its reader sets the flag
    /// returned at the first byte.
    pub fn enter(&mut self, addr: SocketAddr, stream: TcpStream) -> Arc<AtomicBool> {
        let heard = Arc::new(AtomicBool::new(false));
        self.list.push(Candidate { addr, stream, heard: heard.clone(), since: Instant::now() });
        heard
    }

    /// Close the oldest candidate that has sent nothing for at least `silent_for` (of `ip`'s
    /// address when that one has its share), so that `ip` has room; returns its address.
    pub fn make_room(&mut self, ip: IpAddr, silent_for: Duration) -> Option<SocketAddr> {
        let of_source = self.of_source_count(ip) >= MAX_PER_SOURCE;
        let i = self.list.iter().position(|c| {
            !c.heard.load(Ordering::Relaxed)
                && c.since.elapsed() >= silent_for
                && (!of_source || same_source(c.addr.ip(), ip))
        })?;
        let old = self.list.remove(i);
        let _ = old.stream.shutdown(Shutdown::Both);
        self.dropped.push(old.addr);
        Some(old.addr)
    }

    /// The handshake with `addr` ended: false if it was one closed to make room (its end is
    /// no news).
    pub fn finished(&mut self, addr: SocketAddr) -> bool {
        if let Some(i) = self.dropped.iter().position(|&a| a == addr) {
            self.dropped.swap_remove(i);
            return false;
        }
        self.list.retain(|c| c.addr != addr);
        true
    }
}

/// Whether two addresses are the same source: IPv4 and its IPv6-mapped form are one.
fn same_source(a: IpAddr, b: IpAddr) -> bool {
    a.to_canonical() == b.to_canonical()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;
    use std::net::TcpListener;

    /// A connection to a local listener: the accepted side, its peer address, and the
    /// connecting side (kept open by the caller).
    fn connection(listener: &TcpListener) -> (TcpStream, SocketAddr, TcpStream) {
        let client = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let (accepted, addr) = listener.accept().unwrap();
        (accepted, addr, client)
    }

    #[test]
    fn the_oldest_silent_candidate_of_a_full_source_makes_room() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let mut list = Candidates::new();
        let mut clients = Vec::new();
        let mut flags = Vec::new();
        for _ in 0..MAX_PER_SOURCE {
            let (accepted, addr, client) = connection(&listener);
            clients.push((addr, client));
            match list.admit(addr, accepted) {
                Admission::Admitted { heard, dropped: None } => flags.push(heard),
                other => panic!("{other:?}"),
            }
        }
        // The first one has spoken: the second is the oldest silent one.
        flags[0].store(true, Ordering::Relaxed);
        let (accepted, addr, _newcomer) = connection(&listener);
        let Admission::Admitted { dropped: Some(dropped), .. } = list.admit(addr, accepted) else {
            panic!("the newcomer is admitted");
        };
        assert_eq!(dropped, clients[1].0);
        assert_eq!(list.len(), MAX_PER_SOURCE);
        // The dropped one's socket is closed: its client reads the end.
        let mut byte = [0u8; 1];
        assert_eq!(clients[1].1.read(&mut byte).unwrap_or(0), 0);
        // Its handshake's end is no news; another's is.
        assert!(!list.finished(dropped));
        assert!(list.finished(clients[2].0));
        assert_eq!(list.len(), MAX_PER_SOURCE - 1);
    }

    #[test]
    fn when_every_candidate_has_spoken_the_newcomer_is_refused() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let mut list = Candidates::new();
        let mut clients = Vec::new();
        for _ in 0..MAX_PER_SOURCE {
            let (accepted, addr, client) = connection(&listener);
            clients.push(client);
            let Admission::Admitted { heard, .. } = list.admit(addr, accepted) else {
                panic!("admitted");
            };
            heard.store(true, Ordering::Relaxed);
        }
        let (accepted, addr, _newcomer) = connection(&listener);
        assert!(matches!(list.admit(addr, accepted), Admission::Refused));
        assert_eq!(list.len(), MAX_PER_SOURCE);
    }

    #[test]
    fn mapped_ipv4_is_the_same_source() {
        let v4: IpAddr = "127.0.0.1".parse().unwrap();
        let mapped: IpAddr = "::ffff:127.0.0.1".parse().unwrap();
        assert!(same_source(v4, mapped));
        assert!(!same_source(v4, "127.0.0.2".parse().unwrap()));
    }
}
