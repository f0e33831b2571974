//! Telling readable text from ciphertext: byte statistics and the verdict built on them.
//!
//! Owns the statistics (Shannon entropy against the entropy expected of random bytes of the
//! same length, printable UTF-8 ratio, chi-square when the sample is large enough), the
//! detection of text encodings that carry high-entropy bytes (base64, hex, decimal numbers),
//! and the plain-words reason given for each verdict. It sees bytes only: never packets,
//! files or streams. Input is fed in pieces so memory stays bounded whatever the length.
//!
//! (Interface fixed; the statistics are being written.)

use serde::Serialize;

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
    /// No bytes at all.
    Empty,
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

/// The numbers behind a verdict.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Stats {
    /// Bytes examined.
    pub bytes: u64,
    /// Shannon entropy in bits per byte.
    pub entropy: f64,
    /// Mean Shannon entropy of uniformly random bytes of the same length.
    pub expected_random_entropy: f64,
    /// Share of the bytes that are printable UTF-8 text (0..=1).
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

/// Incremental classifier: feed bytes in pieces, then ask for the verdict.
#[derive(Debug, Clone, Default)]
pub struct Accumulator {
    bytes: u64,
}

impl Accumulator {
    /// An empty accumulator.
    pub fn new() -> Self {
        Self::default()
    }

    /// Add the next bytes.
    pub fn update(&mut self, data: &[u8]) {
        self.bytes += data.len() as u64;
    }

    /// The verdict on everything fed so far.
    pub fn finish(&self) -> Classification {
        Classification {
            verdict: if self.bytes == 0 { Verdict::Empty } else { Verdict::Inconclusive },
            confidence: Confidence::Low,
            encoding: None,
            decoded_bytes: None,
            reason: "not analysed yet".into(),
            stats: Stats {
                bytes: self.bytes,
                entropy: 0.0,
                expected_random_entropy: 0.0,
                printable_ratio: 0.0,
                chi_square: None,
            },
        }
    }
}

/// Classify one complete piece of data.
pub fn classify(data: &[u8]) -> Classification {
    let mut acc = Accumulator::new();
    acc.update(data);
    acc.finish()
}

/// The verdict for a whole direction, given the verdict on all its bytes and on each of its
/// messages: `Mixed` when the messages are of several kinds (e.g. a readable handshake then
/// ciphertext), otherwise the overall verdict.
pub fn combine(overall: &Classification, _messages: &[Classification]) -> Classification {
    overall.clone()
}
