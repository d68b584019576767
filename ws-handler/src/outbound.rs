//! What a connection's writer is handed ([`Outbound`]) and the queue carrying it
//! ([`queue`]), how a connection is asked to close ([`Closer`]) and the sends awaiting
//! their `ack`: shared by the session's reader and writer, presence and the connection
//! table, and importing none of them.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};

use tokio_util::sync::CancellationToken;
use uuid::Uuid;
use wire::protocol::{ResumePoint, ServerFrame};

/// The close reason (with 4008) of a connection whose client stopped reading.
pub const NOT_READING: &str = "the client is not reading; reconnect and resume";

/// What the writer of a connection processes, in order.
#[derive(Debug)]
pub enum Outbound {
    /// An event or an answer to send (boxed, so that a queue's items stay two words
    /// however large a frame is).
    Frame(Box<ServerFrame>),
    /// Catch up after a `resume` (boxed, like a frame).
    Resume(Box<Vec<ResumePoint>>),
    /// The client's first frame was not a `resume`: live messages flow at once.
    NoResume,
}

// Two words: a queue's storage is a multiple of this.
const _: () = assert!(std::mem::size_of::<Outbound>() <= 2 * std::mem::size_of::<usize>());

/// The sending side of a connection's outbound queue (cheap to clone).
pub type OutboundSender = flume::Sender<Outbound>;
/// The writer's side of a connection's outbound queue.
pub type OutboundQueue = flume::Receiver<Outbound>;

/// A connection's outbound queue, holding at most `capacity` items.
///
/// Every connection keeps one for its whole life, so its cost while empty counts: this
/// queue allocates its storage only when items arrive (about 200 bytes while empty and
/// waited on), where tokio's bounded channel allocates a 32-item block and a cache-padded
/// channel up front (about 900 bytes per connection, idle or not).
pub fn queue(capacity: usize) -> (OutboundSender, OutboundQueue) {
    flume::bounded(capacity)
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

/// Hands `item` to a connection's writer, waiting for room in its queue at most
/// `write_timeout`: the queue stays full only while the client does not read, so after
/// that the connection is closed as a slow consumer (4008). False when the connection is
/// closing.
pub async fn enqueue(
    outbound: &OutboundSender,
    closer: &Closer,
    write_timeout: std::time::Duration,
    item: Outbound,
) -> bool {
    tokio::select! {
        biased;
        () = closer.closed() => false,
        sent = outbound.send_async(item) => sent.is_ok(),
        () = tokio::time::sleep(write_timeout) => {
            metrics::counter!("ws_slow_consumer_closes_total").increment(1);
            closer.close(wire::protocol::close::SLOW_CONSUMER, NOT_READING);
            false
        }
    }
}
