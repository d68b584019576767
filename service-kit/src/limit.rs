//! Per-user rate limits for actions a user can repeat to annoy others or load the service
//! (joining the queue, *Next*, blocking): a token bucket per user (GCRA). In one process
//! the buckets are in memory (`governor`); with Redis ([`UserLimiter::shared`]) every
//! instance of a service draws on the same bucket, so running more instances does not
//! multiply a user's allowance. When Redis does not answer, the local buckets decide.

use std::num::NonZeroU32;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use tokio::sync::OnceCell;
use uuid::Uuid;

/// Checks between two clean-ups of the users back to a full allowance.
const SHRINK_EVERY: u64 = 4096;

/// Longest a shared check waits for Redis before the local bucket decides.
const REDIS_TIMEOUT: Duration = Duration::from_millis(500);

/// GCRA on Redis's clock: the key holds the bucket's theoretical arrival time (ms). The
/// answer is 0 (allowed and counted) or the milliseconds to wait.
const GCRA: &str = r"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local period, burst = tonumber(ARGV[1]), tonumber(ARGV[2])
local tat = tonumber(redis.call('GET', KEYS[1])) or now
if tat < now then tat = now end
local wait = tat - now - (burst - 1) * period
if wait > 0 then return wait end
tat = tat + period
redis.call('SET', KEYS[1], tat, 'PX', tat - now)
return 0
";

/// `burst` actions at once per user, then one more every `refill`.
#[derive(Debug)]
pub struct UserLimiter {
    limiter: DefaultKeyedRateLimiter<Uuid>,
    checks: AtomicU64,
    burst: u32,
    refill: Duration,
    shared: Option<Shared>,
}

/// The buckets on Redis, under `rc:limit:{name}:{user}`.
struct Shared {
    client: redis::Client,
    connection: OnceCell<ConnectionManager>,
    prefix: String,
    script: redis::Script,
}

impl std::fmt::Debug for Shared {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Shared")
            .field("prefix", &self.prefix)
            .finish_non_exhaustive()
    }
}

impl UserLimiter {
    /// A limiter allowing `burst` at once (at least 1) and one more per `refill`.
    pub fn new(burst: u32, refill: Duration) -> Self {
        let refill = refill.max(Duration::from_millis(1));
        let burst = burst.max(1);
        let quota = Quota::with_period(refill)
            .expect("a positive period")
            .allow_burst(NonZeroU32::new(burst).expect("max(1) is non-zero"));
        Self {
            limiter: RateLimiter::keyed(quota),
            checks: AtomicU64::new(0),
            burst,
            refill,
            shared: None,
        }
    }

    /// Keeps the buckets on the Redis at `url`, shared by every limiter of this `name`
    /// there (the same action in every instance of a service). Connects on first use.
    pub fn shared(mut self, url: &str, name: &str) -> Result<Self, redis::RedisError> {
        self.shared = Some(Shared {
            client: redis::Client::open(url)?,
            connection: OnceCell::new(),
            prefix: format!("rc:limit:{name}:"),
            script: redis::Script::new(GCRA),
        });
        Ok(self)
    }

    /// `Ok` when `user` may act now (and counts it), else the whole seconds to wait.
    pub async fn check(&self, user: Uuid) -> Result<(), u64> {
        if let Some(shared) = &self.shared {
            match tokio::time::timeout(REDIS_TIMEOUT, self.check_shared(shared, user)).await {
                Ok(Ok(0)) => return Ok(()),
                Ok(Ok(wait_ms)) => return Err(wait_ms.div_ceil(1000).max(1)),
                Ok(Err(err)) => {
                    crate::telemetry::count_backend_error(crate::telemetry::Backend::Redis, true);
                    tracing::warn!(error = %err, "shared rate limit unavailable; limiting in this instance");
                }
                Err(_) => {
                    crate::telemetry::count_backend_error(crate::telemetry::Backend::Redis, true);
                    tracing::warn!("shared rate limit timed out; limiting in this instance");
                }
            }
        }
        self.check_local(user)
    }

    async fn check_shared(&self, shared: &Shared, user: Uuid) -> Result<u64, redis::RedisError> {
        let connection = shared
            .connection
            .get_or_try_init(|| {
                let config = ConnectionManagerConfig::new()
                    .set_connection_timeout(Some(REDIS_TIMEOUT))
                    .set_response_timeout(Some(REDIS_TIMEOUT))
                    .set_number_of_retries(1);
                ConnectionManager::new_with_config(shared.client.clone(), config)
            })
            .await?;
        let mut connection = connection.clone();
        shared
            .script
            .key(format!("{}{user}", shared.prefix))
            .arg(self.refill.as_millis() as u64)
            .arg(self.burst)
            .invoke_async(&mut connection)
            .await
    }

    /// The in-memory bucket of `user`.
    fn check_local(&self, user: Uuid) -> Result<(), u64> {
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

/// A limiter of `burst` and `refill`, shared on the Redis at `redis_url` under `name`
/// when one is given (falling back to this instance's memory if the URL is unusable).
pub fn limiter(burst: u32, refill: Duration, redis_url: Option<&str>, name: &str) -> UserLimiter {
    let local = UserLimiter::new(burst, refill);
    match redis_url {
        None => local,
        Some(url) => local.shared(url, name).unwrap_or_else(|err| {
            tracing::error!(error = %err, limit = name, "invalid Redis URL for the shared rate limits; limiting per instance");
            UserLimiter::new(burst, refill)
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_user_gets_the_burst_then_waits_and_others_are_not_affected() {
        let limiter = UserLimiter::new(3, Duration::from_secs(60));
        let (ann, bob) = (Uuid::new_v4(), Uuid::new_v4());
        for _ in 0..3 {
            assert_eq!(limiter.check(ann).await, Ok(()));
        }
        let wait = limiter.check(ann).await.unwrap_err();
        assert!((1..=60).contains(&wait), "{wait}");
        assert_eq!(limiter.check(bob).await, Ok(()));
    }

    #[tokio::test]
    async fn instances_sharing_redis_share_one_allowance_per_user() {
        let Some(url) = test_support::backend_url("REDIS_URL") else {
            return;
        };
        let name = test_support::unique_name("limit");
        let instance = || {
            UserLimiter::new(3, Duration::from_secs(60))
                .shared(&url, &name)
                .unwrap()
        };
        let (one, two) = (instance(), instance());
        let (ann, bob) = (Uuid::new_v4(), Uuid::new_v4());
        assert_eq!(one.check(ann).await, Ok(()));
        assert_eq!(two.check(ann).await, Ok(()));
        assert_eq!(one.check(ann).await, Ok(()));
        let wait = two.check(ann).await.unwrap_err();
        assert!((1..=60).contains(&wait), "{wait}");
        assert!(one.check(ann).await.is_err(), "spent in either instance");
        assert_eq!(two.check(bob).await, Ok(()), "others are not affected");
        assert_eq!(one.tracked(), 0, "nothing was decided locally");
    }

    #[tokio::test]
    async fn without_redis_the_local_bucket_decides() {
        // Nothing listens on port 1: every shared check fails and falls back.
        let limiter = UserLimiter::new(1, Duration::from_secs(60))
            .shared("redis://127.0.0.1:1", "down")
            .unwrap();
        let ann = Uuid::new_v4();
        assert_eq!(limiter.check(ann).await, Ok(()));
        assert!(limiter.check(ann).await.is_err());
    }

    #[test]
    fn users_back_to_a_full_allowance_are_forgotten() {
        let limiter = UserLimiter::new(1, Duration::from_millis(1));
        for _ in 0..SHRINK_EVERY - 1 {
            let _ = limiter.check_local(Uuid::new_v4());
        }
        std::thread::sleep(Duration::from_millis(5));
        assert!(limiter.tracked() >= 4000);
        // The next check cleans up: every earlier user has its full allowance again.
        let _ = limiter.check_local(Uuid::new_v4());
        assert!(limiter.tracked() <= 1, "{}", limiter.tracked());
    }
}
