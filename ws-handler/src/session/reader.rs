//! The reader of a connection: parses client frames and answers them.

use service_kit::error::ErrorCode;
use std::sync::PoisonError;
use std::time::Duration;

use axum::extract::ws::Message as WsMessage;
use futures::{Stream, StreamExt};
use tokio::sync::{broadcast, mpsc};
use tokio::time::Instant;
use uuid::Uuid;
use wire::api::message::WatermarkUpdate;
use wire::protocol::{ClientFrame, ServerFrame, close};

use super::ratelimit::TokenBucket;
use super::sends;
use super::writer::MAX_RESUME_CHATS;
use crate::chats::{self, client_error_frame};
use crate::fanout;
use crate::outbound::{self, Closer, Outbound, OutboundSender, PendingSends};
use crate::state::AppState;

/// The close reason when the connection's log-in session ends (code 4001; a close reason
/// must stay under 123 bytes).
const SESSION_ENDED: &str =
    "the session has ended (logged out, password changed or session removed); log in again";

/// Longest `ping` nonce echoed back, in bytes (the protocol's limit).
const MAX_NONCE_BYTES: usize = wire::protocol::MAX_PING_NONCE_BYTES;

/// Frame types a client may send.
const CLIENT_TYPES: [&str; 6] = ["send", "delivered", "read", "typing", "resume", "ping"];

/// The inbound side of a connection.
#[derive(Debug)]
pub struct Reader {
    state: AppState,
    user_id: Uuid,
    connection_id: Uuid,
    outbound: OutboundSender,
    closer: Closer,
    pending: PendingSends,
    sends: TokenBucket,
    frames: TokenBucket,
    refused_in_a_row: u32,
    /// Whether the client's first frame is still to come (see [`Outbound::NoResume`]).
    first_frame: bool,
    /// Where sends go to be stored (see [`super::sends`]), and the task storing them;
    /// started by the first send, so that an idle connection holds neither.
    pipeline: Option<(mpsc::Sender<sends::Send>, tokio::task::JoinHandle<()>)>,
}

impl Reader {
    /// A reader for a new connection.
    pub fn new(
        state: AppState,
        user_id: Uuid,
        connection_id: Uuid,
        outbound: OutboundSender,
        closer: Closer,
        pending: PendingSends,
    ) -> Self {
        let config = state.config();
        let sends = TokenBucket::new(config.send_per_sec, config.send_burst);
        let frames = TokenBucket::new(config.frames_per_sec, config.frames_burst);
        Self {
            state,
            user_id,
            connection_id,
            outbound,
            closer,
            pending,
            sends,
            frames,
            refused_in_a_row: 0,
            first_frame: true,
            pipeline: None,
        }
    }

    /// Reads frames until the client leaves, the connection is closed, it idles out, its
    /// access token expires or its session ends; then waits until every send it took is
    /// answered. The reader comes boxed: a future keeps what it was called with besides
    /// what it moves out of it, and this one lives as long as the connection.
    ///
    /// Not an `async fn` (nor is `read`): one would keep a second copy of its arguments
    /// for the connection's whole life; these blocks work on them in place.
    #[allow(
        clippy::manual_async_fn,
        reason = "an async fn keeps a copy of its arguments beside the ones it uses"
    )]
    pub fn run<S>(
        mut self: Box<Self>,
        stream: S,
        session_id: Uuid,
        token_expires_at: i64,
    ) -> impl Future<Output = ()>
    where
        S: Stream<Item = Result<WsMessage, axum::Error>> + Unpin,
    {
        async move {
            self.read(stream, session_id, token_expires_at).await;
            if let Some((to_store, storing)) = self.pipeline.take() {
                drop(to_store);
                if let Err(err) = storing.await {
                    tracing::error!(error = %err, "a connection's send pipeline failed");
                }
            }
        }
    }

    #[allow(
        clippy::manual_async_fn,
        reason = "an async fn keeps a copy of its arguments beside the ones it uses"
    )]
    fn read<S>(
        &mut self,
        mut stream: S,
        session_id: Uuid,
        token_expires_at: i64,
    ) -> impl Future<Output = ()>
    where
        S: Stream<Item = Result<WsMessage, axum::Error>> + Unpin,
    {
        async move {
            let revocations = self.state.verifier().revocations().clone();
            let mut ended = revocations.watch();
            if revocations.is_ended(session_id) {
                self.closer.close(close::TOKEN_EXPIRED, SESSION_ENDED);
                return;
            }
            let idle = self.state.config().idle_timeout;
            let now = time::OffsetDateTime::now_utc().unix_timestamp();
            let token_left =
                Duration::from_secs(token_expires_at.saturating_sub(now).max(0) as u64);
            let expires = Instant::now() + token_left;
            let deadline = |now: Instant| (now + idle).min(expires);
            // One timer for both limits, the token's expiry and the idle timeout, whichever
            // comes first; it is moved on after each frame (rather than a timer per frame
            // and one more kept for the expiry).
            let timer = tokio::time::sleep_until(deadline(Instant::now()));
            tokio::pin!(timer);
            loop {
                let next = tokio::select! {
                    biased;
                    () = self.closer.closed() => return,
                    () = &mut timer => {
                        if Instant::now() >= expires {
                            self.closer.close(close::TOKEN_EXPIRED, "the access token expired; reconnect with a fresh one");
                        } else {
                            self.closer.close(close::IDLE_TIMEOUT, "no frame within the idle timeout");
                        }
                        return;
                    }
                    news = ended.recv() => {
                        let this_one = match news {
                            Ok(session) => session == session_id,
                            // Missed some: ask the list itself.
                            Err(broadcast::error::RecvError::Lagged(_)) => revocations.is_ended(session_id),
                            // The list lives as long as the verifier; never happens.
                            Err(broadcast::error::RecvError::Closed) => false,
                        };
                        if this_one {
                            self.closer.close(close::TOKEN_EXPIRED, SESSION_ENDED);
                            return;
                        }
                        continue;
                    }
                    next = stream.next() => next,
                };
                let message = match next {
                    None => return,
                    Some(Err(err)) => {
                        if is_too_big(err) {
                            self.closer
                                .close(close::MESSAGE_TOO_BIG, "frame larger than 65536 bytes");
                        }
                        return;
                    }
                    Some(Ok(message)) => message,
                };
                match message {
                    WsMessage::Text(text) => {
                        // Boxed: answering a frame takes several times the room of waiting
                        // for one, and awaited in place that room would be kept by every
                        // idle connection for its whole life.
                        if !Box::pin(self.on_text(text.as_str())).await {
                            return;
                        }
                    }
                    WsMessage::Binary(_) => {
                        self.closer.close(
                            close::UNSUPPORTED_DATA,
                            "only JSON text frames are accepted",
                        );
                        return;
                    }
                    WsMessage::Close(_) => {
                        self.closer.close(close::NORMAL, "");
                        return;
                    }
                    WsMessage::Ping(_) | WsMessage::Pong(_) => {}
                }
                timer.as_mut().reset(deadline(Instant::now()));
            }
        }
    }

    /// Queues a frame for the client; false when the writer is gone.
    async fn reply(&self, frame: ServerFrame) -> bool {
        self.enqueue(Outbound::Frame(Box::new(frame))).await
    }

    /// Hands an item to the writer, waiting for room in its queue at most the write
    /// timeout: waiting longer would stop this reader from noticing idleness, expiry or a
    /// closed session.
    async fn enqueue(&self, item: Outbound) -> bool {
        outbound::enqueue(
            &self.outbound,
            &self.closer,
            self.state.config().write_timeout,
            item,
        )
        .await
    }

    async fn refuse_rate(
        &mut self,
        in_reply_to: Option<&str>,
        client_msg_id: Option<String>,
    ) -> bool {
        self.refused_in_a_row += 1;
        metrics::counter!("ws_rate_limited_total").increment(1);
        if self.refused_in_a_row > self.state.config().max_refused_in_a_row {
            self.closer
                .close(close::RATE_LIMITED, "too many frames too fast");
            return false;
        }
        self.reply(ServerFrame::Error {
            code: ErrorCode::RateLimited,
            message: "too many frames; slow down".to_owned(),
            in_reply_to: in_reply_to.map(str::to_owned),
            client_msg_id,
        })
        .await
    }

    async fn on_text(&mut self, text: &str) -> bool {
        let parsed = serde_json::from_str::<ClientFrame>(text);
        if std::mem::take(&mut self.first_frame)
            && !matches!(parsed, Ok(ClientFrame::Resume { .. }))
            && !self.enqueue(Outbound::NoResume).await
        {
            return false;
        }
        if !self.frames.try_take() {
            let (kind, id) = parsed.as_ref().map_or((None, None), frame_kind);
            return self.refuse_rate(kind, id).await;
        }
        let frame = match parsed {
            Ok(frame) => frame,
            Err(err) => return self.reply(parse_error(text, &err)).await,
        };
        if let ClientFrame::Send { client_msg_id, .. } = &frame
            && !self.sends.try_take()
        {
            let id = Some(client_msg_id.clone());
            return self.refuse_rate(Some("send"), id).await;
        }
        self.refused_in_a_row = 0;
        match frame {
            ClientFrame::Send {
                chat_id,
                client_msg_id,
                text,
            } => self.on_send(chat_id, client_msg_id, text).await,
            // Boxed: these call other services, and awaited in place they would widen the
            // future every idle connection keeps.
            ClientFrame::Delivered { chat_id, seq } => {
                Box::pin(self.on_watermark(chat_id, Some(seq), None, "delivered")).await
            }
            ClientFrame::Read { chat_id, seq } => {
                Box::pin(self.on_watermark(chat_id, None, Some(seq), "read")).await
            }
            ClientFrame::Typing { chat_id, typing } => {
                Box::pin(self.on_typing(chat_id, typing)).await
            }
            ClientFrame::Resume { chats } => {
                if chats.len() > MAX_RESUME_CHATS {
                    if !self.enqueue(Outbound::NoResume).await {
                        return false;
                    }
                    return self
                        .reply(ServerFrame::Error {
                            code: ErrorCode::InvalidFrame,
                            message: format!("at most {MAX_RESUME_CHATS} chats in one resume"),
                            in_reply_to: Some("resume".to_owned()),
                            client_msg_id: None,
                        })
                        .await;
                }
                self.enqueue(Outbound::Resume(Box::new(chats))).await
            }
            ClientFrame::Ping { nonce }
                if nonce.as_ref().is_some_and(|n| n.len() > MAX_NONCE_BYTES) =>
            {
                self.reply(ServerFrame::Error {
                    code: ErrorCode::InvalidFrame,
                    message: format!("a ping nonce is at most {MAX_NONCE_BYTES} bytes"),
                    in_reply_to: Some("ping".to_owned()),
                    client_msg_id: None,
                })
                .await
            }
            ClientFrame::Ping { nonce } => self.reply(ServerFrame::Pong { nonce }).await,
        }
    }

    /// Hands a send to the pipeline, which stores it after the ones before it; waits only
    /// while the pipeline is full (as many sends as one batch holds are in flight).
    async fn on_send(&mut self, chat_id: Uuid, client_msg_id: String, text: String) -> bool {
        self.pending
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert((chat_id, client_msg_id.clone()));
        let (to_store, _) = self.pipeline.get_or_insert_with(|| {
            let (to_store, stored) = mpsc::channel(sends::MAX_BATCH);
            let pipeline = sends::Pipeline::new(
                self.state.clone(),
                self.user_id,
                self.connection_id,
                self.outbound.clone(),
                self.closer.clone(),
                self.pending.clone(),
            );
            (to_store, tokio::spawn(pipeline.run(stored)))
        });
        let send = sends::Send {
            chat_id,
            client_msg_id,
            text,
        };
        tokio::select! {
            biased;
            () = self.closer.closed() => false,
            handed = to_store.send(send) => handed.is_ok(),
        }
    }

    async fn on_watermark(
        &mut self,
        chat_id: Uuid,
        delivered_seq: Option<u64>,
        read_seq: Option<u64>,
        kind: &str,
    ) -> bool {
        let peers = self.state.peers().clone();
        let update = WatermarkUpdate {
            user_id: self.user_id,
            delivered_seq,
            read_seq,
        };
        let watermark = match chats::update_watermark(&peers.message, chat_id, update).await {
            Ok(watermark) => watermark,
            Err(err) => return self.reply(client_error_frame(err, kind, None)).await,
        };
        match self
            .state
            .chats()
            .participants(&peers.message, chat_id)
            .await
        {
            Ok(participants) => {
                fanout::fan_out(
                    &self.state,
                    &participants,
                    ServerFrame::Status { watermark },
                    Some(self.connection_id),
                )
                .await;
            }
            Err(err) => tracing::warn!(error = %err, %chat_id, "cannot find a chat's participants"),
        }
        true
    }

    async fn on_typing(&mut self, chat_id: Uuid, typing: bool) -> bool {
        let peers = self.state.peers().clone();
        let participants = match self
            .state
            .chats()
            .participants(&peers.message, chat_id)
            .await
        {
            Ok(p) => p,
            Err(err) => return self.reply(client_error_frame(err, "typing", None)).await,
        };
        if !participants.contains(&self.user_id) {
            return self
                .reply(ServerFrame::Error {
                    code: ErrorCode::ChatNotFound,
                    message: "no such chat of yours".to_owned(),
                    in_reply_to: Some("typing".to_owned()),
                    client_msg_id: None,
                })
                .await;
        }
        let others: Vec<Uuid> = participants
            .into_iter()
            .filter(|p| *p != self.user_id)
            .collect();
        fanout::fan_out(
            &self.state,
            &others,
            ServerFrame::Typing {
                chat_id,
                user_id: self.user_id,
                typing,
            },
            None,
        )
        .await;
        true
    }
}

fn frame_kind(frame: &ClientFrame) -> (Option<&'static str>, Option<String>) {
    let kind = match frame {
        ClientFrame::Send { client_msg_id, .. } => {
            return (Some("send"), Some(client_msg_id.clone()));
        }
        ClientFrame::Delivered { .. } => "delivered",
        ClientFrame::Read { .. } => "read",
        ClientFrame::Typing { .. } => "typing",
        ClientFrame::Resume { .. } => "resume",
        ClientFrame::Ping { .. } => "ping",
    };
    (Some(kind), None)
}

/// The `error` answering a frame that does not parse: `invalid_json` (not JSON),
/// `unknown_type` (no or an unknown `type`), `invalid_frame` (missing or mistyped fields).
pub fn parse_error(text: &str, err: &serde_json::Error) -> ServerFrame {
    let value = match serde_json::from_str::<serde_json::Value>(text) {
        Ok(value) => value,
        Err(_) => {
            return ServerFrame::Error {
                code: ErrorCode::InvalidJson,
                message: format!("the frame is not valid JSON: {err}"),
                in_reply_to: None,
                client_msg_id: None,
            };
        }
    };
    let kind = value.get("type").and_then(|t| t.as_str());
    match kind {
        Some(kind) if CLIENT_TYPES.contains(&kind) => ServerFrame::Error {
            code: ErrorCode::InvalidFrame,
            message: format!("invalid `{kind}` frame: {err}"),
            in_reply_to: Some(kind.to_owned()),
            client_msg_id: value
                .get("client_msg_id")
                .and_then(|v| v.as_str())
                .filter(|_| kind == "send")
                .map(|s| s.chars().take(64).collect()),
        },
        _ => ServerFrame::Error {
            code: ErrorCode::UnknownType,
            message: format!(
                "a frame needs a `type`, one of: {}",
                CLIENT_TYPES.join(", ")
            ),
            in_reply_to: None,
            client_msg_id: None,
        },
    }
}

fn is_too_big(err: axum::Error) -> bool {
    use tokio_tungstenite::tungstenite::Error;
    let inner = err.into_inner();
    matches!(inner.downcast_ref::<Error>(), Some(Error::Capacity(_)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn code_of(frame: &ServerFrame) -> (ErrorCode, Option<&str>) {
        match frame {
            ServerFrame::Error {
                code, in_reply_to, ..
            } => (*code, in_reply_to.as_deref()),
            other => panic!("not an error: {other:?}"),
        }
    }

    fn answer(text: &str) -> ServerFrame {
        let err = serde_json::from_str::<ClientFrame>(text).unwrap_err();
        parse_error(text, &err)
    }

    #[test]
    fn text_that_is_not_json_is_invalid_json() {
        assert_eq!(code_of(&answer("{nope")), (ErrorCode::InvalidJson, None));
    }

    #[test]
    fn a_frame_without_a_known_type_is_an_unknown_type() {
        assert_eq!(
            code_of(&answer(r#"{"type":"shout"}"#)),
            (ErrorCode::UnknownType, None)
        );
        assert_eq!(
            code_of(&answer(r#"{"chat_id":1}"#)),
            (ErrorCode::UnknownType, None)
        );
    }

    #[test]
    fn a_send_without_text_is_an_invalid_frame_naming_its_client_id() {
        let frame = answer(
            r#"{"type":"send","chat_id":"6f1c2a4e-9a57-4b7a-9d0e-1f6f1d9f2a10","client_msg_id":"m1"}"#,
        );
        assert_eq!(code_of(&frame), (ErrorCode::InvalidFrame, Some("send")));
        assert!(
            matches!(frame, ServerFrame::Error { client_msg_id: Some(ref id), .. } if id == "m1")
        );
    }
}
