//! The writer of a connection: the only task that writes to the socket.
//!
//! It keeps, per chat, the highest seq this connection has been given (`sent`). A live
//! `message` at or below it is a duplicate and dropped; one more than one above it means
//! messages were missed (a relay hiccup, or an event overtaking another), so the gap is
//! first fetched from message-service and sent in order. An `ack` advances `sent` the
//! same way. `resume` sets `sent` to the client's last seq and catches up. Because the
//! connection is registered (and its queue exists) before the writer fetches anything,
//! no message can fall between catch-up and the live stream.
//!
//! Routes to connections are cached by the senders' handlers ([`crate::fanout`]), so a
//! sender may still route with a route from before this connection registered. Such a
//! route expires after [`crate::route_cache::ROUTE_TTL`]: once that has passed
//! ([`SETTLE_AFTER`](crate::fanout::SETTLE_AFTER)), the writer checks every chat it follows
//! for messages it missed, and from then on nothing can be routed past it.
//!
//! Live messages that arrive before the client's first frame are held (at most
//! [`RESUME_WINDOW`], at most a queue's worth): if that frame is a `resume`, catch-up
//! goes first and the held messages follow (repeats dropped), so a resuming client sees
//! every missed message in order before anything live.

use service_kit::error::ErrorCode;
use std::borrow::Cow;
use std::collections::HashMap;
use std::sync::PoisonError;

use axum::extract::ws::{CloseFrame, Message as WsMessage};
use futures::{Sink, SinkExt, StreamExt};
use service_kit::client::ClientError;
use tokio::time::Instant;
use uuid::Uuid;
use wire::api::auth::ContentFilter;
use wire::api::message::{Chat, Message};
use wire::protocol::{PROTOCOL_VERSION, ResumePoint, ServerFrame, close};

use crate::chats::{self, CATCH_UP_PAGE, client_error_frame};
use crate::outbound::{Closer, NOT_READING, Outbound, OutboundQueue, PendingSends};
use crate::state::AppState;

/// Most chats in one `resume`.
pub const MAX_RESUME_CHATS: usize = 1000;
/// How long live messages wait for the client's first frame (a possible `resume`).
pub const RESUME_WINDOW: std::time::Duration = std::time::Duration::from_secs(1);

/// The per-connection outbound state.
#[derive(Debug)]
pub struct Writer {
    state: AppState,
    user_id: Uuid,
    connection_id: Uuid,
    /// Highest seq given to the client, per chat.
    sent: HashMap<Uuid, u64>,
    /// Chats active when the connection opened.
    active_at_connect: Vec<Uuid>,
    /// Whether `sent` was seeded at connect; if not, unknown chats pass through.
    seeded: bool,
    pending: PendingSends,
    /// Live messages held until the client's first frame, while it may still resume.
    held: Option<Vec<Message>>,
    /// Closes the connection (with 4008 when a write times out).
    closer: Closer,
    /// How much of others' messages to mask for this user.
    content_filter: ContentFilter,
}

type SendResult = Result<(), axum::Error>;

impl Writer {
    /// A writer for a new connection. `active` (the user's active chats at connect, after
    /// registration) seeds `sent` with each chat's last seq: without `resume` the
    /// connection streams what happens from now on.
    pub fn new(
        state: AppState,
        user_id: Uuid,
        connection_id: Uuid,
        active: Option<&[Chat]>,
        pending: PendingSends,
        content_filter: ContentFilter,
    ) -> Self {
        let sent: HashMap<Uuid, u64> = active
            .unwrap_or_default()
            .iter()
            .map(|c| (c.id, c.last_seq))
            .collect();
        Self {
            state,
            user_id,
            connection_id,
            active_at_connect: active.unwrap_or_default().iter().map(|c| c.id).collect(),
            sent,
            seeded: active.is_some(),
            pending,
            held: Some(Vec::new()),
            closer: Closer::default(),
            content_filter,
        }
    }

    /// Sends `hello`, then the queue in order until the connection is closed, then the
    /// close frame with the code asked for. The writer comes boxed: a future keeps what
    /// it was called with besides what it moves out of it, and this one lives as long as
    /// the connection.
    ///
    /// Not an `async fn`: one would keep a second copy of its arguments for the
    /// connection's whole life; this block works on them in place.
    pub fn run<S>(
        mut self: Box<Self>,
        mut sink: S,
        queue: OutboundQueue,
        closer: Closer,
    ) -> impl Future<Output = ()>
    where
        S: Sink<WsMessage, Error = axum::Error> + Unpin,
    {
        self.closer = closer.clone();
        let mut this = self;
        async move {
            let idle = this.state.config().idle_timeout;
            let outcome: SendResult = {
                // What is written is handled in boxed futures (one per item, and the hello):
                // handling an item takes several times the room of waiting for one, and
                // awaited in place that room would be kept by every idle connection.
                let work = async {
                    let hello = this.encode(&ServerFrame::Hello {
                        protocol: PROTOCOL_VERSION,
                        user_id: this.user_id,
                        connection_id: this.connection_id,
                        idle_timeout_secs: idle.as_secs(),
                    });
                    Box::pin(this.write(&mut sink, hello)).await?;
                    // One timer for the writer's three deadlines (the end of the resume
                    // window, the settle pass and the next ping), set to whichever is next:
                    // each timer kept would stay in every idle connection's future.
                    let start = Instant::now();
                    let window_ends = start + RESUME_WINDOW;
                    let settles_at = start + crate::fanout::SETTLE_AFTER;
                    let ping_every = idle / 3;
                    let mut next_ping = start + ping_every;
                    let mut settled = false;
                    let next_deadline = |held: bool, settled: bool, next_ping: Instant| {
                        let mut at = next_ping;
                        if held {
                            at = at.min(window_ends);
                        }
                        if !settled {
                            at = at.min(settles_at);
                        }
                        at
                    };
                    let mut armed = next_deadline(this.held.is_some(), settled, next_ping);
                    let timer = tokio::time::sleep_until(armed);
                    tokio::pin!(timer);
                    // One stream for the connection's life: waiting on it registers once,
                    // where a fresh `recv` per item would register (and allocate) each time.
                    let mut incoming = queue.stream();
                    loop {
                        // Frames are fed to the socket's write buffer; it is flushed once
                        // nothing more is ready, so whatever the queue held at once leaves in
                        // one write (and one wake-up of the client).
                        if queue.is_empty() {
                            this.flush(&mut sink).await?;
                        }
                        tokio::select! {
                            () = &mut timer => {
                                let now = Instant::now();
                                if this.held.is_some() && now >= window_ends {
                                    Box::pin(this.release(&mut sink)).await?;
                                }
                                if !settled && now >= settles_at {
                                    settled = true;
                                    Box::pin(this.settle(&mut sink)).await?;
                                }
                                if now >= next_ping {
                                    next_ping = now + ping_every;
                                    Box::pin(this.write(&mut sink, WsMessage::Ping(Default::default()))).await?;
                                }
                            }
                            item = incoming.next() => match item {
                                Some(item) => Box::pin(this.handle(&mut sink, item)).await?,
                                None => return Ok(()),
                            },
                        }
                        let wanted = next_deadline(this.held.is_some(), settled, next_ping);
                        if wanted != armed || timer.is_elapsed() {
                            armed = wanted;
                            timer.as_mut().reset(armed);
                        }
                    }
                };
                tokio::select! {
                    biased;
                    () = closer.closed() => Ok(()),
                    result = work => result,
                }
            };
            if let Err(err) = outcome {
                tracing::debug!(error = %err, connection_id = %this.connection_id, "socket write failed");
                closer.close(close::NORMAL, "");
                return;
            }
            let (code, reason) = closer.reason().unwrap_or((close::NORMAL, String::new()));
            let frame = CloseFrame {
                code,
                reason: reason.into(),
            };
            let _ = tokio::time::timeout(this.state.config().close_timeout, async {
                sink.send(WsMessage::Close(Some(frame))).await?;
                sink.close().await
            })
            .await;
        }
    }

    async fn send<S>(&self, sink: &mut S, frame: &ServerFrame) -> SendResult
    where
        S: Sink<WsMessage, Error = axum::Error> + Unpin,
    {
        let message = self.encode(frame);
        self.write(sink, message).await
    }

    /// The WebSocket message of `frame`, others' texts masked at this user's level.
    fn encode(&self, frame: &ServerFrame) -> WsMessage {
        let masked = match frame {
            ServerFrame::Message { message } if message.sender_id != self.user_id => {
                match service_kit::content::mask(&message.text, self.content_filter) {
                    Cow::Borrowed(_) => None,
                    Cow::Owned(text) => Some(ServerFrame::Message {
                        message: Message {
                            text,
                            ..message.clone()
                        },
                    }),
                }
            }
            _ => None,
        };
        let text = serde_json::to_string(masked.as_ref().unwrap_or(frame))
            .expect("server frames always serialize");
        WsMessage::Text(text.into())
    }

    /// Feeds one WebSocket message to the socket's write buffer (written out when the
    /// buffer fills or at the next [`Self::flush`]), waiting at most the write timeout: a
    /// client that does not read cannot hold the writer (and the socket) longer than that.
    async fn write<S>(&self, sink: &mut S, message: WsMessage) -> SendResult
    where
        S: Sink<WsMessage, Error = axum::Error> + Unpin,
    {
        self.timed(sink.feed(message)).await
    }

    /// Writes out what the write buffer holds, within the write timeout.
    async fn flush<S>(&self, sink: &mut S) -> SendResult
    where
        S: Sink<WsMessage, Error = axum::Error> + Unpin,
    {
        self.timed(sink.flush()).await
    }

    async fn timed(&self, write: impl Future<Output = SendResult>) -> SendResult {
        match tokio::time::timeout(self.state.config().write_timeout, write).await {
            Ok(result) => result,
            Err(_) => {
                metrics::counter!("ws_write_timeouts_total").increment(1);
                self.closer.close(close::SLOW_CONSUMER, NOT_READING);
                Err(axum::Error::new(std::io::Error::from(
                    std::io::ErrorKind::TimedOut,
                )))
            }
        }
    }

    async fn handle<S>(&mut self, sink: &mut S, item: Outbound) -> SendResult
    where
        S: Sink<WsMessage, Error = axum::Error> + Unpin,
    {
        match item {
            Outbound::Frame(frame) => self.frame(sink, frame).await,
            // Boxed, like every path that calls another service: awaited in place, they
            // would widen the future every idle connection keeps.
            Outbound::Resume(points) => {
                Box::pin(self.resume(sink, *points)).await?;
                self.release(sink).await
            }
            Outbound::NoResume => self.release(sink).await,
        }
    }

    /// Frames stay boxed down to where they are encoded, so that the futures awaiting a
    /// write hold a pointer rather than a frame.
    async fn frame<S>(&mut self, sink: &mut S, frame: Box<ServerFrame>) -> SendResult
    where
        S: Sink<WsMessage, Error = axum::Error> + Unpin,
    {
        match *frame {
            ServerFrame::Message { message } => match &mut self.held {
                Some(held)
                    if held.len()
                        < super::outbound_capacity(self.state.config().outbound_queue) =>
                {
                    held.push(message);
                    Ok(())
                }
                Some(_) => {
                    self.release(sink).await?;
                    self.live_message(sink, message).await
                }
                None => self.live_message(sink, message).await,
            },
            ServerFrame::Ack { .. } => self.ack(sink, frame).await,
            ServerFrame::Matched { info } => {
                // A new chat: everything in it is for this connection.
                self.sent.entry(info.chat_id).or_insert(0);
                let (chat_id, partner) = (info.chat_id, info.partner.id);
                self.send(sink, &ServerFrame::Matched { info }).await?;
                // And whether the new partner is online now (later changes follow as
                // `presence` events like for any chat).
                let found = Box::pin(chats::connections_of(
                    &self.state.peers().ws_manager,
                    partner,
                ))
                .await;
                match found {
                    Ok(connections) => {
                        let presence = ServerFrame::Presence {
                            chat_id,
                            user_id: partner,
                            online: !connections.is_empty(),
                        };
                        self.send(sink, &presence).await
                    }
                    Err(err) => {
                        tracing::warn!(error = %err, "cannot look up a new partner's presence");
                        Ok(())
                    }
                }
            }
            _ => self.send(sink, &frame).await,
        }
    }

    /// Ends the resume window: sends the held live messages (repeats are dropped).
    async fn release<S>(&mut self, sink: &mut S) -> SendResult
    where
        S: Sink<WsMessage, Error = axum::Error> + Unpin,
    {
        for message in self.held.take().unwrap_or_default() {
            self.live_message(sink, message).await?;
        }
        Ok(())
    }

    fn baseline(&self, chat_id: Uuid) -> Option<u64> {
        match self.sent.get(&chat_id) {
            Some(seq) => Some(*seq),
            // A chat unknown at connect was created since: the client has none of it.
            None if self.seeded => Some(0),
            None => None,
        }
    }

    async fn live_message<S>(&mut self, sink: &mut S, message: Message) -> SendResult
    where
        S: Sink<WsMessage, Error = axum::Error> + Unpin,
    {
        let chat_id = message.chat_id;
        match self.baseline(chat_id) {
            Some(sent) if message.seq <= sent => {
                metrics::counter!("ws_duplicate_events_dropped_total").increment(1);
                return Ok(());
            }
            Some(sent) if message.seq > sent.saturating_add(1) => {
                if let Err(err) = Box::pin(self.fill(sink, chat_id, sent, message.seq - 1)).await? {
                    tracing::warn!(error = %err, %chat_id, "cannot fetch missed messages; the client sees a gap");
                }
            }
            _ => {}
        }
        let seq = message.seq;
        let encoded = self.encode(&ServerFrame::Message { message });
        self.write(sink, encoded).await?;
        self.advance(chat_id, seq);
        Ok(())
    }

    async fn ack<S>(&mut self, sink: &mut S, ack: Box<ServerFrame>) -> SendResult
    where
        S: Sink<WsMessage, Error = axum::Error> + Unpin,
    {
        let ServerFrame::Ack {
            chat_id,
            seq,
            ref client_msg_id,
            ..
        } = *ack
        else {
            return self.send(sink, &ack).await;
        };
        if let Some(sent) = self.baseline(chat_id)
            && seq > sent.saturating_add(1)
            && let Err(err) = Box::pin(self.fill(sink, chat_id, sent, seq - 1)).await?
        {
            tracing::warn!(error = %err, %chat_id, "cannot fetch missed messages; the client sees a gap");
        }
        self.pending
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(&(chat_id, client_msg_id.clone()));
        self.send(sink, &ack).await?;
        self.advance(chat_id, seq);
        Ok(())
    }

    fn advance(&mut self, chat_id: Uuid, seq: u64) {
        let entry = self.sent.entry(chat_id).or_insert(0);
        *entry = (*entry).max(seq);
    }

    /// Sends the messages of `chat_id` after `after` up to `upto`, in order, skipping the
    /// ones this connection sent and has not been acked for yet. The outer error is a
    /// socket failure; the inner one a message-service failure (what was sent so far
    /// stays sent).
    async fn fill<S>(
        &mut self,
        sink: &mut S,
        chat_id: Uuid,
        after: u64,
        upto: u64,
    ) -> Result<Result<(), ClientError>, axum::Error>
    where
        S: Sink<WsMessage, Error = axum::Error> + Unpin,
    {
        let message_service = self.state.peers().message.clone();
        let mut cursor = after;
        let mut found = false;
        while cursor < upto {
            let limit =
                u32::try_from(upto - cursor).map_or(CATCH_UP_PAGE, |n| n.min(CATCH_UP_PAGE));
            let page = match chats::messages_after(&message_service, chat_id, cursor, limit).await {
                Ok(page) => page,
                Err(err) => return Ok(Err(err)),
            };
            let full_page = page.len() as u32 >= limit;
            for message in page {
                if message.seq <= cursor || message.seq > upto {
                    continue;
                }
                cursor = message.seq;
                found = true;
                let own_pending = message.sender_id == self.user_id
                    && self
                        .pending
                        .lock()
                        .unwrap_or_else(PoisonError::into_inner)
                        .contains(&(chat_id, message.client_msg_id.clone()));
                if !own_pending {
                    self.send(sink, &ServerFrame::Message { message }).await?;
                }
                self.advance(chat_id, cursor);
            }
            if !full_page {
                break;
            }
        }
        if found {
            metrics::counter!("ws_gap_fills_total").increment(1);
        }
        Ok(Ok(()))
    }

    /// Sends what this connection missed in the chats it follows while routes from before
    /// its registration were still in use.
    async fn settle<S>(&mut self, sink: &mut S) -> SendResult
    where
        S: Sink<WsMessage, Error = axum::Error> + Unpin,
    {
        self.release(sink).await?;
        let followed: Vec<(Uuid, u64)> = self.sent.iter().map(|(c, s)| (*c, *s)).collect();
        for (chat_id, sent) in followed {
            if let Err(err) = self.fill(sink, chat_id, sent, u64::MAX).await? {
                tracing::debug!(error = %err, %chat_id, "cannot check a chat for missed messages");
            }
        }
        Ok(())
    }

    /// `resume`: the listed chats from the client's last seq, the other chats active at
    /// connect from 0; then `resumed`.
    async fn resume<S>(&mut self, sink: &mut S, points: Vec<ResumePoint>) -> SendResult
    where
        S: Sink<WsMessage, Error = axum::Error> + Unpin,
    {
        // In the client's order, each chat once (its last point wins): linear, by index.
        let mut wanted: Vec<(Uuid, u64)> = Vec::new();
        let mut index: HashMap<Uuid, usize> = HashMap::new();
        for point in points {
            match index.get(&point.chat_id) {
                Some(&at) => wanted[at].1 = point.last_seq,
                None => {
                    index.insert(point.chat_id, wanted.len());
                    wanted.push((point.chat_id, point.last_seq));
                }
            }
        }
        for chat in &self.active_at_connect {
            if !index.contains_key(chat) {
                wanted.push((*chat, 0));
            }
        }
        let message_service = self.state.peers().message.clone();
        // One call lists the user's recent chats: chats the cache does not know are
        // checked against it (a resume naming hundreds of chats that are not the user's
        // costs one request, not one each), and it tells which chats have ended.
        let state = self.state.clone();
        let cache = state.chats();
        let mut recent: Option<(HashMap<Uuid, Chat>, bool)> = None;
        match chats::recent_chats(&message_service, self.user_id).await {
            Ok(chats) => {
                let complete = chats.len() < chats::RECENT_CHATS as usize;
                for chat in &chats {
                    cache.remember(chat);
                }
                recent = Some((chats.into_iter().map(|c| (c.id, c)).collect(), complete));
            }
            Err(err) => tracing::debug!(error = %err, "cannot list the user's chats for a resume"),
        }
        let mut done = Vec::new();
        for (chat_id, last_seq) in wanted {
            let member = match (&recent, cache.cached(chat_id)) {
                (_, Some(participants)) => Ok(participants.contains(&self.user_id)),
                // Not among every chat the user has: not theirs, no call needed.
                (Some((ids, true)), None) => Ok(ids.contains_key(&chat_id)),
                _ => cache
                    .participants(&message_service, chat_id)
                    .await
                    .map(|p| p.contains(&self.user_id)),
            };
            match member {
                Ok(true) => {}
                Ok(false) => {
                    self.send(sink, &not_in_chat(chat_id)).await?;
                    continue;
                }
                Err(err) if err.status() == Some(axum::http::StatusCode::NOT_FOUND) => {
                    self.send(sink, &not_in_chat(chat_id)).await?;
                    continue;
                }
                Err(err) => {
                    self.send(sink, &client_error_frame(err, "resume", None))
                        .await?;
                    continue;
                }
            }
            self.sent.insert(chat_id, last_seq);
            if let Err(err) = self.fill(sink, chat_id, last_seq, u64::MAX).await? {
                self.send(sink, &client_error_frame(err, "resume", None))
                    .await?;
            }
            // A chat that ended while the client was away says so after its catch-up.
            if let Some(chat) = recent.as_ref().and_then(|(chats, _)| chats.get(&chat_id))
                && let (Some(ended_at), Some(ended_by)) = (chat.ended_at, chat.ended_by)
            {
                let ended = ServerFrame::ChatEnded {
                    chat_id,
                    ended_by,
                    ended_at,
                };
                self.send(sink, &ended).await?;
            }
            done.push(ResumePoint {
                chat_id,
                last_seq: self.sent.get(&chat_id).copied().unwrap_or(last_seq),
            });
        }
        self.send(sink, &ServerFrame::Resumed { chats: done }).await
    }
}

fn not_in_chat(chat_id: Uuid) -> ServerFrame {
    ServerFrame::Error {
        code: ErrorCode::ChatNotFound,
        message: format!("no chat {chat_id} of yours"),
        in_reply_to: Some("resume".to_owned()),
        client_msg_id: None,
    }
}
