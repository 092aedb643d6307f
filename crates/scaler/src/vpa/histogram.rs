//! Decaying histograms with exponential buckets: the VPA recommender's model of a usage distribution.

use crate::error::ScalerError;
use crate::time::Timestamp;

/// Weight below which a bucket counts as empty: 0.001 × the smallest CPU sample weight (0.1), small
/// enough that a sample eight half-lives old still counts, as upstream chose it.
pub const EPSILON: f64 = 1e-4;

/// Re-normalise once weights would grow past 2^100, long before f64 overflows (upstream's limit).
const MAX_DECAY_EXPONENT: i64 = 100;

/// More buckets than any sane bucketing needs; bounds the memory a caller-chosen scheme can take.
const MAX_BUCKETS: usize = 10_000;

/// Exponential bucketing: bucket 0 covers `[0, first)`, bucket `n` is `first × ratio^n` wide.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct HistogramOptions {
    num_buckets: usize,
    first_bucket_size: f64,
    ratio: f64,
}

impl HistogramOptions {
    /// Buckets that reach at least `max_value`, the first `first_bucket_size` wide, each `ratio` times
    /// wider than the one before.
    pub fn exponential(
        max_value: f64,
        first_bucket_size: f64,
        ratio: f64,
    ) -> Result<Self, ScalerError> {
        let finite_positive = |v: f64| v.is_finite() && v > 0.0;
        if !finite_positive(max_value) || !finite_positive(first_bucket_size) {
            return Err(ScalerError::spec(
                "histogram",
                format!(
                    "max value {max_value} and first bucket size {first_bucket_size} must be finite and > 0"
                ),
            ));
        }
        if !(ratio.is_finite() && ratio > 1.0) {
            return Err(ScalerError::spec(
                "histogram",
                format!("bucket growth ratio {ratio} must be finite and > 1"),
            ));
        }
        let options = Self::build(max_value, first_bucket_size, ratio);
        if options.num_buckets > MAX_BUCKETS {
            return Err(ScalerError::spec(
                "histogram",
                format!(
                    "{} buckets needed, at most {MAX_BUCKETS} allowed; raise the first bucket size or the ratio",
                    options.num_buckets
                ),
            ));
        }
        Ok(options)
    }

    /// CPU in cores: 1m first bucket, up to 1000 cores, 5 % growth (upstream defaults).
    pub fn cpu() -> Self {
        Self::build(1000.0, 0.001, 1.05)
    }

    /// Memory in bytes: 10 MB first bucket, up to 1 TB, 5 % growth (upstream defaults).
    pub fn memory() -> Self {
        Self::build(1e12, 1e7, 1.05)
    }

    fn build(max_value: f64, first_bucket_size: f64, ratio: f64) -> Self {
        let needed =
            ((max_value * (ratio - 1.0) / first_bucket_size + 1.0).ln() / ratio.ln()).ceil();
        // `as` saturates; the caller bounds the count before use.
        let num_buckets = (needed as usize).saturating_add(1);
        Self {
            num_buckets,
            first_bucket_size,
            ratio,
        }
    }

    /// How many buckets there are; the last one has no upper end.
    pub fn num_buckets(&self) -> usize {
        self.num_buckets
    }

    /// The bucket holding `value`; values outside the range land in the first or last bucket.
    pub fn find_bucket(&self, value: f64) -> usize {
        if value < self.first_bucket_size || value.is_nan() {
            return 0;
        }
        let bucket = ((value * (self.ratio - 1.0) / self.first_bucket_size + 1.0).ln()
            / self.ratio.ln())
        .floor() as usize;
        bucket.min(self.num_buckets - 1)
    }

    /// Where bucket `bucket` starts: `first × (ratio^bucket − 1) / (ratio − 1)`.
    pub fn bucket_start(&self, bucket: usize) -> f64 {
        if bucket == 0 {
            return 0.0;
        }
        let exponent = i32::try_from(bucket).unwrap_or(i32::MAX);
        self.first_bucket_size * (self.ratio.powi(exponent) - 1.0) / (self.ratio - 1.0)
    }
}

/// A histogram in which a sample's weight doubles every `half_life` of sample time, so newer samples
/// count more. Only relative weights matter, so the reference instant moves forward (rescaling every
/// bucket by a power of two) whenever exponents grow large.
#[derive(Debug, Clone, PartialEq)]
pub struct DecayingHistogram {
    options: HistogramOptions,
    weights: Vec<f64>,
    total: f64,
    /// First non-empty bucket, or the last bucket when empty.
    min_bucket: usize,
    /// Last non-empty bucket, or 0 when empty.
    max_bucket: usize,
    half_life_ms: i64,
    /// Set at the first sample, always a whole number of half-lives since the epoch.
    reference: Option<Timestamp>,
}

impl DecayingHistogram {
    /// An empty histogram. `half_life_ms` must be positive (checked by [`super::VpaConfig`]).
    pub fn new(options: HistogramOptions, half_life_ms: i64) -> Self {
        Self {
            options,
            weights: vec![0.0; options.num_buckets],
            total: 0.0,
            min_bucket: options.num_buckets - 1,
            max_bucket: 0,
            half_life_ms: half_life_ms.max(1),
            reference: None,
        }
    }

    /// Adds `value` with `weight` (≥ 0, finite) as seen at `at`.
    pub fn add(&mut self, value: f64, weight: f64, at: Timestamp) {
        let weight = weight * self.decay_factor(at);
        if !(weight.is_finite() && weight >= 0.0) {
            return;
        }
        let bucket = self.options.find_bucket(value);
        self.weights[bucket] += weight;
        self.total += weight;
        if bucket < self.min_bucket && self.weights[bucket] >= EPSILON {
            self.min_bucket = bucket;
        }
        if bucket > self.max_bucket && self.weights[bucket] >= EPSILON {
            self.max_bucket = bucket;
        }
    }

    /// Removes a sample added earlier with the same value, weight and time; never goes below zero.
    pub fn subtract(&mut self, value: f64, weight: f64, at: Timestamp) {
        let mut weight = weight * self.decay_factor(at);
        if !(weight.is_finite() && weight >= 0.0) {
            return;
        }
        let bucket = self.options.find_bucket(value);
        if weight > self.weights[bucket] - EPSILON {
            weight = self.weights[bucket];
        }
        self.total -= weight;
        self.weights[bucket] -= weight;
        self.update_min_max();
    }

    /// True when no bucket holds at least [`EPSILON`] of weight.
    pub fn is_empty(&self) -> bool {
        self.weights[self.min_bucket] < EPSILON
    }

    /// The end of the bucket in which the cumulative weight first reaches `percentile` (0..=1) of the
    /// total; 0 when empty. The last bucket has no end, so its start is returned.
    pub fn percentile(&self, percentile: f64) -> f64 {
        if self.is_empty() {
            return 0.0;
        }
        let threshold = percentile * self.total;
        let mut partial = 0.0;
        let mut bucket = self.min_bucket;
        while bucket < self.max_bucket {
            partial += self.weights[bucket];
            if partial >= threshold {
                break;
            }
            bucket += 1;
        }
        if bucket + 1 < self.options.num_buckets {
            self.options.bucket_start(bucket + 1)
        } else {
            self.options.bucket_start(bucket)
        }
    }

    /// Total (decayed, rescaled) weight; only meaningful relative to other weights of this histogram.
    pub fn total_weight(&self) -> f64 {
        self.total
    }

    fn decay_factor(&mut self, at: Timestamp) -> f64 {
        let reference = match self.reference {
            Some(reference)
                if at.millis().saturating_sub(reference.millis())
                    <= self.half_life_ms.saturating_mul(MAX_DECAY_EXPONENT) =>
            {
                reference
            }
            _ => self.shift_reference(at),
        };
        let age = at.millis().saturating_sub(reference.millis()) as f64;
        (age / self.half_life_ms as f64).exp2()
    }

    /// Moves the reference to `at` rounded to a whole number of half-lives, rescaling the weights so
    /// the distribution is unchanged.
    fn shift_reference(&mut self, at: Timestamp) -> Timestamp {
        let half = self.half_life_ms;
        let rounded = at.millis().saturating_add(half / 2).div_euclid(half);
        let new_reference = Timestamp::from_millis(rounded.saturating_mul(half));
        if let Some(old) = self.reference {
            let exponent =
                (old.millis().saturating_sub(new_reference.millis()) as f64 / half as f64).round();
            let factor = exponent.clamp(-2000.0, 2000.0).exp2();
            for w in &mut self.weights[self.min_bucket.min(self.max_bucket)..=self.max_bucket] {
                *w *= factor;
            }
            self.total *= factor;
            self.update_min_max();
        }
        self.reference = Some(new_reference);
        new_reference
    }

    fn update_min_max(&mut self) {
        let last = self.options.num_buckets - 1;
        while self.weights[self.min_bucket] < EPSILON && self.min_bucket < last {
            self.min_bucket += 1;
        }
        while self.weights[self.max_bucket] < EPSILON && self.max_bucket > 0 {
            self.max_bucket -= 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HOUR: i64 = 3_600_000;

    #[test]
    fn default_bucketings_match_upstream_sizes() {
        // ceil(log_1.05(1000 × 0.05 / 0.001 + 1)) + 1 and ceil(log_1.05(1e12 × 0.05 / 1e7 + 1)) + 1.
        assert_eq!(HistogramOptions::cpu().num_buckets(), 223);
        assert_eq!(HistogramOptions::memory().num_buckets(), 176);
    }

    #[test]
    fn buckets_are_found_by_their_start() {
        let o = HistogramOptions::exponential(100.0, 10.0, 2.0).expect("valid options");
        // Starts: 0, 10, 30, 70, 150 → 5 buckets.
        let cases = [
            (0.0, 0, "zero is in the first bucket"),
            (9.99, 0, "just below the first bucket size"),
            (10.0, 1, "a bucket start belongs to that bucket"),
            (29.0, 1, "inside the second bucket"),
            (70.0, 3, "start of the fourth bucket"),
            (1e9, 4, "beyond the range lands in the last bucket"),
            (-5.0, 0, "negative values land in the first bucket"),
        ];
        assert_eq!(o.num_buckets(), 5);
        for (value, bucket, why) in cases {
            assert_eq!(o.find_bucket(value), bucket, "{why}");
        }
        assert_eq!(o.bucket_start(3), 70.0);
    }

    #[test]
    fn bad_options_are_rejected() {
        for (max, first, ratio, why) in [
            (0.0, 1.0, 2.0, "max must be positive"),
            (10.0, f64::NAN, 2.0, "first bucket must be a number"),
            (10.0, 1.0, 1.0, "ratio must exceed one"),
            (1e300, 1e-300, 1.000_000_1, "too many buckets"),
        ] {
            assert!(
                HistogramOptions::exponential(max, first, ratio).is_err(),
                "{why}"
            );
        }
    }

    #[test]
    fn empty_histogram_has_zero_percentiles() {
        let h = DecayingHistogram::new(HistogramOptions::cpu(), 24 * HOUR);
        assert!(h.is_empty());
        assert_eq!(h.percentile(0.9), 0.0);
    }

    #[test]
    fn newer_samples_weigh_double_per_half_life() {
        let o = HistogramOptions::exponential(100.0, 1.0, 1.05).expect("valid options");
        let mut h = DecayingHistogram::new(o, HOUR);
        let t0 = Timestamp::from_secs(1_700_000_000);
        h.add(10.0, 1.0, t0);
        h.add(50.0, 1.0, t0.plus(std::time::Duration::from_secs(3600)));
        // Weights 1 : 2, so only percentiles above 1/3 reach the newer sample.
        let low = h.percentile(0.3);
        let high = h.percentile(0.4);
        assert!((10.0..11.5).contains(&low), "p30 {low}");
        assert!((50.0..53.0).contains(&high), "p40 {high}");
    }

    #[test]
    fn reference_shift_keeps_the_distribution() {
        let o = HistogramOptions::exponential(100.0, 1.0, 1.05).expect("valid options");
        let mut h = DecayingHistogram::new(o, HOUR);
        let t0 = Timestamp::from_secs(1_700_000_000);
        h.add(10.0, 1.0, t0);
        // 150 half-lives later forces a renormalisation; the old sample's relative weight is tiny.
        let later = Timestamp::from_millis(t0.millis() + 150 * HOUR);
        h.add(50.0, 1.0, later);
        assert!(h.total_weight().is_finite());
        assert!(h.percentile(0.01) >= 50.0, "old sample decayed away");
    }

    #[test]
    fn subtract_never_goes_negative() {
        let mut h = DecayingHistogram::new(HistogramOptions::memory(), 24 * HOUR);
        let t = Timestamp::from_secs(1_700_000_000);
        h.add(1e9, 1.0, t);
        h.subtract(1e9, 5.0, t);
        assert!(h.is_empty());
        assert!(h.total_weight().abs() < 1e-12);
    }
}
