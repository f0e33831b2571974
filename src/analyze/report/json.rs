//! The report's JSON form, written out: `serde_json`'s pretty layout (two spaces a level), byte
//! for byte, with each line break and its indentation written at once.
//!
//! A capture of many short messages lists hundreds of thousands of them, each a small object
//! of a few lines, and the report is written by one thread after the analysis: there, the
//! stock pretty printer's one write per level of indentation was a tenth of the run. What is
//! written is the report's `Serialize` form (the one JSON model, in [`super`]); this module
//! only lays it out, a report's streams on several threads ([`write_report`]).

use std::io::{self, Write};

use serde::Serialize;

use super::{FileReport, StreamReport};

/// A line break and the deepest indentation written in one piece; deeper levels add more.
const BREAK: &[u8] = b"\n                                                                ";

/// Write `value` as `serde_json::to_writer_pretty` would.
pub fn write_pretty<W: Write, T: Serialize + ?Sized>(writer: W, value: &T) -> io::Result<()> {
    write_at(writer, value, 0)
}

/// `value` laid out as if it were `level` levels deep.
fn write_at<W: Write, T: Serialize + ?Sized>(writer: W, value: &T, level: usize) -> io::Result<()> {
    let mut ser =
        serde_json::Serializer::with_formatter(writer, Pretty { level, has_value: false });
    value.serialize(&mut ser).map_err(io::Error::from)
}

/// Streams laid out by one thread in one turn: enough to share the work, few enough that a
/// turn's text stays small.
const STREAMS_PER_TURN: usize = 16;

/// Write `report` as [`write_pretty`] would, its streams laid out by `threads` threads side by
/// side, in turns of a few streams each (the text of one turn at a time is held): the report of
/// a capture of many messages lists every one of them, and one thread writing them all took as
/// long as the analysis on all cores. The streams are the report's last field, so the text
/// before them is the report's own with no streams, up to the empty list.
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
    let streams = std::mem::take(&mut report.streams);
    let mut head = Vec::new();
    let written = write_pretty(&mut head, &*report);
    report.streams = streams;
    written?;
    const EMPTY: &[u8] = b"[]\n}";
    let (Some(head), false) = (head.strip_suffix(EMPTY), report.streams.is_empty()) else {
        return write_pretty(w, &*report);
    };
    w.write_all(head)?;
    w.write_all(b"[")?;
    let (threads, per_turn) = (threads.max(1), per_turn.max(1));
    let mut first = true;
    for turn in report.streams.chunks(threads * per_turn) {
        let parts: Vec<&[StreamReport]> = turn.chunks(per_turn).collect();
        let texts: Vec<io::Result<Vec<u8>>> = if parts.len() == 1 {
            parts.iter().map(|p| streams_text(p)).collect()
        } else {
            std::thread::scope(|scope| {
                let handles: Vec<_> =
                    parts.iter().map(|&p| scope.spawn(move || streams_text(p))).collect();
                handles
                    .into_iter()
                    .map(|h| h.join().unwrap_or_else(|_| Err(io::Error::other("a writer failed"))))
                    .collect()
            })
        };
        for text in texts {
            let text = text?;
            // Each stream's text starts with its separator; the report's first has none.
            let text = if first { text.get(1..).unwrap_or_default() } else { &text[..] };
            first = false;
            w.write_all(text)?;
        }
    }
    w.write_all(b"\n  ]\n}")
}

/// The streams as they are laid out in the report's list, each after its separator (`,`, a
/// line break and the list's indentation).
fn streams_text(streams: &[StreamReport]) -> io::Result<Vec<u8>> {
    let mut out = Vec::new();
    for s in streams {
        out.extend_from_slice(b",\n    ");
        write_at(&mut out, s, 2)?;
    }
    Ok(out)
}

/// `serde_json::ser::PrettyFormatter` with an indentation of two spaces, writing a line
/// break and its indentation as one slice.
#[derive(Default)]
struct Pretty {
    level: usize,
    has_value: bool,
}

impl Pretty {
    /// A line break, then the current level's indentation.
    fn new_line<W: ?Sized + Write>(&self, w: &mut W) -> io::Result<()> {
        let mut spaces = 2 * self.level;
        let room = BREAK.len() - 1;
        w.write_all(BREAK.get(..1 + spaces.min(room)).unwrap_or(b"\n"))?;
        while spaces > room {
            spaces -= room;
            w.write_all(BREAK.get(1..1 + spaces.min(room)).unwrap_or_default())?;
        }
        Ok(())
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
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

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
    fn a_report_written_by_threads_is_serde_jsons_pretty_one() {
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
                for (threads, per_turn) in [(1, 16), (2, 1), (3, 2), (2, 16)] {
                    let mut ours = Vec::new();
                    write_in_turns(&mut ours, &mut report, threads, per_turn).expect("write");
                    assert_eq!(String::from_utf8(ours).expect("utf-8"), stock, "{path:?}");
                }
                seen += usize::from(report.streams.len() > 1);
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
