//! What a connection's writer is handed ([`Outbound`]), how a connection is asked to close
//! ([`Closer`]) and the sends awaiting their `ack`: shared by the session's reader and
//! writer, presence and the connection table, and importing none of them.

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
    /// An event or an answer to send (boxed: a queue holds a block of items from the
    /// start, so an item is kept small for idle connections).
    Frame(Box<ServerFrame>),
    /// Catch up after a `resume` (boxed, so that an item takes two words: a
    /// queue allocates a block of 32 items at once, idle or not).
    Resume(Box<Vec<ResumePoint>>),
    /// The client's first frame was not a `resume`: live messages flow at once.
    NoResume,
}

// Two words: every connection's queue holds a block of these from the start.
const _: () = assert!(std::mem::size_of::<Outbound>() <= 2 * std::mem::size_of::<usize>());

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
    outbound: &tokio::sync::mpsc::Sender<Outbound>,
    closer: &Closer,
    write_timeout: std::time::Duration,
    item: Outbound,
) -> bool {
    tokio::select! {
        biased;
        () = closer.closed() => false,
        sent = outbound.send(item) => sent.is_ok(),
        () = tokio::time::sleep(write_timeout) => {
            metrics::counter!("ws_slow_consumer_closes_total").increment(1);
            closer.close(wire::protocol::close::SLOW_CONSUMER, NOT_READING);
            false
        }
    }
}
