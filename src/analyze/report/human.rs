//! The human report: what a student reads in the terminal.
//!
//! Owns the wording and layout of the human form (per stream: endpoints, times, counts, each
//! direction's verdict, reason and preview, what rchat's protocol said; then a one-line
//! summary), escaping of what an eavesdropper reads, and colour ([`Style`]). It reads only the
//! [`FileReport`]: everything it shows is in the JSON form too.

use std::fmt::Write as _;

use super::{DirectionReport, FileReport};
use crate::analyze::classify::{Confidence, Verdict, plural};
use crate::analyze::recognise::Part;
use crate::analyze::recognise::rchat::room::{CopyForm, MemberReport, RoomReport};
use crate::analyze::recognise::rchat::{FrameReport, RchatReport};
use crate::analyze::stream::messages::Mode;
use crate::escape::bytes as escape;
use crate::protocol::wire::MODE_ROOM;

/// How many times each value occurs, in the order each first occurs.
pub(super) fn tally<K: PartialEq>(items: impl Iterator<Item = K>) -> Vec<(K, usize)> {
    let mut counts: Vec<(K, usize)> = Vec::new();
    for item in items {
        match counts.iter_mut().find(|(k, _)| *k == item) {
            Some((_, n)) => *n += 1,
            None => counts.push((item, 1)),
        }
    }
    counts
}

/// What a stream of verdict `v` is, in the summary line.
pub(super) fn summary_phrase(v: Verdict) -> &'static str {
    match v {
        Verdict::Plaintext => "readable by anyone on the path",
        Verdict::Ciphertext => "ciphertext",
        Verdict::Encoded => "encoded (text that carries random-looking bytes)",
        Verdict::Binary => "binary",
        Verdict::Mixed => "mixed (several kinds of bytes)",
        Verdict::Inconclusive => "too short to tell",
        Verdict::Empty => "with no messages",
    }
}

/// A confidence in words.
pub(super) fn confidence_word(c: Confidence) -> &'static str {
    match c {
        Confidence::High => "high",
        Confidence::Medium => "medium",
        Confidence::Low => "low",
    }
}

/// How the report looks: terminal colours or none, and whether each direction's histogram
/// is sketched.
#[derive(Debug, Clone, Copy)]
pub struct Style {
    on: bool,
    histogram: bool,
}

impl Style {
    /// Colour when `on`; no histogram sketch.
    pub fn new(on: bool) -> Self {
        Style { on, histogram: false }
    }

    /// The same, with each direction's histogram sketched in one line when `on`.
    pub fn with_histogram(self, on: bool) -> Self {
        Style { histogram: on, ..self }
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

/// Seconds since the Unix epoch as a UTC date and time.
pub(super) fn timestamp(secs: f64) -> String {
    let whole = secs.floor();
    let nanos = ((secs - whole) * 1e9) as u32;
    match chrono::DateTime::from_timestamp(whole as i64, nanos) {
        Some(t) => t.format("%Y-%m-%d %H:%M:%S%.6f UTC").to_string(),
        None => format!("{secs:.6}"),
    }
}

/// `port 9999`, `ports 5000, 9999`, `any port`.
pub(super) fn ports_phrase(ports: &[u16]) -> String {
    match ports {
        [] => "any port".to_string(),
        [p] => format!("port {p}"),
        many => {
            let list: Vec<String> = many.iter().map(u16::to_string).collect();
            format!("ports {}", list.join(", "))
        }
    }
}

/// Where the traffic is when there is none on the ports analysed: the busiest other ports,
/// and the command that analyses the likeliest.
fn other_ports(o: &mut String, r: &FileReport) {
    if r.other_ports.is_empty() {
        let _ = writeln!(o, "It holds no TCP traffic on any other port either.");
        return;
    }
    let _ = writeln!(o, "The TCP ports it holds, busiest first:");
    for p in &r.other_ports {
        let looks = match p.looks_like {
            Some("rchat") => ", looks like rchat (frame magic)",
            Some(_) => ", looks like a text chat",
            None => "",
        };
        let _ = writeln!(
            o,
            "  port {:>5}: {}, {}, {}{looks}",
            p.port,
            plural(p.packets, "packet", "packets"),
            plural(p.bytes, "payload byte", "payload bytes"),
            plural(p.connections, "connection opened", "connections opened"),
        );
    }
    let best = r.other_ports.iter().find(|p| p.looks_like.is_some()).or(r.other_ports.first());
    if let Some(p) = best {
        let _ = writeln!(
            o,
            "Try: rchat analyze --port {} {}   (or --all-ports to see every stream)",
            p.port,
            escape(r.file.as_bytes())
        );
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
            other_ports(&mut o, r);
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
        let _ = writeln!(o, "  {} {}", style.bold("an eavesdropper:"), s.eavesdropper);
    }
    let _ = writeln!(o, "\n{}", summary(r));
    o
}

fn direction_human(o: &mut String, label: &str, d: &DirectionReport, style: Style) {
    // What was recognised comes before the verdict, which is about the messages alone.
    let named = d.protocol.as_ref().is_some_and(|p| p.name != "rchat")
        || (d.rchat.is_none() && !d.recognized.is_empty());
    if named {
        let _ = writeln!(o, "  {label}: {} bytes in {} packets", d.bytes, d.packets);
        if let Some(p) = &d.protocol {
            let _ = writeln!(o, "    protocol: {}", p.summary);
        }
        for k in &d.recognized {
            let loud = if k.kind == "private_key" {
                style.paint("1;31", "PRIVATE KEY: ")
            } else {
                String::new()
            };
            let _ = writeln!(
                o,
                "    {loud}key: {} ({}, {} at offset {}){}",
                super::key_phrase_short(k),
                k.format,
                plural(k.length, "byte", "bytes"),
                k.offset,
                k.fingerprint.as_deref().map(|f| format!(", fingerprint {f}")).unwrap_or_default()
            );
        }
        let _ = writeln!(
            o,
            "    messages: {} ({} confidence)",
            style.verdict(d.verdict),
            confidence_word(d.confidence)
        );
    } else {
        let _ = writeln!(
            o,
            "  {label}: {} bytes in {} packets: {} ({} confidence)",
            d.bytes,
            d.packets,
            style.verdict(d.verdict),
            confidence_word(d.confidence)
        );
    }
    if d.bytes == 0 && d.missing_bytes == 0 {
        return;
    }
    let _ = writeln!(o, "    why: {}", d.reason);
    if let Some(r) = &d.raw_rsa {
        let _ = writeln!(o, "    raw RSA: {}", r.explanation);
    }
    let mut facts = vec![
        format!("entropy {:.2} bits/byte", d.entropy),
        format!("random bytes of this length average {:.2}", d.expected_random_entropy),
        format!("{:.0}% printable text", d.printable_ratio * 100.0),
    ];
    if let Some(c) = d.chi_square {
        facts.push(format!("chi-square {c:.0}"));
    }
    if d.verdict != Verdict::Empty {
        let _ = writeln!(o, "    {}", style.dim(&facts.join(", ")));
    }
    let counts = d.histogram.counts();
    if style.histogram && counts.iter().any(|&c| c > 0) {
        let _ = writeln!(o, "    bytes 00 {} ff (random bytes: all \u{2584})", sketch(&counts));
    }
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
    if let Some(line) = messages_line(d) {
        let _ = writeln!(o, "    {line}");
    }
    if let Some(r) = &d.rchat {
        rchat_human(o, r, style);
    }
    preview_human(o, d, style);
}

/// `5 rchat frames: 1 key, 1 handshake, 2 ciphertext, 1 framing`: the messages of a direction
/// by kind and verdict (none when it has none).
pub(super) fn messages_line(d: &DirectionReport) -> Option<String> {
    if d.messages.is_empty() {
        return None;
    }
    let total = d.messages.len() as u64 + d.unlisted_messages;
    let one = total == 1;
    let kinds = match d.message_mode {
        Some(Mode::Frames) if one => "rchat frame",
        Some(Mode::Frames) => "rchat frames",
        Some(Mode::Lines) if one => "line",
        Some(Mode::Lines) => "lines",
        Some(Mode::Runs) if one => "run of segments",
        Some(Mode::Runs) => "runs of segments",
        Some(Mode::Tls) if one => "TLS record",
        Some(Mode::Tls) => "TLS records",
        Some(Mode::Ssh) if one => "SSH part",
        Some(Mode::Ssh) => "SSH parts",
        Some(Mode::Http) if one => "HTTP part",
        Some(Mode::Http) => "HTTP parts",
        Some(Mode::LengthPrefix) if one => "length-prefixed frame",
        Some(Mode::LengthPrefix) => "length-prefixed frames",
        None if one => "message",
        None => "messages",
    };
    let counts =
        tally(d.messages.iter().map(|m| (m.kind, (m.kind == Part::Message).then_some(m.verdict))));
    let list: Vec<String> = counts
        .iter()
        .map(|((k, v), n)| match v {
            Some(v) => format!("{n} {}", v.as_str()),
            None => format!("{n} {}", k.name()),
        })
        .collect();
    Some(format!("{total} {kinds}: {}", list.join(", ")))
}

/// What an eavesdropper reads: escaped text, or a hex dump.
fn preview_human(o: &mut String, d: &DirectionReport, style: Style) {
    let heading =
        if d.preview_truncated { "an eavesdropper reads (start)" } else { "an eavesdropper reads" };
    let _ = writeln!(o, "    {heading}:");
    for line in preview_lines(d) {
        let _ = writeln!(o, "      {line}");
    }
    if d.preview_truncated {
        let _ = writeln!(o, "      {}", style.dim("... (--full shows everything)"));
    }
}

/// The lines of what an eavesdropper reads: the escaped text cut after each `\n`, or a
/// classic hex dump (offset, 16 bytes in hex, the same bytes as ASCII).
pub(super) fn preview_lines(d: &DirectionReport) -> Vec<String> {
    if d.preview_format == "hex" {
        let bytes = hex::decode(&d.preview).unwrap_or_default();
        bytes
            .chunks(16)
            .enumerate()
            .map(|(i, line)| {
                let hexes: Vec<String> = line.iter().map(|b| format!("{b:02x}")).collect();
                let ascii: String = line
                    .iter()
                    .map(|&b| if b.is_ascii_graphic() || b == b' ' { char::from(b) } else { '.' })
                    .collect();
                format!("{:08x}  {:<47}  {}", i * 16, hexes.join(" "), ascii)
            })
            .collect()
    } else {
        d.preview.split_inclusive("\\n").map(str::to_string).collect()
    }
}

/// Block characters from low to high.
const BLOCKS: [char; 8] = [
    '\u{2581}', '\u{2582}', '\u{2583}', '\u{2584}', '\u{2585}', '\u{2586}', '\u{2587}', '\u{2588}',
];

/// A byte-value histogram in one line: 64 columns of four byte values each (0x00 to 0xff),
/// a space where none of the four occurs, else a block as high as their count, scaled so that
/// random bytes of the same length would stand at half height (`\u{2584}`); a column of twice
/// that or more is a full block.
pub fn sketch(counts: &[u64; 256]) -> String {
    let columns: Vec<u64> = counts.chunks(4).map(|c| c.iter().sum()).collect();
    let n: u64 = columns.iter().sum();
    let top = 2.0 * n as f64 / columns.len() as f64;
    columns
        .iter()
        .map(|&c| {
            if c == 0 || top <= 0.0 {
                return ' ';
            }
            let level = (c as f64 / top * 8.0).ceil().clamp(1.0, 8.0) as usize;
            BLOCKS.get(level - 1).copied().unwrap_or(' ')
        })
        .collect()
}

/// Frames listed one by one in the human report.
const FRAMES_SHOWN: usize = 20;

/// What the direction said in rchat's protocol: the handshake anyone can read, the frames,
/// decrypted text with `--key`, violations.
fn rchat_human(o: &mut String, r: &RchatReport, style: Style) {
    if let Some(h) = &r.hello {
        let host = if h.mode == MODE_ROOM { "; mode 2: the host of a room" } else { "" };
        let _ = writeln!(
            o,
            "    rchat handshake: HELLO from \"{}\" with a {}-bit RSA public key, fingerprint {}{host}",
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
    let messages: Vec<&FrameReport> = r.frames.iter().filter(|f| f.kind == "MESSAGE").collect();
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
    if let Some(room) = &r.room {
        room_human(o, r, room, style);
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

/// `member 2 "bob"`, the name as the room knows it (escaped), or `member 2`.
fn member_phrase(id: u16, room: &RoomReport) -> String {
    match room.members.iter().find(|m| m.id == id) {
        Some(m) => format!("member {id} \"{}\"", escape(m.name.as_bytes())),
        None => format!("member {id}"),
    }
}

/// `member 0 "teacher", 2048-bit key SHA256:...`.
fn member_line(m: &MemberReport) -> String {
    let bits = m.key_bits.map_or_else(|| "malformed key".to_string(), |b| format!("{b}-bit key"));
    format!("member {} \"{}\", {bits} {}", m.id, escape(m.name.as_bytes()), m.fingerprint)
}

/// One line of what a room's frames say ([`room_lines`]).
pub(super) struct RoomLine {
    /// 0 for a frame, 1 for a member its ROSTER lists.
    pub(super) depth: usize,
    /// The line, captured text escaped.
    pub(super) text: String,
    /// A line that says how many more there are.
    pub(super) more: bool,
}

/// What a room's frames say in the clear, one line each (the members of a ROSTER too), with
/// the decrypted text or why it is not; names as `room` knows them, escaped.
pub(super) fn room_lines(r: &RchatReport, room: &RoomReport) -> Vec<RoomLine> {
    let mut out = Vec::new();
    let mut line =
        |depth: usize, text: String, more: bool| out.push(RoomLine { depth, text, more });
    let frames: Vec<&FrameReport> = r.frames.iter().filter(|f| f.room.is_some()).collect();
    for f in frames.iter().take(FRAMES_SHOWN) {
        let Some(rf) = f.room.as_deref() else { continue };
        let seq = f.seq.unwrap_or(0);
        match f.kind {
            "ROSTER" => {
                let to = rf.member_id.map(|id| member_phrase(id, room)).unwrap_or_default();
                let n = plural(rf.members.len() as u64, "member", "members");
                line(
                    0,
                    format!("ROSTER #{seq}: {} bytes, to {to}; {n} named in the clear:", f.length),
                    false,
                );
                for m in rf.members.iter().take(FRAMES_SHOWN) {
                    line(1, member_line(m), false);
                }
                if rf.members.len() > FRAMES_SHOWN {
                    let more = rf.members.len() - FRAMES_SHOWN;
                    line(1, format!("... {more} more members (--json lists them)"), true);
                }
            }
            "JOINED" => {
                for m in &rf.members {
                    line(0, format!("JOINED #{seq}: {}", member_line(m)), false);
                }
            }
            "LEFT" => {
                let who = rf.member_id.map(|id| member_phrase(id, room)).unwrap_or_default();
                let why = escape(rf.reason.as_deref().unwrap_or_default().as_bytes());
                line(0, format!("LEFT #{seq}: {who} (\"{why}\")"), false);
            }
            _ => {
                let from = rf.sender.map(|id| member_phrase(id, room)).unwrap_or_default();
                let to = if rf.private == Some(true) { "private" } else { "to everyone" };
                let copies: Vec<String> = rf
                    .recipients
                    .iter()
                    .map(|c| match c.form {
                        CopyForm::Digest => format!("{} (digest)", member_phrase(c.id, room)),
                        CopyForm::Ciphertext => format!(
                            "{} ({} of {} bytes)",
                            member_phrase(c.id, room),
                            plural(
                                c.blocks.unwrap_or(0) as u64,
                                "RSA-OAEP block",
                                "RSA-OAEP blocks"
                            ),
                            c.block_len.unwrap_or(0)
                        ),
                    })
                    .collect();
                let mut text = format!(
                    "ROOM MESSAGE #{seq} from {from}, {to}: {} bytes, {} for {}; {}-byte signature",
                    f.length,
                    if copies.len() == 1 { "copy" } else { "copies" },
                    copies.join(", "),
                    f.signature_len.unwrap_or(0)
                );
                if let Some(v) = f.verdict {
                    text.push_str(&format!(", looks like {}", v.as_str()));
                }
                if let Some(plain) = &f.plaintext {
                    text.push_str(&format!(": decrypted \"{}\"", escape(plain.as_bytes())));
                } else if let Some(why) = &f.not_decrypted {
                    text.push_str(&format!(": not decrypted ({why})"));
                }
                line(0, text, false);
            }
        }
    }
    if frames.len() > FRAMES_SHOWN {
        let more = frames.len() - FRAMES_SHOWN;
        line(0, format!("... {more} more room frames (--json lists them)"), true);
    }
    out
}

/// The room's frames in the terminal, under the direction's other rchat lines.
fn room_human(o: &mut String, r: &RchatReport, room: &RoomReport, style: Style) {
    let id = room.room_id.as_deref().unwrap_or("not captured on this connection");
    let _ = writeln!(o, "    rchat room: id {id}");
    for l in room_lines(r, room) {
        let text = if l.more { style.dim(&l.text) } else { l.text };
        let _ = writeln!(o, "      {}{text}", "  ".repeat(l.depth));
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
    fn the_sketch_shows_few_values_or_all_of_them() {
        // Text: a few columns, one of them (the space and its neighbours) full.
        let mut text = [0u64; 256];
        for b in b"see you at six by the old oak tree" {
            text[usize::from(*b)] += 1;
        }
        let line = sketch(&text);
        assert_eq!(line.chars().count(), 64);
        assert_eq!(line.chars().filter(|&c| c != ' ').count(), 8, "{line}");
        assert!(line.contains('\u{2588}'));
        // Every value equally often: every column at half height.
        assert_eq!(sketch(&[3; 256]), "\u{2584}".repeat(64));
        assert_eq!(sketch(&[0; 256]), " ".repeat(64));
    }
}
