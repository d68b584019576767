//! Benchmark of the queue: 100,000 waiting tickets with a realistic mix, on Redis and in
//! memory. Reports joins per second, then newcomers who join and search at once (as
//! `POST /v1/queue` does: time from join to confirmed match), then matchers draining the
//! queue through the due list as the sweep does (pairs per second, time of one
//! search-and-pair). On Redis it also reports the CPU time Redis spent, per pair.
//!
//! ```text
//! cargo run --release -p matching-service --example match_bench [-- TICKETS [NEWCOMERS]]
//! ```
//!
//! Redis at `REDIS_URL` (default `redis://127.0.0.1:6379`), under a unique key prefix
//! deleted at the end; skipped with a message when Redis cannot be reached.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use matching_service::rules::{Criteria, Ticket, from_millis, millis, relaxed, shared_interests};
use matching_service::store::conformance::Rng;
use matching_service::store::memory::MemoryQueueStore;
use matching_service::store::redis::RedisQueueStore;
use matching_service::store::{Claim, Confirmation, QueueStore, SearchLimits};
use time::OffsetDateTime;
use uuid::Uuid;
use wire::api::auth::PublicProfile;
use wire::api::matching::{InterestMode, MatchInfo};
use wire::domain::{Gender, MAX_AGE, MIN_AGE};

/// Searches (and joins) in flight at once, as a sweep runs them (`sweep_concurrency`).
const CONCURRENCY: usize = 16;
/// Interests to pick from.
const INTERESTS: u64 = 200;

fn ticket(rng: &mut Rng, joined_at: OffsetDateTime) -> Ticket {
    let gender = match rng.below(100) {
        0..=46 => Gender::Male,
        47..=93 => Gender::Female,
        _ => Gender::Other,
    };
    // Ages 18 to 60, most between 18 and 35.
    let age = if rng.chance(70) {
        18 + rng.below(18)
    } else {
        18 + rng.below(43)
    } as u8;
    let genders = match rng.below(100) {
        0..=64 => match gender {
            Gender::Male => vec![Gender::Female],
            Gender::Female => vec![Gender::Male],
            Gender::Other => vec![],
        },
        65..=89 => vec![],
        _ => vec![gender],
    };
    let min_age = age.saturating_sub(3 + rng.below(8) as u8).max(MIN_AGE);
    let max_age = (age + 3 + rng.below(10) as u8).min(MAX_AGE);
    let n = 1 + rng.below(5) as usize;
    let mut interests: Vec<String> = Vec::with_capacity(n);
    while interests.len() < n {
        // Skewed popularity: low numbers are the popular interests.
        let i = rng.below(INTERESTS) * rng.below(INTERESTS) / INTERESTS;
        let tag = format!("interest{i}");
        if !interests.contains(&tag) {
            interests.push(tag);
        }
    }
    let (interest_mode, fallback_after_secs) = match rng.below(100) {
        0..=59 => (InterestMode::Preferred, None),
        60..=84 => (InterestMode::Required, Some(30)),
        _ => (InterestMode::Ignored, None),
    };
    Ticket {
        profile: PublicProfile {
            id: Uuid::new_v4(),
            display_name: format!("user{}", rng.below(1_000_000)),
            gender,
            age,
            interests: interests.clone(),
        },
        criteria: Criteria {
            genders,
            min_age,
            max_age,
            interests,
            interest_mode,
            age_widen_years: rng.below(6) as u8,
            widen_every_secs: 10,
            fallback_after_secs,
        },
        blocked: vec![],
        low_standing: None,
        joined_at,
    }
}

fn info(c: &Claim, seeker: bool, now: OffsetDateTime) -> MatchInfo {
    let (me, other) = if seeker {
        (&c.seeker, &c.partner)
    } else {
        (&c.partner, &c.seeker)
    };
    MatchInfo {
        match_id: c.match_id,
        chat_id: c.match_id,
        partner: other.profile.clone(),
        shared_interests: shared_interests(me, other),
        relaxed: relaxed(me, other, now),
        matched_at: now,
    }
}

/// Searches for `user` and, when a partner is claimed, confirms the pair (the store's
/// part of making a match). Whether a pair was made.
async fn search(store: &dyn QueueStore, user: Uuid) -> anyhow::Result<bool> {
    let now = matching_service::store::now();
    let Some(c) = store
        .claim(user, Uuid::now_v7(), now, Duration::from_secs(30))
        .await?
    else {
        return Ok(false);
    };
    let answer = store
        .confirm(
            &c,
            &info(&c, true, now),
            &info(&c, false, now),
            Duration::from_secs(600),
            now,
        )
        .await?;
    anyhow::ensure!(answer == Confirmation::Confirmed, "withdrawn: {answer:?}");
    Ok(true)
}

fn pct(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i]
}

fn ms(d: Duration) -> String {
    format!("{:.3} ms", d.as_secs_f64() * 1000.0)
}

/// Runs `work(i)` for `i` in `0..n` with `CONCURRENCY` tasks; the latency of each call
/// that returned `true`.
async fn run_concurrently<F, Fut>(n: usize, work: F) -> anyhow::Result<Vec<Duration>>
where
    F: Fn(usize) -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = anyhow::Result<bool>> + Send,
{
    let next = Arc::new(AtomicUsize::new(0));
    let work = Arc::new(work);
    let mut tasks = Vec::new();
    for _ in 0..CONCURRENCY {
        let next = Arc::clone(&next);
        let work = Arc::clone(&work);
        tasks.push(tokio::spawn(async move {
            let mut lat = Vec::new();
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= n {
                    return anyhow::Ok(lat);
                }
                let start = Instant::now();
                if work(i).await? {
                    lat.push(start.elapsed());
                }
            }
        }));
    }
    let mut all = Vec::new();
    for t in tasks {
        all.extend(t.await??);
    }
    all.sort();
    Ok(all)
}

/// CPU seconds the Redis server has used (`INFO cpu`), to tell what a phase cost Redis
/// from what it waited for a busy machine.
#[derive(Clone)]
struct RedisCpu(redis::aio::MultiplexedConnection);

impl RedisCpu {
    async fn seconds(&self) -> anyhow::Result<f64> {
        let info: String = redis::cmd("INFO")
            .arg("cpu")
            .query_async(&mut self.0.clone())
            .await?;
        let mut total = 0.0;
        for line in info.lines() {
            if let Some((k, v)) = line.trim().split_once(':')
                && (k == "used_cpu_sys" || k == "used_cpu_user")
            {
                total += v.parse::<f64>()?;
            }
        }
        Ok(total)
    }
}

/// Measures one phase: wall time, and Redis CPU time when known.
struct Phase {
    start: Instant,
    cpu0: Option<f64>,
}

impl Phase {
    async fn start(cpu: Option<&RedisCpu>) -> anyhow::Result<Self> {
        let cpu0 = match cpu {
            Some(c) => Some(c.seconds().await?),
            None => None,
        };
        Ok(Self {
            start: Instant::now(),
            cpu0,
        })
    }

    /// `(wall seconds, a description of the Redis CPU per item)`.
    async fn end(self, cpu: Option<&RedisCpu>, items: usize) -> anyhow::Result<(f64, String)> {
        let wall = self.start.elapsed().as_secs_f64();
        let note = match (cpu, self.cpu0) {
            (Some(c), Some(c0)) => {
                let used = c.seconds().await? - c0;
                format!(
                    "; Redis CPU {:.2} s = {:.0} us each, {:.0}/s per Redis core",
                    used,
                    used * 1e6 / items.max(1) as f64,
                    items as f64 / used.max(1e-9)
                )
            }
            _ => String::new(),
        };
        Ok((wall, note))
    }
}

async fn bench(
    name: &str,
    store: Arc<dyn QueueStore>,
    cpu: Option<RedisCpu>,
    tickets: usize,
    newcomers: usize,
) -> anyhow::Result<()> {
    let cpu = cpu.as_ref();
    println!("== {name}: {tickets} waiting tickets, {newcomers} newcomers");
    let mut rng = Rng::new(42);
    let now = matching_service::store::now();
    // The waiting queue built up over the last ten minutes, oldest first.
    let queue: Arc<Vec<Ticket>> = Arc::new(
        (0..tickets)
            .map(|i| {
                let back = 600_000 * (tickets - i) as i64 / tickets as i64;
                ticket(&mut rng, from_millis(millis(now) - back))
            })
            .collect(),
    );
    let fresh: Arc<Vec<Ticket>> = Arc::new((0..newcomers).map(|_| ticket(&mut rng, now)).collect());

    let phase = Phase::start(cpu).await?;
    let (s, q) = (Arc::clone(&store), Arc::clone(&queue));
    run_concurrently(tickets, move |i| {
        let (s, q) = (Arc::clone(&s), Arc::clone(&q));
        async move {
            s.join(q[i].clone(), matching_service::store::now()).await?;
            Ok(false)
        }
    })
    .await?;
    let (took, note) = phase.end(cpu, tickets).await?;
    println!(
        "load:      {tickets} joins in {took:.2} s = {:.0} joins/s{note}; waiting: {}",
        tickets as f64 / took,
        store.waiting_count().await?
    );

    // Newcomers join and search at once against the full queue.
    let phase = Phase::start(cpu).await?;
    let (s, f) = (Arc::clone(&store), Arc::clone(&fresh));
    let lat = run_concurrently(newcomers, move |i| {
        let (s, f) = (Arc::clone(&s), Arc::clone(&f));
        async move {
            let mut t = f[i].clone();
            t.joined_at = matching_service::store::now();
            let user = t.user_id();
            s.join(t, matching_service::store::now()).await?;
            search(s.as_ref(), user).await
        }
    })
    .await?;
    let (took, note) = phase.end(cpu, lat.len()).await?;
    println!(
        "newcomers: {} of {newcomers} matched at join in {took:.2} s = {:.0} pairs/s{note}; \
         time to match (join to confirmed) p50 {} p99 {}",
        lat.len(),
        lat.len() as f64 / took,
        ms(pct(&lat, 0.50)),
        ms(pct(&lat, 0.99)),
    );

    // Matchers drain the queue as the sweep does: the due tickets, most overdue first,
    // in batches; a ticket that finds nobody is due again at its next widening.
    let phase = Phase::start(cpu).await?;
    let mut lat = Vec::new();
    let mut searches = 0usize;
    loop {
        let due = store.due(matching_service::store::now(), 256).await?;
        if due.is_empty() {
            break;
        }
        searches += due.len();
        let due = Arc::new(due);
        let (s, d) = (Arc::clone(&store), Arc::clone(&due));
        lat.extend(
            run_concurrently(due.len(), move |i| {
                let (s, d) = (Arc::clone(&s), Arc::clone(&d));
                async move { search(s.as_ref(), d[i]).await }
            })
            .await?,
        );
    }
    lat.sort();
    let (took, note) = phase.end(cpu, lat.len()).await?;
    println!(
        "drain:     {} pairs in {took:.2} s = {:.0} pairs/s ({searches} searches){note}; \
         search-and-pair p50 {} p99 {}; still waiting: {}",
        lat.len(),
        lat.len() as f64 / took,
        ms(pct(&lat, 0.50)),
        ms(pct(&lat, 0.99)),
        store.waiting_count().await?
    );
    Ok(())
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let tickets: usize = args
        .next()
        .map(|a| a.parse())
        .transpose()?
        .unwrap_or(100_000);
    let newcomers: usize = args
        .next()
        .map(|a| a.parse())
        .transpose()?
        .unwrap_or(10_000);
    let url = std::env::var("REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".to_owned());
    let prefix = format!("rc_match_bench_{}", Uuid::new_v4().simple());
    match RedisQueueStore::connect(&url, &prefix, SearchLimits::default()).await {
        Ok(redis) => {
            let conn = redis::Client::open(url.as_str())?
                .get_multiplexed_async_connection()
                .await?;
            let cpu = Some(RedisCpu(conn));
            let outcome = bench("redis", Arc::new(redis.clone()), cpu, tickets, newcomers).await;
            let purged = redis.purge().await?;
            println!("deleted {purged} keys under {{{prefix}}}");
            outcome?;
        }
        Err(err) => println!("== redis: skipped, cannot connect: {err}"),
    }
    bench(
        "memory",
        Arc::new(MemoryQueueStore::new()),
        None,
        tickets,
        newcomers,
    )
    .await
}
