//! The wording of the verdicts: the one plain sentence a student reads for each, and the
//! phrases it is made of.
//!
//! Owns every sentence and phrase of a reason (and the number formats in them); it decides
//! nothing: the numbers and the verdict come from [`super::verdict`] and
//! [`super::encodings`]. Reasons are only written when wanted (see `Facts::say`): a message's
//! verdict is kept without one.

use super::{MIN_BYTES, Verdict};

/// A share as a percentage, never "100%" or "0%" for what is not exactly that.
pub(super) fn pct(x: f64) -> String {
    let p = x * 100.0;
    if p > 99.5 && p < 100.0 {
        "over 99%".into()
    } else if p > 0.0 && p < 0.5 {
        "under 1%".into()
    } else {
        format!("{p:.0}%")
    }
}

/// `n` and the word for one or for many: "1 byte", "2 bytes".
pub(crate) fn plural(n: u64, one: &str, many: &str) -> String {
    if n == 1 { format!("{n} {one}") } else { format!("{n} {many}") }
}

/// No bytes at all.
pub(super) fn empty() -> String {
    "No bytes were sent, so there is nothing to read.".into()
}

/// Bytes were sent, but the capture kept none of them.
pub(super) fn nothing_kept(missing: u64, cut: u64) -> String {
    let sent = plural(missing, "byte was", "bytes were");
    if cut == missing {
        format!(
            "{sent} sent, but the capture's snaplen cut off every one of them: there is \
             nothing to judge (capture with `tcpdump -s 0` to keep whole packets)."
        )
    } else {
        format!("{sent} sent, but the capture holds none of them: there is nothing to judge.")
    }
}

/// Fewer than [`MIN_BYTES`].
pub(super) fn not_read_back(n: u64) -> String {
    format!(
        "The {} of this message could not be read back from the capture file (it was cut short \
         during the analysis): nothing can be said of them.",
        plural(n, "byte", "bytes")
    )
}

pub(super) fn too_few(n: u64) -> String {
    format!(
        "Only {}: too few to tell readable text from ciphertext (at least {MIN_BYTES} are needed).",
        plural(n, "byte", "bytes")
    )
}

/// Bytes as flat as random ones.
pub(super) fn random(n: u64, entropy: f64, expected: f64, ratio: f64) -> String {
    format!(
        "The {n} bytes look like random noise (entropy {:.2} bits/byte against {:.2} for random bytes of that length, only {} printable), so they are encrypted (or compressed): the two look alike.",
        entropy,
        expected,
        pct(ratio)
    )
}

/// Bytes that are not text and too uneven to be random.
pub(super) fn structured(n: u64, ratio: f64, entropy: f64, expected: f64) -> String {
    let what = if ratio >= 0.7 {
        format!("mostly text ({} printable) mixed with non-text bytes", pct(ratio))
    } else {
        format!("not text (only {} printable)", pct(ratio))
    };
    format!(
        "The {n} bytes are {what} and too uneven to be random (entropy {:.2} bits/byte against {:.2} for random bytes of that length), so this is structured binary data, not ciphertext.",
        entropy, expected
    )
}

/// Printable UTF-8 text.
pub(super) fn readable(n: u64, ratio: f64, non_ascii: bool, entropy: f64, expected: f64) -> String {
    let script = if non_ascii { " (including non-Latin letters)" } else { "" };
    format!(
        "{} of the {n} bytes are printable UTF-8 text{script}, which random bytes almost never are, so anyone on the path can read it (entropy {:.2} bits/byte, random bytes would give {:.2}).",
        pct(ratio),
        entropy,
        expected
    )
}

/// ", the size of one RSA-N block" when `bits` is a key size, otherwise nothing.
pub(super) fn rsa_block(bits: Option<u32>) -> String {
    bits.map(|b| format!(", the size of one RSA-{b} block")).unwrap_or_default()
}

/// The same for `count` numbers of one size.
pub(super) fn rsa_blocks(bits: Option<u32>, count: u64) -> String {
    match bits {
        Some(bits) if count == 1 => format!(", the size of one RSA-{bits} block"),
        Some(bits) => format!(", each the size of one RSA-{bits} block"),
        None => String::new(),
    }
}

/// What decimal numbers are: how many, and where they were counted.
pub(super) fn decimal_numbers(count: u64, sample_len: usize, n: u64) -> String {
    let what = if count == 1 {
        "one decimal number".to_string()
    } else {
        format!("{count} decimal numbers")
    };
    if sample_len as u64 == n { what } else { format!("{what} (in the first {sample_len} bytes)") }
}

/// Encoded tokens inside a little text.
pub(super) fn embedded(encoding: &str, runs: u64, share: f64) -> String {
    format!(
        "mostly {} inside a little readable text ({}, {} of the bytes)",
        encoding,
        plural(runs, "block", "blocks"),
        pct(share)
    )
}

/// Letters and digits that may be a word or base64.
pub(super) fn word_or_base64(n: u64) -> String {
    format!(
        "The {} bytes are letters and digits with no spaces: a single word or a piece of base64, too few to tell which.",
        n
    )
}

/// Text that is `what`, decoding to `total` bytes judged `inner`.
pub(super) fn decoded(n: u64, what: &str, total: u64, inner: Verdict, hint: &str) -> String {
    let size = plural(total, "byte", "bytes");
    let content = match inner {
        Verdict::Ciphertext => {
            format!("{size} that look random (ciphertext, compressed data, a key or a hash){hint}")
        }
        Verdict::Plaintext => {
            format!("{size} of readable text{hint}, so anyone can decode and read it")
        }
        Verdict::Binary => format!("{size} of structured binary data{hint}"),
        _ => format!("{size}{hint}, too few to say what they are"),
    };
    format!("The {n} printable bytes are {what}, not language: they decode to {content}.")
}

/// Short encrypted messages whose framing makes the whole look structured.
pub(super) fn random_messages(count: u64) -> String {
    format!(
        "Each of the {} looks like random noise on its own (only the framing bytes between them repeat), so they are encrypted (or compressed): the two look alike.",
        plural(count, "message", "messages")
    )
}

/// Messages of several kinds: the runs of one kind in order, and how many did not count.
pub(super) fn mixed(runs: &[(Verdict, u64)], other: u64) -> String {
    let adjective = |v: Verdict| match v {
        Verdict::Plaintext => "readable",
        Verdict::Ciphertext => "ciphertext",
        Verdict::Encoded => "encoded",
        Verdict::Binary => "binary",
        _ => "other",
    };
    let describe = |(v, c): &(Verdict, u64)| {
        format!(
            "{} {}",
            plural(*c, adjective(*v), adjective(*v)),
            if *c == 1 { "message" } else { "messages" }
        )
    };
    let mut parts: Vec<String> = runs.iter().take(6).map(describe).collect();
    if runs.len() > 6 {
        parts.push(format!("{} more runs", runs.len() - 6));
    }
    let mut reason = format!("The messages are of several kinds: {}", parts.join(" then "));
    if other > 0 {
        reason.push_str(&format!(
            " (and {} too short or too doubtful to tell)",
            plural(other, "message", "messages")
        ));
    }
    reason.push('.');
    reason
}

/// A direction that sent only key material, handshakes or framing.
pub(super) fn no_messages(apart: u64) -> String {
    format!(
        "No message of its own: {} key material or a protocol's setup (named above), not \
         something a person wrote.",
        if apart == 1 {
            "its one part is".to_string()
        } else {
            format!("all its {apart} parts are")
        }
    )
}
