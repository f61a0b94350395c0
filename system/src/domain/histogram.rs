//! A histogram of fixed buckets kept in atomics, written through prometheus-client's
//! encoder. prometheus-client's own `Histogram` keeps its buckets behind a mutex; the
//! workers and front doors observe from many threads at once, so here an observation is a
//! search of a short array of integer bounds and two relaxed atomic adds (its bucket and the
//! sum), and the count is the sum of the buckets, read when `/metrics` is scraped.

use std::{
    sync::atomic::{AtomicU64, Ordering},
    time::{Duration, Instant},
};

use prometheus_client::{
    encoding::{EncodeMetric, MetricEncoder, NoLabelSet},
    metrics::{MetricType, TypedMetric, exemplar::Exemplar},
};

/// The buckets of a histogram, in the unit it observes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Bounds {
    /// Durations from 10 µs to 10 s (observed in nanoseconds, shown in seconds).
    Seconds,
    /// Counts of messages from 1 to 10,000 (the largest batch), in powers of two.
    Messages,
}

/// Upper bounds of [`Bounds::Seconds`], in nanoseconds: sub-millisecond hops and queue
/// waits to seconds of a loaded or failing processor.
const SECONDS: [u64; 19] = [
    10_000,
    25_000,
    50_000,
    100_000,
    250_000,
    500_000,
    1_000_000,
    2_500_000,
    5_000_000,
    10_000_000,
    25_000_000,
    50_000_000,
    100_000_000,
    250_000_000,
    500_000_000,
    1_000_000_000,
    2_500_000_000,
    5_000_000_000,
    10_000_000_000,
];

/// Upper bounds of [`Bounds::Messages`].
const MESSAGES: [u64; 14] = [
    1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 2048, 4096, 10_000,
];

impl Bounds {
    fn upper(self) -> &'static [u64] {
        match self {
            Bounds::Seconds => &SECONDS,
            Bounds::Messages => &MESSAGES,
        }
    }

    /// What one observed unit is in the exposition's unit.
    fn divisor(self) -> f64 {
        match self {
            Bounds::Seconds => 1e9,
            Bounds::Messages => 1.0,
        }
    }
}

/// A histogram whose observations are atomic adds.
#[derive(Debug)]
pub struct Histogram {
    bounds: Bounds,
    /// One per upper bound, and the last for what is above them all (`+Inf`).
    buckets: Box<[AtomicU64]>,
    /// The sum of the observations, in the observed unit.
    sum: AtomicU64,
}

impl Histogram {
    /// An empty histogram with `bounds`.
    pub fn new(bounds: Bounds) -> Histogram {
        Histogram {
            bounds,
            buckets: (0..=bounds.upper().len())
                .map(|_| AtomicU64::new(0))
                .collect(),
            sum: AtomicU64::new(0),
        }
    }

    /// Counts `value` (nanoseconds for [`Bounds::Seconds`], a count for
    /// [`Bounds::Messages`]) in the first bucket whose bound it does not pass.
    pub fn observe(&self, value: u64) {
        let bucket = self.bounds.upper().partition_point(|&bound| bound < value);
        if let Some(bucket) = self.buckets.get(bucket) {
            bucket.fetch_add(1, Ordering::Relaxed);
        }
        self.sum.fetch_add(value, Ordering::Relaxed);
    }

    /// Counts a duration (for [`Bounds::Seconds`]).
    pub(crate) fn observe_duration(&self, duration: Duration) {
        self.observe(u64::try_from(duration.as_nanos()).unwrap_or(u64::MAX));
    }

    /// Counts the time since `start` (for [`Bounds::Seconds`]).
    pub(crate) fn observe_since(&self, start: Instant) {
        self.observe_duration(start.elapsed());
    }

    /// Observations so far.
    pub fn count(&self) -> u64 {
        self.buckets
            .iter()
            .map(|bucket| bucket.load(Ordering::Relaxed))
            .sum()
    }

    /// The sum of the observations, in the exposition's unit (seconds or messages).
    pub fn sum(&self) -> f64 {
        self.sum.load(Ordering::Relaxed) as f64 / self.bounds.divisor()
    }
}

impl TypedMetric for Histogram {
    const TYPE: MetricType = MetricType::Histogram;
}

impl EncodeMetric for Histogram {
    fn encode(&self, mut encoder: MetricEncoder<'_>) -> Result<(), std::fmt::Error> {
        let divisor = self.bounds.divisor();
        let upper = self
            .bounds
            .upper()
            .iter()
            .map(|&bound| bound as f64 / divisor)
            .chain([f64::INFINITY]);
        // The count is taken from the buckets read here, so that it always equals the
        // `+Inf` bucket, even while observations go on.
        let buckets: Vec<(f64, u64)> = upper
            .zip(self.buckets.iter())
            .map(|(bound, bucket)| (bound, bucket.load(Ordering::Relaxed)))
            .collect();
        let count = buckets.iter().map(|(_, n)| n).sum();
        encoder.encode_histogram::<NoLabelSet>(
            self.sum(),
            count,
            &buckets,
            None::<&std::collections::HashMap<usize, Exemplar<NoLabelSet, f64>>>,
        )
    }

    fn metric_type(&self) -> MetricType {
        Self::TYPE
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_value_on_a_bound_counts_in_that_bound_s_bucket() {
        let histogram = Histogram::new(Bounds::Messages);
        for value in [1, 2, 3, 64, 10_000, 10_001] {
            histogram.observe(value);
        }
        let counts: Vec<u64> = histogram
            .buckets
            .iter()
            .map(|b| b.load(Ordering::Relaxed))
            .collect();
        // le=1, le=2, le=4 (3), le=64, le=10000, +Inf.
        assert_eq!(counts[0], 1);
        assert_eq!(counts[1], 1);
        assert_eq!(counts[2], 1);
        assert_eq!(counts[6], 1);
        assert_eq!(counts[13], 1);
        assert_eq!(counts[14], 1);
        assert_eq!(histogram.count(), 6);
        assert_eq!(histogram.sum(), 20_071.0);
    }

    #[test]
    fn durations_are_shown_in_seconds() {
        let histogram = Histogram::new(Bounds::Seconds);
        histogram.observe_duration(Duration::from_micros(1500));
        assert_eq!(histogram.sum(), 0.0015);
        assert_eq!(histogram.count(), 1);
    }
}
