//! Writing markup so that nothing but this program's own literals can become markup.
//!
//! Owns [`Html`] (markup known to be safe), the `emit!` macro that writes it, and the one
//! HTML escaper of the page. The markup of a page is written only as format-string literals of
//! this program; every value put into one (a number, a file name, a verdict's reason, an
//! escaped preview) goes through [`Fill`], which escapes `&`, `<`, `>`, `"` and `'` in text
//! and writes numbers as numbers, so a captured `<script>` or `</svg>` shows as text in an
//! element or an attribute and never closes one. Text taken from a capture is first made
//! visible by [`crate::escape`] (the report already did so for what it holds, [`Captured`]
//! does it for the rest), then HTML-escaped here. Nothing here knows what a report says.

use std::fmt::{self, Write as _};

/// Markup that is safe to put in a page as it is: only `emit!` and [`Html::literal`] make it.
#[derive(Debug, Default, Clone)]
pub struct Html(String);

impl Html {
    /// Empty markup.
    pub fn new() -> Self {
        Html(String::new())
    }

    /// Markup of this program's own (a literal: it cannot hold anything from outside).
    pub fn literal(s: &'static str) -> Self {
        Html(s.to_string())
    }

    /// Append markup of this program's own.
    pub fn raw(&mut self, s: &'static str) {
        self.0.push_str(s);
    }

    /// Append markup made elsewhere (itself made of literals and escaped values).
    pub fn push(&mut self, other: &Html) {
        self.0.push_str(&other.0);
    }

    /// What `emit!` calls: the literal's parts with each value escaped.
    pub fn write_fmt(&mut self, args: fmt::Arguments<'_>) {
        let _ = self.0.write_fmt(args);
    }

    /// The markup.
    pub fn into_string(self) -> String {
        self.0
    }

    /// The markup, to look at.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// Append to an [`Html`] a format-string literal whose `{}` are filled with values, each
/// escaped by its [`Fill`]: `emit!(page, "<td>{}</td>", name)`.
macro_rules! emit {
    ($out:expr, $fmt:literal $(, $arg:expr)* $(,)?) => {
        $out.write_fmt(format_args!($fmt $(, $crate::analyze::report::html::markup::Filled(&$arg))*))
    };
}
pub(crate) use emit;

/// A value put into markup, written so that it cannot be read as markup.
pub trait Fill {
    /// Write the value, escaped, to `out`.
    fn fill(&self, out: &mut fmt::Formatter<'_>) -> fmt::Result;
}

/// What `emit!` wraps each value in.
pub struct Filled<'a, T: Fill + ?Sized>(pub &'a T);

impl<T: Fill + ?Sized> fmt::Display for Filled<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fill(f)
    }
}

/// `text` with the characters that mean something in HTML written as character references:
/// safe in element content and in a double- or single-quoted attribute.
pub fn escape_html(text: &str, out: &mut impl fmt::Write) -> fmt::Result {
    let mut from = 0;
    for (i, c) in text.char_indices() {
        let entity = match c {
            '&' => "&amp;",
            '<' => "&lt;",
            '>' => "&gt;",
            '"' => "&quot;",
            '\'' => "&#39;",
            _ => continue,
        };
        out.write_str(text.get(from..i).unwrap_or(""))?;
        out.write_str(entity)?;
        from = i + c.len_utf8();
    }
    out.write_str(text.get(from..).unwrap_or(""))
}

impl Fill for str {
    fn fill(&self, out: &mut fmt::Formatter<'_>) -> fmt::Result {
        escape_html(self, out)
    }
}

impl Fill for String {
    fn fill(&self, out: &mut fmt::Formatter<'_>) -> fmt::Result {
        escape_html(self, out)
    }
}

impl<T: Fill + ?Sized> Fill for &T {
    fn fill(&self, out: &mut fmt::Formatter<'_>) -> fmt::Result {
        (**self).fill(out)
    }
}

impl Fill for Html {
    fn fill(&self, out: &mut fmt::Formatter<'_>) -> fmt::Result {
        out.write_str(&self.0)
    }
}

macro_rules! fill_integers {
    ($($t:ty),*) => {$(
        impl Fill for $t {
            fn fill(&self, out: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(out, "{self}")
            }
        }
    )*};
}
fill_integers!(u8, u16, u32, u64, usize, i32, i64);

/// A number with a fixed count of decimals (`Fixed(2.5, 1)` is `2.5`); a value that is not
/// finite is written as 0, so that no coordinate is ever `NaN`.
#[derive(Debug, Clone, Copy)]
pub struct Fixed(pub f64, pub usize);

impl Fill for Fixed {
    fn fill(&self, out: &mut fmt::Formatter<'_>) -> fmt::Result {
        let v = if self.0.is_finite() { self.0 } else { 0.0 };
        let s = format!("{v:.*}", self.1);
        // No "-0.00" for a value that rounds to zero.
        match s.strip_prefix('-') {
            Some(rest) if rest.bytes().all(|b| b == b'0' || b == b'.') => out.write_str(rest),
            _ => out.write_str(&s),
        }
    }
}

/// Bytes or text taken from a capture that the report did not make visible yet (a name in an
/// rchat HELLO, decrypted text, a file name): [`crate::escape`] first, then HTML escaping.
pub struct Captured<'a>(pub &'a [u8]);

impl Fill for Captured<'_> {
    fn fill(&self, out: &mut fmt::Formatter<'_>) -> fmt::Result {
        escape_html(&crate::escape::bytes(self.0), out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_never_become_markup() {
        let mut h = Html::new();
        let hostile = "</svg><script>alert('x')</script>&amp;\"";
        emit!(h, "<p title=\"{}\">{}</p>", hostile, hostile);
        assert_eq!(
            h.as_str(),
            "<p title=\"&lt;/svg&gt;&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt;&amp;amp;&quot;\">\
             &lt;/svg&gt;&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt;&amp;amp;&quot;</p>"
        );
    }

    #[test]
    fn captured_text_is_made_visible_then_escaped() {
        let mut h = Html::new();
        emit!(h, "{}", Captured(b"<b>\x1b[2J\xff\n"));
        assert_eq!(h.as_str(), "&lt;b&gt;\\u{1b}[2J\\xff\\n");
    }

    #[test]
    fn numbers_are_plain_and_finite() {
        let mut h = Html::new();
        emit!(h, "{} {} {} {}", 42u64, Fixed(1.26, 1), Fixed(f64::NAN, 2), Fixed(-0.0001, 2));
        assert_eq!(h.as_str(), "42 1.3 0.00 0.00");
    }
}
