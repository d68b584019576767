//! `loadgen`: load the Random Chats gateway over loopback as real clients, and report.

use std::time::Duration;

use anyhow::Context;
use clap::{Args, Parser, Subcommand};
use loadgen::client::{SetupOptions, Target};
use loadgen::conversation::{self, ConversationOptions, FindMaxOptions};
use loadgen::findmax::PassRule;
use loadgen::{idle, matching, report};

/// Load generator for Random Chats: signs up, logs in, connects and queues like a real
/// client, then chats, idles or waits for matches, and reports what the server sustained.
#[derive(Debug, Parser)]
#[command(version, about)]
struct Cli {
    /// The gateway's base URL.
    #[arg(
        long,
        global = true,
        env = "LOADGEN_GATEWAY",
        default_value = "http://127.0.0.1:8080"
    )]
    gateway: String,

    /// Also print the report as one JSON line (last line of the output).
    #[arg(long, global = true)]
    json: bool,

    /// First two octets of the client source addresses: accounts come from 127.N.x.y,
    /// `--users-per-address` each, as the server limits sign-ups per address.
    #[arg(long, global = true, default_value = "127.77", value_parser = parse_net)]
    source_net: [u8; 2],

    /// Accounts sharing one source address.
    #[arg(long, global = true, default_value_t = 20)]
    users_per_address: usize,

    /// Accounts signed up (and connections opened) at once.
    #[arg(long, global = true, default_value_t = 16)]
    setup_concurrency: usize,

    /// Use the session of the sign-up instead of also logging in (halves the password
    /// hashing the server does while setting up).
    #[arg(long, global = true)]
    no_login: bool,

    /// Seed of the population of users.
    #[arg(long, global = true, default_value_t = 1)]
    seed: u64,

    /// Runtime threads of this client (1: a single-threaded runtime).
    #[arg(long, global = true, default_value_t = 1)]
    client_threads: usize,

    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// P pairs chatting at a fixed open-loop aggregate rate, or `--findmax`.
    Conversation(ConversationArgs),
    /// N authenticated idle connections; server RSS per connection.
    Idle(IdleArgs),
    /// K waiting tickets of a realistic mix; pairs per second and time to match.
    Matching(MatchingArgs),
    /// Internal: holds connections for `idle` (tokens on standard input).
    #[command(hide = true)]
    IdleWorker {
        /// Connections opened at once.
        #[arg(long, default_value_t = 64)]
        concurrency: usize,
    },
}

#[derive(Debug, Args)]
struct ConversationArgs {
    /// Pairs chatting.
    #[arg(long, default_value_t = 100)]
    pairs: usize,
    /// Messages per second, all pairs together (first step of `--findmax`).
    #[arg(long, default_value_t = 1000.0)]
    rate: f64,
    /// Seconds of warm-up (sent, not counted).
    #[arg(long, default_value_t = 2.0)]
    warmup: f64,
    /// Seconds of the measured window.
    #[arg(long, default_value_t = 10.0)]
    duration: f64,
    /// Seconds after the last send during which acks and deliveries still count.
    #[arg(long, default_value_t = 3.0)]
    drain: f64,
    /// Bytes of text per message.
    #[arg(long, default_value_t = 64)]
    text_bytes: usize,
    /// Send a `delivered` receipt for every message received, as a real client does.
    #[arg(long)]
    delivered_receipts: bool,
    /// The server's PID, for its CPU time (`/proc/PID/stat`); repeat it or separate PIDs by
    /// commas for a server made of several processes (their CPU time is summed).
    #[arg(long, value_delimiter = ',')]
    server_pid: Vec<u32>,
    /// Step the rate up (doubling, then bisecting) to the highest that holds.
    #[arg(long)]
    findmax: bool,
    /// Highest rate `--findmax` tries.
    #[arg(long, default_value_t = 1_000_000.0)]
    max_rate: f64,
    /// Seconds all `--findmax` steps may take together.
    #[arg(long, default_value_t = 120.0)]
    budget: f64,
    /// A step holds when at least this share of messages reached the partner…
    #[arg(long, default_value_t = 0.99)]
    min_delivered: f64,
    /// …and p99 send→receive is at most this many milliseconds.
    #[arg(long, default_value_t = 50.0)]
    max_p99_ms: f64,
}

#[derive(Debug, Args)]
struct IdleArgs {
    /// Connections to open.
    #[arg(long, default_value_t = 2000)]
    connections: usize,
    /// Worker processes holding them (each is capped by its open-file limit).
    #[arg(long, default_value_t = 4)]
    processes: usize,
    /// Connections per account (several devices; the server allows 10 per account).
    #[arg(long, default_value_t = 1)]
    connections_per_user: usize,
    /// Connections each worker opens at once.
    #[arg(long, default_value_t = 64)]
    connect_concurrency: usize,
    /// The server's PID, for its RSS (`/proc/PID/status`).
    #[arg(long)]
    server_pid: Option<u32>,
    /// Seconds to wait after the last connection before reading the RSS.
    #[arg(long, default_value_t = 5.0)]
    settle: f64,
    /// Seconds to keep holding after that, then read the RSS again.
    #[arg(long, default_value_t = 0.0)]
    hold: f64,
}

#[derive(Debug, Args)]
struct MatchingArgs {
    /// Tickets (users joining the queue).
    #[arg(long, default_value_t = 2000)]
    tickets: usize,
    /// Queue joins in flight at once.
    #[arg(long, default_value_t = 64)]
    join_concurrency: usize,
    /// Seconds without a new match after which the run ends.
    #[arg(long, default_value_t = 10.0)]
    quiet: f64,
    /// The server's PID, for its CPU time.
    #[arg(long)]
    server_pid: Option<u32>,
}

fn parse_net(s: &str) -> Result<[u8; 2], String> {
    let (a, b) = s
        .split_once('.')
        .ok_or_else(|| format!("expected two octets like 127.77, got {s}"))?;
    let a: u8 = a.parse().map_err(|e| format!("{a}: {e}"))?;
    let b: u8 = b.parse().map_err(|e| format!("{b}: {e}"))?;
    if a != 127 {
        return Err("source addresses must be on loopback (127.x)".to_owned());
    }
    Ok([a, b])
}

fn secs(s: f64) -> Duration {
    Duration::from_secs_f64(s.max(0.0))
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let runtime = if cli.client_threads <= 1 {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?
    } else {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(cli.client_threads)
            .enable_all()
            .build()?
    };
    runtime.block_on(run(cli))
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    let target = Target::parse(&cli.gateway)?;
    let setup = SetupOptions {
        source_net: cli.source_net,
        users_per_address: cli.users_per_address.max(1),
        concurrency: cli.setup_concurrency.max(1),
        login: !cli.no_login,
        seed: cli.seed,
    };
    let (text, json) = match cli.command {
        Command::Conversation(a) => {
            let options = ConversationOptions {
                pairs: a.pairs,
                rate: a.rate,
                warmup: secs(a.warmup),
                duration: secs(a.duration),
                drain: secs(a.drain),
                text_bytes: a.text_bytes,
                delivered_receipts: a.delivered_receipts,
                server_pids: a.server_pid,
                rule: PassRule {
                    min_delivered: a.min_delivered,
                    max_p99_ms: a.max_p99_ms,
                },
                findmax: a.findmax.then(|| FindMaxOptions {
                    max_rate: a.max_rate,
                    budget: secs(a.budget),
                    pause_after_fail: Duration::from_secs(1),
                }),
                setup,
            };
            let r = conversation::run(&target, &options).await?;
            (report::conversation(&r), serde_json::to_string(&r)?)
        }
        Command::Idle(a) => {
            let options = idle::IdleOptions {
                connections: a.connections,
                processes: a.processes,
                connections_per_user: a.connections_per_user,
                connect_concurrency: a.connect_concurrency,
                server_pid: a.server_pid,
                settle: secs(a.settle),
                hold: secs(a.hold),
                worker_exe: None,
                setup,
            };
            let r = idle::run(&target, &options).await?;
            (report::idle(&r), serde_json::to_string(&r)?)
        }
        Command::Matching(a) => {
            let options = matching::MatchingOptions {
                tickets: a.tickets,
                join_concurrency: a.join_concurrency,
                quiet: secs(a.quiet),
                server_pid: a.server_pid,
                setup,
            };
            let r = matching::run(&target, &options).await?;
            (report::matching(&r), serde_json::to_string(&r)?)
        }
        Command::IdleWorker { concurrency } => {
            return idle::worker(&target, concurrency)
                .await
                .context("idle worker");
        }
    };
    print!("{text}");
    if cli.json {
        println!("{json}");
    }
    Ok(())
}
