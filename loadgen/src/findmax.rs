//! The pass/fail rule of one rate step and the search for the highest rate that holds:
//! double until a step fails, then bisect until the highest pass and the lowest failure
//! are within 10 %.

use serde::Serialize;

/// When a step holds.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct PassRule {
    /// Least share of the messages sent that must reach the partner within the run.
    pub min_delivered: f64,
    /// Highest acceptable p99 send→partner-receive latency, in milliseconds.
    pub max_p99_ms: f64,
}

impl Default for PassRule {
    fn default() -> Self {
        Self {
            min_delivered: 0.99,
            max_p99_ms: 50.0,
        }
    }
}

impl PassRule {
    /// Whether a step with these results held. A p99 of `None` (it fell on a message that
    /// never arrived) fails.
    pub fn passes(&self, sent: u64, delivered: u64, p99_ms: Option<f64>) -> bool {
        sent > 0
            && delivered as f64 >= self.min_delivered * sent as f64
            && p99_ms.is_some_and(|p99| p99 <= self.max_p99_ms)
    }
}

/// The rate search. Feed it each step's outcome; it says which rate to try next.
#[derive(Debug, Clone, PartialEq)]
pub struct Search {
    next: Option<f64>,
    max_rate: f64,
    /// Highest rate that passed.
    pub highest_pass: Option<f64>,
    /// Lowest rate that failed.
    pub lowest_fail: Option<f64>,
}

/// Rates are rounded to this many messages per second.
const GRAIN: f64 = 50.0;

fn round_rate(rate: f64) -> f64 {
    ((rate / GRAIN).round() * GRAIN).max(GRAIN)
}

impl Search {
    /// Starts at `start` msg/s, never beyond `max_rate`.
    pub fn new(start: f64, max_rate: f64) -> Self {
        Self {
            next: Some(round_rate(start.min(max_rate))),
            max_rate,
            highest_pass: None,
            lowest_fail: None,
        }
    }

    /// The rate to try next, or `None` when the search is over.
    pub fn next_rate(&self) -> Option<f64> {
        self.next
    }

    /// Records the outcome of a step at `rate`.
    pub fn record(&mut self, rate: f64, passed: bool) {
        if passed {
            self.highest_pass = Some(self.highest_pass.map_or(rate, |r| r.max(rate)));
        } else {
            self.lowest_fail = Some(self.lowest_fail.map_or(rate, |r| r.min(rate)));
        }
        self.next = match (self.highest_pass, self.lowest_fail) {
            (Some(lo), Some(hi)) if hi <= lo * 1.1 => None,
            (Some(lo), None) if lo >= self.max_rate => None,
            (Some(lo), None) => Some(round_rate((lo * 2.0).min(self.max_rate))),
            (None, Some(hi)) if hi <= GRAIN => None,
            (None, Some(hi)) => Some(round_rate(hi / 2.0)),
            (Some(lo), Some(hi)) => {
                let mid = round_rate((lo + hi) / 2.0);
                (mid > lo && mid < hi).then_some(mid)
            }
            (None, None) => unreachable!("a step was just recorded"),
        };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_step_passes_with_enough_delivered_and_a_low_p99() {
        let rule = PassRule::default();
        assert!(rule.passes(1000, 990, Some(50.0)));
        assert!(rule.passes(1000, 1000, Some(3.2)));
    }

    #[test]
    fn a_step_fails_on_lost_messages_a_high_p99_or_nothing_sent() {
        let rule = PassRule::default();
        assert!(!rule.passes(1000, 989, Some(5.0)));
        assert!(!rule.passes(1000, 1000, Some(50.1)));
        assert!(!rule.passes(1000, 1000, None));
        assert!(!rule.passes(0, 0, Some(1.0)));
    }

    /// Runs the search against a server that holds exactly `limit` msg/s.
    fn search_against(limit: f64, start: f64, max_rate: f64) -> (Search, Vec<f64>) {
        let mut search = Search::new(start, max_rate);
        let mut tried = Vec::new();
        while let Some(rate) = search.next_rate() {
            tried.push(rate);
            search.record(rate, rate <= limit);
            assert!(tried.len() < 50, "the search does not end: {tried:?}");
        }
        (search, tried)
    }

    #[test]
    fn the_search_doubles_then_bisects_to_within_ten_percent() {
        let (search, tried) = search_against(13_000.0, 1000.0, 1e9);
        assert_eq!(&tried[..5], &[1000.0, 2000.0, 4000.0, 8000.0, 16000.0]);
        let lo = search.highest_pass.unwrap();
        let hi = search.lowest_fail.unwrap();
        assert!(lo <= 13_000.0 && hi > 13_000.0);
        assert!(hi <= lo * 1.1, "{lo} {hi}");
    }

    #[test]
    fn the_search_halves_when_the_first_step_fails() {
        let (search, tried) = search_against(700.0, 4000.0, 1e9);
        assert_eq!(&tried[..4], &[4000.0, 2000.0, 1000.0, 500.0]);
        assert!(search.highest_pass.unwrap() <= 700.0);
    }

    #[test]
    fn the_search_stops_at_the_cap_when_everything_passes() {
        let (search, tried) = search_against(1e12, 1000.0, 5000.0);
        assert_eq!(tried, vec![1000.0, 2000.0, 4000.0, 5000.0]);
        assert_eq!(search.highest_pass, Some(5000.0));
        assert_eq!(search.lowest_fail, None);
    }

    #[test]
    fn the_search_gives_up_when_nothing_holds() {
        let (search, _) = search_against(0.0, 400.0, 1e9);
        assert_eq!(search.highest_pass, None);
    }
}
