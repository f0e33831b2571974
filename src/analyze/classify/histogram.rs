//! What a report keeps of a direction's byte counts once its verdict is made: the
//! [`Histogram`] moved out of the [`Accumulator`] (no copy, no per-connection memory added),
//! and the entropy of a message's counts alone, worked out from a table of `k log2 k` when
//! they fit in 8 bits. It sees counts only.

use super::counting::{Accumulator, Table};
use super::entropy::{klogk_table, shannon_entropy};

/// How many times each byte value occurred in what an [`Accumulator`] was fed: its own table
/// moved out of it, as narrow as it was (256 bytes for a chat direction of a few hundred
/// bytes), so that a report can show the counts behind the entropy without a copy of them per
/// direction.
#[derive(Debug, Clone, Default)]
pub struct Histogram {
    table: Table,
    folded: Option<Box<[u64; 256]>>,
}

impl Histogram {
    /// Each byte value's count, 0x00 first.
    pub fn counts(&self) -> [u64; 256] {
        let mut h = self.folded.as_deref().copied().unwrap_or([0; 256]);
        for (total, c) in h.iter_mut().zip(self.table.counts()) {
            *total += c;
        }
        h
    }
}

impl Accumulator {
    /// Its counts, kept as it kept them (see [`Histogram`]), once nothing more is asked of it.
    pub fn into_histogram(self) -> Histogram {
        Histogram { table: self.hist, folded: self.folded }
    }

    /// The Shannon entropy of everything fed so far, bits per byte: what
    /// [`Accumulator::finish`] gives as `stats.entropy`, without the rest of the verdict
    /// (from a table of `k log2 k` for 8-bit counters: a message of fewer than 256 bytes).
    pub fn entropy(&self) -> f64 {
        match (&self.hist, &self.folded) {
            (Table::U8(t), None) => {
                let klogk = klogk_table();
                let sum: f64 = t.iter().map(|&c| klogk[usize::from(c)]).sum();
                let n = self.bytes as f64;
                if self.bytes == 0 { 0.0 } else { (n.log2() - sum / n).max(0.0) }
            }
            _ => shannon_entropy(&self.histogram()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::test_data::{TEXT, noise};
    use super::*;

    #[test]
    fn the_histogram_taken_out_is_the_one_counted() {
        let mut data = noise(70_000, 7);
        data.extend_from_slice(TEXT.as_bytes());
        let mut acc = Accumulator::new();
        acc.update(&data[..300]);
        acc.update(&data[300..]);
        let want = acc.histogram();
        assert_eq!(want.iter().sum::<u64>(), data.len() as u64);
        let stats = acc.finish().stats;
        let h = acc.into_histogram();
        assert_eq!(h.counts(), want);
        assert_eq!(shannon_entropy(&h.counts()), stats.entropy);
        assert_eq!(Histogram::default().counts(), [0; 256]);
    }

    #[test]
    fn the_entropy_alone_is_the_verdicts() {
        for data in [&b"see you at six, by the old oak"[..], &noise(200, 3), &noise(3000, 4), b""] {
            let mut acc = Accumulator::new();
            acc.update(data);
            let want = acc.finish().stats.entropy;
            assert!((acc.entropy() - want).abs() < 1e-12, "{} bytes", data.len());
        }
    }
}
