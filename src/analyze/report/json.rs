//! The report's JSON form, written out: `serde_json`'s pretty layout (two spaces a level), with
//! each line break and its indentation written at once, a direction's histogram on one line and
//! its messages one a line (`histogram_json` and `messages_json`, which the model names for
//! those fields), the messages indented as a list.
//!
//! A capture of many short messages lists hundreds of thousands of them, and the report is
//! written by one thread after the analysis: there, the stock pretty printer's one write per
//! level of indentation was a tenth of the run. What is written is the report's `Serialize`
//! form (the one JSON model, in [`super`]); this module only lays it out, a report's streams
//! on several threads ([`write_report`]).

use std::io::{self, Write};

use serde::Serialize;

use super::{FileReport, MessageReport, StreamReport};
use crate::analyze::classify::Histogram;

/// A line break and the deepest indentation written in one piece; deeper levels add more.
const BREAK: &[u8] = b"\n                                                                ";

/// Write `value` as `serde_json::to_writer_pretty` would, but for ready text of several
/// lines (a raw value), whose lines are indented as a list's items and its last as the list's
/// closing bracket.
pub fn write_pretty<W: Write, T: Serialize + ?Sized>(writer: W, value: &T) -> io::Result<()> {
    write_at(writer, value, 0)
}

/// `value` laid out as if it were `level` levels deep.
fn write_at<W: Write, T: Serialize + ?Sized>(writer: W, value: &T, level: usize) -> io::Result<()> {
    let mut ser =
        serde_json::Serializer::with_formatter(writer, Pretty { level, ..Pretty::default() });
    value.serialize(&mut ser).map_err(io::Error::from)
}

/// Streams laid out by one thread in one turn: enough to share the work, few enough that a
/// turn's text stays small.
const STREAMS_PER_TURN: usize = 16;

/// Write `report` as [`write_pretty`] would, its streams laid out by `threads` threads side by
/// side, in turns of a few streams each (the text of one turn at a time is held): the report of
/// a capture of many messages lists every one of them, and one thread writing them all took as
/// long as the analysis on all cores. The streams are the report's last field, so the text
/// before them is the report's own with no streams, up to the empty list. Streams whose
/// reports are not made yet ([`super::unmade_file_report`]) are made a turn at a time and
/// dropped once written, so that a capture of many connections never holds all its reports:
/// afterwards the report holds only the streams it held before.
pub fn write_report<W: Write>(w: W, report: &mut FileReport, threads: usize) -> io::Result<()> {
    write_in_turns(w, report, threads, STREAMS_PER_TURN)
}

/// [`write_report`] with `per_turn` streams per thread and turn.
fn write_in_turns<W: Write>(
    mut w: W,
    report: &mut FileReport,
    threads: usize,
    per_turn: usize,
) -> io::Result<()> {
    let (threads, per_turn) = (threads.max(1), per_turn.max(1));
    let turn_len = threads * per_turn;
    let streams = std::mem::take(&mut report.streams);
    let mut head = Vec::new();
    let written = write_pretty(&mut head, &*report);
    report.streams = streams;
    written?;
    // The streams are the last field: the report without them ends with their empty list.
    let Some(head) = head.strip_suffix(b"]\n}") else {
        report.make_streams();
        return write_pretty(w, &*report);
    };
    w.write_all(head)?;
    // One text per thread, kept from turn to turn: a fresh one each turn was a fresh few
    // megabytes for the allocator to hand out, page by page, every time.
    let mut texts: Vec<Vec<u8>> = (0..threads).map(|_| Vec::new()).collect();
    let mut first = true;
    for turn in report.streams.chunks(turn_len) {
        write_turn(&mut w, turn, per_turn, &mut texts, &mut first)?;
    }
    let mut made_now = Vec::with_capacity(turn_len);
    loop {
        made_now.clear();
        made_now.extend(std::iter::from_fn(|| report.next_unmade()).take(turn_len));
        if made_now.is_empty() {
            break;
        }
        write_turn(&mut w, &made_now, per_turn, &mut texts, &mut first)?;
    }
    // No stream: the list stays empty (`[]`), as serde_json writes it.
    w.write_all(if first { b"]\n}" } else { b"\n  ]\n}" })
}

/// One turn's streams, laid out `per_turn` by each thread, written in order.
fn write_turn<W: Write>(
    w: &mut W,
    turn: &[StreamReport],
    per_turn: usize,
    texts: &mut [Vec<u8>],
    first: &mut bool,
) -> io::Result<()> {
    let parts = turn.chunks(per_turn).zip(texts.iter_mut());
    let written: Vec<io::Result<()>> = if turn.len() <= per_turn {
        parts.map(|(p, text)| streams_text(p, text)).collect()
    } else {
        std::thread::scope(|scope| {
            let handles: Vec<_> =
                parts.map(|(p, text)| scope.spawn(move || streams_text(p, text))).collect();
            handles
                .into_iter()
                .map(|h| h.join().unwrap_or_else(|_| Err(io::Error::other("a writer failed"))))
                .collect()
        })
    };
    for (done, text) in written.into_iter().zip(texts.iter()) {
        done?;
        // Each stream's text starts with its separator; the report's first has none.
        let text = if *first { text.get(1..).unwrap_or_default() } else { &text[..] };
        *first = false;
        w.write_all(text)?;
    }
    Ok(())
}

/// The streams as they are laid out in the report's list, each after its separator (`,`, a
/// line break and the list's indentation), in `out` (emptied first).
fn streams_text(streams: &[StreamReport], out: &mut Vec<u8>) -> io::Result<()> {
    out.clear();
    for s in streams {
        out.extend_from_slice(b",\n    ");
        write_at(&mut *out, s, 2)?;
    }
    Ok(())
}

/// A direction's messages as one JSON list, each message an object on a line of its own
/// (`{"offset": 0, "length": 53, "time": 0.0056, ...}`), as [`Pretty`] lays the lines out: a
/// capture of short lines lists hundreds of thousands of them, and a field a line made the
/// report twice as long, and `serde`'s calls per key and value most of the time to write it.
/// The fields are [`MessageReport`]'s, in its order, with `serde_json`'s own number format.
pub(super) fn messages_json<S: serde::Serializer>(
    list: &[MessageReport],
    s: S,
) -> Result<S::Ok, S::Error> {
    if list.is_empty() {
        return s.collect_seq(list);
    }
    let mut text = Vec::with_capacity(128 * list.len());
    for (i, m) in list.iter().enumerate() {
        text.extend_from_slice(if i == 0 { b"[\n" } else { b",\n" });
        message_line(&mut text, m);
    }
    text.extend_from_slice(b"\n]");
    // SAFETY: brackets, commas and line breaks written above, and objects made by
    // `message_line` of fixed keys, numbers written by `serde_json`'s own formatter (`null`
    // for what is not finite) and names from fixed ASCII words
    // (`a_message_line_is_the_message_as_serde_writes_it` parses them).
    unsafe { ready(text, s) }
}

/// A histogram as one line of JSON (`[0,3,...]`) even in a pretty-printed document: 256
/// numbers one per line would make the report four times as long.
pub(super) fn histogram_json<S: serde::Serializer>(h: &Histogram, s: S) -> Result<S::Ok, S::Error> {
    use serde_json::ser::{CompactFormatter, Formatter};
    let counts = h.counts();
    let mut line = Vec::with_capacity(4 * counts.len());
    for (i, &c) in counts.iter().enumerate() {
        line.push(if i == 0 { b'[' } else { b',' });
        let _ = CompactFormatter.write_u64(&mut line, c);
    }
    line.push(b']');
    // SAFETY: brackets and commas written above, the numbers by `serde_json`'s own formatter.
    unsafe { ready(line, s) }
}

/// Ready JSON text written as it is (a raw value), without parsing it again: that took longer
/// than writing it, for the hundreds of thousands of lines of a chat.
///
/// # Safety
///
/// `text` must be one well-formed JSON value with no space before or after it (serde_json's
/// `RawValue::from_string_unchecked`, which debug builds check by parsing; the tests parse
/// every report they write).
unsafe fn ready<S: serde::Serializer>(text: Vec<u8>, s: S) -> Result<S::Ok, S::Error> {
    let text = String::from_utf8(text).map_err(serde::ser::Error::custom)?;
    // SAFETY: the caller's promise.
    let raw = unsafe { serde_json::value::RawValue::from_string_unchecked(text) };
    raw.serialize(s)
}

/// One message as a JSON object on one line.
fn message_line(out: &mut Vec<u8>, m: &MessageReport) {
    use serde_json::ser::{CompactFormatter, Formatter};
    let number = |out: &mut Vec<u8>, x: f64| {
        // serde_json writes what is not a finite number as null.
        if x.is_finite() {
            let _ = CompactFormatter.write_f64(out, x);
        } else {
            out.extend_from_slice(b"null");
        }
    };
    out.extend_from_slice(b"{\"offset\": ");
    let _ = CompactFormatter.write_u64(out, m.offset);
    out.extend_from_slice(b", \"length\": ");
    let _ = CompactFormatter.write_u64(out, m.length);
    out.extend_from_slice(b", \"time\": ");
    number(out, m.time);
    out.extend_from_slice(b", \"entropy\": ");
    number(out, m.entropy);
    out.extend_from_slice(b", \"kind\": \"");
    out.extend_from_slice(m.kind.name().as_bytes());
    out.extend_from_slice(b"\", \"verdict\": \"");
    out.extend_from_slice(m.verdict.as_str().as_bytes());
    out.extend_from_slice(b"\"}");
}

/// `serde_json::ser::PrettyFormatter` with an indentation of two spaces, writing a line
/// break and its indentation as one slice, and indenting the lines of a raw value.
#[derive(Default)]
struct Pretty {
    level: usize,
    has_value: bool,
}

impl Pretty {
    /// A line break, then the current level's indentation.
    fn new_line<W: ?Sized + Write>(&self, w: &mut W) -> io::Result<()> {
        line_break(w, self.level)
    }

    fn item<W: ?Sized + Write>(&self, w: &mut W, first: bool) -> io::Result<()> {
        if !first {
            w.write_all(b",")?;
        }
        self.new_line(w)
    }

    fn open<W: ?Sized + Write>(&mut self, w: &mut W, bracket: &[u8]) -> io::Result<()> {
        self.level += 1;
        self.has_value = false;
        w.write_all(bracket)
    }

    fn close<W: ?Sized + Write>(&mut self, w: &mut W, bracket: &[u8]) -> io::Result<()> {
        self.level = self.level.saturating_sub(1);
        if self.has_value {
            self.new_line(w)?;
        }
        w.write_all(bracket)
    }
}

/// A line break, then the indentation of `level`.
fn line_break<W: ?Sized + Write>(w: &mut W, level: usize) -> io::Result<()> {
    let mut spaces = 2 * level;
    let room = BREAK.len() - 1;
    w.write_all(BREAK.get(..1 + spaces.min(room)).unwrap_or(b"\n"))?;
    while spaces > room {
        spaces -= room;
        w.write_all(BREAK.get(1..1 + spaces.min(room)).unwrap_or_default())?;
    }
    Ok(())
}

impl serde_json::ser::Formatter for Pretty {
    fn begin_array<W: ?Sized + Write>(&mut self, w: &mut W) -> io::Result<()> {
        self.open(w, b"[")
    }

    fn end_array<W: ?Sized + Write>(&mut self, w: &mut W) -> io::Result<()> {
        self.close(w, b"]")
    }

    fn begin_array_value<W: ?Sized + Write>(&mut self, w: &mut W, first: bool) -> io::Result<()> {
        self.item(w, first)
    }

    fn end_array_value<W: ?Sized + Write>(&mut self, _w: &mut W) -> io::Result<()> {
        self.has_value = true;
        Ok(())
    }

    fn begin_object<W: ?Sized + Write>(&mut self, w: &mut W) -> io::Result<()> {
        self.open(w, b"{")
    }

    fn end_object<W: ?Sized + Write>(&mut self, w: &mut W) -> io::Result<()> {
        self.close(w, b"}")
    }

    fn begin_object_key<W: ?Sized + Write>(&mut self, w: &mut W, first: bool) -> io::Result<()> {
        self.item(w, first)
    }

    fn begin_object_value<W: ?Sized + Write>(&mut self, w: &mut W) -> io::Result<()> {
        w.write_all(b": ")
    }

    fn end_object_value<W: ?Sized + Write>(&mut self, _w: &mut W) -> io::Result<()> {
        self.has_value = true;
        Ok(())
    }

    /// Ready text: its first line where the value goes, the others one level deeper (a list's
    /// items), the last at the value's level (the list's closing bracket). A JSON text's line
    /// breaks are all between its tokens (a string's are escaped), so this keeps its value.
    fn write_raw_fragment<W: ?Sized + Write>(
        &mut self,
        w: &mut W,
        fragment: &str,
    ) -> io::Result<()> {
        let mut lines = fragment.split('\n').peekable();
        if let Some(first) = lines.next() {
            w.write_all(first.as_bytes())?;
        }
        while let Some(line) = lines.next() {
            let deeper = usize::from(lines.peek().is_some());
            line_break(w, self.level + deeper)?;
            w.write_all(line.as_bytes())?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::analyze::classify::Verdict;
    use crate::analyze::recognise::Part;
    use serde_json::json;

    #[test]
    fn a_message_line_is_the_message_as_serde_writes_it() {
        let parts = [Part::Message, Part::Key, Part::Handshake, Part::Framing];
        let verdicts = [Verdict::Plaintext, Verdict::Ciphertext, Verdict::Inconclusive];
        let numbers = [0.0, 1e-6, 0.0056, 3.57, 7.999, 123456.789012, 1e21, f64::NAN];
        let mut n = 0u64;
        for &time in &numbers {
            for &entropy in &numbers {
                n += 1;
                let m = MessageReport {
                    offset: n.wrapping_mul(0x9e37_79b9_7f4a_7c15),
                    length: n,
                    time,
                    entropy,
                    kind: parts[n as usize % parts.len()],
                    verdict: verdicts[n as usize % verdicts.len()],
                };
                let mut line = Vec::new();
                message_line(&mut line, &m);
                let ours = String::from_utf8(line).expect("utf-8");
                assert!(!ours.contains('\n'), "{ours}");
                let serde = serde_json::to_string(&m).expect("serde");
                assert_eq!(ours.replace(": ", ":").replace(", ", ","), serde);
            }
        }
        let one = MessageReport {
            offset: 1,
            length: 2,
            time: 0.5,
            entropy: 1.0,
            kind: Part::Key,
            verdict: Verdict::Encoded,
        };
        let mut list = Vec::new();
        messages_json(&[one], &mut serde_json::Serializer::new(&mut list)).expect("list");
        let mut empty = Vec::new();
        messages_json(&[], &mut serde_json::Serializer::new(&mut empty)).expect("list");
        assert_eq!(empty, b"[]");
        assert_eq!(
            String::from_utf8(list).expect("utf-8"),
            "[\n{\"offset\": 1, \"length\": 2, \"time\": 0.5, \"entropy\": 1.0, \"kind\": \"key\", \"verdict\": \"encoded\"}\n]"
        );
    }

    fn both(value: &serde_json::Value) -> (String, String) {
        let mut ours = Vec::new();
        write_pretty(&mut ours, value).expect("write");
        let stock = serde_json::to_string_pretty(value).expect("write");
        (String::from_utf8(ours).expect("utf-8"), stock)
    }

    #[test]
    fn the_layout_is_serde_jsons_pretty_one() {
        let value = json!({
            "empty_object": {},
            "empty_array": [],
            "numbers": [1, 2.5, -3, null, true],
            "nested": {"a": [{"b": {"c": [[], [{}], ["x\n\"y\u{1}"]]}}]},
            "text": "Привет </script>",
        });
        let (ours, stock) = both(&value);
        assert_eq!(ours, stock);
    }

    #[test]
    fn ready_text_of_several_lines_is_indented_as_a_list() {
        #[derive(Serialize)]
        struct Doc {
            list: Box<serde_json::value::RawValue>,
            inner: Vec<Box<serde_json::value::RawValue>>,
            last: u8,
        }
        let raw = |t: &str| serde_json::value::RawValue::from_string(t.to_string()).expect("raw");
        let doc = Doc {
            list: raw("[\n{\"a\": 1, \"b\": \"x\\ny\"},\n{\"a\": 2}\n]"),
            inner: vec![raw("[1,2]"), raw("[\n{}\n]")],
            last: 3,
        };
        let mut ours = Vec::new();
        write_pretty(&mut ours, &doc).expect("write");
        let expected = r#"{
  "list": [
    {"a": 1, "b": "x\ny"},
    {"a": 2}
  ],
  "inner": [
    [1,2],
    [
      {}
    ]
  ],
  "last": 3
}"#;
        assert_eq!(String::from_utf8(ours).expect("utf-8"), expected);
    }

    #[test]
    fn a_report_written_by_threads_is_the_same_json_and_text() {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
        let opts = crate::analyze::Options {
            ports: Vec::new(),
            full: false,
            extract: None,
            workers: 0,
            keys: Vec::new(),
        };
        let mut seen = 0;
        for dir in ["captures", "tests/data", "tests/data/peers"] {
            for entry in std::fs::read_dir(root.join(dir)).expect("folder") {
                let path = entry.expect("entry").path();
                if !path.extension().is_some_and(|e| e == "pcap" || e == "pcapng") {
                    continue;
                }
                let Ok(mut report) = crate::analyze::analyze_file(&path, &opts) else { continue };
                let stock = serde_json::to_string_pretty(&report).expect("write");
                let model: serde_json::Value = serde_json::from_str(&stock).expect("stock");
                let mut one = Vec::new();
                write_pretty(&mut one, &report).expect("write");
                let read: serde_json::Value = serde_json::from_slice(&one).expect("valid JSON");
                assert_eq!(read, model, "{path:?}");
                for (threads, per_turn) in [(1, 16), (2, 1), (3, 2), (2, 16)] {
                    let mut ours = Vec::new();
                    write_in_turns(&mut ours, &mut report, threads, per_turn).expect("write");
                    assert!(ours == one, "{path:?} with {threads} threads");
                    // The same with the streams' reports made as they are written, all of
                    // them or all but the first.
                    for made in [0, 1] {
                        let mut lazy = crate::analyze::analyze_path(&path, &opts).expect("again");
                        for _ in 0..made {
                            let first = lazy.next_unmade();
                            lazy.streams.extend(first);
                        }
                        let mut text = Vec::new();
                        write_in_turns(&mut text, &mut lazy, threads, per_turn).expect("write");
                        assert!(text == one, "{path:?}, unmade, {threads} threads, {made} made");
                        assert!(!lazy.has_unmade() && lazy.streams.len() <= made);
                    }
                }
                seen += usize::from(report.streams.len() > 1);
                // A report of no streams, made or not, has an empty list.
                report.streams.clear();
                let none = serde_json::to_string_pretty(&report).expect("write");
                let mut ours = Vec::new();
                write_in_turns(&mut ours, &mut report, 2, 1).expect("write");
                assert_eq!(String::from_utf8(ours).expect("utf-8"), none, "{path:?}");
            }
        }
        assert!(seen >= 2, "captures of several streams: {seen}");
    }

    #[test]
    fn indentation_deeper_than_one_break_is_still_right() {
        let mut value = json!("deep");
        for i in 0..80 {
            value = if i % 2 == 0 { json!([value, i]) } else { json!({ "k": value }) };
        }
        let (ours, stock) = both(&value);
        assert!(stock.contains(&format!("\n{}", " ".repeat(150))), "deep enough to test");
        assert_eq!(ours, stock);
    }
}
