//! `--record FILE.pcap`: a capture file of our own TCP connection, written without
//! capture privileges by rebuilding the packets from what crossed the socket.
//!
//! Owns the recording file and the bookkeeping of one connection's sequence and
//! acknowledgement numbers. The chat tells a [`Tap`] every byte it wrote and read, and
//! when either side closed; the tap turns that into Ethernet frames (zero MAC addresses,
//! as in a Linux loopback capture) carrying IPv4 or IPv6 and TCP with valid checksums: a
//! three-way handshake, one segment per write or read (cut at [`MAX_SEGMENT`] bytes), an
//! acknowledgement for each, and the FIN exchange. It is a reconstruction, not a sniffer:
//! it never sees other traffic, retransmissions, or what a router or middlebox changed,
//! and it must never be mistaken for a capture of the wire.

use std::fs::File;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use etherparse::{IpHeaders, Ipv4Header, Ipv6Header, PacketBuilder};
use pcap_file::pcap::{PcapHeader, PcapPacket, PcapWriter};
use pcap_file::{DataLink, PcapError};

/// Largest TCP payload of one recorded segment: an IPv4 packet must stay under 65 535
/// bytes in all, and the whole Ethernet frame under the file's snapshot length.
pub const MAX_SEGMENT: usize = 65_000;
/// The receive window every recorded segment advertises (no window scaling).
const WINDOW: u16 = 65_535;
/// Time to live (IPv4) and hop limit (IPv6) of recorded packets.
const TTL: u8 = 64;
/// Snapshot length written in the file header: every frame we build fits.
const SNAPLEN: u32 = 65_535;

/// Why a recording could not be made.
#[derive(Debug, thiserror::Error)]
pub enum RecordError {
    /// The file could not be created (before any connection is made).
    #[error("cannot write the recording {}: {source}: {}", path.display(), advice(source))]
    Create {
        /// The file asked for with `--record`.
        path: PathBuf,
        /// Why it failed.
        source: io::Error,
    },
    /// Writing to the file failed during or after the chat.
    #[error("the recording {} is incomplete: {reason}", path.display())]
    Write {
        /// The file asked for with `--record`.
        path: PathBuf,
        /// What failed.
        reason: String,
    },
}

/// What to do about a file that cannot be written.
fn advice(e: &io::Error) -> &'static str {
    match e.kind() {
        io::ErrorKind::StorageFull | io::ErrorKind::QuotaExceeded | io::ErrorKind::FileTooLarge => {
            "free some space, or choose a file on another disk"
        }
        _ => "choose a file in a folder you can write to",
    }
}

/// An open recording file with its pcap header written, waiting for a connection. Clones
/// share the file: a room's host records every member's connection in one.
#[derive(Clone)]
pub struct Recording {
    path: PathBuf,
    /// Unbuffered on purpose: each packet reaches the file as it is written, so the file
    /// stays readable (in Wireshark during the chat, or after a crash) up to the last one.
    writer: Arc<Mutex<PcapWriter<File>>>,
}

impl std::fmt::Debug for Recording {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Recording").field("path", &self.path).finish()
    }
}

impl Recording {
    /// Create (or replace) `path` and write the pcap file header, so an unwritable path is
    /// reported before any connection is made.
    pub fn create(path: &Path) -> Result<Recording, RecordError> {
        let fail = |source: io::Error| RecordError::Create { path: path.to_owned(), source };
        let file = File::create(path).map_err(fail)?;
        let header = PcapHeader {
            datalink: DataLink::ETHERNET,
            snaplen: SNAPLEN,
            endianness: pcap_file::Endianness::native(),
            ..PcapHeader::default()
        };
        let writer = PcapWriter::with_header(file, header).map_err(|e| fail(io_error(e)))?;
        Ok(Recording { path: path.to_owned(), writer: Arc::new(Mutex::new(writer)) })
    }

    /// The file being written.
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn write(&mut self, packet: &Packet) -> Result<(), RecordError> {
        let fail = |reason: String| RecordError::Write { path: self.path.clone(), reason };
        let len = u32::try_from(packet.data.len()).map_err(|_| fail("packet too long".into()))?;
        let mut writer = self.writer.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        writer
            .write_packet(&PcapPacket::new(packet.time, len, &packet.data))
            .map(drop)
            .map_err(|e| fail(io_error(e).to_string()))
    }
}

/// The operating system's error behind a pcap-file error, when there is one: pcap-file
/// shows every I/O error as "Error reading bytes", even a failed write to a full disk.
fn io_error(e: PcapError) -> io::Error {
    match e {
        PcapError::IoError(e) => e,
        other => io::Error::other(other.to_string()),
    }
}

/// One built frame and when it crossed the socket.
#[derive(Debug)]
struct Packet {
    time: Duration,
    data: Vec<u8>,
}

/// The TCP flags a recorded segment carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    /// The opening SYN.
    Syn,
    /// The answer SYN+ACK.
    SynAck,
    /// A bare acknowledgement.
    Ack,
    /// Data, with PSH and ACK.
    Data,
    /// FIN with ACK.
    Fin,
}

/// One direction of the connection.
#[derive(Debug, Clone, Copy)]
struct Flow {
    /// Initial sequence number (that of the SYN).
    isn: u32,
    /// The next sequence number this side will use.
    next: u32,
    /// Whether this side sent its FIN.
    fin: bool,
}

impl Flow {
    fn new(isn: u32) -> Flow {
        Flow { isn, next: isn.wrapping_add(1), fin: false }
    }
}

/// The state of one recorded connection.
#[derive(Debug)]
struct Conn {
    local: SocketAddr,
    peer: SocketAddr,
    us: Flow,
    them: Flow,
    /// Where packets go once this connection is the one being recorded.
    file: Option<Recording>,
    /// Packets built before a file was attached (a host's candidate during its handshake).
    pending: Vec<Packet>,
    last_time: Duration,
    error: Option<RecordError>,
}

/// The recorder of one connection, shared by the thread that writes to the socket and the
/// one that reads from it. Cloning shares it.
#[derive(Debug, Clone)]
pub struct Tap(Arc<Mutex<Conn>>);

impl Tap {
    /// Start recording a connection that was just set up between `local` and `peer`;
    /// `we_connected` says which side sent the SYN. Until [`Tap::attach`] the packets are
    /// kept in memory.
    pub fn new(local: SocketAddr, peer: SocketAddr, we_connected: bool) -> Tap {
        Tap::with_isns(local, peer, we_connected, rand::random(), rand::random())
    }

    fn with_isns(
        local: SocketAddr,
        peer: SocketAddr,
        we_connected: bool,
        our_isn: u32,
        their_isn: u32,
    ) -> Tap {
        let (local, peer) = same_family(local, peer);
        let mut conn = Conn {
            local,
            peer,
            us: Flow::new(our_isn),
            them: Flow::new(their_isn),
            file: None,
            pending: Vec::new(),
            last_time: Duration::ZERO,
            error: None,
        };
        let time = conn.now();
        let (client, server) = if we_connected { (true, false) } else { (false, true) };
        conn.emit_at(time, client, Kind::Syn, &[]);
        conn.emit_at(time, server, Kind::SynAck, &[]);
        conn.emit_at(time, client, Kind::Ack, &[]);
        Tap(Arc::new(Mutex::new(conn)))
    }

    fn lock(&self) -> MutexGuard<'_, Conn> {
        // A panic elsewhere while holding the lock leaves consistent numbers behind.
        self.0.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Make this connection the one written to `file`: what was built so far goes first.
    pub fn attach(&self, file: Recording) {
        let mut conn = self.lock();
        conn.file = Some(file);
        for packet in std::mem::take(&mut conn.pending) {
            conn.output(packet);
        }
    }

    /// We wrote `bytes` to the socket.
    pub fn sent(&self, bytes: &[u8]) {
        self.lock().data(true, bytes);
    }

    /// We read `bytes` from the socket.
    pub fn received(&self, bytes: &[u8]) {
        self.lock().data(false, bytes);
    }

    /// We closed our sending direction (FIN).
    pub fn we_closed(&self) {
        self.lock().fin(true);
    }

    /// The peer closed its sending direction (we read the end of the stream).
    pub fn peer_closed(&self) {
        self.lock().fin(false);
    }

    /// End the recording: the FINs not yet recorded are added, the file is flushed, and
    /// nothing more is recorded. Returns the first write error, if any.
    pub fn finish(&self) -> Result<(), RecordError> {
        let mut conn = self.lock();
        // With both FINs recorded, nothing more is: `data` and `fin` stop at a closed side.
        conn.fin(true);
        conn.fin(false);
        match conn.error.take() {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }

    /// The file this connection is written to, if any.
    pub fn path(&self) -> Option<PathBuf> {
        self.lock().file.as_ref().map(|f| f.path().to_owned())
    }
}

/// Both addresses in one family: IPv4-mapped IPv6 addresses become IPv4 when both are, and
/// a lone IPv4 address becomes IPv4-mapped IPv6 otherwise.
fn same_family(local: SocketAddr, peer: SocketAddr) -> (SocketAddr, SocketAddr) {
    let canon = |a: SocketAddr| SocketAddr::new(a.ip().to_canonical(), a.port());
    let (l, p) = (canon(local), canon(peer));
    let v6 = |a: SocketAddr| match a.ip() {
        IpAddr::V4(ip) => SocketAddr::new(IpAddr::V6(ip.to_ipv6_mapped()), a.port()),
        IpAddr::V6(_) => a,
    };
    if l.is_ipv4() == p.is_ipv4() { (l, p) } else { (v6(l), v6(p)) }
}

impl Conn {
    /// Now, as a time since the epoch, never earlier than the last packet.
    fn now(&mut self) -> Duration {
        let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default();
        self.last_time = self.last_time.max(now);
        self.last_time
    }

    /// The sending side's flow: ours, or the peer's.
    fn flow(&self, from_us: bool) -> &Flow {
        if from_us { &self.us } else { &self.them }
    }

    fn flow_mut(&mut self, from_us: bool) -> &mut Flow {
        if from_us { &mut self.us } else { &mut self.them }
    }

    fn data(&mut self, from_us: bool, bytes: &[u8]) {
        if self.flow(from_us).fin || bytes.is_empty() {
            return;
        }
        let time = self.now();
        for chunk in bytes.chunks(MAX_SEGMENT) {
            self.emit_at(time, from_us, Kind::Data, chunk);
            self.emit_at(time, !from_us, Kind::Ack, &[]);
        }
    }

    fn fin(&mut self, from_us: bool) {
        if self.flow(from_us).fin {
            return;
        }
        let time = self.now();
        self.emit_at(time, from_us, Kind::Fin, &[]);
        self.emit_at(time, !from_us, Kind::Ack, &[]);
    }

    /// Build one segment from one side and advance that side's sequence number.
    fn emit_at(&mut self, time: Duration, from_us: bool, kind: Kind, payload: &[u8]) {
        let (src, dst, flow, other) = if from_us {
            (self.local, self.peer, self.us, self.them)
        } else {
            (self.peer, self.local, self.them, self.us)
        };
        let seq = if matches!(kind, Kind::Syn | Kind::SynAck) { flow.isn } else { flow.next };
        let built = segment(src, dst, seq, other.next, kind, payload);
        let flow = self.flow_mut(from_us);
        let len = u32::try_from(payload.len()).unwrap_or(u32::MAX);
        match kind {
            Kind::Data => flow.next = flow.next.wrapping_add(len),
            Kind::Fin => {
                flow.next = flow.next.wrapping_add(1);
                flow.fin = true;
            }
            Kind::Syn | Kind::SynAck | Kind::Ack => {}
        }
        match built {
            Ok(data) => self.output(Packet { time, data }),
            Err(reason) => self.fail(reason),
        }
    }

    fn output(&mut self, packet: Packet) {
        if self.error.is_some() {
            return;
        }
        match &mut self.file {
            Some(file) => {
                if let Err(e) = file.write(&packet) {
                    self.error = Some(e);
                }
            }
            None => self.pending.push(packet),
        }
    }

    fn fail(&mut self, reason: String) {
        if self.error.is_none() {
            let path = self.file.as_ref().map(|f| f.path().to_owned()).unwrap_or_default();
            self.error = Some(RecordError::Write { path, reason });
        }
    }
}

/// One Ethernet frame (zero MAC addresses) with IPv4 or IPv6 and a TCP segment, checksums
/// computed. Both addresses must be of one family (see [`same_family`]).
fn segment(
    src: SocketAddr,
    dst: SocketAddr,
    seq: u32,
    ack: u32,
    kind: Kind,
    payload: &[u8],
) -> Result<Vec<u8>, String> {
    let ip = match (src.ip(), dst.ip()) {
        (IpAddr::V4(s), IpAddr::V4(d)) => IpHeaders::Ipv4(
            Ipv4Header {
                source: s.octets(),
                destination: d.octets(),
                time_to_live: TTL,
                dont_fragment: true,
                ..Ipv4Header::default()
            },
            Default::default(),
        ),
        (IpAddr::V6(s), IpAddr::V6(d)) => IpHeaders::Ipv6(
            Ipv6Header {
                source: s.octets(),
                destination: d.octets(),
                hop_limit: TTL,
                ..Ipv6Header::default()
            },
            Default::default(),
        ),
        _ => return Err("the two endpoints have different address families".into()),
    };
    let tcp =
        PacketBuilder::ethernet2([0; 6], [0; 6]).ip(ip).tcp(src.port(), dst.port(), seq, WINDOW);
    let tcp = match kind {
        Kind::Syn => tcp.syn(),
        Kind::SynAck => tcp.syn().ack(ack),
        Kind::Ack => tcp.ack(ack),
        Kind::Data => tcp.psh().ack(ack),
        Kind::Fin => tcp.fin().ack(ack),
    };
    let mut out = Vec::with_capacity(tcp.size(payload.len()));
    tcp.write(&mut out, payload).map_err(|e| e.to_string())?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use etherparse::{NetSlice, SlicedPacket, TransportSlice};
    use pcap_file::pcap::PcapReader;

    fn addr(s: &str) -> SocketAddr {
        s.parse().unwrap()
    }

    /// A folder of the test's own, removed when dropped.
    fn scratch() -> tempfile::TempDir {
        tempfile::Builder::new().prefix("rchat-record-unit-").tempdir().unwrap()
    }

    struct Seen {
        from_local: bool,
        seq: u32,
        ack: u32,
        syn: bool,
        fin: bool,
        payload: Vec<u8>,
    }

    /// Parse a frame back, checking both checksums.
    fn parse(frame: &[u8], local: SocketAddr) -> Seen {
        let p = SlicedPacket::from_ethernet(frame).unwrap();
        let Some(TransportSlice::Tcp(tcp)) = &p.transport else { panic!("not tcp") };
        let payload = tcp.payload().to_vec();
        let src = match &p.net {
            Some(NetSlice::Ipv4(ip)) => {
                let h = ip.header().to_header();
                assert_eq!(h.header_checksum, h.calc_header_checksum(), "ipv4 checksum");
                assert_eq!(
                    tcp.checksum(),
                    tcp.calc_checksum_ipv4(h.source, h.destination).unwrap(),
                    "tcp checksum"
                );
                IpAddr::from(h.source)
            }
            Some(NetSlice::Ipv6(ip)) => {
                let h = ip.header().to_header();
                assert_eq!(
                    tcp.checksum(),
                    tcp.calc_checksum_ipv6(h.source, h.destination).unwrap(),
                    "tcp checksum"
                );
                IpAddr::from(h.source)
            }
            _ => panic!("no ip"),
        };
        Seen {
            from_local: SocketAddr::new(src, tcp.source_port()) == local,
            seq: tcp.sequence_number(),
            ack: tcp.acknowledgment_number(),
            syn: tcp.syn(),
            fin: tcp.fin(),
            payload,
        }
    }

    fn read_back(path: &Path, local: SocketAddr) -> Vec<Seen> {
        let mut r = PcapReader::new(File::open(path).unwrap()).unwrap();
        assert_eq!(r.header().datalink, DataLink::ETHERNET);
        let mut out = Vec::new();
        let mut last = Duration::ZERO;
        while let Some(p) = r.next_packet() {
            let p = p.unwrap();
            assert!(p.timestamp >= last, "timestamps never go back");
            last = p.timestamp;
            out.push(parse(&p.data, local));
        }
        out
    }

    /// A whole conversation: numbers line up, FINs close it, payload is what was passed.
    fn conversation(local: &str, peer: &str, we_connected: bool, isn: (u32, u32)) {
        let (local, peer) = (addr(local), addr(peer));
        let dir = scratch();
        let path = dir.path().join("conversation.pcap");
        let tap = Tap::with_isns(local, peer, we_connected, isn.0, isn.1);
        tap.received(b"early");
        tap.attach(Recording::create(&path).unwrap());
        let big = vec![7u8; 140_000];
        tap.sent(&big);
        tap.received(b"hello\n");
        tap.we_closed();
        tap.sent(b"after our FIN: never recorded");
        tap.peer_closed();
        tap.finish().unwrap();
        tap.received(b"after finish: never recorded");
        let seen = read_back(&path, local);

        // Handshake.
        assert!(seen[0].syn && seen[0].from_local == we_connected && seen[0].ack == 0);
        assert!(seen[1].syn && seen[1].from_local != we_connected);
        assert_eq!(seen[1].ack, seen[0].seq.wrapping_add(1));
        assert_eq!(seen[2].ack, seen[1].seq.wrapping_add(1));
        // Every packet continues its side's numbers, and acknowledges all the other sent.
        let mut next = [None::<u32>; 2];
        for s in &seen {
            let (me, other) = if s.from_local { (0, 1) } else { (1, 0) };
            if let Some(n) = next[me] {
                assert_eq!(s.seq, n);
            }
            if let Some(n) = next[other]
                && !s.syn
            {
                assert_eq!(s.ack, n);
            }
            let used = s.payload.len() as u32 + u32::from(s.syn) + u32::from(s.fin);
            next[me] = Some(s.seq.wrapping_add(used));
        }
        let bytes = |local: bool| -> Vec<u8> {
            seen.iter().filter(|s| s.from_local == local).flat_map(|s| s.payload.clone()).collect()
        };
        assert_eq!(bytes(true), big);
        assert_eq!(bytes(false), b"earlyhello\n");
        assert!(seen.iter().all(|s| s.payload.len() <= MAX_SEGMENT));
        assert_eq!(seen.iter().filter(|s| s.fin).count(), 2);
        assert!(seen.last().is_some_and(|s| !s.fin && s.payload.is_empty()), "last is an ACK");
    }

    #[test]
    fn ipv4_conversation_as_joiner() {
        conversation("127.0.0.1:40000", "127.0.0.1:9999", true, (1, 2));
    }

    #[test]
    fn ipv6_conversation_as_host_with_wrapping_numbers() {
        conversation("[::1]:9999", "[::1]:40001", false, (u32::MAX - 10, u32::MAX));
    }

    #[test]
    fn mixed_families_are_made_one() {
        let (l, p) = same_family(addr("[::ffff:10.0.0.1]:1"), addr("10.0.0.2:2"));
        assert_eq!((l, p), (addr("10.0.0.1:1"), addr("10.0.0.2:2")));
        let (l, p) = same_family(addr("[fd00::1]:1"), addr("10.0.0.2:2"));
        assert_eq!((l, p), (addr("[fd00::1]:1"), addr("[::ffff:10.0.0.2]:2")));
    }

    #[test]
    fn finishing_twice_adds_nothing() {
        let (local, peer) = (addr("127.0.0.1:1"), addr("127.0.0.1:2"));
        let dir = scratch();
        let path = dir.path().join("twice.pcap");
        let tap = Tap::with_isns(local, peer, true, 5, 6);
        tap.attach(Recording::create(&path).unwrap());
        tap.finish().unwrap();
        tap.finish().unwrap();
        tap.we_closed();
        let seen = read_back(&path, local);
        // SYN, SYN+ACK, ACK, FIN, ACK, FIN, ACK.
        assert_eq!(seen.len(), 7);
    }

    #[test]
    fn an_unwritable_path_is_reported_with_its_name() {
        let dir = scratch();
        let missing = dir.path().join("no-such-dir").join("x.pcap");
        let err = Recording::create(&missing).unwrap_err();
        let msg = err.to_string();
        assert!(msg.contains("x.pcap") && msg.contains("cannot write the recording"), "{msg}");
    }
}
