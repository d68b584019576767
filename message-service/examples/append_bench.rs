//! Appends per second on each store: N concurrent writers over several chats, on a SQLite
//! file (always) and on MongoDB (when `MONGODB_URL` is set, on a fresh database dropped
//! afterwards), each append straight to the store (`direct`, a transaction per message)
//! and through the group committer the service uses (`group`, concurrent appends share a
//! transaction).
//!
//! ```text
//! cargo run --release -p message-service --example append_bench
//! ```
//!
//! Settings (environment): `APPEND_BENCH_WRITERS` (comma-separated writer counts, default
//! `1,16,64`), `APPEND_BENCH_CHATS` (default 8), `APPEND_BENCH_MESSAGES` (appends per run
//! on SQLite, default 4000), `APPEND_BENCH_MONGO_MESSAGES` (on MongoDB, default 2000),
//! `APPEND_BENCH_PATHS` (`direct`, `group` or both, comma-separated; default both).

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use message_service::store::commit::{DEFAULT_MAX_BATCH, GroupCommitter};
use message_service::store::conformance::{message, new_chat};
use message_service::store::mongo::MongoMessageStore;
use message_service::store::sqlite::SqliteMessageStore;
use message_service::store::{MessageStore, StoreError};
use uuid::Uuid;

fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name)
        .ok()
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(default)
}

fn writer_counts() -> Vec<usize> {
    std::env::var("APPEND_BENCH_WRITERS")
        .ok()
        .map(|v| {
            v.split(',')
                .filter_map(|n| n.trim().parse().ok())
                .filter(|n| *n > 0)
                .collect::<Vec<usize>>()
        })
        .filter(|v| !v.is_empty())
        .unwrap_or_else(|| vec![1, 16, 64])
}

/// How the writers append.
#[derive(Clone)]
enum Path {
    /// `MessageStore::append`: one transaction per message.
    Direct,
    /// Through a group committer: concurrent appends share a transaction.
    Group(GroupCommitter),
}

fn paths() -> Vec<&'static str> {
    let wanted = std::env::var("APPEND_BENCH_PATHS").unwrap_or_default();
    let chosen: Vec<&'static str> = ["direct", "group"]
        .into_iter()
        .filter(|p| wanted.split(',').any(|w| w.trim() == *p))
        .collect();
    if chosen.is_empty() {
        vec!["direct", "group"]
    } else {
        chosen
    }
}

/// One run's figures.
struct Figures {
    appends: usize,
    elapsed: Duration,
    p50: Duration,
    p99: Duration,
    max: Duration,
}

/// `total` appends by `writers` concurrent writers spread over `chats` fresh chats; checks
/// afterwards that every chat's seqs are dense.
async fn run(
    store: Arc<dyn MessageStore>,
    path: Path,
    writers: usize,
    chats: usize,
    total: usize,
) -> Result<Figures, StoreError> {
    let mut ids = Vec::with_capacity(chats);
    let mut members = Vec::with_capacity(chats);
    for _ in 0..chats {
        let pair = [Uuid::new_v4(), Uuid::new_v4()];
        ids.push(new_chat(store.as_ref(), &pair).await.chat.id);
        members.push(pair);
    }
    let next = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    let tasks: Vec<_> = (0..writers)
        .map(|w| {
            let store = store.clone();
            let path = path.clone();
            let next = next.clone();
            let ids = ids.clone();
            let members = members.clone();
            tokio::spawn(async move {
                let mut latencies = Vec::new();
                loop {
                    let n = next.fetch_add(1, Ordering::Relaxed);
                    if n >= total {
                        return Ok::<_, StoreError>(latencies);
                    }
                    let c = (w + n) % ids.len();
                    let sender = members[c][n % 2];
                    let t = Instant::now();
                    let new = message(ids[c], sender, &format!("w{w}-{n}"));
                    let written = match &path {
                        Path::Direct => store.append(&new).await?,
                        Path::Group(committer) => committer.append(new).await?,
                    };
                    latencies.push(t.elapsed());
                    assert!(written.created, "every client id is new");
                }
            })
        })
        .collect();
    let mut latencies = Vec::with_capacity(total);
    for task in tasks {
        latencies.extend(task.await.expect("writer task")?);
    }
    let elapsed = started.elapsed();
    let mut stored = 0;
    for id in &ids {
        let chat = store.chat(*id).await?.expect("chat");
        let seqs: Vec<u64> = store
            .messages_after(*id, 0, u32::MAX)
            .await?
            .iter()
            .map(|m| m.seq)
            .collect();
        assert_eq!(
            seqs,
            (1..=chat.chat.last_seq).collect::<Vec<_>>(),
            "dense seqs"
        );
        stored += seqs.len();
    }
    assert_eq!(stored, total, "every append stored once");
    latencies.sort_unstable();
    let at = |q: f64| latencies[((latencies.len() as f64 * q) as usize).min(latencies.len() - 1)];
    Ok(Figures {
        appends: total,
        elapsed,
        p50: at(0.50),
        p99: at(0.99),
        max: *latencies.last().expect("some appends"),
    })
}

async fn bench(name: &str, store: Arc<dyn MessageStore>, chats: usize, total: usize) {
    println!("\n{name}: {total} appends per run over {chats} chats");
    println!(
        "{:>8} {:>8} {:>12} {:>10} {:>10} {:>10} {:>10} {:>10}",
        "path", "writers", "appends/s", "elapsed", "p50", "p99", "max", "batch"
    );
    for (name, writers) in paths()
        .into_iter()
        .flat_map(|p| writer_counts().into_iter().map(move |w| (p, w)))
    {
        let path = match name {
            "group" => Path::Group(GroupCommitter::spawn(store.clone(), DEFAULT_MAX_BATCH)),
            _ => Path::Direct,
        };
        let batch = |path: &Path| match path {
            Path::Group(committer) => {
                let stats = committer.stats();
                format!("{:.1}", stats.messages as f64 / stats.batches.max(1) as f64)
            }
            Path::Direct => "1".to_owned(),
        };
        match run(store.clone(), path.clone(), writers, chats, total).await {
            Ok(f) => println!(
                "{:>8} {:>8} {:>12.0} {:>9.2}s {:>8.2}ms {:>8.2}ms {:>8.2}ms {:>10}",
                name,
                writers,
                f.appends as f64 / f.elapsed.as_secs_f64(),
                f.elapsed.as_secs_f64(),
                f.p50.as_secs_f64() * 1e3,
                f.p99.as_secs_f64() * 1e3,
                f.max.as_secs_f64() * 1e3,
                batch(&path),
            ),
            Err(err) => println!("{name:>8} {writers:>8} failed: {err}"),
        }
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let chats = env_or("APPEND_BENCH_CHATS", 8usize).max(1);
    let total = env_or("APPEND_BENCH_MESSAGES", 4000usize).max(1);
    let mongo_total = env_or("APPEND_BENCH_MONGO_MESSAGES", 2000usize).max(1);
    println!(
        "append_bench: {} CPU(s), writer counts {:?}",
        std::thread::available_parallelism().map_or(1, |n| n.get()),
        writer_counts()
    );

    let dir = std::env::temp_dir().join(format!("append_bench_{}", Uuid::new_v4().simple()));
    std::fs::create_dir_all(&dir)?;
    let url = format!("sqlite://{}/messages.db?mode=rwc", dir.display());
    let sqlite = SqliteMessageStore::open(&url).await?;
    bench(
        "SQLite file (WAL, synchronous=FULL)",
        Arc::new(sqlite),
        chats,
        total,
    )
    .await;
    std::fs::remove_dir_all(&dir)?;

    match std::env::var("MONGODB_URL") {
        Ok(url) if !url.trim().is_empty() => {
            let db = format!("rc_append_bench_{}", Uuid::new_v4().simple());
            let mongo = MongoMessageStore::connect(&url, &db).await?;
            mongo.ensure_indexes().await?;
            bench(
                "MongoDB (transactions, w: majority, j: true)",
                Arc::new(mongo.clone()),
                chats,
                mongo_total,
            )
            .await;
            mongo.drop_database().await?;
        }
        _ => println!("\nMongoDB: skipped (MONGODB_URL is not set)"),
    }
    Ok(())
}
