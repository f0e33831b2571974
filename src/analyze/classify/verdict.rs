//! The verdict over bytes and over a direction's messages.
//!
//! Owns the order of the tests (too few bytes, then character class, then flatness: see
//! [`super`]), the confidence given to each verdict, and [`combine`], which turns the verdict
//! on a direction's bytes and those of its messages into the direction's. It works on counts
//! ([`Facts`], made from an accumulator's histogram) and, for the encoding checks, on the
//! first bytes; the checks are in [`super::encodings`], the sentences in [`super::reasons`].

use std::borrow::Cow;

use super::encodings::EncodingCheck;
use super::entropy::{chi_square, expected_random_entropy, shannon_entropy};
use super::{
    Brief, CHI_SQUARE_MIN_BYTES, Classification, Confidence, MIN_BYTES, Stats, Verdict, reasons,
};

/// Is this histogram as flat as `n` random bytes would give? Either the chi-square statistic
/// is within 6 standard deviations of its mean for random bytes (an exact mean and variance
/// for every `n`, so it works on short samples too), or the entropy is close to the
/// expectation for random bytes of that length: within 3% plus `0.7/sqrt(n)` (15% at 32
/// bytes, 7% at 256, 4% at 4 KiB). Compressed data passes the second: it is not perfectly
/// uniform (a deflate block starts with its Huffman tables), but far flatter than structured
/// binary, which is full of zeros and repeated bytes.
fn looks_random(n: u64, chi: f64, entropy: f64, expected: f64) -> (bool, bool) {
    let chi_ok = chi <= 255.0 + 6.0 * 510f64.sqrt();
    let tolerance = 0.03 + 0.7 / (n.max(1) as f64).sqrt();
    let entropy_ok = entropy >= expected * (1.0 - tolerance);
    (chi_ok, entropy_ok)
}

/// Which byte values have a count other than zero: bit `b % 64` of word `b / 64`.
///
/// Made for every message, so without a loop over bits: the counts become bytes of 0 or 1
/// (on the narrowest counters there are: a few vector instructions for a table of bytes),
/// and each 8 of those become one byte of bits by a multiplication, which moves byte `k`'s
/// low bit to bit `56 + k` (the constant has bits `56 - 7k`; no two partial products meet,
/// so nothing carries into the top byte).
pub(super) fn occurring<C: Copy + Default + PartialEq>(counts: &[C; 256]) -> [u64; 4] {
    let mut occurs = [0u8; 256];
    for (o, &c) in occurs.iter_mut().zip(counts) {
        *o = u8::from(c != C::default());
    }
    let mut present = [0u64; 4];
    for (word, bytes) in present.iter_mut().zip(occurs.chunks_exact(64)) {
        for (i, eight) in bytes.chunks_exact(8).enumerate() {
            let mut x = [0u8; 8];
            x.copy_from_slice(eight);
            let bits = u64::from_le_bytes(x).wrapping_mul(0x0102_0408_1020_4080) >> 56;
            *word |= bits << (8 * i);
        }
    }
    present
}

pub(super) struct Facts<'h> {
    pub(super) n: u64,
    pub(super) hist: &'h [u64; 256],
    /// Which byte values occur (bit `b % 64` of word `b / 64`).
    pub(super) present: [u64; 4],
    pub(super) printable: u64,
    pub(super) entropy: f64,
    pub(super) expected: f64,
    pub(super) chi: f64,
    /// Whether to write the reasons (see [`Facts::say`]).
    pub(super) words: bool,
}

impl<'h> Facts<'h> {
    /// `printable` of `examined` bytes were printable; scaled up when only a sample was decoded.
    /// Without `words`, only the verdict and confidence of what [`Facts::decide`] returns mean
    /// anything: the numbers no verdict on text depends on are then not worked out for it.
    /// `present` is [`occurring`] of `hist`, which the caller makes from its own counters.
    pub(super) fn new(
        n: u64,
        hist: &'h [u64; 256],
        present: [u64; 4],
        printable: u64,
        examined: u64,
        words: bool,
    ) -> Self {
        let printable = if examined >= n || examined == 0 {
            printable
        } else {
            (printable as f64 * n as f64 / examined as f64).round() as u64
        }
        .min(n);
        let numbers = words || n - printable > n / 20;
        let (entropy, expected, chi) = if numbers {
            (shannon_entropy(hist), expected_random_entropy(n), chi_square(hist))
        } else {
            (0.0, 0.0, 0.0)
        };
        Facts { n, hist, present, printable, entropy, expected, chi, words }
    }

    /// `reason()`, or nothing when no reasons are wanted: a message's verdict is kept without
    /// one, and writing them took most of the time on captures of many short messages.
    pub(super) fn say(&self, reason: impl FnOnce() -> String) -> String {
        if self.words { reason() } else { String::new() }
    }

    /// The byte values that occur, in order.
    fn occurring(&self) -> impl Iterator<Item = u8> + '_ {
        self.present.iter().zip(0u8..).flat_map(|(&word, w)| {
            let mut bits = word;
            std::iter::from_fn(move || {
                let bit = bits.trailing_zeros() as u8;
                bits &= bits.wrapping_sub(1);
                (bit < 64).then(|| w * 64 + bit)
            })
        })
    }

    pub(super) fn stats(&self) -> Stats {
        Stats {
            bytes: self.n,
            entropy: self.entropy,
            expected_random_entropy: self.expected,
            printable_ratio: if self.n == 0 { 0.0 } else { self.printable as f64 / self.n as f64 },
            chi_square: (self.n >= CHI_SQUARE_MIN_BYTES).then_some(self.chi),
        }
    }

    /// A verdict, its reason written only if reasons are wanted (see [`Facts::say`]).
    pub(super) fn make(
        &self,
        verdict: Verdict,
        confidence: Confidence,
        reason: impl FnOnce() -> String,
    ) -> Classification {
        Classification {
            verdict,
            confidence,
            encoding: None,
            decoded_bytes: None,
            reason: self.say(reason),
            stats: self.stats(),
        }
    }

    pub(super) fn count_where(&self, f: impl Fn(u8) -> bool) -> u64 {
        self.occurring().filter(|&b| f(b)).filter_map(|b| self.hist.get(usize::from(b))).sum()
    }

    pub(super) fn only(&self, f: impl Fn(u8) -> bool) -> bool {
        self.occurring().all(f)
    }

    /// The verdict; `sample` gives the first bytes for the encoding checks (`None` if they
    /// cannot be had: then there are no encoding checks).
    pub(super) fn decide<'s>(
        &self,
        detect: bool,
        sample: impl FnOnce() -> Option<Cow<'s, [u8]>>,
    ) -> Classification {
        let n = self.n;
        if n == 0 {
            return self.make(Verdict::Empty, Confidence::High, reasons::empty);
        }
        if n < MIN_BYTES {
            return self.make(Verdict::Inconclusive, Confidence::Low, || reasons::too_few(n));
        }
        let ratio = self.printable as f64 / n as f64;
        let nonprintable = n - self.printable;
        if nonprintable <= n / 20 {
            // No sample (not asked for, or lost): no encoding checks.
            if let Some(sample) = if detect { sample() } else { None }.as_deref() {
                if self.only(|b| b.is_ascii()) {
                    match self.check_encodings(sample) {
                        EncodingCheck::Found(c) => return c,
                        EncodingCheck::Ambiguous(reason) => {
                            return self.make(Verdict::Inconclusive, Confidence::Low, || reason);
                        }
                        EncodingCheck::None => {}
                    }
                }
                if let Some(c) = self.check_embedded(sample) {
                    return c;
                }
            }
            return self.plaintext(ratio);
        }
        let (chi_ok, entropy_ok) = looks_random(self.n, self.chi, self.entropy, self.expected);
        // Random bytes are about 45% printable; allow four standard deviations above that
        // (short samples vary a lot), and never more than 80% on long ones.
        let printable_cap = (0.45 + 4.0 * (0.25 / n as f64).sqrt()).max(0.8);
        if (chi_ok || entropy_ok) && ratio < printable_cap {
            let confidence = if chi_ok && entropy_ok && n >= 64 {
                Confidence::High
            } else if n >= 32 {
                Confidence::Medium
            } else {
                Confidence::Low
            };
            return self.make(Verdict::Ciphertext, confidence, || {
                reasons::random(n, self.entropy, self.expected, ratio)
            });
        }
        let confidence = if n >= 64 && self.entropy < self.expected * 0.9 {
            Confidence::High
        } else if n >= 32 {
            Confidence::Medium
        } else {
            Confidence::Low
        };
        self.make(Verdict::Binary, confidence, || {
            reasons::structured(n, ratio, self.entropy, self.expected)
        })
    }

    fn plaintext(&self, ratio: f64) -> Classification {
        let n = self.n;
        let non_ascii = self.count_where(|b| !b.is_ascii()) > 0;
        let has_space = self.count_where(|b| b == b' ' || b == b'\n' || b == b'\t') > 0;
        let confidence = if !non_ascii && !has_space {
            Confidence::Low
        } else if n >= 64 && ratio >= 0.98 {
            Confidence::High
        } else {
            Confidence::Medium
        };
        self.make(Verdict::Plaintext, confidence, || {
            reasons::readable(n, ratio, non_ascii, self.entropy, self.expected)
        })
    }
}

/// The verdict for a whole direction, given the verdict on all its bytes and on each of its
/// messages: `Mixed` when the messages are of several kinds (e.g. a readable handshake then
/// ciphertext), otherwise the overall verdict.
///
/// Only decisive messages count (`plaintext`, `ciphertext`, `encoded`, `binary`) with at least
/// medium confidence; tiny or doubtful messages never make a direction mixed. One exception to
/// "otherwise the overall verdict": when every decisive message is ciphertext but the whole is
/// `binary` (the repeated frame headers of many short encrypted messages), the direction is
/// `ciphertext`.
pub fn combine(overall: &Classification, messages: &[Brief]) -> Classification {
    let decisive = |c: &Brief| {
        matches!(
            c.verdict,
            Verdict::Plaintext | Verdict::Ciphertext | Verdict::Encoded | Verdict::Binary
        ) && c.confidence != Confidence::Low
    };
    // Runs of consecutive decisive messages of one kind, in order.
    let mut runs: Vec<(Verdict, u64)> = Vec::new();
    let mut kinds: Vec<Verdict> = Vec::new();
    for m in messages.iter().filter(|m| decisive(m)) {
        match runs.last_mut() {
            Some((v, count)) if *v == m.verdict => *count += 1,
            _ => runs.push((m.verdict, 1)),
        }
        if !kinds.contains(&m.verdict) {
            kinds.push(m.verdict);
        }
    }
    if let [Verdict::Ciphertext] = kinds[..]
        && overall.verdict == Verdict::Binary
    {
        // Short encrypted frames each look random, but their headers (lengths, types) repeat
        // and make the whole direction look structured: the messages tell the truth.
        let count = runs.iter().map(|r| r.1).sum::<u64>();
        return Classification {
            verdict: Verdict::Ciphertext,
            confidence: Confidence::Medium,
            encoding: None,
            decoded_bytes: None,
            reason: reasons::random_messages(count),
            stats: overall.stats,
        };
    }
    if kinds.len() < 2 {
        return overall.clone();
    }
    let other = messages.len() as u64 - runs.iter().map(|r| r.1).sum::<u64>();
    let reason = reasons::mixed(&runs, other);
    let strong = kinds
        .iter()
        .all(|k| messages.iter().any(|m| m.verdict == *k && m.confidence == Confidence::High));
    Classification {
        verdict: Verdict::Mixed,
        confidence: if strong { Confidence::High } else { Confidence::Medium },
        encoding: None,
        decoded_bytes: None,
        reason,
        stats: overall.stats,
    }
}

#[cfg(test)]
mod tests {
    use super::super::test_data::noise;
    use super::super::{Accumulator, classify};
    use super::*;

    #[test]
    fn present_marks_exactly_the_values_that_occur() {
        for seed in 0..64u64 {
            let mut hist = [0u64; 256];
            for (b, c) in hist.iter_mut().enumerate() {
                let x = (b as u64 ^ seed).wrapping_mul(0x9e37_79b9_7f4a_7c15) >> 60;
                *c = if x < seed % 16 { x + seed * 1_000_000_007 } else { 0 };
            }
            let words = occurring(&hist);
            let narrow: [u8; 256] = hist.map(|c| u8::from(c != 0) * 3);
            assert_eq!(occurring(&narrow), words);
            for (b, &c) in hist.iter().enumerate() {
                assert_eq!(words[b / 64] >> (b % 64) & 1 == 1, c != 0, "value {b}, seed {seed}");
            }
        }
    }

    #[test]
    fn empty_and_short() {
        let c = classify(b"");
        assert_eq!(c.verdict, Verdict::Empty);
        assert_eq!(c.stats.bytes, 0);
        let c = classify(b"hi there");
        assert_eq!(c.verdict, Verdict::Inconclusive);
        assert!(c.reason.contains("8 bytes"), "{}", c.reason);
        assert_eq!(classify(&noise(15, 3)).verdict, Verdict::Inconclusive);
        assert_eq!(classify(b"see you at noon!").verdict, Verdict::Plaintext);
    }

    #[test]
    fn text_in_any_script_is_plaintext() {
        for text in [
            "The quick meeting moved to room 12, see you there.",
            "Привет! Как дела? Увидимся завтра в библиотеке.",
            "明天下午三点在图书馆门口见面，不见不散。",
            "{\"from\":\"alice\",\"text\":\"hello bob\",\"ts\":1700000000}",
            "\u{1b}[1mbold\u{1b}[0m and plain text with a colour escape or two in it",
        ] {
            let c = classify(text.as_bytes());
            assert_eq!(c.verdict, Verdict::Plaintext, "{text}: {}", c.reason);
            assert!(c.reason.contains("anyone"));
        }
    }

    #[test]
    fn random_is_ciphertext_with_the_right_words() {
        let c = classify(&noise(4096, 5));
        assert_eq!(c.verdict, Verdict::Ciphertext);
        assert_eq!(c.confidence, Confidence::High);
        assert!(c.reason.contains("encrypted (or compressed): the two look alike"), "{}", c.reason);
        assert!(c.stats.chi_square.is_some_and(|x| x > 150.0 && x < 400.0));
        assert!(c.stats.entropy > 7.9);
        let c = classify(&noise(256, 6));
        assert_eq!(c.verdict, Verdict::Ciphertext);
        assert_eq!(c.stats.chi_square, None);
        for seed in 0..200 {
            assert_ne!(classify(&noise(16, seed)).verdict, Verdict::Plaintext);
        }
    }

    #[test]
    fn structured_binary() {
        let mut data = Vec::new();
        for i in 0u32..200 {
            data.extend_from_slice(&i.to_be_bytes());
            data.extend_from_slice(&[0, 0, 0, 1, 0x80, 0, 0, 0]);
        }
        let c = classify(&data);
        assert_eq!(c.verdict, Verdict::Binary, "{}", c.reason);
        assert!(c.reason.contains("not ciphertext"));
        // Short binary: an ELF header, a few x86 instructions, floats.
        let elf = [
            0x7f, b'E', b'L', b'F', 2, 1, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 3, 0, 0x3e, 0, 1, 0, 0, 0,
            0x40, 0x10, 0, 0, 0, 0, 0, 0, 0x40, 0, 0, 0, 0, 0, 0, 0,
        ];
        let code = [
            0x55, 0x48, 0x89, 0xe5, 0x48, 0x83, 0xec, 0x10, 0x89, 0x7d, 0xfc, 0x8b, 0x45, 0xfc,
            0x83, 0xc0, 0x01, 0x89, 0x45, 0xf8, 0x8b, 0x45, 0xf8, 0x48, 0x83, 0xc4, 0x10, 0x5d,
            0xc3, 0x90, 0x90, 0x90, 0x55, 0x48, 0x89, 0xe5, 0xb8, 0x00, 0x00, 0x00,
        ];
        let floats: Vec<u8> = (0..16).flat_map(|i| (i as f32 * 0.5).to_le_bytes()).collect();
        for data in [&elf[..], &code[..], &floats[..]] {
            assert_eq!(classify(data).verdict, Verdict::Binary, "{data:?}");
        }
        let utf16: Vec<u8> =
            "hello there, how are you".encode_utf16().flat_map(u16::to_le_bytes).collect();
        assert_eq!(classify(&utf16).verdict, Verdict::Binary);
    }

    fn message(verdict: Verdict, confidence: Confidence) -> Brief {
        Brief { verdict, confidence }
    }

    #[test]
    fn short_encrypted_frames() {
        // Frames: 4-byte length, 1-byte type, then 35 random bytes.
        let mut acc = Accumulator::new();
        let mut messages = Vec::new();
        for i in 0..300u64 {
            let mut frame = vec![0, 0, 0, 36, 2];
            frame.extend_from_slice(&noise(35, 1000 + i));
            acc.update(&frame);
            messages.push(classify(&frame).brief());
        }
        assert!(messages.iter().all(|m| m.verdict == Verdict::Ciphertext));
        let overall = acc.finish();
        assert_eq!(overall.verdict, Verdict::Binary, "{}", overall.reason);
        let c = combine(&overall, &messages);
        assert_eq!(c.verdict, Verdict::Ciphertext, "{} / {}", overall.reason, c.reason);
        assert!(c.reason.contains("encrypted (or compressed): the two look alike"));
    }

    #[test]
    fn combine_mixed_and_not() {
        let overall = classify(&noise(5000, 1));
        let mut messages = vec![message(Verdict::Plaintext, Confidence::High); 2];
        messages.extend(vec![message(Verdict::Ciphertext, Confidence::High); 14]);
        messages.push(message(Verdict::Inconclusive, Confidence::Low));
        let c = combine(&overall, &messages);
        assert_eq!(c.verdict, Verdict::Mixed);
        assert_eq!(c.confidence, Confidence::High);
        assert!(
            c.reason.contains("2 readable messages then 14 ciphertext messages"),
            "{}",
            c.reason
        );
        assert!(c.reason.contains("1 message too short"), "{}", c.reason);
        assert_eq!(c.stats, overall.stats);

        let mut messages = vec![message(Verdict::Ciphertext, Confidence::High); 10];
        messages.push(message(Verdict::Inconclusive, Confidence::Low));
        messages.push(message(Verdict::Plaintext, Confidence::Low));
        assert_eq!(combine(&overall, &messages), overall);
        assert_eq!(combine(&overall, &[]), overall);
    }
}
