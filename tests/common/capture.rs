//! Helpers for the `analyze_*` integration tests: packets built with etherparse, capture
//! files written with pcap-file, the real `rchat` binary run on them, and their `--extract`
//! compared with tshark's Follow TCP Stream.
#![allow(dead_code)]

use std::borrow::Cow;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;

use etherparse::{IpHeaders, IpNumber, Ipv4Header, Ipv6Extensions, Ipv6Header, PacketBuilder};
use pcap_file::pcap::{PcapHeader, PcapWriter, RawPcapPacket};
use pcap_file::pcapng::PcapNgWriter;
use pcap_file::pcapng::blocks::enhanced_packet::EnhancedPacketBlock;
use pcap_file::pcapng::blocks::interface_description::{
    InterfaceDescriptionBlock, InterfaceDescriptionOption,
};
use pcap_file::pcapng::blocks::section_header::SectionHeaderBlock;
use pcap_file::pcapng::blocks::simple_packet::SimplePacketBlock;
use pcap_file::{DataLink, Endianness, TsResolution};

use super::{BIN, Follow, follow_stream, have_tool, scratch};

/// The binary under test.
pub fn rchat(args: &[&str]) -> Output {
    Command::new(BIN).args(args).output().expect("run rchat")
}

/// `rchat analyze FILE --json ARGS`, parsed; panics unless it exits 0.
pub fn analyze_json(file: &Path, extra: &[&str]) -> serde_json::Value {
    let mut args = vec!["analyze", "--json", file.to_str().expect("utf-8 path")];
    args.extend_from_slice(extra);
    let out = rchat(&args);
    assert!(
        out.status.success(),
        "rchat {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("json report")
}

/// The folder of real captures.
pub fn data(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data").join(name)
}

/// `addr:port` as tshark's follow filter and rchat's report write it.
pub fn ep(ip: IpAddr, port: u16) -> String {
    match ip {
        IpAddr::V4(a) => format!("{a}:{port}"),
        IpAddr::V6(a) => format!("[{a}]:{port}"),
    }
}

/// Both directions of tshark's TCP stream `index` as (from `a`, from `b`), where `a` and `b`
/// are the stream's endpoints as [`ep`] writes them.
pub fn tshark_follow(file: &Path, index: u64, a: &str, b: &str) -> (Vec<u8>, Vec<u8>) {
    let Follow { nodes, bytes: [from_node0, from_node1] } = follow_stream(file, index);
    // Node 0 is whichever endpoint tshark saw first.
    let node0 = &nodes[0];
    assert!(node0 == a || node0 == b, "tshark stream {index} is {node0}, not {a} or {b}");
    if node0 == a { (from_node0, from_node1) } else { (from_node1, from_node0) }
}

/// Run `rchat analyze --extract` and compare every stream with tshark's Follow TCP Stream.
pub fn assert_extract_matches_tshark(file: &Path) {
    if !have_tool("tshark") {
        return;
    }
    let name = file.file_name().and_then(|n| n.to_str()).unwrap_or("x");
    let dir = scratch(&format!("analyze-extract-{name}"));
    let report = analyze_json(file, &["--extract", dir.path().to_str().expect("utf-8")]);
    let streams = report["streams"].as_array().expect("streams");
    assert!(!streams.is_empty(), "no streams in {}", file.display());
    for s in streams {
        let client = s["client"].as_str().expect("client");
        let server = s["server"].as_str().expect("server");
        // The captures compared hold only analysed streams, so tshark numbers them the same.
        let id = s["id"].as_u64().expect("id");
        let (c2s, s2c) = tshark_follow(file, id, client, server);
        for (key, expect) in [("client_to_server", c2s), ("server_to_client", s2c)] {
            let path = s["directions"][key]["extract"].as_str().expect("extract path");
            let got = std::fs::read(path).expect("extracted file");
            assert!(
                got == expect,
                "{} stream {} {key}: rchat {} bytes, tshark {} bytes\nrchat:  {:?}\ntshark: {:?}",
                file.display(),
                s["id"],
                got.len(),
                expect.len(),
                String::from_utf8_lossy(&got[..got.len().min(200)]),
                String::from_utf8_lossy(&expect[..expect.len().min(200)]),
            );
        }
    }
}

/// TCP flags for [`Tcp`].
#[derive(Debug, Clone, Copy, Default)]
pub struct Flags {
    pub syn: bool,
    pub ack: bool,
    pub fin: bool,
    pub rst: bool,
    pub psh: bool,
}

pub const SYN: Flags = Flags { syn: true, ack: false, fin: false, rst: false, psh: false };
pub const SYNACK: Flags = Flags { syn: true, ack: true, fin: false, rst: false, psh: false };
pub const ACK: Flags = Flags { syn: false, ack: true, fin: false, rst: false, psh: false };
pub const PSH: Flags = Flags { syn: false, ack: true, fin: false, rst: false, psh: true };
pub const FIN: Flags = Flags { syn: false, ack: true, fin: true, rst: false, psh: false };
pub const RST: Flags = Flags { syn: false, ack: true, fin: false, rst: true, psh: false };

/// One side of a connection.
#[derive(Debug, Clone, Copy)]
pub struct End {
    pub ip: IpAddr,
    pub port: u16,
}

impl End {
    /// An endpoint from an address in text and a port.
    pub fn new(ip: &str, port: u16) -> Self {
        End { ip: ip.parse().expect("ip"), port }
    }

    /// `addr:port` as [`ep`] writes it.
    pub fn ep(&self) -> String {
        ep(self.ip, self.port)
    }
}

/// Build an IP packet (no link header) carrying one TCP segment.
pub fn tcp_ip(from: End, to: End, seq: u32, ack: u32, f: Flags, payload: &[u8]) -> Vec<u8> {
    let builder = match (from.ip, to.ip) {
        (IpAddr::V4(s), IpAddr::V4(d)) => PacketBuilder::ipv4(s.octets(), d.octets(), 64),
        (IpAddr::V6(s), IpAddr::V6(d)) => PacketBuilder::ipv6(s.octets(), d.octets(), 64),
        _ => panic!("mixed address families"),
    };
    tcp_on(builder, from.port, to.port, seq, ack, f, payload)
}

/// Build an IP packet from explicit IP headers (options, extension headers).
pub fn tcp_ip_with(
    ip: IpHeaders,
    sport: u16,
    dport: u16,
    seq: u32,
    ack: u32,
    f: Flags,
    p: &[u8],
) -> Vec<u8> {
    tcp_on(PacketBuilder::ip(ip), sport, dport, seq, ack, f, p)
}

fn tcp_on(
    builder: etherparse::PacketBuilderStep<IpHeaders>,
    sport: u16,
    dport: u16,
    seq: u32,
    ack: u32,
    f: Flags,
    payload: &[u8],
) -> Vec<u8> {
    let mut b = builder.tcp(sport, dport, seq, 65535);
    if f.syn {
        b = b.syn();
    }
    if f.ack {
        b = b.ack(ack);
    }
    if f.fin {
        b = b.fin();
    }
    if f.rst {
        b = b.rst();
    }
    if f.psh {
        b = b.psh();
    }
    let mut out = Vec::new();
    b.write(&mut out, payload).expect("build packet");
    out
}

/// IPv4 header with options for [`tcp_ip_with`].
pub fn ipv4_with_options(from: [u8; 4], to: [u8; 4]) -> IpHeaders {
    let mut h = Ipv4Header::new(0, 64, IpNumber::TCP, from, to).expect("ipv4");
    // Two NOPs, a 4-byte "router alert"-like option padded to a 4-byte multiple.
    h.options = [1u8, 1, 148, 4, 0, 0, 1, 0].into();
    IpHeaders::Ipv4(h, Default::default())
}

/// IPv6 header with a hop-by-hop and a destination-options extension header.
pub fn ipv6_with_extensions(from: [u8; 16], to: [u8; 16]) -> IpHeaders {
    let h = Ipv6Header {
        traffic_class: 0,
        flow_label: Default::default(),
        payload_length: 0,
        next_header: IpNumber::IPV6_HEADER_HOP_BY_HOP,
        hop_limit: 64,
        source: from,
        destination: to,
    };
    let pad = [1u8, 4, 0, 0, 0, 0];
    let ext = Ipv6Extensions {
        hop_by_hop_options: Some(
            etherparse::Ipv6RawExtHeader::new_raw(IpNumber::IPV6_DESTINATION_OPTIONS, &pad)
                .expect("hbh"),
        ),
        destination_options: Some(
            etherparse::Ipv6RawExtHeader::new_raw(IpNumber::TCP, &pad).expect("dst"),
        ),
        ..Default::default()
    };
    IpHeaders::Ipv6(h, ext)
}

/// Split an IPv4 packet into fragments carrying at most `size` payload bytes (a multiple of 8).
pub fn fragment_ipv4(packet: &[u8], size: usize) -> Vec<Vec<u8>> {
    let (header, payload) = Ipv4Header::from_slice(packet).expect("ipv4 packet");
    let payload = &payload[..header.payload_len().expect("len") as usize];
    let mut out = Vec::new();
    for (i, chunk) in payload.chunks(size).enumerate() {
        let mut h = header.clone();
        h.identification = 0x4242;
        h.fragment_offset = ((i * size / 8) as u16).try_into().expect("offset");
        h.more_fragments = (i + 1) * size < payload.len();
        h.set_payload_len(chunk.len()).expect("len");
        h.header_checksum = h.calc_header_checksum();
        let mut p = Vec::new();
        h.write(&mut p).expect("write");
        p.extend_from_slice(chunk);
        out.push(p);
    }
    out
}

/// The link layers rchat reads.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Link {
    Ethernet,
    EthernetVlan,
    Sll,
    Sll2,
    /// NULL with the address family in little-endian order; the value is the IPv6 family.
    NullLe(u32),
    /// NULL in big-endian order.
    NullBe(u32),
    Loop,
    Raw(u32),
}

impl Link {
    /// The LINKTYPE_ number a capture file gives this link layer.
    pub fn linktype(self) -> u32 {
        match self {
            Link::Ethernet | Link::EthernetVlan => 1,
            Link::Sll => 113,
            Link::Sll2 => 276,
            Link::NullLe(_) | Link::NullBe(_) => 0,
            Link::Loop => 108,
            Link::Raw(n) => n,
        }
    }

    /// Put a link header in front of an IP packet.
    pub fn frame(self, ip: &[u8]) -> Vec<u8> {
        let v6 = ip[0] >> 4 == 6;
        let ethertype: u16 = if v6 { 0x86dd } else { 0x0800 };
        let mut out = Vec::new();
        match self {
            Link::Ethernet | Link::EthernetVlan => {
                out.extend_from_slice(&[2, 0, 0, 0, 0, 2, 2, 0, 0, 0, 0, 1]);
                if self == Link::EthernetVlan {
                    out.extend_from_slice(&0x8100u16.to_be_bytes());
                    out.extend_from_slice(&42u16.to_be_bytes());
                }
                out.extend_from_slice(&ethertype.to_be_bytes());
            }
            Link::Sll => {
                out.extend_from_slice(&[0, 0, 0, 1, 0, 6, 2, 0, 0, 0, 0, 1, 0, 0]);
                out.extend_from_slice(&ethertype.to_be_bytes());
            }
            Link::Sll2 => {
                out.extend_from_slice(&ethertype.to_be_bytes());
                out.extend_from_slice(&[0, 0, 0, 0, 0, 1, 0, 1, 0, 6, 2, 0, 0, 0, 0, 1, 0, 0]);
            }
            Link::NullLe(af6) => out.extend_from_slice(&(if v6 { af6 } else { 2 }).to_le_bytes()),
            Link::NullBe(af6) => out.extend_from_slice(&(if v6 { af6 } else { 2 }).to_be_bytes()),
            Link::Loop => out.extend_from_slice(&(if v6 { 24u32 } else { 2 }).to_be_bytes()),
            Link::Raw(_) => {}
        }
        out.extend_from_slice(ip);
        out
    }
}

/// One record to write: link-layer bytes and a timestamp in nanoseconds.
#[derive(Debug, Clone)]
pub struct Rec {
    pub ts_ns: u64,
    pub data: Vec<u8>,
    pub orig_len: u32,
}

/// Frame IP packets for `link`, one millisecond apart from a fixed start.
pub fn records(link: Link, ips: &[Vec<u8>]) -> Vec<Rec> {
    ips.iter()
        .enumerate()
        .map(|(i, ip)| {
            let data = link.frame(ip);
            Rec {
                ts_ns: 1_700_000_000_000_000_000 + i as u64 * 1_000_000,
                orig_len: data.len() as u32,
                data,
            }
        })
        .collect()
}

/// Cut every record to `snaplen` bytes (as `tcpdump -s` does).
pub fn snap(recs: &mut [Rec], snaplen: usize) {
    for r in recs {
        r.data.truncate(snaplen);
    }
}

/// A pcap file.
pub fn pcap_bytes(linktype: u32, recs: &[Rec], endianness: Endianness, nanos: bool) -> Vec<u8> {
    let header = PcapHeader {
        version_major: 2,
        version_minor: 4,
        ts_correction: 0,
        ts_accuracy: 0,
        snaplen: 65535,
        datalink: DataLink::from(linktype),
        ts_resolution: if nanos { TsResolution::NanoSecond } else { TsResolution::MicroSecond },
        endianness,
    };
    let mut w = PcapWriter::with_header(Vec::new(), header).expect("pcap header");
    for r in recs {
        let sec = (r.ts_ns / 1_000_000_000) as u32;
        let sub = r.ts_ns % 1_000_000_000;
        let frac = if nanos { sub as u32 } else { (sub / 1000) as u32 };
        w.write_raw_packet(&RawPcapPacket {
            ts_sec: sec,
            ts_frac: frac,
            incl_len: r.data.len() as u32,
            orig_len: r.orig_len,
            data: Cow::Borrowed(&r.data),
        })
        .expect("record");
    }
    w.into_writer()
}

/// What goes into one pcapng section.
pub struct Section {
    pub endianness: Endianness,
    /// (linktype, if_tsresol) per interface.
    pub interfaces: Vec<(u32, u8)>,
    /// (interface, record); interface `None` writes a Simple Packet Block (interface 0).
    pub packets: Vec<(Option<u32>, Rec)>,
}

/// A pcapng file of several sections.
pub fn pcapng_bytes(sections: &[Section]) -> Vec<u8> {
    let mut buf = Vec::new();
    for s in sections {
        let shb = SectionHeaderBlock { endianness: s.endianness, ..Default::default() };
        let mut w = PcapNgWriter::with_section_header(buf, shb).expect("shb");
        for &(lt, res) in &s.interfaces {
            w.write_pcapng_block(InterfaceDescriptionBlock {
                linktype: DataLink::from(lt),
                snaplen: 0,
                options: vec![InterfaceDescriptionOption::IfTsResol(res)],
            })
            .expect("idb");
        }
        for (iface, r) in &s.packets {
            match iface {
                Some(i) => {
                    let res = s.interfaces[*i as usize].1;
                    // The writer stores the Duration's nanoseconds as the raw units.
                    let units = r.ts_ns / 10u64.pow(9 - u32::from(res));
                    w.write_pcapng_block(EnhancedPacketBlock {
                        interface_id: *i,
                        timestamp: Duration::from_nanos(units),
                        original_len: r.orig_len,
                        data: Cow::Borrowed(&r.data),
                        options: vec![],
                    })
                    .expect("epb");
                }
                None => {
                    w.write_pcapng_block(SimplePacketBlock {
                        original_len: r.orig_len,
                        data: Cow::Borrowed(&r.data),
                    })
                    .expect("spb");
                }
            }
        }
        buf = w.into_inner();
    }
    buf
}

/// A scripted conversation between a client and a server, producing IP packets.
pub struct Conv {
    pub client: End,
    pub server: End,
    pub cseq: u32,
    pub sseq: u32,
    pub packets: Vec<Vec<u8>>,
}

impl Conv {
    /// A conversation not yet started, with each side's initial sequence number.
    pub fn new(client: End, server: End, cisn: u32, sisn: u32) -> Self {
        Conv { client, server, cseq: cisn, sseq: sisn, packets: Vec::new() }
    }

    /// SYN, SYN-ACK, ACK.
    pub fn handshake(&mut self) -> &mut Self {
        let (c, s) = (self.client, self.server);
        self.packets.push(tcp_ip(c, s, self.cseq, 0, SYN, b""));
        self.packets.push(tcp_ip(s, c, self.sseq, self.cseq.wrapping_add(1), SYNACK, b""));
        self.cseq = self.cseq.wrapping_add(1);
        self.sseq = self.sseq.wrapping_add(1);
        self.packets.push(tcp_ip(c, s, self.cseq, self.sseq, ACK, b""));
        self
    }

    /// Client sends `data` (in order), server ACKs.
    pub fn c(&mut self, data: &[u8]) -> &mut Self {
        let (c, s) = (self.client, self.server);
        self.packets.push(tcp_ip(c, s, self.cseq, self.sseq, PSH, data));
        self.cseq = self.cseq.wrapping_add(data.len() as u32);
        self.packets.push(tcp_ip(s, c, self.sseq, self.cseq, ACK, b""));
        self
    }

    /// Server sends `data`, client ACKs.
    pub fn s(&mut self, data: &[u8]) -> &mut Self {
        let (c, s) = (self.client, self.server);
        self.packets.push(tcp_ip(s, c, self.sseq, self.cseq, PSH, data));
        self.sseq = self.sseq.wrapping_add(data.len() as u32);
        self.packets.push(tcp_ip(c, s, self.cseq, self.sseq, ACK, b""));
        self
    }

    /// FIN from both sides.
    pub fn close(&mut self) -> &mut Self {
        let (c, s) = (self.client, self.server);
        self.packets.push(tcp_ip(c, s, self.cseq, self.sseq, FIN, b""));
        self.cseq = self.cseq.wrapping_add(1);
        self.packets.push(tcp_ip(s, c, self.sseq, self.cseq, FIN, b""));
        self.sseq = self.sseq.wrapping_add(1);
        self.packets.push(tcp_ip(c, s, self.cseq, self.sseq, ACK, b""));
        self
    }

    /// A raw client segment at `seq` (not advancing the script's counters).
    pub fn c_at(&mut self, seq: u32, data: &[u8]) -> &mut Self {
        let (c, s) = (self.client, self.server);
        self.packets.push(tcp_ip(c, s, seq, self.sseq, PSH, data));
        self
    }
}

/// Write bytes to a file in `dir` and return its path.
pub fn write(dir: &Path, name: &str, bytes: &[u8]) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, bytes).expect("write fixture");
    p
}

/// sha256 of bytes, hex (via the same crate rchat uses).
pub fn sha256(bytes: &[u8]) -> String {
    use rsa::sha2::{Digest, Sha256};
    hex::encode(Sha256::digest(bytes))
}
