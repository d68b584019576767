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
use futures::stream::{SplitSink, SplitStream};
use futures::{Sink, SinkExt, Stream, StreamExt};
use service_kit::auth::AuthUser;
use uuid::Uuid;
use wire::api::auth::ContentFilter;
use wire::api::wsmanager::ConnectionRef;
use wire::protocol::close;

use crate::chats;
use crate::outbound::{Closer, PendingSends};
use crate::presence;
use crate::state::{AppState, LocalConnection};

/// A client's WebSocket as a session sees it: frames in, frames out.
pub trait Socket:
    Stream<Item = Result<Message, axum::Error>> + Sink<Message, Error = axum::Error> + Send + 'static
{
}

impl<S> Socket for S where
    S: Stream<Item = Result<Message, axum::Error>>
        + Sink<Message, Error = axum::Error>
        + Send
        + 'static
{
}

/// What a connection keeps of its access token: only these few fields (not the whole
/// [`AuthUser`]), since whatever the upgrade hands the session stays in its future for the
/// connection's whole life.
#[derive(Debug, Clone, Copy)]
pub struct Identity {
    /// The user.
    pub user_id: Uuid,
    /// The log-in session the token belongs to (its end closes the connection).
    pub session_id: Uuid,
    /// When the token expires (Unix seconds; the connection closes then).
    pub expires_at: i64,
    /// How much of others' messages to mask for this user.
    pub content_filter: ContentFilter,
}

impl From<&AuthUser> for Identity {
    fn from(user: &AuthUser) -> Self {
        Self {
            user_id: user.user_id,
            session_id: user.session_id,
            expires_at: user.claims.exp,
            content_filter: user.claims.cf,
        }
    }
}

/// Runs one authenticated connection to its end. It closes with 4001 when the access
/// token it was opened with expires or its log-in session ends, and what the user
/// receives from others is masked at the token's content filter level.
///
/// The returned future lives as long as the connection, and a future keeps room for
/// everything it holds across an await, whether still needed or not: so opening and
/// ending the connection run in boxed futures of their own, and only what the reader and
/// the end need stays while the connection is open (see the tests below).
pub fn run<S: Socket>(
    socket: S,
    state: AppState,
    user: Identity,
) -> impl Future<Output = ()> + Send {
    let (sink, stream) = socket.split();
    let opening = Box::new(Opening {
        sink,
        stream,
        state,
        user,
    });
    async move {
        let Some(open) = Box::pin(open(opening)).await else {
            return;
        };
        let Open {
            mut stream,
            state,
            user_id,
            connection_id,
            closer,
            writer,
            reader,
            session_id,
            expires_at,
        } = open;
        reader.run(&mut stream, session_id, expires_at).await;
        Box::pin(finish(
            stream,
            state,
            user_id,
            connection_id,
            closer,
            writer,
        ))
        .await;
    }
}

/// What a connection starts with.
struct Opening<S> {
    sink: SplitSink<S, Message>,
    stream: SplitStream<S>,
    state: AppState,
    user: Identity,
}

/// A registered connection whose writer runs: what its reader and its end need.
struct Open<S> {
    stream: SplitStream<S>,
    state: AppState,
    user_id: Uuid,
    connection_id: Uuid,
    closer: Closer,
    writer: tokio::task::JoinHandle<()>,
    reader: Box<reader::Reader>,
    session_id: Uuid,
    expires_at: i64,
}

/// Registers the connection, starts its writer and queues the partners' presence; `None`
/// when it cannot be registered (the client was sent 1011).
async fn open<S: Socket>(opening: Box<Opening<S>>) -> Option<Open<S>> {
    let Opening {
        mut sink,
        stream,
        state,
        user,
    } = *opening;
    let user_id = user.user_id;
    // Time-ordered, so that ws-manager can tell a user's oldest connections.
    let connection_id = Uuid::now_v7();
    let (outbound, queue) =
        crate::outbound::queue(outbound_capacity(state.config().outbound_queue));
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
    let connection = ConnectionRef {
        handler_id: state.handler_id(),
        connection_id,
    };
    let count = match chats::register(&state.peers().ws_manager, user_id, connection).await {
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
            return None;
        }
    };
    tracing::debug!(%user_id, %connection_id, connections = count, "connection registered");
    let active = match chats::active_chats(&state.peers().message, user_id).await {
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
        Box::new(writer::Writer::new(
            state.clone(),
            user_id,
            connection_id,
            active.as_deref(),
            pending.clone(),
            user.content_filter,
        ))
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
    let reader = Box::new(reader::Reader::new(
        state.clone(),
        user_id,
        connection_id,
        outbound,
        closer.clone(),
        pending,
    ));
    Some(Open {
        stream,
        state,
        user_id,
        connection_id,
        closer,
        writer,
        reader,
        session_id: user.session_id,
        expires_at: user.expires_at,
    })
}

/// Ends a connection once its reader returned: stops the writer (which sends the close
/// frame), deregisters it and waits briefly for the client's answer to the close.
async fn finish<S: Socket>(
    mut stream: SplitStream<S>,
    state: AppState,
    user_id: Uuid,
    connection_id: Uuid,
    closer: Closer,
    writer: tokio::task::JoinHandle<()>,
) {
    closer.close(close::NORMAL, "");
    state.remove_connection(connection_id);
    let _ = writer.await;
    match chats::deregister(&state.peers().ws_manager, user_id, connection_id).await {
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

#[cfg(test)]
mod tests {
    use std::pin::Pin;
    use std::task::{Context, Poll};

    use service_kit::client::ServiceClient;
    use service_kit::relay::RelayBus;
    use service_kit::token::{AccessClaims, TokenVerifier};
    use wire::protocol::ServerFrame;

    use super::*;
    use crate::config::HandlerConfig;
    use crate::state::Peers;

    /// The most bytes the session task's future may take (it runs the reader).
    const SESSION_FUTURE_BUDGET: usize = 768;
    /// The most bytes the writer task's future may take.
    const WRITER_FUTURE_BUDGET: usize = 736;

    /// A socket that never yields a frame and takes every write (never polled here).
    struct Silent;

    impl Stream for Silent {
        type Item = Result<Message, axum::Error>;
        fn poll_next(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<Option<Self::Item>> {
            Poll::Pending
        }
    }

    impl Sink<Message> for Silent {
        type Error = axum::Error;
        fn poll_ready(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
            Poll::Ready(Ok(()))
        }
        fn start_send(self: Pin<&mut Self>, _: Message) -> Result<(), Self::Error> {
            Ok(())
        }
        fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
            Poll::Ready(Ok(()))
        }
        fn poll_close(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
            Poll::Ready(Ok(()))
        }
    }

    /// What a recording socket saw, in order.
    #[derive(Debug, PartialEq)]
    enum Seen {
        Frame(String),
        Flush,
    }

    /// A sink that records every message fed to it and every flush.
    struct Recording(std::sync::Arc<std::sync::Mutex<Vec<Seen>>>);

    impl Sink<Message> for Recording {
        type Error = axum::Error;
        fn poll_ready(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
            Poll::Ready(Ok(()))
        }
        fn start_send(self: Pin<&mut Self>, message: Message) -> Result<(), Self::Error> {
            let text = match message {
                Message::Text(text) => text.as_str().to_owned(),
                other => format!("{other:?}"),
            };
            self.0.lock().unwrap().push(Seen::Frame(text));
            Ok(())
        }
        fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
            self.0.lock().unwrap().push(Seen::Flush);
            Poll::Ready(Ok(()))
        }
        fn poll_close(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
            Poll::Ready(Ok(()))
        }
    }

    fn state() -> AppState {
        let nowhere = || ServiceClient::in_process("nowhere", axum::Router::new(), None);
        let peers = Peers {
            ws_manager: nowhere(),
            message: nowhere(),
            matching: None,
        };
        AppState::new(
            Uuid::nil(),
            "http://127.0.0.1:1",
            peers,
            RelayBus::in_process(),
            TokenVerifier::new("issuer", "audience"),
            HandlerConfig::default(),
        )
    }

    fn user() -> AuthUser {
        AuthUser {
            user_id: Uuid::nil(),
            session_id: Uuid::nil(),
            claims: AccessClaims {
                iss: "issuer".to_owned(),
                aud: "audience".to_owned(),
                sub: Uuid::nil(),
                exp: 0,
                iat: 0,
                jti: Uuid::nil(),
                typ: "access".to_owned(),
                sid: Uuid::nil(),
                role: Default::default(),
                cf: Default::default(),
            },
        }
    }

    /// Every connection keeps two tasks for its whole life, each holding its future at
    /// the largest size any of its states needs: what those futures take is most of what
    /// an idle connection costs, so handling a frame or an outbound item (several times
    /// the room of waiting for one) is boxed, and so are the reader, the writer, opening
    /// and ending a connection; each keeps one timer, and none keeps a second copy of
    /// its arguments.
    #[tokio::test]
    async fn an_idle_connections_tasks_stay_small() {
        let session = run(Silent, state(), Identity::from(&user()));
        let session_bytes = std::mem::size_of_val(&session);
        let (sink, _stream) = Silent.split();
        let (_outbound, queue) = crate::outbound::queue(1);
        let writer = Box::new(writer::Writer::new(
            state(),
            Uuid::nil(),
            Uuid::nil(),
            None,
            PendingSends::default(),
            Default::default(),
        ))
        .run(sink, queue, Closer::default());
        let writer_bytes = std::mem::size_of_val(&writer);
        println!(
            "session future {session_bytes} bytes, writer future {writer_bytes} bytes, \
             a WebSocket {} bytes",
            std::mem::size_of::<axum::extract::ws::WebSocket>()
        );
        assert!(
            session_bytes <= SESSION_FUTURE_BUDGET,
            "the session future takes {session_bytes} bytes (budget {SESSION_FUTURE_BUDGET})"
        );
        assert!(
            writer_bytes <= WRITER_FUTURE_BUDGET,
            "the writer future takes {writer_bytes} bytes (budget {WRITER_FUTURE_BUDGET})"
        );
    }

    /// Frames the writer finds queued together are written out together: one flush (one
    /// write to the socket, one wake-up of the client) after the last of them, in order.
    #[tokio::test]
    async fn frames_queued_together_leave_in_one_flush() {
        let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let (outbound, queue) = crate::outbound::queue(8);
        for nonce in ["1", "2", "3"] {
            let pong = ServerFrame::Pong {
                nonce: Some(nonce.to_owned()),
            };
            outbound
                .try_send(crate::outbound::Outbound::Frame(Box::new(pong)))
                .unwrap();
        }
        drop(outbound);
        Box::new(writer::Writer::new(
            state(),
            Uuid::nil(),
            Uuid::nil(),
            None,
            PendingSends::default(),
            Default::default(),
        ))
        .run(Recording(seen.clone()), queue, Closer::default())
        .await;
        let seen = std::mem::take(&mut *seen.lock().unwrap());
        let first_flush = seen.iter().position(|s| *s == Seen::Flush).unwrap();
        let before: Vec<&str> = seen[..first_flush]
            .iter()
            .map(|s| match s {
                Seen::Frame(text) => text.as_str(),
                Seen::Flush => unreachable!(),
            })
            .collect();
        assert_eq!(
            before.len(),
            4,
            "hello and the three pongs, then a flush: {seen:?}"
        );
        assert!(before[0].contains(r#""type":"hello""#), "{}", before[0]);
        for (text, nonce) in before[1..].iter().zip(["1", "2", "3"]) {
            assert!(text.contains(&format!(r#""nonce":"{nonce}""#)), "{text}");
        }
    }
}
