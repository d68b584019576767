//! Log-ins per second through the gateway of the one-process platform, over real HTTP.
//!
//! `cargo run --release -p random-chats --example login_bench -- [seconds] [concurrency]`
//!
//! Each log in verifies an argon2id hash (m = 19 MiB, t = 2, p = 1) and starts a refresh
//! session, so the figure is bounded by the hashes the machine's cores can do; compare
//! with `cargo run --release -p auth-service --example argon2_bench`.

use std::time::{Duration, Instant};

use client_sdk::Client;
use client_sdk::api::auth::SignupRequest;
use random_chats::{Platform, PlatformConfig};
use wire::domain::Gender;

const PASSWORD: &str = "correct horse battery";

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let seconds: u64 = args.next().and_then(|s| s.parse().ok()).unwrap_or(10);
    let concurrency: usize = args.next().and_then(|s| s.parse().ok()).unwrap_or(8);

    let mut config = PlatformConfig::in_memory();
    // One client IP does all the log ins: lift the per-IP request limit.
    config.limits.rate_per_second = 1_000_000;
    config.limits.rate_burst = 1_000_000;
    let platform = Platform::start(config).await?;
    let url = platform.gateway_url();

    let mut users = Vec::new();
    for i in 0..concurrency {
        let username = format!(
            "bench_{i}_{}",
            &uuid::Uuid::new_v4().simple().to_string()[..8]
        );
        Client::new(&url)?
            .signup(&SignupRequest {
                username: username.clone(),
                password: PASSWORD.to_owned(),
                display_name: format!("Bench {i}"),
                gender: Gender::Other,
                birth_date: time::macros::date!(1990 - 01 - 01),
                interests: vec![],
            })
            .await?;
        users.push(username);
    }

    let deadline = Instant::now() + Duration::from_secs(seconds);
    let started = Instant::now();
    let workers: Vec<_> = users
        .into_iter()
        .map(|username| {
            let url = url.clone();
            tokio::spawn(async move {
                let client = Client::new(&url)?;
                let mut latencies = Vec::new();
                while Instant::now() < deadline {
                    let at = Instant::now();
                    client.login(&username, PASSWORD).await?;
                    latencies.push(at.elapsed());
                    // Keep the session count flat: each log in starts a session.
                    client.logout().await?;
                }
                anyhow::Ok(latencies)
            })
        })
        .collect();
    let mut latencies = Vec::new();
    for worker in workers {
        latencies.extend(worker.await??);
    }
    let elapsed = started.elapsed().as_secs_f64();
    latencies.sort();
    let pick = |q: f64| latencies[((latencies.len() as f64 * q) as usize).min(latencies.len() - 1)];
    println!(
        "{} log ins in {elapsed:.1} s with {concurrency} clients: {:.1} log ins/s; latency p50 {:?}, p99 {:?}",
        latencies.len(),
        latencies.len() as f64 / elapsed,
        pick(0.50),
        pick(0.99),
    );
    platform.shutdown().await;
    Ok(())
}
