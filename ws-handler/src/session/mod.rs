//! One client connection: registration, the reader (client frames) and the writer (the
//! ordered outbound stream with gap filling and resume), and the end of a connection.
//!
//! - [`reader`] — parses and answers client frames.
//! - [`sends`] — the pipeline storing a connection's sends in order, in batches.
//! - [`writer`] — the only task writing to the socket; keeps per chat the highest seq
//!   sent so that live messages are neither duplicated nor skipped.
//! - [`ratelimit`] — the per-connection token buckets.
//!
//! The session is generic over the socket (`Stream` + `Sink` of axum WebSocket messages).

pub mod ratelimit;
pub mod reader;
pub mod sends;
pub mod writer;

use axum::extract::ws::Message;
use futures::{Sink, SinkExt, Stream, StreamExt};
use service_kit::auth::AuthUser;
use tokio::sync::mpsc;
use uuid::Uuid;
use wire::api::wsmanager::ConnectionRef;
use wire::protocol::close;

use crate::chats;
use crate::outbound::{Closer, PendingSends};
use crate::presence;
use crate::state::{AppState, LocalConnection};

/// Runs one authenticated connection to its end. It closes with 4001 when the access
/// token it was opened with expires or its log-in session ends, and what the user
/// receives from others is masked at the token's content filter level.
pub async fn run<S>(socket: S, state: AppState, user: AuthUser)
where
    S: Stream<Item = Result<Message, axum::Error>>
        + Sink<Message, Error = axum::Error>
        + Send
        + 'static,
{
    let user_id = user.user_id;
    // Time-ordered, so that ws-manager can tell a user's oldest connections.
    let connection_id = Uuid::now_v7();
    let (outbound, queue) = mpsc::channel(outbound_capacity(state.config().outbound_queue));
    let closer = Closer::default();
    state.add_connection(
        connection_id,
        LocalConnection {
            user_id,
            outbound: outbound.clone(),
            closer: closer.clone(),
            opened: 0,
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
            user.claims.cf,
        )
        .run(sink, queue, closer.clone()),
    );
    if let Some(active) = active {
        // The partners' presence goes out right after `hello`, before the reader takes
        // the client's first frame (a `resume` is answered after it).
        presence::current(&state, user_id, &active, &outbound).await;
        tokio::spawn(presence::announce_online(
            state.clone(),
            user_id,
            count,
            active,
        ));
    }
    reader::Reader::new(
        state.clone(),
        user_id,
        connection_id,
        outbound,
        closer.clone(),
        pending,
    )
    .run(&mut stream, user.session_id, user.claims.exp)
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

/// A connection's outbound queue holds at least two batches of sends: a batch (up to
/// [`sends::MAX_BATCH`]) is stored with one call and fans out to a recipient all at once,
/// so a smaller queue would close a client that reads as fast as it can as a slow consumer.
pub(crate) fn outbound_capacity(configured: usize) -> usize {
    configured.max(2 * sends::MAX_BATCH)
}
