//! Many authenticated idle connections, spread over several processes (this program run
//! again as `idle-worker`) and many loopback source addresses, and what they cost the
//! server in resident memory.

use std::io::Write as _;
use std::net::IpAddr;
use std::path::PathBuf;
use std::process::Stdio;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use futures::StreamExt;
use serde::Serialize;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::sync::mpsc;

use crate::client::{self, Http, SetupOptions, Target};
use crate::procfs;
use crate::profiles;

/// What to run.
#[derive(Debug, Clone)]
pub struct IdleOptions {
    /// Connections to open.
    pub connections: usize,
    /// Worker processes holding them (each process may hold at most its open-file limit).
    pub processes: usize,
    /// Connections per account (a user with several devices; the server allows 10).
    pub connections_per_user: usize,
    /// Connections each worker opens at once.
    pub connect_concurrency: usize,
    /// The server process, for its RSS.
    pub server_pid: Option<u32>,
    /// Wait after the last connection before reading the RSS.
    pub settle: Duration,
    /// Keep holding this long after that, then read the RSS again and count losses.
    pub hold: Duration,
    /// The program to run as a worker (default: this one).
    pub worker_exe: Option<PathBuf>,
    /// How accounts are made.
    pub setup: SetupOptions,
}

/// An idle run.
#[derive(Debug, Clone, Serialize)]
pub struct IdleReport {
    /// Connections asked for.
    pub connections: usize,
    /// Accounts used.
    pub users: usize,
    /// Worker processes.
    pub processes: usize,
    /// Connections opened.
    pub connected: u64,
    /// Connections that could not be opened.
    pub failed: u64,
    /// Opened connections that closed before the end.
    pub lost: u64,
    /// Seconds to sign up (and log in) every account.
    pub signup_s: f64,
    /// Seconds to open every connection.
    pub connect_s: f64,
    /// Server RSS after the sign-ups, before the first WebSocket (KiB).
    pub rss_before_kib: Option<u64>,
    /// Server RSS with every connection open, after the settle (KiB).
    pub rss_after_kib: Option<u64>,
    /// Server RSS at the end of the hold (KiB).
    pub rss_end_kib: Option<u64>,
    /// `(after − before) / connected`.
    pub kib_per_connection: Option<f64>,
    /// The same at the end of the hold.
    pub kib_per_connection_end: Option<f64>,
}

/// A worker's line on its standard output.
fn parse_worker_line(line: &str) -> Option<WorkerEvent> {
    let mut words = line.split_ascii_whitespace();
    match words.next()? {
        "connected" => Some(WorkerEvent::Connected {
            ok: words.next()?.parse().ok()?,
            failed: words.next()?.parse().ok()?,
        }),
        "lost" => Some(WorkerEvent::Lost),
        _ => None,
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum WorkerEvent {
    Connected { ok: u64, failed: u64 },
    Lost,
}

/// Signs up the accounts, measures, has the workers connect, measures again.
pub async fn run(target: &Target, options: &IdleOptions) -> anyhow::Result<IdleReport> {
    let per_user = options.connections_per_user.clamp(1, 10);
    let users = options.connections.div_ceil(per_user);
    let processes = options.processes.max(1);
    let began = Instant::now();
    let accounts = {
        let http = Http::default();
        client::create_accounts(target, &http, &options.setup, users, profiles::open).await?
        // The HTTP clients (and their keep-alive connections) end here.
    };
    let signup_s = round2(began.elapsed().as_secs_f64());
    let rss = || options.server_pid.and_then(|pid| procfs::rss_kib(pid).ok());
    let rss_before_kib = rss();

    let exe = match &options.worker_exe {
        Some(exe) => exe.clone(),
        None => std::env::current_exe().context("finding this program to run workers")?,
    };
    let (events_tx, mut events_rx) = mpsc::unbounded_channel();
    let mut workers = Vec::with_capacity(processes);
    let connect_began = Instant::now();
    for w in 0..processes {
        let mut child = tokio::process::Command::new(&exe)
            .arg("--gateway")
            .arg(&target.base)
            .arg("idle-worker")
            .arg("--concurrency")
            .arg(options.connect_concurrency.max(1).to_string())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .with_context(|| format!("starting worker {}", exe.display()))?;
        let mut list = Vec::new();
        for c in (w..options.connections).step_by(processes) {
            let a = &accounts[c / per_user];
            writeln!(list, "{} {}", a.source, a.access_token)?;
        }
        writeln!(list)?;
        let mut stdin = child.stdin.take().expect("piped");
        stdin.write_all(&list).await?;
        stdin.flush().await?;
        let stdout = child.stdout.take().expect("piped");
        let events = events_tx.clone();
        tokio::spawn(async move {
            let mut lines = BufReader::new(stdout).lines();
            while let Ok(Some(line)) = lines.next_line().await {
                if let Some(event) = parse_worker_line(&line) {
                    let _ = events.send(event);
                }
            }
        });
        workers.push((child, stdin));
    }
    drop(events_tx);

    let (mut reported, mut connected, mut failed, mut lost) = (0, 0u64, 0u64, 0u64);
    while reported < processes {
        match events_rx.recv().await {
            Some(WorkerEvent::Connected { ok, failed: f }) => {
                reported += 1;
                connected += ok;
                failed += f;
            }
            Some(WorkerEvent::Lost) => lost += 1,
            None => bail!("a worker ended before it had connected"),
        }
    }
    let connect_s = round2(connect_began.elapsed().as_secs_f64());
    tokio::time::sleep(options.settle).await;
    let rss_after_kib = rss();
    tokio::time::sleep(options.hold).await;
    let rss_end_kib = rss();
    while let Ok(event) = events_rx.try_recv() {
        if event == WorkerEvent::Lost {
            lost += 1;
        }
    }
    for (mut child, stdin) in workers {
        drop(stdin);
        let _ = child.wait().await;
    }
    let per_conn = |after: Option<u64>| match (rss_before_kib, after) {
        (Some(before), Some(after)) if connected > 0 => {
            Some(round2((after as f64 - before as f64) / connected as f64))
        }
        _ => None,
    };
    Ok(IdleReport {
        connections: options.connections,
        users,
        processes,
        connected,
        failed,
        lost,
        signup_s,
        connect_s,
        rss_before_kib,
        rss_after_kib,
        rss_end_kib,
        kib_per_connection: per_conn(rss_after_kib),
        kib_per_connection_end: per_conn(rss_end_kib),
    })
}

/// The worker: reads `source token` lines up to an empty line, opens one connection per
/// line, says `connected OK FAILED`, then `lost` whenever one closes, and holds them all
/// (reading, so the server's pings are answered) until its standard input closes.
pub async fn worker(target: &Target, concurrency: usize) -> anyhow::Result<()> {
    let mut stdin = BufReader::new(tokio::io::stdin()).lines();
    let mut list: Vec<(IpAddr, String)> = Vec::new();
    while let Some(line) = stdin.next_line().await? {
        let Some((source, token)) = line.split_once(' ') else {
            break;
        };
        list.push((source.parse()?, token.to_owned()));
    }
    let lost = Arc::new(AtomicU64::new(0));
    let (lost_tx, mut lost_rx) = mpsc::unbounded_channel::<()>();
    let results: Vec<bool> = futures::stream::iter(list.iter())
        .map(|(source, token)| {
            let lost_tx = lost_tx.clone();
            async move {
                match client::connect_ws(target, *source, token, false).await {
                    Ok(ws) => {
                        tokio::spawn(async move {
                            let (_sink, mut stream) = ws.split();
                            while let Some(Ok(_)) = stream.next().await {}
                            let _ = lost_tx.send(());
                        });
                        true
                    }
                    Err(err) => {
                        eprintln!("idle-worker: {err:#}");
                        false
                    }
                }
            }
        })
        .buffer_unordered(concurrency.max(1))
        .collect()
        .await;
    let ok = results.iter().filter(|&&ok| ok).count();
    let mut out = std::io::stdout();
    writeln!(out, "connected {ok} {}", results.len() - ok)?;
    out.flush()?;
    loop {
        tokio::select! {
            line = stdin.next_line() => {
                if !matches!(line, Ok(Some(_))) {
                    return Ok(());
                }
            }
            Some(()) = lost_rx.recv() => {
                lost.fetch_add(1, Ordering::Relaxed);
                writeln!(out, "lost")?;
                out.flush()?;
            }
        }
    }
}

fn round2(x: f64) -> f64 {
    (x * 100.0).round() / 100.0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn worker_lines_are_read() {
        assert_eq!(
            parse_worker_line("connected 4999 1"),
            Some(WorkerEvent::Connected {
                ok: 4999,
                failed: 1
            })
        );
        assert_eq!(parse_worker_line("lost"), Some(WorkerEvent::Lost));
        assert_eq!(parse_worker_line("connected x"), None);
        assert_eq!(parse_worker_line(""), None);
    }
}
