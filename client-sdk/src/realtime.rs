//! The real-time connection: an event stream, sends retried until acknowledged, delivery
//! acks sent by itself, and reconnection with jittered backoff and resume.
//!
//! One background task owns the WebSocket. It survives disconnects: it reconnects (through
//! the gateway, so possibly to another ws-handler), sends `resume` with the highest
//! contiguous seq it holds per chat, resends every unacknowledged send with its original
//! client message id (the server never stores one twice), and carries on. Each message is
//! handed to the application once, even when catch-up repeats it.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::{SinkExt, StreamExt};
use http::StatusCode;
use time::OffsetDateTime;
use tokio::net::TcpStream;
use tokio::sync::{mpsc, oneshot};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::{self, Message as WsMessage};
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};
use uuid::Uuid;
use wire::api::matching::MatchInfo;
use wire::api::message::{Message, Watermark};
use wire::error::{ErrorBody, ErrorCode};
use wire::protocol::{ClientFrame, ResumePoint, ServerFrame, WS_PATH, close};

use crate::client::Client;
use crate::error::{Error, Result};

type Socket = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// The real-time side of [`Client`] (defined here so that the REST client does not depend
/// on the connection).
impl Client {
    /// Opens the real-time connection: an event stream plus sending, with reconnects,
    /// resume and delivery acks handled by itself.
    pub async fn connect(&self) -> Result<Connection> {
        self.connect_with(ConnectOptions::default()).await
    }

    /// [`Client::connect`] with options.
    pub async fn connect_with(&self, options: ConnectOptions) -> Result<Connection> {
        Connection::open(self.clone(), options).await
    }
}

/// How the connection behaves.
#[derive(Debug, Clone)]
pub struct ConnectOptions {
    /// First reconnect delay; doubles per failed attempt, with jitter.
    pub backoff_min: Duration,
    /// Longest reconnect delay.
    pub backoff_max: Duration,
    /// Keep-alive `ping` interval (the server closes idle connections).
    pub ping_every: Duration,
    /// An unacknowledged send is sent again after this long.
    pub resend_after: Duration,
    /// Send `delivered` for received messages by itself.
    pub auto_delivered: bool,
    /// Where to resume from: the last seq already held per chat (e.g. from history).
    pub resume_from: Vec<ResumePoint>,
    /// Events buffered for the application before the socket is read no further.
    pub event_buffer: usize,
}

impl Default for ConnectOptions {
    fn default() -> Self {
        Self {
            backoff_min: Duration::from_millis(100),
            backoff_max: Duration::from_secs(5),
            ping_every: Duration::from_secs(15),
            resend_after: Duration::from_secs(5),
            auto_delivered: true,
            resume_from: Vec::new(),
            event_buffer: 1024,
        }
    }
}

/// What the server acknowledged for a send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ack {
    /// The client message id sent.
    pub client_msg_id: String,
    /// The chat.
    pub chat_id: Uuid,
    /// The message's seq in the chat.
    pub seq: u64,
    /// The message id.
    pub message_id: Uuid,
    /// When the server stored it.
    pub created_at: OffsetDateTime,
}

/// Something that happened on the real-time connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// Connected (again) to a ws-handler; catch-up follows, then [`Event::Resumed`].
    Connected {
        /// The connection id the server gave.
        connection_id: Uuid,
    },
    /// The connection dropped; the SDK is reconnecting by itself.
    Disconnected {
        /// Why, for display.
        reason: String,
    },
    /// The next reconnect attempt starts after `delay` (sent before each wait, so a client
    /// can show "reconnecting in N s"). Only sent while the SDK is reconnecting by itself.
    Reconnecting {
        /// How many attempts failed since the connection was lost (0 before the first).
        attempt: u32,
        /// How long until the next attempt.
        delay: Duration,
    },
    /// Catch-up after a (re)connect is complete; what follows is live.
    Resumed,
    /// A message: a partner's, or mine from another device. Each is handed over once.
    Message(Message),
    /// A participant's delivered/read watermarks moved (e.g. my message was read).
    Status(Watermark),
    /// A participant started or stopped typing.
    Typing {
        /// The chat.
        chat_id: Uuid,
        /// Who.
        user_id: Uuid,
        /// Whether typing.
        typing: bool,
    },
    /// A partner came online or went offline.
    Presence {
        /// The chat.
        chat_id: Uuid,
        /// Who.
        user_id: Uuid,
        /// Online or not.
        online: bool,
    },
    /// A chat ended.
    ChatEnded {
        /// The chat.
        chat_id: Uuid,
        /// Who ended it.
        ended_by: Uuid,
    },
    /// The matcher paired me with a partner; the chat exists.
    Matched(MatchInfo),
    /// The server refused a frame that was not a send (sends fail their own call).
    Error {
        /// Machine-readable code.
        code: ErrorCode,
        /// Human-readable message.
        message: String,
    },
}

enum Command {
    Send {
        chat_id: Uuid,
        client_msg_id: String,
        text: String,
        reply: oneshot::Sender<Result<Ack>>,
    },
    Read {
        chat_id: Uuid,
        seq: u64,
    },
    Typing {
        chat_id: Uuid,
        typing: bool,
    },
    Close,
}

/// Per-chat record of which seqs the application has, for resume and de-duplication.
#[derive(Debug, Default, Clone)]
struct ChatSeqs {
    /// Every seq up to this one is held.
    contiguous: u64,
    /// Seqs held above `contiguous`.
    above: BTreeSet<u64>,
}

impl ChatSeqs {
    fn holds(&self, seq: u64) -> bool {
        seq <= self.contiguous || self.above.contains(&seq)
    }

    fn insert(&mut self, seq: u64) {
        if seq > self.contiguous {
            self.above.insert(seq);
        }
        while self.above.remove(&(self.contiguous + 1)) {
            self.contiguous += 1;
        }
    }
}

/// State shared between the application's handle and the background task.
#[derive(Debug, Default)]
struct Shared {
    chats: Mutex<HashMap<Uuid, ChatSeqs>>,
}

impl Shared {
    fn chats(&self) -> std::sync::MutexGuard<'_, HashMap<Uuid, ChatSeqs>> {
        self.chats.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// The real-time connection. Dropping it (or [`Connection::close`]) closes the socket.
#[derive(Debug)]
pub struct Connection {
    events: mpsc::Receiver<Event>,
    commands: mpsc::UnboundedSender<Command>,
    shared: Arc<Shared>,
}

impl Connection {
    pub(crate) async fn open(client: Client, options: ConnectOptions) -> Result<Self> {
        let shared = Arc::new(Shared::default());
        {
            let mut chats = shared.chats();
            for point in &options.resume_from {
                chats.entry(point.chat_id).or_default().contiguous = point.last_seq;
            }
        }
        // Connect once up front so that a bad session or an unreachable server is reported
        // to the caller instead of being retried forever.
        let socket = connect(&client).await?;
        let (events_tx, events) = mpsc::channel(options.event_buffer.max(1));
        let (commands, commands_rx) = mpsc::unbounded_channel();
        let me = client.user_id().await.ok_or(Error::NotLoggedIn)?;
        let driver = Driver {
            client,
            options,
            me,
            shared: shared.clone(),
            events: events_tx,
            commands: commands_rx,
            pending: BTreeMap::new(),
            unsent_reads: HashMap::new(),
            next_order: 0,
        };
        tokio::spawn(driver.run(socket));
        Ok(Self {
            events,
            commands,
            shared,
        })
    }

    /// The next event; `None` once the connection is closed for good (closed by the
    /// caller, or the session ended).
    pub async fn next_event(&mut self) -> Option<Event> {
        self.events.recv().await
    }

    /// Sends a message with a fresh client message id and waits until the server has
    /// stored it. Across disconnects it is resent (with the same id) until acknowledged.
    pub async fn send(&self, chat_id: Uuid, text: &str) -> Result<Ack> {
        self.send_with_id(chat_id, &Uuid::now_v7().to_string(), text)
            .await
    }

    /// [`Connection::send`] with a client message id of the caller's (1 to 64 bytes):
    /// sending the same id again never creates a second message.
    pub async fn send_with_id(
        &self,
        chat_id: Uuid,
        client_msg_id: &str,
        text: &str,
    ) -> Result<Ack> {
        let (reply, answer) = oneshot::channel();
        self.commands
            .send(Command::Send {
                chat_id,
                client_msg_id: client_msg_id.to_owned(),
                text: text.to_owned(),
                reply,
            })
            .map_err(|_| Error::Closed)?;
        answer.await.map_err(|_| Error::Closed)?
    }

    /// [`Connection::send_with_id`] as a future that does not borrow the connection, so
    /// that an application can keep reading events while its sends wait for their acks
    /// (across reconnects). The send is queued when this is called, not when it is polled.
    pub fn send_detached(
        &self,
        chat_id: Uuid,
        client_msg_id: &str,
        text: &str,
    ) -> impl Future<Output = Result<Ack>> + Send + 'static {
        let (reply, answer) = oneshot::channel();
        let queued = self
            .commands
            .send(Command::Send {
                chat_id,
                client_msg_id: client_msg_id.to_owned(),
                text: text.to_owned(),
                reply,
            })
            .map_err(|_| Error::Closed);
        async move {
            queued?;
            answer.await.map_err(|_| Error::Closed)?
        }
    }

    /// Marks every message up to `seq` in a chat as read (the sender sees it).
    pub fn mark_read(&self, chat_id: Uuid, seq: u64) -> Result<()> {
        self.commands
            .send(Command::Read { chat_id, seq })
            .map_err(|_| Error::Closed)
    }

    /// Tells the partner I started or stopped typing (not stored; dropped while offline).
    pub fn typing(&self, chat_id: Uuid, typing: bool) -> Result<()> {
        self.commands
            .send(Command::Typing { chat_id, typing })
            .map_err(|_| Error::Closed)
    }

    /// The highest seq up to which every message of a chat has been received.
    pub fn last_seq(&self, chat_id: Uuid) -> u64 {
        self.shared
            .chats()
            .get(&chat_id)
            .map_or(0, |c| c.contiguous)
    }

    /// Closes the connection; pending sends fail with [`Error::Closed`].
    pub fn close(&self) {
        let _ = self.commands.send(Command::Close);
    }
}

impl Drop for Connection {
    fn drop(&mut self) {
        self.close();
    }
}

/// An unacknowledged send.
struct Pending {
    chat_id: Uuid,
    client_msg_id: String,
    text: String,
    reply: oneshot::Sender<Result<Ack>>,
    /// When it was last written to a socket (None: not yet on this connection).
    sent_at: Option<Instant>,
}

/// How a connected session ended.
enum Ended {
    /// The caller closed the connection.
    Closed,
    /// The socket dropped; reconnect.
    Dropped(String),
    /// A newer connection of the account took this one's place; stop.
    Replaced(String),
}

struct Driver {
    client: Client,
    options: ConnectOptions,
    me: Uuid,
    shared: Arc<Shared>,
    events: mpsc::Sender<Event>,
    commands: mpsc::UnboundedReceiver<Command>,
    /// Unacknowledged sends in the order they were made.
    pending: BTreeMap<u64, Pending>,
    /// Read marks made while disconnected, sent after the next connect.
    unsent_reads: HashMap<Uuid, u64>,
    next_order: u64,
}

impl Driver {
    async fn run(mut self, first: Socket) {
        let mut socket = Some(first);
        let mut attempt: u32 = 0;
        loop {
            let connected = match socket.take() {
                Some(socket) => Ok(socket),
                None => connect(&self.client).await,
            };
            match connected {
                Ok(socket) => {
                    attempt = 0;
                    match self.session(socket).await {
                        Ended::Closed => break,
                        Ended::Replaced(reason) => {
                            tracing::info!(%reason, "real-time connection replaced; not reconnecting");
                            let _ = self.events.send(Event::Disconnected { reason }).await;
                            break;
                        }
                        Ended::Dropped(reason) => {
                            tracing::debug!(%reason, "real-time connection dropped");
                            if self
                                .events
                                .send(Event::Disconnected { reason })
                                .await
                                .is_err()
                            {
                                break;
                            }
                        }
                    }
                }
                Err(err @ (Error::SessionEnded | Error::NotLoggedIn)) => {
                    self.fail_pending(&err);
                    let _ = self
                        .events
                        .send(Event::Disconnected {
                            reason: err.to_string(),
                        })
                        .await;
                    break;
                }
                Err(err) => tracing::debug!(error = %err, attempt, "reconnect failed"),
            }
            // Back off (jittered exponential) while still serving the caller's commands.
            let delay = backoff(&self.options, attempt);
            // Informational: never let a slow reader hold up the back-off or the commands.
            let _ = self.events.try_send(Event::Reconnecting { attempt, delay });
            attempt = attempt.saturating_add(1);
            let deadline = tokio::time::sleep(delay);
            tokio::pin!(deadline);
            loop {
                tokio::select! {
                    () = &mut deadline => break,
                    command = self.commands.recv() => match command {
                        None | Some(Command::Close) => {
                            self.fail_pending(&Error::Closed);
                            return;
                        }
                        Some(command) => self.queue_offline(command),
                    },
                }
            }
        }
        self.fail_pending(&Error::Closed);
    }

    /// Keeps a command made while disconnected for the next connection.
    fn queue_offline(&mut self, command: Command) {
        match command {
            Command::Send {
                chat_id,
                client_msg_id,
                text,
                reply,
            } => self.add_pending(chat_id, client_msg_id, text, reply),
            Command::Read { chat_id, seq } => {
                let mark = self.unsent_reads.entry(chat_id).or_default();
                *mark = (*mark).max(seq);
            }
            Command::Typing { .. } | Command::Close => {}
        }
    }

    fn add_pending(
        &mut self,
        chat_id: Uuid,
        client_msg_id: String,
        text: String,
        reply: oneshot::Sender<Result<Ack>>,
    ) {
        self.next_order += 1;
        self.pending.insert(
            self.next_order,
            Pending {
                chat_id,
                client_msg_id,
                text,
                reply,
                sent_at: None,
            },
        );
    }

    fn fail_pending(&mut self, err: &Error) {
        for (_, pending) in std::mem::take(&mut self.pending) {
            let copy = match err {
                Error::SessionEnded => Error::SessionEnded,
                Error::NotLoggedIn => Error::NotLoggedIn,
                _ => Error::Closed,
            };
            let _ = pending.reply.send(Err(copy));
        }
    }

    /// Serves one connected socket until it drops or the caller closes.
    async fn session(&mut self, socket: Socket) -> Ended {
        let (mut sink, mut stream) = socket.split();
        for pending in self.pending.values_mut() {
            pending.sent_at = None;
        }
        // Resume from what the application holds, then resend what was never acked.
        let resume = ClientFrame::Resume {
            chats: self
                .shared
                .chats()
                .iter()
                .map(|(chat_id, seqs)| ResumePoint {
                    chat_id: *chat_id,
                    last_seq: seqs.contiguous,
                })
                .collect(),
        };
        if let Err(reason) = write(&mut sink, &resume).await {
            return Ended::Dropped(reason);
        }
        for (chat_id, seq) in std::mem::take(&mut self.unsent_reads) {
            if let Err(reason) = write(&mut sink, &ClientFrame::Read { chat_id, seq }).await {
                return Ended::Dropped(reason);
            }
        }
        if let Err(reason) = self.resend_due(&mut sink).await {
            return Ended::Dropped(reason);
        }

        let mut ping = tokio::time::interval(self.options.ping_every);
        ping.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut resend =
            tokio::time::interval(self.options.resend_after.max(Duration::from_millis(50)) / 2);
        loop {
            tokio::select! {
                incoming = stream.next() => {
                    let frame = match incoming {
                        Some(Ok(WsMessage::Text(text))) => text,
                        Some(Ok(WsMessage::Close(close))) => {
                            let code = close.as_ref().map(|c| u16::from(c.code));
                            let reason = close.map_or_else(
                                || "closed by the server".to_owned(),
                                |c| format!("closed by the server: {} {}", u16::from(c.code), c.reason),
                            );
                            // Replaced by a newer connection of the account: reconnecting
                            // would close that one in turn.
                            if code == Some(close::TOO_MANY_CONNECTIONS) {
                                return Ended::Replaced(reason);
                            }
                            return Ended::Dropped(reason);
                        }
                        Some(Ok(_)) => continue,
                        Some(Err(err)) => return Ended::Dropped(err.to_string()),
                        None => return Ended::Dropped("the connection ended".to_owned()),
                    };
                    let frame: ServerFrame = match serde_json::from_str(frame.as_str()) {
                        Ok(frame) => frame,
                        Err(err) => {
                            tracing::warn!(error = %err, "ignoring an unknown server frame");
                            continue;
                        }
                    };
                    match self.on_frame(frame, &mut sink).await {
                        Ok(true) => {}
                        Ok(false) => return Ended::Closed,
                        Err(reason) => return Ended::Dropped(reason),
                    }
                }
                command = self.commands.recv() => {
                    let result = match command {
                        None | Some(Command::Close) => {
                            let _ = sink.send(WsMessage::Close(None)).await;
                            return Ended::Closed;
                        }
                        Some(Command::Send { chat_id, client_msg_id, text, reply }) => {
                            self.add_pending(chat_id, client_msg_id, text, reply);
                            self.resend_due(&mut sink).await
                        }
                        Some(Command::Read { chat_id, seq }) => {
                            write(&mut sink, &ClientFrame::Read { chat_id, seq }).await
                        }
                        Some(Command::Typing { chat_id, typing }) => {
                            write(&mut sink, &ClientFrame::Typing { chat_id, typing }).await
                        }
                    };
                    if let Err(reason) = result {
                        return Ended::Dropped(reason);
                    }
                }
                _ = ping.tick() => {
                    if let Err(reason) = write(&mut sink, &ClientFrame::Ping { nonce: None }).await {
                        return Ended::Dropped(reason);
                    }
                }
                _ = resend.tick() => {
                    if let Err(reason) = self.resend_due(&mut sink).await {
                        return Ended::Dropped(reason);
                    }
                }
            }
        }
    }

    /// Writes every pending send not yet written on this connection, or written longer
    /// than `resend_after` ago without an answer.
    async fn resend_due<S>(&mut self, sink: &mut S) -> Result<(), String>
    where
        S: futures::Sink<WsMessage, Error = tungstenite::Error> + Unpin,
    {
        let now = Instant::now();
        let resend_after = self.options.resend_after;
        for pending in self.pending.values_mut() {
            if pending.reply.is_closed() {
                continue;
            }
            if pending
                .sent_at
                .is_some_and(|at| now.duration_since(at) < resend_after)
            {
                continue;
            }
            let frame = ClientFrame::Send {
                chat_id: pending.chat_id,
                client_msg_id: pending.client_msg_id.clone(),
                text: pending.text.clone(),
            };
            write(sink, &frame).await?;
            pending.sent_at = Some(now);
        }
        // Sends whose caller gave up are dropped once they were written at least once.
        self.pending
            .retain(|_, p| !(p.reply.is_closed() && p.sent_at.is_some()));
        Ok(())
    }

    /// Handles one server frame. `Ok(false)`: the application is gone, stop.
    async fn on_frame<S>(&mut self, frame: ServerFrame, sink: &mut S) -> Result<bool, String>
    where
        S: futures::Sink<WsMessage, Error = tungstenite::Error> + Unpin,
    {
        let event = match frame {
            ServerFrame::Hello { connection_id, .. } => Event::Connected { connection_id },
            ServerFrame::Ack {
                client_msg_id,
                chat_id,
                seq,
                message_id,
                created_at,
                ..
            } => {
                self.shared.chats().entry(chat_id).or_default().insert(seq);
                let key = self.pending.iter().find_map(|(key, p)| {
                    (p.chat_id == chat_id && p.client_msg_id == client_msg_id).then_some(*key)
                });
                if let Some(pending) = key.and_then(|key| self.pending.remove(&key)) {
                    let _ = pending.reply.send(Ok(Ack {
                        client_msg_id,
                        chat_id,
                        seq,
                        message_id,
                        created_at,
                    }));
                }
                return Ok(true);
            }
            ServerFrame::Message { message } => {
                let chat_id = message.chat_id;
                let (fresh, contiguous) = {
                    let mut chats = self.shared.chats();
                    let seqs = chats.entry(chat_id).or_default();
                    let fresh = !seqs.holds(message.seq);
                    seqs.insert(message.seq);
                    (fresh, seqs.contiguous)
                };
                if !fresh {
                    return Ok(true);
                }
                if self.options.auto_delivered && message.sender_id != self.me {
                    write(
                        sink,
                        &ClientFrame::Delivered {
                            chat_id,
                            seq: contiguous,
                        },
                    )
                    .await?;
                }
                Event::Message(message)
            }
            ServerFrame::Status { watermark } => Event::Status(watermark),
            ServerFrame::Typing {
                chat_id,
                user_id,
                typing,
            } => Event::Typing {
                chat_id,
                user_id,
                typing,
            },
            ServerFrame::Presence {
                chat_id,
                user_id,
                online,
            } => Event::Presence {
                chat_id,
                user_id,
                online,
            },
            ServerFrame::ChatEnded {
                chat_id, ended_by, ..
            } => Event::ChatEnded { chat_id, ended_by },
            ServerFrame::Matched { info } => {
                self.shared.chats().entry(info.chat_id).or_default();
                Event::Matched(info)
            }
            ServerFrame::Resumed { .. } => Event::Resumed,
            ServerFrame::Error {
                code,
                message,
                client_msg_id: Some(client_msg_id),
                ..
            } => {
                if !code.is_transient() {
                    let key = self
                        .pending
                        .iter()
                        .find_map(|(key, p)| (p.client_msg_id == client_msg_id).then_some(*key));
                    if let Some(pending) = key.and_then(|key| self.pending.remove(&key)) {
                        let _ = pending.reply.send(Err(Error::Refused { code, message }));
                    }
                }
                // A transient refusal leaves the send pending; it is resent later.
                return Ok(true);
            }
            ServerFrame::Error { code, message, .. } => Event::Error { code, message },
            ServerFrame::Pong { .. } => return Ok(true),
        };
        Ok(self.events.send(event).await.is_ok())
    }
}

async fn write<S>(sink: &mut S, frame: &ClientFrame) -> Result<(), String>
where
    S: futures::Sink<WsMessage, Error = tungstenite::Error> + Unpin,
{
    let json = serde_json::to_string(frame).map_err(|e| e.to_string())?;
    sink.send(WsMessage::Text(json.into()))
        .await
        .map_err(|e| e.to_string())
}

fn backoff(options: &ConnectOptions, attempt: u32) -> Duration {
    let base = options
        .backoff_min
        .saturating_mul(2u32.saturating_pow(attempt.min(16)))
        .min(options.backoff_max);
    // Full jitter in [base/2, base] so that many clients do not reconnect in step.
    let half = base / 2;
    half + half.mul_f64(rand::random_range(0.0..=1.0))
}

/// Opens a WebSocket to the gateway with the access token in the `Authorization` header
/// (never in the URL). A 401 at the handshake refreshes the token once.
async fn connect(client: &Client) -> Result<Socket> {
    let mut url = client.url(WS_PATH)?;
    let scheme = if url.scheme() == "https" { "wss" } else { "ws" };
    url.set_scheme(scheme)
        .map_err(|()| Error::Decode("cannot make a WebSocket URL".to_owned()))?;
    let mut token = client.access_token().await?;
    for attempt in 0..2 {
        let mut request = url
            .as_str()
            .into_client_request()
            .map_err(|e| Error::Decode(e.to_string()))?;
        request.headers_mut().insert(
            http::header::AUTHORIZATION,
            format!("Bearer {token}")
                .parse()
                .map_err(|_| Error::Decode("access token is not a header value".to_owned()))?,
        );
        let config =
            WebSocketConfig::default().max_message_size(Some(wire::protocol::MAX_FRAME_BYTES));
        match tokio_tungstenite::connect_async_with_config(request, Some(config), true).await {
            Ok((socket, _)) => return Ok(socket),
            Err(tungstenite::Error::Http(response))
                if response.status() == StatusCode::UNAUTHORIZED && attempt == 0 =>
            {
                token = client.refresh_after_rejection(&token).await?;
            }
            Err(tungstenite::Error::Http(response)) => {
                let status = response.status();
                let body = response
                    .body()
                    .as_deref()
                    .and_then(|b| serde_json::from_slice(b).ok())
                    .unwrap_or_else(|| {
                        ErrorBody::new(
                            if status.is_server_error() {
                                ErrorCode::Internal
                            } else {
                                ErrorCode::BadRequest
                            },
                            format!("the server refused the WebSocket upgrade with {status}"),
                        )
                    });
                return Err(Error::Api {
                    status,
                    body,
                    retry_after: None,
                });
            }
            Err(err) => return Err(Error::Transport(err.to_string())),
        }
    }
    Err(Error::SessionEnded)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn contiguous_seqs_advance_over_gaps_once_filled() {
        let mut seqs = ChatSeqs::default();
        seqs.insert(1);
        seqs.insert(3);
        assert_eq!(seqs.contiguous, 1);
        assert!(seqs.holds(3));
        assert!(!seqs.holds(2));
        seqs.insert(2);
        assert_eq!(seqs.contiguous, 3);
        assert!(seqs.above.is_empty());
    }

    #[test]
    fn backoff_grows_and_stays_within_bounds() {
        let options = ConnectOptions::default();
        for attempt in 0..40 {
            let delay = backoff(&options, attempt);
            assert!(delay <= options.backoff_max);
            assert!(delay >= options.backoff_min / 2);
        }
        assert!(backoff(&options, 10) >= options.backoff_max / 2);
    }
}
