//! The page's pictures, drawn as inline SVG: the byte-value histogram of a direction, the
//! timeline of a stream's messages, and the entropy of each message against its length.
//!
//! Owns the charts' geometry (scales, ticks, axes, legends), the palette (Okabe and Ito's
//! eight colours, which the common forms of colour blindness still tell apart, each verdict
//! also drawn with its own fill pattern and named in a legend) and the band that English text
//! occupies in the entropy chart, measured on a text shipped with the program. Every chart is
//! an `<svg class="chart KIND">` with a `viewBox`, so it scales to its column and prints
//! without being cut; each mark carries a `<title>` (shown on hover) and the numbers it is
//! drawn from as `data-` attributes. It reads the report and writes markup through
//! `emit!`, never anything else.

use std::sync::OnceLock;

use super::markup::{Fixed, Html, emit};
use crate::analyze::classify::{MIN_BYTES, Verdict, expected_random_entropy, shannon_entropy};
use crate::analyze::recognise::Part;
use crate::analyze::report::{DirectionReport, MessageReport, StreamReport};

/// A verdict's colour (Okabe-Ito).
pub fn colour(v: Verdict) -> &'static str {
    match v {
        Verdict::Plaintext => "#D55E00",
        Verdict::Ciphertext => "#0072B2",
        Verdict::Encoded => "#CC79A7",
        Verdict::Binary => "#009E73",
        Verdict::Mixed => "#E69F00",
        Verdict::Inconclusive => "#7F7F7F",
        Verdict::Empty => "#BBBBBB",
    }
}

/// The grey of parts that are not messages (keys, handshakes, framing).
const APART: &str = "#555555";

/// Every verdict, in the order legends list them.
pub const VERDICTS: [Verdict; 7] = [
    Verdict::Plaintext,
    Verdict::Ciphertext,
    Verdict::Encoded,
    Verdict::Binary,
    Verdict::Mixed,
    Verdict::Inconclusive,
    Verdict::Empty,
];

/// The fill of a message of verdict `v` in the timeline: its colour with its own pattern, so
/// that the verdict can be told apart in grey print too.
fn fill_of(v: Verdict) -> &'static str {
    match v {
        Verdict::Plaintext => "url(#fill-plaintext)",
        Verdict::Ciphertext => "url(#fill-ciphertext)",
        Verdict::Encoded => "url(#fill-encoded)",
        Verdict::Binary => "url(#fill-binary)",
        Verdict::Mixed => "url(#fill-mixed)",
        Verdict::Inconclusive => "url(#fill-inconclusive)",
        Verdict::Empty => "url(#fill-empty)",
    }
}

/// The patterns the charts fill with, once per page in a hidden `<svg>` (not a chart).
pub fn defs() -> Html {
    let mut h = Html::new();
    h.raw(
        "<svg class=\"defs\" width=\"0\" height=\"0\" aria-hidden=\"true\" focusable=\"false\">\
         <defs>",
    );
    for v in VERDICTS {
        let c = colour(v);
        emit!(
            h,
            "<pattern id=\"fill-{}\" width=\"6\" height=\"6\" patternUnits=\"userSpaceOnUse\">",
            v.as_str()
        );
        match v {
            // Readable: solid, the loudest.
            Verdict::Plaintext => emit!(h, "<rect width=\"6\" height=\"6\" fill=\"{}\"/>", c),
            Verdict::Ciphertext => emit!(
                h,
                "<rect width=\"6\" height=\"6\" fill=\"{}\"/>\
                 <path d=\"M0 6L6 0M-1 1L1 -1M5 7L7 5\" stroke=\"#fff\" stroke-width=\"1.2\"/>",
                c
            ),
            Verdict::Encoded => emit!(
                h,
                "<rect width=\"6\" height=\"6\" fill=\"{}\"/>\
                 <circle cx=\"3\" cy=\"3\" r=\"1.3\" fill=\"#fff\"/>",
                c
            ),
            Verdict::Binary => emit!(
                h,
                "<rect width=\"6\" height=\"6\" fill=\"{}\"/>\
                 <path d=\"M0 3H6\" stroke=\"#fff\" stroke-width=\"1.2\"/>",
                c
            ),
            Verdict::Mixed => emit!(
                h,
                "<rect width=\"6\" height=\"6\" fill=\"{}\"/>\
                 <path d=\"M0 0L6 6M6 0L0 6\" stroke=\"#fff\" stroke-width=\"1\"/>",
                c
            ),
            Verdict::Inconclusive | Verdict::Empty => emit!(
                h,
                "<rect width=\"6\" height=\"6\" fill=\"#fff\"/>\
                 <path d=\"M0 6L6 0\" stroke=\"{}\" stroke-width=\"1.5\"/>",
                c
            ),
        }
        h.raw("</pattern>");
    }
    emit!(
        h,
        "<pattern id=\"fill-apart\" width=\"4\" height=\"4\" patternUnits=\"userSpaceOnUse\">\
         <rect width=\"4\" height=\"4\" fill=\"#fff\"/>\
         <path d=\"M2 0V4\" stroke=\"{}\" stroke-width=\"1.5\"/></pattern>",
        APART
    );
    h.raw("</defs></svg>");
    h
}

/// `max` rounded up to a round number, and the step of about `ticks` ticks below it.
fn nice_scale(max: f64, ticks: f64) -> (f64, f64) {
    let max = if max.is_finite() && max > 0.0 { max } else { 1.0 };
    let raw = max / ticks;
    let magnitude = 10f64.powf(raw.log10().floor());
    let step = [1.0, 2.0, 2.5, 5.0, 10.0]
        .iter()
        .map(|m| m * magnitude)
        .find(|s| *s >= raw)
        .unwrap_or(10.0 * magnitude);
    ((max / step).ceil() * step, step)
}

/// Steps of `step` from 0 to `top` (both included).
fn steps(top: f64, step: f64) -> impl Iterator<Item = f64> {
    let n = if step > 0.0 { (top / step).round() as u64 } else { 0 };
    (0..=n).map(move |i| i as f64 * step)
}

/// A number for an axis: no decimals when it is whole.
fn tick_label(v: f64) -> Fixed {
    if (v - v.round()).abs() < 1e-9 { Fixed(v, 0) } else { Fixed(v, 1) }
}

/// How big a histogram is drawn.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Size {
    /// With axes, their titles and a legend.
    Full,
    /// A thumbnail for the overview: bars, the random line and the printable band.
    Mini,
}

/// A direction's byte-value histogram: 256 bars from 0x00 to 0xff coloured by the direction's
/// verdict, printable ASCII (0x20 to 0x7e) shaded, and the level random bytes of the same
/// length would give each value (a 256th of them).
pub fn histogram(d: &DirectionReport, label: &str, size: Size) -> Html {
    let counts = d.histogram.counts();
    let n: u64 = counts.iter().sum();
    let full = size == Size::Full;
    let (w, h) = if full { (560.0, 250.0) } else { (560.0, 120.0) };
    let (x0, x1) = if full { (54.0, w - 10.0) } else { (6.0, w - 6.0) };
    let (top, bottom) = if full { (40.0, h - 44.0) } else { (6.0, h - 6.0) };
    let flat = n as f64 / 256.0;
    let most = counts.iter().copied().max().unwrap_or(0) as f64;
    let (ymax, ystep) = nice_scale(most.max(2.0 * flat).max(1.0), 4.0);
    let bw = (x1 - x0) / 256.0;
    let x = |b: f64| x0 + b * bw;
    let y = |c: f64| bottom - c / ymax * (bottom - top);
    let kind = if full { "histogram" } else { "histogram mini" };
    let colour = colour(d.verdict);
    let mut s = Html::new();
    emit!(
        s,
        "<svg class=\"chart {}\" viewBox=\"0 0 {} {}\" role=\"img\" data-bytes=\"{}\" \
         data-verdict=\"{}\"><title>Byte values of {}: {} bytes, {}</title>",
        kind,
        Fixed(w, 0),
        Fixed(h, 0),
        n,
        d.verdict.as_str(),
        label,
        n,
        d.verdict.as_str()
    );
    // Printable ASCII, where text lives.
    emit!(
        s,
        "<rect class=\"printable\" x=\"{}\" y=\"{}\" width=\"{}\" height=\"{}\" fill=\"#ececec\"/>",
        Fixed(x(32.0), 2),
        Fixed(top, 2),
        Fixed(95.0 * bw, 2),
        Fixed(bottom - top, 2)
    );
    if full {
        for t in steps(ymax, ystep) {
            emit!(
                s,
                "<line x1=\"{}\" x2=\"{}\" y1=\"{}\" y2=\"{}\" stroke=\"#d0d0d0\" \
                 stroke-width=\"0.6\"/><text x=\"{}\" y=\"{}\" text-anchor=\"end\" \
                 class=\"tick\">{}</text>",
                Fixed(x0, 2),
                Fixed(x1, 2),
                Fixed(y(t), 2),
                Fixed(y(t), 2),
                Fixed(x0 - 5.0, 2),
                Fixed(y(t) + 4.0, 2),
                tick_label(t)
            );
        }
        emit!(
            s,
            "<text x=\"{}\" y=\"{}\" text-anchor=\"middle\" class=\"note\">printable ASCII</text>",
            Fixed(x(79.0), 2),
            Fixed(top + 12.0, 2)
        );
    }
    s.raw("<g class=\"bars\">");
    for (b, &c) in counts.iter().enumerate() {
        let height = c as f64 / ymax * (bottom - top);
        emit!(
            s,
            "<rect class=\"bar\" data-byte=\"{}\" data-count=\"{}\" x=\"{}\" y=\"{}\" \
             width=\"{}\" height=\"{}\" fill=\"{}\"><title>{}: {}</title></rect>",
            b,
            c,
            Fixed(x(b as f64), 3),
            Fixed(bottom - height, 3),
            Fixed(bw, 3),
            Fixed(height, 3),
            colour,
            byte_name(b),
            plural(c, "time", "times")
        );
    }
    s.raw("</g>");
    if n > 0 {
        emit!(
            s,
            "<line class=\"random\" x1=\"{}\" x2=\"{}\" y1=\"{}\" y2=\"{}\" stroke=\"#000\" \
             stroke-width=\"1.4\" stroke-dasharray=\"6 3\"><title>random bytes of this length: \
             about {} of each value</title></line>",
            Fixed(x0, 2),
            Fixed(x1, 2),
            Fixed(y(flat), 2),
            Fixed(y(flat), 2),
            Fixed(flat, 1)
        );
    } else {
        emit!(
            s,
            "<text x=\"{}\" y=\"{}\" text-anchor=\"middle\" class=\"note\">no message bytes</text>",
            Fixed((x0 + x1) / 2.0, 2),
            Fixed((top + bottom) / 2.0, 2)
        );
    }
    if full {
        emit!(
            s,
            "<line x1=\"{}\" x2=\"{}\" y1=\"{}\" y2=\"{}\" stroke=\"#000\"/>",
            Fixed(x0, 2),
            Fixed(x1, 2),
            Fixed(bottom, 2),
            Fixed(bottom, 2)
        );
        for b in (0..=0xe0).step_by(0x20).chain([0xff]) {
            let at = x(b as f64 + 0.5);
            emit!(
                s,
                "<line x1=\"{}\" x2=\"{}\" y1=\"{}\" y2=\"{}\" stroke=\"#000\"/>\
                 <text x=\"{}\" y=\"{}\" text-anchor=\"middle\" class=\"tick\">{}</text>",
                Fixed(at, 2),
                Fixed(at, 2),
                Fixed(bottom, 2),
                Fixed(bottom + 4.0, 2),
                Fixed(at, 2),
                Fixed(bottom + 16.0, 2),
                format!("{b:02x}")
            );
        }
        emit!(
            s,
            "<text x=\"{}\" y=\"{}\" text-anchor=\"middle\" class=\"axis\">byte value \
             (hex), {} bytes in all</text>\
             <text transform=\"translate(13 {}) rotate(-90)\" text-anchor=\"middle\" \
             class=\"axis\">times seen</text>",
            Fixed((x0 + x1) / 2.0, 2),
            Fixed(h - 6.0, 2),
            n,
            Fixed((top + bottom) / 2.0, 2)
        );
        // The legend, along the top.
        emit!(
            s,
            "<g class=\"legend\"><rect x=\"{}\" y=\"8\" width=\"12\" height=\"12\" \
             fill=\"{}\"/><text x=\"{}\" y=\"18\">{}</text>\
             <line x1=\"{}\" x2=\"{}\" y1=\"14\" y2=\"14\" stroke=\"#000\" \
             stroke-width=\"1.4\" stroke-dasharray=\"6 3\"/><text x=\"{}\" y=\"18\">random \
             bytes: {} each</text>\
             <rect x=\"{}\" y=\"8\" width=\"12\" height=\"12\" fill=\"#ececec\" \
             stroke=\"#999\" stroke-width=\"0.5\"/><text x=\"{}\" y=\"18\">printable</text></g>",
            Fixed(x0, 2),
            colour,
            Fixed(x0 + 16.0, 2),
            format!("bytes of the messages: {}", d.verdict.as_str()),
            Fixed(x0 + 232.0, 2),
            Fixed(x0 + 256.0, 2),
            Fixed(x0 + 260.0, 2),
            Fixed(flat, 1),
            Fixed(x0 + 420.0, 2),
            Fixed(x0 + 436.0, 2)
        );
    }
    s.raw("</svg>");
    s
}

/// `0x41 'A'`, `0x0a (newline)`, `0xff`.
fn byte_name(b: usize) -> String {
    match b {
        0x20 => "0x20 (space)".to_string(),
        0x0a => "0x0a (newline)".to_string(),
        0x0d => "0x0d (carriage return)".to_string(),
        0x09 => "0x09 (tab)".to_string(),
        0x21..=0x7e => format!("0x{b:02x} '{}'", char::from(b as u8)),
        _ => format!("0x{b:02x}"),
    }
}

fn plural(n: u64, one: &str, many: &str) -> String {
    if n == 1 { format!("{n} {one}") } else { format!("{n} {many}") }
}

/// A direction's messages with whether it is the client's, for the stream-wide charts.
fn messages_of(s: &StreamReport) -> impl Iterator<Item = (bool, &MessageReport)> {
    let c2s = s.directions.client_to_server.messages.iter().map(|m| (true, m));
    c2s.chain(s.directions.server_to_client.messages.iter().map(|m| (false, m)))
}

/// What a message is, in a legend or a title.
fn part_words(m: &MessageReport) -> String {
    match m.kind {
        Part::Message => format!("message, {}", m.verdict.as_str()),
        other => format!("{} (not judged)", other.name()),
    }
}

/// Legend entries of the verdicts (and parts apart) present, as swatch and words, from `x`.
fn legend(s: &mut Html, mut x: f64, y: f64, entries: &[(&'static str, String)]) {
    s.raw("<g class=\"legend\">");
    for (fill, words) in entries {
        emit!(
            s,
            "<rect x=\"{}\" y=\"{}\" width=\"14\" height=\"12\" fill=\"{}\" stroke=\"#333\" \
             stroke-width=\"0.6\"/><text x=\"{}\" y=\"{}\">{}</text>",
            Fixed(x, 2),
            Fixed(y - 10.0, 2),
            *fill,
            Fixed(x + 18.0, 2),
            Fixed(y, 2),
            words
        );
        x += 30.0 + 6.6 * words.chars().count() as f64;
    }
    s.raw("</g>");
}

/// The legend entries for the messages of a stream: each verdict of a message present, and
/// the parts that are not judged.
fn verdict_entries(s: &StreamReport) -> Vec<(&'static str, String)> {
    let mut entries = Vec::new();
    for v in VERDICTS {
        if messages_of(s).any(|(_, m)| m.kind == Part::Message && m.verdict == v) {
            entries.push((fill_of(v), v.as_str().to_string()));
        }
    }
    if messages_of(s).any(|(_, m)| m.kind != Part::Message) {
        entries.push(("url(#fill-apart)", "key, handshake or framing (not judged)".into()));
    }
    entries
}

/// The timeline of a stream: each message a bar at the time its first byte arrived, as tall
/// as it is long, above the axis for the client's, below for the server's; coloured (and
/// patterned) by its verdict. What encryption leaves visible: who spoke when, and how much.
pub fn timeline(s: &StreamReport, client: &str, server: &str) -> Html {
    let (w, h) = (1100.0, 300.0);
    let (x0, x1) = (86.0, w - 24.0);
    let (top, bottom) = (44.0, h - 46.0);
    let mid = (top + bottom) / 2.0;
    let last = messages_of(s).map(|(_, m)| m.time).fold(0.0, f64::max);
    let duration = (s.end - s.start).max(last).max(0.001);
    let (tmax, tstep) = nice_scale(duration, 8.0);
    let longest = messages_of(s).map(|(_, m)| m.length).max().unwrap_or(0);
    let (smax, sstep) = nice_scale(longest.max(1) as f64, 2.0);
    let x = |t: f64| x0 + t / tmax * (x1 - x0);
    let room = mid - top - 2.0;
    let count = messages_of(s).count();
    let bar = ((x1 - x0) / (count.max(1) as f64 * 2.0)).clamp(3.0, 14.0);
    let mut o = Html::new();
    emit!(
        o,
        "<svg class=\"chart timeline\" viewBox=\"0 0 {} {}\" role=\"img\" data-messages=\"{}\">\
         <title>Timeline of stream {}: {} messages</title>",
        Fixed(w, 0),
        Fixed(h, 0),
        count,
        s.id,
        count
    );
    // The size scale, mirrored: up for the client's messages, down for the server's.
    for v in steps(smax, sstep) {
        for (sign, anchor) in [(-1.0, "up"), (1.0, "down")] {
            if v == 0.0 && anchor == "down" {
                continue;
            }
            let yy = mid + sign * v / smax * room;
            emit!(
                o,
                "<line x1=\"{}\" x2=\"{}\" y1=\"{}\" y2=\"{}\" stroke=\"#d8d8d8\" \
                 stroke-width=\"0.6\"/><text x=\"{}\" y=\"{}\" text-anchor=\"end\" \
                 class=\"tick\">{}</text>",
                Fixed(x0, 2),
                Fixed(x1, 2),
                Fixed(yy, 2),
                Fixed(yy, 2),
                Fixed(x0 - 5.0, 2),
                Fixed(yy + 4.0, 2),
                tick_label(v)
            );
        }
    }
    emit!(
        o,
        "<text x=\"{}\" y=\"{}\" class=\"side\">\u{25b2} client \u{2192} server ({})</text>\
         <text x=\"{}\" y=\"{}\" class=\"side\">\u{25bc} server \u{2192} client ({})</text>\
         <text transform=\"translate(16 {}) rotate(-90)\" text-anchor=\"middle\" \
         class=\"axis\">bytes per message</text>",
        Fixed(x0 + 6.0, 2),
        Fixed(top + 12.0, 2),
        client,
        Fixed(x0 + 6.0, 2),
        Fixed(bottom - 4.0, 2),
        server,
        Fixed(mid, 2)
    );
    if count == 0 {
        emit!(
            o,
            "<text x=\"{}\" y=\"{}\" text-anchor=\"middle\" class=\"note\">no messages</text>",
            Fixed((x0 + x1) / 2.0, 2),
            Fixed(mid - 8.0, 2)
        );
    }
    o.raw("<g class=\"marks\">");
    for (up, m) in messages_of(s) {
        let height = (m.length as f64 / smax * room).max(1.0);
        let y = if up { mid - height } else { mid };
        let fill = if m.kind == Part::Message { fill_of(m.verdict) } else { "url(#fill-apart)" };
        let stroke = if m.kind == Part::Message { colour(m.verdict) } else { APART };
        let side = if up { "client \u{2192} server" } else { "server \u{2192} client" };
        emit!(
            o,
            "<rect class=\"message\" data-time=\"{}\" data-length=\"{}\" x=\"{}\" y=\"{}\" \
             width=\"{}\" height=\"{}\" fill=\"{}\" stroke=\"{}\" stroke-width=\"0.8\">\
             <title>{}, {} s: {}, {}</title></rect>",
            Fixed(m.time, 6),
            m.length,
            Fixed(x(m.time) - bar / 2.0, 2),
            Fixed(y, 2),
            Fixed(bar, 2),
            Fixed(height, 2),
            fill,
            stroke,
            side,
            Fixed(m.time, 3),
            plural(m.length, "byte", "bytes"),
            part_words(m)
        );
    }
    o.raw("</g>");
    // The time axis, through the middle, labelled below.
    emit!(
        o,
        "<line x1=\"{}\" x2=\"{}\" y1=\"{}\" y2=\"{}\" stroke=\"#000\" stroke-width=\"1.2\"/>",
        Fixed(x0, 2),
        Fixed(x1, 2),
        Fixed(mid, 2),
        Fixed(mid, 2)
    );
    for t in steps(tmax, tstep) {
        emit!(
            o,
            "<line x1=\"{}\" x2=\"{}\" y1=\"{}\" y2=\"{}\" stroke=\"#000\"/>\
             <line x1=\"{}\" x2=\"{}\" y1=\"{}\" y2=\"{}\" stroke=\"#eee\" stroke-width=\"0.6\"/>\
             <text x=\"{}\" y=\"{}\" text-anchor=\"middle\" class=\"tick\">{}</text>",
            Fixed(x(t), 2),
            Fixed(x(t), 2),
            Fixed(mid - 3.0, 2),
            Fixed(mid + 3.0, 2),
            Fixed(x(t), 2),
            Fixed(x(t), 2),
            Fixed(top, 2),
            Fixed(bottom, 2),
            Fixed(x(t), 2),
            Fixed(bottom + 16.0, 2),
            tick_label(t)
        );
    }
    emit!(
        o,
        "<text x=\"{}\" y=\"{}\" text-anchor=\"middle\" class=\"axis\">seconds after the \
         stream's first packet</text>",
        Fixed((x0 + x1) / 2.0, 2),
        Fixed(h - 8.0, 2)
    );
    legend(&mut o, x0, 22.0, &verdict_entries(s));
    o.raw("</svg>");
    o
}

/// The lengths at which the band of text is measured.
const BAND_LENGTHS: [u64; 20] =
    [2, 3, 4, 6, 8, 12, 16, 24, 32, 48, 64, 96, 128, 192, 256, 384, 512, 768, 1024, 1536];

/// The entropy that English text reaches at each of [`BAND_LENGTHS`]: the 10th and 90th
/// percentiles of the entropy of every window of that length of a shipped chat and essay
/// text (windows a quarter of their length apart).
fn text_band() -> &'static [(u64, f64, f64)] {
    static BAND: OnceLock<Vec<(u64, f64, f64)>> = OnceLock::new();
    BAND.get_or_init(|| {
        let text = include_str!("text.txt").as_bytes();
        let mut band = Vec::new();
        for &n in &BAND_LENGTHS {
            let len = n as usize;
            let step = (len / 4).max(1);
            let mut found: Vec<f64> = (0..text.len().saturating_sub(len))
                .step_by(step)
                .filter_map(|at| text.get(at..at + len))
                .map(|w| {
                    let mut counts = [0u64; 256];
                    for &b in w {
                        if let Some(c) = counts.get_mut(usize::from(b)) {
                            *c += 1;
                        }
                    }
                    shannon_entropy(&counts)
                })
                .collect();
            found.sort_by(f64::total_cmp);
            let at = |q: f64| found.get(((found.len() as f64 - 1.0) * q) as usize).copied();
            if let (Some(lo), Some(hi)) = (at(0.1), at(0.9)) {
                band.push((n, lo, hi));
            }
        }
        band
    })
}

/// The entropy of each message against its length (logarithmic), with the entropy random
/// bytes of each length give, the most any sample of that length can have (log2 n), and the
/// band English text falls in: short messages are where the band and the random curve meet.
pub fn entropy_length(s: &StreamReport, client: &str, server: &str) -> Html {
    let (w, h) = (1100.0, 330.0);
    let (x0, x1) = (60.0, w - 24.0);
    let (top, bottom) = (44.0, h - 46.0);
    let longest = messages_of(s).map(|(_, m)| m.length).max().unwrap_or(0);
    let dirs = [&s.directions.client_to_server, &s.directions.server_to_client];
    let whole = dirs.iter().map(|d| d.histogram.counts().iter().sum::<u64>()).max().unwrap_or(0);
    let decades = (longest.max(whole).max(1000) as f64).log10().ceil().max(3.0);
    let x = |n: f64| x0 + n.max(1.0).log10() / decades * (x1 - x0);
    let y = |e: f64| bottom - e.clamp(0.0, 8.0) / 8.0 * (bottom - top);
    let mut o = Html::new();
    let count = messages_of(s).count();
    emit!(
        o,
        "<svg class=\"chart entropy\" viewBox=\"0 0 {} {}\" role=\"img\" data-messages=\"{}\">\
         <title>Entropy against length, stream {}</title>",
        Fixed(w, 0),
        Fixed(h, 0),
        count,
        s.id
    );
    for e in 0..=8 {
        let yy = y(f64::from(e));
        emit!(
            o,
            "<line x1=\"{}\" x2=\"{}\" y1=\"{}\" y2=\"{}\" stroke=\"#e2e2e2\" stroke-width=\"0.6\"/>\
             <text x=\"{}\" y=\"{}\" text-anchor=\"end\" class=\"tick\">{}</text>",
            Fixed(x0, 2),
            Fixed(x1, 2),
            Fixed(yy, 2),
            Fixed(yy, 2),
            Fixed(x0 - 5.0, 2),
            Fixed(yy + 4.0, 2),
            e
        );
    }
    // The band of text, then the curves.
    let band = text_band();
    let xmax = 10f64.powf(decades);
    let band: Vec<(u64, f64, f64)> = band.iter().copied().filter(|b| b.0 as f64 <= xmax).collect();
    if let (Some(first), Some(last)) = (band.first(), band.last()) {
        let mut points = String::new();
        let upper = band.iter().map(|&(n, _, hi)| (n as f64, hi)).chain([(xmax, last.2)]);
        let lower = band.iter().rev().map(|&(n, lo, _)| (n as f64, lo));
        for (n, e) in upper.chain([(xmax, last.1)]).chain(lower) {
            points.push_str(&format!("{:.2},{:.2} ", x(n), y(e)));
        }
        emit!(
            o,
            "<polygon class=\"band\" points=\"{}\" fill=\"#D55E00\" fill-opacity=\"0.16\" \
             stroke=\"#D55E00\" stroke-opacity=\"0.5\" stroke-width=\"0.8\"><title>where \
             English text falls: 8 windows in 10 of each length, from {} bytes on</title>\
             </polygon>",
            points.trim_end(),
            first.0
        );
    }
    // Whole lengths only, each once: entropy is measured on whole bytes.
    let mut grid: Vec<f64> = (0..=(decades * 24.0) as u32)
        .map(|i| 10f64.powf(f64::from(i) / 24.0).round())
        .filter(|n| *n >= 2.0)
        .collect();
    grid.dedup();
    let line = |f: &dyn Fn(f64) -> f64| -> String {
        let mut p = format!("{:.2},{:.2}", x(1.0), y(0.0));
        for &n in &grid {
            p.push_str(&format!(" {:.2},{:.2}", x(n), y(f(n))));
        }
        p
    };
    emit!(
        o,
        "<polyline class=\"ceiling\" points=\"{}\" fill=\"none\" stroke=\"#777\" \
         stroke-width=\"1.2\" stroke-dasharray=\"2 3\"><title>the most n bytes can have: \
         log2 n, all different</title></polyline>",
        line(&|n| n.log2().min(8.0))
    );
    emit!(
        o,
        "<polyline class=\"random\" points=\"{}\" fill=\"none\" stroke=\"#000\" \
         stroke-width=\"1.8\"><title>random bytes of each length, on average</title></polyline>",
        line(&|n| expected_random_entropy(n as u64))
    );
    // Under MIN_BYTES nothing can be told.
    let short = x(MIN_BYTES as f64);
    emit!(
        o,
        "<line x1=\"{}\" x2=\"{}\" y1=\"{}\" y2=\"{}\" stroke=\"#000\" stroke-width=\"0.8\" \
         stroke-dasharray=\"4 4\"/><text x=\"{}\" y=\"{}\" class=\"note\" text-anchor=\"end\">\
         too short to judge \u{2190}</text>",
        Fixed(short, 2),
        Fixed(short, 2),
        Fixed(top, 2),
        Fixed(bottom, 2),
        Fixed(short - 4.0, 2),
        Fixed(top + 12.0, 2)
    );
    o.raw("<g class=\"marks\">");
    for (up, m) in messages_of(s) {
        let (cx, cy) = (x(m.length as f64), y(m.entropy));
        let judged = m.kind == Part::Message;
        let (fill, stroke) = if judged { (colour(m.verdict), "#000") } else { ("#fff", APART) };
        let side = if up { "client \u{2192} server" } else { "server \u{2192} client" };
        let title = format!(
            "{side}, {:.3} s: {}, entropy {:.2} bits/byte, {}",
            m.time,
            plural(m.length, "byte", "bytes"),
            m.entropy,
            part_words(m)
        );
        if up {
            emit!(
                o,
                "<circle class=\"message\" data-length=\"{}\" data-entropy=\"{}\" cx=\"{}\" \
                 cy=\"{}\" r=\"4.5\" fill=\"{}\" stroke=\"{}\" stroke-width=\"0.8\">\
                 <title>{}</title></circle>",
                m.length,
                Fixed(m.entropy, 3),
                Fixed(cx, 2),
                Fixed(cy, 2),
                fill,
                stroke,
                title
            );
        } else {
            emit!(
                o,
                "<rect class=\"message\" data-length=\"{}\" data-entropy=\"{}\" x=\"{}\" \
                 y=\"{}\" width=\"8\" height=\"8\" fill=\"{}\" stroke=\"{}\" \
                 stroke-width=\"0.8\"><title>{}</title></rect>",
                m.length,
                Fixed(m.entropy, 3),
                Fixed(cx - 4.0, 2),
                Fixed(cy - 4.0, 2),
                fill,
                stroke,
                title
            );
        }
    }
    // Each direction's messages taken together: what the verdict's figures are.
    for (d, side) in dirs.iter().zip(["client \u{2192} server", "server \u{2192} client"]) {
        let n: u64 = d.histogram.counts().iter().sum();
        if n == 0 {
            continue;
        }
        let (cx, cy) = (x(n as f64), y(d.entropy));
        emit!(
            o,
            "<path class=\"whole\" d=\"M{} {}l8 8l-8 8l-8 -8z\" fill=\"{}\" stroke=\"#000\" \
             stroke-width=\"1.2\"><title>all of {}'s messages: {}, entropy {} bits/byte \
             ({})</title></path>",
            Fixed(cx, 2),
            Fixed(cy - 8.0, 2),
            colour(d.verdict),
            side,
            plural(n, "byte", "bytes"),
            Fixed(d.entropy, 2),
            d.verdict.as_str()
        );
    }
    o.raw("</g>");
    // The length axis: powers of ten.
    emit!(
        o,
        "<line x1=\"{}\" x2=\"{}\" y1=\"{}\" y2=\"{}\" stroke=\"#000\"/>",
        Fixed(x0, 2),
        Fixed(x1, 2),
        Fixed(bottom, 2),
        Fixed(bottom, 2)
    );
    for k in 0..=(decades as u32) {
        let n = 10f64.powf(f64::from(k));
        emit!(
            o,
            "<line x1=\"{}\" x2=\"{}\" y1=\"{}\" y2=\"{}\" stroke=\"#000\"/>\
             <text x=\"{}\" y=\"{}\" text-anchor=\"middle\" class=\"tick\">{}</text>",
            Fixed(x(n), 2),
            Fixed(x(n), 2),
            Fixed(bottom, 2),
            Fixed(bottom + 4.0, 2),
            Fixed(x(n), 2),
            Fixed(bottom + 16.0, 2),
            Fixed(n, 0)
        );
    }
    emit!(
        o,
        "<text x=\"{}\" y=\"{}\" text-anchor=\"middle\" class=\"axis\">length in bytes \
         (logarithmic)</text>\
         <text transform=\"translate(16 {}) rotate(-90)\" text-anchor=\"middle\" \
         class=\"axis\">entropy, bits per byte</text>",
        Fixed((x0 + x1) / 2.0, 2),
        Fixed(h - 8.0, 2),
        Fixed((top + bottom) / 2.0, 2)
    );
    // Legend: the marks' shapes, then the lines.
    emit!(
        o,
        "<g class=\"legend\"><circle cx=\"{}\" cy=\"14\" r=\"4.5\" fill=\"#fff\" \
         stroke=\"#000\"/><text x=\"{}\" y=\"18\">client \u{2192} server ({})</text>\
         <rect x=\"{}\" y=\"10\" width=\"8\" height=\"8\" fill=\"#fff\" stroke=\"#000\"/>\
         <text x=\"{}\" y=\"18\">server \u{2192} client ({})</text>\
         <path d=\"M{} 6l8 8l-8 8l-8 -8z\" fill=\"#fff\" stroke=\"#000\"/>\
         <text x=\"{}\" y=\"18\">all of a direction</text></g>",
        Fixed(x0 + 5.0, 2),
        Fixed(x0 + 14.0, 2),
        client,
        Fixed(x0 + 250.0, 2),
        Fixed(x0 + 263.0, 2),
        server,
        Fixed(x0 + 500.0, 2),
        Fixed(x0 + 513.0, 2)
    );
    emit!(
        o,
        "<g class=\"legend\"><line x1=\"{}\" x2=\"{}\" y1=\"34\" y2=\"34\" stroke=\"#000\" \
         stroke-width=\"1.8\"/><text x=\"{}\" y=\"38\">random bytes</text>\
         <line x1=\"{}\" x2=\"{}\" y1=\"34\" y2=\"34\" stroke=\"#777\" stroke-width=\"1.2\" \
         stroke-dasharray=\"2 3\"/><text x=\"{}\" y=\"38\">at most log2(length)</text>\
         <rect x=\"{}\" y=\"28\" width=\"22\" height=\"11\" fill=\"#D55E00\" \
         fill-opacity=\"0.16\" stroke=\"#D55E00\" stroke-opacity=\"0.5\"/>\
         <text x=\"{}\" y=\"38\">where English text falls</text></g>",
        Fixed(x0, 2),
        Fixed(x0 + 22.0, 2),
        Fixed(x0 + 27.0, 2),
        Fixed(x0 + 130.0, 2),
        Fixed(x0 + 152.0, 2),
        Fixed(x0 + 157.0, 2),
        Fixed(x0 + 320.0, 2),
        Fixed(x0 + 347.0, 2)
    );
    o.raw("</svg>");
    o
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scales_are_round() {
        assert_eq!(nice_scale(17.0, 4.0), (20.0, 5.0));
        let (top, step) = nice_scale(0.3, 4.0);
        assert!((top - 0.3).abs() < 1e-12 && (step - 0.1).abs() < 1e-12, "{top} {step}");
        assert_eq!(nice_scale(0.0, 4.0), (1.0, 0.25));
        assert_eq!(nice_scale(1900.0, 2.0), (2000.0, 1000.0));
    }

    #[test]
    fn the_band_of_text_lies_below_random_bytes_once_messages_are_long() {
        let band = text_band();
        assert_eq!(band.len(), BAND_LENGTHS.len());
        for &(n, lo, hi) in band {
            assert!(lo <= hi && hi <= (n as f64).log2() + 1e-9, "{n}: {lo} {hi}");
            if n >= 64 {
                assert!(hi < expected_random_entropy(n) - 0.8, "{n}: {hi}");
            }
        }
    }
}
