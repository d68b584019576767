//! The SQLite append path: one thread with a connection of its own runs each batch of
//! appends whole, as one `BEGIN IMMEDIATE` transaction with prepared statements.
//!
//! The rest of the store talks to SQLite through sqlx, whose connections run every
//! statement on a worker thread: each statement is a hand-over to that thread and back.
//! A batch takes a handful of statements per message, so on the hot path the hand-overs
//! cost more than the work. Here a whole batch is one hand-over: the async side sends it
//! to the thread and awaits the answer; the thread runs the transaction, commits (one
//! fsync) and answers. The thread's connection is one more connection to the same file
//! (WAL, `synchronous=FULL`), so it takes the write lock like any other writer.

use std::collections::HashMap;
use std::collections::hash_map::Entry;
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::time::Duration;

use rusqlite::{
    CachedStatement, Connection, ErrorCode, OptionalExtension, TransactionBehavior, params,
};
use service_kit::telemetry::{Backend, count_backend_error};
use tokio::sync::oneshot;
use uuid::Uuid;
use wire::api::message::Message;

use crate::store::{
    AppendOutcome, NewMessage, StoreError, Written, from_millis, to_i64, to_millis,
};

/// How long the thread waits for SQLite's write lock held by another connection.
const BUSY_TIMEOUT: Duration = Duration::from_secs(10);

/// Prepared statements the thread keeps (a batch uses six).
const STATEMENT_CACHE: usize = 16;

type Reply = oneshot::Sender<Result<Vec<AppendOutcome>, StoreError>>;

/// A handle to the append thread of one database file. Cheap to clone; the thread ends
/// when every handle is gone.
#[derive(Debug, Clone)]
pub(super) struct Appender {
    jobs: mpsc::Sender<(Vec<NewMessage>, Reply)>,
}

impl Appender {
    /// Opens a connection to the (migrated) database at `path` and starts its thread.
    pub(super) fn open(path: &Path) -> Result<Self, StoreError> {
        let conn = open_connection(path)?;
        let (jobs, queue) = mpsc::channel();
        let name = format!("sqlite-append:{}", path.display());
        std::thread::Builder::new()
            .name("sqlite-append".to_owned())
            .spawn(move || run(conn, &queue))
            .map_err(|e| StoreError::Unavailable(format!("cannot start {name}: {e}")))?;
        Ok(Self { jobs })
    }

    /// Appends `batch` as [`MessageStore::append_batch`](crate::store::MessageStore::append_batch)
    /// describes, in one transaction on the thread.
    pub(super) async fn append(
        &self,
        batch: Vec<NewMessage>,
    ) -> Result<Vec<AppendOutcome>, StoreError> {
        let (reply, answer) = oneshot::channel();
        self.jobs.send((batch, reply)).map_err(|_| stopped())?;
        answer.await.map_err(|_| stopped())?
    }
}

fn stopped() -> StoreError {
    StoreError::Unavailable("the SQLite append thread has stopped".to_owned())
}

fn open_connection(path: &Path) -> Result<Connection, StoreError> {
    let conn = Connection::open(PathBuf::from(path)).map_err(store_error)?;
    conn.busy_timeout(BUSY_TIMEOUT).map_err(store_error)?;
    // The same settings as the store's other connections: WAL, and FULL so that an
    // acknowledged message survives power loss.
    conn.pragma_update(None, "journal_mode", "WAL")
        .map_err(store_error)?;
    conn.pragma_update(None, "synchronous", "FULL")
        .map_err(store_error)?;
    conn.pragma_update(None, "foreign_keys", true)
        .map_err(store_error)?;
    conn.pragma_update(None, "wal_autocheckpoint", super::WAL_AUTOCHECKPOINT_PAGES)
        .map_err(store_error)?;
    conn.set_prepared_statement_cache_capacity(STATEMENT_CACHE);
    Ok(conn)
}

/// The thread: one batch at a time until every handle is gone.
fn run(mut conn: Connection, queue: &mpsc::Receiver<(Vec<NewMessage>, Reply)>) {
    while let Ok((batch, reply)) = queue.recv() {
        // A caller that went away needs no answer; its batch is committed or not all the same.
        let _ = reply.send(append_batch(&mut conn, &batch));
    }
}

/// Runs `batch` in one `BEGIN IMMEDIATE` transaction; any error rolls all of it back
/// (the transaction is dropped uncommitted).
fn append_batch(
    conn: &mut Connection,
    batch: &[NewMessage],
) -> Result<Vec<AppendOutcome>, StoreError> {
    if batch.is_empty() {
        return Ok(Vec::new());
    }
    let tx = conn
        .transaction_with_behavior(TransactionBehavior::Immediate)
        .map_err(store_error)?;
    let outcomes = append_all(&tx, batch).map_err(store_error)?;
    tx.commit().map_err(store_error)?;
    Ok(outcomes)
}

/// What the appends of one batch need of a chat, read once per batch: its participants,
/// whether it ended, and its counter as the batch moves it.
struct ChatTurn {
    participants: Vec<Uuid>,
    ended: bool,
    last_seq: u64,
    first_seq: u64,
}

/// A message's identity for resends: chat, sender, client id.
type ResendKey = (Uuid, Uuid, String);

/// Appends `batch` in order inside the open transaction: per item the resend check (the
/// batch's own earlier items first, then the table), the participant and end checks
/// (each chat read once) and the insert with the next seq; then one counter update per
/// chat that moved. Refusals are per item and write nothing.
fn append_all(conn: &Connection, batch: &[NewMessage]) -> rusqlite::Result<Vec<AppendOutcome>> {
    let mut find = conn.prepare_cached(
        "SELECT id, seq, text, created_at FROM messages \
         WHERE chat_id = ?1 AND sender_id = ?2 AND client_msg_id = ?3",
    )?;
    let mut chat = conn.prepare_cached("SELECT ended_at, last_seq FROM chats WHERE id = ?1")?;
    let mut participants =
        conn.prepare_cached("SELECT user_id FROM chat_participants WHERE chat_id = ?1")?;
    let mut insert = conn.prepare_cached(
        "INSERT INTO messages (id, chat_id, seq, sender_id, client_msg_id, text, created_at) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
    )?;
    let mut known: HashMap<ResendKey, Message> = HashMap::new();
    let mut turns: HashMap<Uuid, Option<ChatTurn>> = HashMap::new();
    let mut outcomes = Vec::with_capacity(batch.len());
    for new in batch {
        let key = (new.chat_id, new.sender_id, new.client_msg_id.clone());
        let original = match known.get(&key) {
            Some(message) => Some(message.clone()),
            None => find
                .query_row(
                    params![
                        new.chat_id.as_bytes(),
                        new.sender_id.as_bytes(),
                        new.client_msg_id
                    ],
                    |row| {
                        Ok(Message {
                            id: uuid_of(row.get_ref(0)?.as_blob()?)?,
                            chat_id: new.chat_id,
                            seq: seq_of(row.get(1)?)?,
                            sender_id: new.sender_id,
                            client_msg_id: new.client_msg_id.clone(),
                            text: row.get(2)?,
                            created_at: time_of(row.get(3)?)?,
                        })
                    },
                )
                .optional()?,
        };
        if let Some(original) = original {
            known.insert(key, original.clone());
            outcomes.push(Ok(Written {
                value: original,
                created: false,
            }));
            continue;
        }
        let turn = match turns.entry(new.chat_id) {
            Entry::Occupied(known) => known.into_mut(),
            Entry::Vacant(slot) => {
                slot.insert(chat_turn(&mut chat, &mut participants, new.chat_id)?)
            }
        };
        let Some(turn) = turn
            .as_mut()
            .filter(|t| t.participants.contains(&new.sender_id))
        else {
            outcomes.push(Err(StoreError::ChatNotFound));
            continue;
        };
        if turn.ended {
            outcomes.push(Err(StoreError::ChatEnded));
            continue;
        }
        turn.last_seq += 1;
        let message = Message {
            id: new.id,
            chat_id: new.chat_id,
            seq: turn.last_seq,
            sender_id: new.sender_id,
            client_msg_id: new.client_msg_id.clone(),
            text: new.text.clone(),
            created_at: new.created_at,
        };
        insert.execute(params![
            message.id.as_bytes(),
            message.chat_id.as_bytes(),
            to_i64(message.seq),
            message.sender_id.as_bytes(),
            message.client_msg_id,
            message.text,
            to_millis(message.created_at),
        ])?;
        known.insert(key, message.clone());
        outcomes.push(Ok(Written {
            value: message,
            created: true,
        }));
    }
    let mut advance = conn.prepare_cached("UPDATE chats SET last_seq = ?1 WHERE id = ?2")?;
    for (id, turn) in &turns {
        if let Some(turn) = turn.as_ref().filter(|t| t.last_seq != t.first_seq) {
            advance.execute(params![to_i64(turn.last_seq), id.as_bytes()])?;
        }
    }
    Ok(outcomes)
}

/// The chat `id` as the appends of a batch see it, or `None` when there is no such chat.
fn chat_turn(
    chat: &mut CachedStatement<'_>,
    participants: &mut CachedStatement<'_>,
    id: Uuid,
) -> rusqlite::Result<Option<ChatTurn>> {
    let Some(mut turn) = chat
        .query_row([id.as_bytes()], |row| {
            let ended_at: Option<i64> = row.get(0)?;
            let last_seq = seq_of(row.get(1)?)?;
            Ok(ChatTurn {
                participants: Vec::new(),
                ended: ended_at.is_some(),
                last_seq,
                first_seq: last_seq,
            })
        })
        .optional()?
    else {
        return Ok(None);
    };
    let mut rows = participants.query([id.as_bytes()])?;
    while let Some(row) = rows.next()? {
        turn.participants.push(uuid_of(row.get_ref(0)?.as_blob()?)?);
    }
    Ok(Some(turn))
}

/// A stored id (16 bytes, as sqlx writes a `Uuid`).
fn uuid_of(bytes: &[u8]) -> rusqlite::Result<Uuid> {
    Uuid::from_slice(bytes).map_err(|e| {
        rusqlite::Error::FromSqlConversionFailure(0, rusqlite::types::Type::Blob, Box::new(e))
    })
}

/// A stored sequence number (never negative).
fn seq_of(value: i64) -> rusqlite::Result<u64> {
    u64::try_from(value).map_err(|e| {
        rusqlite::Error::FromSqlConversionFailure(0, rusqlite::types::Type::Integer, Box::new(e))
    })
}

/// A stored time (milliseconds since the epoch).
fn time_of(ms: i64) -> rusqlite::Result<time::OffsetDateTime> {
    from_millis(ms).map_err(|e| {
        rusqlite::Error::FromSqlConversionFailure(0, rusqlite::types::Type::Integer, Box::new(e))
    })
}

/// The store's error for a SQLite failure, counted: busy or locked after the busy timeout
/// (the database is overloaded) and I/O failures are "unavailable".
fn store_error(err: rusqlite::Error) -> StoreError {
    let unavailable = matches!(
        err.sqlite_error_code(),
        Some(
            ErrorCode::DatabaseBusy
                | ErrorCode::DatabaseLocked
                | ErrorCode::SystemIoFailure
                | ErrorCode::CannotOpen
                | ErrorCode::DiskFull
        )
    );
    count_backend_error(Backend::Sqlite, unavailable);
    if unavailable {
        StoreError::Unavailable(err.to_string())
    } else {
        StoreError::Backend(err.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_busy_database_is_unavailable_and_a_constraint_is_not() {
        let busy = rusqlite::Error::SqliteFailure(
            rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_BUSY),
            None,
        );
        assert!(matches!(store_error(busy), StoreError::Unavailable(_)));
        let constraint = rusqlite::Error::SqliteFailure(
            rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_CONSTRAINT),
            Some("UNIQUE constraint failed".to_owned()),
        );
        assert!(matches!(store_error(constraint), StoreError::Backend(_)));
    }
}
