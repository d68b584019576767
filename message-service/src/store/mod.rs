//! Storage behind one trait, [`MessageStore`]: chats with their participants and
//! watermarks, messages with per-chat sequence numbers, blocks and reports.
//!
//! - [`sqlite`] — the embedded default, one SQLite file.
//! - [`mongo`] — MongoDB.
//! - [`memory`] — this process's memory: the one-process form's `--in-memory` mode.
//! - [`commit`] — group commit: concurrent appends share one transaction.
//! - `conformance` (tests, or the `conformance` feature) — the one test suite every implementation must pass.
//!
//! Every implementation keeps these promises, which the conformance suite checks:
//!
//! - Sequence numbers of a chat start at 1 and have no gaps, also under concurrent appends.
//! - An append is idempotent on (chat, sender, client message id): a resend returns the
//!   original message and never creates a second one, also when sent concurrently, and
//!   also within one batch.
//! - A batch of appends commits as a whole or not at all; a refusal of one item (chat not
//!   found, chat ended) refuses that item only.
//! - Watermarks never move backwards, never pass the chat's last seq, and read ≤ delivered.
//! - Creating a chat is idempotent per match id and refused when a participant blocked
//!   another.
//! - Ending a chat is idempotent: the first ender wins.

pub mod commit;
#[cfg(any(test, feature = "conformance"))]
pub mod conformance;
pub mod memory;
pub mod mongo;
pub mod sqlite;

use std::time::Duration;

use async_trait::async_trait;
use time::OffsetDateTime;
use uuid::Uuid;
use wire::api::auth::PublicProfile;
use wire::api::message::{
    BlockedUser, Chat, Message, Report, ReportOutcome, ReportResolution, Watermark,
};

/// How long a request waits for the backend before answering 503: a backend that is down
/// must fail requests fast rather than pile them up.
pub const BACKEND_TIMEOUT: Duration = Duration::from_secs(2);

/// The current time at the precision every backend keeps (milliseconds), so that what is
/// written reads back equal.
pub fn now() -> OffsetDateTime {
    let t = OffsetDateTime::now_utc();
    t.replace_millisecond(t.millisecond())
        .expect("the current millisecond is valid")
}

/// Milliseconds since the Unix epoch, the form both backends store times in.
pub(crate) fn to_millis(t: OffsetDateTime) -> i64 {
    // Milliseconds of any representable date fit an i64 comfortably.
    (t.unix_timestamp_nanos() / 1_000_000) as i64
}

/// The time `ms` milliseconds after the Unix epoch.
pub(crate) fn from_millis(ms: i64) -> Result<OffsetDateTime, StoreError> {
    OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000)
        .map_err(|e| StoreError::Backend(format!("invalid stored time {ms}: {e}")))
}

/// A stored count or sequence number as `u64`.
pub(crate) fn to_u64(value: i64, what: &str) -> Result<u64, StoreError> {
    u64::try_from(value).map_err(|_| StoreError::Backend(format!("negative {what}: {value}")))
}

/// A sequence number as the backends store it (saturating: no chat gets near `i64::MAX`).
pub(crate) fn to_i64(value: u64) -> i64 {
    i64::try_from(value).unwrap_or(i64::MAX)
}

/// Why a store operation failed.
#[derive(Debug, Clone, thiserror::Error)]
pub enum StoreError {
    /// No such chat, or the user is not one of its participants (the two are not told
    /// apart, so that existence does not leak).
    #[error("no such chat")]
    ChatNotFound,
    /// The chat has ended; nothing more can be appended.
    #[error("the chat has ended")]
    ChatEnded,
    /// A participant blocked another, so the chat cannot be created.
    #[error("a participant blocked another")]
    Blocked,
    /// The backend cannot be reached or did not answer in time.
    #[error("the storage backend is unavailable: {0}")]
    Unavailable(String),
    /// Any other backend failure (a bug or corrupt data; logged, answered as 500).
    #[error("storage backend error: {0}")]
    Backend(String),
}

/// A chat to create.
#[derive(Debug, Clone)]
pub struct NewChat {
    /// Chat id, chosen by the caller.
    pub id: Uuid,
    /// The match that made it (idempotency key).
    pub match_id: Uuid,
    /// The participants' public profiles at match time, in order; ids are distinct.
    pub participants: Vec<PublicProfile>,
    /// Creation time.
    pub created_at: OffsetDateTime,
}

/// A chat with its participants' profiles.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredChat {
    /// The chat.
    pub chat: Chat,
    /// The participants' profiles, in the order of `chat.participants`.
    pub profiles: Vec<PublicProfile>,
}

impl StoredChat {
    /// Whether `user_id` takes part in the chat.
    pub fn has_participant(&self, user_id: Uuid) -> bool {
        self.chat.participants.contains(&user_id)
    }
}

/// A message to append; the store assigns its sequence number.
#[derive(Debug, Clone)]
pub struct NewMessage {
    /// Id the message gets if it is new.
    pub id: Uuid,
    /// The chat.
    pub chat_id: Uuid,
    /// The sender, who must be a participant.
    pub sender_id: Uuid,
    /// The sender's client message id (idempotency key within chat and sender).
    pub client_msg_id: String,
    /// The text, already validated.
    pub text: String,
    /// Time of storing.
    pub created_at: OffsetDateTime,
}

/// The result of an idempotent write.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Written<T> {
    /// What is stored: the new value or the one that existed already.
    pub value: T,
    /// Whether this call created it.
    pub created: bool,
}

/// What became of one item of [`MessageStore::append_batch`]: the stored message (new, or
/// the original of a resend), or why the item was refused.
pub type AppendOutcome = Result<Written<Message>, StoreError>;

/// The outcome of a batch of one append: its one item's.
pub(crate) fn sole_outcome(outcomes: Vec<AppendOutcome>) -> AppendOutcome {
    outcomes
        .into_iter()
        .next()
        .unwrap_or_else(|| Err(StoreError::Backend("a batch of one has no outcome".into())))
}

/// Which watermark moved.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MarkKind {
    /// The delivered watermark.
    Delivered,
    /// The read watermark.
    Read,
}

impl MarkKind {
    /// The stored form.
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            MarkKind::Delivered => "delivered",
            MarkKind::Read => "read",
        }
    }

    pub(crate) fn parse(raw: &str) -> Result<Self, StoreError> {
        match raw {
            "delivered" => Ok(MarkKind::Delivered),
            "read" => Ok(MarkKind::Read),
            other => Err(StoreError::Backend(format!("invalid mark kind {other:?}"))),
        }
    }
}

/// One forward move of a watermark: `user_id`'s `kind` watermark reached `seq` at `at`.
/// The moves tell when each message became delivered or read: the first move to a seq at
/// or above the message's.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WatermarkMark {
    /// The participant.
    pub user_id: Uuid,
    /// Which watermark.
    pub kind: MarkKind,
    /// The value it moved to.
    pub seq: u64,
    /// When.
    pub at: OffsetDateTime,
}

/// What a chat list shows of one chat to one participant, read for a whole page at once.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ChatDigest {
    /// The chat's last message (seq `last_seq`), if it has any.
    pub last_message: Option<Message>,
    /// Every participant's watermarks, in participant order.
    pub watermarks: Vec<Watermark>,
    /// The watermark moves at the last message's seq (when it became delivered and read).
    pub last_marks: Vec<WatermarkMark>,
    /// Messages from others after the viewer's read watermark.
    pub unread_count: u64,
}

/// A position in a user's chat list (newest first): the chats after it are older, or as
/// old with a smaller id. On the wire it is `<created_at ms>.<chat id>`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChatCursor {
    /// The creation time of the last chat of the previous page.
    pub created_at: OffsetDateTime,
    /// Its id.
    pub id: Uuid,
}

impl ChatCursor {
    /// The cursor just after `chat`.
    pub fn after(chat: &Chat) -> Self {
        Self {
            created_at: chat.created_at,
            id: chat.id,
        }
    }

    /// The wire form.
    pub fn encode(&self) -> String {
        format!(
            "{}.{}",
            self.created_at.unix_timestamp_nanos() / 1_000_000,
            self.id.simple()
        )
    }

    /// Reads the wire form; `None` when it is not one.
    pub fn decode(raw: &str) -> Option<Self> {
        let (ms, id) = raw.split_once('.')?;
        let ms: i64 = ms.parse().ok()?;
        let created_at =
            OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000).ok()?;
        Some(Self {
            created_at,
            id: Uuid::parse_str(id).ok()?,
        })
    }
}

/// The stored name of a report outcome.
pub(crate) fn outcome_name(outcome: ReportOutcome) -> &'static str {
    match outcome {
        ReportOutcome::Dismissed => "dismissed",
        ReportOutcome::Actioned => "actioned",
    }
}

/// The outcome with this stored name.
pub(crate) fn parse_outcome(name: &str) -> Result<ReportOutcome, StoreError> {
    match name {
        "dismissed" => Ok(ReportOutcome::Dismissed),
        "actioned" => Ok(ReportOutcome::Actioned),
        other => Err(StoreError::Backend(format!(
            "unknown report outcome {other:?}"
        ))),
    }
}

/// Chats, messages, watermarks, blocks and reports.
#[async_trait]
pub trait MessageStore: Send + Sync + std::fmt::Debug + 'static {
    /// Creates a chat with a zero watermark pair per participant. Idempotent per match id:
    /// a second call returns the first chat with `created: false`.
    /// [`StoreError::Blocked`] when a participant blocked another.
    async fn create_chat(&self, chat: &NewChat) -> Result<Written<StoredChat>, StoreError>;

    /// The chat with this id.
    async fn chat(&self, id: Uuid) -> Result<Option<StoredChat>, StoreError>;

    /// Chats `user_id` takes part in, newest first (by creation, then id), at most
    /// `limit`, only those after `before` in that order when given; only unended ones
    /// when `active_only`.
    async fn chats_of(
        &self,
        user_id: Uuid,
        active_only: bool,
        limit: u32,
        before: Option<ChatCursor>,
    ) -> Result<Vec<StoredChat>, StoreError>;

    /// Ends the chat on behalf of participant `user_id`. Idempotent: the first ender wins
    /// and `created` tells whether this call ended it. [`StoreError::ChatNotFound`] for a
    /// non-participant.
    async fn end_chat(
        &self,
        chat_id: Uuid,
        user_id: Uuid,
        now: OffsetDateTime,
    ) -> Result<Written<Chat>, StoreError>;

    /// Appends a message with the chat's next sequence number, or returns the existing
    /// message with the same (chat, sender, client message id) with `created: false`.
    /// [`StoreError::ChatNotFound`] when the sender is not a participant,
    /// [`StoreError::ChatEnded`] when the chat has ended (a resend of a stored message
    /// still returns it).
    async fn append(&self, message: &NewMessage) -> Result<Written<Message>, StoreError>;

    /// Appends every message of `batch` in one transaction, in order, each as
    /// [`append`](Self::append) would (items of one chat get consecutive seqs in batch
    /// order; a later item with the client message id of an earlier one is its resend).
    ///
    /// The outer error means the batch did not commit: nothing of it is stored. Otherwise
    /// there is one outcome per item, in batch order, and a refused item
    /// ([`StoreError::ChatNotFound`], [`StoreError::ChatEnded`]) refuses that item only.
    async fn append_batch(&self, batch: &[NewMessage]) -> Result<Vec<AppendOutcome>, StoreError>;

    /// Messages with seq above `after`, ascending, at most `limit`.
    async fn messages_after(
        &self,
        chat_id: Uuid,
        after: u64,
        limit: u32,
    ) -> Result<Vec<Message>, StoreError>;

    /// The newest `limit` messages with seq below `before`, ascending.
    async fn messages_before(
        &self,
        chat_id: Uuid,
        before: u64,
        limit: u32,
    ) -> Result<Vec<Message>, StoreError>;

    /// The messages of the chat among `ids` (others are left out).
    async fn messages_by_id(&self, chat_id: Uuid, ids: &[Uuid])
    -> Result<Vec<Message>, StoreError>;

    /// How many messages not sent by `user_id` have seq above `after`.
    async fn count_from_others_after(
        &self,
        chat_id: Uuid,
        user_id: Uuid,
        after: u64,
    ) -> Result<u64, StoreError>;

    /// Advances participant `user_id`'s watermarks: each value is clamped to the chat's
    /// last seq, a read seq also advances delivered, and nothing moves backwards. Returns
    /// the watermarks after the update. [`StoreError::ChatNotFound`] for a non-participant.
    async fn advance_watermark(
        &self,
        chat_id: Uuid,
        user_id: Uuid,
        delivered: Option<u64>,
        read: Option<u64>,
        now: OffsetDateTime,
    ) -> Result<Watermark, StoreError>;

    /// The watermarks of every participant, in participant order.
    async fn watermarks(&self, chat_id: Uuid) -> Result<Vec<Watermark>, StoreError>;

    /// Watermark moves of the chat with seq in `from..=to`, plus for each participant and
    /// kind the first move above `to`: enough to tell when each message in `from..=to`
    /// became delivered and read.
    async fn marks(
        &self,
        chat_id: Uuid,
        from: u64,
        to: u64,
    ) -> Result<Vec<WatermarkMark>, StoreError>;

    /// `blocker` blocks `blocked`. Idempotent: blocking again returns the first block with
    /// `created: false`.
    async fn block(
        &self,
        blocker: Uuid,
        blocked: Uuid,
        now: OffsetDateTime,
    ) -> Result<Written<BlockedUser>, StoreError>;

    /// The digests of `chats` (as just read, their `last_seq` included) for participant
    /// `viewer`, in the same order, in a fixed number of queries whatever the count.
    async fn digests(
        &self,
        chats: &[StoredChat],
        viewer: Uuid,
    ) -> Result<Vec<ChatDigest>, StoreError>;

    /// Lifts a block; `false` when there was none.
    async fn unblock(&self, blocker: Uuid, blocked: Uuid) -> Result<bool, StoreError>;

    /// The users `user_id` blocked, newest first.
    async fn blocks_of(&self, user_id: Uuid) -> Result<Vec<BlockedUser>, StoreError>;

    /// The users who blocked `user_id`.
    async fn blockers_of(&self, user_id: Uuid) -> Result<Vec<Uuid>, StoreError>;

    /// Whether either user blocked the other.
    async fn is_blocked(&self, a: Uuid, b: Uuid) -> Result<bool, StoreError>;

    /// Stores a report.
    async fn add_report(&self, report: &Report) -> Result<(), StoreError>;

    /// The distinct users who reported `user_id` at or after `since`, in reports not
    /// resolved as dismissed (the complaints the matcher's reputation counts).
    async fn reporters_of(
        &self,
        user_id: Uuid,
        since: OffsetDateTime,
    ) -> Result<Vec<Uuid>, StoreError>;

    /// Times of the reports `reporter` made at or after `since`, oldest first.
    async fn report_times(
        &self,
        reporter: Uuid,
        since: OffsetDateTime,
    ) -> Result<Vec<OffsetDateTime>, StoreError>;

    /// Reports for review, oldest first, at most `limit`; only unresolved ones when
    /// `open_only`. Each with its resolution, if any.
    async fn reports(
        &self,
        open_only: bool,
        limit: u32,
    ) -> Result<Vec<(Report, Option<ReportResolution>)>, StoreError>;

    /// Records the resolution of report `id` if it has none yet; the report with its
    /// resolution (the earlier one if it had one), or `None` for an unknown id.
    async fn resolve_report(
        &self,
        id: Uuid,
        resolution: &ReportResolution,
    ) -> Result<Option<(Report, ReportResolution)>, StoreError>;
    /// Checks that the backend answers (readiness).
    async fn ping(&self) -> Result<(), StoreError>;
}

/// The new delivered and read values of a watermark update, before the no-backwards rule:
/// each clamped to `last_seq`, delivered raised to read.
pub(crate) fn watermark_targets(
    delivered: Option<u64>,
    read: Option<u64>,
    last_seq: u64,
) -> (u64, u64) {
    let read = read.unwrap_or(0).min(last_seq);
    let delivered = delivered.unwrap_or(0).min(last_seq).max(read);
    (delivered, read)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn watermark_targets_are_clamped_and_read_implies_delivered() {
        assert_eq!(watermark_targets(Some(10), None, 4), (4, 0));
        assert_eq!(watermark_targets(None, Some(3), 4), (3, 3));
        assert_eq!(watermark_targets(Some(1), Some(3), 9), (3, 3));
        assert_eq!(watermark_targets(None, None, 9), (0, 0));
    }

    #[test]
    fn times_survive_the_millisecond_round_trip() {
        let t = now();
        assert_eq!(from_millis(to_millis(t)).unwrap(), t);
    }
}
