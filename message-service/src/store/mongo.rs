//! The MongoDB backend.
//!
//! Collections: `chats` (one document per chat; its `last_seq` is the per-chat counter and
//! exists from chat creation on), `messages`, `watermarks` (one document per participant),
//! `watermark_marks`, `blocks`, `reports`. Ids are stored as hyphenated UUID strings and
//! times as milliseconds since the Unix epoch.
//!
//! An append runs in a transaction that bumps the chat's `last_seq` with `$inc` and inserts
//! the message with that seq: both commit or neither does, so a seq is never lost to a
//! failed insert and the sequence has no gaps. Appends to one chat from this process queue
//! on an in-process lock; those from other instances conflict on the chat document, and
//! the loser's transaction is retried (with backoff) after checking whether its client
//! message id was stored meanwhile. A batch of appends (group commit) is one transaction:
//! it reads the batch's resends and chats, moves each chat's counter once (only from the
//! value it read) and inserts every new message in one bulk write; a chat that moved
//! meanwhile makes the batch start over on fresh reads. The unique index on (chat,
//! sender, client message id) backs the idempotency. A watermark update moves the delivered and read watermarks and
//! records each move in one transaction too, so a message's delivered / read time never
//! changes once visible. Every write is acknowledged by a majority with journaling
//! (`w: majority, j: true`) before success is reported.

use service_kit::telemetry::{Backend, count_backend_error};
use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use futures::TryStreamExt;
use mongodb::bson::{Document, doc};
use mongodb::error::{
    Error as MongoError, ErrorKind, TRANSIENT_TRANSACTION_ERROR, UNKNOWN_TRANSACTION_COMMIT_RESULT,
    WriteFailure,
};
use mongodb::options::{
    Acknowledgment, ClientOptions, DatabaseOptions, IndexOptions, ReturnDocument, WriteConcern,
};
use mongodb::{Client, ClientSession, Collection, Database, IndexModel};
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use uuid::Uuid;
use wire::api::auth::PublicProfile;
use wire::api::message::{
    BlockedUser, Chat, Message, Report, ReportOutcome, ReportResolution, Watermark,
};

use super::{
    AppendOutcome, BACKEND_TIMEOUT, ChatCursor, ChatDigest, MarkKind, MessageStore, NewChat,
    NewMessage, StoreError, StoredChat, WatermarkMark, Written, from_millis, outcome_name,
    parse_outcome, to_i64, to_millis, to_u64, watermark_targets,
};

/// How long an append keeps retrying transactions that conflict with other appends to
/// the same chat before giving up with 503.
const CONFLICT_RETRY_DEADLINE: Duration = Duration::from_secs(30);

/// MongoDB's duplicate-key error code.
const DUPLICATE_KEY: i32 = 11000;
/// MongoDB's write-conflict error code.
const WRITE_CONFLICT: i32 = 112;

impl From<MongoError> for StoreError {
    fn from(err: MongoError) -> Self {
        let unavailable = matches!(
            err.kind.as_ref(),
            ErrorKind::ServerSelection { .. }
                | ErrorKind::Io(_)
                | ErrorKind::ConnectionPoolCleared { .. }
                | ErrorKind::DnsResolve { .. }
                | ErrorKind::Shutdown
        ) || is_transient(&err);
        count_backend_error(Backend::MongoDb, unavailable);
        if unavailable {
            StoreError::Unavailable(err.to_string())
        } else {
            StoreError::Backend(err.to_string())
        }
    }
}

fn error_code(err: &MongoError) -> Option<i32> {
    match err.kind.as_ref() {
        ErrorKind::Command(c) => Some(c.code),
        ErrorKind::Write(WriteFailure::WriteError(w)) => Some(w.code),
        ErrorKind::InsertMany(e) => e
            .write_errors
            .as_ref()
            .and_then(|errors| errors.first())
            .map(|e| e.code),
        _ => None,
    }
}

fn is_duplicate_key(err: &MongoError) -> bool {
    error_code(err) == Some(DUPLICATE_KEY)
}

fn is_transient(err: &MongoError) -> bool {
    err.contains_label(TRANSIENT_TRANSACTION_ERROR) || error_code(err) == Some(WRITE_CONFLICT)
}

/// The write concern of every write: a majority, journaled.
fn durable() -> WriteConcern {
    WriteConcern::builder()
        .w(Acknowledgment::Majority)
        .journal(true)
        .build()
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct ChatDoc {
    #[serde(rename = "_id")]
    id: String,
    match_id: String,
    participants: Vec<String>,
    profiles: Vec<PublicProfile>,
    created_at: i64,
    ended_at: Option<i64>,
    ended_by: Option<String>,
    last_seq: i64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct MessageDoc {
    #[serde(rename = "_id")]
    id: String,
    chat_id: String,
    seq: i64,
    sender_id: String,
    client_msg_id: String,
    text: String,
    created_at: i64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct WatermarkDoc {
    /// `{chat}:{user}`.
    #[serde(rename = "_id")]
    id: String,
    chat_id: String,
    user_id: String,
    position: i32,
    delivered_seq: i64,
    delivered_at: Option<i64>,
    read_seq: i64,
    read_at: Option<i64>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct MarkDoc {
    /// `{chat}:{user}:{kind}:{seq}`, so a move is recorded once.
    #[serde(rename = "_id")]
    id: String,
    chat_id: String,
    user_id: String,
    kind: String,
    seq: i64,
    at: i64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct BlockDoc {
    /// `{blocker}:{blocked}`, so a block is stored once.
    #[serde(rename = "_id")]
    id: String,
    blocker_id: String,
    blocked_id: String,
    created_at: i64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct ReportDoc {
    #[serde(rename = "_id")]
    id: String,
    reporter_id: String,
    reported_id: String,
    chat_id: String,
    message_ids: Vec<String>,
    reason: String,
    created_at: i64,
    /// The operator's resolution; absent while the report is open.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    resolution: Option<ResolutionDoc>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct ResolutionDoc {
    outcome: String,
    note: String,
    by: String,
    at: i64,
}

impl ReportDoc {
    fn into_parts(self) -> Result<(Report, Option<ReportResolution>), StoreError> {
        let resolution = match self.resolution {
            Some(r) => Some(ReportResolution {
                outcome: parse_outcome(&r.outcome)?,
                note: r.note,
                by: parse_id(&r.by)?,
                at: from_millis(r.at)?,
            }),
            None => None,
        };
        let report = Report {
            id: parse_id(&self.id)?,
            reporter_id: parse_id(&self.reporter_id)?,
            reported_id: parse_id(&self.reported_id)?,
            chat_id: parse_id(&self.chat_id)?,
            message_ids: self
                .message_ids
                .iter()
                .map(|id| parse_id(id))
                .collect::<Result<_, _>>()?,
            reason: self.reason,
            created_at: from_millis(self.created_at)?,
        };
        Ok((report, resolution))
    }
}

fn parse_id(raw: &str) -> Result<Uuid, StoreError> {
    Uuid::parse_str(raw).map_err(|e| StoreError::Backend(format!("invalid stored id {raw:?}: {e}")))
}

fn opt_millis(ms: Option<i64>) -> Result<Option<OffsetDateTime>, StoreError> {
    ms.map(from_millis).transpose()
}

fn watermark_id(chat_id: Uuid, user_id: Uuid) -> String {
    format!("{chat_id}:{user_id}")
}

fn block_id(blocker: Uuid, blocked: Uuid) -> String {
    format!("{blocker}:{blocked}")
}

impl ChatDoc {
    fn into_stored(self) -> Result<StoredChat, StoreError> {
        Ok(StoredChat {
            chat: Chat {
                id: parse_id(&self.id)?,
                match_id: parse_id(&self.match_id)?,
                participants: self
                    .participants
                    .iter()
                    .map(|p| parse_id(p))
                    .collect::<Result<_, _>>()?,
                created_at: from_millis(self.created_at)?,
                ended_at: opt_millis(self.ended_at)?,
                ended_by: self.ended_by.as_deref().map(parse_id).transpose()?,
                last_seq: to_u64(self.last_seq, "last_seq")?,
            },
            profiles: self.profiles,
        })
    }

    fn has_participant(&self, user_id: Uuid) -> bool {
        let user_id = user_id.to_string();
        self.participants.contains(&user_id)
    }
}

impl MessageDoc {
    fn from_new(new: &NewMessage, seq: i64) -> Self {
        Self {
            id: new.id.to_string(),
            chat_id: new.chat_id.to_string(),
            seq,
            sender_id: new.sender_id.to_string(),
            client_msg_id: new.client_msg_id.clone(),
            text: new.text.clone(),
            created_at: to_millis(new.created_at),
        }
    }

    fn into_message(self) -> Result<Message, StoreError> {
        Ok(Message {
            id: parse_id(&self.id)?,
            chat_id: parse_id(&self.chat_id)?,
            seq: to_u64(self.seq, "seq")?,
            sender_id: parse_id(&self.sender_id)?,
            client_msg_id: self.client_msg_id,
            text: self.text,
            created_at: from_millis(self.created_at)?,
        })
    }
}

impl WatermarkDoc {
    fn into_watermark(self) -> Result<Watermark, StoreError> {
        Ok(Watermark {
            chat_id: parse_id(&self.chat_id)?,
            user_id: parse_id(&self.user_id)?,
            delivered_seq: to_u64(self.delivered_seq, "delivered_seq")?,
            read_seq: to_u64(self.read_seq, "read_seq")?,
            delivered_at: opt_millis(self.delivered_at)?,
            read_at: opt_millis(self.read_at)?,
        })
    }
}

impl MarkDoc {
    fn into_mark(self) -> Result<WatermarkMark, StoreError> {
        Ok(WatermarkMark {
            user_id: parse_id(&self.user_id)?,
            kind: MarkKind::parse(&self.kind)?,
            seq: to_u64(self.seq, "seq")?,
            at: from_millis(self.at)?,
        })
    }
}

/// Chats, messages, blocks and reports in one MongoDB database.
#[derive(Debug, Clone)]
pub struct MongoMessageStore {
    client: Client,
    db: Database,
    chats: Collection<ChatDoc>,
    messages: Collection<MessageDoc>,
    watermarks: Collection<WatermarkDoc>,
    marks: Collection<MarkDoc>,
    blocks: Collection<BlockDoc>,
    reports: Collection<ReportDoc>,
    append_locks: AppendLocks,
    /// Longest any one store operation may take, retries included.
    operation_timeout: Duration,
}

/// Default of [`MongoMessageStore::with_operation_timeout`].
pub const DEFAULT_OPERATION_TIMEOUT: Duration = Duration::from_secs(10);

/// How many locks appends to different chats are spread over.
const APPEND_LOCK_STRIPES: usize = 256;

/// Per-chat (striped) in-process locks that queue this process's appends to one chat.
///
/// Appends to one chat serialize on its counter anyway; without the lock, concurrent ones
/// from this process would only collide in the server as write conflicts, abort and retry,
/// which under heavy contention (a client resending one message many times at once) costs
/// far more than waiting in turn. Appends from other instances are still ordered by the
/// transactions and retries alone.
#[derive(Clone)]
struct AppendLocks(Arc<[tokio::sync::Mutex<()>]>);

impl AppendLocks {
    fn new() -> Self {
        Self(
            (0..APPEND_LOCK_STRIPES)
                .map(|_| tokio::sync::Mutex::new(()))
                .collect(),
        )
    }

    fn of(&self, chat_id: Uuid) -> &tokio::sync::Mutex<()> {
        // The low bits of a UUID (v4 or v7) are random.
        &self.0[(chat_id.as_u128() % self.0.len() as u128) as usize]
    }
}

impl std::fmt::Debug for AppendLocks {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "AppendLocks({} stripes)", self.0.len())
    }
}

impl MongoMessageStore {
    /// Closes the race between a chat's creation and a block of one participant by
    /// another: creation checked for blocks before inserting, and a block ends the pair's
    /// active chats after inserting itself, so a block landing between the two would miss
    /// the new chat. Checking again after the insert means that either this check sees
    /// the block, or the block came later and its own step ends the chat. A chat found
    /// blocked here is ended on the blocker's behalf and creation answers `Blocked`.
    async fn end_if_blocked_meanwhile(&self, new: &NewChat) -> Result<(), StoreError> {
        for (i, a) in new.participants.iter().enumerate() {
            for b in &new.participants[i + 1..] {
                let block = self
                    .blocks
                    .find_one(
                        doc! { "_id": { "$in": [block_id(a.id, b.id), block_id(b.id, a.id)] } },
                    )
                    .await?;
                if let Some(block) = block {
                    let blocker = Uuid::parse_str(&block.blocker_id)
                        .map_err(|e| StoreError::Backend(format!("stored blocker id: {e}")))?;
                    self.end_chat(new.id, blocker, super::now()).await?;
                    return Err(StoreError::Blocked);
                }
            }
        }
        Ok(())
    }

    /// A store on database `database` at `url` (e.g. `mongodb://127.0.0.1:27017`).
    ///
    /// Does not contact the server; call [`ensure_indexes`](Self::ensure_indexes) before
    /// use. Server selection and connecting time out after 2 s, so requests fail fast
    /// while the server is down and succeed again once it is back.
    pub async fn connect(url: &str, database: &str) -> Result<Self, StoreError> {
        let mut options = ClientOptions::parse(url)
            .await
            .map_err(|e| StoreError::Backend(format!("invalid MongoDB URL: {e}")))?;
        options.server_selection_timeout = Some(BACKEND_TIMEOUT);
        options.connect_timeout = Some(BACKEND_TIMEOUT);
        options
            .app_name
            .get_or_insert_with(|| crate::SERVICE.to_owned());
        let client = Client::with_options(options)
            .map_err(|e| StoreError::Backend(format!("MongoDB client: {e}")))?;
        let db = client.database_with_options(
            database,
            DatabaseOptions::builder().write_concern(durable()).build(),
        );
        Ok(Self {
            chats: db.collection("chats"),
            messages: db.collection("messages"),
            watermarks: db.collection("watermarks"),
            marks: db.collection("watermark_marks"),
            blocks: db.collection("blocks"),
            reports: db.collection("reports"),
            append_locks: AppendLocks::new(),
            operation_timeout: DEFAULT_OPERATION_TIMEOUT,
            client,
            db,
        })
    }

    /// Bounds every store operation (retries and transactions included) by `timeout`:
    /// past it the operation is abandoned and fails as unavailable, so a server that
    /// accepted a connection and then stopped answering cannot hold a request forever.
    /// An abandoned transaction is aborted; a write that committed meanwhile is found
    /// again by its idempotency key when the caller retries.
    pub fn with_operation_timeout(mut self, timeout: Duration) -> Self {
        self.operation_timeout = timeout;
        self
    }

    /// `op`, failed as unavailable when it takes longer than the operation timeout.
    async fn bounded<T>(
        &self,
        op: impl Future<Output = Result<T, StoreError>>,
    ) -> Result<T, StoreError> {
        tokio::time::timeout(self.operation_timeout, op)
            .await
            .unwrap_or_else(|_| {
                count_backend_error(Backend::MongoDb, true);
                Err(StoreError::Unavailable(format!(
                    "MongoDB did not answer within {:?}",
                    self.operation_timeout
                )))
            })
    }

    /// Creates the indexes (idempotent).
    pub async fn ensure_indexes(&self) -> Result<(), StoreError> {
        fn index(keys: Document, unique: bool) -> IndexModel {
            IndexModel::builder()
                .keys(keys)
                .options(IndexOptions::builder().unique(unique).build())
                .build()
        }
        self.messages
            .create_index(index(doc! { "chat_id": 1, "seq": 1 }, true))
            .await?;
        self.messages
            .create_index(index(
                doc! { "chat_id": 1, "sender_id": 1, "client_msg_id": 1 },
                true,
            ))
            .await?;
        self.chats
            .create_index(index(doc! { "match_id": 1 }, true))
            .await?;
        self.chats
            .create_index(index(doc! { "participants": 1, "created_at": -1 }, false))
            .await?;
        self.watermarks
            .create_index(index(doc! { "chat_id": 1, "position": 1 }, false))
            .await?;
        self.marks
            .create_index(index(doc! { "chat_id": 1, "seq": 1 }, false))
            .await?;
        self.blocks
            .create_index(index(doc! { "blocked_id": 1 }, false))
            .await?;
        self.blocks
            .create_index(index(doc! { "blocker_id": 1, "created_at": -1 }, false))
            .await?;
        self.reports
            .create_index(index(doc! { "reporter_id": 1, "created_at": 1 }, false))
            .await?;
        self.reports
            .create_index(index(doc! { "reported_id": 1, "created_at": 1 }, false))
            .await?;
        Ok(())
    }

    /// Drops the whole database (for tests on a database of their own).
    pub async fn drop_database(&self) -> Result<(), StoreError> {
        Ok(self.db.drop().await?)
    }

    async fn chat_doc(&self, id: Uuid) -> Result<Option<ChatDoc>, StoreError> {
        Ok(self.chats.find_one(doc! { "_id": id.to_string() }).await?)
    }

    async fn message_by_client_id(&self, new: &NewMessage) -> Result<Option<Message>, StoreError> {
        self.messages
            .find_one(doc! {
                "chat_id": new.chat_id.to_string(),
                "sender_id": new.sender_id.to_string(),
                "client_msg_id": &new.client_msg_id,
            })
            .await?
            .map(MessageDoc::into_message)
            .transpose()
    }

    async fn start_transaction(&self) -> Result<ClientSession, MongoError> {
        let mut session = self.client.start_session().await?;
        session.start_transaction().write_concern(durable()).await?;
        Ok(session)
    }

    /// Commits, retrying while the outcome is unknown (a retried commit is idempotent).
    async fn commit(session: &mut ClientSession) -> Result<(), MongoError> {
        let mut attempts = 0;
        loop {
            match session.commit_transaction().await {
                Err(err)
                    if err.contains_label(UNKNOWN_TRANSACTION_COMMIT_RESULT) && attempts < 3 =>
                {
                    attempts += 1;
                }
                other => return other,
            }
        }
    }

    /// One attempt: bump the counter and insert the message in a transaction. `None` when
    /// the chat has ended (or vanished) meanwhile.
    async fn try_append(&self, new: &NewMessage) -> Result<Option<Message>, MongoError> {
        let mut session = self.start_transaction().await?;
        let chat = self
            .chats
            .find_one_and_update(
                doc! { "_id": new.chat_id.to_string(), "ended_at": null },
                doc! { "$inc": { "last_seq": 1_i64 } },
            )
            .return_document(ReturnDocument::After)
            .session(&mut session)
            .await?;
        let Some(chat) = chat else {
            session.abort_transaction().await?;
            return Ok(None);
        };
        let doc = MessageDoc::from_new(new, chat.last_seq);
        // On error the session is dropped, which aborts the transaction: the bump is
        // undone with it.
        self.messages.insert_one(&doc).session(&mut session).await?;
        Self::commit(&mut session).await?;
        Ok(Some(Message {
            id: new.id,
            chat_id: new.chat_id,
            seq: u64::try_from(chat.last_seq).unwrap_or_default(),
            sender_id: new.sender_id,
            client_msg_id: new.client_msg_id.clone(),
            text: new.text.clone(),
            created_at: new.created_at,
        }))
    }

    /// One attempt at a whole batch in one transaction: read the stored resends and the
    /// chats of the batch, give each new message its seq, move each chat's counter from
    /// the value read (only if it is still that value and the chat has not ended) and
    /// insert every new message with one bulk write. `None` when a chat moved meanwhile
    /// (another instance appended or the chat ended): the caller tries again on fresh
    /// reads. On any error the session is dropped, which aborts the transaction.
    async fn try_append_batch(
        &self,
        batch: &[NewMessage],
    ) -> Result<Option<Vec<Planned>>, MongoError> {
        let mut session = self.start_transaction().await?;
        let keys: Vec<Document> = batch
            .iter()
            .map(|new| {
                doc! {
                    "chat_id": new.chat_id.to_string(),
                    "sender_id": new.sender_id.to_string(),
                    "client_msg_id": &new.client_msg_id,
                }
            })
            .collect();
        let mut stored: HashMap<(String, String, String), MessageDoc> = HashMap::new();
        let mut found = self
            .messages
            .find(doc! { "$or": keys })
            .session(&mut session)
            .await?;
        while let Some(doc) = found.next(&mut session).await.transpose()? {
            stored.insert(
                (
                    doc.chat_id.clone(),
                    doc.sender_id.clone(),
                    doc.client_msg_id.clone(),
                ),
                doc,
            );
        }
        let chat_ids: Vec<String> = batch
            .iter()
            .map(|new| new.chat_id.to_string())
            .collect::<HashSet<_>>()
            .into_iter()
            .collect();
        let mut chats: HashMap<String, (ChatDoc, i64)> = HashMap::new();
        let mut found = self
            .chats
            .find(doc! { "_id": { "$in": chat_ids } })
            .session(&mut session)
            .await?;
        while let Some(chat) = found.next(&mut session).await.transpose()? {
            let last_seq = chat.last_seq;
            chats.insert(chat.id.clone(), (chat, last_seq));
        }

        let mut planned = Vec::with_capacity(batch.len());
        let mut inserts = Vec::new();
        for new in batch {
            let key = (
                new.chat_id.to_string(),
                new.sender_id.to_string(),
                new.client_msg_id.clone(),
            );
            // A resend of a message stored before, or of an earlier item of this batch.
            if let Some(existing) = stored.get(&key) {
                planned.push(Planned::Existing(existing.clone()));
                continue;
            }
            let Some((chat, next)) = chats
                .get_mut(&key.0)
                .filter(|(chat, _)| chat.has_participant(new.sender_id))
            else {
                planned.push(Planned::Refused(StoreError::ChatNotFound));
                continue;
            };
            if chat.ended_at.is_some() {
                planned.push(Planned::Refused(StoreError::ChatEnded));
                continue;
            }
            *next += 1;
            let doc = MessageDoc::from_new(new, *next);
            stored.insert(key, doc.clone());
            planned.push(Planned::Created(doc.clone()));
            inserts.push(doc);
        }
        if inserts.is_empty() {
            session.abort_transaction().await?;
            return Ok(Some(planned));
        }
        for (id, (chat, next)) in &chats {
            if *next == chat.last_seq {
                continue;
            }
            let moved = self
                .chats
                .update_one(
                    doc! { "_id": id.as_str(), "last_seq": chat.last_seq, "ended_at": null },
                    doc! { "$set": { "last_seq": *next } },
                )
                .session(&mut session)
                .await?
                .matched_count
                > 0;
            if !moved {
                session.abort_transaction().await?;
                return Ok(None);
            }
        }
        self.messages
            .insert_many(&inserts)
            .session(&mut session)
            .await?;
        Self::commit(&mut session).await?;
        Ok(Some(planned))
    }

    async fn try_create_chat(
        &self,
        chat: &ChatDoc,
        marks: &[WatermarkDoc],
    ) -> Result<(), MongoError> {
        let mut session = self.start_transaction().await?;
        self.chats.insert_one(chat).session(&mut session).await?;
        self.watermarks
            .insert_many(marks)
            .session(&mut session)
            .await?;
        Self::commit(&mut session).await
    }

    /// One attempt at moving a participant's watermarks to `delivered` / `read` (already
    /// clamped), never backwards, recording each move, all in one transaction: a move and
    /// its record commit together, and read never passes delivered.
    async fn try_advance(
        &self,
        chat_id: Uuid,
        user_id: Uuid,
        delivered: u64,
        read: u64,
        at: i64,
    ) -> Result<(), MongoError> {
        let id = watermark_id(chat_id, user_id);
        let mut session = self.start_transaction().await?;
        // Delivered first: read never passes delivered, as delivered ≥ read is set first
        // and never moves back.
        for (kind, seq) in [(MarkKind::Delivered, delivered), (MarkKind::Read, read)] {
            let (seq_field, at_field) = match kind {
                MarkKind::Delivered => ("delivered_seq", "delivered_at"),
                MarkKind::Read => ("read_seq", "read_at"),
            };
            let seq = to_i64(seq);
            let moved = self
                .watermarks
                .update_one(
                    doc! { "_id": &id, seq_field: { "$lt": seq } },
                    doc! { "$set": { seq_field: seq, at_field: at } },
                )
                .session(&mut session)
                .await?
                .matched_count
                > 0;
            if moved {
                // A watermark reaches a given seq at most once, so the record is new.
                let mark = MarkDoc {
                    id: format!("{id}:{}:{seq}", kind.as_str()),
                    chat_id: chat_id.to_string(),
                    user_id: user_id.to_string(),
                    kind: kind.as_str().to_owned(),
                    seq,
                    at,
                };
                self.marks.insert_one(&mark).session(&mut session).await?;
            }
        }
        Self::commit(&mut session).await
    }

    async fn chat_by_match(&self, match_id: Uuid) -> Result<Option<StoredChat>, StoreError> {
        self.chats
            .find_one(doc! { "match_id": match_id.to_string() })
            .await?
            .map(ChatDoc::into_stored)
            .transpose()
    }
}

/// Waits a little before retrying a conflicting transaction: exponential with random
/// jitter, so that many conflicting writers spread out.
async fn backoff(attempt: u32) {
    let ceiling_ms = 2u64.saturating_pow(attempt.min(7)).min(100);
    let jitter = (Uuid::new_v4().as_u128() % 1000) as u64;
    let ms = 1 + ceiling_ms * jitter / 1000;
    tokio::time::sleep(Duration::from_millis(ms)).await;
}

/// What one attempt at a batch decided for one item, before the commit.
enum Planned {
    /// A resend: the message stored before (or earlier in the batch).
    Existing(MessageDoc),
    /// New: the message as the batch inserts it.
    Created(MessageDoc),
    /// Refused; nothing is written for it.
    Refused(StoreError),
}

impl Planned {
    /// The outcome once the batch has committed.
    fn outcome(self) -> AppendOutcome {
        match self {
            Planned::Existing(doc) => Ok(Written {
                value: doc.into_message()?,
                created: false,
            }),
            Planned::Created(doc) => Ok(Written {
                value: doc.into_message()?,
                created: true,
            }),
            Planned::Refused(err) => Err(err),
        }
    }
}

#[async_trait]
impl MessageStore for MongoMessageStore {
    async fn create_chat(&self, new: &NewChat) -> Result<Written<StoredChat>, StoreError> {
        self.bounded(async {
            if let Some(existing) = self.chat_by_match(new.match_id).await? {
                return Ok(Written {
                    value: existing,
                    created: false,
                });
            }
            for (i, a) in new.participants.iter().enumerate() {
                for b in &new.participants[i + 1..] {
                    if self.is_blocked(a.id, b.id).await? {
                        return Err(StoreError::Blocked);
                    }
                }
            }
            let doc = ChatDoc {
                id: new.id.to_string(),
                match_id: new.match_id.to_string(),
                participants: new.participants.iter().map(|p| p.id.to_string()).collect(),
                profiles: new.participants.clone(),
                created_at: to_millis(new.created_at),
                ended_at: None,
                ended_by: None,
                last_seq: 0,
            };
            let watermarks: Vec<WatermarkDoc> = new
                .participants
                .iter()
                .enumerate()
                .map(|(position, p)| WatermarkDoc {
                    id: watermark_id(new.id, p.id),
                    chat_id: new.id.to_string(),
                    user_id: p.id.to_string(),
                    position: i32::try_from(position).unwrap_or(i32::MAX),
                    delivered_seq: 0,
                    delivered_at: None,
                    read_seq: 0,
                    read_at: None,
                })
                .collect();
            let deadline = Instant::now() + CONFLICT_RETRY_DEADLINE;
            let mut attempt = 0;
            loop {
                match self.try_create_chat(&doc, &watermarks).await {
                    Ok(()) => {
                        self.end_if_blocked_meanwhile(new).await?;
                        return Ok(Written {
                            value: doc.clone().into_stored()?,
                            created: true,
                        });
                    }
                    Err(err) if is_duplicate_key(&err) => {
                        // The same match was created concurrently.
                        if let Some(existing) = self.chat_by_match(new.match_id).await? {
                            return Ok(Written {
                                value: existing,
                                created: false,
                            });
                        }
                        return Err(err.into());
                    }
                    Err(err) if is_transient(&err) && Instant::now() < deadline => {
                        attempt += 1;
                        backoff(attempt).await;
                    }
                    Err(err) => return Err(err.into()),
                }
            }
        })
        .await
    }

    async fn chat(&self, id: Uuid) -> Result<Option<StoredChat>, StoreError> {
        self.bounded(async {
            self.chat_doc(id)
                .await?
                .map(ChatDoc::into_stored)
                .transpose()
        })
        .await
    }

    async fn chats_of(
        &self,
        user_id: Uuid,
        active_only: bool,
        limit: u32,
        before: Option<ChatCursor>,
    ) -> Result<Vec<StoredChat>, StoreError> {
        self.bounded(async {
            let mut filter = doc! { "participants": user_id.to_string() };
            if active_only {
                filter.insert("ended_at", mongodb::bson::Bson::Null);
            }
            if let Some(cursor) = before {
                // Ids are hyphenated lowercase uuids: string order is uuid order.
                let at = to_millis(cursor.created_at);
                filter.insert(
                    "$or",
                    vec![
                        doc! { "created_at": { "$lt": at } },
                        doc! { "created_at": at, "_id": { "$lt": cursor.id.to_string() } },
                    ],
                );
            }
            let docs: Vec<ChatDoc> = self
                .chats
                .find(filter)
                .sort(doc! { "created_at": -1, "_id": -1 })
                .limit(i64::from(limit))
                .await?
                .try_collect()
                .await?;
            docs.into_iter().map(ChatDoc::into_stored).collect()
        })
        .await
    }

    async fn end_chat(
        &self,
        chat_id: Uuid,
        user_id: Uuid,
        now: OffsetDateTime,
    ) -> Result<Written<Chat>, StoreError> {
        self.bounded(async {
            let ended = self
                .chats
                .find_one_and_update(
                    doc! {
                        "_id": chat_id.to_string(),
                        "participants": user_id.to_string(),
                        "ended_at": null,
                    },
                    doc! { "$set": { "ended_at": to_millis(now), "ended_by": user_id.to_string() } },
                )
                .return_document(ReturnDocument::After)
                .await?;
            if let Some(doc) = ended {
                return Ok(Written {
                    value: doc.into_stored()?.chat,
                    created: true,
                });
            }
            let chat = self
                .chat_doc(chat_id)
                .await?
                .filter(|c| c.has_participant(user_id))
                .ok_or(StoreError::ChatNotFound)?;
            Ok(Written {
                value: chat.into_stored()?.chat,
                created: false,
            })
        })
        .await
    }

    async fn append(&self, new: &NewMessage) -> Result<Written<Message>, StoreError> {
        self.bounded(async {
            let _turn = tokio::time::timeout(
                CONFLICT_RETRY_DEADLINE,
                self.append_locks.of(new.chat_id).lock(),
            )
            .await
            .map_err(|_| {
                StoreError::Unavailable("too many appends waiting for one chat".to_owned())
            })?;
            let deadline = Instant::now() + CONFLICT_RETRY_DEADLINE;
            let mut attempt = 0;
            loop {
                if let Some(existing) = self.message_by_client_id(new).await? {
                    return Ok(Written {
                        value: existing,
                        created: false,
                    });
                }
                let chat = self
                    .chat_doc(new.chat_id)
                    .await?
                    .filter(|c| c.has_participant(new.sender_id))
                    .ok_or(StoreError::ChatNotFound)?;
                if chat.ended_at.is_some() {
                    return Err(StoreError::ChatEnded);
                }
                match self.try_append(new).await {
                    Ok(Some(message)) => {
                        return Ok(Written {
                            value: message,
                            created: true,
                        });
                    }
                    // Ended meanwhile: the next round answers ChatEnded (or the resend).
                    Ok(None) => {}
                    // Stored meanwhile by a concurrent call: the next round finds it.
                    Err(err) if is_duplicate_key(&err) && Instant::now() < deadline => {}
                    Err(err) if is_transient(&err) && Instant::now() < deadline => {
                        attempt += 1;
                        backoff(attempt).await;
                    }
                    Err(err) => return Err(err.into()),
                }
            }
        })
        .await
    }

    async fn append_batch(&self, batch: &[NewMessage]) -> Result<Vec<AppendOutcome>, StoreError> {
        if batch.is_empty() {
            return Ok(Vec::new());
        }
        self.bounded(async {
            let deadline = Instant::now() + CONFLICT_RETRY_DEADLINE;
            let mut attempt = 0;
            let planned = loop {
                match self.try_append_batch(batch).await {
                    Ok(Some(planned)) => break planned,
                    // A chat moved meanwhile: plan again on fresh reads.
                    Ok(None) if Instant::now() < deadline => {
                        attempt += 1;
                        backoff(attempt).await;
                    }
                    Ok(None) => {
                        return Err(StoreError::Unavailable(
                            "the chats of a batch kept moving under it".to_owned(),
                        ));
                    }
                    // Stored meanwhile by another instance: the next round finds it.
                    Err(err) if is_duplicate_key(&err) && Instant::now() < deadline => {}
                    Err(err) if is_transient(&err) && Instant::now() < deadline => {
                        attempt += 1;
                        backoff(attempt).await;
                    }
                    Err(err) => return Err(err.into()),
                }
            };
            Ok(planned.into_iter().map(Planned::outcome).collect())
        })
        .await
    }

    async fn messages_after(
        &self,
        chat_id: Uuid,
        after: u64,
        limit: u32,
    ) -> Result<Vec<Message>, StoreError> {
        self.bounded(async {
            let docs: Vec<MessageDoc> = self
                .messages
                .find(doc! { "chat_id": chat_id.to_string(), "seq": { "$gt": to_i64(after) } })
                .sort(doc! { "seq": 1 })
                .limit(i64::from(limit))
                .await?
                .try_collect()
                .await?;
            docs.into_iter().map(MessageDoc::into_message).collect()
        })
        .await
    }

    async fn messages_before(
        &self,
        chat_id: Uuid,
        before: u64,
        limit: u32,
    ) -> Result<Vec<Message>, StoreError> {
        self.bounded(async {
            let docs: Vec<MessageDoc> = self
                .messages
                .find(doc! { "chat_id": chat_id.to_string(), "seq": { "$lt": to_i64(before) } })
                .sort(doc! { "seq": -1 })
                .limit(i64::from(limit))
                .await?
                .try_collect()
                .await?;
            let mut messages = docs
                .into_iter()
                .map(MessageDoc::into_message)
                .collect::<Result<Vec<_>, _>>()?;
            messages.reverse();
            Ok(messages)
        })
        .await
    }

    async fn messages_by_id(
        &self,
        chat_id: Uuid,
        ids: &[Uuid],
    ) -> Result<Vec<Message>, StoreError> {
        self.bounded(async {
            let ids: Vec<String> = ids.iter().map(Uuid::to_string).collect();
            let docs: Vec<MessageDoc> = self
                .messages
                .find(doc! { "chat_id": chat_id.to_string(), "_id": { "$in": ids } })
                .await?
                .try_collect()
                .await?;
            docs.into_iter().map(MessageDoc::into_message).collect()
        })
        .await
    }

    async fn count_from_others_after(
        &self,
        chat_id: Uuid,
        user_id: Uuid,
        after: u64,
    ) -> Result<u64, StoreError> {
        self.bounded(async {
            Ok(self
                .messages
                .count_documents(doc! {
                    "chat_id": chat_id.to_string(),
                    "seq": { "$gt": to_i64(after) },
                    "sender_id": { "$ne": user_id.to_string() },
                })
                .await?)
        })
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
        self.bounded(async {
            let chat = self
                .chat_doc(chat_id)
                .await?
                .filter(|c| c.has_participant(user_id))
                .ok_or(StoreError::ChatNotFound)?;
            // `last_seq` only grows, so clamping to a value read a moment ago is safe.
            let (delivered, read) =
                watermark_targets(delivered, read, to_u64(chat.last_seq, "last_seq")?);
            let id = watermark_id(chat_id, user_id);
            let at = to_millis(now);
            let deadline = Instant::now() + CONFLICT_RETRY_DEADLINE;
            let mut attempt = 0;
            loop {
                match self
                    .try_advance(chat_id, user_id, delivered, read, at)
                    .await
                {
                    Ok(()) => break,
                    Err(err) if is_transient(&err) && Instant::now() < deadline => {
                        attempt += 1;
                        backoff(attempt).await;
                    }
                    Err(err) => return Err(err.into()),
                }
            }
            self.watermarks
                .find_one(doc! { "_id": &id })
                .await?
                .ok_or_else(|| StoreError::Backend(format!("watermarks {id} are missing")))?
                .into_watermark()
        })
        .await
    }

    async fn watermarks(&self, chat_id: Uuid) -> Result<Vec<Watermark>, StoreError> {
        self.bounded(async {
            let docs: Vec<WatermarkDoc> = self
                .watermarks
                .find(doc! { "chat_id": chat_id.to_string() })
                .sort(doc! { "position": 1 })
                .await?
                .try_collect()
                .await?;
            docs.into_iter().map(WatermarkDoc::into_watermark).collect()
        })
        .await
    }

    async fn marks(
        &self,
        chat_id: Uuid,
        from: u64,
        to: u64,
    ) -> Result<Vec<WatermarkMark>, StoreError> {
        self.bounded(async {
            let chat_key = chat_id.to_string();
            let mut docs: Vec<MarkDoc> = self
                .marks
                .find(doc! {
                    "chat_id": &chat_key,
                    "seq": { "$gte": to_i64(from), "$lte": to_i64(to) },
                })
                .await?
                .try_collect()
                .await?;
            let users: Vec<String> = match self.chat_doc(chat_id).await? {
                Some(chat) => chat.participants,
                None => Vec::new(),
            };
            for user in users {
                for kind in [MarkKind::Delivered, MarkKind::Read] {
                    let next = self
                        .marks
                        .find_one(doc! {
                            "chat_id": &chat_key,
                            "user_id": &user,
                            "kind": kind.as_str(),
                            "seq": { "$gt": to_i64(to) },
                        })
                        .sort(doc! { "seq": 1 })
                        .await?;
                    docs.extend(next);
                }
            }
            docs.into_iter().map(MarkDoc::into_mark).collect()
        })
        .await
    }

    async fn block(
        &self,
        blocker: Uuid,
        blocked: Uuid,
        now: OffsetDateTime,
    ) -> Result<Written<BlockedUser>, StoreError> {
        self.bounded(async {
            let doc = BlockDoc {
                id: block_id(blocker, blocked),
                blocker_id: blocker.to_string(),
                blocked_id: blocked.to_string(),
                created_at: to_millis(now),
            };
            match self.blocks.insert_one(&doc).await {
                Ok(_) => Ok(Written {
                    value: BlockedUser {
                        user_id: blocked,
                        created_at: now,
                    },
                    created: true,
                }),
                Err(err) if is_duplicate_key(&err) => {
                    let existing = self
                        .blocks
                        .find_one(doc! { "_id": &doc.id })
                        .await?
                        .ok_or_else(|| {
                            StoreError::Backend("a duplicate block vanished".to_owned())
                        })?;
                    Ok(Written {
                        value: BlockedUser {
                            user_id: blocked,
                            created_at: from_millis(existing.created_at)?,
                        },
                        created: false,
                    })
                }
                Err(err) => Err(err.into()),
            }
        })
        .await
    }

    async fn digests(
        &self,
        chats: &[StoredChat],
        viewer: Uuid,
    ) -> Result<Vec<ChatDigest>, StoreError> {
        if chats.is_empty() {
            return Ok(Vec::new());
        }
        self.bounded(async {
            let position = |id: &str| chats.iter().position(|c| c.chat.id.to_string() == id);
            let mut digests = vec![ChatDigest::default(); chats.len()];
            let at_last = |op: &str| -> Vec<Document> {
                chats
                    .iter()
                    .map(|c| {
                        let mut seq = Document::new();
                        seq.insert(op, to_i64(c.chat.last_seq));
                        doc! { "chat_id": c.chat.id.to_string(), "seq": seq }
                    })
                    .collect()
            };

            let mut last = self.messages.find(doc! { "$or": at_last("$eq") }).await?;
            while let Some(doc) = last.try_next().await? {
                if let Some(i) = position(&doc.chat_id) {
                    digests[i].last_message = Some(doc.into_message()?);
                }
            }

            let ids: Vec<String> = chats.iter().map(|c| c.chat.id.to_string()).collect();
            let mut marks = self
                .watermarks
                .find(doc! { "chat_id": { "$in": &ids } })
                .sort(doc! { "chat_id": 1, "position": 1 })
                .await?;
            while let Some(doc) = marks.try_next().await? {
                if let Some(i) = position(&doc.chat_id) {
                    digests[i].watermarks.push(doc.into_watermark()?);
                }
            }

            // Per (chat, user, kind) the first move at or past the last message.
            let mut moves = self.marks.find(doc! { "$or": at_last("$gte") }).await?;
            while let Some(doc) = moves.try_next().await? {
                let Some(i) = position(&doc.chat_id) else {
                    continue;
                };
                let mark = doc.into_mark()?;
                let kept = &mut digests[i].last_marks;
                match kept
                    .iter_mut()
                    .find(|m| m.user_id == mark.user_id && m.kind == mark.kind)
                {
                    Some(earlier) if earlier.seq > mark.seq => *earlier = mark,
                    Some(_) => {}
                    None => kept.push(mark),
                }
            }

            let viewer_key = viewer.to_string();
            let unread: Vec<Document> = chats
                .iter()
                .zip(&digests)
                .map(|(c, d)| {
                    let read = d
                        .watermarks
                        .iter()
                        .find(|w| w.user_id == viewer)
                        .map_or(0, |w| w.read_seq);
                    doc! {
                        "chat_id": c.chat.id.to_string(),
                        "seq": { "$gt": to_i64(read) },
                        "sender_id": { "$ne": &viewer_key },
                    }
                })
                .collect();
            let mut counts = self
                .messages
                .aggregate([
                    doc! { "$match": { "$or": unread } },
                    doc! { "$group": { "_id": "$chat_id", "n": { "$sum": 1 } } },
                ])
                .await?;
            while let Some(count) = counts.try_next().await? {
                let chat_id = count.get_str("_id").unwrap_or_default();
                if let Some(i) = position(chat_id) {
                    let n = count
                        .get_i32("n")
                        .map(i64::from)
                        .or_else(|_| count.get_i64("n"))
                        .map_err(|e| StoreError::Backend(format!("unread count: {e}")))?;
                    digests[i].unread_count = to_u64(n, "unread")?;
                }
            }
            Ok(digests)
        })
        .await
    }

    async fn unblock(&self, blocker: Uuid, blocked: Uuid) -> Result<bool, StoreError> {
        self.bounded(async {
            let deleted = self
                .blocks
                .delete_one(doc! { "_id": block_id(blocker, blocked) })
                .await?
                .deleted_count;
            Ok(deleted > 0)
        })
        .await
    }

    async fn blocks_of(&self, user_id: Uuid) -> Result<Vec<BlockedUser>, StoreError> {
        self.bounded(async {
            let docs: Vec<BlockDoc> = self
                .blocks
                .find(doc! { "blocker_id": user_id.to_string() })
                .sort(doc! { "created_at": -1, "blocked_id": 1 })
                .await?
                .try_collect()
                .await?;
            docs.into_iter()
                .map(|d| {
                    Ok(BlockedUser {
                        user_id: parse_id(&d.blocked_id)?,
                        created_at: from_millis(d.created_at)?,
                    })
                })
                .collect()
        })
        .await
    }

    async fn blockers_of(&self, user_id: Uuid) -> Result<Vec<Uuid>, StoreError> {
        self.bounded(async {
            let docs: Vec<BlockDoc> = self
                .blocks
                .find(doc! { "blocked_id": user_id.to_string() })
                .await?
                .try_collect()
                .await?;
            docs.iter().map(|d| parse_id(&d.blocker_id)).collect()
        })
        .await
    }

    async fn is_blocked(&self, a: Uuid, b: Uuid) -> Result<bool, StoreError> {
        self.bounded(async {
            let found = self
                .blocks
                .find_one(doc! { "_id": { "$in": [block_id(a, b), block_id(b, a)] } })
                .await?;
            Ok(found.is_some())
        })
        .await
    }

    async fn add_report(&self, report: &Report) -> Result<(), StoreError> {
        self.bounded(async {
            let doc = ReportDoc {
                id: report.id.to_string(),
                reporter_id: report.reporter_id.to_string(),
                reported_id: report.reported_id.to_string(),
                chat_id: report.chat_id.to_string(),
                message_ids: report.message_ids.iter().map(Uuid::to_string).collect(),
                reason: report.reason.clone(),
                created_at: to_millis(report.created_at),
                resolution: None,
            };
            self.reports.insert_one(&doc).await?;
            Ok(())
        })
        .await
    }

    async fn reporters_of(
        &self,
        user_id: Uuid,
        since: OffsetDateTime,
    ) -> Result<Vec<Uuid>, StoreError> {
        self.bounded(async {
            let docs: Vec<ReportDoc> = self
                .reports
                .find(doc! {
                    "reported_id": user_id.to_string(),
                    "created_at": { "$gte": to_millis(since) },
                    "resolution.outcome": { "$ne": outcome_name(ReportOutcome::Dismissed) },
                })
                .await?
                .try_collect()
                .await?;
            let mut reporters = docs
                .iter()
                .map(|d| parse_id(&d.reporter_id))
                .collect::<Result<Vec<_>, _>>()?;
            reporters.sort();
            reporters.dedup();
            Ok(reporters)
        })
        .await
    }

    async fn report_times(
        &self,
        reporter: Uuid,
        since: OffsetDateTime,
    ) -> Result<Vec<OffsetDateTime>, StoreError> {
        self.bounded(async {
            let docs: Vec<ReportDoc> = self
                .reports
                .find(doc! {
                    "reporter_id": reporter.to_string(),
                    "created_at": { "$gte": to_millis(since) },
                })
                .sort(doc! { "created_at": 1 })
                .await?
                .try_collect()
                .await?;
            docs.iter().map(|d| from_millis(d.created_at)).collect()
        })
        .await
    }

    async fn reports(
        &self,
        open_only: bool,
        limit: u32,
    ) -> Result<Vec<(Report, Option<ReportResolution>)>, StoreError> {
        self.bounded(async {
            let filter = if open_only {
                doc! { "resolution": { "$exists": false } }
            } else {
                doc! {}
            };
            let docs: Vec<ReportDoc> = self
                .reports
                .find(filter)
                .sort(doc! { "created_at": 1, "_id": 1 })
                .limit(i64::from(limit))
                .await?
                .try_collect()
                .await?;
            docs.into_iter().map(ReportDoc::into_parts).collect()
        })
        .await
    }

    async fn resolve_report(
        &self,
        id: Uuid,
        resolution: &ReportResolution,
    ) -> Result<Option<(Report, ReportResolution)>, StoreError> {
        self.bounded(async {
            let record = ResolutionDoc {
                outcome: outcome_name(resolution.outcome).to_owned(),
                note: resolution.note.clone(),
                by: resolution.by.to_string(),
                at: to_millis(resolution.at),
            };
            let record = mongodb::bson::to_document(&record)
                .map_err(|e| StoreError::Backend(e.to_string()))?;
            self.reports
                .update_one(
                    doc! { "_id": id.to_string(), "resolution": { "$exists": false } },
                    doc! { "$set": { "resolution": record } },
                )
                .await?;
            let found = self
                .reports
                .find_one(doc! { "_id": id.to_string() })
                .await?;
            match found.map(ReportDoc::into_parts).transpose()? {
                Some((report, Some(resolution))) => Ok(Some((report, resolution))),
                Some((_, None)) => Err(StoreError::Backend(format!(
                    "report {id} is still open after resolving it"
                ))),
                None => Ok(None),
            }
        })
        .await
    }

    async fn ping(&self) -> Result<(), StoreError> {
        self.bounded(async {
            self.db.run_command(doc! { "ping": 1 }).await?;
            Ok(())
        })
        .await
    }
}
