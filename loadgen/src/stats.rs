//! Latency bookkeeping: an HDR histogram in microseconds, and percentiles taken over every
//! message *sent*, so one that never arrived counts as infinitely late.

use hdrhistogram::Histogram;
use serde::Serialize;
use std::time::Duration;

/// Highest latency the histogram resolves exactly (larger values are clamped).
const MAX_MICROS: u64 = 120_000_000;

/// Latencies of one kind (send→ack, or send→partner-receive).
#[derive(Debug, Clone)]
pub struct Latency {
    hist: Histogram<u64>,
}

impl Default for Latency {
    fn default() -> Self {
        Self::new()
    }
}

impl Latency {
    /// An empty record, 1 µs to 120 s at 3 significant digits.
    pub fn new() -> Self {
        Self {
            hist: Histogram::new_with_bounds(1, MAX_MICROS, 3)
                .expect("the bounds are valid constants"),
        }
    }

    /// Records one latency.
    pub fn record(&mut self, latency: Duration) {
        let micros = (latency.as_micros() as u64).clamp(1, MAX_MICROS);
        self.hist.saturating_record(micros);
    }

    /// How many latencies were recorded.
    pub fn count(&self) -> u64 {
        self.hist.len()
    }

    /// The `q` quantile (0 < q ≤ 1) over `expected` samples, in milliseconds: `None` when
    /// it falls on a sample that was never recorded (a message that did not arrive).
    pub fn percentile_ms(&self, q: f64, expected: u64) -> Option<f64> {
        let expected = expected.max(self.count());
        if expected == 0 {
            return None;
        }
        let rank = ((q * expected as f64).ceil() as u64).clamp(1, expected);
        let count = self.count();
        if rank > count {
            return None;
        }
        let value = self.hist.value_at_quantile(rank as f64 / count as f64);
        Some(micros_to_ms(
            self.hist.highest_equivalent(value).min(self.hist.max()),
        ))
    }

    /// p50, p90, p99 and max over `expected` samples.
    pub fn summary(&self, expected: u64) -> LatencySummary {
        LatencySummary {
            count: self.count(),
            expected,
            p50_ms: self.percentile_ms(0.50, expected),
            p90_ms: self.percentile_ms(0.90, expected),
            p99_ms: self.percentile_ms(0.99, expected),
            max_ms: (self.count() >= expected && self.count() > 0)
                .then(|| micros_to_ms(self.hist.max())),
        }
    }
}

fn micros_to_ms(micros: u64) -> f64 {
    (micros as f64 / 10.0).round() / 100.0
}

/// Percentiles in milliseconds; `None` (JSON `null`) is infinite: the sample never came.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct LatencySummary {
    /// Samples recorded.
    pub count: u64,
    /// Samples expected (messages sent).
    pub expected: u64,
    /// Median.
    pub p50_ms: Option<f64>,
    /// 90th percentile.
    pub p90_ms: Option<f64>,
    /// 99th percentile.
    pub p99_ms: Option<f64>,
    /// Largest, or `None` when some never came.
    pub max_ms: Option<f64>,
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// Whether a reported percentile is `expected` within the histogram's resolution (3
    /// significant digits, reported as the top of the bucket, rounded to 0.01 ms).
    pub(crate) fn about(reported: Option<f64>, expected: f64) -> bool {
        reported.is_some_and(|r| r >= expected - 0.005 && r <= expected.mul_add(1.001, 0.005))
    }

    fn record_ms(values: impl IntoIterator<Item = u64>) -> Latency {
        let mut l = Latency::new();
        for v in values {
            l.record(Duration::from_millis(v));
        }
        l
    }

    #[test]
    fn percentiles_of_a_full_record_are_the_ranked_values() {
        let l = record_ms(1..=100);
        let s = l.summary(100);
        assert!(about(s.p50_ms, 50.0), "{s:?}");
        assert!(about(s.p90_ms, 90.0), "{s:?}");
        assert!(about(s.p99_ms, 99.0), "{s:?}");
        assert!(about(s.max_ms, 100.0), "{s:?}");
        // Neighbouring ranks stay apart.
        assert!(!about(s.p50_ms, 51.0) && !about(s.p50_ms, 49.0), "{s:?}");
    }

    #[test]
    fn a_missing_sample_counts_as_infinitely_late() {
        // 98 of 100 arrived: p99 lands on a message that never came.
        let l = record_ms(1..=98);
        let s = l.summary(100);
        assert!(about(s.p50_ms, 50.0), "{s:?}");
        assert_eq!(s.p99_ms, None);
        assert_eq!(s.max_ms, None);
        // One of 100 missing still leaves p99 on a real sample.
        let l = record_ms(1..=99);
        assert!(about(l.percentile_ms(0.99, 100), 99.0));
    }

    #[test]
    fn nothing_sent_has_no_percentiles() {
        let s = Latency::new().summary(0);
        assert_eq!(s.p50_ms, None);
        assert_eq!(s.max_ms, None);
    }

    #[test]
    fn sub_millisecond_latencies_keep_their_precision() {
        let mut l = Latency::new();
        for _ in 0..10 {
            l.record(Duration::from_micros(420));
        }
        let p = l.percentile_ms(0.5, 10).unwrap();
        assert!((p - 0.42).abs() < 0.01, "{p}");
    }
}
