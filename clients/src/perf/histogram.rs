//! A small log-linear latency histogram (about 1.5% precision, microseconds up to days), the
//! idea of HdrHistogram without the dependency: 128 exact buckets, then 64 per power of two.

const EXACT: u64 = 128;
const PER_OCTAVE: u64 = 64;

#[derive(Debug, Clone)]
pub(crate) struct Histogram {
    counts: Vec<u64>,
    total: u64,
    max: u64,
}

impl Default for Histogram {
    fn default() -> Histogram {
        Histogram {
            counts: vec![0; bucket(u64::MAX) + 1],
            total: 0,
            max: 0,
        }
    }
}

/// The bucket of `v`: `v` itself below 128, else by its top 7 bits.
fn bucket(v: u64) -> usize {
    if v < EXACT {
        return v as usize;
    }
    let e = 63 - v.leading_zeros() as u64; // ≥ 7
    let m = v >> (e - 6); // 64..=127
    (EXACT + (e - 7) * PER_OCTAVE + (m - PER_OCTAVE)) as usize
}

/// The largest value that falls in bucket `b`.
fn upper_bound(b: usize) -> u64 {
    let b = b as u64;
    if b < EXACT {
        return b;
    }
    let e = (b - EXACT) / PER_OCTAVE + 7;
    let m = (b - EXACT) % PER_OCTAVE + PER_OCTAVE;
    ((m + 1) << (e - 6)).saturating_sub(1)
}

impl Histogram {
    pub(crate) fn record(&mut self, v: u64) {
        self.counts[bucket(v)] += 1;
        self.total += 1;
        self.max = self.max.max(v);
    }

    pub(crate) fn count(&self) -> u64 {
        self.total
    }

    pub(crate) fn max(&self) -> u64 {
        self.max
    }

    /// The value at quantile `q` (0..=1), within the bucket's precision; 0 when empty.
    pub(crate) fn quantile(&self, q: f64) -> u64 {
        if self.total == 0 {
            return 0;
        }
        let rank = ((q * self.total as f64).ceil() as u64).clamp(1, self.total);
        let mut seen = 0;
        for (b, count) in self.counts.iter().enumerate() {
            seen += count;
            if seen >= rank {
                return upper_bound(b).min(self.max);
            }
        }
        self.max
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_cover_values_in_order() {
        let mut last = 0;
        for v in (0..100_000u64).chain([u64::MAX / 2, u64::MAX]) {
            let b = bucket(v);
            assert!(b >= last, "{v}");
            assert!(upper_bound(b) >= v, "{v} above its bucket");
            last = b;
        }
        assert_eq!(upper_bound(bucket(1000)), 1007);
    }

    #[test]
    fn quantiles_within_precision() {
        let mut h = Histogram::default();
        for v in 1..=10_000 {
            h.record(v);
        }
        for (q, want) in [(0.5, 5_000.0), (0.99, 9_900.0), (0.999, 9_990.0)] {
            let got = h.quantile(q) as f64;
            assert!((got - want).abs() / want < 0.02, "q{q}: {got}");
        }
        assert_eq!(h.quantile(1.0), 10_000);
        assert_eq!(Histogram::default().quantile(0.5), 0);
    }
}
