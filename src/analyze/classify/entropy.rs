//! The numbers of a byte histogram: Shannon entropy (over all 256 values, or over the values
//! that occur), what random bytes of a length would give, and Pearson's chi-square against
//! uniform bytes. Pure arithmetic on counts: it never sees the bytes or decides a verdict.

use std::sync::OnceLock;

/// [`shannon_entropy`] of `hist` (`n` counts in all), whose values that occur are `present`
/// ([`occurring`](super::verdict::occurring)): the same sum in the same order, over those values only (a chat message
/// has a few dozen), with `c log2 c` from a table for counts below 256.
pub(super) fn entropy_of_present(hist: &[u64; 256], present: &[u64; 4], n: u64) -> f64 {
    if n == 0 {
        return 0.0;
    }
    let table = klogk_table();
    let mut sum = 0.0;
    for (w, &word) in present.iter().enumerate() {
        let mut bits = word;
        while bits != 0 {
            let b = w * 64 + bits.trailing_zeros() as usize;
            bits &= bits - 1;
            let c = hist.get(b).copied().unwrap_or(0);
            if c > 1 {
                sum += match table.get(c as usize) {
                    Some(&v) => v,
                    None => (c as f64) * (c as f64).log2(),
                };
            }
        }
    }
    let nf = n as f64;
    (nf.log2() - sum / nf).max(0.0)
}

/// `k log2 k` for k below 256, as [`shannon_entropy`] works it out.
pub(super) fn klogk_table() -> &'static [f64; 256] {
    static KLOGK: OnceLock<[f64; 256]> = OnceLock::new();
    KLOGK.get_or_init(|| {
        let mut v = [0.0; 256];
        for (k, x) in v.iter_mut().enumerate().skip(2) {
            *x = (k as f64) * (k as f64).log2();
        }
        v
    })
}

/// Shannon entropy in bits per byte of a byte histogram.
pub fn shannon_entropy(hist: &[u64; 256]) -> f64 {
    let n: u64 = hist.iter().sum();
    if n == 0 {
        return 0.0;
    }
    let nf = n as f64;
    let sum: f64 = hist.iter().filter(|&&c| c > 1).map(|&c| (c as f64) * (c as f64).log2()).sum();
    (nf.log2() - sum / nf).max(0.0)
}

/// Pearson's chi-square statistic of a byte histogram against uniform bytes (255 degrees of
/// freedom: mean 255, standard deviation about 22.6 for random bytes).
pub fn chi_square(hist: &[u64; 256]) -> f64 {
    let n: u64 = hist.iter().sum();
    if n == 0 {
        return 0.0;
    }
    let expected = n as f64 / 256.0;
    hist.iter()
        .map(|&c| {
            let d = c as f64 - expected;
            d * d / expected
        })
        .sum()
}

const CACHED_EXPECTED: usize = 1024;

/// Mean Shannon entropy (bits per byte) of `n` uniformly random bytes: the exact expectation
/// of the plug-in estimator, `log2 n - (256/n) * sum_k P(c = k) k log2 k` with
/// `c ~ Binomial(n, 1/256)`, summed outward from the mode until the terms vanish (about
/// 10 standard deviations), cached for n up to 1024. From 2^18 bytes on, the
/// asymptotic series for 256 equally likely values is used instead:
/// `8 - (255/2n + 65535/12n^2 + 16711680/12n^3)/ln 2`, within 1e-12 of the sum there.
pub fn expected_random_entropy(n: u64) -> f64 {
    static CACHE: OnceLock<Vec<f64>> = OnceLock::new();
    if n < CACHED_EXPECTED as u64 {
        let table = CACHE.get_or_init(|| (0..CACHED_EXPECTED as u64).map(expected_exact).collect());
        if let Some(&v) = table.get(n as usize) {
            return v;
        }
    }
    if n >= ASYMPTOTIC_FROM {
        let nf = n as f64;
        let nats =
            255.0 / (2.0 * nf) + 65535.0 / (12.0 * nf * nf) + 16_711_680.0 / (12.0 * nf.powi(3));
        return 8.0 - nats / std::f64::consts::LN_2;
    }
    expected_exact(n)
}

/// Length from which [`expected_random_entropy`] uses its asymptotic series.
const ASYMPTOTIC_FROM: u64 = 1 << 18;

fn expected_exact(n: u64) -> f64 {
    if n <= 1 {
        return 0.0;
    }
    let nf = n as f64;
    let p = 1.0 / 256.0;
    let odds = p / (1.0 - p);
    let mode = ((nf + 1.0) * p).floor().min(nf);
    let klogk = |k: f64| if k > 1.0 { k * k.log2() } else { 0.0 };
    // Unnormalised weights relative to the mode; normalising by their sum makes the result
    // exact without any factorials.
    let mut weight_sum = 1.0;
    let mut moment = klogk(mode);
    let mut w = 1.0;
    let mut k = mode;
    while k < nf {
        w *= (nf - k) / (k + 1.0) * odds;
        k += 1.0;
        weight_sum += w;
        moment += w * klogk(k);
        if w < 1e-20 {
            break;
        }
    }
    let mut w = 1.0;
    let mut k = mode;
    while k > 0.0 {
        w *= k / (nf - k + 1.0) / odds;
        k -= 1.0;
        weight_sum += w;
        moment += w * klogk(k);
        if w < 1e-20 {
            break;
        }
    }
    nf.log2() - 256.0 / nf * (moment / weight_sum)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expected_entropy_matches_simulation_and_limits() {
        assert_eq!(expected_random_entropy(0), 0.0);
        assert_eq!(expected_random_entropy(1), 0.0);
        assert!((expected_random_entropy(2) - 255.0 / 256.0).abs() < 1e-12);
        for (n, want) in [(16, 3.94), (64, 5.77), (256, 7.18)] {
            let got = expected_random_entropy(n);
            assert!((got - want).abs() < 0.01, "n={n}: {got}");
        }
        let big = expected_random_entropy(4096);
        assert!(big > 7.94 && big < 7.96, "{big}");
        // Cache boundary and asymptotic switch are seamless.
        let a = expected_random_entropy(1023);
        let b = expected_exact(1023);
        assert!((a - b).abs() < 1e-12);
        for n in [ASYMPTOTIC_FROM, ASYMPTOTIC_FROM + 12_345, 1 << 20, (1 << 26) + 1] {
            let asym = expected_random_entropy(n);
            let exact = expected_exact(n);
            assert!((asym - exact).abs() < 1e-12, "n={n}: {asym} vs {exact}");
        }
        // Monotonic and below 8.
        let mut last = 0.0;
        for n in (2..5000).step_by(37).chain([1 << 20, 1 << 24]) {
            let e = expected_random_entropy(n);
            assert!(e > last && e < 8.0, "n={n}");
            last = e;
        }
    }
}
