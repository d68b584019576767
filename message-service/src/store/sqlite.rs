//! The embedded backend: everything in one SQLite file.
//!
//! Writes that read before they write (appends, chat creation) run in `BEGIN IMMEDIATE`
//! transactions, which take SQLite's write lock up front: writers queue on the lock (busy
//! timeout) instead of failing on a stale snapshot, and the per-chat counter is read and
//! bumped with no other writer in between, so sequence numbers have no gaps. A batch of
//! appends is one such transaction, so it costs one commit (one fsync) however many
//! messages it holds; it runs whole on a thread of its own ([`append`]), everything else
//! through sqlx.
//!
//! The store needs a file: an in-memory SQLite database lives in one connection, and the
//! append thread has its own. `sqlite::memory:` selects [`super::memory`] instead
//! ([`crate::state::store_from_settings`]).

mod append;

use service_kit::telemetry::{Backend, count_backend_error};
use std::str::FromStr;
use std::time::Duration;

use async_trait::async_trait;
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteRow,
    SqliteSynchronous,
};
use sqlx::types::Json;
use sqlx::{QueryBuilder, Row, Sqlite, SqliteConnection};
use time::OffsetDateTime;
use uuid::Uuid;
use wire::api::auth::PublicProfile;
use wire::api::message::{BlockedUser, Chat, Message, Report, ReportResolution, Watermark};

use super::{
    AppendOutcome, BACKEND_TIMEOUT, ChatCursor, ChatDigest, MarkKind, MessageStore, NewChat,
    NewMessage, StoreError, StoredChat, WatermarkMark, Written, from_millis, outcome_name,
    parse_outcome, sole_outcome, to_i64, to_millis, to_u64, watermark_targets,
};

/// Migrations of the SQLite schema.
pub static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/sqlite");

impl From<sqlx::Error> for StoreError {
    fn from(err: sqlx::Error) -> Self {
        let unavailable = match &err {
            sqlx::Error::PoolTimedOut
            | sqlx::Error::PoolClosed
            | sqlx::Error::Io(_)
            | sqlx::Error::WorkerCrashed => true,
            // SQLITE_BUSY / SQLITE_LOCKED after the busy timeout: the database is overloaded.
            sqlx::Error::Database(db) => matches!(db.code().as_deref(), Some("5" | "6")),
            _ => false,
        };
        count_backend_error(Backend::Sqlite, unavailable);
        if unavailable {
            StoreError::Unavailable(err.to_string())
        } else {
            StoreError::Backend(err.to_string())
        }
    }
}

/// Pages the write-ahead log grows to before a commit copies it into the database file
/// (SQLite's default is 1,000, 4 MiB): under a sustained stream of messages a checkpoint
/// then ran every fraction of a second inside a commit, holding up every sender of that
/// batch, and rewrote the same hot index pages each time.
pub(crate) const WAL_AUTOCHECKPOINT_PAGES: u32 = 10_000;

/// Opens (creating if missing) the SQLite database at `url` and applies the migrations.
///
/// `url` is a `sqlite:` URL such as `sqlite://./data/messages.db?mode=rwc` or
/// `sqlite::memory:`; the parent directory of a file is created if needed.
pub async fn connect(url: &str) -> Result<SqlitePool, StoreError> {
    let options = SqliteConnectOptions::from_str(url)
        .map_err(|e| StoreError::Backend(format!("invalid SQLite URL: {e}")))?
        .create_if_missing(true)
        .journal_mode(SqliteJournalMode::Wal)
        // With WAL, NORMAL survives application crashes; FULL also survives power loss,
        // which is what "acknowledged means durable" asks of a message store.
        .synchronous(SqliteSynchronous::Full)
        .foreign_keys(true)
        .pragma("wal_autocheckpoint", WAL_AUTOCHECKPOINT_PAGES.to_string())
        // Writers queue on SQLite's lock rather than failing at once under contention.
        .busy_timeout(Duration::from_secs(10));
    if let Some(dir) = options.get_filename().parent()
        && !dir.as_os_str().is_empty()
    {
        std::fs::create_dir_all(dir).map_err(|e| {
            StoreError::Unavailable(format!("cannot create {}: {e}", dir.display()))
        })?;
    }
    let in_memory = options.get_filename().as_os_str() == ":memory:" || is_in_memory(url);
    let file = options.get_filename().to_owned();
    let pool = SqlitePoolOptions::new()
        // An in-memory database lives and dies with its one connection.
        .max_connections(if in_memory { 1 } else { 8 })
        .min_connections(u32::from(in_memory))
        .idle_timeout((!in_memory).then_some(Duration::from_secs(600)))
        .max_lifetime((!in_memory).then_some(Duration::from_secs(1800)))
        // Appends queue for the single writer; allow for a burst before answering 503.
        .acquire_timeout(BACKEND_TIMEOUT * 5)
        .connect_with(options)
        .await?;
    MIGRATOR
        .run(&pool)
        .await
        .map_err(|e| StoreError::Backend(format!("SQLite migrations failed: {e}")))?;
    if !in_memory {
        // Owner-only, whatever the umask: the file holds every conversation.
        service_kit::fs::ensure_private_sqlite(&file)
            .map_err(|e| StoreError::Unavailable(format!("cannot restrict the database: {e}")))?;
    }
    Ok(pool)
}

/// Whether `url` names an in-memory SQLite database.
pub fn is_in_memory(url: &str) -> bool {
    url.contains(":memory:") || url.contains("mode=memory")
}

/// Chats, messages, blocks and reports in SQLite.
#[derive(Debug, Clone)]
pub struct SqliteMessageStore {
    pool: SqlitePool,
    /// Runs each batch of appends whole on its own connection.
    appender: append::Appender,
}

impl SqliteMessageStore {
    /// Opens the database file at `url` (see [`connect`]; an in-memory URL is refused, see
    /// the module's documentation).
    pub async fn open(url: &str) -> Result<Self, StoreError> {
        if is_in_memory(url) {
            return Err(StoreError::Backend(
                "the SQLite message store needs a file; `sqlite::memory:` is the in-memory store"
                    .to_owned(),
            ));
        }
        let pool = connect(url).await?;
        let file = pool.connect_options().get_filename().to_owned();
        let appender = tokio::task::spawn_blocking(move || append::Appender::open(&file))
            .await
            .map_err(|e| StoreError::Backend(format!("opening the append connection: {e}")))??;
        Ok(Self { pool, appender })
    }

    async fn begin_immediate(
        &self,
    ) -> Result<sqlx::Transaction<'static, sqlx::Sqlite>, StoreError> {
        Ok(self.pool.begin_with("BEGIN IMMEDIATE").await?)
    }
}

fn opt_millis(ms: Option<i64>) -> Result<Option<OffsetDateTime>, StoreError> {
    ms.map(from_millis).transpose()
}

fn chat_of_row(row: &SqliteRow) -> Result<Chat, StoreError> {
    Ok(Chat {
        id: row.try_get("id")?,
        match_id: row.try_get("match_id")?,
        participants: Vec::new(),
        created_at: from_millis(row.try_get("created_at")?)?,
        ended_at: opt_millis(row.try_get("ended_at")?)?,
        ended_by: row.try_get("ended_by")?,
        last_seq: to_u64(row.try_get("last_seq")?, "last_seq")?,
    })
}

fn message_of_row(row: &SqliteRow) -> Result<Message, StoreError> {
    Ok(Message {
        id: row.try_get("id")?,
        chat_id: row.try_get("chat_id")?,
        seq: to_u64(row.try_get("seq")?, "seq")?,
        sender_id: row.try_get("sender_id")?,
        client_msg_id: row.try_get("client_msg_id")?,
        text: row.try_get("text")?,
        created_at: from_millis(row.try_get("created_at")?)?,
    })
}

fn watermark_of_row(chat_id: Uuid, row: &SqliteRow) -> Result<Watermark, StoreError> {
    Ok(Watermark {
        chat_id,
        user_id: row.try_get("user_id")?,
        delivered_seq: to_u64(row.try_get("delivered_seq")?, "delivered_seq")?,
        read_seq: to_u64(row.try_get("read_seq")?, "read_seq")?,
        delivered_at: opt_millis(row.try_get("delivered_at")?)?,
        read_at: opt_millis(row.try_get("read_at")?)?,
    })
}

/// The chat `id` with its participants, read on `conn`.
async fn load_chat(
    conn: &mut SqliteConnection,
    id: Uuid,
) -> Result<Option<StoredChat>, StoreError> {
    let Some(row) = sqlx::query(
        "SELECT id, match_id, created_at, ended_at, ended_by, last_seq FROM chats WHERE id = ?",
    )
    .bind(id)
    .fetch_optional(&mut *conn)
    .await?
    else {
        return Ok(None);
    };
    let mut chat = chat_of_row(&row)?;
    let rows = sqlx::query(
        "SELECT user_id, profile FROM chat_participants WHERE chat_id = ? ORDER BY position",
    )
    .bind(id)
    .fetch_all(&mut *conn)
    .await?;
    let mut profiles = Vec::with_capacity(rows.len());
    for row in rows {
        chat.participants.push(row.try_get("user_id")?);
        let Json(profile): Json<PublicProfile> = row.try_get("profile")?;
        profiles.push(profile);
    }
    Ok(Some(StoredChat { chat, profiles }))
}

async fn blocked_pair(conn: &mut SqliteConnection, a: Uuid, b: Uuid) -> Result<bool, StoreError> {
    let found: Option<i64> = sqlx::query_scalar(
        "SELECT 1 FROM blocks WHERE (blocker_id = ? AND blocked_id = ?) \
         OR (blocker_id = ? AND blocked_id = ?) LIMIT 1",
    )
    .bind(a)
    .bind(b)
    .bind(b)
    .bind(a)
    .fetch_optional(&mut *conn)
    .await?;
    Ok(found.is_some())
}

/// Appends `ids` to `query` as a comma-separated list of bound values (inside `IN (...)`).
fn push_ids(query: &mut QueryBuilder<Sqlite>, ids: impl IntoIterator<Item = Uuid>) {
    let mut list = query.separated(", ");
    for id in ids {
        list.push_bind(id);
    }
}

#[async_trait]
impl MessageStore for SqliteMessageStore {
    async fn create_chat(&self, new: &NewChat) -> Result<Written<StoredChat>, StoreError> {
        let mut tx = self.begin_immediate().await?;
        let existing: Option<Uuid> = sqlx::query_scalar("SELECT id FROM chats WHERE match_id = ?")
            .bind(new.match_id)
            .fetch_optional(&mut *tx)
            .await?;
        if let Some(id) = existing {
            let chat = load_chat(&mut tx, id)
                .await?
                .ok_or_else(|| StoreError::Backend(format!("chat {id} vanished")))?;
            tx.commit().await?;
            return Ok(Written {
                value: chat,
                created: false,
            });
        }
        for (i, a) in new.participants.iter().enumerate() {
            for b in &new.participants[i + 1..] {
                if blocked_pair(&mut tx, a.id, b.id).await? {
                    return Err(StoreError::Blocked);
                }
            }
        }
        let created_at = to_millis(new.created_at);
        sqlx::query("INSERT INTO chats (id, match_id, created_at, last_seq) VALUES (?, ?, ?, 0)")
            .bind(new.id)
            .bind(new.match_id)
            .bind(created_at)
            .execute(&mut *tx)
            .await?;
        for (position, profile) in new.participants.iter().enumerate() {
            sqlx::query(
                "INSERT INTO chat_participants (chat_id, user_id, position, profile, \
                 chat_created_at) VALUES (?, ?, ?, ?, ?)",
            )
            .bind(new.id)
            .bind(profile.id)
            .bind(position as i64)
            .bind(Json(profile))
            .bind(created_at)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        let chat = Chat {
            id: new.id,
            match_id: new.match_id,
            participants: new.participants.iter().map(|p| p.id).collect(),
            created_at: new.created_at,
            ended_at: None,
            ended_by: None,
            last_seq: 0,
        };
        Ok(Written {
            value: StoredChat {
                chat,
                profiles: new.participants.clone(),
            },
            created: true,
        })
    }

    async fn chat(&self, id: Uuid) -> Result<Option<StoredChat>, StoreError> {
        let mut conn = self.pool.acquire().await?;
        load_chat(&mut conn, id).await
    }

    async fn chats_of(
        &self,
        user_id: Uuid,
        active_only: bool,
        limit: u32,
        before: Option<ChatCursor>,
    ) -> Result<Vec<StoredChat>, StoreError> {
        let mut conn = self.pool.acquire().await?;
        // Without a cursor, one past every chat: the newest page.
        let (before_at, before_id) = match before {
            Some(cursor) => (to_millis(cursor.created_at), cursor.id),
            None => (i64::MAX, Uuid::max()),
        };
        let ids: Vec<Uuid> = sqlx::query_scalar(
            "SELECT p.chat_id FROM chat_participants p JOIN chats c ON c.id = p.chat_id \
             WHERE p.user_id = ? AND (? = 0 OR c.ended_at IS NULL) \
             AND (p.chat_created_at < ? OR (p.chat_created_at = ? AND p.chat_id < ?)) \
             ORDER BY p.chat_created_at DESC, p.chat_id DESC LIMIT ?",
        )
        .bind(user_id)
        .bind(i64::from(active_only))
        .bind(before_at)
        .bind(before_at)
        .bind(before_id)
        .bind(i64::from(limit))
        .fetch_all(&mut *conn)
        .await?;
        let mut chats = Vec::with_capacity(ids.len());
        for id in ids {
            if let Some(chat) = load_chat(&mut conn, id).await? {
                chats.push(chat);
            }
        }
        Ok(chats)
    }

    async fn end_chat(
        &self,
        chat_id: Uuid,
        user_id: Uuid,
        now: OffsetDateTime,
    ) -> Result<Written<Chat>, StoreError> {
        let mut tx = self.begin_immediate().await?;
        let chat = load_chat(&mut tx, chat_id)
            .await?
            .filter(|c| c.has_participant(user_id))
            .ok_or(StoreError::ChatNotFound)?;
        if chat.chat.ended_at.is_some() {
            tx.commit().await?;
            return Ok(Written {
                value: chat.chat,
                created: false,
            });
        }
        sqlx::query("UPDATE chats SET ended_at = ?, ended_by = ? WHERE id = ?")
            .bind(to_millis(now))
            .bind(user_id)
            .bind(chat_id)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        let mut ended = chat.chat;
        ended.ended_at = Some(now);
        ended.ended_by = Some(user_id);
        Ok(Written {
            value: ended,
            created: true,
        })
    }

    async fn append(&self, new: &NewMessage) -> Result<Written<Message>, StoreError> {
        sole_outcome(self.append_batch(std::slice::from_ref(new)).await?)
    }

    async fn append_batch(&self, batch: &[NewMessage]) -> Result<Vec<AppendOutcome>, StoreError> {
        if batch.is_empty() {
            return Ok(Vec::new());
        }
        self.appender.append(batch.to_vec()).await
    }

    async fn messages_after(
        &self,
        chat_id: Uuid,
        after: u64,
        limit: u32,
    ) -> Result<Vec<Message>, StoreError> {
        sqlx::query(
            "SELECT id, chat_id, seq, sender_id, client_msg_id, text, created_at FROM messages \
             WHERE chat_id = ? AND seq > ? ORDER BY seq ASC LIMIT ?",
        )
        .bind(chat_id)
        .bind(to_i64(after))
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await?
        .iter()
        .map(message_of_row)
        .collect()
    }

    async fn messages_before(
        &self,
        chat_id: Uuid,
        before: u64,
        limit: u32,
    ) -> Result<Vec<Message>, StoreError> {
        let mut messages = sqlx::query(
            "SELECT id, chat_id, seq, sender_id, client_msg_id, text, created_at FROM messages \
             WHERE chat_id = ? AND seq < ? ORDER BY seq DESC LIMIT ?",
        )
        .bind(chat_id)
        .bind(to_i64(before))
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await?
        .iter()
        .map(message_of_row)
        .collect::<Result<Vec<_>, _>>()?;
        messages.reverse();
        Ok(messages)
    }

    async fn messages_by_id(
        &self,
        chat_id: Uuid,
        ids: &[Uuid],
    ) -> Result<Vec<Message>, StoreError> {
        let mut conn = self.pool.acquire().await?;
        let mut found = Vec::with_capacity(ids.len());
        for id in ids {
            let row = sqlx::query(
                "SELECT id, chat_id, seq, sender_id, client_msg_id, text, created_at \
                 FROM messages WHERE id = ? AND chat_id = ?",
            )
            .bind(id)
            .bind(chat_id)
            .fetch_optional(&mut *conn)
            .await?;
            if let Some(row) = row {
                found.push(message_of_row(&row)?);
            }
        }
        Ok(found)
    }

    async fn count_from_others_after(
        &self,
        chat_id: Uuid,
        user_id: Uuid,
        after: u64,
    ) -> Result<u64, StoreError> {
        let count: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM messages WHERE chat_id = ? AND seq > ? AND sender_id <> ?",
        )
        .bind(chat_id)
        .bind(to_i64(after))
        .bind(user_id)
        .fetch_one(&self.pool)
        .await?;
        to_u64(count, "count")
    }

    async fn advance_watermark(
        &self,
        chat_id: Uuid,
        user_id: Uuid,
        delivered: Option<u64>,
        read: Option<u64>,
        now: OffsetDateTime,
    ) -> Result<Watermark, StoreError> {
        let mut tx = self.begin_immediate().await?;
        let last_seq: i64 = sqlx::query_scalar(
            "SELECT c.last_seq FROM chats c JOIN chat_participants p ON p.chat_id = c.id \
             WHERE c.id = ? AND p.user_id = ?",
        )
        .bind(chat_id)
        .bind(user_id)
        .fetch_optional(&mut *tx)
        .await?
        .ok_or(StoreError::ChatNotFound)?;
        let (delivered, read) = watermark_targets(delivered, read, to_u64(last_seq, "last_seq")?);
        let at = to_millis(now);
        for (kind, seq) in [(MarkKind::Delivered, delivered), (MarkKind::Read, read)] {
            let sql = match kind {
                MarkKind::Delivered => {
                    "UPDATE chat_participants SET delivered_seq = ?, delivered_at = ? \
                     WHERE chat_id = ? AND user_id = ? AND delivered_seq < ?"
                }
                MarkKind::Read => {
                    "UPDATE chat_participants SET read_seq = ?, read_at = ? \
                     WHERE chat_id = ? AND user_id = ? AND read_seq < ?"
                }
            };
            let moved = sqlx::query(sql)
                .bind(to_i64(seq))
                .bind(at)
                .bind(chat_id)
                .bind(user_id)
                .bind(to_i64(seq))
                .execute(&mut *tx)
                .await?
                .rows_affected();
            if moved > 0 {
                sqlx::query(
                    "INSERT OR IGNORE INTO watermark_marks (chat_id, user_id, kind, seq, at) \
                     VALUES (?, ?, ?, ?, ?)",
                )
                .bind(chat_id)
                .bind(user_id)
                .bind(kind.as_str())
                .bind(to_i64(seq))
                .bind(at)
                .execute(&mut *tx)
                .await?;
            }
        }
        let row = sqlx::query(
            "SELECT user_id, delivered_seq, delivered_at, read_seq, read_at \
             FROM chat_participants WHERE chat_id = ? AND user_id = ?",
        )
        .bind(chat_id)
        .bind(user_id)
        .fetch_one(&mut *tx)
        .await?;
        tx.commit().await?;
        watermark_of_row(chat_id, &row)
    }

    async fn watermarks(&self, chat_id: Uuid) -> Result<Vec<Watermark>, StoreError> {
        sqlx::query(
            "SELECT user_id, delivered_seq, delivered_at, read_seq, read_at \
             FROM chat_participants WHERE chat_id = ? ORDER BY position",
        )
        .bind(chat_id)
        .fetch_all(&self.pool)
        .await?
        .iter()
        .map(|row| watermark_of_row(chat_id, row))
        .collect()
    }

    async fn marks(
        &self,
        chat_id: Uuid,
        from: u64,
        to: u64,
    ) -> Result<Vec<WatermarkMark>, StoreError> {
        // The moves inside the range, then per (user, kind) the first move past it.
        let rows = sqlx::query(
            "SELECT user_id, kind, seq, at FROM watermark_marks \
             WHERE chat_id = ? AND seq >= ? AND seq <= ? \
             UNION ALL \
             SELECT user_id, kind, MIN(seq) AS seq, at FROM watermark_marks \
             WHERE chat_id = ? AND seq > ? GROUP BY user_id, kind",
        )
        .bind(chat_id)
        .bind(to_i64(from))
        .bind(to_i64(to))
        .bind(chat_id)
        .bind(to_i64(to))
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|row| {
                Ok(WatermarkMark {
                    user_id: row.try_get("user_id")?,
                    kind: MarkKind::parse(row.try_get("kind")?)?,
                    seq: to_u64(row.try_get("seq")?, "seq")?,
                    at: from_millis(row.try_get("at")?)?,
                })
            })
            .collect()
    }

    async fn block(
        &self,
        blocker: Uuid,
        blocked: Uuid,
        now: OffsetDateTime,
    ) -> Result<Written<BlockedUser>, StoreError> {
        let inserted = sqlx::query(
            "INSERT OR IGNORE INTO blocks (blocker_id, blocked_id, created_at) VALUES (?, ?, ?)",
        )
        .bind(blocker)
        .bind(blocked)
        .bind(to_millis(now))
        .execute(&self.pool)
        .await?
        .rows_affected()
            > 0;
        let created_at: i64 = sqlx::query_scalar(
            "SELECT created_at FROM blocks WHERE blocker_id = ? AND blocked_id = ?",
        )
        .bind(blocker)
        .bind(blocked)
        .fetch_one(&self.pool)
        .await?;
        Ok(Written {
            value: BlockedUser {
                user_id: blocked,
                created_at: from_millis(created_at)?,
            },
            created: inserted,
        })
    }

    async fn digests(
        &self,
        chats: &[StoredChat],
        viewer: Uuid,
    ) -> Result<Vec<ChatDigest>, StoreError> {
        if chats.is_empty() {
            return Ok(Vec::new());
        }
        let position = |id: Uuid| chats.iter().position(|c| c.chat.id == id);
        let mut digests = vec![ChatDigest::default(); chats.len()];
        // Each (chat, last seq) pair as `(chat_id = ? AND seq <op> ?)`, OR-ed.
        let at_last = |query: &mut QueryBuilder<Sqlite>, op: &str| {
            for (i, c) in chats.iter().enumerate() {
                query.push(if i == 0 { "(" } else { " OR (" });
                query.push("chat_id = ").push_bind(c.chat.id);
                query.push(format!(" AND seq {op} "));
                query.push_bind(to_i64(c.chat.last_seq)).push(")");
            }
        };

        let mut query = QueryBuilder::new(
            "SELECT id, chat_id, seq, sender_id, client_msg_id, text, created_at FROM messages \
             WHERE ",
        );
        at_last(&mut query, "=");
        for row in query.build().fetch_all(&self.pool).await? {
            let message = message_of_row(&row)?;
            if let Some(i) = position(message.chat_id) {
                digests[i].last_message = Some(message);
            }
        }

        let mut query = QueryBuilder::new(
            "SELECT chat_id, user_id, delivered_seq, delivered_at, read_seq, read_at \
             FROM chat_participants WHERE chat_id IN (",
        );
        push_ids(&mut query, chats.iter().map(|c| c.chat.id));
        query.push(") ORDER BY chat_id, position");
        for row in query.build().fetch_all(&self.pool).await? {
            let chat_id: Uuid = row.try_get("chat_id")?;
            if let Some(i) = position(chat_id) {
                digests[i].watermarks.push(watermark_of_row(chat_id, &row)?);
            }
        }

        // Per (chat, user, kind) the first move at or past the last message.
        let mut query = QueryBuilder::new(
            "SELECT chat_id, user_id, kind, MIN(seq) AS seq, at FROM watermark_marks WHERE ",
        );
        at_last(&mut query, ">=");
        query.push(" GROUP BY chat_id, user_id, kind");
        for row in query.build().fetch_all(&self.pool).await? {
            let chat_id: Uuid = row.try_get("chat_id")?;
            if let Some(i) = position(chat_id) {
                digests[i].last_marks.push(WatermarkMark {
                    user_id: row.try_get("user_id")?,
                    kind: MarkKind::parse(row.try_get("kind")?)?,
                    seq: to_u64(row.try_get("seq")?, "seq")?,
                    at: from_millis(row.try_get("at")?)?,
                });
            }
        }

        let mut query = QueryBuilder::new(
            "SELECT p.chat_id AS chat_id, COUNT(m.seq) AS unread FROM chat_participants p \
             LEFT JOIN messages m ON m.chat_id = p.chat_id AND m.seq > p.read_seq \
             AND m.sender_id <> p.user_id WHERE p.user_id = ",
        );
        query.push_bind(viewer).push(" AND p.chat_id IN (");
        push_ids(&mut query, chats.iter().map(|c| c.chat.id));
        query.push(") GROUP BY p.chat_id");
        for row in query.build().fetch_all(&self.pool).await? {
            let chat_id: Uuid = row.try_get("chat_id")?;
            if let Some(i) = position(chat_id) {
                digests[i].unread_count = to_u64(row.try_get("unread")?, "unread")?;
            }
        }
        Ok(digests)
    }

    async fn unblock(&self, blocker: Uuid, blocked: Uuid) -> Result<bool, StoreError> {
        let deleted = sqlx::query("DELETE FROM blocks WHERE blocker_id = ? AND blocked_id = ?")
            .bind(blocker)
            .bind(blocked)
            .execute(&self.pool)
            .await?
            .rows_affected();
        Ok(deleted > 0)
    }

    async fn blocks_of(&self, user_id: Uuid) -> Result<Vec<BlockedUser>, StoreError> {
        sqlx::query(
            "SELECT blocked_id, created_at FROM blocks WHERE blocker_id = ? \
             ORDER BY created_at DESC, blocked_id",
        )
        .bind(user_id)
        .fetch_all(&self.pool)
        .await?
        .iter()
        .map(|row| {
            Ok(BlockedUser {
                user_id: row.try_get("blocked_id")?,
                created_at: from_millis(row.try_get("created_at")?)?,
            })
        })
        .collect()
    }

    async fn blockers_of(&self, user_id: Uuid) -> Result<Vec<Uuid>, StoreError> {
        Ok(
            sqlx::query_scalar("SELECT blocker_id FROM blocks WHERE blocked_id = ?")
                .bind(user_id)
                .fetch_all(&self.pool)
                .await?,
        )
    }

    async fn is_blocked(&self, a: Uuid, b: Uuid) -> Result<bool, StoreError> {
        let mut conn = self.pool.acquire().await?;
        blocked_pair(&mut conn, a, b).await
    }

    async fn add_report(&self, report: &Report) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO reports (id, reporter_id, reported_id, chat_id, message_ids, reason, \
             created_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
        )
        .bind(report.id)
        .bind(report.reporter_id)
        .bind(report.reported_id)
        .bind(report.chat_id)
        .bind(Json(&report.message_ids))
        .bind(&report.reason)
        .bind(to_millis(report.created_at))
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    async fn reporters_of(
        &self,
        user_id: Uuid,
        since: OffsetDateTime,
    ) -> Result<Vec<Uuid>, StoreError> {
        Ok(sqlx::query_scalar(
            "SELECT DISTINCT reporter_id FROM reports WHERE reported_id = ? AND created_at >= ? \
             AND (outcome IS NULL OR outcome <> 'dismissed')",
        )
        .bind(user_id)
        .bind(to_millis(since))
        .fetch_all(&self.pool)
        .await?)
    }

    async fn report_times(
        &self,
        reporter: Uuid,
        since: OffsetDateTime,
    ) -> Result<Vec<OffsetDateTime>, StoreError> {
        let times: Vec<i64> = sqlx::query_scalar(
            "SELECT created_at FROM reports WHERE reporter_id = ? AND created_at >= ? \
             ORDER BY created_at",
        )
        .bind(reporter)
        .bind(to_millis(since))
        .fetch_all(&self.pool)
        .await?;
        times.into_iter().map(from_millis).collect()
    }

    async fn reports(
        &self,
        open_only: bool,
        limit: u32,
    ) -> Result<Vec<(Report, Option<ReportResolution>)>, StoreError> {
        let rows: Vec<ReportRow> = sqlx::query_as(
            "SELECT id, reporter_id, reported_id, chat_id, message_ids, reason, created_at, \
             outcome, note, resolved_by, resolved_at FROM reports \
             WHERE (? = 0 OR resolved_at IS NULL) ORDER BY created_at, id LIMIT ?",
        )
        .bind(i64::from(open_only))
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await?;
        rows.into_iter().map(ReportRow::into_parts).collect()
    }

    async fn resolve_report(
        &self,
        id: Uuid,
        resolution: &ReportResolution,
    ) -> Result<Option<(Report, ReportResolution)>, StoreError> {
        sqlx::query(
            "UPDATE reports SET outcome = ?, note = ?, resolved_by = ?, resolved_at = ? \
             WHERE id = ? AND resolved_at IS NULL",
        )
        .bind(outcome_name(resolution.outcome))
        .bind(&resolution.note)
        .bind(resolution.by)
        .bind(to_millis(resolution.at))
        .bind(id)
        .execute(&self.pool)
        .await?;
        let row: Option<ReportRow> = sqlx::query_as(
            "SELECT id, reporter_id, reported_id, chat_id, message_ids, reason, created_at, \
             outcome, note, resolved_by, resolved_at FROM reports WHERE id = ?",
        )
        .bind(id)
        .fetch_optional(&self.pool)
        .await?;
        match row.map(ReportRow::into_parts).transpose()? {
            Some((report, Some(resolution))) => Ok(Some((report, resolution))),
            Some((_, None)) => Err(StoreError::Backend(format!(
                "report {id} is still open after resolving it"
            ))),
            None => Ok(None),
        }
    }

    async fn ping(&self) -> Result<(), StoreError> {
        sqlx::query("SELECT 1").execute(&self.pool).await?;
        Ok(())
    }
}

#[derive(sqlx::FromRow)]
struct ReportRow {
    id: Uuid,
    reporter_id: Uuid,
    reported_id: Uuid,
    chat_id: Uuid,
    message_ids: Json<Vec<Uuid>>,
    reason: String,
    created_at: i64,
    outcome: Option<String>,
    note: Option<String>,
    resolved_by: Option<Uuid>,
    resolved_at: Option<i64>,
}

impl ReportRow {
    fn into_parts(self) -> Result<(Report, Option<ReportResolution>), StoreError> {
        let resolution = match (self.outcome, self.resolved_by, self.resolved_at) {
            (Some(outcome), Some(by), Some(at)) => Some(ReportResolution {
                outcome: parse_outcome(&outcome)?,
                note: self.note.unwrap_or_default(),
                by,
                at: from_millis(at)?,
            }),
            _ => None,
        };
        let report = Report {
            id: self.id,
            reporter_id: self.reporter_id,
            reported_id: self.reported_id,
            chat_id: self.chat_id,
            message_ids: self.message_ids.0,
            reason: self.reason,
            created_at: from_millis(self.created_at)?,
        };
        Ok((report, resolution))
    }
}
