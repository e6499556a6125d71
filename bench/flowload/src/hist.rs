//! A latency histogram in microseconds: exact below 128 µs, then 64 buckets per power of
//! two (each at most 1/64, about 1.6%, of its value wide). Constant size, one increment per
//! sample; the mean, standard deviation and maximum are exact.

/// Sub-buckets per power of two, as a power of two.
const SUB_BITS: u32 = 6;
/// Sub-buckets per power of two.
const SUB: u64 = 1 << SUB_BITS;
/// Buckets needed for any u64: the exact ones below 2·SUB, then SUB per further octave.
const BUCKETS: usize = ((64 - SUB_BITS - 1) as usize) * (SUB as usize) + 2 * (SUB as usize);

/// Counts of microsecond values in log-linear buckets.
#[derive(Debug, Clone)]
pub struct Histogram {
    /// Samples per bucket.
    counts: Vec<u64>,
    /// Samples recorded.
    total: u64,
    /// Sum of the samples (exact).
    sum: u128,
    /// Sum of the samples' squares, for the standard deviation.
    sum_sq: f64,
    /// The largest sample.
    max: u64,
}

impl Default for Histogram {
    fn default() -> Self {
        Self {
            counts: vec![0; BUCKETS],
            total: 0,
            sum: 0,
            sum_sq: 0.0,
            max: 0,
        }
    }
}

/// The bucket of a value.
fn index(v: u64) -> usize {
    if v < 2 * SUB {
        return v as usize;
    }
    let exp = 63 - v.leading_zeros(); // >= SUB_BITS + 1
    let shift = exp - SUB_BITS; // >= 1
                                // v >> shift is in [SUB, 2·SUB): shift 0 would be the exact range below 2·SUB.
    (shift as usize) * (SUB as usize) + (v >> shift) as usize
}

/// The lowest value and the width of a bucket.
fn bounds(i: usize) -> (u64, u64) {
    let sub = SUB as usize;
    if i < 2 * sub {
        return (i as u64, 1);
    }
    let shift = (i - sub) / sub;
    let m = (i - shift * sub) as u64;
    (m << shift, 1 << shift)
}

impl Histogram {
    /// Records one sample.
    pub fn record(&mut self, us: u64) {
        if let Some(c) = self.counts.get_mut(index(us)) {
            *c += 1;
        }
        self.total += 1;
        self.sum += u128::from(us);
        let f = us as f64;
        self.sum_sq += f * f;
        self.max = self.max.max(us);
    }

    /// Adds another histogram's samples to this one.
    pub fn merge(&mut self, other: &Histogram) {
        for (a, b) in self.counts.iter_mut().zip(&other.counts) {
            *a += b;
        }
        self.total += other.total;
        self.sum += other.sum;
        self.sum_sq += other.sum_sq;
        self.max = self.max.max(other.max);
    }

    /// Samples recorded.
    pub fn count(&self) -> u64 {
        self.total
    }

    /// The largest sample (0 if none).
    pub fn max(&self) -> u64 {
        self.max
    }

    /// The mean (0 if no sample).
    pub fn mean(&self) -> f64 {
        if self.total == 0 {
            0.0
        } else {
            self.sum as f64 / self.total as f64
        }
    }

    /// The population standard deviation (0 if no sample).
    pub fn stdev(&self) -> f64 {
        if self.total == 0 {
            return 0.0;
        }
        let m = self.mean();
        (self.sum_sq / self.total as f64 - m * m).max(0.0).sqrt()
    }

    /// The value at percentile `p` (0-100): the smallest bucket holding at least p% of
    /// the samples at or below it, given as its middle (exact below 128 µs), and never above
    /// the largest sample (which p100 is, exactly). 0 if no sample.
    pub fn percentile(&self, p: f64) -> f64 {
        if self.total == 0 {
            return 0.0;
        }
        let want = ((p / 100.0) * self.total as f64).ceil().max(1.0) as u64;
        if want >= self.total {
            // The last sample: known exactly.
            return self.max as f64;
        }
        let mut seen = 0u64;
        for (i, c) in self.counts.iter().enumerate() {
            seen += c;
            if seen >= want {
                let (low, width) = bounds(i);
                let mid = low as f64 + (width - 1) as f64 / 2.0;
                return mid.min(self.max as f64);
            }
        }
        self.max as f64
    }

    /// The share of samples within one standard deviation of the mean, in percent
    /// (wrk's "+/- Stdev"), bucket middles standing for their samples.
    pub fn within_stdev(&self) -> f64 {
        if self.total == 0 {
            return 0.0;
        }
        let (m, s) = (self.mean(), self.stdev());
        let inside: u64 = self
            .counts
            .iter()
            .enumerate()
            .filter(|(_, c)| **c > 0)
            .filter(|(i, _)| {
                let (low, width) = bounds(*i);
                let mid = low as f64 + (width - 1) as f64 / 2.0;
                (mid - m).abs() <= s
            })
            .map(|(_, c)| *c)
            .sum();
        100.0 * inside as f64 / self.total as f64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_cover_every_value_in_order() {
        let mut last = 0;
        for v in (0..100_000u64).chain([u64::MAX / 2, u64::MAX]) {
            let i = index(v);
            assert!(i < BUCKETS, "{v} -> {i}");
            assert!(i >= last, "not monotonic at {v}");
            last = i;
            let (low, width) = bounds(i);
            assert!(
                low <= v && v - low < width,
                "{v} not in bucket {i} = [{low}, +{width})"
            );
            if v >= 128 {
                assert!(
                    width as f64 / v as f64 <= 1.0 / 64.0 + 1e-12,
                    "{v}: width {width}"
                );
            } else {
                assert_eq!(width, 1);
            }
        }
        assert_eq!(index(u64::MAX), BUCKETS - 1);
    }

    #[test]
    fn percentiles_exact_below_128_and_within_two_percent_above() {
        let mut h = Histogram::default();
        for v in 1..=100u64 {
            h.record(v);
        }
        assert_eq!(h.percentile(50.0), 50.0);
        assert_eq!(h.percentile(99.0), 99.0);
        assert_eq!(h.percentile(100.0), 100.0);
        assert_eq!(h.max(), 100);
        assert!((h.mean() - 50.5).abs() < 1e-9);

        let mut h = Histogram::default();
        // 1,000 .. 100,000 µs in steps of 1 µs: exact percentiles are easy to state.
        let values: Vec<u64> = (1_000..=100_000).collect();
        for v in &values {
            h.record(*v);
        }
        for p in [50.0, 90.0, 99.0, 99.9] {
            let exact = values[((p / 100.0) * values.len() as f64).ceil() as usize - 1] as f64;
            let got = h.percentile(p);
            assert!((got - exact).abs() / exact < 0.02, "p{p}: {got} vs {exact}");
        }
        assert_eq!(h.percentile(100.0), 100_000.0);
    }

    #[test]
    fn merge_adds_up() {
        let (mut a, mut b) = (Histogram::default(), Histogram::default());
        a.record(10);
        a.record(5_000);
        b.record(20);
        a.merge(&b);
        assert_eq!(a.count(), 3);
        assert_eq!(a.max(), 5_000);
        assert_eq!(a.percentile(50.0), 20.0);
        assert!((a.mean() - 5_030.0 / 3.0).abs() < 1e-9);
        assert_eq!(Histogram::default().percentile(50.0), 0.0);
    }
}
