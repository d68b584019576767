//! Users in PostgreSQL.

use service_kit::telemetry::Backend;
use std::str::FromStr;
use std::time::Duration;

use async_trait::async_trait;
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};
use sqlx::types::Json;
use time::OffsetDateTime;
use uuid::Uuid;
use wire::api::auth::Preferences;

use super::{
    ACQUIRE_TIMEOUT, AuditEntry, Ban, ProfileUpdate, StoreError, User, UserRow, UserStore,
    Widening, content_filter_name, user_columns,
};

/// Migrations of the PostgreSQL schema.
pub static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/postgres");

/// A lazily connecting pool for `url`: it opens connections on demand, so it works (and
/// recovers) whether or not the server is up; requests fail after [`ACQUIRE_TIMEOUT`]
/// while it is down.
pub fn pool(url: &str, max_connections: u32) -> Result<PgPool, StoreError> {
    let options = PgConnectOptions::from_str(url)
        .map_err(|e| StoreError::Backend(format!("invalid PostgreSQL URL: {e}")))?;
    Ok(PgPoolOptions::new()
        .max_connections(max_connections)
        .acquire_timeout(ACQUIRE_TIMEOUT)
        .idle_timeout(Duration::from_secs(600))
        .max_lifetime(Duration::from_secs(1800))
        // A connection broken by a server restart is found out before it serves a request.
        .test_before_acquire(true)
        .connect_lazy_with(options))
}

/// Applies the migrations.
pub async fn migrate(pool: &PgPool) -> Result<(), StoreError> {
    MIGRATOR.run(pool).await.map_err(|e| match e {
        sqlx::migrate::MigrateError::Execute(inner) => pg(inner),
        other => StoreError::Backend(format!("PostgreSQL migrations failed: {other}")),
    })
}

/// Users in PostgreSQL.
#[derive(Debug, Clone)]
pub struct PgUserStore {
    pool: PgPool,
}

impl PgUserStore {
    /// A store on a migrated pool (see [`pool`] and [`migrate`]).
    pub fn new(pool: PgPool) -> Self {
        Self { pool }
    }
}

#[async_trait]
impl UserStore for PgUserStore {
    async fn create_user(&self, user: &User) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO users (id, username, password_hash, display_name, gender, birth_date, \
             interests, pref_genders, pref_min_age, pref_max_age, pref_interests, pref_widening, \
             content_filter, created_at, updated_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15)",
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
        .map_err(pg)?;
        Ok(())
    }

    async fn user_by_id(&self, id: Uuid) -> Result<Option<User>, StoreError> {
        sqlx::query_as::<_, UserRow>(concat!(
            "SELECT ",
            user_columns!(),
            " FROM users WHERE id = $1"
        ))
        .bind(id)
        .fetch_optional(&self.pool)
        .await
        .map_err(pg)?
        .map(User::try_from)
        .transpose()
    }

    async fn user_by_username(&self, username: &str) -> Result<Option<User>, StoreError> {
        sqlx::query_as::<_, UserRow>(concat!(
            "SELECT ",
            user_columns!(),
            " FROM users WHERE username = $1"
        ))
        .bind(username)
        .fetch_optional(&self.pool)
        .await
        .map_err(pg)?
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
            "UPDATE users SET display_name = COALESCE($1, display_name), \
             gender = COALESCE($2, gender), birth_date = COALESCE($3, birth_date), \
             interests = COALESCE($4, interests), content_filter = COALESCE($5, content_filter), \
             updated_at = $6 WHERE id = $7 RETURNING ",
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
        .map_err(pg)?
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
            "UPDATE users SET pref_genders = $1, pref_min_age = $2, pref_max_age = $3, \
             pref_interests = $4, pref_widening = $5, updated_at = $6 WHERE id = $7",
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
        .map_err(pg)?;
        Ok(done.rows_affected() == 1)
    }

    async fn set_password_hash(
        &self,
        id: Uuid,
        password_hash: &str,
        now: OffsetDateTime,
    ) -> Result<bool, StoreError> {
        let done =
            sqlx::query("UPDATE users SET password_hash = $1, updated_at = $2 WHERE id = $3")
                .bind(password_hash)
                .bind(now)
                .bind(id)
                .execute(&self.pool)
                .await
                .map_err(pg)?;
        Ok(done.rows_affected() == 1)
    }

    async fn set_ban(&self, id: Uuid, ban: Option<&Ban>) -> Result<bool, StoreError> {
        let done = sqlx::query(
            "UPDATE users SET banned_at = $1, ban_reason = $2, banned_by = $3 WHERE id = $4",
        )
        .bind(ban.map(|b| b.at))
        .bind(ban.map(|b| b.reason.as_str()))
        .bind(ban.map(|b| b.by))
        .bind(id)
        .execute(&self.pool)
        .await
        .map_err(pg)?;
        Ok(done.rows_affected() == 1)
    }

    async fn ban_of(&self, id: Uuid) -> Result<Option<Ban>, StoreError> {
        let row: Option<(Option<OffsetDateTime>, Option<String>, Option<Uuid>)> =
            sqlx::query_as("SELECT banned_at, ban_reason, banned_by FROM users WHERE id = $1")
                .bind(id)
                .fetch_optional(&self.pool)
                .await
                .map_err(pg)?;
        Ok(match row {
            Some((Some(at), Some(reason), Some(by))) => Some(Ban { at, reason, by }),
            _ => None,
        })
    }

    async fn record_audit(&self, entry: &AuditEntry) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO admin_audit (id, at, operator_id, action, target_id, detail) VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (id) DO NOTHING",
        )
        .bind(entry.id)
        .bind(entry.at)
        .bind(entry.operator_id)
        .bind(&entry.action)
        .bind(entry.target_id)
        .bind(&entry.detail)
        .execute(&self.pool)
        .await.map_err(pg)?;
        Ok(())
    }

    async fn audit_log(&self, limit: u32) -> Result<Vec<AuditEntry>, StoreError> {
        let rows: Vec<(Uuid, OffsetDateTime, Uuid, String, Uuid, String)> = sqlx::query_as(
            "SELECT id, at, operator_id, action, target_id, detail FROM admin_audit ORDER BY id DESC LIMIT $1",
        )
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await.map_err(pg)?;
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
            .map_err(pg)?;
        Ok(())
    }
}

/// A failure of PostgreSQL, mapped and counted.
fn pg(err: sqlx::Error) -> StoreError {
    StoreError::from_sql(Backend::Postgres, err)
}
