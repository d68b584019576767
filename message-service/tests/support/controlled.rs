//! A store wrapper for the committer tests: it records the size of every batch, can hold
//! batches at a gate until the test lets them through, and can fail the next batch
//! without storing any of it, as a commit that failed would.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use message_service::store::{
    AppendOutcome, ChatCursor, ChatDigest, MessageStore, NewChat, NewMessage, StoreError,
    StoredChat, WatermarkMark, Written,
};
use time::OffsetDateTime;
use tokio::sync::Semaphore;
use uuid::Uuid;
use wire::api::message::{BlockedUser, Chat, Message, Report, ReportResolution, Watermark};

/// The wrapper; everything but `append_batch` goes straight to the inner store.
#[derive(Debug)]
pub struct Controlled {
    inner: Arc<dyn MessageStore>,
    /// When set, each batch takes a permit of `gate` before it reaches the inner store.
    held: AtomicBool,
    gate: Semaphore,
    /// The size of every batch, in arrival order (also of held ones).
    sizes: Mutex<Vec<usize>>,
    fail_next: AtomicBool,
}

impl Controlled {
    /// A wrapper around `inner` that lets every batch through.
    pub fn new(inner: Arc<dyn MessageStore>) -> Arc<Self> {
        Arc::new(Self {
            inner,
            held: AtomicBool::new(false),
            gate: Semaphore::new(0),
            sizes: Mutex::new(Vec::new()),
            fail_next: AtomicBool::new(false),
        })
    }

    /// From now on, batches wait at the gate.
    pub fn hold(&self) {
        self.held.store(true, Ordering::SeqCst);
    }

    /// From now on, batches pass without waiting (also those waiting now).
    pub fn open(&self) {
        self.held.store(false, Ordering::SeqCst);
        self.gate.add_permits(Semaphore::MAX_PERMITS / 2);
    }

    /// Lets `batches` waiting (or future) batches through the gate.
    pub fn let_through(&self, batches: usize) {
        self.gate.add_permits(batches);
    }

    /// The next batch fails as a failed commit: an error, and nothing of it stored.
    pub fn fail_next_batch(&self) {
        self.fail_next.store(true, Ordering::SeqCst);
    }

    /// The sizes of the batches so far.
    pub fn sizes(&self) -> Vec<usize> {
        self.sizes.lock().expect("sizes").clone()
    }
}

#[async_trait]
impl MessageStore for Controlled {
    async fn append_batch(&self, batch: &[NewMessage]) -> Result<Vec<AppendOutcome>, StoreError> {
        self.sizes.lock().expect("sizes").push(batch.len());
        if self.held.load(Ordering::SeqCst) {
            self.gate
                .acquire()
                .await
                .expect("the gate is never closed")
                .forget();
        }
        if self.fail_next.swap(false, Ordering::SeqCst) {
            return Err(StoreError::Unavailable(
                "injected commit failure".to_owned(),
            ));
        }
        self.inner.append_batch(batch).await
    }

    async fn append(&self, message: &NewMessage) -> Result<Written<Message>, StoreError> {
        self.inner.append(message).await
    }

    async fn create_chat(&self, chat: &NewChat) -> Result<Written<StoredChat>, StoreError> {
        self.inner.create_chat(chat).await
    }

    async fn chat(&self, id: Uuid) -> Result<Option<StoredChat>, StoreError> {
        self.inner.chat(id).await
    }

    async fn chats_of(
        &self,
        user_id: Uuid,
        active_only: bool,
        limit: u32,
        before: Option<ChatCursor>,
    ) -> Result<Vec<StoredChat>, StoreError> {
        self.inner
            .chats_of(user_id, active_only, limit, before)
            .await
    }

    async fn end_chat(
        &self,
        chat_id: Uuid,
        user_id: Uuid,
        now: OffsetDateTime,
    ) -> Result<Written<Chat>, StoreError> {
        self.inner.end_chat(chat_id, user_id, now).await
    }

    async fn messages_after(
        &self,
        chat_id: Uuid,
        after: u64,
        limit: u32,
    ) -> Result<Vec<Message>, StoreError> {
        self.inner.messages_after(chat_id, after, limit).await
    }

    async fn messages_before(
        &self,
        chat_id: Uuid,
        before: u64,
        limit: u32,
    ) -> Result<Vec<Message>, StoreError> {
        self.inner.messages_before(chat_id, before, limit).await
    }

    async fn messages_by_id(
        &self,
        chat_id: Uuid,
        ids: &[Uuid],
    ) -> Result<Vec<Message>, StoreError> {
        self.inner.messages_by_id(chat_id, ids).await
    }

    async fn count_from_others_after(
        &self,
        chat_id: Uuid,
        user_id: Uuid,
        after: u64,
    ) -> Result<u64, StoreError> {
        self.inner
            .count_from_others_after(chat_id, user_id, after)
            .await
    }

    async fn advance_watermark(
        &self,
        chat_id: Uuid,
        user_id: Uuid,
        delivered: Option<u64>,
        read: Option<u64>,
        now: OffsetDateTime,
    ) -> Result<Watermark, StoreError> {
        self.inner
            .advance_watermark(chat_id, user_id, delivered, read, now)
            .await
    }

    async fn watermarks(&self, chat_id: Uuid) -> Result<Vec<Watermark>, StoreError> {
        self.inner.watermarks(chat_id).await
    }

    async fn marks(
        &self,
        chat_id: Uuid,
        from: u64,
        to: u64,
    ) -> Result<Vec<WatermarkMark>, StoreError> {
        self.inner.marks(chat_id, from, to).await
    }

    async fn block(
        &self,
        blocker: Uuid,
        blocked: Uuid,
        now: OffsetDateTime,
    ) -> Result<Written<BlockedUser>, StoreError> {
        self.inner.block(blocker, blocked, now).await
    }

    async fn digests(
        &self,
        chats: &[StoredChat],
        viewer: Uuid,
    ) -> Result<Vec<ChatDigest>, StoreError> {
        self.inner.digests(chats, viewer).await
    }

    async fn unblock(&self, blocker: Uuid, blocked: Uuid) -> Result<bool, StoreError> {
        self.inner.unblock(blocker, blocked).await
    }

    async fn blocks_of(&self, user_id: Uuid) -> Result<Vec<BlockedUser>, StoreError> {
        self.inner.blocks_of(user_id).await
    }

    async fn blockers_of(&self, user_id: Uuid) -> Result<Vec<Uuid>, StoreError> {
        self.inner.blockers_of(user_id).await
    }

    async fn is_blocked(&self, a: Uuid, b: Uuid) -> Result<bool, StoreError> {
        self.inner.is_blocked(a, b).await
    }

    async fn add_report(&self, report: &Report) -> Result<(), StoreError> {
        self.inner.add_report(report).await
    }

    async fn reporters_of(
        &self,
        user_id: Uuid,
        since: OffsetDateTime,
    ) -> Result<Vec<Uuid>, StoreError> {
        self.inner.reporters_of(user_id, since).await
    }

    async fn report_times(
        &self,
        reporter: Uuid,
        since: OffsetDateTime,
    ) -> Result<Vec<OffsetDateTime>, StoreError> {
        self.inner.report_times(reporter, since).await
    }

    async fn reports(
        &self,
        open_only: bool,
        limit: u32,
    ) -> Result<Vec<(Report, Option<ReportResolution>)>, StoreError> {
        self.inner.reports(open_only, limit).await
    }

    async fn resolve_report(
        &self,
        id: Uuid,
        resolution: &ReportResolution,
    ) -> Result<Option<(Report, ReportResolution)>, StoreError> {
        self.inner.resolve_report(id, resolution).await
    }

    async fn ping(&self) -> Result<(), StoreError> {
        self.inner.ping().await
    }
}
