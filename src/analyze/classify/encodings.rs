//! Text encodings that carry high-entropy bytes: decimal numbers, hexadecimal digits, base64,
//! and long tokens of one of them inside a little text (a JSON envelope around a base64
//! field).
//!
//! Owns recognising each encoding from the byte counts and the first bytes, decoding it
//! (leniently: separators, padding and line breaks are skipped), and judging the decoded bytes
//! in turn. It sees the first bytes of the data only, never more than the sample holds.

use super::counting::Accumulator;
use super::verdict::Facts;
use super::{Classification, Confidence, Encoding, MIN_BYTES, Verdict, reasons};

fn rsa_hint(len: u64) -> Option<u32> {
    match len {
        128 => Some(1024),
        256 => Some(2048),
        384 => Some(3072),
        512 => Some(4096),
        _ => None,
    }
}

/// What the encoding check found.
pub(super) enum EncodingCheck {
    Found(Classification),
    /// Could be an encoding or a single word: too short to tell.
    Ambiguous(String),
    None,
}

impl Facts<'_> {
    pub(super) fn check_encodings(&self, sample: &[u8]) -> EncodingCheck {
        if let Some(c) = self.check_decimal(sample) {
            return EncodingCheck::Found(c);
        }
        if let Some(c) = self.check_hex(sample) {
            return EncodingCheck::Found(c);
        }
        self.check_base64(sample)
    }

    fn check_decimal(&self, sample: &[u8]) -> Option<Classification> {
        let sep = |b: u8| {
            matches!(b, b' ' | b'\t' | b'\r' | b'\n' | b',' | b';' | b'[' | b']' | b'(' | b')')
        };
        if !self.only(|b| b.is_ascii_digit() || sep(b)) {
            return None;
        }
        let digits = self.count_where(|b| b.is_ascii_digit());
        if digits * 2 < self.n {
            return None;
        }
        let numbers: Vec<&[u8]> =
            sample.split(|b| !b.is_ascii_digit()).filter(|t| !t.is_empty()).collect();
        // Space-separated pairs of digits are a hex dump that happens to have no letters.
        if numbers.len() >= 4 && numbers.iter().all(|t| t.len() == 2) {
            return None;
        }
        let mut decoded = Vec::new();
        let mut lengths = Vec::new();
        let mut sample_digits = 0u64;
        for t in &numbers {
            let bytes = decimal_to_bytes(t);
            sample_digits += t.len() as u64;
            lengths.push(bytes.len() as u64);
            decoded.extend_from_slice(&bytes);
        }
        let sample_decoded = decoded.len() as u64;
        let total = if sample_digits >= digits || sample_digits == 0 {
            sample_decoded
        } else {
            (sample_decoded as f64 * digits as f64 / sample_digits as f64).round() as u64
        };
        let count = numbers.len() as u64;
        let first = lengths.first().copied().unwrap_or(0);
        let same = lengths.iter().all(|&l| l == first);
        let hint = if same { rsa_hint(first) } else { None };
        let mean_digits = if count == 0 { 0.0 } else { sample_digits as f64 / count as f64 };
        let what = reasons::decimal_numbers(count, sample.len(), self.n);
        let hint_text = reasons::rsa_blocks(hint, count);
        let small = mean_digits < 6.0;
        Some(self.encoded(Encoding::Decimal, &what, &decoded, total, &hint_text, small))
    }

    fn check_hex(&self, sample: &[u8]) -> Option<Classification> {
        let ws = |b: u8| matches!(b, b' ' | b'\t' | b'\r' | b'\n');
        if !self.only(|b| b.is_ascii_hexdigit() || ws(b)) {
            return None;
        }
        let digits = self.count_where(|b| b.is_ascii_hexdigit());
        if digits < MIN_BYTES / 2 {
            return None;
        }
        let tokens: Vec<&[u8]> = sample.split(|&b| ws(b)).filter(|t| !t.is_empty()).collect();
        // The last token may be cut short (a piece of a stream), so only the others must pair up.
        let checked = tokens.len().saturating_sub(1);
        if tokens.iter().take(checked).any(|t| t.len() % 2 != 0) {
            return None;
        }
        let mut decoded = Vec::with_capacity(sample.len() / 2);
        let mut high: Option<u8> = None;
        for &b in sample {
            let Some(v) = hex_value(b) else { continue };
            match high.take() {
                Some(h) => decoded.push(h << 4 | v),
                None => high = Some(v),
            }
        }
        let total = digits / 2;
        let hint = reasons::rsa_block(rsa_hint(total));
        Some(self.encoded(Encoding::Hex, "hexadecimal digits", &decoded, total, &hint, false))
    }

    fn check_base64(&self, sample: &[u8]) -> EncodingCheck {
        let std_sym = |b: u8| b == b'+' || b == b'/';
        let url_sym = |b: u8| b == b'-' || b == b'_';
        let alpha = |b: u8| b.is_ascii_alphanumeric() || std_sym(b) || url_sym(b);
        if !self.only(|b| alpha(b) || b == b'=' || b == b'\r' || b == b'\n') {
            return EncodingCheck::None;
        }
        if self.count_where(std_sym) > 0 && self.count_where(url_sym) > 0 {
            return EncodingCheck::None;
        }
        // Padding only at the end of a line or of the data, at most two.
        let mut run = 0;
        for (i, &b) in sample.iter().enumerate() {
            if b == b'=' {
                run += 1;
                let next = sample.get(i + 1).copied();
                if run > 2 || !matches!(next, None | Some(b'=') | Some(b'\r') | Some(b'\n')) {
                    return EncodingCheck::None;
                }
            } else {
                run = 0;
            }
        }
        let chars = self.count_where(alpha);
        if chars < MIN_BYTES {
            return EncodingCheck::None;
        }
        let letters: Vec<u8> = sample.iter().copied().filter(|&b| alpha(b)).collect();
        if base64_like(&letters) {
            let decoded = base64_decode_lenient(sample);
            let total = chars * 6 / 8;
            let hint = reasons::rsa_block(rsa_hint(total));
            return EncodingCheck::Found(self.encoded(
                Encoding::Base64,
                "base64 text",
                &decoded,
                total,
                &hint,
                false,
            ));
        }
        if chars < 32 {
            return EncodingCheck::Ambiguous(self.say(|| reasons::word_or_base64(self.n)));
        }
        EncodingCheck::None
    }

    /// Text that mostly carries long encoded tokens (e.g. JSON with a base64 ciphertext field):
    /// encoded when the tokens make up at least half of the sample.
    pub(super) fn check_embedded(&self, sample: &[u8]) -> Option<Classification> {
        const MIN_RUN: usize = 24;
        let token =
            |b: &u8| b.is_ascii_alphanumeric() || matches!(b, b'+' | b'/' | b'-' | b'_' | b'=');
        // Cheap first pass: a run of 24 token bytes contains a whole aligned block of 8, and
        // most text has no such block (it is checked without a branch per byte).
        let is_token = |b: u8| {
            let lower = b | 0x20;
            lower.is_ascii_lowercase()
                | b.is_ascii_digit()
                | (b == b'+')
                | (b == b'/')
                | (b == b'-')
                | (b == b'_')
                | (b == b'=')
        };
        if !sample.chunks_exact(8).any(|c| c.iter().fold(true, |all, &b| all & is_token(b))) {
            return None;
        }
        // (bytes, runs, decoded) per encoding: decimal, hex, base64.
        let mut found: [(usize, u64, Vec<u8>); 3] = Default::default();
        for run in sample.split(|b| !token(b)).filter(|r| r.len() >= MIN_RUN) {
            let body: &[u8] = match run.iter().position(|&b| b == b'=') {
                Some(i) if run.iter().skip(i).all(|&b| b == b'=') => run.get(..i).unwrap_or(run),
                Some(_) => continue,
                None => run,
            };
            let (slot, decoded) = if body.iter().all(u8::is_ascii_digit) {
                (0, decimal_to_bytes(body))
            } else if body.len() >= 32
                && body.len().is_multiple_of(2)
                && body.iter().all(u8::is_ascii_hexdigit)
            {
                let pairs = body.chunks_exact(2);
                (
                    1,
                    pairs
                        .filter_map(|p| Some(hex_value(*p.first()?)? << 4 | hex_value(*p.get(1)?)?))
                        .collect(),
                )
            } else if base64_like(body) {
                (2, base64_decode_lenient(body))
            } else {
                continue;
            };
            if let Some(entry) = found.get_mut(slot) {
                entry.0 += run.len();
                entry.1 += 1;
                entry.2.extend_from_slice(&decoded);
            }
        }
        let covered: usize = found.iter().map(|f| f.0).sum();
        if covered * 2 < sample.len() || sample.is_empty() {
            return None;
        }
        let (slot, (bytes, runs, decoded)) = found.iter().enumerate().max_by_key(|(_, f)| f.0)?;
        let encoding = [Encoding::Decimal, Encoding::Hex, Encoding::Base64].get(slot).copied()?;
        let share = *bytes as f64 / sample.len() as f64;
        let sample_decoded = decoded.len() as u64;
        let total = if sample.len() as u64 >= self.n {
            sample_decoded
        } else {
            (sample_decoded as f64 * self.n as f64 / sample.len() as f64).round() as u64
        };
        let hint = if *runs == 1 { reasons::rsa_block(rsa_hint(total)) } else { String::new() };
        let what = reasons::embedded(encoding.as_str(), *runs, share);
        Some(self.encoded(encoding, &what, decoded, total, &hint, false))
    }

    fn encoded(
        &self,
        encoding: Encoding,
        what: &str,
        decoded: &[u8],
        total: u64,
        hint: &str,
        small_numbers: bool,
    ) -> Classification {
        let mut inner = Accumulator::new();
        inner.update(decoded);
        let judged = inner.judge(false, false);
        let sure = match judged.verdict {
            Verdict::Ciphertext => judged.confidence != Confidence::Low,
            Verdict::Plaintext | Verdict::Binary => true,
            _ => false,
        };
        let confidence = if small_numbers {
            Confidence::Low
        } else if sure && self.n >= 48 {
            Confidence::High
        } else {
            Confidence::Medium
        };
        let n = self.n;
        Classification {
            verdict: Verdict::Encoded,
            confidence,
            encoding: Some(encoding),
            decoded_bytes: Some(total),
            reason: self.say(|| reasons::decoded(n, what, total, judged.verdict, hint)),
            stats: self.stats(),
        }
    }
}

/// Do these base64-alphabet characters look like base64 of something rather than a word?
/// Random base64 switches between upper case, lower case, digits and symbols at about 65% of
/// adjacent pairs; words and identifiers rarely do.
fn base64_like(chars: &[u8]) -> bool {
    let class = |b: u8| {
        if b.is_ascii_uppercase() {
            0
        } else if b.is_ascii_lowercase() {
            1
        } else if b.is_ascii_digit() {
            2
        } else {
            3
        }
    };
    let std_sym = chars.iter().any(|&b| b == b'+' || b == b'/');
    let url_sym = chars.iter().any(|&b| b == b'-' || b == b'_');
    let changes =
        chars.windows(2).filter(|w| matches!(w, [a, b] if class(*a) != class(*b))).count();
    let pairs = chars.len().saturating_sub(1).max(1);
    let has_upper = chars.iter().any(u8::is_ascii_uppercase);
    let has_lower = chars.iter().any(u8::is_ascii_lowercase);
    !(std_sym && url_sym) && changes * 10 >= pairs * 3 && has_upper && has_lower
}

fn hex_value(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

/// Decode base64 of either alphabet, skipping padding, line breaks and anything else.
fn base64_decode_lenient(text: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(text.len() * 3 / 4);
    let mut acc = 0u32;
    let mut bits = 0;
    for &b in text {
        let v = match b {
            b'A'..=b'Z' => b - b'A',
            b'a'..=b'z' => b - b'a' + 26,
            b'0'..=b'9' => b - b'0' + 52,
            b'+' | b'-' => 62,
            b'/' | b'_' => 63,
            _ => continue,
        };
        acc = (acc << 6) | u32::from(v);
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
            acc &= (1 << bits) - 1;
        }
    }
    out
}

/// Longest run of digits converted as one number; longer numbers are converted in pieces
/// (keeps the quadratic conversion cheap; 1233 digits is just over 4096 bits).
const DECIMAL_CHUNK: usize = 1233;

/// The big-endian bytes of a decimal number (no leading zero bytes).
fn decimal_to_bytes(digits: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    for chunk in digits.chunks(DECIMAL_CHUNK) {
        // Little-endian base-2^32 limbs.
        let mut limbs: Vec<u32> = Vec::with_capacity(chunk.len() / 9 + 1);
        for group in chunk.chunks(9) {
            let mut mul = 1u64;
            let mut add = 0u64;
            for &d in group {
                mul *= 10;
                add = add * 10 + u64::from(d.wrapping_sub(b'0') % 10);
            }
            let mut carry = add;
            for limb in limbs.iter_mut() {
                let v = u64::from(*limb) * mul + carry;
                *limb = v as u32;
                carry = v >> 32;
            }
            if carry > 0 {
                limbs.push(carry as u32);
            }
        }
        let bytes = limbs.iter().rev().flat_map(|l| l.to_be_bytes());
        out.extend(bytes.skip_while(|&b| b == 0));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::super::classify;
    use super::super::test_data::{b64, noise, to_hex};
    use super::*;

    #[test]
    fn base64_of_random_with_rsa_hint() {
        let text = b64(&noise(256, 21));
        let c = classify(text.as_bytes());
        assert_eq!(c.verdict, Verdict::Encoded, "{}", c.reason);
        assert_eq!(c.encoding, Some(Encoding::Base64));
        assert_eq!(c.decoded_bytes, Some(256));
        assert!(c.reason.contains("RSA-2048"), "{}", c.reason);
        assert!(c.reason.contains("look random"), "{}", c.reason);
        // Wrapped in lines, URL-safe without padding.
        let url = text.replace('+', "-").replace('/', "_").replace('=', "");
        let wrapped: Vec<&str> =
            url.as_bytes().chunks(64).filter_map(|l| std::str::from_utf8(l).ok()).collect();
        let c = classify(wrapped.join("\r\n").as_bytes());
        assert_eq!(c.encoding, Some(Encoding::Base64), "{}", c.reason);
        // Short: never plaintext.
        for seed in 0..200 {
            let short = b64(&noise(12, seed));
            assert_ne!(classify(short.as_bytes()).verdict, Verdict::Plaintext, "{short}");
        }
    }

    #[test]
    fn base64_of_text_says_it_is_readable() {
        let text = b64(b"Meet me by the old oak at six and bring the map with you.");
        let c = classify(text.as_bytes());
        assert_eq!(c.verdict, Verdict::Encoded, "{}", c.reason);
        assert!(c.reason.contains("readable text"), "{}", c.reason);
    }

    #[test]
    fn hex_in_its_forms() {
        let raw = noise(128, 31);
        for text in [to_hex(&raw, "", false), to_hex(&raw, " ", true), to_hex(&raw, "\n", false)] {
            let c = classify(text.as_bytes());
            assert_eq!(c.verdict, Verdict::Encoded, "{text}: {}", c.reason);
            assert_eq!(c.encoding, Some(Encoding::Hex));
            assert_eq!(c.decoded_bytes, Some(128));
            assert!(c.reason.contains("RSA-1024"), "{}", c.reason);
        }
        // Words made of hex letters do not pair up.
        assert_eq!(classify(b"a bad cafe faced a dead bee").verdict, Verdict::Plaintext);
    }

    #[test]
    fn decimal_numbers() {
        // A 2048-bit number in decimal.
        let mut digits = String::from("1");
        for d in noise(616, 41) {
            digits.push(char::from(b'0' + d % 10));
        }
        let bytes = decimal_to_bytes(digits.as_bytes());
        assert_eq!(bytes.len(), 256);
        let c = classify(digits.as_bytes());
        assert_eq!(c.verdict, Verdict::Encoded, "{}", c.reason);
        assert_eq!(c.encoding, Some(Encoding::Decimal));
        assert_eq!(c.decoded_bytes, Some(256));
        assert!(c.reason.contains("RSA-2048"), "{}", c.reason);
        let list = "[2790, 1313, 2185, 745, 2412, 1992, 2185, 3000, 1230]";
        let c = classify(list.as_bytes());
        assert_eq!(c.encoding, Some(Encoding::Decimal), "{}", c.reason);
        assert_eq!(decimal_to_bytes(b"65536"), vec![1, 0, 0]);
        assert_eq!(decimal_to_bytes(b"0"), Vec::<u8>::new());
    }

    #[test]
    fn odd_inputs_never_panic() {
        let all: Vec<u8> = (0..=255).collect();
        for input in [
            &all[..],
            b"================================",
            b"\n\n\n\n\n\n\n\n\n\n\n\n\n\n\n\n\n\n",
            b",,,,,,,,,,[[[[]]]]]]]]]]]]]]]]]]]]",
            b"\xF4\x90\x80\x80\xED\xA0\x80\xE0\x80\x80\xC0\xAF\xFF\xFE\xF0\x9F\x98\x80",
        ] {
            let c = classify(input);
            assert!(!c.reason.is_empty());
        }
        let huge = "9".repeat(200_000);
        let c = classify(huge.as_bytes());
        assert_eq!(c.encoding, Some(Encoding::Decimal));
        let word = classify(b"internationalization");
        assert_ne!(word.verdict, Verdict::Encoded);
    }

    #[test]
    fn text_wrapped_around_encoded_blobs() {
        let blob = b64(&noise(256, 77));
        let json = format!("{{\"type\":\"msg\",\"seq\":7,\"ciphertext\":\"{blob}\"}}\n");
        let c = classify(json.as_bytes());
        assert_eq!(c.verdict, Verdict::Encoded, "{}", c.reason);
        assert_eq!(c.encoding, Some(Encoding::Base64));
        assert_eq!(c.decoded_bytes, Some(256));
        assert!(c.reason.contains("RSA-2048"), "{}", c.reason);
        let hex = to_hex(&noise(64, 78), "", false);
        let c = classify(format!("KEY {hex}\nOK\n").as_bytes());
        assert_eq!(c.encoding, Some(Encoding::Hex), "{}", c.reason);
        // Short fields and long identifiers stay plaintext.
        for text in [
            "{\"from\":\"alice\",\"to\":\"bob\",\"ts\":1700000000,\"text\":\"see you soon\"}",
            "call this_is_a_rather_long_function_name_for_a_test() then retry",
        ] {
            assert_eq!(classify(text.as_bytes()).verdict, Verdict::Plaintext, "{text}");
        }
    }
}
