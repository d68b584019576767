//! Login throttling: bounds failed log ins per account, per client IP and per
//! (account, IP) pair, so that guessing is slow while a victim cannot be locked out
//! for long.
//!
//! Each key keeps the times of its latest failures within a sliding window. A key with
//! `limit` failures in the window is locked until the window lets one more through, but
//! never for longer than `max_lockout` after its latest failure: after that one attempt
//! is allowed again (and a failure locks it again). So a guesser gets at most one try per
//! `max_lockout` per key once over the limit.
//!
//! - per (account, IP): a client guessing one account; a successful log in clears it;
//! - per IP: one client spraying many accounts;
//! - per account: many clients guessing one account. This bound does not apply to an
//!   (account, IP) pair that logged in successfully before (within `trusted_for`), so an
//!   attacker elsewhere cannot lock the owner out of their usual place.
//!
//! Attempts are counted as failures when they begin (and taken back on success), so a
//! burst of parallel guesses cannot slip through before the first one fails.
//!
//! State is in memory per instance: with N instances behind the gateway the effective
//! bounds are up to N times larger, which the gateway's per-IP rate limit caps.

use std::collections::{HashMap, VecDeque};
use std::hash::Hash;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::Duration;

use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use tokio::time::Instant;

/// Sign-ups per client IP (GCRA): a burst, then one more per refill period. Checked before
/// any password is hashed, so anonymous sign-ups cannot exhaust hashing.
#[derive(Debug)]
pub struct SignupLimiter {
    limiter: DefaultKeyedRateLimiter<IpAddr>,
}

impl SignupLimiter {
    /// `burst` sign-ups at once, then one per `refill`.
    pub fn new(burst: u32, refill: Duration) -> Self {
        let burst = std::num::NonZeroU32::new(burst.max(1)).expect("max(1) is non-zero");
        let quota = Quota::with_period(refill.max(Duration::from_millis(1)))
            .expect("a positive period")
            .allow_burst(burst);
        Self {
            limiter: RateLimiter::keyed(quota),
        }
    }

    /// `Ok` when `ip` may sign up now, else the seconds to wait.
    pub fn check(&self, ip: IpAddr) -> Result<(), u64> {
        self.limiter.check_key(&ip).map_err(|not_until| {
            let wait = not_until.wait_time_from(DefaultClock::default().now());
            (wait.as_secs() + u64::from(wait.subsec_nanos() > 0)).max(1)
        })
    }

    /// Forgets clients that are back to a full burst.
    pub fn shrink(&self) {
        self.limiter.retain_recent();
        self.limiter.shrink_to_fit();
    }
}

/// Throttling limits.
#[derive(Debug, Clone)]
pub struct ThrottleConfig {
    /// Sliding window in which failures count.
    pub window: Duration,
    /// Failures allowed per (account, IP) pair in the window.
    pub per_pair: u32,
    /// Failures allowed per account (all IPs) in the window.
    pub per_account: u32,
    /// Failures allowed per IP (all accounts) in the window.
    pub per_ip: u32,
    /// Longest lockout after the latest failure.
    pub max_lockout: Duration,
    /// How long a successful (account, IP) pair is exempt from the per-account bound.
    pub trusted_for: Duration,
}

impl Default for ThrottleConfig {
    fn default() -> Self {
        Self {
            window: Duration::from_secs(15 * 60),
            per_pair: 5,
            per_account: 20,
            per_ip: 100,
            max_lockout: Duration::from_secs(60),
            trusted_for: Duration::from_secs(30 * 24 * 3600),
        }
    }
}

/// A begun log-in attempt, provisionally counted as a failure.
#[derive(Debug)]
#[must_use = "an attempt must end with `succeeded`, `failed` or `abandoned`"]
pub struct Attempt {
    account: String,
    ip: IpAddr,
    at: Instant,
}

#[derive(Debug)]
struct Failures<K> {
    by_key: HashMap<K, VecDeque<Instant>>,
}

impl<K> Default for Failures<K> {
    fn default() -> Self {
        Self {
            by_key: HashMap::new(),
        }
    }
}

impl<K: Hash + Eq + Clone> Failures<K> {
    /// When `key` may try again, if it is locked now.
    fn locked_until(
        &self,
        key: &K,
        limit: u32,
        config: &ThrottleConfig,
        now: Instant,
    ) -> Option<Instant> {
        let times = self.by_key.get(key)?;
        let limit = limit.max(1) as usize;
        let recent: Vec<Instant> = times
            .iter()
            .copied()
            .filter(|t| now < *t + config.window)
            .collect();
        if recent.len() < limit {
            return None;
        }
        let window_opens = recent[recent.len() - limit] + config.window;
        let lockout_ends = *recent.last()? + config.max_lockout;
        let until = window_opens.min(lockout_ends);
        (now < until).then_some(until)
    }

    fn push(&mut self, key: K, at: Instant, limit: u32) {
        let times = self.by_key.entry(key).or_default();
        times.push_back(at);
        // Only the latest `limit` failures decide a lockout.
        while times.len() > limit.max(1) as usize {
            times.pop_front();
        }
    }

    fn take_back(&mut self, key: &K, at: Instant) {
        if let Some(times) = self.by_key.get_mut(key)
            && let Some(pos) = times.iter().rposition(|t| *t == at)
        {
            times.remove(pos);
        }
    }

    fn clear(&mut self, key: &K) {
        self.by_key.remove(key);
    }

    fn sweep(&mut self, now: Instant, window: Duration) {
        self.by_key
            .retain(|_, times| times.back().is_some_and(|t| now < *t + window));
    }
}

#[derive(Debug, Default)]
struct State {
    pairs: Failures<(String, IpAddr)>,
    accounts: Failures<String>,
    ips: Failures<IpAddr>,
    trusted: HashMap<(String, IpAddr), Instant>,
    since_sweep: u32,
}

/// The in-memory login throttle.
#[derive(Debug)]
pub struct LoginThrottle {
    config: ThrottleConfig,
    state: Mutex<State>,
}

/// Attempts between two sweeps of stale entries.
const SWEEP_EVERY: u32 = 1024;

impl LoginThrottle {
    /// A throttle with these limits.
    pub fn new(config: ThrottleConfig) -> Self {
        Self {
            config,
            state: Mutex::new(State::default()),
        }
    }

    /// Begins a log-in attempt for `account` (lower-case) from `ip`, or answers the whole
    /// seconds to wait.
    pub fn begin(&self, account: &str, ip: IpAddr) -> Result<Attempt, u64> {
        let now = Instant::now();
        let config = &self.config;
        let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        state.since_sweep += 1;
        if state.since_sweep >= SWEEP_EVERY {
            state.since_sweep = 0;
            state.pairs.sweep(now, config.window);
            state.accounts.sweep(now, config.window);
            state.ips.sweep(now, config.window);
            let trusted_for = config.trusted_for;
            state.trusted.retain(|_, at| now < *at + trusted_for);
        }
        let pair = (account.to_owned(), ip);
        let trusted = state
            .trusted
            .get(&pair)
            .is_some_and(|at| now < *at + config.trusted_for);
        let locks = [
            state
                .pairs
                .locked_until(&pair, config.per_pair, config, now),
            state.ips.locked_until(&ip, config.per_ip, config, now),
            if trusted {
                None
            } else {
                state
                    .accounts
                    .locked_until(&pair.0, config.per_account, config, now)
            },
        ];
        if let Some(until) = locks.into_iter().flatten().max() {
            let wait = until - now;
            return Err(wait.as_secs() + u64::from(wait.subsec_nanos() > 0));
        }
        state.pairs.push(pair, now, config.per_pair);
        state.ips.push(ip, now, config.per_ip);
        state
            .accounts
            .push(account.to_owned(), now, config.per_account);
        Ok(Attempt {
            account: account.to_owned(),
            ip,
            at: now,
        })
    }

    /// The attempt logged in: the pair's failures are cleared, the attempt is taken back
    /// from the account and IP counts, and the pair becomes trusted.
    pub fn succeeded(&self, attempt: Attempt) {
        let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        let pair = (attempt.account, attempt.ip);
        state.pairs.clear(&pair);
        state.accounts.take_back(&pair.0, attempt.at);
        state.ips.take_back(&pair.1, attempt.at);
        state.trusted.insert(pair, Instant::now());
    }

    /// The attempt failed on bad credentials: it stays counted.
    pub fn failed(&self, attempt: Attempt) {
        drop(attempt);
    }

    /// The attempt ended without a verdict on the credentials (a backend was down): it is
    /// taken back.
    pub fn abandoned(&self, attempt: Attempt) {
        let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        let pair = (attempt.account, attempt.ip);
        state.pairs.take_back(&pair, attempt.at);
        state.accounts.take_back(&pair.0, attempt.at);
        state.ips.take_back(&pair.1, attempt.at);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::Ipv4Addr;

    fn ip(last: u8) -> IpAddr {
        IpAddr::V4(Ipv4Addr::new(10, 0, 0, last))
    }

    fn config() -> ThrottleConfig {
        ThrottleConfig {
            window: Duration::from_secs(600),
            per_pair: 3,
            per_account: 5,
            per_ip: 8,
            max_lockout: Duration::from_secs(60),
            trusted_for: Duration::from_secs(3600),
        }
    }

    fn fail(throttle: &LoginThrottle, account: &str, from: IpAddr) -> Result<(), u64> {
        throttle.begin(account, from).map(|a| throttle.failed(a))
    }

    #[tokio::test(start_paused = true)]
    async fn a_pair_is_locked_after_its_limit_of_failures() {
        let throttle = LoginThrottle::new(config());
        for _ in 0..3 {
            fail(&throttle, "alice", ip(1)).unwrap();
        }
        assert_eq!(fail(&throttle, "alice", ip(1)), Err(60));
    }

    #[tokio::test(start_paused = true)]
    async fn a_lockout_ends_after_the_maximum_lockout() {
        let throttle = LoginThrottle::new(config());
        for _ in 0..3 {
            fail(&throttle, "alice", ip(1)).unwrap();
        }
        tokio::time::advance(Duration::from_secs(59)).await;
        assert_eq!(fail(&throttle, "alice", ip(1)), Err(1));
        tokio::time::advance(Duration::from_secs(1)).await;
        assert_eq!(fail(&throttle, "alice", ip(1)), Ok(()));
        // Still over the limit in the window: the next failure locks again.
        assert_eq!(fail(&throttle, "alice", ip(1)), Err(60));
    }

    #[tokio::test(start_paused = true)]
    async fn a_success_clears_the_pair() {
        let throttle = LoginThrottle::new(config());
        for _ in 0..2 {
            fail(&throttle, "alice", ip(1)).unwrap();
        }
        let attempt = throttle.begin("alice", ip(1)).unwrap();
        throttle.succeeded(attempt);
        for _ in 0..3 {
            fail(&throttle, "alice", ip(1)).unwrap();
        }
    }

    #[tokio::test(start_paused = true)]
    async fn failures_from_many_ips_lock_the_account_for_untrusted_ips_only() {
        let throttle = LoginThrottle::new(config());
        throttle.succeeded(throttle.begin("alice", ip(1)).unwrap());
        for n in 10..15 {
            fail(&throttle, "alice", ip(n)).unwrap();
        }
        assert!(
            fail(&throttle, "alice", ip(20)).is_err(),
            "a new IP is locked out"
        );
        assert!(
            throttle.begin("alice", ip(1)).is_ok(),
            "the owner's usual IP is not"
        );
        assert!(
            fail(&throttle, "bob", ip(20)).is_ok(),
            "other accounts are unaffected"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn one_ip_spraying_accounts_is_locked() {
        let throttle = LoginThrottle::new(config());
        for n in 0..8 {
            fail(&throttle, &format!("user{n}"), ip(1)).unwrap();
        }
        assert!(fail(&throttle, "another", ip(1)).is_err());
        assert!(fail(&throttle, "another", ip(2)).is_ok());
    }

    #[tokio::test(start_paused = true)]
    async fn an_abandoned_attempt_does_not_count() {
        let throttle = LoginThrottle::new(config());
        for _ in 0..10 {
            let attempt = throttle.begin("alice", ip(1)).unwrap();
            throttle.abandoned(attempt);
        }
        assert!(throttle.begin("alice", ip(1)).is_ok());
    }

    #[tokio::test(start_paused = true)]
    async fn failures_older_than_the_window_are_forgotten() {
        let mut config = config();
        config.max_lockout = Duration::from_secs(3600);
        let throttle = LoginThrottle::new(config);
        for _ in 0..3 {
            fail(&throttle, "alice", ip(1)).unwrap();
        }
        assert_eq!(fail(&throttle, "alice", ip(1)), Err(600));
        tokio::time::advance(Duration::from_secs(600)).await;
        assert!(fail(&throttle, "alice", ip(1)).is_ok());
    }

    #[test]
    fn sign_ups_past_the_burst_wait_and_other_ips_do_not() {
        let limiter = SignupLimiter::new(3, Duration::from_secs(60));
        let ip: IpAddr = "192.0.2.1".parse().unwrap();
        for _ in 0..3 {
            assert!(limiter.check(ip).is_ok());
        }
        let wait = limiter.check(ip).unwrap_err();
        assert!((1..=60).contains(&wait), "{wait}");
        assert!(limiter.check("192.0.2.2".parse().unwrap()).is_ok());
    }
}
