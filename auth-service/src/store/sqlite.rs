//! The embedded backend: users and refresh sessions in one SQLite file.

use service_kit::telemetry::Backend;
use std::str::FromStr;
use std::time::Duration;

use async_trait::async_trait;
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};
use sqlx::types::Json;
use time::OffsetDateTime;
use uuid::Uuid;
use wire::api::auth::Preferences;

use super::{
    ACQUIRE_TIMEOUT, AuditEntry, Ban, ProfileUpdate, Rotation, Session, SessionStore, StoreError,
    TokenHash, TokenLookup, User, UserRow, UserStore, Widening, content_filter_name, user_columns,
};

/// Migrations of the SQLite schema (users and sessions alike, so one file serves both).
pub static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/sqlite");

/// Opens (creating if missing) the SQLite database at `url` and applies the migrations.
///
/// `url` is a `sqlite:` URL such as `sqlite://./data/auth.db?mode=rwc` or
/// `sqlite::memory:`; the parent directory of a file is created if needed.
pub async fn connect(url: &str) -> Result<SqlitePool, StoreError> {
    let options = SqliteConnectOptions::from_str(url)
        .map_err(|e| StoreError::Backend(format!("invalid SQLite URL: {e}")))?
        .create_if_missing(true)
        .journal_mode(SqliteJournalMode::Wal)
        .synchronous(SqliteSynchronous::Normal)
        .foreign_keys(true)
        // Writers queue on SQLite's lock rather than failing at once under contention.
        .busy_timeout(Duration::from_secs(5));
    if let Some(dir) = options.get_filename().parent()
        && !dir.as_os_str().is_empty()
    {
        std::fs::create_dir_all(dir).map_err(|e| {
            StoreError::Unavailable(format!("cannot create {}: {e}", dir.display()))
        })?;
    }
    let in_memory = options.get_filename().as_os_str() == ":memory:" || url.contains(":memory:");
    let file = options.get_filename().to_owned();
    let pool = SqlitePoolOptions::new()
        // An in-memory database lives and dies with its one connection.
        .max_connections(if in_memory { 1 } else { 8 })
        .min_connections(usize::from(in_memory) as u32)
        .idle_timeout(if in_memory {
            None
        } else {
            Some(Duration::from_secs(600))
        })
        .max_lifetime(if in_memory {
            None
        } else {
            Some(Duration::from_secs(1800))
        })
        .acquire_timeout(ACQUIRE_TIMEOUT)
        .connect_with(options)
        .await
        .map_err(lite)?;
    MIGRATOR
        .run(&pool)
        .await
        .map_err(|e| StoreError::Backend(format!("SQLite migrations failed: {e}")))?;
    if !in_memory {
        service_kit::fs::ensure_private_sqlite(&file)
            .map_err(|e| StoreError::Unavailable(format!("cannot restrict the database: {e}")))?;
    }
    Ok(pool)
}

/// Users in SQLite.
#[derive(Debug, Clone)]
pub struct SqliteUserStore {
    pool: SqlitePool,
}

impl SqliteUserStore {
    /// A store on an open, migrated pool (see [`connect`]).
    pub fn new(pool: SqlitePool) -> Self {
        Self { pool }
    }
}

#[async_trait]
impl UserStore for SqliteUserStore {
    async fn create_user(&self, user: &User) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO users (id, username, password_hash, display_name, gender, birth_date, \
             interests, pref_genders, pref_min_age, pref_max_age, pref_interests, pref_widening, \
             content_filter, created_at, updated_at) \
             VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        )
        .bind(user.id)
        .bind(&user.username)
        .bind(&user.password_hash)
        .bind(&user.display_name)
        .bind(user.gender.as_str())
        .bind(user.birth_date)
        .bind(Json(&user.interests))
        .bind(Json(&user.preferences.genders))
        .bind(i32::from(user.preferences.min_age))
        .bind(i32::from(user.preferences.max_age))
        .bind(Json(&user.preferences.interests))
        .bind(Json(Widening::of(&user.preferences)))
        .bind(content_filter_name(user.content_filter))
        .bind(user.created_at)
        .bind(user.updated_at)
        .execute(&self.pool)
        .await
        .map_err(lite)?;
        Ok(())
    }

    async fn user_by_id(&self, id: Uuid) -> Result<Option<User>, StoreError> {
        sqlx::query_as::<_, UserRow>(concat!(
            "SELECT ",
            user_columns!(),
            " FROM users WHERE id = ?"
        ))
        .bind(id)
        .fetch_optional(&self.pool)
        .await
        .map_err(lite)?
        .map(User::try_from)
        .transpose()
    }

    async fn user_by_username(&self, username: &str) -> Result<Option<User>, StoreError> {
        sqlx::query_as::<_, UserRow>(concat!(
            "SELECT ",
            user_columns!(),
            " FROM users WHERE username = ?"
        ))
        .bind(username)
        .fetch_optional(&self.pool)
        .await
        .map_err(lite)?
        .map(User::try_from)
        .transpose()
    }

    async fn update_profile(
        &self,
        id: Uuid,
        update: &ProfileUpdate,
        now: OffsetDateTime,
    ) -> Result<Option<User>, StoreError> {
        sqlx::query_as::<_, UserRow>(concat!(
            "UPDATE users SET display_name = COALESCE(?, display_name), \
             gender = COALESCE(?, gender), birth_date = COALESCE(?, birth_date), \
             interests = COALESCE(?, interests), content_filter = COALESCE(?, content_filter), \
             updated_at = ? WHERE id = ? RETURNING ",
            user_columns!()
        ))
        .bind(update.display_name.as_deref())
        .bind(update.gender.map(|g| g.as_str()))
        .bind(update.birth_date)
        .bind(update.interests.as_ref().map(Json))
        .bind(update.content_filter.map(content_filter_name))
        .bind(now)
        .bind(id)
        .fetch_optional(&self.pool)
        .await
        .map_err(lite)?
        .map(User::try_from)
        .transpose()
    }

    async fn set_preferences(
        &self,
        id: Uuid,
        preferences: &Preferences,
        now: OffsetDateTime,
    ) -> Result<bool, StoreError> {
        let done = sqlx::query(
            "UPDATE users SET pref_genders = ?, pref_min_age = ?, pref_max_age = ?, \
             pref_interests = ?, pref_widening = ?, updated_at = ? WHERE id = ?",
        )
        .bind(Json(&preferences.genders))
        .bind(i32::from(preferences.min_age))
        .bind(i32::from(preferences.max_age))
        .bind(Json(&preferences.interests))
        .bind(Json(Widening::of(preferences)))
        .bind(now)
        .bind(id)
        .execute(&self.pool)
        .await
        .map_err(lite)?;
        Ok(done.rows_affected() == 1)
    }

    async fn set_password_hash(
        &self,
        id: Uuid,
        password_hash: &str,
        now: OffsetDateTime,
    ) -> Result<bool, StoreError> {
        let done = sqlx::query("UPDATE users SET password_hash = ?, updated_at = ? WHERE id = ?")
            .bind(password_hash)
            .bind(now)
            .bind(id)
            .execute(&self.pool)
            .await
            .map_err(lite)?;
        Ok(done.rows_affected() == 1)
    }

    async fn set_ban(&self, id: Uuid, ban: Option<&Ban>) -> Result<bool, StoreError> {
        let done = sqlx::query(
            "UPDATE users SET banned_at = ?, ban_reason = ?, banned_by = ? WHERE id = ?",
        )
        .bind(ban.map(|b| b.at))
        .bind(ban.map(|b| b.reason.as_str()))
        .bind(ban.map(|b| b.by))
        .bind(id)
        .execute(&self.pool)
        .await
        .map_err(lite)?;
        Ok(done.rows_affected() == 1)
    }

    async fn ban_of(&self, id: Uuid) -> Result<Option<Ban>, StoreError> {
        let row: Option<(Option<OffsetDateTime>, Option<String>, Option<Uuid>)> =
            sqlx::query_as("SELECT banned_at, ban_reason, banned_by FROM users WHERE id = ?")
                .bind(id)
                .fetch_optional(&self.pool)
                .await
                .map_err(lite)?;
        Ok(match row {
            Some((Some(at), Some(reason), Some(by))) => Some(Ban { at, reason, by }),
            _ => None,
        })
    }

    async fn record_audit(&self, entry: &AuditEntry) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO admin_audit (id, at, operator_id, action, target_id, detail) VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (id) DO NOTHING",
        )
        .bind(entry.id)
        .bind(entry.at)
        .bind(entry.operator_id)
        .bind(&entry.action)
        .bind(entry.target_id)
        .bind(&entry.detail)
        .execute(&self.pool)
        .await.map_err(lite)?;
        Ok(())
    }

    async fn audit_log(&self, limit: u32) -> Result<Vec<AuditEntry>, StoreError> {
        let rows: Vec<(Uuid, OffsetDateTime, Uuid, String, Uuid, String)> = sqlx::query_as(
            "SELECT id, at, operator_id, action, target_id, detail FROM admin_audit ORDER BY id DESC LIMIT ?",
        )
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await.map_err(lite)?;
        Ok(rows
            .into_iter()
            .map(
                |(id, at, operator_id, action, target_id, detail)| AuditEntry {
                    id,
                    at,
                    operator_id,
                    action,
                    target_id,
                    detail,
                },
            )
            .collect())
    }

    async fn ping(&self) -> Result<(), StoreError> {
        sqlx::query("SELECT 1")
            .execute(&self.pool)
            .await
            .map_err(lite)?;
        Ok(())
    }
}

/// Refresh sessions in SQLite.
#[derive(Debug, Clone)]
pub struct SqliteSessionStore {
    pool: SqlitePool,
}

impl SqliteSessionStore {
    /// A store on an open, migrated pool (see [`connect`]).
    pub fn new(pool: SqlitePool) -> Self {
        Self { pool }
    }
}

fn millis(t: OffsetDateTime) -> i64 {
    i64::try_from(t.unix_timestamp_nanos() / 1_000_000).unwrap_or(i64::MAX)
}

fn from_millis(ms: i64) -> Result<OffsetDateTime, StoreError> {
    OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000)
        .map_err(|e| StoreError::Backend(format!("invalid stored time {ms}: {e}")))
}

#[derive(sqlx::FromRow)]
struct SessionRow {
    id: Uuid,
    user_id: Uuid,
    current_hash: Vec<u8>,
    created_at: i64,
    last_used_at: i64,
    expires_at: i64,
    revoked_at: Option<i64>,
    previous_hash: Option<Vec<u8>>,
    rotated_at: Option<i64>,
    sealed_successor: Option<Vec<u8>>,
}

impl TryFrom<SessionRow> for Session {
    type Error = StoreError;

    fn try_from(row: SessionRow) -> Result<Self, StoreError> {
        let hash: [u8; 32] = row
            .current_hash
            .try_into()
            .map_err(|_| StoreError::Backend(format!("session {}: invalid token hash", row.id)))?;
        Ok(Session {
            id: row.id,
            user_id: row.user_id,
            current_hash: TokenHash(hash),
            created_at: from_millis(row.created_at)?,
            last_used_at: from_millis(row.last_used_at)?,
            expires_at: from_millis(row.expires_at)?,
            revoked_at: row.revoked_at.map(from_millis).transpose()?,
            last_rotation: match (row.previous_hash, row.rotated_at, row.sealed_successor) {
                (Some(replaced), Some(at), Some(sealed)) => {
                    let invalid =
                        || StoreError::Backend(format!("session {}: invalid rotation", row.id));
                    Some(Rotation {
                        replaced: TokenHash(replaced.try_into().map_err(|_| invalid())?),
                        at: from_millis(at)?,
                        sealed_successor: sealed.try_into().map_err(|_| invalid())?,
                    })
                }
                _ => None,
            },
        })
    }
}

const SESSION_COLUMNS: &str = "id, user_id, current_hash, created_at, last_used_at, expires_at, revoked_at, \
     previous_hash, rotated_at, sealed_successor";

#[async_trait]
impl SessionStore for SqliteSessionStore {
    async fn create_session(&self, session: &Session) -> Result<(), StoreError> {
        let mut tx = self.pool.begin().await.map_err(lite)?;
        sqlx::query(
            "INSERT INTO refresh_sessions (id, user_id, current_hash, created_at, last_used_at, \
             expires_at, revoked_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
        )
        .bind(session.id)
        .bind(session.user_id)
        .bind(&session.current_hash.0[..])
        .bind(millis(session.created_at))
        .bind(millis(session.last_used_at))
        .bind(millis(session.expires_at))
        .bind(session.revoked_at.map(millis))
        .execute(&mut *tx)
        .await
        .map_err(lite)?;
        sqlx::query(
            "INSERT INTO refresh_tokens (token_hash, session_id, expires_at) VALUES (?, ?, ?)",
        )
        .bind(&session.current_hash.0[..])
        .bind(session.id)
        .bind(millis(session.expires_at))
        .execute(&mut *tx)
        .await
        .map_err(lite)?;
        tx.commit().await.map_err(lite)?;
        Ok(())
    }

    async fn session(&self, id: Uuid) -> Result<Option<Session>, StoreError> {
        let sql = format!("SELECT {SESSION_COLUMNS} FROM refresh_sessions WHERE id = ?");
        sqlx::query_as::<_, SessionRow>(sqlx::AssertSqlSafe(sql))
            .bind(id)
            .fetch_optional(&self.pool)
            .await
            .map_err(lite)?
            .map(Session::try_from)
            .transpose()
    }

    async fn find_by_token(&self, hash: &TokenHash) -> Result<Option<TokenLookup>, StoreError> {
        let row = sqlx::query_as::<_, SessionRow>(
            "SELECT s.id, s.user_id, s.current_hash, s.created_at, s.last_used_at, s.expires_at, \
             s.revoked_at, s.previous_hash, s.rotated_at, s.sealed_successor \
             FROM refresh_tokens t JOIN refresh_sessions s ON s.id = t.session_id \
             WHERE t.token_hash = ?",
        )
        .bind(&hash.0[..])
        .fetch_optional(&self.pool)
        .await
        .map_err(lite)?;
        row.map(|row| {
            let session = Session::try_from(row)?;
            Ok(TokenLookup {
                is_current: session.current_hash == *hash,
                session,
            })
        })
        .transpose()
    }

    async fn rotate(
        &self,
        session: &Session,
        new: &TokenHash,
        rotation: &Rotation,
    ) -> Result<bool, StoreError> {
        let now = rotation.at;
        let mut tx = self.pool.begin().await.map_err(lite)?;
        let done = sqlx::query(
            "UPDATE refresh_sessions SET current_hash = ?, last_used_at = ?, previous_hash = ?, \
             rotated_at = ?, sealed_successor = ? \
             WHERE id = ? AND current_hash = ? AND revoked_at IS NULL AND expires_at > ?",
        )
        .bind(&new.0[..])
        .bind(millis(now))
        .bind(&rotation.replaced.0[..])
        .bind(millis(now))
        .bind(&rotation.sealed_successor[..])
        .bind(session.id)
        .bind(&session.current_hash.0[..])
        .bind(millis(now))
        .execute(&mut *tx)
        .await
        .map_err(lite)?;
        if done.rows_affected() != 1 {
            return Ok(false);
        }
        sqlx::query(
            "INSERT INTO refresh_tokens (token_hash, session_id, expires_at) VALUES (?, ?, ?)",
        )
        .bind(&new.0[..])
        .bind(session.id)
        .bind(millis(session.expires_at))
        .execute(&mut *tx)
        .await
        .map_err(lite)?;
        tx.commit().await.map_err(lite)?;
        Ok(true)
    }

    async fn revoke(
        &self,
        user_id: Uuid,
        id: Uuid,
        now: OffsetDateTime,
    ) -> Result<bool, StoreError> {
        let done = sqlx::query(
            "UPDATE refresh_sessions SET revoked_at = ? \
             WHERE id = ? AND user_id = ? AND revoked_at IS NULL AND expires_at > ?",
        )
        .bind(millis(now))
        .bind(id)
        .bind(user_id)
        .bind(millis(now))
        .execute(&self.pool)
        .await
        .map_err(lite)?;
        Ok(done.rows_affected() == 1)
    }

    async fn revoke_all(
        &self,
        user_id: Uuid,
        keep: Option<Uuid>,
        now: OffsetDateTime,
    ) -> Result<Vec<Uuid>, StoreError> {
        let ended = sqlx::query_scalar::<_, Uuid>(
            "UPDATE refresh_sessions SET revoked_at = ? \
             WHERE user_id = ? AND revoked_at IS NULL AND expires_at > ? \
             AND (? IS NULL OR id <> ?) RETURNING id",
        )
        .bind(millis(now))
        .bind(user_id)
        .bind(millis(now))
        .bind(keep)
        .bind(keep)
        .fetch_all(&self.pool)
        .await
        .map_err(lite)?;
        Ok(ended)
    }

    async fn active_sessions(
        &self,
        user_id: Uuid,
        now: OffsetDateTime,
    ) -> Result<Vec<Session>, StoreError> {
        let sql = format!(
            "SELECT {SESSION_COLUMNS} FROM refresh_sessions \
             WHERE user_id = ? AND revoked_at IS NULL AND expires_at > ? ORDER BY created_at, id"
        );
        sqlx::query_as::<_, SessionRow>(sqlx::AssertSqlSafe(sql))
            .bind(user_id)
            .bind(millis(now))
            .fetch_all(&self.pool)
            .await
            .map_err(lite)?
            .into_iter()
            .map(Session::try_from)
            .collect()
    }

    async fn purge_expired(&self, now: OffsetDateTime) -> Result<u64, StoreError> {
        let mut tx = self.pool.begin().await.map_err(lite)?;
        sqlx::query("DELETE FROM refresh_tokens WHERE expires_at <= ?")
            .bind(millis(now))
            .execute(&mut *tx)
            .await
            .map_err(lite)?;
        let done = sqlx::query("DELETE FROM refresh_sessions WHERE expires_at <= ?")
            .bind(millis(now))
            .execute(&mut *tx)
            .await
            .map_err(lite)?;
        tx.commit().await.map_err(lite)?;
        Ok(done.rows_affected())
    }

    async fn ping(&self) -> Result<(), StoreError> {
        sqlx::query("SELECT 1")
            .execute(&self.pool)
            .await
            .map_err(lite)?;
        Ok(())
    }
}

/// A failure of SQLite, mapped and counted.
fn lite(err: sqlx::Error) -> StoreError {
    StoreError::from_sql(Backend::Sqlite, err)
}
