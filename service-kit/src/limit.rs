//! Per-user rate limits for actions a user can repeat to annoy others or load the service
//! (joining the queue, *Next*, blocking): a token bucket per user (GCRA via `governor`).

use std::num::NonZeroU32;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use uuid::Uuid;

/// Checks between two clean-ups of the users back to a full allowance.
const SHRINK_EVERY: u64 = 4096;

/// `burst` actions at once per user, then one more every `refill`.
#[derive(Debug)]
pub struct UserLimiter {
    limiter: DefaultKeyedRateLimiter<Uuid>,
    checks: AtomicU64,
}

impl UserLimiter {
    /// A limiter allowing `burst` at once (at least 1) and one more per `refill`.
    pub fn new(burst: u32, refill: Duration) -> Self {
        let burst = NonZeroU32::new(burst.max(1)).expect("max(1) is non-zero");
        let quota = Quota::with_period(refill.max(Duration::from_millis(1)))
            .expect("a positive period")
            .allow_burst(burst);
        Self {
            limiter: RateLimiter::keyed(quota),
            checks: AtomicU64::new(0),
        }
    }

    /// `Ok` when `user` may act now (and counts it), else the whole seconds to wait.
    pub fn check(&self, user: Uuid) -> Result<(), u64> {
        // The state of users back to a full allowance is dropped now and then, so that
        // it does not grow with every user ever seen.
        if self.checks.fetch_add(1, Ordering::Relaxed) % SHRINK_EVERY == SHRINK_EVERY - 1 {
            self.limiter.retain_recent();
            self.limiter.shrink_to_fit();
        }
        self.limiter.check_key(&user).map_err(|not_until| {
            let wait = not_until.wait_time_from(DefaultClock::default().now());
            (wait.as_secs() + u64::from(wait.subsec_nanos() > 0)).max(1)
        })
    }

    /// Users whose state is held now.
    pub fn tracked(&self) -> usize {
        self.limiter.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_user_gets_the_burst_then_waits_and_others_are_not_affected() {
        let limiter = UserLimiter::new(3, Duration::from_secs(60));
        let (ann, bob) = (Uuid::new_v4(), Uuid::new_v4());
        for _ in 0..3 {
            assert_eq!(limiter.check(ann), Ok(()));
        }
        let wait = limiter.check(ann).unwrap_err();
        assert!((1..=60).contains(&wait), "{wait}");
        assert_eq!(limiter.check(bob), Ok(()));
    }

    #[test]
    fn users_back_to_a_full_allowance_are_forgotten() {
        let limiter = UserLimiter::new(1, Duration::from_millis(1));
        for _ in 0..SHRINK_EVERY - 1 {
            let _ = limiter.check(Uuid::new_v4());
        }
        std::thread::sleep(Duration::from_millis(5));
        assert!(limiter.tracked() >= 4000);
        // The next check cleans up: every earlier user has its full allowance again.
        let _ = limiter.check(Uuid::new_v4());
        assert!(limiter.tracked() <= 1, "{}", limiter.tracked());
    }
}
