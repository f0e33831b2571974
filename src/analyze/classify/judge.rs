//! Asking an [`Accumulator`] for its verdict: its counts become the [`Facts`] the verdict is
//! decided on ([`super::verdict`]), with the first bytes for the encoding checks; a deferred
//! accumulator's kept bytes are counted first, once, for the verdict and the entropy alike.
//! It counts nothing that was not fed and keeps nothing.

use std::borrow::Cow;

use super::counting::Accumulator;
use super::entropy::entropy_of_present;
use super::verdict::Facts;
use super::{Brief, Classification};

impl Accumulator {
    /// The kept bytes of a deferred accumulator, counted: `None` if they cannot be read back
    /// from the capture file (it was cut short during the analysis).
    pub(super) fn counted(&self) -> Option<Accumulator> {
        let kept = self.sample.bytes()?;
        let mut counted = self.empty_like();
        counted.count_kept(&kept);
        Some(counted)
    }

    /// The verdict on everything fed so far.
    pub fn finish(&self) -> Classification {
        self.judge(true, true)
    }

    /// The verdict on everything fed so far and its confidence: the same as
    /// [`Accumulator::finish`] gives, without writing the reason.
    pub fn brief(&self) -> Brief {
        self.judge(true, false).brief()
    }

    /// [`Accumulator::brief`] and [`Accumulator::entropy`], counting a deferred accumulator's
    /// bytes once for both.
    pub fn brief_and_entropy(&self) -> (Brief, f64) {
        if !self.deferred {
            let (c, entropy) =
                self.judge_counts(self.sample.head(), true, false, || self.sample.bytes());
            return (c.brief(), entropy);
        }
        match self.sample.bytes() {
            Some(kept) => {
                let mut counted = self.empty_like();
                counted.count_kept(&kept);
                let (c, entropy) =
                    counted.judge_counts(self.sample.head(), true, false, || Some(kept));
                (c.brief(), entropy)
            }
            None => (self.brief(), 0.0),
        }
    }

    /// The verdict, with encoding checks if `detect_encodings`, with a reason if `words`.
    pub(super) fn judge(&self, detect_encodings: bool, words: bool) -> Classification {
        if !self.deferred {
            return self
                .judge_counts(self.sample.head(), detect_encodings, words, || self.sample.bytes())
                .0;
        }
        // Counted now, from the kept bytes, which also serve the encoding checks.
        let Some(kept) = self.sample.bytes() else {
            return Classification {
                verdict: super::Verdict::Inconclusive,
                confidence: super::Confidence::Low,
                encoding: None,
                decoded_bytes: None,
                reason: if words {
                    super::reasons::not_read_back(self.len())
                } else {
                    String::new()
                },
                stats: super::Stats { bytes: self.len(), ..super::Stats::default() },
            };
        };
        let mut counted = self.empty_like();
        counted.count_kept(&kept);
        counted.judge_counts(self.sample.head(), detect_encodings, words, || Some(kept)).0
    }

    /// The verdict on the counts and their entropy (as [`Accumulator::entropy`] gives it);
    /// `head` is the first bytes fed, `sample` gives the kept ones.
    fn judge_counts<'s>(
        &self,
        head: &[u8],
        detect_encodings: bool,
        words: bool,
        sample: impl FnOnce() -> Option<Cow<'s, [u8]>>,
    ) -> (Classification, f64) {
        let printable = self.printable + self.cut_characters(head);
        let hist = self.histogram();
        let present = self.occurring();
        let facts = Facts::new(self.bytes, &hist, present, printable, self.examined, words);
        // The sample may have to be read back from the capture file: only if it is needed. If
        // the file cannot give it back (it was cut short under us), there are no encoding
        // checks.
        let c = facts.decide(detect_encodings, sample);
        let entropy = if c.stats.entropy > 0.0 {
            c.stats.entropy
        } else {
            entropy_of_present(&hist, &present, self.bytes)
        };
        (c, entropy)
    }
}

#[cfg(test)]
mod tests {
    use super::super::counting::Table;
    use super::super::test_data::noise;
    use super::super::{Scratch, classify};
    use super::*;
    use crate::analyze::input::Captured;
    use crate::analyze::input::sample::Sample;

    #[test]
    fn a_deferred_accumulator_past_its_sample_counts_what_it_kept() {
        // Text, then random bytes, past the sample's limit: the kept bytes are counted when
        // the limit is reached, the rest as they come.
        let mut data = b"the exam moved to room 204, see you there\n".repeat(900);
        data.extend(noise(120_000, 7));
        let mut counting = Accumulator::new();
        let mut deferred = Accumulator::deferred();
        for piece in data.chunks(1448) {
            counting.update(piece);
            deferred.update(piece);
            if deferred.len() < crate::analyze::classify::SAMPLE_LIMIT as u64 {
                assert!(matches!(deferred.hist, Table::Empty), "nothing counted while it keeps");
            }
        }
        assert!(!matches!(deferred.hist, Table::Empty), "counted once past the sample");
        assert_eq!(deferred.len(), data.len() as u64);
        assert_eq!(deferred.histogram(), counting.histogram());
        assert_eq!(deferred.finish(), counting.finish());
    }

    #[test]
    fn a_deferred_message_that_cannot_be_read_back_is_inconclusive() {
        use crate::analyze::classify::{Confidence, Verdict};
        use std::io::Write;
        use std::sync::Arc;
        let dir = tempfile::Builder::new().prefix("rchat-lost-message-").tempdir().unwrap();
        let path = dir.path().join("capture.bin");
        let text = b"a line of text that came straight from the capture file\n".repeat(40);
        std::fs::File::create(&path).unwrap().write_all(&text).unwrap();
        let file = Arc::new(std::fs::File::open(&path).unwrap());
        let mut acc = Accumulator::with_sample(Sample::in_file(file));
        acc.deferred = true;
        let mut scratch = Scratch::default();
        for (i, piece) in text.chunks(1000).enumerate() {
            acc.count_in(Captured::copied_from(piece, Some(i as u64 * 1000)), &mut scratch);
        }
        acc.add_counts(&mut scratch);
        assert!(matches!(acc.hist, Table::Empty), "kept, not counted");
        assert_eq!(acc.finish(), classify(&text), "read back while the file is intact");
        std::fs::File::create(&path).unwrap();
        let lost = acc.finish();
        assert_eq!((lost.verdict, lost.confidence), (Verdict::Inconclusive, Confidence::Low));
        assert!(lost.reason.contains("could not be read back"), "{}", lost.reason);
        assert_eq!(lost.stats.bytes, text.len() as u64);
    }
}
