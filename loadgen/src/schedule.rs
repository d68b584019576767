//! The open-loop send schedule: send `k` is due at `k / rate` seconds after the start,
//! whatever happened to earlier sends, so a slow server cannot slow the load down
//! (no coordinated omission).

use std::time::Duration;

/// A fixed aggregate rate over `pairs` pairs, a warm-up and then a measured window.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Schedule {
    /// Messages per second, all pairs together.
    pub rate: f64,
    /// Number of pairs the sends rotate over.
    pub pairs: usize,
    /// Time before the measured window; its sends load the server but are not counted.
    pub warmup: Duration,
    /// The measured window.
    pub measure: Duration,
}

impl Schedule {
    /// Every send of the run, warm-up included.
    pub fn total(&self) -> u64 {
        (self.rate * (self.warmup + self.measure).as_secs_f64()).round() as u64
    }

    /// When send `k` is due, from the start of the run.
    pub fn offset(&self, k: u64) -> Duration {
        Duration::from_secs_f64(k as f64 / self.rate)
    }

    /// Whether send `k` falls in the measured window.
    pub fn in_window(&self, k: u64) -> bool {
        let at = self.offset(k);
        at >= self.warmup && at < self.warmup + self.measure
    }

    /// How many sends are due once `elapsed` has passed since the start (at most
    /// [`Self::total`]).
    pub fn due_by(&self, elapsed: Duration) -> u64 {
        let due = (elapsed.as_secs_f64() * self.rate).floor() as u64 + 1;
        due.min(self.total())
    }

    /// Which pair sends `k`, and which side of it (0 or 1): round-robin over the pairs,
    /// and the direction alternates on every round.
    pub fn sender(&self, k: u64) -> (usize, usize) {
        let pairs = self.pairs.max(1) as u64;
        ((k % pairs) as usize, ((k / pairs) & 1) as usize)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn schedule(rate: f64, pairs: usize) -> Schedule {
        Schedule {
            rate,
            pairs,
            warmup: Duration::from_secs(1),
            measure: Duration::from_secs(2),
        }
    }

    #[test]
    fn sends_are_spaced_evenly_at_the_rate() {
        let s = schedule(1000.0, 10);
        assert_eq!(s.total(), 3000);
        assert_eq!(s.offset(0), Duration::ZERO);
        assert_eq!(s.offset(500), Duration::from_millis(500));
        assert_eq!(s.offset(2999), Duration::from_secs_f64(2.999));
    }

    #[test]
    fn only_sends_after_the_warm_up_and_before_the_end_are_measured() {
        let s = schedule(1000.0, 10);
        assert!(!s.in_window(999));
        assert!(s.in_window(1000));
        assert!(s.in_window(2999));
        assert!(!s.in_window(3000));
        assert_eq!((0..s.total()).filter(|&k| s.in_window(k)).count(), 2000);
    }

    #[test]
    fn the_sends_due_grow_with_time_and_stop_at_the_total() {
        let s = schedule(100.0, 2);
        assert_eq!(s.due_by(Duration::ZERO), 1);
        assert_eq!(s.due_by(Duration::from_millis(9)), 1);
        assert_eq!(s.due_by(Duration::from_millis(10)), 2);
        assert_eq!(s.due_by(Duration::from_secs(1)), 101);
        assert_eq!(s.due_by(Duration::from_secs(60)), s.total());
    }

    #[test]
    fn senders_rotate_over_pairs_and_alternate_direction() {
        let s = schedule(100.0, 3);
        let senders: Vec<_> = (0..7).map(|k| s.sender(k)).collect();
        assert_eq!(
            senders,
            vec![(0, 0), (1, 0), (2, 0), (0, 1), (1, 1), (2, 1), (0, 0)]
        );
    }
}
