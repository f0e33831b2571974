//! Stage 5, the report: what the stages found comes in; the analysis of one capture file as a
//! document goes out, in its JSON form (laid out by [`json`]), its human form ([`human()`], in
//! [`mod@human`]) and as a page with pictures ([`html::page`], in [`mod@html`]).
//!
//! Owns the report's data model (schema version 2, documented field by field in
//! `docs/ANALYZE.md`): the JSON form is these types as `serde` writes them (there is no other
//! JSON code but [`json`]'s, which lays it out and writes a direction's histogram and its
//! messages as ready lines). It is assembled from the streams, their counters and each
//! direction's result, with the warnings about streams, one stream at a time (`assemble`:
//! [`file_report`], [`unmade_file_report`]). It must never read files or packets and never
//! decide a verdict: it presents what the other stages found.

mod assemble;
pub mod html;
pub mod human;
pub mod json;
mod room;

use std::fmt::Write as _;

use serde::Serialize;

use super::classify::{Confidence, Encoding, Histogram, Verdict, plural};
use super::engine::direction::DirectionResult;
use super::recognise::keys::{DerEncoding, JsonCarrier, KeyFormat, KeyKind, KeyMaterial};
use super::recognise::raw_rsa::{self, Block, RawRsa};
use super::recognise::rchat::RchatReport;
use super::recognise::{Part, Protocol, tls};
use super::stream::HalfStats;
use super::stream::messages::{Mode, looks_like_text};
use super::stream::ports::PortSeen;
use crate::escape::bytes as escape;
use assemble::Unmade;
pub use assemble::{Capture, file_report, unmade_file_report};
pub use human::{Style, human, summary};
use room::{rchat_summary, room_phrases};

/// The JSON schema version.
pub const SCHEMA_VERSION: u32 = 2;

/// One capture file's report.
#[derive(Debug, Serialize)]
pub struct FileReport {
    /// Always [`SCHEMA_VERSION`].
    pub schema_version: u32,
    /// The file as named on the command line.
    pub file: String,
    /// `pcap` or `pcapng`.
    pub format: &'static str,
    /// Link types of the capture's interfaces.
    pub link_types: Vec<String>,
    /// Records read from the file.
    pub packets: u64,
    /// Ports analysed (empty with `--all-ports`).
    pub ports: Vec<u16>,
    /// The busiest TCP ports the capture holds besides those analysed (at most ten, most
    /// packets first), with what their traffic looks like.
    pub other_ports: Vec<OtherPort>,
    /// Problems that did not stop the report.
    pub warnings: Vec<String>,
    /// The TCP streams, in order of their first packet.
    pub streams: Vec<StreamReport>,
    /// Streams whose reports are not made yet: they come after `streams`
    /// ([`unmade_file_report`]).
    #[serde(skip)]
    unmade: Option<Box<Unmade>>,
}

/// A TCP port the capture holds besides those analysed.
#[derive(Debug, Serialize)]
pub struct OtherPort {
    /// The port (the server's side of its connections).
    pub port: u16,
    /// TCP segments to or from it.
    pub packets: u64,
    /// Their payload bytes, as captured.
    pub bytes: u64,
    /// Connections opened to it (SYNs seen).
    pub connections: u64,
    /// `"rchat"` (rchat's frame magic seen), `"text"` (mostly printable lines), or null.
    pub looks_like: Option<&'static str>,
}

impl From<&PortSeen> for OtherPort {
    fn from(p: &PortSeen) -> Self {
        OtherPort {
            port: p.port,
            packets: p.packets,
            bytes: p.bytes,
            connections: p.connections,
            looks_like: p.looks_like(),
        }
    }
}

/// One TCP connection.
#[derive(Debug, Serialize)]
pub struct StreamReport {
    /// Number in this report, from 0, in order of first packet.
    pub id: usize,
    /// `addr:port` of the client (IPv6 in brackets).
    pub client: String,
    /// `addr:port` of the server.
    pub server: String,
    /// First packet, seconds since the Unix epoch.
    pub start: f64,
    /// Last packet.
    pub end: f64,
    /// The stream's verdict (both directions together): the verdict on the messages, keys
    /// and protocol setup left out.
    pub verdict: Verdict,
    /// What an eavesdropper on the path learns, in one sentence.
    pub eavesdropper: String,
    /// Each direction.
    pub directions: Directions,
}

/// The two directions of a stream.
#[derive(Debug, Serialize)]
pub struct Directions {
    /// Client to server.
    pub client_to_server: DirectionReport,
    /// Server to client.
    pub server_to_client: DirectionReport,
}

/// A gap in a direction.
pub use super::stream::Gap;

/// One direction of a stream.
#[derive(Debug, Serialize)]
pub struct DirectionReport {
    /// Reassembled bytes.
    pub bytes: u64,
    /// Segments seen.
    pub packets: u64,
    /// SHA-256 of the reassembled bytes, hex.
    pub sha256: String,
    /// Bytes missing from the capture.
    pub missing_bytes: u64,
    /// Where they are missing.
    pub gaps: Vec<Gap>,
    /// Bytes that arrived more than once.
    pub retransmitted_bytes: u64,
    /// Retransmissions whose bytes differed from the first copy.
    pub conflicting_retransmissions: u64,
    /// Payload bytes the snaplen kept out of the file.
    pub snaplen_cut_bytes: u64,
    /// Payload bytes sent before the capture picked the stream up.
    pub before_start_bytes: u64,
    /// Shannon entropy, bits per byte.
    pub entropy: f64,
    /// Entropy expected of random bytes of the same length.
    pub expected_random_entropy: f64,
    /// Share of printable UTF-8.
    pub printable_ratio: f64,
    /// Chi-square against uniform bytes, when the sample is large enough.
    pub chi_square: Option<f64>,
    /// How many times each byte value, 0x00 to 0xff, occurs in the bytes the figures above
    /// are computed on (those of the messages), written as one line of 256 numbers.
    #[serde(serialize_with = "json::histogram_json")]
    pub histogram: Histogram,
    /// The verdict.
    pub verdict: Verdict,
    /// For `encoded`: base64, hex or decimal.
    pub encoding: Option<Encoding>,
    /// For `encoded`: the decoded size.
    pub decoded_bytes: Option<u64>,
    /// How sure.
    pub confidence: Confidence,
    /// Why, in one sentence.
    pub reason: String,
    /// What an eavesdropper reads: escaped text (with `[N bytes missing]` at gaps), or hex
    /// when the bytes are not text.
    pub preview: String,
    /// `text` or `hex`.
    pub preview_format: &'static str,
    /// Whether the preview stops before the end (no `--full`).
    pub preview_truncated: bool,
    /// How the messages were cut: `frames`, `lines` or `runs`.
    pub message_mode: Option<Mode>,
    /// The messages.
    #[serde(serialize_with = "json::messages_json")]
    pub messages: Vec<MessageReport>,
    /// Messages not listed (past the limit).
    pub unlisted_messages: u64,
    /// The `--extract` file.
    pub extract: Option<String>,
    /// What the direction said in rchat's encrypted protocol (`null` for other traffic).
    pub rchat: Option<Box<RchatReport>>,
    /// The protocol the direction speaks, when one was recognised (`null` for plain text or
    /// bytes in no known framing).
    pub protocol: Option<Box<ProtocolReport>>,
    /// Key material seen in the direction, in stream order.
    pub recognized: Vec<Recognized>,
    /// The ciphertext messages are each one RSA block (`null` otherwise).
    pub raw_rsa: Option<Box<RawRsaReport>>,
}

/// One message inside a direction.
#[derive(Debug, Serialize)]
pub struct MessageReport {
    /// Stream offset.
    pub offset: u64,
    /// Length in bytes.
    pub length: u64,
    /// When the packet that delivered its first byte was captured: seconds after the stream's
    /// first packet (`start`), to the microsecond.
    pub time: f64,
    /// The Shannon entropy of its bytes, bits per byte, to three decimals.
    pub entropy: f64,
    /// `message`, `key`, `handshake` or `framing`: only `message` parts make the verdict.
    pub kind: Part,
    /// Its verdict.
    pub verdict: Verdict,
}

/// The protocol of a direction.
#[derive(Debug, Clone, Serialize)]
pub struct ProtocolReport {
    /// `rchat`, `tls`, `ssh`, `http` or `length-prefix`.
    pub name: &'static str,
    /// What an eavesdropper reads of it, in one line (text from the capture escaped).
    pub summary: String,
    /// TLS: what the handshake showed (`null` for other protocols).
    pub tls: Option<TlsJson>,
    /// SSH: what the clear-text part showed.
    pub ssh: Option<SshJson>,
    /// HTTP: the request or status lines and headers.
    pub http: Option<HttpJson>,
}

/// What a TLS direction shows an eavesdropper.
#[derive(Debug, Clone, Serialize)]
pub struct TlsJson {
    /// `TLS 1.3`, ...: the version a server chose, or the highest a client offered.
    pub version: Option<&'static str>,
    /// The version in the first record header.
    pub record_version: Option<&'static str>,
    /// Handshake messages seen in the clear, in order.
    pub handshake: Vec<&'static str>,
    /// The server name a client asked for (escaped).
    pub sni: Option<String>,
    /// ALPN names (escaped).
    pub alpn: Vec<String>,
    /// The cipher suite a server chose.
    pub cipher_suite: Option<&'static str>,
    /// Cipher suites a client offered.
    pub offered_suites: usize,
    /// Application data records and their body bytes.
    pub application_records: u64,
    /// Bytes of application data.
    pub application_bytes: u64,
    /// Alert records.
    pub alerts: u64,
    /// Malformed records (escaped).
    pub errors: Vec<String>,
}

/// What an SSH direction shows an eavesdropper.
#[derive(Debug, Clone, Serialize)]
pub struct SshJson {
    /// The identification line (escaped).
    pub banner: Option<String>,
    /// Key exchange methods offered, most preferred first (escaped).
    pub kex_algorithms: Option<String>,
    /// Ciphers offered for this direction (escaped).
    pub ciphers: Option<String>,
    /// The server's host key algorithm and OpenSSH fingerprint.
    pub host_key: Option<String>,
    /// Packets before encryption began.
    pub packets_in_clear: u64,
    /// Bytes after NEWKEYS.
    pub encrypted_bytes: u64,
    /// Malformed packets (escaped).
    pub errors: Vec<String>,
}

/// What an HTTP direction shows an eavesdropper.
#[derive(Debug, Clone, Serialize)]
pub struct HttpJson {
    /// Request lines (escaped).
    pub requests: Vec<String>,
    /// Status lines (escaped).
    pub statuses: Vec<String>,
    /// The first message's headers as `Name: value` (escaped).
    pub headers: Vec<String>,
    /// Body bytes.
    pub body_bytes: u64,
}

/// The report of a protocol a recogniser read.
fn protocol_report(p: &Protocol, dir_is_client: bool) -> ProtocolReport {
    let esc = |t: &str| escape(t.as_bytes());
    match p {
        Protocol::Tls(t) => {
            let version = t.version.map(tls::version_name);
            let j = TlsJson {
                version,
                record_version: t.record_version.map(tls::version_name),
                handshake: t.handshake.clone(),
                sni: t.sni.as_deref().map(esc),
                alpn: t.alpn.iter().map(|a| esc(a)).collect(),
                cipher_suite: t.cipher_suite,
                offered_suites: t.offered_suites,
                application_records: t.application_records,
                application_bytes: t.application_bytes,
                alerts: t.alerts,
                errors: t.errors.iter().map(|e| esc(e)).collect(),
            };
            let mut parts = vec![match (version, dir_is_client) {
                (Some(v), true) => format!("TLS, offering up to {v}"),
                (Some(v), false) => v.to_string(),
                (None, _) => "TLS".to_string(),
            }];
            if let Some(sni) = &j.sni {
                parts.push(format!("server name \"{sni}\" in the clear"));
            }
            if let Some(c) = j.cipher_suite {
                parts.push(format!("cipher suite {c}"));
            }
            if !j.handshake.is_empty() {
                parts.push(format!("handshake in the clear: {}", j.handshake.join(", ")));
            }
            parts.push(format!(
                "then {} of application data ({})",
                plural(j.application_records, "encrypted record", "encrypted records"),
                plural(j.application_bytes, "byte", "bytes")
            ));
            ProtocolReport {
                name: "tls",
                summary: parts.join("; "),
                tls: Some(j),
                ssh: None,
                http: None,
            }
        }
        Protocol::Ssh(s) => {
            let j = SshJson {
                banner: s.banner.as_deref().map(esc),
                kex_algorithms: s.kexinit.as_ref().map(|k| esc(&k.kex_algorithms)),
                ciphers: s.kexinit.as_ref().map(|k| {
                    esc(if dir_is_client {
                        &k.encryption_client_to_server
                    } else {
                        &k.encryption_server_to_client
                    })
                }),
                host_key: s
                    .host_key
                    .as_ref()
                    .map(|h| format!("{} {}", esc(&h.algorithm), h.fingerprint)),
                packets_in_clear: s.packets_in_clear,
                encrypted_bytes: s.encrypted_bytes,
                errors: s.errors.iter().map(|e| esc(e)).collect(),
            };
            let mut parts = vec![match &j.banner {
                Some(b) => format!("SSH, banner \"{b}\""),
                None => "SSH".to_string(),
            }];
            if let Some(k) = &j.kex_algorithms {
                let first = k.split(',').next().unwrap_or(k);
                parts.push(format!("key exchange offered first: {first}"));
            }
            if let Some(h) = &j.host_key {
                parts.push(format!("host key {h}"));
            }
            parts.push(format!(
                "{} in the clear, then {} encrypted",
                plural(j.packets_in_clear, "packet", "packets"),
                plural(j.encrypted_bytes, "byte", "bytes")
            ));
            ProtocolReport {
                name: "ssh",
                summary: parts.join("; "),
                tls: None,
                ssh: Some(j),
                http: None,
            }
        }
        Protocol::Http(h) => {
            let j = HttpJson {
                requests: h.requests.iter().map(|r| esc(r)).collect(),
                statuses: h.statuses.iter().map(|r| esc(r)).collect(),
                headers: h.headers.iter().map(|(n, v)| format!("{}: {}", esc(n), esc(v))).collect(),
                body_bytes: h.body_bytes,
            };
            let lines: Vec<String> = j
                .requests
                .iter()
                .chain(j.statuses.iter())
                .take(3)
                .map(|l| format!("\"{l}\""))
                .collect();
            let summary = format!(
                "HTTP in the clear: {}{}; {}, {} of body",
                lines.join(", "),
                match &h.host {
                    Some(host) => format!(" (Host {})", esc(host)),
                    None => String::new(),
                },
                plural(j.headers.len() as u64, "header", "headers"),
                plural(j.body_bytes, "byte", "bytes")
            );
            ProtocolReport { name: "http", summary, tls: None, ssh: None, http: Some(j) }
        }
    }
}

/// Key material seen in a direction.
#[derive(Debug, Clone, Serialize)]
pub struct Recognized {
    /// Stream offset of its first byte (for a certificate in a TLS handshake, of the record
    /// its Certificate message ended in).
    pub offset: u64,
    /// Bytes it spans.
    pub length: u64,
    /// `public_key`, `certificate` or `private_key`.
    pub kind: &'static str,
    /// How it was written, e.g. `PEM RSA PUBLIC KEY`, `OpenSSH`, `JSON modulus and exponent`,
    /// `DER SubjectPublicKeyInfo after a 4-byte length`, `rchat HELLO`.
    pub format: String,
    /// `RSA`, `EC P-256`, `Ed25519`, ...
    pub algorithm: &'static str,
    /// Key size in bits, where it has one.
    pub bits: Option<u32>,
    /// `SHA256:...` of the public key's SubjectPublicKeyInfo, as `rchat fingerprint` prints it.
    pub fingerprint: Option<String>,
}

/// A direction whose ciphertext messages are each one RSA block.
#[derive(Debug, Clone, Serialize)]
pub struct RawRsaReport {
    /// Bytes per block.
    pub block_bytes: u64,
    /// Messages, each one block.
    pub messages: u64,
    /// The fingerprint of the recipient's key the blocks fit, when it was seen.
    pub key_fingerprint: Option<String>,
    /// That key's size.
    pub key_bits: Option<u32>,
    /// What it means, in one sentence.
    pub explanation: String,
}

/// What an eavesdropper reads, for display: text stays text (see [`escape`]), other bytes
/// become hex. Returns the string and `"text"` or `"hex"`.
/// Where bytes are missing (`gaps`: position in `bytes`, count), a text preview says
/// `[N bytes missing]`; a hex preview stays plain hex (the gaps are listed anyway).
pub fn preview_string(bytes: &[u8], gaps: &[(usize, u64)]) -> (String, &'static str) {
    if !(bytes.is_empty() || looks_like_text(bytes)) {
        return (hex::encode(bytes), "hex");
    }
    let mut out = String::new();
    let mut at = 0;
    for &(pos, len) in gaps {
        let pos = pos.clamp(at, bytes.len());
        out.push_str(&escape(bytes.get(at..pos).unwrap_or(&[])));
        let _ = write!(out, "[{len} bytes missing]");
        at = pos;
    }
    out.push_str(&escape(bytes.get(at..).unwrap_or(&[])));
    (out, "text")
}

/// `time_ns` as seconds after `start_ns`, rounded to the microsecond (never negative).
fn seconds_after(time_ns: i64, start_ns: i64) -> f64 {
    let micros = time_ns.saturating_sub(start_ns).max(0).saturating_add(500) / 1000;
    micros as f64 / 1e6
}

/// The verdict of a stream from the verdicts of its two directions: an empty direction does
/// not count, nor does one too short to tell when the other one could be told.
pub fn stream_verdict(a: Verdict, b: Verdict) -> Verdict {
    let weak = |v: Verdict| matches!(v, Verdict::Empty | Verdict::Inconclusive);
    match (a, b) {
        (Verdict::Empty, x) | (x, Verdict::Empty) => x,
        (x, y) if weak(x) && !weak(y) => y,
        (x, y) if weak(y) && !weak(x) => x,
        (x, y) if x == y => x,
        _ => Verdict::Mixed,
    }
}

/// Whether `d`'s ciphertext messages are each one RSA block, to a key `other` sent.
fn raw_rsa_of(d: &DirectionResult, other: &DirectionResult) -> Option<RawRsa> {
    let said: Vec<_> = d.messages.iter().filter(|m| m.part == Part::Message).collect();
    if d.class.verdict != Verdict::Ciphertext
        || d.unlisted_messages > 0
        || said.iter().any(|m| m.brief.verdict != Verdict::Ciphertext)
    {
        return None;
    }
    let blocks: Vec<Block<'_>> =
        said.iter().map(|m| Block { length: m.length, head: &m.head }).collect();
    let keys: Vec<&KeyMaterial> = other.keys.iter().map(|k| &k.key).collect();
    raw_rsa::one_block_per_message(&blocks, &keys)
}

/// The key material a direction carries, as the report lists it: keys in its messages,
/// certificates in its TLS handshake, rchat's HELLO and a room's members.
fn recognized_of(d: &DirectionResult) -> Vec<Recognized> {
    let mut keys: Vec<Recognized> = d.keys.iter().map(|k| recognized(k.offset, &k.key)).collect();
    if let Some(Protocol::Tls(t)) = d.protocol.as_deref() {
        // Certificates sent in the clear (TLS 1.2 and older); where in the stream is
        // not kept.
        keys.extend(t.certificates.iter().map(|k| Recognized {
            format: "X.509 certificate in the TLS handshake".to_string(),
            ..recognized(k.offset as u64, k)
        }));
    }
    if let Some(h) = d.rchat.as_ref().and_then(|r| r.hello.as_ref()) {
        let frame = d.rchat.as_ref().and_then(|r| r.frames.first());
        keys.insert(
            0,
            Recognized {
                offset: frame.map_or(0, |f| f.offset),
                length: frame.map_or(0, |f| f.length),
                kind: "public_key",
                format: "rchat HELLO".to_string(),
                algorithm: "RSA",
                bits: u32::try_from(h.key_bits).ok(),
                fingerprint: Some(h.fingerprint.clone()),
            },
        );
    }
    // A room's ROSTER and JOINED frames carry its members' public keys.
    for f in d.rchat.iter().flat_map(|r| r.frames.iter()) {
        let Some(room) = f.room.as_deref() else { continue };
        for m in &room.members {
            keys.push(Recognized {
                offset: f.offset,
                length: f.length,
                kind: "public_key",
                format: format!("rchat {}", f.kind),
                algorithm: "RSA",
                bits: m.key_bits.and_then(|b| u32::try_from(b).ok()),
                fingerprint: Some(m.fingerprint.clone()),
            });
        }
    }
    keys.sort_by_key(|k| k.offset);
    keys
}

/// A key in a few words: `1024-bit RSA public key SHA256:...`.
fn key_phrase(k: &Recognized) -> String {
    let size = k.bits.map(|b| format!("{b}-bit ")).unwrap_or_default();
    let fp = k.fingerprint.as_deref().map(|f| format!(" {f}")).unwrap_or_default();
    format!("{size}{} {}{fp}", k.algorithm, k.kind.replace('_', " "))
}

/// How a key was written, for the report.
fn format_name(f: KeyFormat) -> String {
    let der = |e: DerEncoding| match e {
        DerEncoding::Spki => "SubjectPublicKeyInfo",
        DerEncoding::Pkcs1 => "PKCS#1 RSAPublicKey",
        DerEncoding::Certificate => "X.509 certificate",
        DerEncoding::Pkcs8 => "PKCS#8 private key",
        DerEncoding::Pkcs8Encrypted => "encrypted PKCS#8 private key",
        DerEncoding::Pkcs1Private => "PKCS#1 RSAPrivateKey",
        DerEncoding::Sec1 => "SEC 1 EC private key",
    };
    match f {
        KeyFormat::Pem { label } => format!("PEM {label}"),
        KeyFormat::OpenSsh => "OpenSSH public key line".to_string(),
        KeyFormat::Json { carrier } => match carrier {
            JsonCarrier::ModulusExponent => "JSON modulus and exponent".to_string(),
            JsonCarrier::Pem { label } => format!("JSON string holding PEM {label}"),
            JsonCarrier::Base64 { encoding } => {
                format!("JSON string holding base64 {}", der(encoding))
            }
        },
        KeyFormat::Der { prefix: 0, encoding } => format!("DER {}", der(encoding)),
        KeyFormat::Der { prefix, encoding } => {
            format!("DER {} after a {prefix}-byte length", der(encoding))
        }
        KeyFormat::Base64 { encoding } => format!("base64 of DER {}", der(encoding)),
    }
}

/// Key material as the report lists it.
fn recognized(offset: u64, k: &KeyMaterial) -> Recognized {
    Recognized {
        offset,
        length: k.length as u64,
        kind: match k.kind {
            KeyKind::PublicKey => "public_key",
            KeyKind::Certificate => "certificate",
            KeyKind::PrivateKey => "private_key",
        },
        format: format_name(k.format),
        algorithm: k.algorithm.name(),
        bits: k.bits,
        fingerprint: k.fingerprint.map(|f| f.to_string()),
    }
}

/// The sentence that answers "can they read the messages?" for a stream.
fn eavesdropper(verdict: Verdict, dirs: [&DirectionReport; 2]) -> String {
    let keys: Vec<&Recognized> = dirs.iter().flat_map(|d| d.recognized.iter()).collect();
    let mut visible = Vec::new();
    let publics: Vec<&&Recognized> = keys.iter().filter(|k| k.kind != "private_key").collect();
    let room = room_phrases(dirs, &publics);
    if let Some((members, _)) = &room {
        visible.push(members.clone());
    } else if !publics.is_empty() {
        let sizes: Vec<String> = publics.iter().map(|k| key_phrase_short(k)).collect();
        visible.push(join_same(&sizes));
    }
    if let Some(p) = dirs.iter().find_map(|d| d.protocol.as_ref()) {
        visible.push(format!("the {} handshake", protocol_title(p.name)));
    }
    let said: Vec<&MessageReport> =
        dirs.iter().flat_map(|d| d.messages.iter()).filter(|m| m.kind == Part::Message).collect();
    let count = said.len() as u64 + dirs.iter().map(|d| d.unlisted_messages).sum::<u64>();
    let (lo, hi) =
        said.iter().fold((u64::MAX, 0), |(lo, hi), m| (lo.min(m.length), hi.max(m.length)));
    if count > 0 {
        let sizes = if lo == hi {
            format!("of {}", plural(lo, "byte", "bytes"))
        } else {
            format!("of {lo} to {hi} bytes")
        };
        let times = if count == 1 { "its time" } else { "their times" };
        visible.push(format!("{} {sizes} and {times}", plural(count, "message", "messages")));
    }
    if let Some((_, Some(whom))) = room {
        visible.push(whom);
    }
    let privates = keys.iter().filter(|k| k.kind == "private_key").count();
    let warning = if privates > 0 {
        format!(
            "; and {} in the clear: whoever holds the capture can read everything sent to it",
            plural(privates as u64, "PRIVATE KEY", "PRIVATE KEYS")
        )
    } else {
        String::new()
    };
    let still = if visible.is_empty() {
        String::new()
    } else {
        format!("; still visible: {}", visible.join(", "))
    };
    let rsa = dirs.iter().find_map(|d| d.raw_rsa.as_ref()).map(|r| {
        let to = if r.key_fingerprint.is_some() {
            " to the recipient's key sent at the start"
        } else {
            ""
        };
        format!("; each message is one {}-byte RSA block (raw RSA{to})", r.block_bytes)
    });
    let rsa = rsa.unwrap_or_default();
    match verdict {
        Verdict::Plaintext => {
            let clear = if publics.is_empty() {
                String::new()
            } else {
                format!(
                    "; {} exchanged in the clear",
                    join_same(&publics.iter().map(|k| key_phrase_short(k)).collect::<Vec<_>>())
                )
            };
            format!("readable by anyone on the path: the messages are plain text{clear}{warning}")
        }
        Verdict::Ciphertext => format!("encrypted: the text is hidden{rsa}{still}{warning}"),
        Verdict::Encoded => format!(
            "encoded: the messages are text that carries random-looking bytes (base64, hex or \
             numbers); decoded, they look encrypted{still}{warning}"
        ),
        Verdict::Mixed if dirs.iter().any(|d| d.verdict == Verdict::Plaintext) => format!(
            "partly readable: some messages are plain text and some are not; see each \
             direction{still}{warning}"
        ),
        Verdict::Mixed => {
            format!("mixed: the messages are of several kinds; see each direction{still}{warning}")
        }
        Verdict::Binary => {
            format!("binary: not text, but structured, not random-looking{still}{warning}")
        }
        Verdict::Inconclusive => {
            format!("too little to tell whether the messages are readable{still}{warning}")
        }
        Verdict::Empty => format!("no messages{still}{warning}"),
    }
}

/// `1024-bit RSA public key`.
pub(crate) fn key_phrase_short(k: &Recognized) -> String {
    let size = k.bits.map(|b| format!("{b}-bit ")).unwrap_or_default();
    format!("{size}{} {}", k.algorithm, k.kind.replace('_', " "))
}

/// `two 1024-bit RSA public keys` for twice the same phrase, else a list.
fn join_same(items: &[String]) -> String {
    let mut counts: Vec<(&String, usize)> = Vec::new();
    for i in items {
        match counts.iter_mut().find(|(k, _)| *k == i) {
            Some((_, n)) => *n += 1,
            None => counts.push((i, 1)),
        }
    }
    let words = ["", "a", "two", "three", "four", "five", "six", "seven", "eight"];
    let parts: Vec<String> = counts
        .iter()
        .map(|(k, n)| match words.get(*n) {
            Some(w) if *n == 1 => format!("{w} {k}"),
            Some(w) => format!("{w} {k}s"),
            None => format!("{n} {k}s"),
        })
        .collect();
    join_list(&parts)
}

/// `a, b and c`.
fn join_list(items: &[String]) -> String {
    match items {
        [] => String::new(),
        [one] => one.clone(),
        [rest @ .., last] => format!("{} and {last}", rest.join(", ")),
    }
}

/// A protocol's name as written in prose.
pub fn protocol_title(name: &str) -> &str {
    match name {
        "tls" => "TLS",
        "ssh" => "SSH",
        "http" => "HTTP",
        "rchat" => "rchat",
        "length-prefix" => "length-prefix",
        other => other,
    }
}

/// What a raw RSA finding means.
fn raw_rsa_report(r: &RawRsa) -> RawRsaReport {
    let bits = r.block_bytes * 8;
    let to = match &r.key {
        Some((fp, kbits)) => format!("the recipient's {kbits}-bit key {fp}, sent at the start"),
        None => format!("a {bits}-bit key (the recipient's key was not seen)"),
    };
    RawRsaReport {
        block_bytes: r.block_bytes,
        messages: r.messages,
        key_fingerprint: r.key.as_ref().map(|(fp, _)| fp.to_string()),
        key_bits: r.key.as_ref().map(|(_, b)| *b),
        explanation: format!(
            "each message is one {}-byte RSA block: raw RSA with {to}; the number of messages, \
             their size and their times stay visible, and a message can hold at most {} bytes \
             (with PKCS#1 v1.5 padding, fewer with OAEP)",
            r.block_bytes,
            r.block_bytes.saturating_sub(11)
        ),
    }
}

/// One direction's counters and result, as the report shows them.
fn direction_report(
    st: &HalfStats,
    d: DirectionResult,
    raw: Option<RawRsa>,
    is_client: bool,
    start_ns: i64,
) -> DirectionReport {
    let (preview, preview_format) = preview_string(&d.preview, &d.preview_gaps);
    let recognized = recognized_of(&d);
    let c = d.class.nothing_kept(st.missing_bytes, st.snaplen_cut_bytes);
    DirectionReport {
        bytes: st.bytes,
        packets: st.packets,
        sha256: d.sha256,
        missing_bytes: st.missing_bytes,
        gaps: st.gaps.clone(),
        retransmitted_bytes: st.retransmitted_bytes,
        conflicting_retransmissions: st.conflicting_retransmissions + d.conflicting_retransmissions,
        snaplen_cut_bytes: st.snaplen_cut_bytes,
        before_start_bytes: st.before_start_bytes,
        entropy: c.stats.entropy,
        expected_random_entropy: c.stats.expected_random_entropy,
        printable_ratio: c.stats.printable_ratio,
        chi_square: c.stats.chi_square,
        histogram: d.histogram,
        verdict: c.verdict,
        encoding: c.encoding,
        decoded_bytes: c.decoded_bytes,
        confidence: c.confidence,
        reason: c.reason,
        preview,
        preview_format,
        preview_truncated: d.preview_truncated,
        message_mode: d.mode,
        messages: d
            .messages
            .iter()
            .map(|m| MessageReport {
                offset: m.offset,
                length: m.length,
                time: seconds_after(m.time_ns, start_ns),
                entropy: (f64::from(m.entropy) * 1000.0).round() / 1000.0,
                kind: m.part,
                verdict: m.brief.verdict,
            })
            .collect(),
        unlisted_messages: d.unlisted_messages,
        extract: d.extract.map(|p| p.display().to_string()),
        protocol: match (&d.rchat, &d.protocol, d.mode) {
            (None, Some(p), _) => Some(protocol_report(p, is_client)),
            (None, None, Some(Mode::LengthPrefix)) => Some(ProtocolReport {
                name: "length-prefix",
                summary: "length-prefixed frames: a big-endian length, then that many bytes"
                    .to_string(),
                tls: None,
                ssh: None,
                http: None,
            }),
            _ => None,
        }
        .or_else(|| {
            d.rchat.as_ref().map(|r| ProtocolReport {
                name: "rchat",
                summary: rchat_summary(r),
                tls: None,
                ssh: None,
                http: None,
            })
        })
        .map(Box::new),
        recognized,
        raw_rsa: raw.as_ref().map(|r| Box::new(raw_rsa_report(r))),
        rchat: d.rchat.map(|mut r| {
            // Each frame was also a message of the direction: give it that verdict.
            for f in &mut r.frames {
                // Messages are listed in stream order: find the frame's by its offset.
                f.verdict = d
                    .messages
                    .binary_search_by_key(&f.offset, |m| m.offset)
                    .ok()
                    .and_then(|i| d.messages.get(i))
                    .map(|m| m.brief.verdict);
            }
            r
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes() {
        assert_eq!(preview_string(&[0, 1, 2, 0xff], &[]).1, "hex");
        assert_eq!(preview_string("привет".as_bytes(), &[]), ("привет".to_string(), "text"));
        assert_eq!(preview_string(b"ab\ncd", &[(3, 7)]).0, "ab\\n[7 bytes missing]cd");
    }

    #[test]
    fn verdict_of_a_stream() {
        assert_eq!(stream_verdict(Verdict::Empty, Verdict::Plaintext), Verdict::Plaintext);
        assert_eq!(stream_verdict(Verdict::Ciphertext, Verdict::Plaintext), Verdict::Mixed);
        assert_eq!(stream_verdict(Verdict::Empty, Verdict::Empty), Verdict::Empty);
        assert_eq!(stream_verdict(Verdict::Inconclusive, Verdict::Plaintext), Verdict::Plaintext);
        assert_eq!(stream_verdict(Verdict::Empty, Verdict::Inconclusive), Verdict::Inconclusive);
    }
}
