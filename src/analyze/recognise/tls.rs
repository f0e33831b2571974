//! TLS in one reassembled direction: where its records start and end ([`TlsCutter`]), whether a
//! direction opens with a TLS hello ([`opens`]), and what its clear-text handshake tells an
//! eavesdropper ([`TlsRecogniser`]): the versions offered and chosen, the server name (SNI),
//! ALPN protocols, the cipher suite, the certificates and how many encrypted records followed.
//!
//! Record headers are checked here by hand (five bytes: type, version, length); handshake
//! messages are decoded by the `tls-parser` crate, and certificates handed to
//! [`find_keys`]. The module keeps at most one record header and one
//! handshake message ([`MAX_HANDSHAKE`] bytes) at a time and bounded lists; after
//! ChangeCipherSpec or the first application data it only counts records. It never decrypts,
//! never sees where bytes lie in the capture file, and never escapes text for display (the
//! report does).

use tls_parser::{
    TlsExtension, TlsMessage, TlsMessageHandshake, parse_tls_client_hello_extensions,
    parse_tls_message_handshake, parse_tls_server_hello_extensions,
};

use super::keys::{KeyMaterial, find_keys};
use super::{Cut, Cutter, Part, Recogniser, Start, Unframed};

/// Bytes of a record header: content type, version, length.
pub const HEADER_LEN: usize = 5;
/// The longest record body: 2^14 bytes of plaintext plus the 2048 a ciphertext may add.
pub const MAX_RECORD: usize = (1 << 14) + 2048;
/// The longest handshake message decoded; longer ones are named and counted, not decoded.
pub const MAX_HANDSHAKE: usize = 64 * 1024;
/// Handshake message names listed per direction.
pub const MAX_NAMES: usize = 32;
/// ALPN protocol names kept, and bytes kept of each.
pub const MAX_ALPN: usize = 16;
/// Bytes of the server name kept.
pub const MAX_SNI: usize = 255;
/// Certificates handed to `find_keys` per direction.
pub const MAX_CERTIFICATES: usize = 8;
/// Errors and notes kept per direction.
pub const MAX_ERRORS: usize = 16;

/// Content types.
const CHANGE_CIPHER_SPEC: u8 = 20;
const ALERT: u8 = 21;
const HANDSHAKE: u8 = 22;
const APPLICATION_DATA: u8 = 23;
const HEARTBEAT: u8 = 24;

/// Handshake types of a hello.
const CLIENT_HELLO: u8 = 1;
const SERVER_HELLO: u8 = 2;

/// A checked record header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Header {
    kind: u8,
    version: u16,
    len: usize,
}

/// Whether `h` (up to five bytes) can start a TLS record header: `Ok(Some)` once all five are in
/// and valid, `Ok(None)` while the bytes so far are a valid start, `Err` as soon as one is not.
fn check_header(h: &[u8]) -> Result<Option<Header>, Unframed> {
    if h.first().is_some_and(|t| !(CHANGE_CIPHER_SPEC..=HEARTBEAT).contains(t))
        || h.get(1).is_some_and(|&major| major != 3)
        || h.get(2).is_some_and(|&minor| minor > 4)
    {
        return Err(Unframed);
    }
    match h {
        &[kind, major, minor, hi, lo, ..] => {
            let len = usize::from(u16::from_be_bytes([hi, lo]));
            if len > MAX_RECORD {
                return Err(Unframed);
            }
            Ok(Some(Header { kind, version: u16::from_be_bytes([major, minor]), len }))
        }
        _ => Ok(None),
    }
}

/// What a record of this content type is in a conversation.
fn part_of(kind: u8) -> Part {
    match kind {
        HANDSHAKE => Part::Handshake,
        APPLICATION_DATA => Part::Message,
        _ => Part::Framing,
    }
}

/// One step of the record walk.
#[derive(Debug)]
struct Step<'a> {
    /// Bytes taken.
    used: usize,
    /// The record being read, once its header is whole.
    record: Option<Header>,
    /// The header was completed by this step.
    header_done: bool,
    /// Body bytes taken by this step.
    body: &'a [u8],
    /// The record ended with this step.
    ended: bool,
}

/// Walks records: keeps a header's bytes while it arrives, then counts the body down.
#[derive(Debug, Default)]
struct Walk {
    head: [u8; HEADER_LEN],
    head_len: usize,
    record: Option<Header>,
    left: usize,
}

impl Walk {
    /// Take header bytes or body bytes of one record from the start of `bytes`.
    fn step<'a>(&mut self, bytes: &'a [u8]) -> Result<Step<'a>, Unframed> {
        if let Some(record) = self.record {
            let n = self.left.min(bytes.len());
            self.left -= n;
            let ended = self.left == 0;
            if ended {
                self.record = None;
            }
            let body = bytes.get(..n).unwrap_or(&[]);
            return Ok(Step { used: n, record: Some(record), header_done: false, body, ended });
        }
        let n = (HEADER_LEN - self.head_len).min(bytes.len());
        if let (Some(to), Some(from)) =
            (self.head.get_mut(self.head_len..self.head_len + n), bytes.get(..n))
        {
            to.copy_from_slice(from);
        }
        self.head_len += n;
        let header = check_header(self.head.get(..self.head_len).unwrap_or(&[]))?;
        let Some(header) = header else {
            return Ok(Step { used: n, record: None, header_done: false, body: &[], ended: false });
        };
        self.head_len = 0;
        let ended = header.len == 0;
        if !ended {
            self.record = Some(header);
            self.left = header.len;
        }
        Ok(Step { used: n, record: Some(header), header_done: true, body: &[], ended })
    }
}

/// Cuts a TLS direction into records: a handshake record is [`Part::Handshake`], an application
/// data record [`Part::Message`], change-cipher-spec, alert and heartbeat records
/// [`Part::Framing`]. Keeps only a record header's bytes.
#[derive(Debug, Default)]
pub struct TlsCutter {
    walk: Walk,
    unframed: bool,
    /// The content type of the record being cut, once its header is in.
    current: Option<u8>,
}

impl TlsCutter {
    /// A cutter at the start of a direction.
    pub fn new() -> Self {
        Self::default()
    }
}

impl Cutter for TlsCutter {
    fn push(&mut self, bytes: &[u8]) -> Result<Cut, Unframed> {
        if self.unframed {
            return Err(Unframed);
        }
        let mut used = 0;
        while let Some(rest) = bytes.get(used..).filter(|r| !r.is_empty()) {
            let step = self.walk.step(rest).inspect_err(|_| self.unframed = true)?;
            used += step.used;
            if let Some(r) = &step.record {
                self.current = Some(r.kind);
            }
            if step.ended {
                let part = step.record.map_or(Part::Framing, |r| part_of(r.kind));
                return Ok(Cut { used, ended: Some(part) });
            }
        }
        Ok(Cut { used, ended: None })
    }

    fn part(&self) -> Option<Part> {
        self.current.map(part_of)
    }
}

/// Whether a direction whose first bytes (up to 512, fewer when it is shorter) are `prefix` is
/// TLS: a valid handshake record header, and a ClientHello or ServerHello when the handshake
/// type is there.
pub fn opens(prefix: &[u8]) -> bool {
    let head = prefix.get(..HEADER_LEN).unwrap_or(prefix);
    matches!(check_header(head), Ok(Some(h)) if h.kind == HANDSHAKE)
        && prefix.get(HEADER_LEN).is_none_or(|&t| t == CLIENT_HELLO || t == SERVER_HELLO)
}

/// The name of a TLS version number, for reports.
pub fn version_name(version: u16) -> &'static str {
    match version {
        0x0300 => "SSL 3.0",
        0x0301 => "TLS 1.0",
        0x0302 => "TLS 1.1",
        0x0303 => "TLS 1.2",
        0x0304 => "TLS 1.3",
        _ => "unknown",
    }
}

/// The name of a handshake message type.
fn handshake_name(kind: u8) -> &'static str {
    match kind {
        0 => "HelloRequest",
        1 => "ClientHello",
        2 => "ServerHello",
        3 => "HelloVerifyRequest",
        4 => "NewSessionTicket",
        5 => "EndOfEarlyData",
        6 => "HelloRetryRequest",
        8 => "EncryptedExtensions",
        11 => "Certificate",
        12 => "ServerKeyExchange",
        13 => "CertificateRequest",
        14 => "ServerHelloDone",
        15 => "CertificateVerify",
        16 => "ClientKeyExchange",
        20 => "Finished",
        21 => "CertificateUrl",
        22 => "CertificateStatus",
        24 => "KeyUpdate",
        67 => "NextProtocol",
        254 => "MessageHash",
        _ => "unknown",
    }
}

/// Whether a version number is a GREASE value (RFC 8701), which says nothing.
fn is_grease(v: u16) -> bool {
    v & 0x0f0f == 0x0a0a
}

/// What one direction's TLS said in the clear.
#[derive(Debug, Clone, PartialEq)]
pub struct TlsReport {
    /// The version: for a server the one it chose (its `supported_versions` extension, else its
    /// hello's version), for a client the highest it offered.
    pub version: Option<u16>,
    /// The version in the first record's header.
    pub record_version: Option<u16>,
    /// Names of the handshake messages seen in the clear, in order (at most [`MAX_NAMES`]).
    pub handshake: Vec<&'static str>,
    /// The server name the client asked for (SNI), lossily decoded, at most [`MAX_SNI`] bytes.
    /// Raw: the report escapes it.
    pub sni: Option<String>,
    /// ALPN protocol names: offered by a client, chosen by a server (at most [`MAX_ALPN`]).
    pub alpn: Vec<String>,
    /// The cipher suite a ServerHello chose, when tls-parser knows its name.
    pub cipher_suite: Option<&'static str>,
    /// Cipher suites a ClientHello offered.
    pub offered_suites: usize,
    /// Keys found in the certificates of a clear-text Certificate message; each key's `offset`
    /// is the stream offset of the record the Certificate message ended in.
    pub certificates: Vec<KeyMaterial>,
    /// A ChangeCipherSpec record was seen.
    pub change_cipher_spec: bool,
    /// Application data records.
    pub application_records: u64,
    /// Bytes in application data record bodies.
    pub application_bytes: u64,
    /// Alert records.
    pub alerts: u64,
    /// Handshake records after ChangeCipherSpec (an encrypted Finished).
    pub encrypted_records: u64,
    /// Malformed records and handshake messages, and where the walk stopped (at most
    /// [`MAX_ERRORS`]).
    pub errors: Vec<String>,
}

/// Reads the clear-text TLS handshake of one direction and counts its records.
#[derive(Debug)]
pub struct TlsRecogniser {
    walk: Walk,
    /// The handshake message being reassembled (at most [`MAX_HANDSHAKE`] bytes and its header).
    message: Vec<u8>,
    /// Handshake messages are still decoded (no ChangeCipherSpec, no application data yet, no
    /// message too long).
    parsing: bool,
    /// Record boundaries are lost (a bad header or a gap): bytes are ignored.
    stopped: bool,
    /// Stream offset of the header of the record being read.
    record_at: u64,
    /// Stream offset of the next byte.
    at: u64,
    report: TlsReport,
}

impl Default for TlsRecogniser {
    fn default() -> Self {
        Self::new()
    }
}

impl TlsRecogniser {
    /// A recogniser at the start of a direction.
    pub fn new() -> Self {
        TlsRecogniser {
            walk: Walk::default(),
            message: Vec::new(),
            parsing: true,
            stopped: false,
            at: 0,
            record_at: 0,
            report: TlsReport {
                version: None,
                record_version: None,
                handshake: Vec::new(),
                sni: None,
                alpn: Vec::new(),
                cipher_suite: None,
                offered_suites: 0,
                certificates: Vec::new(),
                change_cipher_spec: false,
                application_records: 0,
                application_bytes: 0,
                alerts: 0,
                encrypted_records: 0,
                errors: Vec::new(),
            },
        }
    }

    fn error(&mut self, what: String) {
        if self.report.errors.len() < MAX_ERRORS {
            self.report.errors.push(what);
        }
    }

    fn take(&mut self, offset: u64, mut bytes: &[u8]) {
        self.at = offset;
        while !self.stopped && !bytes.is_empty() {
            let step = match self.walk.step(bytes) {
                Ok(step) => step,
                Err(Unframed) => {
                    self.stopped = true;
                    let at = self.at;
                    self.error(format!(
                        "at byte {at}: not a TLS record header; records after it are not read"
                    ));
                    return;
                }
            };
            if let (true, Some(record)) = (step.header_done, step.record) {
                let header_end = self.at + (step.used - step.body.len()) as u64;
                self.record_at = header_end.saturating_sub(HEADER_LEN as u64);
                self.record_start(record);
            }
            if let Some(record) = step.record
                && record.kind == HANDSHAKE
                && self.parsing
            {
                self.handshake_bytes(step.body);
            }
            if let Some(record) = step.record
                && record.kind == APPLICATION_DATA
            {
                self.report.application_bytes += step.body.len() as u64;
            }
            self.at += step.used as u64;
            bytes = bytes.get(step.used..).unwrap_or(&[]);
        }
    }

    /// A record's header is whole.
    fn record_start(&mut self, record: Header) {
        self.report.record_version.get_or_insert(record.version);
        match record.kind {
            CHANGE_CIPHER_SPEC => {
                self.report.change_cipher_spec = true;
                self.stop_parsing();
            }
            ALERT => self.report.alerts += 1,
            APPLICATION_DATA => {
                self.report.application_records += 1;
                self.stop_parsing();
            }
            HANDSHAKE if self.report.change_cipher_spec => self.report.encrypted_records += 1,
            _ => {}
        }
    }

    /// Handshake messages are encrypted from here on.
    fn stop_parsing(&mut self) {
        self.parsing = false;
        self.message = Vec::new();
    }

    /// Body bytes of a clear-text handshake record: reassemble messages and decode each whole.
    fn handshake_bytes(&mut self, mut body: &[u8]) {
        while self.parsing && !body.is_empty() {
            let need = if self.message.len() < 4 { 4 } else { self.message_len() };
            let n = need.saturating_sub(self.message.len()).min(body.len());
            self.message.extend_from_slice(body.get(..n).unwrap_or(&[]));
            body = body.get(n..).unwrap_or(&[]);
            if self.message.len() < 4 {
                return;
            }
            let need = self.message_len();
            if need > 4 + MAX_HANDSHAKE {
                let kind = self.message.first().copied().unwrap_or(0);
                self.note_name(kind);
                let at = self.at;
                self.error(format!(
                    "at byte {at}: a {} message of {} bytes is too long to decode; handshake \
                     messages after it are not decoded",
                    handshake_name(kind),
                    need - 4
                ));
                self.stop_parsing();
                return;
            }
            if self.message.len() == need {
                let message = std::mem::take(&mut self.message);
                self.handshake(&message);
                self.message = message;
                self.message.clear();
            }
        }
    }

    /// Bytes of the message being reassembled, its header included, once its header is in.
    fn message_len(&self) -> usize {
        match self.message.get(..4) {
            Some(&[_, a, b, c]) => 4 + u32::from_be_bytes([0, a, b, c]) as usize,
            _ => 4,
        }
    }

    fn note_name(&mut self, kind: u8) {
        if self.report.handshake.len() < MAX_NAMES {
            self.report.handshake.push(handshake_name(kind));
        }
    }

    /// One whole clear-text handshake message, its 4-byte header included.
    fn handshake(&mut self, message: &[u8]) {
        let Some(&kind) = message.first() else { return };
        self.note_name(kind);
        let decoded = parse_tls_message_handshake(message);
        match decoded {
            Ok((_, TlsMessage::Handshake(TlsMessageHandshake::ClientHello(hello)))) => {
                self.report.offered_suites = hello.ciphers.len();
                let mut best = (!is_grease(hello.version.0)).then_some(hello.version.0);
                for ext in extensions(hello.ext, true) {
                    match ext {
                        TlsExtension::SNI(names) => {
                            if let Some((_, name)) = names.iter().find(|(t, _)| t.0 == 0) {
                                let name = name.get(..MAX_SNI).unwrap_or(name);
                                self.report.sni = Some(String::from_utf8_lossy(name).into_owned());
                            }
                        }
                        TlsExtension::ALPN(names) => self.alpn(&names),
                        TlsExtension::SupportedVersions(versions) => {
                            let top = versions.iter().map(|v| v.0).filter(|&v| !is_grease(v));
                            best = top.max().or(best);
                        }
                        _ => {}
                    }
                }
                self.report.version = best;
            }
            Ok((_, TlsMessage::Handshake(TlsMessageHandshake::ServerHello(hello)))) => {
                self.report.cipher_suite = hello.cipher.get_ciphersuite().map(|c| c.name);
                let mut chosen = hello.version.0;
                for ext in extensions(hello.ext, false) {
                    match ext {
                        TlsExtension::ALPN(names) => self.alpn(&names),
                        TlsExtension::SupportedVersions(versions) => {
                            if let Some(v) = versions.first() {
                                chosen = v.0;
                            }
                        }
                        _ => {}
                    }
                }
                self.report.version = Some(chosen);
            }
            Ok((_, TlsMessage::Handshake(TlsMessageHandshake::Certificate(chain)))) => {
                for cert in chain.cert_chain.iter().take(MAX_CERTIFICATES) {
                    for mut key in find_keys(cert.data) {
                        if self.report.certificates.len() < MAX_CERTIFICATES {
                            // Where in the stream: the record the message ended in.
                            key.offset = usize::try_from(self.record_at).unwrap_or(usize::MAX);
                            self.report.certificates.push(key);
                        }
                    }
                }
            }
            Ok(_) => {}
            Err(_) if matches!(kind, CLIENT_HELLO | SERVER_HELLO | 11) => {
                let at = self.at;
                self.error(format!("near byte {at}: a malformed {} message", handshake_name(kind)));
            }
            // Messages this module does not read need not decode.
            Err(_) => {}
        }
    }

    fn alpn(&mut self, names: &[&[u8]]) {
        for name in names {
            if self.report.alpn.len() < MAX_ALPN {
                self.report.alpn.push(String::from_utf8_lossy(name).into_owned());
            }
        }
    }

    fn lost(&mut self, offset: u64) {
        if !self.stopped {
            self.stopped = true;
            self.error(format!(
                "bytes are missing from the capture at byte {offset}: records after it are not read"
            ));
        }
    }

    fn report(mut self) -> TlsReport {
        if !self.stopped && (self.walk.head_len > 0 || self.walk.record.is_some()) {
            let at = self.at;
            self.error(format!("the direction ends at byte {at} inside a record"));
        }
        self.report
    }
}

/// A hello's extensions (none when they do not decode).
fn extensions(ext: Option<&[u8]>, client: bool) -> Vec<TlsExtension<'_>> {
    let Some(ext) = ext else { return Vec::new() };
    let decoded = if client {
        parse_tls_client_hello_extensions(ext)
    } else {
        parse_tls_server_hello_extensions(ext)
    };
    decoded.map(|(_, e)| e).unwrap_or_default()
}

impl Recogniser for TlsRecogniser {
    type Found = TlsReport;

    fn name(&self) -> &'static str {
        "tls"
    }

    fn start_len(&self) -> usize {
        HEADER_LEN + 1
    }

    /// A handshake record header, then a ClientHello or ServerHello.
    fn start(&self, first_bytes: &[u8]) -> Start {
        let head = first_bytes.get(..HEADER_LEN).unwrap_or(first_bytes);
        match check_header(head) {
            Err(Unframed) => Start::No,
            Ok(_) if first_bytes.first().is_some_and(|&t| t != HANDSHAKE) => Start::No,
            Ok(Some(_)) if first_bytes.len() > HEADER_LEN => {
                if opens(first_bytes) {
                    Start::Yes
                } else {
                    Start::No
                }
            }
            Ok(_) => Start::More,
        }
    }

    fn data(&mut self, offset: u64, bytes: &[u8]) {
        self.take(offset, bytes);
    }

    fn gap(&mut self, offset: u64) {
        self.lost(offset);
    }

    fn finish(self) -> TlsReport {
        self.report()
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;
    use crate::analyze::recognise::Watch;
    use crate::analyze::recognise::keys::KeyKind;
    use crate::analyze::recognise::testing::{cut_all, read_all};

    const TLS12_CLIENT: &[u8] =
        include_bytes!("../../../tests/data/streams/tls12-openssl-client.bin");
    const TLS12_SERVER: &[u8] =
        include_bytes!("../../../tests/data/streams/tls12-openssl-server.bin");
    const TLS13_CLIENT: &[u8] =
        include_bytes!("../../../tests/data/streams/tls13-openssl-client.bin");
    const TLS13_SERVER: &[u8] =
        include_bytes!("../../../tests/data/streams/tls13-openssl-server.bin");

    /// The cuts of `bytes` fed in pieces of `piece` bytes: (length, part) of each, and whether
    /// the cutter gave up.
    fn cuts(bytes: &[u8], piece: usize) -> (Vec<(usize, Part)>, bool) {
        cut_all(&mut TlsCutter::new(), bytes, piece)
    }

    fn read(bytes: &[u8], piece: usize) -> Option<TlsReport> {
        read_all(TlsRecogniser::new(), bytes, piece)
    }

    #[test]
    fn real_directions_cut_into_whole_records() {
        for bytes in [TLS12_CLIENT, TLS12_SERVER, TLS13_CLIENT, TLS13_SERVER] {
            let (whole, unframed) = cuts(bytes, bytes.len());
            assert!(!unframed);
            assert_eq!(whole.iter().map(|c| c.0).sum::<usize>(), bytes.len());
            assert_eq!(whole.first().map(|c| c.1), Some(Part::Handshake));
            assert!(whole.iter().any(|c| c.1 == Part::Message));
            for piece in [1, 2, 7, 100] {
                assert_eq!(cuts(bytes, piece), (whole.clone(), false), "piece {piece}");
            }
        }
        // TLS 1.2 server: ServerHello..Done in one record, then CCS, Finished, application data.
        let (server, _) = cuts(TLS12_SERVER, TLS12_SERVER.len());
        assert!(server.iter().any(|c| c.1 == Part::Framing), "{server:?}");
    }

    #[test]
    fn tls12_client_hello_and_server_handshake() {
        for piece in [1, 5, 4096] {
            let c = read(TLS12_CLIENT, piece).unwrap();
            assert_eq!(c.version, Some(0x0303), "{c:?}");
            assert_eq!(c.sni.as_deref(), Some("localhost"));
            assert_eq!(c.handshake, ["ClientHello", "ClientKeyExchange"]);
            assert!(c.offered_suites > 0);
            assert!(c.change_cipher_spec);
            assert_eq!(c.encrypted_records, 1, "the encrypted Finished");
            assert_eq!(c.application_records, 2, "{c:?}");
            assert!(c.errors.is_empty(), "{:?}", c.errors);

            let s = read(TLS12_SERVER, piece).unwrap();
            assert_eq!(s.version, Some(0x0303));
            assert_eq!(s.record_version, Some(0x0303));
            assert_eq!(
                s.handshake,
                [
                    "ServerHello",
                    "Certificate",
                    "ServerKeyExchange",
                    "ServerHelloDone",
                    "NewSessionTicket"
                ],
                "{s:?}"
            );
            assert!(s.cipher_suite.is_some_and(|n| n.starts_with("TLS_")), "{s:?}");
            assert_eq!(s.certificates.len(), 1);
            let cert = &s.certificates[0];
            assert_eq!(cert.kind, KeyKind::Certificate);
            assert_eq!(cert.bits, Some(2048));
            assert_eq!(
                cert.fingerprint.as_ref().map(|f| f.to_string()).as_deref(),
                Some("SHA256:XS7ayg1Up1qXharmvDXa1HiqGcZOa/hJ/S/nLd3paK4")
            );
            assert!(s.change_cipher_spec);
            assert_eq!(s.application_records, 2);
            assert_eq!(s.encrypted_records, 1);
            assert!(s.errors.is_empty(), "{:?}", s.errors);
        }
    }

    #[test]
    fn tls13_hides_all_after_the_hellos() {
        let c = read(TLS13_CLIENT, 3).unwrap();
        assert_eq!(c.version, Some(0x0304), "{c:?}");
        assert_eq!(c.record_version, Some(0x0301));
        assert_eq!(c.sni.as_deref(), Some("localhost"));
        assert_eq!(c.handshake, ["ClientHello"]);
        assert!(c.errors.is_empty(), "{:?}", c.errors);
        let s = read(TLS13_SERVER, 3).unwrap();
        assert_eq!(s.version, Some(0x0304), "{s:?}");
        assert_eq!(s.handshake, ["ServerHello"]);
        assert!(s.cipher_suite.is_some_and(|n| n.starts_with("TLS_AES") || n.contains("CHACHA")));
        assert!(s.certificates.is_empty(), "the certificate is encrypted in TLS 1.3");
        assert!(s.application_records >= 3, "{s:?}");
        assert!(s.application_bytes > 1000);
        assert!(s.errors.is_empty(), "{:?}", s.errors);
    }

    #[test]
    fn opens_and_start_want_a_hello() {
        assert!(opens(TLS12_CLIENT) && opens(TLS12_SERVER) && opens(TLS13_SERVER));
        assert!(opens(&TLS12_CLIENT[..5]), "the type byte is not there yet");
        assert!(!opens(&TLS12_CLIENT[..4]));
        assert!(!opens(b"GET / HTTP/1.1\r\n"));
        assert!(!opens(&[23, 3, 3, 0, 16, 1]), "application data first");
        assert!(!opens(&[22, 3, 3, 0, 16, 11]), "a Certificate first");
        assert!(!opens(&[22, 3, 5, 0, 16, 1]), "no TLS 1.4");
        assert!(!opens(&[22, 3, 3, 0x48, 0x01, 1]), "too long a record");
        let r = TlsRecogniser::new();
        assert_eq!(r.start(&[22, 3]), Start::More);
        assert_eq!(r.start(&[23]), Start::No);
        assert_eq!(r.start(b"RCHT"), Start::No);
        assert_eq!(r.start(&TLS12_CLIENT[..6]), Start::Yes);
        assert!(read(b"SSH-2.0-OpenSSH\r\n", 100).is_none());
    }

    #[test]
    fn bad_headers_are_unframed_and_reported() {
        let mut bytes = TLS12_CLIENT.to_vec();
        let first = cuts(&bytes, 4096).0[0].0;
        bytes.truncate(first);
        bytes.extend_from_slice(b"\x17\x03\x09garbage");
        let (c, unframed) = cuts(&bytes, 1);
        assert!(unframed);
        assert_eq!(c.len(), 1);
        let r = read(&bytes, 4096).unwrap();
        assert!(r.errors.iter().any(|e| e.contains("not a TLS record header")), "{:?}", r.errors);
        // A direction cut off inside a record, and one with a gap.
        let r = read(&TLS12_SERVER[..100], 7).unwrap();
        assert!(r.errors.iter().any(|e| e.contains("inside a record")), "{:?}", r.errors);
        let mut watch = Watch::new(TlsRecogniser::new());
        watch.data(0, &TLS12_SERVER[..50]);
        watch.gap(50);
        watch.data(60, &TLS12_SERVER[60..]);
        let r = watch.finish().unwrap();
        assert!(r.errors.iter().any(|e| e.contains("missing")), "{:?}", r.errors);
        assert_eq!(r.application_records, 0);
    }

    #[test]
    fn a_handshake_message_spanning_records_is_reassembled() {
        // Re-frame the TLS 1.2 server's clear handshake (one record per message) into records
        // of 100 bytes.
        let mut body = Vec::new();
        let mut at = 0;
        while TLS12_SERVER[at] == HANDSHAKE {
            let len = usize::from(u16::from_be_bytes([TLS12_SERVER[at + 3], TLS12_SERVER[at + 4]]));
            body.extend_from_slice(&TLS12_SERVER[at + 5..at + 5 + len]);
            at += 5 + len;
        }
        let mut bytes = Vec::new();
        for chunk in body.chunks(100) {
            bytes.extend_from_slice(&[22, 3, 3]);
            bytes.extend_from_slice(&(chunk.len() as u16).to_be_bytes());
            bytes.extend_from_slice(chunk);
        }
        let r = read(&bytes, 33).unwrap();
        assert_eq!(r.handshake.len(), 5, "{r:?}");
        assert_eq!(r.certificates.len(), 1);
        // A message longer than the bound is named, not decoded.
        let mut big = vec![22, 3, 3, 0, 4, 1, 0x10, 0, 0];
        big.extend_from_slice(&[22, 3, 3, 0, 0]);
        let r = read(&big, 4096).unwrap();
        assert_eq!(r.handshake, ["ClientHello"]);
        assert!(r.errors.iter().any(|e| e.contains("too long")), "{:?}", r.errors);
    }

    proptest! {
        #[test]
        fn garbage_never_panics(
            bytes in proptest::collection::vec(any::<u8>(), 0..2000),
            piece in 1usize..64,
            tls_start in any::<bool>(),
        ) {
            let mut bytes = bytes;
            if tls_start && bytes.len() >= 6 {
                bytes[..6].copy_from_slice(&[22, 3, 1, 0x01, 0x00, 1]);
            }
            let _ = read(&bytes, piece);
            let (pieces, _) = cuts(&bytes, piece);
            let (whole, _) = cuts(&bytes, bytes.len().max(1));
            prop_assert_eq!(pieces, whole);
            let _ = opens(&bytes);
        }

        #[test]
        fn truncated_real_directions_never_panic(cut in 0usize..1947, piece in 1usize..64) {
            for bytes in [TLS12_CLIENT, TLS12_SERVER, TLS13_CLIENT, TLS13_SERVER] {
                let bytes = &bytes[..cut.min(bytes.len())];
                let _ = read(bytes, piece);
                let _ = cuts(bytes, piece);
            }
        }
    }
}
