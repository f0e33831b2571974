//! Decoding one captured packet down to its TCP segment: link layer, IP, TCP.
//!
//! Owns the link types a classroom meets (Ethernet with VLAN tags, LINUX_SLL, LINUX_SLL2, NULL
//! in both byte orders, LOOP, raw IP), IPv4 with options and fragments (reassembled, bounded),
//! IPv6 with extension headers, and the TCP header. It reports how many payload bytes a short
//! snaplen cut off, so they are not mistaken for bytes lost on the wire. It never trusts a
//! length field: every offset is checked against the bytes actually captured, and a packet
//! that does not decode is skipped and counted, never a panic. It knows nothing of streams.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr};

use super::Captured;

/// TCP flag bits.
pub mod flags {
    /// No more data from sender.
    pub const FIN: u8 = 0x01;
    /// Synchronise sequence numbers.
    pub const SYN: u8 = 0x02;
    /// Reset the connection.
    pub const RST: u8 = 0x04;
    /// Push: the sender's write ends here (most stacks set it on a write's last segment).
    pub const PSH: u8 = 0x08;
    /// Acknowledgment field is significant.
    pub const ACK: u8 = 0x10;
}

/// A decoded TCP segment.
#[derive(Debug, Clone, Copy)]
pub struct Segment<'a> {
    /// Source address.
    pub src: IpAddr,
    /// Destination address.
    pub dst: IpAddr,
    /// Source port.
    pub sport: u16,
    /// Destination port.
    pub dport: u16,
    /// Sequence number.
    pub seq: u32,
    /// Flag bits (see [`flags`]).
    pub flags: u8,
    /// The payload bytes that were captured.
    pub payload: Captured<'a>,
    /// Payload bytes the packet carried but the capture's snaplen cut off.
    pub cut: u32,
}

/// What a packet turned out to be.
#[derive(Debug)]
pub enum Decoded<'a> {
    /// A TCP segment.
    Tcp(Segment<'a>),
    /// A fragment was stored; when it completed a datagram, that datagram's IP payload.
    Fragment(Option<Reassembled>),
    /// Not TCP over IP (ARP, UDP, ICMP, ...): not of interest.
    Other,
    /// The link type is not one this module reads.
    UnknownLink,
    /// Too short or inconsistent to decode.
    Malformed,
}

/// A reassembled IPv4 datagram carrying TCP.
#[derive(Debug)]
pub struct Reassembled {
    src: IpAddr,
    dst: IpAddr,
    payload: Vec<u8>,
}

impl Reassembled {
    /// Decode the TCP segment inside.
    pub fn segment(&self) -> Option<Segment<'_>> {
        tcp(self.src, self.dst, &self.payload, self.payload.len())
    }
}

/// Whether `decode` understands a link type.
pub fn known_link(lt: u32) -> bool {
    matches!(lt, 0 | 1 | 12 | 14 | 101 | 108 | 113 | 228 | 229 | 276)
}

fn be16(b: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_be_bytes(b.get(at..at + 2)?.try_into().ok()?))
}

fn be32(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_be_bytes(b.get(at..at + 4)?.try_into().ok()?))
}

/// Network layer found under the link header.
enum Net {
    V4,
    V6,
    Either,
    Other,
}

/// Pending IPv4 fragments, bounded in count and size.
#[derive(Debug, Default)]
pub struct Defrag {
    pending: HashMap<(Ipv4Addr, Ipv4Addr, u16), Pieces>,
    /// Datagrams dropped because the table was full or a datagram too large.
    pub dropped: u64,
}

#[derive(Debug, Default)]
struct Pieces {
    /// (offset, bytes) in arrival order.
    parts: Vec<(usize, Vec<u8>)>,
    total: Option<usize>,
    held: usize,
}

const MAX_PENDING_DATAGRAMS: usize = 256;
const MAX_DATAGRAM: usize = 65_535;

impl Defrag {
    fn add(
        &mut self,
        key: (Ipv4Addr, Ipv4Addr, u16),
        offset: usize,
        more: bool,
        data: &[u8],
    ) -> Option<Reassembled> {
        if offset + data.len() > MAX_DATAGRAM {
            self.dropped += 1;
            self.pending.remove(&key);
            return None;
        }
        if !self.pending.contains_key(&key) && self.pending.len() >= MAX_PENDING_DATAGRAMS {
            self.dropped += 1;
            return None;
        }
        let p = self.pending.entry(key).or_default();
        if p.held + data.len() > 2 * MAX_DATAGRAM {
            // Endless duplicates: give the datagram up rather than grow.
            self.dropped += 1;
            self.pending.remove(&key);
            return None;
        }
        if !more {
            p.total = Some(offset + data.len());
        }
        p.held += data.len();
        p.parts.push((offset, data.to_vec()));
        let total = p.total?;
        if p.held < total {
            return None;
        }
        // Check coverage; first copy of each byte wins.
        let mut buf = vec![0u8; total];
        let mut have = vec![false; total];
        for (off, bytes) in &p.parts {
            for (i, b) in bytes.iter().enumerate() {
                let at = off + i;
                if let (Some(slot), Some(h)) = (buf.get_mut(at), have.get_mut(at))
                    && !*h
                {
                    *slot = *b;
                    *h = true;
                }
            }
        }
        if have.iter().all(|h| *h) {
            self.pending.remove(&key);
            Some(Reassembled { src: IpAddr::V4(key.0), dst: IpAddr::V4(key.1), payload: buf })
        } else {
            None
        }
    }

    /// Datagrams still incomplete.
    pub fn incomplete(&self) -> usize {
        self.pending.len()
    }
}

/// [`decode`] for a record's captured bytes: the segment's payload keeps their origin.
pub fn decode_captured<'a>(lt: u32, data: Captured<'a>, defrag: &mut Defrag) -> Decoded<'a> {
    match decode(lt, data.bytes(), defrag) {
        Decoded::Tcp(mut seg) => {
            seg.payload = data.within(seg.payload.bytes());
            Decoded::Tcp(seg)
        }
        other => other,
    }
}

/// Decode one record's bytes captured with link type `lt` (the segment's payload has no
/// known origin: see [`decode_captured`]).
pub fn decode<'a>(lt: u32, data: &'a [u8], defrag: &mut Defrag) -> Decoded<'a> {
    let (net, rest) = match link(lt, data) {
        Some(v) => v,
        None if !known_link(lt) => return Decoded::UnknownLink,
        None => return Decoded::Malformed,
    };
    let version = rest.first().map(|b| b >> 4);
    match (net, version) {
        (Net::V4 | Net::Either, Some(4)) => ipv4(rest, defrag),
        (Net::V6 | Net::Either, Some(6)) => ipv6(rest),
        (Net::Other, _) => Decoded::Other,
        _ => Decoded::Malformed,
    }
}

fn link(lt: u32, d: &[u8]) -> Option<(Net, &[u8])> {
    fn ethertype(t: u16) -> Net {
        match t {
            0x0800 => Net::V4,
            0x86dd => Net::V6,
            _ => Net::Other,
        }
    }
    match lt {
        1 => {
            let mut t = be16(d, 12)?;
            let mut at = 14;
            while matches!(t, 0x8100 | 0x88a8 | 0x9100) {
                t = be16(d, at + 2)?;
                at += 4;
            }
            Some((ethertype(t), d.get(at..)?))
        }
        113 => Some((ethertype(be16(d, 14)?), d.get(16..)?)),
        276 => Some((ethertype(be16(d, 0)?), d.get(20..)?)),
        0 | 108 => {
            let raw: [u8; 4] = d.get(..4)?.try_into().ok()?;
            let family = |af: u32| match af {
                2 => Some(Net::V4),
                24 | 28 | 30 => Some(Net::V6),
                _ => None,
            };
            let net = if lt == 108 {
                family(u32::from_be_bytes(raw))
            } else {
                family(u32::from_le_bytes(raw)).or_else(|| family(u32::from_be_bytes(raw)))
            };
            Some((net.unwrap_or(Net::Other), d.get(4..)?))
        }
        12 | 14 | 101 => Some((Net::Either, d)),
        228 => Some((Net::V4, d)),
        229 => Some((Net::V6, d)),
        _ => None,
    }
}

fn ipv4<'a>(d: &'a [u8], defrag: &mut Defrag) -> Decoded<'a> {
    let Some(&vihl) = d.first() else { return Decoded::Malformed };
    let ihl = usize::from(vihl & 0x0f) * 4;
    let (Some(total), Some(frag), Some(&proto)) = (be16(d, 2), be16(d, 6), d.get(9)) else {
        return Decoded::Malformed;
    };
    let total = usize::from(total);
    if ihl < 20 || d.len() < ihl || total < ihl {
        return Decoded::Malformed;
    }
    if proto != 6 {
        return Decoded::Other;
    }
    let (Some(s), Some(t)) = (d.get(12..16), d.get(16..20)) else { return Decoded::Malformed };
    let mut src = [0u8; 4];
    src.copy_from_slice(s);
    let mut dst = [0u8; 4];
    dst.copy_from_slice(t);
    let (src, dst) = (Ipv4Addr::from(src), Ipv4Addr::from(dst));
    // Ethernet may pad short frames: never read past the IP total length.
    let end = total.min(d.len());
    let payload = d.get(ihl..end).unwrap_or(&[]);
    let more = frag & 0x2000 != 0;
    let offset = usize::from(frag & 0x1fff) * 8;
    if more || offset != 0 {
        if end < total {
            // A fragment cut by the snaplen cannot be reassembled.
            defrag.dropped += 1;
            return Decoded::Fragment(None);
        }
        let id = be16(d, 4).unwrap_or(0);
        return Decoded::Fragment(defrag.add((src, dst, id), offset, more, payload));
    }
    match tcp(IpAddr::V4(src), IpAddr::V4(dst), payload, total - ihl) {
        Some(seg) => Decoded::Tcp(seg),
        None => Decoded::Malformed,
    }
}

fn ipv6(d: &[u8]) -> Decoded<'_> {
    let (Some(plen), Some(&first_next)) = (be16(d, 4), d.get(6)) else {
        return Decoded::Malformed;
    };
    let (Some(s), Some(t)) = (d.get(8..24), d.get(24..40)) else { return Decoded::Malformed };
    let mut src = [0u8; 16];
    src.copy_from_slice(s);
    let mut dst = [0u8; 16];
    dst.copy_from_slice(t);
    let true_len = if plen == 0 { d.len().saturating_sub(40) } else { usize::from(plen) };
    let end = (40 + true_len).min(d.len());
    let mut next = first_next;
    let mut at = 40;
    // Walk at most a handful of extension headers.
    for _ in 0..16 {
        match next {
            6 => {
                let payload = d.get(at..end).unwrap_or(&[]);
                let wire = (40 + true_len).saturating_sub(at);
                return match tcp(IpAddr::V6(src.into()), IpAddr::V6(dst.into()), payload, wire) {
                    Some(seg) => Decoded::Tcp(seg),
                    None => Decoded::Malformed,
                };
            }
            0 | 43 | 60 => {
                let (Some(&n), Some(&l)) = (d.get(at), d.get(at + 1)) else {
                    return Decoded::Malformed;
                };
                next = n;
                at += (usize::from(l) + 1) * 8;
            }
            51 => {
                let (Some(&n), Some(&l)) = (d.get(at), d.get(at + 1)) else {
                    return Decoded::Malformed;
                };
                next = n;
                at += (usize::from(l) + 2) * 4;
            }
            44 => {
                let (Some(&n), Some(fo)) = (d.get(at), be16(d, at + 2)) else {
                    return Decoded::Malformed;
                };
                if fo & 0xfff9 != 0 {
                    // A real IPv6 fragment: not reassembled.
                    return Decoded::Fragment(None);
                }
                next = n;
                at += 8;
            }
            _ => return Decoded::Other,
        }
    }
    Decoded::Malformed
}

/// Decode a TCP header from the captured IP payload `d`, whose length on the wire was `wire`.
fn tcp(src: IpAddr, dst: IpAddr, d: &[u8], wire: usize) -> Option<Segment<'_>> {
    let sport = be16(d, 0)?;
    let dport = be16(d, 2)?;
    let seq = be32(d, 4)?;
    let off = usize::from(*d.get(12)? >> 4) * 4;
    let fl = *d.get(13)?;
    if off < 20 || off > wire {
        return None;
    }
    // A short snaplen may cut the TCP options (tcpdump -s 60 keeps 26 bytes of a 32-byte
    // header): the fixed part says all the stream needs, and every payload byte was cut.
    let payload = d.get(off..).unwrap_or(&[]);
    let cut = (wire - off).saturating_sub(payload.len());
    Some(Segment {
        src,
        dst,
        sport,
        dport,
        seq,
        flags: fl,
        payload: Captured::from(payload),
        cut: u32::try_from(cut).unwrap_or(u32::MAX),
    })
}

/// `Ipv6Addr` display with brackets, `Ipv4Addr` plain, followed by `:port`.
pub fn endpoint(ip: IpAddr, port: u16) -> String {
    match ip {
        IpAddr::V4(a) => format!("{a}:{port}"),
        IpAddr::V6(a) => format!("[{a}]:{port}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An IPv4 packet of `wire` bytes carrying a TCP header of `header` bytes, captured up to
    /// `kept` bytes.
    fn tcp_packet(header: usize, wire: usize, kept: usize) -> Vec<u8> {
        let total = u16::try_from(20 + wire).unwrap();
        let mut p = vec![0x45, 0, 0, 0, 0, 0, 0x40, 0, 64, 6, 0, 0, 127, 0, 0, 1, 127, 0, 0, 2];
        p[2..4].copy_from_slice(&total.to_be_bytes());
        let mut t = vec![0u8; wire];
        t[0..2].copy_from_slice(&40000u16.to_be_bytes());
        t[2..4].copy_from_slice(&9999u16.to_be_bytes());
        t[4..8].copy_from_slice(&1000u32.to_be_bytes());
        t[12] = u8::try_from(header / 4).unwrap() << 4;
        t[13] = flags::ACK | 0x08;
        p.extend_from_slice(&t);
        p.truncate(20 + kept);
        p
    }

    #[test]
    fn a_snaplen_that_cuts_the_tcp_options_still_gives_the_segment() {
        let mut df = Defrag::default();
        // 32-byte header (timestamps), 10 payload bytes, 26 bytes of TCP captured.
        let options_cut = tcp_packet(32, 42, 26);
        let Decoded::Tcp(s) = decode(101, &options_cut, &mut df) else { panic!("not decoded") };
        assert_eq!((s.sport, s.dport, s.seq), (40000, 9999, 1000));
        assert!(s.payload.bytes().is_empty());
        assert_eq!(s.cut, 10);
        // Whole header, half the payload.
        let payload_cut = tcp_packet(32, 42, 37);
        let Decoded::Tcp(s) = decode(101, &payload_cut, &mut df) else { panic!("not decoded") };
        assert_eq!((s.payload.bytes().len(), s.cut), (5, 5));
        // The fixed header itself cut: nothing to go on.
        assert!(matches!(decode(101, &tcp_packet(32, 42, 12), &mut df), Decoded::Malformed));
        // A header longer than the segment the IP header announces is impossible.
        assert!(matches!(decode(101, &tcp_packet(32, 24, 24), &mut df), Decoded::Malformed));
    }

    #[test]
    fn short_and_impossible_headers_are_malformed() {
        let mut df = Defrag::default();
        assert!(matches!(decode(1, &[0; 10], &mut df), Decoded::Malformed));
        assert!(matches!(decode(101, &[0x45, 0, 0, 10], &mut df), Decoded::Malformed));
        assert!(matches!(decode(999, &[0; 60], &mut df), Decoded::UnknownLink));
        // IPv4 header claiming 60 bytes of options in a 24-byte packet.
        let mut p = vec![0x4f, 0, 0, 24, 0, 0, 0, 0, 64, 6, 0, 0];
        p.extend_from_slice(&[127, 0, 0, 1, 127, 0, 0, 1, 0, 0, 0, 0]);
        assert!(matches!(decode(101, &p, &mut df), Decoded::Malformed));
    }

    #[test]
    fn null_family_in_either_byte_order() {
        let mut df = Defrag::default();
        for head in [[2u8, 0, 0, 0], [0, 0, 0, 2]] {
            let mut p = head.to_vec();
            p.extend_from_slice(&[
                0x45, 0, 0, 20, 0, 0, 0, 0, 64, 17, 0, 0, 1, 2, 3, 4, 5, 6, 7, 8,
            ]);
            assert!(matches!(decode(0, &p, &mut df), Decoded::Other));
        }
    }

    #[test]
    fn endpoints_bracket_ipv6() {
        assert_eq!(endpoint("::1".parse().unwrap(), 9999), "[::1]:9999");
        assert_eq!(endpoint("127.0.0.1".parse().unwrap(), 1), "127.0.0.1:1");
    }
}
