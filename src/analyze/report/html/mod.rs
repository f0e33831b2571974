//! The HTML report: one self-contained page for a run, for the projector and the lab report.
//!
//! Owns the page's layout and wording: a header with the legend of the verdicts, an overview
//! of every stream's histograms when there are several, then per capture file and per stream
//! what the human report says (endpoints, times, each direction's verdict, reason, figures,
//! protocol and keys, rchat's frames) with the pictures of [`charts`]: each direction's
//! byte-value histogram side by side, the timeline of the messages and their entropy against
//! their length; and, folded away, what an eavesdropper reads. It reads only the
//! [`FileReport`]s, like the human and JSON forms. The page loads nothing (no script, font or
//! picture from anywhere: its Content-Security-Policy forbids it), so it works from a USB
//! stick without a network, and its style sheet lays it out for A4 paper. Every value goes
//! into the markup through [`markup`], which escapes it; text from a capture was made visible
//! by [`crate::escape`] first.

pub mod charts;
pub mod markup;

use charts::Size;
use markup::{Captured, Fixed, Html, emit};

use super::human::{
    confidence_word, messages_line, ports_phrase, preview_lines, room_lines, summary, tally,
    timestamp,
};
use super::{DirectionReport, FileReport, StreamReport};
use crate::analyze::classify::Verdict;
use crate::analyze::recognise::rchat::RchatReport;

/// One capture of the run, in the order given: its report, or the error line it gave.
#[derive(Debug, Clone, Copy)]
pub enum Entry<'a> {
    /// The file's report.
    Report(&'a FileReport),
    /// A file that could not be read as a capture: its error, as one line.
    Failed(&'a str),
}

/// Frames of rchat's protocol listed one by one (as in the human report).
const FRAMES_SHOWN: usize = 20;

/// The page for the files of one run, as a string (UTF-8, a whole document).
pub fn page(entries: &[Entry<'_>]) -> String {
    let reports: Vec<&FileReport> = entries
        .iter()
        .filter_map(|e| match e {
            Entry::Report(r) => Some(*r),
            Entry::Failed(_) => None,
        })
        .collect();
    let names: Vec<String> = entries
        .iter()
        .map(|e| match e {
            Entry::Report(r) => escaped(&r.file),
            Entry::Failed(line) => escaped(line),
        })
        .collect();
    let mut p = Html::new();
    p.raw(
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n\
         <meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; \
         style-src 'unsafe-inline'\">\n<meta name=\"generator\" content=\"rchat analyze\">\n",
    );
    emit!(p, "<title>rchat analyze: {}</title>\n<style>\n", names.join(", "));
    p.raw(include_str!("page.css"));
    p.raw("</style>\n</head>\n<body>\n");
    p.push(&charts::defs());
    header(&mut p, entries.len());
    let streams: usize = reports.iter().map(|r| r.streams.len()).sum();
    if streams > 1 {
        glance(&mut p, &reports);
    }
    p.raw("<main>\n");
    let mut index = 0;
    for e in entries {
        match e {
            Entry::Report(r) => {
                file_section(&mut p, r, index);
                index += 1;
            }
            Entry::Failed(line) => {
                emit!(
                    p,
                    "<section class=\"file failed\"><h2>Not a capture</h2>\
                     <p class=\"warning\">{}</p></section>\n",
                    escaped(line)
                );
            }
        }
    }
    p.raw("</main>\n<footer>\n");
    for r in &reports {
        emit!(p, "<p><span class=\"mono\">{}</span>: {}</p>\n", escaped(&r.file), summary(r));
    }
    emit!(
        p,
        "<p>Made by rchat analyze {} from the capture files alone. The page loads nothing \
         from the network and runs no script.</p>\n</footer>\n</body>\n</html>\n",
        env!("CARGO_PKG_VERSION")
    );
    p.into_string()
}

/// Text that is not the report's own wording (a file name as given): made visible first.
fn escaped(text: &str) -> String {
    crate::escape::text(text).into_owned()
}

/// What a verdict means, for the legend.
fn meaning(v: Verdict) -> &'static str {
    match v {
        Verdict::Plaintext => "readable by anyone on the path",
        Verdict::Ciphertext => "looks like random bytes: encrypted (or compressed)",
        Verdict::Encoded => "text that carries random-looking bytes (base64, hex, numbers)",
        Verdict::Binary => "not text, but structured, not random",
        Verdict::Mixed => "messages of several kinds",
        Verdict::Inconclusive => "too short to tell",
        Verdict::Empty => "no message bytes",
    }
}

fn badge(v: Verdict) -> Html {
    let mut h = Html::new();
    emit!(h, "<span class=\"verdict v-{}\">{}</span>", v.as_str(), v.as_str());
    h
}

fn header(p: &mut Html, files: usize) {
    emit!(
        p,
        "<header>\n<h1>What an eavesdropper sees</h1>\n<p class=\"meta\">rchat analyze {}, {}\
         </p>\n<ul class=\"legend-list\">",
        env!("CARGO_PKG_VERSION"),
        if files == 1 { "one capture file".to_string() } else { format!("{files} capture files") }
    );
    for v in charts::VERDICTS {
        emit!(p, "<li>{} {}</li>", badge(v), meaning(v));
    }
    p.raw(
        "</ul>\n<p class=\"meta\">How to read the pictures: in a <b>histogram</b> each of the \
         256 bars is one byte value, 00 to ff; readable text uses a few values (the shaded \
         printable ones) very unevenly, while ciphertext uses all 256 about equally, close to \
         the dashed line where random bytes of the same length would put every bar. The \
         <b>timeline</b> shows each message when it was sent and how long it was: what stays \
         visible even when the text is hidden. The <b>entropy</b> chart puts each message's \
         entropy against its length: short messages cannot reach the random curve, and there \
         the band of text and the curve of random bytes meet.</p>\n</header>\n",
    );
}

/// Every stream's two histograms in a table, to compare them at a glance.
fn glance(p: &mut Html, reports: &[&FileReport]) {
    p.raw(
        "<nav>\n<h2>At a glance</h2>\n<table class=\"glance\"><thead><tr><th>stream</th>\
         <th>verdict</th><th>client \u{2192} server</th><th>server \u{2192} client</th></tr>\
         </thead><tbody>\n",
    );
    for (i, r) in reports.iter().enumerate() {
        for s in &r.streams {
            let (c2s, s2c) = (&s.directions.client_to_server, &s.directions.server_to_client);
            emit!(
                p,
                "<tr><td><a href=\"#f{}-s{}\"><span class=\"mono\">{}</span> stream {}</a><br>\
                 <small>{} \u{2192} {}</small></td><td>{}</td><td class=\"pic\">{}</td>\
                 <td class=\"pic\">{}</td></tr>\n",
                i,
                s.id,
                escaped(&r.file),
                s.id,
                s.client,
                s.server,
                badge(s.verdict),
                charts::histogram(c2s, "client \u{2192} server", Size::Mini),
                charts::histogram(s2c, "server \u{2192} client", Size::Mini)
            );
        }
    }
    p.raw("</tbody></table>\n</nav>\n");
}

fn file_section(p: &mut Html, r: &FileReport, index: usize) {
    let links = if r.link_types.is_empty() { "none".to_string() } else { r.link_types.join(", ") };
    emit!(
        p,
        "<section class=\"file\" id=\"f{}\">\n<h2><span class=\"mono\">{}</span></h2>\n\
         <p class=\"meta\">{} capture, {} packets, link type {}</p>\n",
        index,
        escaped(&r.file),
        r.format,
        r.packets,
        escaped(&links)
    );
    for w in &r.warnings {
        emit!(p, "<p class=\"warning\"><b>warning:</b> {}</p>\n", escaped(w));
    }
    if r.streams.is_empty() {
        emit!(p, "<p>No TCP traffic on {} in this capture.</p>\n", ports_phrase(&r.ports));
        other_ports(p, r);
    }
    for s in &r.streams {
        stream_section(p, s, index);
    }
    emit!(p, "<p><b>{}</b></p>\n</section>\n", summary(r));
}

/// The busiest other ports, when nothing is on the ports analysed.
fn other_ports(p: &mut Html, r: &FileReport) {
    if r.other_ports.is_empty() {
        if !r.ports.is_empty() {
            p.raw("<p>It holds no TCP traffic on any other port either.</p>\n");
        }
        return;
    }
    p.raw(
        "<table class=\"ports\"><thead><tr><th>port</th><th>packets</th><th>payload bytes</th>\
         <th>connections opened</th><th>looks like</th></tr></thead><tbody>\n",
    );
    for o in &r.other_ports {
        let looks = match o.looks_like {
            Some("rchat") => "rchat (frame magic)",
            Some(_) => "a text chat",
            None => "",
        };
        emit!(
            p,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>\n",
            o.port,
            o.packets,
            o.bytes,
            o.connections,
            looks
        );
    }
    p.raw("</tbody></table>\n");
    let best = r.other_ports.iter().find(|o| o.looks_like.is_some()).or(r.other_ports.first());
    if let Some(o) = best {
        emit!(
            p,
            "<p>Try <code>rchat analyze --port {} {}</code> (or <code>--all-ports</code>).</p>\n",
            o.port,
            escaped(&r.file)
        );
    }
}

fn stream_section(p: &mut Html, s: &StreamReport, file: usize) {
    emit!(
        p,
        "<article class=\"stream\" id=\"f{}-s{}\">\n<h3>Stream {}: <span class=\"mono\">{} \
         \u{2192} {}</span> {}</h3>\n<p class=\"meta\">started {}, lasted {} s</p>\n\
         <p class=\"eavesdropper\"><b>An eavesdropper:</b> {}</p>\n<div class=\"dirs\">\n",
        file,
        s.id,
        s.id,
        s.client,
        s.server,
        badge(s.verdict),
        timestamp(s.start),
        Fixed((s.end - s.start).max(0.0), 3),
        s.eavesdropper
    );
    let dirs = [
        ("client \u{2192} server", &s.client, &s.directions.client_to_server),
        ("server \u{2192} client", &s.server, &s.directions.server_to_client),
    ];
    for (label, from, d) in dirs {
        direction_section(p, label, from, d);
    }
    p.raw("</div>\n");
    emit!(
        p,
        "<figure>{}<figcaption>Each message when it was sent and how long it was, coloured by \
         its verdict: encryption hides the words, not who spoke when, nor how much.\
         </figcaption></figure>\n",
        charts::timeline(s, &s.client, &s.server)
    );
    emit!(
        p,
        "<figure>{}<figcaption>The entropy of each message against its length. Random bytes \
         follow the black curve, which only nears 8 bits per byte for long messages; text \
         stays in the shaded band. Under 16 bytes the two meet: nobody can tell them apart by \
         the numbers.</figcaption></figure>\n</article>\n",
        charts::entropy_length(s, &s.client, &s.server)
    );
}

fn direction_section(p: &mut Html, label: &str, from: &str, d: &DirectionReport) {
    emit!(
        p,
        "<section class=\"direction\">\n<h4>{} <small class=\"mono\">from {}</small></h4>\n\
         <p>{} bytes in {} packets</p>\n",
        label,
        from,
        d.bytes,
        d.packets
    );
    // As in the terminal report: rchat's own handshake is told with its frames below.
    if let Some(proto) = d.protocol.as_ref().filter(|p| p.name != "rchat") {
        emit!(p, "<p>protocol: {}</p>\n", proto.summary);
    }
    if d.rchat.is_none() && !d.recognized.is_empty() {
        p.raw("<ul class=\"keys\">");
        for k in &d.recognized {
            let loud = if k.kind == "private_key" { "PRIVATE KEY: " } else { "" };
            emit!(
                p,
                "<li><b>{}</b>key: {} ({}, {} bytes at offset {}){}</li>",
                loud,
                super::key_phrase_short(k),
                k.format,
                k.length,
                k.offset,
                k.fingerprint.as_deref().map(|f| format!(", fingerprint {f}")).unwrap_or_default()
            );
        }
        p.raw("</ul>\n");
    }
    emit!(
        p,
        "<p class=\"verdict-line\">messages: {} ({} confidence)</p>\n",
        badge(d.verdict),
        confidence_word(d.confidence)
    );
    let sent = d.bytes > 0 || d.missing_bytes > 0;
    if sent {
        emit!(p, "<p class=\"why\"><b>why:</b> {}</p>\n", d.reason);
        if let Some(r) = &d.raw_rsa {
            emit!(p, "<p><b>raw RSA:</b> {}</p>\n", r.explanation);
        }
        if d.verdict != Verdict::Empty {
            let chi = d.chi_square.map(|c| format!(", chi-square {c:.0}")).unwrap_or_default();
            emit!(
                p,
                "<p class=\"facts\">entropy {} bits/byte, random bytes of this length average \
                 {}, {}% printable text{}</p>\n",
                Fixed(d.entropy, 2),
                Fixed(d.expected_random_entropy, 2),
                Fixed(d.printable_ratio * 100.0, 0),
                chi
            );
        }
        if d.missing_bytes > 0 {
            emit!(
                p,
                "<p>{} bytes missing from the capture in {} gap(s){}</p>\n",
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
            emit!(
                p,
                "<p>{} bytes retransmitted ({} retransmission(s) with different bytes)</p>\n",
                d.retransmitted_bytes,
                d.conflicting_retransmissions
            );
        }
    }
    emit!(p, "<figure>{}</figure>\n", charts::histogram(d, label, Size::Full));
    if let Some(line) = messages_line(d) {
        emit!(p, "<p>{}</p>\n", line);
    }
    if let Some(r) = &d.rchat {
        rchat_section(p, r);
    }
    if sent {
        preview(p, d);
    }
    p.raw("</section>\n");
}

/// What the direction said in rchat's protocol.
fn rchat_section(p: &mut Html, r: &RchatReport) {
    if let Some(h) = &r.hello {
        emit!(
            p,
            "<p>rchat handshake: HELLO from \"{}\" with a {}-bit RSA public key, fingerprint \
             <span class=\"mono\">{}</span> <small>(public keys travel in the clear: anyone on \
             the path computes this too)</small></p>\n",
            Captured(h.name.as_bytes()),
            h.key_bits,
            h.fingerprint
        );
    }
    let counts = tally(r.frames.iter().map(|f| f.kind));
    let list: Vec<String> = counts.iter().map(|(k, n)| format!("{n} {k}")).collect();
    emit!(p, "<p>rchat frames: {}</p>\n", list.join(", "));
    let messages: Vec<_> = r.frames.iter().filter(|f| f.kind == "MESSAGE").collect();
    if !messages.is_empty() {
        p.raw("<ul class=\"frames\">");
        for f in messages.iter().take(FRAMES_SHOWN) {
            emit!(
                p,
                "<li>MESSAGE #{}: {} bytes, {} RSA-OAEP block(s) of {} bytes{}",
                f.seq.unwrap_or(0),
                f.length,
                f.blocks.unwrap_or(0),
                f.block_len.unwrap_or(0),
                f.verdict.map(|v| format!(", looks like {}", v.as_str())).unwrap_or_default()
            );
            if let Some(text) = &f.plaintext {
                emit!(p, ": decrypted <q class=\"mono\">{}</q>", Captured(text.as_bytes()));
            } else if let Some(why) = &f.not_decrypted {
                emit!(p, ": not decrypted ({})", escaped(why));
            }
            p.raw("</li>");
        }
        if messages.len() > FRAMES_SHOWN {
            emit!(p, "<li>{} more (--json lists them)</li>", messages.len() - FRAMES_SHOWN);
        }
        p.raw("</ul>\n");
    }
    if let Some(room) = &r.room {
        let id = room.room_id.as_deref().unwrap_or("not captured on this connection");
        emit!(p, "<p>rchat room: id <span class=\"mono\">{}</span></p>\n", id);
        let lines = room_lines(r, room);
        if !lines.is_empty() {
            p.raw("<ul class=\"frames\">");
            for l in lines {
                // The report's lines hold captured text already made visible.
                match l.depth {
                    0 => emit!(p, "<li>{}</li>", l.text),
                    _ => emit!(p, "<li class=\"member\">{}</li>", l.text),
                }
            }
            p.raw("</ul>\n");
        }
    }
    if r.decrypted + r.not_decrypted > 0 {
        emit!(
            p,
            "<p>with the given key: {} message(s) decrypted, {} not</p>\n",
            r.decrypted,
            r.not_decrypted
        );
    }
    for v in &r.violations {
        emit!(p, "<p class=\"warning\">protocol violation: {}</p>\n", escaped(v));
    }
    for n in &r.notes {
        emit!(p, "<p>note: {}</p>\n", escaped(n));
    }
}

/// What an eavesdropper reads, folded away: escaped text, or a hex dump.
fn preview(p: &mut Html, d: &DirectionReport) {
    let what = if d.preview_format == "hex" { "as hex: not text" } else { "as text" };
    let part = if d.preview_truncated { ", the start (--full shows everything)" } else { "" };
    emit!(
        p,
        "<details class=\"view\"><summary>What an eavesdropper reads ({}{})</summary>\
         <pre class=\"view\">",
        what,
        part
    );
    for line in preview_lines(d) {
        emit!(p, "{}\n", line);
    }
    p.raw("</pre></details>\n");
}
