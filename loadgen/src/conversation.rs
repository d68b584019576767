//! Pairs chatting at a fixed open-loop aggregate rate: each send has an intended time from
//! the [`Schedule`], and latencies run from that time, so a slow server (or a slow client)
//! shows up as latency instead of as a lower rate. Also the `findmax` search.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use futures::stream::{SplitSink, SplitStream};
use futures::{SinkExt, StreamExt};
use serde::Serialize;
use tokio::sync::{Notify, mpsc};
use tokio::task::JoinHandle;
use tokio_tungstenite::tungstenite::Message;
use uuid::Uuid;

use crate::client::{self, Account, Http, Incoming, SetupOptions, Target, Ws};
use crate::findmax::{PassRule, Search};
use crate::procfs;
use crate::profiles;
use crate::schedule::Schedule;
use crate::stats::{Latency, LatencySummary};

/// What to run.
#[derive(Debug, Clone)]
pub struct ConversationOptions {
    /// Pairs chatting.
    pub pairs: usize,
    /// Messages per second, all pairs together (the first step of `findmax`).
    pub rate: f64,
    /// Warm-up before the measured window.
    pub warmup: Duration,
    /// The measured window.
    pub duration: Duration,
    /// How long after the last send acks and deliveries still count.
    pub drain: Duration,
    /// Bytes of text per message.
    pub text_bytes: usize,
    /// Send `delivered` receipts for every message received, as a real client does.
    pub delivered_receipts: bool,
    /// The server processes (one, or every process of the distributed form), for their CPU
    /// time, summed.
    pub server_pids: Vec<u32>,
    /// When a run holds.
    pub rule: PassRule,
    /// Search for the highest rate that holds instead of one fixed rate.
    pub findmax: Option<FindMaxOptions>,
    /// How accounts are made.
    pub setup: SetupOptions,
}

/// Longest wait, after a failed step, for the server to answer what was sent.
pub const BACKLOG_LIMIT: Duration = Duration::from_secs(60);

/// The `findmax` search.
#[derive(Debug, Clone)]
pub struct FindMaxOptions {
    /// Never try more than this.
    pub max_rate: f64,
    /// All steps together stop after about this long.
    pub budget: Duration,
    /// Pause after a failed step, once the server has answered every send made so far
    /// (or [`BACKLOG_LIMIT`] passed), so that a step never starts behind the last one's
    /// backlog.
    pub pause_after_fail: Duration,
}

/// One run at one rate.
#[derive(Debug, Clone, Serialize)]
pub struct StepReport {
    /// Intended messages per second.
    pub rate: f64,
    /// Sends intended in the measured window.
    pub sent: u64,
    /// Of those, acknowledged within the run.
    pub acked: u64,
    /// Of those, received by the partner within the run.
    pub delivered: u64,
    /// `delivered / sent`.
    pub delivered_ratio: f64,
    /// Deliveries per second of the measured window.
    pub deliveries_per_sec: f64,
    /// send→ack latency from the intended send time.
    pub ack: LatencySummary,
    /// send→partner-receive latency from the intended send time.
    pub receive: LatencySummary,
    /// Seconds from the first measured send to the end of the drain (the CPU window).
    pub cpu_window_s: f64,
    /// Server CPU seconds (user + system) in the CPU window.
    pub server_cpu_s: Option<f64>,
    /// Server cores busy on average in the CPU window.
    pub server_cores: Option<f64>,
    /// Deliveries per server CPU-second.
    pub deliveries_per_server_cpu_s: Option<f64>,
    /// Cores this client used on average in the CPU window (near 1.0 on one core: the
    /// client, not the server, may be the limit).
    pub client_cores: f64,
    /// Most the client's sending fell behind its schedule, in ms.
    pub client_send_lag_max_ms: f64,
    /// `error` frames received, by code.
    pub errors: BTreeMap<String, u64>,
    /// Connections that closed during the step.
    pub disconnects: u64,
    /// Whether the step held (see [`PassRule`]).
    pub pass: bool,
}

/// A conversation run.
#[derive(Debug, Clone, Serialize)]
pub struct ConversationReport {
    /// `fixed` or `findmax`.
    pub mode: &'static str,
    /// Pairs chatting.
    pub pairs: usize,
    /// Bytes of text per message.
    pub text_bytes: usize,
    /// Whether receipts were sent.
    pub delivered_receipts: bool,
    /// Seconds to sign up, log in, connect and match everyone.
    pub setup_s: f64,
    /// The rule a step must meet.
    pub rule: PassRule,
    /// Every step run.
    pub steps: Vec<StepReport>,
    /// Highest rate that held (`findmax`).
    pub max_pass_rate: Option<f64>,
    /// Lowest rate that failed (`findmax`).
    pub first_fail_rate: Option<f64>,
}

/// Bookkeeping of the step under way.
#[derive(Debug)]
struct Window {
    id: u32,
    start: Instant,
    schedule: Schedule,
    sent: u64,
    acked: u64,
    delivered: u64,
    ack: Latency,
    receive: Latency,
    sending_done: bool,
}

impl Window {
    fn complete(&self) -> bool {
        self.sending_done && self.acked >= self.sent && self.delivered >= self.sent
    }
}

#[derive(Debug, Default)]
struct Tally {
    window: Option<Window>,
    errors: BTreeMap<String, u64>,
    disconnects: u64,
    closing: bool,
    /// Sends made in every step so far, warm-up included.
    sent_total: u64,
    /// Sends the server answered (an ack or an error), in every step so far.
    answered_total: u64,
}

#[derive(Debug, Default)]
struct Shared {
    tally: Mutex<Tally>,
    complete: Notify,
    /// Signalled when the server has answered every send made so far.
    caught_up: Notify,
}

impl Shared {
    fn lock(&self) -> std::sync::MutexGuard<'_, Tally> {
        self.tally
            .lock()
            .expect("never poisoned: no panics while held")
    }

    /// Counts an answer (ack or error) to a send, of any step.
    fn answered(&self, tally: &mut Tally) {
        tally.answered_total += 1;
        if tally.answered_total >= tally.sent_total {
            self.caught_up.notify_one();
        }
    }

    /// Waits until the server has answered every send made so far, at most `limit`.
    async fn catch_up(&self, limit: Duration) {
        let _ = tokio::time::timeout(limit, async {
            loop {
                let notified = self.caught_up.notified();
                {
                    let tally = self.lock();
                    if tally.answered_total >= tally.sent_total {
                        return;
                    }
                }
                notified.await;
            }
        })
        .await;
    }

    /// Counts an ack or a delivery of the send named `client_msg_id`.
    fn record(&self, client_msg_id: &str, delivery: bool, now: Instant) {
        let Some((id, k)) = parse_client_msg_id(client_msg_id) else {
            return;
        };
        let mut tally = self.lock();
        if !delivery {
            self.answered(&mut tally);
        }
        let Some(w) = tally.window.as_mut().filter(|w| w.id == id) else {
            return;
        };
        if !w.schedule.in_window(k) {
            return;
        }
        let latency = now.saturating_duration_since(w.start + w.schedule.offset(k));
        if delivery {
            w.delivered += 1;
            w.receive.record(latency);
        } else {
            w.acked += 1;
            w.ack.record(latency);
        }
        if w.complete() {
            self.complete.notify_one();
        }
    }
}

/// `w{step}-{k}`: the step and the schedule index, from which the intended time follows.
fn client_msg_id(step: u32, k: u64) -> String {
    format!("w{step}-{k}")
}

fn parse_client_msg_id(id: &str) -> Option<(u32, u64)> {
    let (step, k) = id.strip_prefix('w')?.split_once('-')?;
    Some((step.parse().ok()?, k.parse().ok()?))
}

/// One user's connection.
#[derive(Debug)]
struct Conn {
    tx: mpsc::UnboundedSender<Message>,
}

/// A matched pair: its chat and its two connections.
#[derive(Debug)]
struct Pair {
    /// `{"type":"send","chat_id":"…","client_msg_id":"` — everything before the id.
    prefix: String,
    conns: [usize; 2],
}

async fn write_loop(mut sink: SplitSink<Ws, Message>, mut rx: mpsc::UnboundedReceiver<Message>) {
    while let Some(message) = rx.recv().await {
        if sink.feed(message).await.is_err() {
            return;
        }
        while let Ok(message) = rx.try_recv() {
            if sink.feed(message).await.is_err() {
                return;
            }
        }
        if sink.flush().await.is_err() {
            return;
        }
    }
    let _ = sink.close().await;
}

async fn read_loop(
    mut stream: SplitStream<Ws>,
    index: usize,
    shared: Arc<Shared>,
    tx: mpsc::UnboundedSender<Message>,
    receipts: bool,
    matched: mpsc::UnboundedSender<(usize, Uuid)>,
) {
    while let Some(frame) = stream.next().await {
        let text = match frame {
            Ok(Message::Text(text)) => text,
            Ok(Message::Close(_)) | Err(_) => break,
            Ok(_) => continue,
        };
        let now = Instant::now();
        match client::parse_incoming(text.as_str()) {
            Ok(Incoming::Ack { client_msg_id }) => shared.record(&client_msg_id, false, now),
            Ok(Incoming::Message {
                chat_id,
                seq,
                client_msg_id,
            }) => {
                shared.record(&client_msg_id, true, now);
                if receipts {
                    let receipt =
                        format!(r#"{{"type":"delivered","chat_id":"{chat_id}","seq":{seq}}}"#);
                    let _ = tx.send(Message::text(receipt));
                }
            }
            Ok(Incoming::Matched { chat_id, .. }) => {
                let _ = matched.send((index, chat_id));
            }
            Ok(Incoming::Error { code, .. }) => {
                let mut tally = shared.lock();
                *tally.errors.entry(code).or_default() += 1;
                shared.answered(&mut tally);
            }
            Ok(Incoming::Other) => {}
            Err(_) => {
                *shared
                    .lock()
                    .errors
                    .entry("unreadable_frame".into())
                    .or_default() += 1;
            }
        }
    }
    let mut tally = shared.lock();
    if !tally.closing {
        tally.disconnects += 1;
    }
}

/// CPU clocks at one moment.
#[derive(Debug, Clone, Copy)]
struct Clocks {
    at: Instant,
    server: Option<f64>,
    client: f64,
}

fn clocks(server_pids: &[u32]) -> Clocks {
    // Every process must be readable, or the sum would silently leave one out.
    let server = (!server_pids.is_empty())
        .then(|| {
            server_pids
                .iter()
                .map(|&pid| procfs::cpu_seconds(Some(pid)).ok())
                .sum::<Option<f64>>()
        })
        .flatten();
    Clocks {
        at: Instant::now(),
        server,
        client: procfs::cpu_seconds(None).unwrap_or(0.0),
    }
}

/// Everyone connected and matched.
struct Session {
    shared: Arc<Shared>,
    conns: Vec<Conn>,
    pairs: Vec<Pair>,
    tasks: Vec<JoinHandle<()>>,
    text: String,
    next_step: u32,
}

impl Session {
    async fn open(target: &Target, options: &ConversationOptions) -> anyhow::Result<Self> {
        let http = Http::default();
        let users = options.pairs * 2;
        let accounts =
            client::create_accounts(target, &http, &options.setup, users, profiles::open).await?;
        let shared = Arc::new(Shared::default());
        let (matched_tx, mut matched_rx) = mpsc::unbounded_channel();
        let sockets: Vec<(usize, Ws)> = futures::stream::iter(accounts.iter())
            .map(|a: &Account| async move {
                let ws = client::connect_ws(target, a.source, &a.access_token, true)
                    .await
                    .with_context(|| format!("connecting user {}", a.index))?;
                anyhow::Ok((a.index, ws))
            })
            .buffer_unordered(options.setup.concurrency.max(1))
            .collect::<Vec<_>>()
            .await
            .into_iter()
            .collect::<anyhow::Result<_>>()?;
        let mut conns: Vec<Option<Conn>> = (0..users).map(|_| None).collect();
        let mut tasks = Vec::with_capacity(users * 2);
        for (index, ws) in sockets {
            let (sink, stream) = ws.split();
            let (tx, rx) = mpsc::unbounded_channel();
            tasks.push(tokio::spawn(write_loop(sink, rx)));
            tasks.push(tokio::spawn(read_loop(
                stream,
                index,
                shared.clone(),
                tx.clone(),
                options.delivered_receipts,
                matched_tx.clone(),
            )));
            conns[index] = Some(Conn { tx });
        }
        let conns: Vec<Conn> = conns
            .into_iter()
            .map(|c| c.expect("all connected"))
            .collect();
        futures::stream::iter(accounts.iter())
            .map(|a| client::join_queue(target, &http, a, &a.persona.wants))
            .buffered(options.setup.concurrency.max(1))
            .collect::<Vec<_>>()
            .await
            .into_iter()
            .collect::<anyhow::Result<Vec<()>>>()?;
        let mut chats: HashMap<Uuid, Vec<usize>> = HashMap::new();
        let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
        let mut matched = 0;
        while matched < users {
            match tokio::time::timeout_at(deadline, matched_rx.recv()).await {
                Ok(Some((index, chat))) => {
                    chats.entry(chat).or_default().push(index);
                    matched += 1;
                }
                Ok(None) => bail!("every connection closed while waiting for matches"),
                Err(_) => bail!("only {matched} of {users} users were matched within 60 s"),
            }
        }
        let mut pairs = Vec::with_capacity(options.pairs);
        for (chat, members) in chats {
            let [a, b] = members[..] else {
                bail!("chat {chat} has {} members of this run", members.len());
            };
            pairs.push(Pair {
                prefix: format!(r#"{{"type":"send","chat_id":"{chat}","client_msg_id":""#),
                conns: [a, b],
            });
        }
        pairs.sort_by_key(|p| p.conns[0]);
        Ok(Self {
            shared,
            conns,
            pairs,
            tasks,
            text: "x".repeat(options.text_bytes.max(1)),
            next_step: 0,
        })
    }

    /// Sends at `rate` for `warmup + measure`, then waits up to `drain` for the rest.
    async fn step(
        &mut self,
        rate: f64,
        warmup: Duration,
        measure: Duration,
        drain: Duration,
        server_pids: &[u32],
        rule: &PassRule,
    ) -> StepReport {
        let id = self.next_step;
        self.next_step += 1;
        let schedule = Schedule {
            rate,
            pairs: self.pairs.len(),
            warmup,
            measure,
        };
        let start = Instant::now() + Duration::from_millis(5);
        {
            let mut tally = self.shared.lock();
            tally.errors.clear();
            tally.disconnects = 0;
            tally.window = Some(Window {
                id,
                start,
                schedule,
                sent: 0,
                acked: 0,
                delivered: 0,
                ack: Latency::new(),
                receive: Latency::new(),
                sending_done: false,
            });
        }
        let total = schedule.total();
        let mut k = 0u64;
        let mut first: Option<Clocks> = None;
        let mut lag = Duration::ZERO;
        let suffix = format!(r#"","text":"{}"}}"#, self.text);
        while k < total {
            let now = Instant::now();
            let due = if now >= start {
                schedule.due_by(now - start)
            } else {
                0
            };
            let mut measured = 0;
            let before = k;
            if k < due {
                lag = lag.max(now.saturating_duration_since(start + schedule.offset(k)));
            }
            while k < due {
                let (pair, side) = schedule.sender(k);
                let pair = &self.pairs[pair];
                let mut frame = String::with_capacity(pair.prefix.len() + suffix.len() + 24);
                frame.push_str(&pair.prefix);
                frame.push_str(&client_msg_id(id, k));
                frame.push_str(&suffix);
                if schedule.in_window(k) {
                    measured += 1;
                    if first.is_none() {
                        first = Some(clocks(server_pids));
                    }
                }
                let _ = self.conns[pair.conns[side]].tx.send(Message::text(frame));
                k += 1;
            }
            if k > before {
                let mut tally = self.shared.lock();
                tally.sent_total += k - before;
                if let Some(w) = tally.window.as_mut() {
                    w.sent += measured;
                }
            }
            if k < total {
                tokio::time::sleep_until((start + schedule.offset(k)).into()).await;
            }
        }
        let deadline = start + warmup + measure + drain;
        let done = {
            let mut tally = self.shared.lock();
            let w = tally.window.as_mut().expect("set above");
            w.sending_done = true;
            w.complete()
        };
        if !done {
            let shared = self.shared.clone();
            let _ = tokio::time::timeout_at(deadline.into(), async move {
                loop {
                    shared.complete.notified().await;
                    if shared.lock().window.as_ref().is_some_and(Window::complete) {
                        return;
                    }
                }
            })
            .await;
        }
        let last = clocks(server_pids);
        let (w, errors, disconnects) = {
            let mut tally = self.shared.lock();
            let w = tally.window.take().expect("set above");
            (w, std::mem::take(&mut tally.errors), tally.disconnects)
        };
        let first = first.unwrap_or(last);
        let cpu_window_s = last.at.duration_since(first.at).as_secs_f64();
        let server_cpu_s = match (first.server, last.server) {
            (Some(a), Some(b)) => Some(round2(b - a)),
            _ => None,
        };
        let receive = w.receive.summary(w.sent);
        StepReport {
            rate,
            sent: w.sent,
            acked: w.acked,
            delivered: w.delivered,
            delivered_ratio: if w.sent > 0 {
                (w.delivered as f64 / w.sent as f64 * 10_000.0).round() / 10_000.0
            } else {
                0.0
            },
            deliveries_per_sec: round2(w.delivered as f64 / measure.as_secs_f64()),
            ack: w.ack.summary(w.sent),
            receive,
            cpu_window_s: round2(cpu_window_s),
            server_cpu_s,
            server_cores: server_cpu_s
                .filter(|_| cpu_window_s > 0.0)
                .map(|s| round2(s / cpu_window_s)),
            deliveries_per_server_cpu_s: server_cpu_s
                .filter(|&s| s > 0.0)
                .map(|s| (w.delivered as f64 / s).round()),
            client_cores: if cpu_window_s > 0.0 {
                round2((last.client - first.client) / cpu_window_s)
            } else {
                0.0
            },
            client_send_lag_max_ms: round2(lag.as_secs_f64() * 1000.0),
            errors,
            disconnects,
            pass: rule.passes(w.sent, w.delivered, receive.p99_ms),
        }
    }

    fn close(self) {
        self.shared.lock().closing = true;
        drop(self.conns);
        for task in self.tasks {
            // Writers close their sockets when their queue ends; readers may still wait.
            if !task.is_finished() {
                task.abort();
            }
        }
    }
}

fn round2(x: f64) -> f64 {
    (x * 100.0).round() / 100.0
}

/// Sets up the pairs and runs one fixed-rate step, or the `findmax` search.
pub async fn run(
    target: &Target,
    options: &ConversationOptions,
) -> anyhow::Result<ConversationReport> {
    let began = Instant::now();
    let mut session = Session::open(target, options).await?;
    let setup_s = round2(began.elapsed().as_secs_f64());
    let mut report = ConversationReport {
        mode: if options.findmax.is_some() {
            "findmax"
        } else {
            "fixed"
        },
        pairs: options.pairs,
        text_bytes: options.text_bytes,
        delivered_receipts: options.delivered_receipts,
        setup_s,
        rule: options.rule,
        steps: Vec::new(),
        max_pass_rate: None,
        first_fail_rate: None,
    };
    match &options.findmax {
        None => {
            let step = session
                .step(
                    options.rate,
                    options.warmup,
                    options.duration,
                    options.drain,
                    &options.server_pids,
                    &options.rule,
                )
                .await;
            report.steps.push(step);
        }
        Some(findmax) => {
            let search_began = Instant::now();
            let step_len = options.warmup + options.duration + options.drain;
            let mut search = Search::new(options.rate, findmax.max_rate);
            while let Some(rate) = search.next_rate() {
                if search_began.elapsed() + step_len > findmax.budget {
                    break;
                }
                let step = session
                    .step(
                        rate,
                        options.warmup,
                        options.duration,
                        options.drain,
                        &options.server_pids,
                        &options.rule,
                    )
                    .await;
                let pass = step.pass;
                eprintln!("{}", crate::report::step_line(&step));
                report.steps.push(step);
                search.record(rate, pass);
                if !pass {
                    session.shared.catch_up(BACKLOG_LIMIT).await;
                    tokio::time::sleep(findmax.pause_after_fail).await;
                }
            }
            report.max_pass_rate = search.highest_pass;
            report.first_fail_rate = search.lowest_fail;
        }
    }
    session.close();
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_client_msg_id_names_its_step_and_index() {
        let id = client_msg_id(3, 123_456);
        assert_eq!(id, "w3-123456");
        assert_eq!(parse_client_msg_id(&id), Some((3, 123_456)));
        assert_eq!(parse_client_msg_id("c-17"), None);
        assert_eq!(parse_client_msg_id("w3-x"), None);
    }

    #[test]
    fn only_sends_of_the_current_step_in_its_window_are_counted() {
        let shared = Shared::default();
        let start = Instant::now();
        let schedule = Schedule {
            rate: 100.0,
            pairs: 1,
            warmup: Duration::from_secs(1),
            measure: Duration::from_secs(1),
        };
        shared.lock().window = Some(Window {
            id: 2,
            start,
            schedule,
            sent: 1,
            acked: 0,
            delivered: 0,
            ack: Latency::new(),
            receive: Latency::new(),
            sending_done: true,
        });
        let later = start + Duration::from_millis(1500);
        shared.record("w1-150", true, later); // an earlier step
        shared.record("w2-50", true, later); // warm-up
        assert_eq!(shared.lock().window.as_ref().unwrap().delivered, 0);
        shared.record("w2-120", true, later);
        shared.record("w2-120", false, later);
        let tally = shared.lock();
        let w = tally.window.as_ref().unwrap();
        assert_eq!((w.delivered, w.acked), (1, 1));
        assert!(w.complete());
        // Intended at 1.2 s, received at 1.5 s.
        assert!(crate::stats::tests::about(
            w.receive.percentile_ms(0.5, 1),
            300.0
        ));
    }
}
