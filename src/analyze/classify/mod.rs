//! Stage 4, classifying: bytes come in (a direction, or one of its messages, in pieces); a
//! verdict goes out: readable text, ciphertext, encoded, binary, mixed, with its confidence,
//! its numbers and one plain sentence.
//!
//! In seven parts: `counting` (the [`Accumulator`]: its histogram and printable UTF-8 count,
//! fed in pieces, or kept and counted at the end for a message), `judge` (asking it for a
//! verdict), `entropy` (the numbers of a histogram: Shannon entropy against the entropy
//! expected of random bytes of the same length, chi-square when the sample is large enough),
//! `histogram` (the counts a report keeps, [`Histogram`], moved out of the accumulator),
//! `encodings` (text encodings that carry high-entropy bytes: base64, hex, decimal numbers),
//! `verdict` (the order of the tests, and [`combine`] over a direction's messages) and
//! `reasons` (the wording). It sees bytes only
//! (through [`Captured`](crate::analyze::input::Captured), whose origin it never asks): never
//! packets, streams, or where bytes lie in the capture file. Input is fed in pieces so memory
//! stays bounded whatever the length.
//!
//! How a verdict is reached, in order:
//! 1. Under 16 bytes nothing can be told (`inconclusive`).
//! 2. Character class first: random bytes are printable UTF-8 with probability about 0.45
//!    each, so data that is (almost) all printable UTF-8 is text of some kind. Text made only
//!    of the characters of an encoding (decimal numbers, hex digits, base64), or mostly of
//!    long tokens of one (a JSON envelope around a base64 field), is decoded and the decoded
//!    bytes judged in turn (`encoded`); other text is `plaintext`.
//! 3. Non-text is `ciphertext` when its byte histogram is as flat as random bytes of the same
//!    length would give (a dispersion test valid at every length, plus Shannon entropy
//!    against its exact expectation for that length), otherwise `binary`.
//!
//! Memory is a 256-bin histogram (bytes are counted in four interleaved scratch tables, the
//! thread's own or a caller's for a run of pieces, then added to it), a UTF-8 decoder state
//! carried across pieces, and the first 64 KiB as a sample for encoding detection, kept by
//! `input::sample` (copied, or noted by where it came from and fetched back if needed). The
//! printable count of a stream decodes every byte of the first 64 KiB and one 64 KiB block in
//! 16 after it, which keeps `update` at histogram speed on long streams; a single message
//! given to [`classify`] is decoded in full.

mod counting;
mod encodings;
mod entropy;
mod histogram;
mod judge;
mod reasons;
mod verdict;

use serde::Serialize;

pub use counting::{Accumulator, Scratch};
pub use entropy::{chi_square, expected_random_entropy, shannon_entropy};
pub use histogram::Histogram;
pub(crate) use reasons::plural;
pub use verdict::combine;

/// What an eavesdropper is looking at.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Verdict {
    /// Readable text.
    Plaintext,
    /// High entropy: encrypted, or compressed (the two look alike).
    Ciphertext,
    /// Printable text that carries high-entropy bytes (base64, hex, decimal numbers).
    Encoded,
    /// Not text, low entropy, structured.
    Binary,
    /// Several kinds, e.g. a readable key exchange followed by ciphertext.
    Mixed,
    /// Too few bytes to tell.
    Inconclusive,
    /// No message bytes at all (nothing sent, or only key material and a protocol's setup).
    Empty,
}

impl Verdict {
    /// The verdict as its lowercase name (as in the JSON output).
    pub fn as_str(self) -> &'static str {
        match self {
            Verdict::Plaintext => "plaintext",
            Verdict::Ciphertext => "ciphertext",
            Verdict::Encoded => "encoded",
            Verdict::Binary => "binary",
            Verdict::Mixed => "mixed",
            Verdict::Inconclusive => "inconclusive",
            Verdict::Empty => "empty",
        }
    }
}

/// How sure the verdict is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Confidence {
    /// Strong evidence.
    High,
    /// Some evidence.
    Medium,
    /// Weak evidence.
    Low,
}

/// A text encoding of binary data.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Encoding {
    /// Base64 (standard or URL-safe alphabet).
    Base64,
    /// Hexadecimal digits.
    Hex,
    /// Decimal numbers (textbook RSA printed as integers).
    Decimal,
}

impl Encoding {
    /// The encoding as its lowercase name (as in the JSON output).
    pub fn as_str(self) -> &'static str {
        match self {
            Encoding::Base64 => "base64",
            Encoding::Hex => "hex",
            Encoding::Decimal => "decimal",
        }
    }
}

/// The numbers behind a verdict.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct Stats {
    /// Bytes examined.
    pub bytes: u64,
    /// Shannon entropy in bits per byte.
    pub entropy: f64,
    /// Mean Shannon entropy of uniformly random bytes of the same length.
    pub expected_random_entropy: f64,
    /// Share of the bytes that are printable UTF-8 text (0..=1): valid UTF-8, not a control
    /// character except tab, newline and carriage return. For a stream, exact for the first
    /// 64 KiB; beyond it, estimated from one 64 KiB block in 16.
    pub printable_ratio: f64,
    /// Chi-square statistic against uniform bytes, when the sample is large enough.
    pub chi_square: Option<f64>,
}

/// A verdict with its confidence, reason and numbers.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Classification {
    /// The verdict.
    pub verdict: Verdict,
    /// How sure.
    pub confidence: Confidence,
    /// For `Encoded`: which encoding.
    pub encoding: Option<Encoding>,
    /// For `Encoded`: the size of the decoded bytes.
    pub decoded_bytes: Option<u64>,
    /// One plain sentence a student can follow.
    pub reason: String,
    /// The numbers behind it.
    pub stats: Stats,
}

/// A verdict and its confidence, without the reason and the numbers: all that is kept of
/// each message of a direction.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Brief {
    /// The verdict.
    pub verdict: Verdict,
    /// How sure.
    pub confidence: Confidence,
}

impl Classification {
    /// The classification of a direction of which the capture kept no byte although
    /// `missing` were sent (`cut` of them cut off by the snaplen): not "empty", since the
    /// people did send something, but nothing the capture holds can be judged.
    pub fn nothing_kept(mut self, missing: u64, cut: u64) -> Classification {
        if self.verdict == Verdict::Empty && missing > 0 {
            self.verdict = Verdict::Inconclusive;
            self.confidence = Confidence::Low;
            self.reason = reasons::nothing_kept(missing, cut);
        }
        self
    }

    /// The classification of a direction whose message bytes are none, though it sent `apart`
    /// parts that are not messages (key material, a protocol's handshake or framing): it said
    /// nothing of its own.
    pub fn without_messages(mut self, apart: u64) -> Classification {
        if self.verdict == Verdict::Empty && apart > 0 {
            self.reason = reasons::no_messages(apart);
        }
        self
    }

    /// The verdict and confidence alone.
    pub fn brief(&self) -> Brief {
        Brief { verdict: self.verdict, confidence: self.confidence }
    }
}

/// Fewer bytes than this are `inconclusive`.
pub const MIN_BYTES: u64 = 16;
/// Chi-square is reported from this many bytes on (5 expected per bin).
pub const CHI_SQUARE_MIN_BYTES: u64 = 1280;
pub use super::input::sample::SAMPLE_LIMIT;

/// Classify one complete piece of data.
pub fn classify(data: &[u8]) -> Classification {
    let mut acc = Accumulator::exact();
    acc.update(data);
    acc.finish()
}

/// Test inputs shared by the tests of the classifier's parts.
#[cfg(test)]
mod test_data {
    /// Deterministic test bytes (xorshift64*).
    pub(super) fn noise(n: usize, seed: u64) -> Vec<u8> {
        let mut x = seed | 1;
        (0..n)
            .map(|_| {
                x ^= x >> 12;
                x ^= x << 25;
                x ^= x >> 27;
                (x.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 56) as u8
            })
            .collect()
    }

    pub(super) fn to_hex(bytes: &[u8], sep: &str, upper: bool) -> String {
        let parts: Vec<String> = bytes
            .iter()
            .map(|b| if upper { format!("{b:02X}") } else { format!("{b:02x}") })
            .collect();
        parts.join(sep)
    }

    pub(super) fn b64(bytes: &[u8]) -> String {
        use base64::Engine;
        base64::engine::general_purpose::STANDARD.encode(bytes)
    }

    pub(super) const TEXT: &str = "Meet me by the old oak at six; bring the map and the spare key.\n\
        Встретимся у старого дуба в шесть, не забудь карту. 我们六点在老橡树下见面，别忘了带地图。\n";
}
