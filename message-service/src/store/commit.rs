//! Group commit: concurrent appends share one transaction, so that one commit (one fsync
//! on SQLite, one journaled write on MongoDB) persists many messages.
//!
//! A [`GroupCommitter`] is one task fed by a queue. It takes the first request, then every
//! request already queued (without waiting) up to the batch cap, commits them with one
//! [`MessageStore::append_batch`], answers each sender and loops. An idle committer
//! therefore commits a lone append at once, with no added wait, and under load the
//! requests that arrive during one commit form the next batch: batches grow with the load
//! by themselves, with no timer.
//!
//! There is deliberately no linger (waiting a little for more requests before
//! committing): a wait only pays when commits are cheaper than the gap between arrivals,
//! which is exactly when there is nothing to batch, and otherwise the commit in flight
//! already gathers the next batch.
//!
//! Nobody is answered before their batch committed; when it fails, every sender of the
//! batch gets the error and nothing of the batch is stored (the [`MessageStore`]
//! contract), so a retry with the same client message ids stores each message once.

use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use futures::FutureExt;
use tokio::sync::{mpsc, oneshot};
use wire::api::message::Message;

use super::{AppendOutcome, MessageStore, NewMessage, StoreError, Written, sole_outcome};

/// Default of the batch cap (`MESSAGE_APPEND_BATCH_MAX`).
pub const DEFAULT_MAX_BATCH: usize = 256;

/// Requests (single appends or whole batches) that may wait for the committer, per
/// message of the batch cap, before senders wait to queue.
const QUEUE_PER_BATCH_ITEM: usize = 4;

/// Appends queued together: they land in one batch and are answered together.
struct Request {
    messages: Vec<NewMessage>,
    reply: oneshot::Sender<Result<Vec<AppendOutcome>, StoreError>>,
}

/// What the committer did so far.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CommitStats {
    /// Batches committed (or failed).
    pub batches: u64,
    /// Messages in those batches.
    pub messages: u64,
    /// The most messages one batch held.
    pub largest_batch: u64,
    /// Batches that failed to commit.
    pub failed: u64,
}

#[derive(Debug, Default)]
struct Counters {
    batches: AtomicU64,
    messages: AtomicU64,
    largest_batch: AtomicU64,
    failed: AtomicU64,
}

/// The single committer of this process's appends: a handle to its queue. Cheap to
/// clone; the committer stops once every handle is dropped and the queue is empty.
#[derive(Clone)]
pub struct GroupCommitter {
    queue: mpsc::Sender<Request>,
    counters: Arc<Counters>,
    max_batch: usize,
}

impl std::fmt::Debug for GroupCommitter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GroupCommitter")
            .field("max_batch", &self.max_batch)
            .field("stats", &self.stats())
            .finish()
    }
}

impl GroupCommitter {
    /// Starts the committer on `store`, with at most `max_batch` messages per batch (at
    /// least 1; a batch request larger than that is committed alone, whole). Must be
    /// called within a Tokio runtime.
    pub fn spawn(store: Arc<dyn MessageStore>, max_batch: usize) -> Self {
        let max_batch = max_batch.max(1);
        let (queue, requests) = mpsc::channel(max_batch.saturating_mul(QUEUE_PER_BATCH_ITEM));
        let counters = Arc::new(Counters::default());
        tokio::spawn(run(store, requests, max_batch, counters.clone()));
        Self {
            queue,
            counters,
            max_batch,
        }
    }

    /// Appends one message, as [`MessageStore::append`] does, answered once the batch it
    /// joined has committed.
    pub async fn append(&self, message: NewMessage) -> Result<Written<Message>, StoreError> {
        sole_outcome(self.append_all(vec![message]).await?)
    }

    /// Appends `messages` in order, all in the same batch (so all stored or, when the
    /// outer result is an error, none), as [`MessageStore::append_batch`] does.
    pub async fn append_all(
        &self,
        messages: Vec<NewMessage>,
    ) -> Result<Vec<AppendOutcome>, StoreError> {
        if messages.is_empty() {
            return Ok(Vec::new());
        }
        let (reply, answer) = oneshot::channel();
        self.queue
            .send(Request { messages, reply })
            .await
            .map_err(|_| stopped())?;
        answer.await.map_err(|_| stopped())?
    }

    /// Counts of what the committer did so far.
    pub fn stats(&self) -> CommitStats {
        CommitStats {
            batches: self.counters.batches.load(Ordering::Relaxed),
            messages: self.counters.messages.load(Ordering::Relaxed),
            largest_batch: self.counters.largest_batch.load(Ordering::Relaxed),
            failed: self.counters.failed.load(Ordering::Relaxed),
        }
    }

    /// Requests waiting for the committer (not counting the batch being committed).
    pub fn queued(&self) -> usize {
        self.queue.max_capacity() - self.queue.capacity()
    }

    /// The batch cap.
    pub fn max_batch(&self) -> usize {
        self.max_batch
    }
}

fn stopped() -> StoreError {
    StoreError::Unavailable("the append committer has stopped".to_owned())
}

/// The committer: one batch at a time, until every sender handle is gone.
async fn run(
    store: Arc<dyn MessageStore>,
    mut requests: mpsc::Receiver<Request>,
    max_batch: usize,
    counters: Arc<Counters>,
) {
    // A request that did not fit the last batch opens the next one.
    let mut carried: Option<Request> = None;
    loop {
        let first = match carried.take() {
            Some(request) => request,
            None => match requests.recv().await {
                Some(request) => request,
                None => return,
            },
        };
        let mut size = first.messages.len();
        let mut batch = vec![first];
        while size < max_batch {
            match requests.try_recv() {
                Ok(request) if size + request.messages.len() > max_batch => {
                    carried = Some(request);
                    break;
                }
                Ok(request) => {
                    size += request.messages.len();
                    batch.push(request);
                }
                Err(_) => break,
            }
        }
        commit(store.as_ref(), batch, &counters).await;
    }
}

/// Commits the requests of one batch and answers each of them.
async fn commit(store: &dyn MessageStore, requests: Vec<Request>, counters: &Counters) {
    let mut messages = Vec::new();
    let mut replies = Vec::with_capacity(requests.len());
    for request in requests {
        replies.push((request.reply, request.messages.len()));
        messages.extend(request.messages);
    }
    let started = Instant::now();
    // A panic in the store fails this batch only, not every later append.
    let result = AssertUnwindSafe(store.append_batch(&messages))
        .catch_unwind()
        .await
        .unwrap_or_else(|_| Err(StoreError::Backend("committing a batch panicked".into())))
        .and_then(|outcomes| {
            if outcomes.len() == messages.len() {
                Ok(outcomes)
            } else {
                Err(StoreError::Backend(format!(
                    "a batch of {} got {} outcomes",
                    messages.len(),
                    outcomes.len()
                )))
            }
        });
    metrics::histogram!("message_append_commit_seconds").record(started.elapsed().as_secs_f64());
    metrics::histogram!("message_append_batch_size").record(messages.len() as f64);
    let size = messages.len() as u64;
    counters.batches.fetch_add(1, Ordering::Relaxed);
    counters.messages.fetch_add(size, Ordering::Relaxed);
    counters.largest_batch.fetch_max(size, Ordering::Relaxed);
    match result {
        Ok(outcomes) => {
            let mut outcomes = outcomes.into_iter();
            for (reply, len) in replies {
                // A sender that went away (its request was cancelled) needs no answer.
                let _ = reply.send(Ok(outcomes.by_ref().take(len).collect()));
            }
        }
        Err(err) => {
            counters.failed.fetch_add(1, Ordering::Relaxed);
            metrics::counter!("message_append_batch_failures_total").increment(1);
            tracing::warn!(error = %err, messages = size, "an append batch failed to commit");
            for (reply, _) in replies {
                let _ = reply.send(Err(err.clone()));
            }
        }
    }
}
