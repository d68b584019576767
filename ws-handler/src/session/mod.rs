//! One client connection: registration, the reader (client frames) and the writer (the
//! ordered outbound stream with gap filling and resume), and the end of a connection.
//!
//! - [`reader`] — parses and answers client frames.
//! - [`writer`] — the only task writing to the socket; keeps per chat the highest seq
//!   sent so that live messages are neither duplicated nor skipped.
//! - [`ratelimit`] — the per-connection token buckets.
//!
//! The session is generic over the socket (`Stream` + `Sink` of axum WebSocket messages).

pub mod ratelimit;
pub mod reader;
pub mod writer;

use std::collections::HashSet;
use std::sync::{Arc, Mutex};

use axum::extract::ws::Message;
use futures::{Sink, SinkExt, Stream, StreamExt};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;
use wire::api::wsmanager::ConnectionRef;
use wire::protocol::{ResumePoint, ServerFrame, close};

use crate::chats;
use crate::presence;
use crate::state::{AppState, LocalConnection};

/// What the writer of a connection processes, in order.
#[derive(Debug)]
pub enum Outbound {
    /// An event or an answer to send.
    Frame(ServerFrame),
    /// Catch up after a `resume`.
    Resume(Vec<ResumePoint>),
    /// The client's first frame was not a `resume`: live messages flow at once.
    NoResume,
}

/// Closes a connection with a code and reason (the first one given wins).
#[derive(Debug, Clone, Default)]
pub struct Closer {
    token: CancellationToken,
    reason: Arc<Mutex<Option<(u16, String)>>>,
}

impl Closer {
    /// Asks the connection to close with `code`; later calls keep the first code.
    pub fn close(&self, code: u16, reason: &str) {
        let mut slot = self.reason.lock().unwrap_or_else(|p| p.into_inner());
        if slot.is_none() {
            *slot = Some((code, reason.to_owned()));
        }
        drop(slot);
        self.token.cancel();
    }

    /// Completes once a close was asked for.
    pub async fn closed(&self) {
        self.token.cancelled().await;
    }

    /// The code and reason asked for.
    pub fn reason(&self) -> Option<(u16, String)> {
        self.reason
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }
}

/// Messages this connection sent whose `ack` is not out yet, by (chat, client id): gap
/// filling must not show the sender its own message as a `message` before the `ack`.
pub type PendingSends = Arc<Mutex<HashSet<(Uuid, String)>>>;

/// Runs one authenticated connection to its end.
pub async fn run<S>(socket: S, state: AppState, user_id: Uuid, token_expires_at: i64)
where
    S: Stream<Item = Result<Message, axum::Error>>
        + Sink<Message, Error = axum::Error>
        + Send
        + 'static,
{
    let connection_id = Uuid::new_v4();
    let (outbound, queue) = mpsc::channel(state.config().outbound_queue);
    let closer = Closer::default();
    state.add_connection(
        connection_id,
        LocalConnection {
            user_id,
            outbound: outbound.clone(),
            closer: closer.clone(),
        },
    );
    if state.shutdown_token().is_cancelled() {
        closer.close(close::GOING_AWAY, "the server is shutting down; reconnect");
    }
    let (mut sink, mut stream) = socket.split();
    let peers = state.peers().clone();
    let connection = ConnectionRef {
        handler_id: state.handler_id(),
        connection_id,
    };
    let count = match chats::register(&peers.ws_manager, user_id, connection).await {
        Ok(count) => count,
        Err(err) => {
            tracing::warn!(error = %err, "cannot register a connection; closing it");
            state.remove_connection(connection_id);
            let frame = axum::extract::ws::CloseFrame {
                code: 1011,
                reason: "the service is temporarily unavailable; reconnect shortly".into(),
            };
            let _ = tokio::time::timeout(
                state.config().close_timeout,
                sink.send(Message::Close(Some(frame))),
            )
            .await;
            return;
        }
    };
    tracing::debug!(%user_id, %connection_id, connections = count, "connection registered");
    let active = match chats::active_chats(&peers.message, user_id).await {
        Ok(list) => {
            for chat in &list {
                state.chats().remember(chat);
            }
            Some(list)
        }
        Err(err) => {
            tracing::warn!(error = %err, "cannot list the user's chats at connect");
            None
        }
    };
    let pending = PendingSends::default();
    let writer = tokio::spawn(
        writer::Writer::new(
            state.clone(),
            user_id,
            connection_id,
            active.as_deref(),
            pending.clone(),
        )
        .run(sink, queue, closer.clone()),
    );
    tokio::spawn(presence::connected(
        state.clone(),
        user_id,
        count,
        active,
        outbound.clone(),
    ));
    reader::Reader::new(
        state.clone(),
        user_id,
        connection_id,
        outbound,
        closer.clone(),
        pending,
    )
    .run(&mut stream, token_expires_at)
    .await;
    closer.close(close::NORMAL, "");
    state.remove_connection(connection_id);
    let _ = writer.await;
    match chats::deregister(&peers.ws_manager, user_id, connection_id).await {
        Ok(0) => presence::last_disconnected(&state, user_id).await,
        Ok(_) => {}
        Err(err) => tracing::warn!(error = %err, %connection_id, "cannot deregister a connection"),
    }
    // The close frame is out; keep the socket until the client answers it (or briefly):
    // closing it while the client still writes (a pong, say) would reset the connection
    // and the client could lose the close frame and its code.
    let _ = tokio::time::timeout(state.config().close_timeout, async {
        while let Some(Ok(message)) = stream.next().await {
            if matches!(message, Message::Close(_)) {
                break;
            }
        }
    })
    .await;
    tracing::debug!(%user_id, %connection_id, "connection ended");
}
