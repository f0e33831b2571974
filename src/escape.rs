//! The one way rchat shows text it did not write: a peer's name and messages on the chat
//! screen, captured payloads in the analysis reports. Whatever comes in, what goes out is one
//! line of visible characters that cannot move the cursor, clear the screen, ring the bell,
//! reorder or hide the text around it, or be mistaken for an escape rchat made itself.
//!
//! The rules: newline, carriage return and tab become `\n`, `\r`, `\t`; a backslash becomes
//! `\\` (so `\u{1b}` typed by a peer is told apart from an escaped ESC); every other control
//! character, and every Unicode character that reorders or hides text (bidirectional
//! embeddings, overrides and isolates such as U+202E, zero-width spaces and joiners, the byte
//! order mark), becomes `\u{HEX}`; bytes that are not UTF-8 become `\xNN`. Everything else,
//! any script or emoji, is shown as it is. Renderers that need more (HTML) escape this output
//! again for their own syntax.

use std::borrow::Cow;
use std::fmt::Write;

/// Characters that change how the text around them reads without being seen: the
/// bidirectional controls (Unicode's Bidi_Control property) and the invisible format
/// characters that hide or join text.
fn reorders_or_hides(c: char) -> bool {
    matches!(
        c,
        '\u{061c}'              // arabic letter mark
            | '\u{180e}'        // mongolian vowel separator
            | '\u{200b}'..='\u{200f}' // zero-width space, non-joiner, joiner, LRM, RLM
            | '\u{2028}' | '\u{2029}' // line and paragraph separators
            | '\u{202a}'..='\u{202e}' // embeddings and overrides (U+202E: right-to-left override)
            | '\u{2060}'..='\u{2064}' // word joiner and invisible operators
            | '\u{2066}'..='\u{2069}' // isolates
            | '\u{feff}' // byte order mark, zero-width no-break space
    )
}

/// Whether `c` is shown as an escape rather than as itself.
fn escaped(c: char) -> bool {
    c == '\\' || c.is_control() || reorders_or_hides(c)
}

fn push_char(out: &mut String, c: char) {
    match c {
        '\n' => out.push_str("\\n"),
        '\r' => out.push_str("\\r"),
        '\t' => out.push_str("\\t"),
        '\\' => out.push_str("\\\\"),
        c if escaped(c) => {
            let _ = write!(out, "\\u{{{:x}}}", u32::from(c));
        }
        c => out.push(c),
    }
}

/// `text` made safe to show; borrowed when nothing needed escaping.
pub fn text(text: &str) -> Cow<'_, str> {
    if !text.chars().any(escaped) {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        push_char(&mut out, c);
    }
    Cow::Owned(out)
}

/// `bytes` (UTF-8 or not) made safe to show: invalid UTF-8 appears as `\xNN`.
pub fn bytes(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len());
    for chunk in bytes.utf8_chunks() {
        for c in chunk.valid().chars() {
            push_char(&mut out, c);
        }
        for b in chunk.invalid() {
            let _ = write!(out, "\\x{b:02x}");
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn terminal_controls_are_shown_not_obeyed() {
        assert_eq!(text("\x1b[2Jboo\r"), "\\u{1b}[2Jboo\\r");
        assert_eq!(text("a\tb\u{7}"), "a\\tb\\u{7}");
        assert_eq!(bytes(b"hi\n\x01\xff"), "hi\\n\\u{1}\\xff");
        assert_eq!(bytes(b"\x7f\xc3"), "\\u{7f}\\xc3");
    }

    #[test]
    fn text_that_reorders_or_hides_is_made_visible() {
        // "evil\u{202e}txt.exe" would read as "evilexe.txt" on a terminal.
        assert_eq!(text("evil\u{202e}txt.exe"), "evil\\u{202e}txt.exe");
        assert_eq!(text("a\u{200b}b\u{2066}c\u{feff}"), "a\\u{200b}b\\u{2066}c\\u{feff}");
        assert_eq!(bytes("\u{2069}".as_bytes()), "\\u{2069}");
    }

    #[test]
    fn a_typed_escape_is_told_apart_from_ours() {
        assert_eq!(text("\\u{1b}"), "\\\\u{1b}");
        assert_ne!(text("\\u{1b}"), text("\u{1b}"));
    }

    #[test]
    fn ordinary_text_of_any_script_is_left_alone() {
        for s in ["plain text", "привет", "你好 👋", "مرحبا", "naïve café"] {
            assert!(matches!(text(s), Cow::Borrowed(_)), "{s}");
            assert_eq!(bytes(s.as_bytes()), s);
        }
    }
}
