//! Real-time benchmark: N concurrent pairs chat over WebSockets; reports messages per
//! second and the p50/p99 latency from `send` to the partner's `message`.
//!
//! Two set-ups, each with message-service (SQLite) and ws-manager on loopback HTTP:
//! - `embedded`: one ws-handler, registry in memory, in-process relay bus;
//! - `distributed`: two ws-handlers, registry and relay in Redis (`REDIS_URL`), every
//!   pair split across the two handlers.
//!
//! ```text
//! REDIS_URL=redis://127.0.0.1:6379 \
//!   cargo run --release -p ws-handler --example rt_bench -- --pairs 200 --messages 50
//! ```
//!
//! Flags: `--pairs N` (default 200), `--messages M` per pair (default 50),
//! `--mode embedded|distributed|both` (default both). Each pair holds 4 sockets in this
//! process (2 client ends, 2 server ends) plus pooled HTTP connections, so N is capped
//! well below the 20,000 open files a process may hold.

#[path = "../tests/support/mod.rs"]
mod support;

use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::{SinkExt, StreamExt};
use support::{Backplane, Handler, Stack, raw_connect};
use tokio_tungstenite::tungstenite::Message as WsMessage;
use uuid::Uuid;
use wire::api::auth::PublicProfile;
use wire::domain::Gender;
use wire::protocol::{ClientFrame, ServerFrame};
use ws_handler::HandlerConfig;

/// Open files a process may hold here; sockets per pair must fit well below it.
const OPEN_FILES_CAP: usize = 20_000;
/// Sockets per pair plus headroom for HTTP pools, Redis and the runtime.
const FDS_PER_PAIR: usize = 6;

struct Args {
    pairs: usize,
    messages: usize,
    embedded: bool,
    distributed: bool,
}

fn parse_args() -> Result<Args, String> {
    let mut args = Args {
        pairs: 200,
        messages: 50,
        embedded: true,
        distributed: true,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value = || it.next().ok_or(format!("{flag} needs a value"));
        match flag.as_str() {
            "--pairs" => args.pairs = value()?.parse().map_err(|e| format!("--pairs: {e}"))?,
            "--messages" => {
                args.messages = value()?.parse().map_err(|e| format!("--messages: {e}"))?;
            }
            "--mode" => match value()?.as_str() {
                "embedded" => args.distributed = false,
                "distributed" => args.embedded = false,
                "both" => {}
                other => return Err(format!("unknown mode {other}")),
            },
            other => return Err(format!("unknown flag {other}")),
        }
    }
    if args.pairs == 0 || args.messages == 0 {
        return Err("--pairs and --messages must be at least 1".to_owned());
    }
    if args.pairs * FDS_PER_PAIR + 1000 > OPEN_FILES_CAP {
        return Err(format!(
            "--pairs {} needs about {} open files; the cap is {OPEN_FILES_CAP}",
            args.pairs,
            args.pairs * FDS_PER_PAIR + 1000
        ));
    }
    Ok(args)
}

fn config() -> HandlerConfig {
    HandlerConfig {
        send_per_sec: 100_000.0,
        send_burst: 100_000,
        frames_per_sec: 100_000.0,
        frames_burst: 100_000,
        outbound_queue: 1024,
        ..HandlerConfig::default()
    }
}

fn profile(id: Uuid) -> PublicProfile {
    PublicProfile {
        id,
        display_name: "bench".to_owned(),
        gender: Gender::Other,
        age: 30,
        interests: Vec::new(),
    }
}

/// Results of one run.
struct Report {
    delivered: usize,
    elapsed: Duration,
    latencies: Vec<Duration>,
}

impl Report {
    fn print(&self, label: &str, pairs: usize) {
        let mut sorted = self.latencies.clone();
        sorted.sort_unstable();
        let at = |q: f64| {
            let index = ((sorted.len() as f64 * q).ceil() as usize).clamp(1, sorted.len()) - 1;
            sorted[index]
        };
        println!(
            "{label:<12} pairs={pairs:<5} messages={:<7} elapsed={:>7.2}s  rate={:>8.0} msg/s  p50={:>7.2}ms  p99={:>7.2}ms",
            self.delivered,
            self.elapsed.as_secs_f64(),
            self.delivered as f64 / self.elapsed.as_secs_f64(),
            at(0.50).as_secs_f64() * 1e3,
            at(0.99).as_secs_f64() * 1e3,
        );
    }
}

/// Runs every pair: the sender sends `messages` one after another (each after the
/// previous `ack`), the receiver timestamps each `message`.
async fn run_pairs(stack: &Stack, handlers: &[&Handler], pairs: usize, messages: usize) -> Report {
    let epoch = Instant::now();
    let mut sessions = Vec::with_capacity(pairs);
    for pair in 0..pairs {
        let (a, b) = (Uuid::new_v4(), Uuid::new_v4());
        let chat = stack.create_chat(&profile(a), &profile(b)).await;
        let sender_on = handlers[0];
        let receiver_on = handlers[handlers.len() - 1];
        let mut sender = raw_connect(&sender_on.ws_url(), Some(&stack.token_for(a)), None)
            .await
            .open();
        let mut receiver = raw_connect(&receiver_on.ws_url(), Some(&stack.token_for(b)), None)
            .await
            .open();
        for client in [&mut sender, &mut receiver] {
            // `hello` means registered; a first frame ends the resume window at once.
            client
                .frame_where(|f| matches!(f, ServerFrame::Hello { .. }).then_some(()))
                .await;
            client.send(&ClientFrame::Ping { nonce: None }).await;
        }
        if pair % 100 == 99 {
            eprintln!("  {} pairs connected", pair + 1);
        }
        sessions.push((chat.id, sender, receiver));
    }

    let start = Arc::new(tokio::sync::Barrier::new(pairs + 1));
    let mut tasks = Vec::with_capacity(pairs);
    for (chat_id, sender, receiver) in sessions {
        let start = start.clone();
        tasks.push(tokio::spawn(async move {
            let (mut a_tx, mut a_rx) = sender.socket.split();
            let (_b_tx, mut b_rx) = receiver.socket.split();
            let receiving = tokio::spawn(async move {
                let mut latencies = Vec::with_capacity(messages);
                while latencies.len() < messages {
                    let Some(Ok(frame)) = b_rx.next().await else {
                        break;
                    };
                    let WsMessage::Text(text) = frame else {
                        continue;
                    };
                    if let Ok(ServerFrame::Message { message }) = serde_json::from_str(&text) {
                        let sent: u64 = message.text.parse().unwrap_or(0);
                        let now = epoch.elapsed().as_nanos() as u64;
                        latencies.push(Duration::from_nanos(now.saturating_sub(sent)));
                    }
                }
                latencies
            });
            start.wait().await;
            for i in 0..messages {
                let frame = ClientFrame::Send {
                    chat_id,
                    client_msg_id: format!("m{i}"),
                    text: (epoch.elapsed().as_nanos() as u64).to_string(),
                };
                let json = serde_json::to_string(&frame).expect("frames serialize");
                if a_tx.send(WsMessage::Text(json.into())).await.is_err() {
                    break;
                }
                loop {
                    let Some(Ok(WsMessage::Text(text))) = a_rx.next().await else {
                        break;
                    };
                    match serde_json::from_str(&text) {
                        Ok(ServerFrame::Ack { .. }) => break,
                        Ok(ServerFrame::Error { code, message, .. }) => {
                            eprintln!("send refused: {code}: {message}");
                            break;
                        }
                        _ => {}
                    }
                }
            }
            receiving.await.unwrap_or_default()
        }));
    }
    start.wait().await;
    let began = Instant::now();
    let mut latencies = Vec::with_capacity(pairs * messages);
    for task in tasks {
        latencies.extend(task.await.unwrap_or_default());
    }
    Report {
        delivered: latencies.len(),
        elapsed: began.elapsed(),
        latencies,
    }
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let args = match parse_args() {
        Ok(args) => args,
        Err(err) => {
            eprintln!("rt_bench: {err}");
            return std::process::ExitCode::from(2);
        }
    };
    println!(
        "rt_bench: {} pairs x {} messages each",
        args.pairs, args.messages
    );
    if args.embedded {
        let stack = Stack::start(Backplane::Embedded, Duration::from_secs(15)).await;
        let handler = stack.start_handler(config()).await;
        stack.wait_live(&[handler.id]).await;
        let report = run_pairs(&stack, &[&handler], args.pairs, args.messages).await;
        report.print("embedded", args.pairs);
        stack.cleanup().await;
    }
    if args.distributed {
        match std::env::var("REDIS_URL") {
            Ok(url) if !url.trim().is_empty() => {
                let stack = Stack::start(Backplane::Redis(url), Duration::from_secs(15)).await;
                let one = stack.start_handler(config()).await;
                let two = stack.start_handler(config()).await;
                stack.wait_live(&[one.id, two.id]).await;
                let report = run_pairs(&stack, &[&one, &two], args.pairs, args.messages).await;
                report.print("distributed", args.pairs);
                stack.cleanup().await;
            }
            _ => eprintln!("distributed: skipped, REDIS_URL is not set"),
        }
    }
    std::process::ExitCode::SUCCESS
}
