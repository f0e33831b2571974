//! Stage 5, the report: what the stages found comes in; the analysis of one capture file as a
//! document goes out, in its JSON form and its human form ([`human()`], in [`mod@human`]).
//!
//! Owns the report's data model (schema version 1, documented field by field in
//! `docs/ANALYZE.md`): the JSON form is these types as `serde` writes them (there is no other
//! JSON code), and it is assembled here from the streams, their counters and each direction's
//! result ([`file_report`]), with the warnings about streams. It must never read files or
//! packets and never decide a verdict: it presents what the other stages found.

pub mod human;

use std::fmt::Write as _;

use serde::Serialize;

use super::classify::{Confidence, Encoding, Verdict, plural};
use super::engine::direction::DirectionResult;
use super::input::decode::endpoint;
use super::stream::messages::{Mode, looks_like_text};
use super::stream::ports::PortSeen;
use super::stream::{Dir, HalfStats, OOO_CAP, Stream};
use crate::escape::bytes as escape;
pub use human::{Style, human, summary};

/// The JSON schema version.
pub const SCHEMA_VERSION: u32 = 1;

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
    /// The stream's verdict (both directions together).
    pub verdict: Verdict,
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
    pub messages: Vec<MessageReport>,
    /// Messages not listed (past the limit).
    pub unlisted_messages: u64,
    /// The `--extract` file.
    pub extract: Option<String>,
    /// What the direction said in rchat's encrypted protocol (`null` for other traffic).
    pub rchat: Option<super::recognise::rchat::RchatReport>,
}

/// One message inside a direction.
#[derive(Debug, Serialize)]
pub struct MessageReport {
    /// Stream offset.
    pub offset: u64,
    /// Length in bytes.
    pub length: u64,
    /// Its verdict.
    pub verdict: Verdict,
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

/// What is known of one capture file before its streams: how it was read and what went wrong
/// reading it.
#[derive(Debug)]
pub struct Capture {
    /// The file as named on the command line.
    pub file: String,
    /// `pcap` or `pcapng`.
    pub format: &'static str,
    /// Names of the capture's link types.
    pub link_types: Vec<String>,
    /// Records read.
    pub packets: u64,
    /// Ports analysed.
    pub ports: Vec<u16>,
    /// The busiest TCP ports not analysed.
    pub other_ports: Vec<PortSeen>,
    /// Warnings so far (reading, decoding, the analysis threads).
    pub warnings: Vec<String>,
}

/// The report of one file: its streams (those with results) in order, each direction's
/// counters and result together, and a warning for each stream that overflowed the
/// out-of-order buffer or was picked up mid-connection.
pub fn file_report(
    capture: Capture,
    streams: &[Stream],
    results: Vec<Option<[DirectionResult; 2]>>,
) -> FileReport {
    let Capture { file, format, link_types, packets, ports, other_ports, mut warnings } = capture;
    let mut reports = Vec::with_capacity(streams.len());
    for (s, result) in streams.iter().zip(results) {
        let Some([c2s, s2c]) = result else { continue };
        if s.overflowed {
            warnings.push(format!(
                "stream {}: more than {} MiB arrived out of order; the hole in front of it was \
                 declared missing",
                s.id,
                OOO_CAP / (1024 * 1024)
            ));
        }
        let before = s.stats(Dir::ClientToServer).before_start_bytes
            + s.stats(Dir::ServerToClient).before_start_bytes;
        if before > 0 {
            warnings.push(format!(
                "stream {}: the capture starts mid-connection; {} sent before the first \
                 segment seen {} not in the reassembled stream",
                s.id,
                plural(before, "byte", "bytes"),
                if before == 1 { "is" } else { "are" }
            ));
        }
        let c2s = direction_report(s.stats(Dir::ClientToServer), c2s);
        let s2c = direction_report(s.stats(Dir::ServerToClient), s2c);
        reports.push(StreamReport {
            id: s.id,
            client: endpoint(s.client.0, s.client.1),
            server: endpoint(s.server.0, s.server.1),
            start: s.start_ns as f64 / 1e9,
            end: s.end_ns as f64 / 1e9,
            verdict: stream_verdict(c2s.verdict, s2c.verdict),
            directions: Directions { client_to_server: c2s, server_to_client: s2c },
        });
    }
    FileReport {
        schema_version: SCHEMA_VERSION,
        file,
        format,
        link_types,
        packets,
        ports,
        other_ports: other_ports.iter().map(OtherPort::from).collect(),
        warnings,
        streams: reports,
    }
}

/// One direction's counters and result, as the report shows them.
fn direction_report(st: &HalfStats, d: DirectionResult) -> DirectionReport {
    let (preview, preview_format) = preview_string(&d.preview, &d.preview_gaps);
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
            .map(|m| MessageReport { offset: m.offset, length: m.length, verdict: m.brief.verdict })
            .collect(),
        unlisted_messages: d.unlisted_messages,
        extract: d.extract.map(|p| p.display().to_string()),
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
