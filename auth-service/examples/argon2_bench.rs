//! Bare argon2id throughput with the service's parameters (m = 19 MiB, t = 2, p = 1):
//! hashes per second on one thread and on every core.
//!
//! Run in release: `cargo run --release -p auth-service --example argon2_bench [seconds]`.

use std::time::{Duration, Instant};

use argon2::password_hash::PasswordHasher;

fn hash_for(duration: Duration) -> u64 {
    let argon2 = auth_service::password::argon2id();
    let start = Instant::now();
    let mut count = 0u64;
    while start.elapsed() < duration {
        let hash = argon2
            .hash_password(b"correct horse battery staple")
            .expect("hashing cannot fail");
        std::hint::black_box(hash);
        count += 1;
    }
    count
}

fn main() {
    let seconds: u64 = std::env::args()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(5);
    let duration = Duration::from_secs(seconds);
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    println!(
        "argon2id m={} KiB t={} p={}, {seconds} s per run, {cores} cores",
        auth_service::password::M_COST_KIB,
        auth_service::password::T_COST,
        auth_service::password::P_COST,
    );

    // A warm-up second so that CPU frequency and the allocator have settled.
    hash_for(Duration::from_secs(1));
    let single = hash_for(duration);
    println!(
        "1 thread:   {single} hashes, {:.1} hashes/s, {:.1} ms/hash",
        single as f64 / duration.as_secs_f64(),
        duration.as_secs_f64() * 1000.0 / single.max(1) as f64
    );

    let total: u64 = std::thread::scope(|scope| {
        let workers: Vec<_> = (0..cores)
            .map(|_| scope.spawn(|| hash_for(duration)))
            .collect();
        workers
            .into_iter()
            .map(|w| w.join().expect("worker panicked"))
            .sum()
    });
    println!(
        "{cores} threads: {total} hashes, {:.1} hashes/s",
        total as f64 / duration.as_secs_f64()
    );
}
