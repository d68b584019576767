//! Many waiting tickets with a realistic mix of genders, ages and interests: how fast the
//! matcher pairs them and how long each waits.

use std::time::{Duration, Instant};

use anyhow::Context;
use futures::StreamExt;
use serde::Serialize;
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::Message;

use crate::client::{self, Http, Incoming, SetupOptions, Target};
use crate::procfs;
use crate::profiles;
use crate::stats::{Latency, LatencySummary};

/// What to run.
#[derive(Debug, Clone)]
pub struct MatchingOptions {
    /// Tickets (users joining the queue).
    pub tickets: usize,
    /// Queue joins in flight at once.
    pub join_concurrency: usize,
    /// Stop waiting once no match has come for this long after the last join.
    pub quiet: Duration,
    /// The server process, for its CPU time.
    pub server_pid: Option<u32>,
    /// How accounts are made.
    pub setup: SetupOptions,
}

/// A matching run.
#[derive(Debug, Clone, Serialize)]
pub struct MatchingReport {
    /// Tickets that joined.
    pub tickets: usize,
    /// Seconds to sign up (and log in) every account.
    pub signup_s: f64,
    /// Seconds to open every WebSocket.
    pub connect_s: f64,
    /// Seconds from the first join to the last join answered.
    pub join_s: f64,
    /// Joins answered per second.
    pub joins_per_sec: f64,
    /// Users told `matched`.
    pub matched_users: u64,
    /// Pairs made (`matched_users / 2`).
    pub pairs: u64,
    /// Tickets still waiting at the end (no compatible partner left).
    pub unmatched: u64,
    /// Seconds from the first join to the last match.
    pub span_s: f64,
    /// `pairs / span_s`.
    pub pairs_per_sec: f64,
    /// From sending the join to receiving `matched`; a ticket never matched counts as
    /// infinite.
    pub time_to_match: LatencySummary,
    /// Server CPU seconds from the first join to the last match.
    pub server_cpu_s: Option<f64>,
}

/// Signs up and connects `tickets` users, has them all join, waits for the matches.
pub async fn run(target: &Target, options: &MatchingOptions) -> anyhow::Result<MatchingReport> {
    let http = Http::default();
    let began = Instant::now();
    let accounts = client::create_accounts(
        target,
        &http,
        &options.setup,
        options.tickets,
        profiles::realistic,
    )
    .await?;
    let signup_s = round2(began.elapsed().as_secs_f64());

    let connect_began = Instant::now();
    let (matched_tx, mut matched_rx) = mpsc::unbounded_channel::<(usize, Instant)>();
    let sockets: Vec<_> = futures::stream::iter(accounts.iter())
        .map(|a| async move {
            client::connect_ws(target, a.source, &a.access_token, false)
                .await
                .with_context(|| format!("connecting user {}", a.index))
                .map(|ws| (a.index, ws))
        })
        .buffer_unordered(options.setup.concurrency.max(1))
        .collect::<Vec<_>>()
        .await
        .into_iter()
        .collect::<anyhow::Result<_>>()?;
    let mut readers = Vec::with_capacity(sockets.len());
    for (index, ws) in sockets {
        let tx = matched_tx.clone();
        readers.push(tokio::spawn(async move {
            let (_sink, mut stream) = ws.split();
            while let Some(Ok(frame)) = stream.next().await {
                if let Message::Text(text) = frame
                    && let Ok(Incoming::Matched { .. }) = client::parse_incoming(text.as_str())
                {
                    let _ = tx.send((index, Instant::now()));
                }
            }
        }));
    }
    drop(matched_tx);
    let connect_s = round2(connect_began.elapsed().as_secs_f64());

    let cpu_before = options
        .server_pid
        .and_then(|pid| procfs::cpu_seconds(Some(pid)).ok());
    let first_join = Instant::now();
    let joined: Vec<(usize, Instant)> = futures::stream::iter(accounts.iter())
        .map(|a| {
            let http = &http;
            async move {
                let at = Instant::now();
                client::join_queue(target, http, a, &a.persona.wants)
                    .await
                    .map(|()| (a.index, at))
            }
        })
        .buffer_unordered(options.join_concurrency.max(1))
        .collect::<Vec<_>>()
        .await
        .into_iter()
        .collect::<anyhow::Result<_>>()?;
    let join_s = first_join.elapsed().as_secs_f64();
    let mut join_at = vec![None; options.tickets];
    for (index, at) in joined {
        join_at[index] = Some(at);
    }

    let mut waits = Latency::new();
    let mut matched_at = vec![None; options.tickets];
    let mut matched_users = 0u64;
    let mut last_match = first_join;
    while (matched_users as usize) < options.tickets {
        match tokio::time::timeout(options.quiet, matched_rx.recv()).await {
            Ok(Some((index, at))) => {
                if matched_at[index].is_none() {
                    matched_at[index] = Some(at);
                    matched_users += 1;
                    last_match = last_match.max(at);
                }
            }
            Ok(None) | Err(_) => break,
        }
    }
    let cpu_after = options
        .server_pid
        .and_then(|pid| procfs::cpu_seconds(Some(pid)).ok());
    for (joined, matched) in join_at.iter().zip(&matched_at) {
        if let (Some(j), Some(m)) = (joined, matched) {
            waits.record(m.saturating_duration_since(*j));
        }
    }
    for reader in readers {
        reader.abort();
    }
    let span_s = last_match.duration_since(first_join).as_secs_f64();
    let pairs = matched_users / 2;
    Ok(MatchingReport {
        tickets: options.tickets,
        signup_s,
        connect_s,
        join_s: round2(join_s),
        joins_per_sec: if join_s > 0.0 {
            (options.tickets as f64 / join_s).round()
        } else {
            0.0
        },
        matched_users,
        pairs,
        unmatched: options.tickets as u64 - matched_users,
        span_s: round2(span_s),
        pairs_per_sec: if span_s > 0.0 {
            (pairs as f64 / span_s).round()
        } else {
            0.0
        },
        time_to_match: waits.summary(options.tickets as u64),
        server_cpu_s: match (cpu_before, cpu_after) {
            (Some(a), Some(b)) => Some(round2(b - a)),
            _ => None,
        },
    })
}

fn round2(x: f64) -> f64 {
    (x * 100.0).round() / 100.0
}
