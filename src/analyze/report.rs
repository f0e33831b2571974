//! The analysis of one capture file as a document: its JSON form and its human form.
//!
//! Owns the report's data model (schema version 1, documented field by field in
//! `docs/ANALYZE.md`), the wording of the human report (per stream: endpoints, times, counts,
//! each direction's verdict, reason and preview; then a one-line summary), escaping of what an
//! eavesdropper reads, and colour. It never reads files or packets and never decides a verdict:
//! it presents what the other modules found.

use std::fmt::Write as _;

use serde::Serialize;

use super::classify::{Confidence, Encoding, Verdict, plural};
use super::stream::messages::{Mode, looks_like_text};
use crate::escape::bytes as escape;

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
    /// Problems that did not stop the report.
    pub warnings: Vec<String>,
    /// The TCP streams, in order of their first packet.
    pub streams: Vec<StreamReport>,
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
    pub rchat: Option<super::rchat::RchatReport>,
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

/// How many times each value occurs, in the order each first occurs.
fn tally<K: PartialEq>(items: impl Iterator<Item = K>) -> Vec<(K, usize)> {
    let mut counts: Vec<(K, usize)> = Vec::new();
    for item in items {
        match counts.iter_mut().find(|(k, _)| *k == item) {
            Some((_, n)) => *n += 1,
            None => counts.push((item, 1)),
        }
    }
    counts
}

fn summary_phrase(v: Verdict) -> &'static str {
    match v {
        Verdict::Plaintext => "readable by anyone on the path",
        Verdict::Ciphertext => "ciphertext",
        Verdict::Encoded => "encoded (text that carries random-looking bytes)",
        Verdict::Binary => "binary",
        Verdict::Mixed => "mixed (several kinds of bytes)",
        Verdict::Inconclusive => "too short to tell",
        Verdict::Empty => "empty",
    }
}

fn confidence_word(c: Confidence) -> &'static str {
    match c {
        Confidence::High => "high",
        Confidence::Medium => "medium",
        Confidence::Low => "low",
    }
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

/// Terminal colours, or none.
#[derive(Debug, Clone, Copy)]
pub struct Style {
    on: bool,
}

impl Style {
    /// Colour when `on`.
    pub fn new(on: bool) -> Self {
        Style { on }
    }

    fn paint(self, code: &str, text: &str) -> String {
        if self.on { format!("\x1b[{code}m{text}\x1b[0m") } else { text.to_string() }
    }

    fn verdict(self, v: Verdict) -> String {
        let code = match v {
            Verdict::Plaintext => "1;31",
            Verdict::Ciphertext => "1;32",
            Verdict::Encoded | Verdict::Mixed => "1;33",
            _ => "1",
        };
        self.paint(code, v.as_str())
    }

    fn dim(self, text: &str) -> String {
        self.paint("2", text)
    }

    fn bold(self, text: &str) -> String {
        self.paint("1", text)
    }
}

fn timestamp(secs: f64) -> String {
    let whole = secs.floor();
    let nanos = ((secs - whole) * 1e9) as u32;
    match chrono::DateTime::from_timestamp(whole as i64, nanos) {
        Some(t) => t.format("%Y-%m-%d %H:%M:%S%.6f UTC").to_string(),
        None => format!("{secs:.6}"),
    }
}

fn ports_phrase(ports: &[u16]) -> String {
    match ports {
        [] => "any port".to_string(),
        [p] => format!("port {p}"),
        many => {
            let list: Vec<String> = many.iter().map(u16::to_string).collect();
            format!("ports {}", list.join(", "))
        }
    }
}

/// The human report.
pub fn human(r: &FileReport, style: Style) -> String {
    let mut o = String::new();
    let links = r.link_types.join(", ");
    let _ = writeln!(
        o,
        "{}: {} capture, {} packets, link type {}",
        style.bold(&r.file),
        r.format,
        r.packets,
        if links.is_empty() { "none".into() } else { links }
    );
    for w in &r.warnings {
        let _ = writeln!(o, "{} {w}", style.paint("1;33", "warning:"));
    }
    let on = ports_phrase(&r.ports);
    if r.streams.is_empty() {
        let _ = writeln!(o, "\nNo TCP traffic on {on} in this capture.");
        if !r.ports.is_empty() {
            let _ = writeln!(
                o,
                "Was the chat on another port? Try --port N, or --all-ports to see every stream."
            );
        }
        return o;
    }
    for s in &r.streams {
        let _ = writeln!(
            o,
            "\n{} {} \u{2192} {}  [{}]",
            style.bold(&format!("stream {}:", s.id)),
            s.client,
            s.server,
            style.verdict(s.verdict)
        );
        let _ = writeln!(
            o,
            "  started {}, lasted {:.3} s",
            timestamp(s.start),
            (s.end - s.start).max(0.0)
        );
        for (label, d) in [
            ("client \u{2192} server", &s.directions.client_to_server),
            ("server \u{2192} client", &s.directions.server_to_client),
        ] {
            direction_human(&mut o, label, d, style);
        }
    }
    let _ = writeln!(o, "\n{}", summary(r));
    o
}

fn direction_human(o: &mut String, label: &str, d: &DirectionReport, style: Style) {
    let _ = writeln!(
        o,
        "  {label}: {} bytes in {} packets: {} ({} confidence)",
        d.bytes,
        d.packets,
        style.verdict(d.verdict),
        confidence_word(d.confidence)
    );
    if d.bytes == 0 && d.missing_bytes == 0 {
        return;
    }
    let _ = writeln!(o, "    why: {}", d.reason);
    let mut facts = vec![
        format!("entropy {:.2} bits/byte", d.entropy),
        format!("random bytes of this length average {:.2}", d.expected_random_entropy),
        format!("{:.0}% printable text", d.printable_ratio * 100.0),
    ];
    if let Some(c) = d.chi_square {
        facts.push(format!("chi-square {c:.0}"));
    }
    let _ = writeln!(o, "    {}", style.dim(&facts.join(", ")));
    if d.missing_bytes > 0 {
        let _ = writeln!(
            o,
            "    {} bytes missing from the capture in {} gap(s){}",
            d.missing_bytes,
            d.gaps.len(),
            if d.snaplen_cut_bytes > 0 {
                format!(" ({} cut off by the snaplen)", d.snaplen_cut_bytes)
            } else {
                String::new()
            }
        );
    }
    if d.retransmitted_bytes > 0 {
        let _ = writeln!(
            o,
            "    {} bytes retransmitted ({} retransmission(s) with different bytes)",
            d.retransmitted_bytes, d.conflicting_retransmissions
        );
    }
    if !d.messages.is_empty() {
        let total = d.messages.len() as u64 + d.unlisted_messages;
        let one = total == 1;
        let kinds = match d.message_mode {
            Some(Mode::Frames) if one => "rchat frame",
            Some(Mode::Frames) => "rchat frames",
            Some(Mode::Lines) if one => "line",
            Some(Mode::Lines) => "lines",
            Some(Mode::Runs) if one => "run of segments",
            Some(Mode::Runs) => "runs of segments",
            None if one => "message",
            None => "messages",
        };
        let counts = tally(d.messages.iter().map(|m| m.verdict));
        let list: Vec<String> = counts.iter().map(|(v, n)| format!("{n} {}", v.as_str())).collect();
        let _ = writeln!(o, "    {total} {kinds}: {}", list.join(", "));
    }
    if let Some(r) = &d.rchat {
        rchat_human(o, r, style);
    }
    let heading =
        if d.preview_truncated { "an eavesdropper reads (start)" } else { "an eavesdropper reads" };
    let _ = writeln!(o, "    {heading}:");
    if d.preview_format == "hex" {
        // Classic dump: offset, 16 bytes in hex, the same bytes as ASCII.
        let bytes = hex::decode(&d.preview).unwrap_or_default();
        for (i, line) in bytes.chunks(16).enumerate() {
            let hexes: Vec<String> = line.iter().map(|b| format!("{b:02x}")).collect();
            let ascii: String = line
                .iter()
                .map(|&b| if b.is_ascii_graphic() || b == b' ' { char::from(b) } else { '.' })
                .collect();
            let _ = writeln!(o, "      {:08x}  {:<47}  {}", i * 16, hexes.join(" "), ascii);
        }
    } else {
        for line in d.preview.split_inclusive("\\n") {
            let _ = writeln!(o, "      {line}");
        }
    }
    if d.preview_truncated {
        let _ = writeln!(o, "      {}", style.dim("... (--full shows everything)"));
    }
}

/// Frames listed one by one in the human report.
const FRAMES_SHOWN: usize = 20;

/// What the direction said in rchat's protocol: the handshake anyone can read, the frames,
/// decrypted text with `--key`, violations.
fn rchat_human(o: &mut String, r: &super::rchat::RchatReport, style: Style) {
    if let Some(h) = &r.hello {
        let _ = writeln!(
            o,
            "    rchat handshake: HELLO from \"{}\" with a {}-bit RSA public key, fingerprint {}",
            escape(h.name.as_bytes()),
            h.key_bits,
            h.fingerprint
        );
        let _ = writeln!(
            o,
            "      {}",
            style.dim("public keys travel in the clear: anyone on the path computes this too")
        );
    }
    let counts = tally(r.frames.iter().map(|f| f.kind));
    let list: Vec<String> = counts.iter().map(|(k, n)| format!("{n} {k}")).collect();
    let more = if r.unlisted_frames > 0 {
        format!(" (and {} more)", r.unlisted_frames)
    } else {
        String::new()
    };
    let _ = writeln!(o, "    rchat frames: {}{more}", list.join(", "));
    let messages: Vec<&super::rchat::FrameReport> =
        r.frames.iter().filter(|f| f.kind == "MESSAGE").collect();
    for f in messages.iter().take(FRAMES_SHOWN) {
        // A MESSAGE frame is always many bytes long.
        let mut line = format!(
            "      MESSAGE #{}: {} bytes, {} of {} bytes, {}-byte signature",
            f.seq.unwrap_or(0),
            f.length,
            plural(f.blocks.unwrap_or(0) as u64, "RSA-OAEP block", "RSA-OAEP blocks"),
            f.block_len.unwrap_or(0),
            f.signature_len.unwrap_or(0)
        );
        if let Some(v) = f.verdict {
            line.push_str(&format!(", looks like {}", v.as_str()));
        }
        if let Some(text) = &f.plaintext {
            line.push_str(&format!(": decrypted \"{}\"", escape(text.as_bytes())));
        } else if let Some(why) = &f.not_decrypted {
            line.push_str(&format!(": not decrypted ({why})"));
        }
        let _ = writeln!(o, "{line}");
    }
    if messages.len() > FRAMES_SHOWN {
        let _ = writeln!(
            o,
            "      {}",
            style.dim(&format!(
                "... {} more messages (--json lists them)",
                messages.len() - FRAMES_SHOWN
            ))
        );
    }
    if r.decrypted + r.not_decrypted > 0 {
        let _ = writeln!(
            o,
            "    with the given key: {} message(s) decrypted, {} not",
            r.decrypted, r.not_decrypted
        );
    }
    for v in &r.violations {
        let _ = writeln!(o, "    {} {v}", style.paint("1;33", "protocol violation:"));
    }
    for n in &r.notes {
        let _ = writeln!(o, "    note: {n}");
    }
}

/// The one-line summary: how many streams, and what they are.
pub fn summary(r: &FileReport) -> String {
    let counts = tally(r.streams.iter().map(|s| s.verdict));
    let order = [
        Verdict::Plaintext,
        Verdict::Mixed,
        Verdict::Encoded,
        Verdict::Binary,
        Verdict::Ciphertext,
        Verdict::Inconclusive,
        Verdict::Empty,
    ];
    let parts: Vec<String> = order
        .iter()
        .filter_map(|v| counts.iter().find(|(c, _)| c == v))
        .map(|(v, n)| format!("{n} {}", summary_phrase(*v)))
        .collect();
    let n = r.streams.len();
    format!(
        "{} on {}: {}",
        plural(n as u64, "stream", "streams"),
        ports_phrase(&r.ports),
        parts.join(", ")
    )
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
