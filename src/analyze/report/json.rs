//! The report's JSON form, written out: `serde_json`'s pretty layout (two spaces a level), byte
//! for byte, with each line break and its indentation written at once.
//!
//! A capture of many short messages lists hundreds of thousands of them, each a small object
//! of a few lines, and the report is written by one thread after the analysis: there, the
//! stock pretty printer's one write per level of indentation was a tenth of the run. What is
//! written is the report's `Serialize` form (the one JSON model, in [`super`]); this module
//! only lays it out.

use std::io::{self, Write};

use serde::Serialize;

/// A line break and the deepest indentation written in one piece; deeper levels add more.
const BREAK: &[u8] = b"\n                                                                ";

/// Write `value` as `serde_json::to_writer_pretty` would.
pub fn write_pretty<W: Write, T: Serialize + ?Sized>(writer: W, value: &T) -> io::Result<()> {
    let mut ser = serde_json::Serializer::with_formatter(writer, Pretty::default());
    value.serialize(&mut ser).map_err(io::Error::from)
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
