//! SSH in one reassembled direction: where its identification lines and clear-text binary
//! packets start and end ([`SshCutter`]), whether a direction opens with an identification line
//! ([`opens`]), and what its clear part tells an eavesdropper ([`SshRecogniser`]): the banner and
//! software, the KEXINIT name-lists, the server's host key and its OpenSSH fingerprint, and how
//! many bytes followed encrypted.
//!
//! Hand-written from RFC 4253: lines (at most [`MAX_LINE`] bytes) up to the `SSH-` line, then
//! packets of `uint32 packet_length, byte padding_length, payload, padding` with no MAC until
//! NEWKEYS; after this direction's NEWKEYS the lengths are encrypted and only bytes are counted.
//! It keeps at most one line or one packet ([`MAX_PACKET`] bytes) at a time and bounded strings;
//! it never decrypts, never sees where bytes lie in the capture file and never escapes text for
//! display (the report does).

use base64::Engine;
use base64::engine::general_purpose::STANDARD_NO_PAD;
use sha2::{Digest, Sha256};

use super::{Cut, Cutter, Part, Recogniser, Start, Unframed};

/// The longest identification (or other) line, CR LF included (RFC 4253 §4.2).
pub const MAX_LINE: usize = 255;
/// Lines before the identification line a sender may send; more and it is not SSH.
pub const MAX_LINES: usize = 32;
/// The smallest `packet_length`.
pub const MIN_PACKET: usize = 5;
/// The largest `packet_length` taken (RFC 4253 §6.1 asks every implementation to handle 35000).
pub const MAX_PACKET: usize = 35000;
/// Bytes kept of each KEXINIT name-list.
pub const MAX_NAME_LIST: usize = 1024;
/// Errors kept per direction.
pub const MAX_ERRORS: usize = 16;
/// The longest host key algorithm name taken.
const MAX_ALGORITHM: usize = 64;

/// Message numbers.
const KEXINIT: u8 = 20;
const NEWKEYS: u8 = 21;
/// KEXDH_REPLY and KEX_ECDH_REPLY (and the hybrid methods' replies); KEX_DH_GEX_GROUP shares it.
const KEX_REPLY: u8 = 31;
const KEX_DH_GEX_REPLY: u8 = 33;

/// Bytes of a packet read before its body: length, padding length, message number.
const PACKET_HEAD: usize = 6;

/// Where a direction is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
enum Phase {
    /// Lines up to and including the identification line.
    #[default]
    Lines,
    /// Clear-text binary packets.
    Packets,
    /// After NEWKEYS: lengths are encrypted.
    Encrypted,
}

/// What a step of the walk ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Unit {
    /// A line; `banner` when it was the identification line.
    Line { banner: bool },
    /// A binary packet with this message number.
    Packet { msg: u8 },
}

/// Walks lines then packets, keeping only a line's first bytes or a packet's header.
#[derive(Debug, Default)]
struct Walk {
    phase: Phase,
    /// Lines seen before the identification line.
    lines: usize,
    /// Bytes of the current line or packet so far.
    len: usize,
    /// A line's first four bytes, or a packet's first six.
    head: [u8; PACKET_HEAD],
    /// The whole packet's length once its header is checked.
    need: usize,
}

impl Walk {
    /// Take bytes of one line or packet from the start of `bytes`; what ended with them.
    fn step(&mut self, bytes: &[u8]) -> Result<(usize, Option<Unit>), Unframed> {
        match self.phase {
            Phase::Encrypted => Err(Unframed),
            Phase::Lines => self.line(bytes),
            Phase::Packets => self.packet(bytes),
        }
    }

    fn keep_head(&mut self, bytes: &[u8], upto: usize) {
        let n = upto.saturating_sub(self.len).min(bytes.len());
        if let (Some(to), Some(from)) = (self.head.get_mut(self.len..self.len + n), bytes.get(..n))
        {
            to.copy_from_slice(from);
        }
    }

    fn line(&mut self, bytes: &[u8]) -> Result<(usize, Option<Unit>), Unframed> {
        let room = MAX_LINE - self.len;
        let window = bytes.get(..room).unwrap_or(bytes);
        self.keep_head(window, 4);
        match memchr::memchr(b'\n', window) {
            Some(i) => {
                let used = i + 1;
                let banner = self.head.get(..4) == Some(b"SSH-") && self.len + used >= 4;
                self.len = 0;
                self.head = [0; PACKET_HEAD];
                if banner {
                    self.phase = Phase::Packets;
                } else {
                    self.lines += 1;
                    if self.lines > MAX_LINES {
                        return Err(Unframed);
                    }
                }
                Ok((used, Some(Unit::Line { banner })))
            }
            None if window.len() == room => Err(Unframed),
            None => {
                self.len += window.len();
                Ok((window.len(), None))
            }
        }
    }

    fn packet(&mut self, bytes: &[u8]) -> Result<(usize, Option<Unit>), Unframed> {
        if self.len < PACKET_HEAD {
            let n = (PACKET_HEAD - self.len).min(bytes.len());
            self.keep_head(bytes, PACKET_HEAD);
            self.len += n;
            let head = self.head.get(..self.len).unwrap_or(&[]);
            if let Some(&[a, b, c, d]) = head.get(..4) {
                let length = u32::from_be_bytes([a, b, c, d]) as usize;
                if !(MIN_PACKET..=MAX_PACKET).contains(&length) {
                    return Err(Unframed);
                }
                // At least 4 bytes of padding, and a message number before them.
                if let Some(&padding) = head.get(4)
                    && (padding < 4 || usize::from(padding) + 2 > length)
                {
                    return Err(Unframed);
                }
                self.need = 4 + length;
            }
            if self.len < PACKET_HEAD {
                return Ok((n, None));
            }
            return Ok((n, self.packet_end()));
        }
        let n = (self.need - self.len).min(bytes.len());
        self.len += n;
        Ok((n, self.packet_end()))
    }

    /// The packet ends if all of it is in.
    fn packet_end(&mut self) -> Option<Unit> {
        if self.len < self.need {
            return None;
        }
        let msg = self.head.get(5).copied().unwrap_or(0);
        self.len = 0;
        self.need = 0;
        if msg == NEWKEYS {
            self.phase = Phase::Encrypted;
        }
        Some(Unit::Packet { msg })
    }
}

/// Cuts an SSH direction: each line up to the identification line and each clear-text binary
/// packet is a [`Part::Handshake`]; after the direction's NEWKEYS it returns [`Unframed`] (the
/// lengths are encrypted). Keeps only a packet header.
#[derive(Debug, Default)]
pub struct SshCutter {
    walk: Walk,
    unframed: bool,
}

impl SshCutter {
    /// A cutter at the start of a direction.
    pub fn new() -> Self {
        Self::default()
    }
}

impl Cutter for SshCutter {
    fn push(&mut self, bytes: &[u8]) -> Result<Cut, Unframed> {
        if self.unframed {
            return Err(Unframed);
        }
        let mut used = 0;
        while let Some(rest) = bytes.get(used..).filter(|r| !r.is_empty()) {
            let (n, ended) = self.walk.step(rest).inspect_err(|_| self.unframed = true)?;
            used += n;
            if ended.is_some() {
                return Ok(Cut { used, ended: Some(Part::Handshake) });
            }
        }
        Ok(Cut { used, ended: None })
    }

    fn part(&self) -> Option<Part> {
        Some(Part::Handshake)
    }
}

/// Whether a direction whose first bytes (up to 512, fewer when it is shorter) are `prefix` is
/// SSH: it starts with `SSH-`, or with a few short lines of text and then a line starting with
/// `SSH-` (RFC 4253 lets a server send such lines first).
pub fn opens(prefix: &[u8]) -> bool {
    let mut rest = prefix;
    for _ in 0..=MAX_LINES.min(8) {
        if rest.starts_with(b"SSH-") {
            return true;
        }
        let window = rest.get(..MAX_LINE).unwrap_or(rest);
        let Some(end) = memchr::memchr(b'\n', window) else { return false };
        let line = window.get(..end).unwrap_or(&[]);
        if line.iter().any(|&b| b != b'\t' && b != b'\r' && !(0x20..0x7f).contains(&b)) {
            return false;
        }
        rest = rest.get(end + 1..).unwrap_or(&[]);
    }
    false
}

/// The name-lists of a KEXINIT, each at most [`MAX_NAME_LIST`] bytes.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct KexInit {
    /// Key exchange methods, most preferred first.
    pub kex_algorithms: String,
    /// Host key algorithms.
    pub server_host_key_algorithms: String,
    /// Ciphers client to server.
    pub encryption_client_to_server: String,
    /// Ciphers server to client.
    pub encryption_server_to_client: String,
    /// MACs client to server.
    pub mac_client_to_server: String,
    /// MACs server to client.
    pub mac_server_to_client: String,
    /// Compression client to server.
    pub compression_client_to_server: String,
    /// Compression server to client.
    pub compression_server_to_client: String,
}

/// The server's host key, from its key exchange reply.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostKey {
    /// Its algorithm, as the key blob names it (`ssh-ed25519`, `ssh-rsa`, ...).
    pub algorithm: String,
    /// OpenSSH's fingerprint: `SHA256:` and unpadded base64 of SHA-256 of the key blob.
    pub fingerprint: String,
    /// Modulus bits of an `ssh-rsa` key.
    pub bits: Option<u32>,
}

/// What one direction's SSH said in the clear.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SshReport {
    /// The identification line without CR LF (lossy, at most [`MAX_LINE`] bytes).
    pub banner: Option<String>,
    /// The banner's softwareversion (`OpenSSH_9.2p1`).
    pub software: Option<String>,
    /// The banner's comments after the softwareversion (`Debian-2+deb12u10`).
    pub comments: Option<String>,
    /// Lines the sender sent before the identification line.
    pub other_lines: u64,
    /// The sender's KEXINIT.
    pub kexinit: Option<KexInit>,
    /// The host key of a server's key exchange reply.
    pub host_key: Option<HostKey>,
    /// Binary packets before encryption began (NEWKEYS included).
    pub packets_in_clear: u64,
    /// The sender's NEWKEYS was seen: all after it is encrypted.
    pub newkeys: bool,
    /// Bytes after NEWKEYS.
    pub encrypted_bytes: u64,
    /// Malformed packets, gaps, a direction cut off (at most [`MAX_ERRORS`]).
    pub errors: Vec<String>,
}

/// Reads the clear part of one SSH direction.
#[derive(Debug, Default)]
pub struct SshRecogniser {
    walk: Walk,
    /// The line or packet being read (at most [`MAX_LINE`] or 4 + [`MAX_PACKET`] bytes).
    unit: Vec<u8>,
    /// The walk is lost (a bad packet header or a gap): bytes are ignored.
    stopped: bool,
    /// Stream offset of the next byte.
    at: u64,
    report: SshReport,
}

impl SshRecogniser {
    /// A recogniser at the start of a direction.
    pub fn new() -> Self {
        Self::default()
    }

    fn error(&mut self, what: String) {
        if self.report.errors.len() < MAX_ERRORS {
            self.report.errors.push(what);
        }
    }

    fn take(&mut self, offset: u64, mut bytes: &[u8]) {
        self.at = offset;
        while !self.stopped && !bytes.is_empty() {
            if self.walk.phase == Phase::Encrypted {
                self.report.encrypted_bytes += bytes.len() as u64;
                return;
            }
            let (n, ended) = match self.walk.step(bytes) {
                Ok(step) => step,
                Err(Unframed) => {
                    self.stopped = true;
                    let at = self.at;
                    let what = if self.walk.phase == Phase::Lines {
                        "a line too long, or too many lines, before the identification line"
                    } else {
                        "not an SSH packet header (length or padding out of range)"
                    };
                    self.error(format!("at byte {at}: {what}; the rest is not read"));
                    return;
                }
            };
            let (now, rest) = bytes.split_at(n.min(bytes.len()));
            self.unit.extend_from_slice(now);
            bytes = rest;
            self.at += n as u64;
            if let Some(unit) = ended {
                let whole = std::mem::take(&mut self.unit);
                self.unit_end(unit, &whole);
                self.unit = whole;
                self.unit.clear();
            }
        }
    }

    fn unit_end(&mut self, unit: Unit, bytes: &[u8]) {
        match unit {
            Unit::Line { banner: false } => self.report.other_lines += 1,
            Unit::Line { banner: true } => self.banner(bytes),
            Unit::Packet { msg } => {
                self.report.packets_in_clear += 1;
                let payload = payload(bytes);
                match (msg, payload) {
                    (_, None) => {
                        let at = self.at;
                        self.error(format!("near byte {at}: a packet's padding is too long"));
                    }
                    (KEXINIT, Some(p)) => match kexinit(p) {
                        Some(k) if self.report.kexinit.is_none() => self.report.kexinit = Some(k),
                        Some(_) => {}
                        None => {
                            let at = self.at;
                            self.error(format!("near byte {at}: a malformed KEXINIT"));
                        }
                    },
                    (KEX_REPLY | KEX_DH_GEX_REPLY, Some(p)) => {
                        if let Some(key) = host_key(p) {
                            self.report.host_key.get_or_insert(key);
                        }
                    }
                    (NEWKEYS, Some(_)) => self.report.newkeys = true,
                    _ => {}
                }
            }
        }
    }

    fn banner(&mut self, line: &[u8]) {
        let line = line.strip_suffix(b"\n").unwrap_or(line);
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        let text = String::from_utf8_lossy(line).into_owned();
        // SSH-protoversion-softwareversion SP comments
        let after_proto = text.strip_prefix("SSH-").and_then(|t| t.split_once('-')).map(|t| t.1);
        if let Some(rest) = after_proto {
            let (software, comments) = match rest.split_once(' ') {
                Some((s, c)) => (s, Some(c)),
                None => (rest, None),
            };
            self.report.software = Some(software.to_owned());
            self.report.comments = comments.map(str::to_owned);
        }
        self.report.banner = Some(text);
    }

    fn lost(&mut self, offset: u64) {
        if !self.stopped && self.walk.phase != Phase::Encrypted {
            self.stopped = true;
            self.error(format!(
                "bytes are missing from the capture at byte {offset}: packets after it are not read"
            ));
        }
    }

    fn report(mut self) -> SshReport {
        if !self.stopped && !self.unit.is_empty() {
            let at = self.at;
            self.error(format!("the direction ends at byte {at} inside a line or packet"));
        }
        self.report
    }
}

impl Recogniser for SshRecogniser {
    type Found = SshReport;

    fn name(&self) -> &'static str {
        "ssh"
    }

    fn start_len(&self) -> usize {
        4
    }

    /// The identification line's `SSH-` (lines before it are seen by [`opens`] only).
    fn start(&self, first_bytes: &[u8]) -> Start {
        let n = first_bytes.len().min(4);
        match (first_bytes.get(..n), b"SSH-".get(..n)) {
            (Some(seen), Some(want)) if seen != want => Start::No,
            _ if n == 4 => Start::Yes,
            _ => Start::More,
        }
    }

    fn data(&mut self, offset: u64, bytes: &[u8]) {
        self.take(offset, bytes);
    }

    fn gap(&mut self, offset: u64) {
        self.lost(offset);
    }

    fn finish(self) -> SshReport {
        self.report()
    }
}

/// A whole clear-text packet's payload: between the padding length byte and the padding.
fn payload(packet: &[u8]) -> Option<&[u8]> {
    let padding = usize::from(*packet.get(4)?);
    let end = packet.len().checked_sub(padding)?;
    packet.get(5..end)
}

/// A cursor over a payload whose reads fail instead of panicking.
struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        let (now, rest) = (self.0.get(..n)?, self.0.get(n..)?);
        self.0 = rest;
        Some(now)
    }

    fn u32(&mut self) -> Option<u32> {
        let b = self.take(4)?;
        Some(u32::from_be_bytes([*b.first()?, *b.get(1)?, *b.get(2)?, *b.get(3)?]))
    }

    /// An SSH `string`: uint32 length, then that many bytes.
    fn string(&mut self) -> Option<&'a [u8]> {
        let n = self.u32()? as usize;
        self.take(n)
    }
}

/// A name-list, lossily, at most [`MAX_NAME_LIST`] bytes.
fn name_list(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes.get(..MAX_NAME_LIST).unwrap_or(bytes)).into_owned()
}

/// A KEXINIT payload (message number first).
fn kexinit(payload: &[u8]) -> Option<KexInit> {
    let mut r = Reader(payload);
    r.take(1 + 16)?; // message number, cookie
    let mut lists = Vec::with_capacity(8);
    for _ in 0..8 {
        lists.push(name_list(r.string()?));
    }
    // Two language lists, first_kex_packet_follows, reserved.
    r.string()?;
    r.string()?;
    r.take(1 + 4)?;
    let mut lists = lists.into_iter();
    let mut next = || lists.next().unwrap_or_default();
    Some(KexInit {
        kex_algorithms: next(),
        server_host_key_algorithms: next(),
        encryption_client_to_server: next(),
        encryption_server_to_client: next(),
        mac_client_to_server: next(),
        mac_server_to_client: next(),
        compression_client_to_server: next(),
        compression_server_to_client: next(),
    })
}

/// The host key of a key exchange reply payload (message number first), when its first field is
/// a key blob that names a plausible algorithm (a DH group exchange's group, which shares the
/// message number, does not).
fn host_key(payload: &[u8]) -> Option<HostKey> {
    let mut r = Reader(payload);
    r.take(1)?;
    let blob = r.string()?;
    let mut key = Reader(blob);
    let name = key.string()?;
    let plausible = !name.is_empty()
        && name.len() <= MAX_ALGORITHM
        && name.iter().all(|&b| b.is_ascii_graphic() && b != b',');
    if !plausible {
        return None;
    }
    let algorithm = String::from_utf8_lossy(name).into_owned();
    let bits = if algorithm == "ssh-rsa" {
        key.string().and_then(|_e| key.string()).map(bit_len)
    } else {
        None
    };
    let fingerprint = format!("SHA256:{}", STANDARD_NO_PAD.encode(Sha256::digest(blob)));
    Some(HostKey { algorithm, fingerprint, bits })
}

/// Bits of a big-endian unsigned integer (an SSH `mpint` that is not negative).
fn bit_len(n: &[u8]) -> u32 {
    let first = n.iter().position(|&b| b != 0).unwrap_or(n.len());
    let n = n.get(first..).unwrap_or(&[]);
    match n.first() {
        None => 0,
        Some(&top) => {
            let whole = u32::try_from(n.len() - 1).unwrap_or(u32::MAX / 16);
            whole.saturating_mul(8).saturating_add(8 - top.leading_zeros())
        }
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;
    use crate::analyze::recognise::Watch;
    use crate::analyze::recognise::testing::{cut_all, read_all};

    const CLIENT: &[u8] = include_bytes!("../../../tests/data/streams/ssh-banner-client.bin");
    const SERVER: &[u8] = include_bytes!("../../../tests/data/streams/ssh-banner-server.bin");

    /// The cut lengths of `bytes` in pieces of `piece`, and whether the cutter gave up.
    fn cuts(bytes: &[u8], piece: usize) -> (Vec<usize>, bool) {
        let (cuts, gave_up) = cut_all(&mut SshCutter::new(), bytes, piece);
        assert!(cuts.iter().all(|&(_, p)| p == Part::Handshake), "{cuts:?}");
        (cuts.into_iter().map(|(n, _)| n).collect(), gave_up)
    }

    fn read(bytes: &[u8], piece: usize) -> Option<SshReport> {
        read_all(SshRecogniser::new(), bytes, piece)
    }

    /// A packet around `payload` with `padding` bytes of padding.
    fn packet(payload: &[u8], padding: u8) -> Vec<u8> {
        let len = (1 + payload.len() + usize::from(padding)) as u32;
        let mut p = len.to_be_bytes().to_vec();
        p.push(padding);
        p.extend_from_slice(payload);
        p.extend(std::iter::repeat_n(0, usize::from(padding)));
        p
    }

    #[test]
    fn the_real_exchange_reads_as_openssh_says() {
        for piece in [1, 3, 100, 4096] {
            let s = read(SERVER, piece).unwrap();
            assert_eq!(s.banner.as_deref(), Some("SSH-2.0-OpenSSH_9.2p1 Debian-2+deb12u10"));
            assert_eq!(s.software.as_deref(), Some("OpenSSH_9.2p1"));
            assert_eq!(s.comments.as_deref(), Some("Debian-2+deb12u10"));
            let kex = s.kexinit.as_ref().unwrap();
            assert!(kex.kex_algorithms.starts_with("sntrup761x25519-sha512"), "{kex:?}");
            assert!(kex.encryption_server_to_client.contains("chacha20-poly1305@openssh.com"));
            assert!(kex.compression_client_to_server.contains("none"));
            let key = s.host_key.as_ref().unwrap();
            assert_eq!(key.algorithm, "ssh-ed25519");
            assert_eq!(key.fingerprint, "SHA256:PgtFtQEuhi+777CrCf40oycknoBpS9pHwsArmk5EG5I");
            assert_eq!(key.bits, None);
            assert!(s.newkeys);
            assert_eq!(s.packets_in_clear, 3, "KEXINIT, reply, NEWKEYS");
            assert!(s.encrypted_bytes > 0);
            assert!(s.errors.is_empty(), "{:?}", s.errors);

            let c = read(CLIENT, piece).unwrap();
            assert_eq!(c.banner.as_deref(), Some("SSH-2.0-OpenSSH_9.2p1 Debian-2+deb12u10"));
            assert!(c.kexinit.as_ref().unwrap().kex_algorithms.contains("sntrup761x25519"));
            assert!(c.host_key.is_none(), "the client sends no host key");
            assert!(c.newkeys);
            assert!(c.errors.is_empty(), "{:?}", c.errors);
        }
    }

    #[test]
    fn the_cutter_stops_at_newkeys() {
        for bytes in [CLIENT, SERVER] {
            let (whole, unframed) = cuts(bytes, bytes.len());
            assert!(unframed, "encrypted packets follow");
            assert_eq!(whole[0], 41, "the banner line");
            let taken = whole.iter().sum::<usize>();
            // The last packet cut is NEWKEYS (length 12, padding 10, message 21).
            assert_eq!(whole.last(), Some(&16));
            assert_eq!(&bytes[taken - 16..taken - 10], &[0, 0, 0, 12, 10, 21]);
            for piece in [1, 2, 5, 64] {
                assert_eq!(cuts(bytes, piece), (whole.clone(), true), "piece {piece}");
            }
        }
    }

    #[test]
    fn lines_before_the_banner_and_bad_packets() {
        let mut bytes = b"hello there\r\nplease wait\r\nSSH-2.0-Test_1.0\r\n".to_vec();
        let mut kex = vec![KEXINIT];
        kex.extend_from_slice(&[7; 16]);
        for list in ["curve25519-sha256", "ssh-rsa", "aes128-ctr", "aes128-ctr"] {
            kex.extend_from_slice(&(list.len() as u32).to_be_bytes());
            kex.extend_from_slice(list.as_bytes());
        }
        for _ in 0..6 {
            kex.extend_from_slice(&0u32.to_be_bytes());
        }
        kex.extend_from_slice(&[0, 0, 0, 0, 0]);
        bytes.extend(packet(&kex, 6));
        assert!(opens(&bytes));
        let (c, _) = cuts(&bytes, 1);
        assert_eq!(c.len(), 4);
        // An RSA host key reply: e = 65537, n of 1024 bits.
        let mut blob = Vec::new();
        for field in [&b"ssh-rsa"[..], &[1, 0, 1], &[0x80; 128]] {
            blob.extend_from_slice(&(field.len() as u32).to_be_bytes());
            blob.extend_from_slice(field);
        }
        let mut reply = vec![KEX_REPLY];
        reply.extend_from_slice(&(blob.len() as u32).to_be_bytes());
        reply.extend_from_slice(&blob);
        bytes.extend(packet(&reply, 4));
        bytes.extend([0, 0, 0, 3, 1, 2, 3]);
        let r = read(&bytes[26..], 5).unwrap();
        assert_eq!(r.software.as_deref(), Some("Test_1.0"));
        assert_eq!(r.comments, None);
        assert_eq!(r.kexinit.as_ref().unwrap().server_host_key_algorithms, "ssh-rsa");
        let key = r.host_key.unwrap();
        assert_eq!((key.algorithm.as_str(), key.bits), ("ssh-rsa", Some(1024)));
        assert!(key.fingerprint.starts_with("SHA256:") && !key.fingerprint.ends_with('='));
        assert!(r.errors.iter().any(|e| e.contains("not an SSH packet header")), "{:?}", r.errors);
        assert!(!r.newkeys);
        // Too long a line, text that is not SSH, and a gap.
        assert_eq!(cuts(&[b'a'; 300], 7), (vec![], true));
        assert!(!opens(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n"));
        assert!(!opens(b"SSH"));
        assert!(!opens(b"\x00\x01\n SSH-2.0-x\r\n"));
        assert!(read(b"RCHT", 4).is_none());
        let mut watch = Watch::new(SshRecogniser::new());
        watch.data(0, &SERVER[..60]);
        watch.gap(60);
        watch.data(70, &SERVER[70..]);
        let r = watch.finish().unwrap();
        assert!(r.errors.iter().any(|e| e.contains("missing")), "{:?}", r.errors);
        let r = read(&SERVER[..100], 10).unwrap();
        assert!(r.errors.iter().any(|e| e.contains("inside a line or packet")), "{:?}", r.errors);
    }

    proptest! {
        #[test]
        fn garbage_never_panics(
            bytes in proptest::collection::vec(any::<u8>(), 0..3000),
            piece in 1usize..64,
            ssh_start in any::<bool>(),
        ) {
            let mut bytes = bytes;
            if ssh_start && bytes.len() >= 10 {
                bytes[..10].copy_from_slice(b"SSH-2.0-x\n");
            }
            let _ = read(&bytes, piece);
            prop_assert_eq!(cuts(&bytes, piece), cuts(&bytes, bytes.len().max(1)));
            let _ = opens(&bytes);
        }

        #[test]
        fn truncated_and_damaged_real_directions_never_panic(
            cut in 0usize..2937,
            flip in 0usize..2937,
            piece in 1usize..64,
        ) {
            for bytes in [CLIENT, SERVER] {
                let mut bytes = bytes[..cut.min(bytes.len())].to_vec();
                if let Some(b) = bytes.get_mut(flip) {
                    *b ^= 0x5a;
                }
                let _ = read(&bytes, piece);
                let _ = cuts(&bytes, piece);
            }
        }
    }
}
