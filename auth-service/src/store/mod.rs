//! Storage behind traits: [`UserStore`] (accounts, profiles, preferences) and
//! [`SessionStore`] (refresh-token sessions), one implementation per backend.
//!
//! - [`postgres`] — users in PostgreSQL.
//! - [`sqlite`] — users and sessions in one SQLite file (the embedded default).
//! - [`dynamodb`] — sessions in DynamoDB.
//! - `conformance` (tests, or the `conformance` feature) — the one test suite every implementation must pass.

#[cfg(any(test, feature = "conformance"))]
pub mod conformance;
pub mod dynamodb;
pub mod postgres;
pub mod sqlite;

use service_kit::telemetry::{Backend, count_backend_error};
use std::time::Duration;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use time::{Date, OffsetDateTime};
use uuid::Uuid;
use wire::api::auth::{AuditEntry, ContentFilter, Preferences};
use wire::api::matching::InterestMode;
use wire::domain::Gender;

/// How long a request waits for a database connection before answering 503: a backend
/// that is down must fail requests fast rather than pile them up.
pub const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(2);

/// The current time at the precision every backend keeps (milliseconds), so that what is
/// written reads back equal.
pub fn now() -> OffsetDateTime {
    let t = OffsetDateTime::now_utc();
    t.replace_millisecond(t.millisecond())
        .expect("the current millisecond is valid")
}

/// Why a store operation failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The unique constraint on the username was violated.
    #[error("the username is taken")]
    UsernameTaken,
    /// The backend cannot be reached or did not answer in time.
    #[error("the storage backend is unavailable: {0}")]
    Unavailable(String),
    /// Any other backend failure (a bug or corrupt data; logged, answered as 500).
    #[error("storage backend error: {0}")]
    Backend(String),
}

impl StoreError {
    /// Maps a failure of the SQL database `backend` (PostgreSQL or SQLite), counting it as
    /// a backend error unless it is the expected taken username.
    pub(crate) fn from_sql(backend: Backend, err: sqlx::Error) -> Self {
        let unavailable = match &err {
            sqlx::Error::PoolTimedOut
            | sqlx::Error::PoolClosed
            | sqlx::Error::Io(_)
            | sqlx::Error::Tls(_)
            | sqlx::Error::WorkerCrashed => true,
            sqlx::Error::Database(db) if is_username_constraint(db.as_ref()) => {
                return StoreError::UsernameTaken;
            }
            sqlx::Error::Database(db) => is_unavailable_code(db.code().as_deref()),
            _ => false,
        };
        count_backend_error(backend, unavailable);
        if unavailable {
            StoreError::Unavailable(err.to_string())
        } else {
            StoreError::Backend(err.to_string())
        }
    }
}

/// Name of the unique constraint on `users.username` (the same in both schemas).
pub const USERNAME_CONSTRAINT: &str = "users_username_key";

fn is_username_constraint(err: &dyn sqlx::error::DatabaseError) -> bool {
    if !matches!(err.kind(), sqlx::error::ErrorKind::UniqueViolation) {
        return false;
    }
    match err.constraint() {
        Some(name) => name == USERNAME_CONSTRAINT,
        // SQLite does not report constraint names; its message names the column instead
        // ("UNIQUE constraint failed: users.username").
        None => err.message().contains("users.username"),
    }
}

/// PostgreSQL error classes meaning "the server cannot serve this now": 08 (connection
/// exception), 53 (insufficient resources), 57P (operator intervention, e.g. shutdown).
fn is_unavailable_code(code: Option<&str>) -> bool {
    code.is_some_and(|c| c.starts_with("08") || c.starts_with("53") || c.starts_with("57P"))
}

/// A stored account.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User {
    /// User id.
    pub id: Uuid,
    /// Lower-case username.
    pub username: String,
    /// argon2id PHC string.
    pub password_hash: String,
    /// Name shown to partners.
    pub display_name: String,
    /// Gender.
    pub gender: Gender,
    /// Birth date.
    pub birth_date: Date,
    /// Normalised interest tags.
    pub interests: Vec<String>,
    /// Default matching preferences.
    pub preferences: Preferences,
    /// How much of what the user receives is masked.
    pub content_filter: ContentFilter,
    /// Creation time.
    pub created_at: OffsetDateTime,
    /// Last change of the profile, preferences or password.
    pub updated_at: OffsetDateTime,
}

/// The profile fields an update may change; `None` keeps the stored value.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ProfileUpdate {
    /// New display name.
    pub display_name: Option<String>,
    /// New gender.
    pub gender: Option<Gender>,
    /// New birth date.
    pub birth_date: Option<Date>,
    /// New interests.
    pub interests: Option<Vec<String>>,
    /// New content filter level.
    pub content_filter: Option<ContentFilter>,
}

/// The preference fields beyond genders, ages and interests, stored together as one JSON
/// value (`pref_widening`) so that a new knob needs no schema change. Absent fields read
/// back as their defaults.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub(crate) struct Widening {
    interest_mode: InterestMode,
    age_widen_years: u8,
    widen_every_secs: u32,
    fallback_after_secs: Option<u32>,
}

impl Default for Widening {
    fn default() -> Self {
        Self::of(&Preferences::default())
    }
}

impl Widening {
    /// The widening part of `preferences`.
    pub(crate) fn of(preferences: &Preferences) -> Self {
        Self {
            interest_mode: preferences.interest_mode,
            age_widen_years: preferences.age_widen_years,
            widen_every_secs: preferences.widen_every_secs,
            fallback_after_secs: preferences.fallback_after_secs,
        }
    }
}

/// The stored name of a content filter level.
pub(crate) fn content_filter_name(level: ContentFilter) -> &'static str {
    match level {
        ContentFilter::Off => "off",
        ContentFilter::Mild => "mild",
        ContentFilter::Strict => "strict",
    }
}

fn parse_content_filter(name: &str) -> Option<ContentFilter> {
    match name {
        "off" => Some(ContentFilter::Off),
        "mild" => Some(ContentFilter::Mild),
        "strict" => Some(ContentFilter::Strict),
        _ => None,
    }
}

/// Accounts, profiles and default preferences.
#[async_trait]
pub trait UserStore: Send + Sync + std::fmt::Debug + 'static {
    /// Inserts a new account; [`StoreError::UsernameTaken`] when the name exists.
    async fn create_user(&self, user: &User) -> Result<(), StoreError>;

    /// The account with this id.
    async fn user_by_id(&self, id: Uuid) -> Result<Option<User>, StoreError>;

    /// The account with this (lower-case) username.
    async fn user_by_username(&self, username: &str) -> Result<Option<User>, StoreError>;

    /// Applies a profile update; the updated account, or `None` for an unknown id.
    async fn update_profile(
        &self,
        id: Uuid,
        update: &ProfileUpdate,
        now: OffsetDateTime,
    ) -> Result<Option<User>, StoreError>;

    /// Replaces the default preferences; `false` for an unknown id.
    async fn set_preferences(
        &self,
        id: Uuid,
        preferences: &Preferences,
        now: OffsetDateTime,
    ) -> Result<bool, StoreError>;

    /// Replaces the password hash; `false` for an unknown id.
    async fn set_password_hash(
        &self,
        id: Uuid,
        password_hash: &str,
        now: OffsetDateTime,
    ) -> Result<bool, StoreError>;

    /// Bans the account (`Some`) or lifts its ban (`None`); `false` for an unknown id.
    async fn set_ban(&self, id: Uuid, ban: Option<&Ban>) -> Result<bool, StoreError>;

    /// The account's ban, if it is banned.
    async fn ban_of(&self, id: Uuid) -> Result<Option<Ban>, StoreError>;

    /// Appends an operator action to the audit log; an entry whose id is already there
    /// is kept as it was.
    async fn record_audit(&self, entry: &AuditEntry) -> Result<(), StoreError>;

    /// The newest `limit` entries of the audit log, newest first.
    async fn audit_log(&self, limit: u32) -> Result<Vec<AuditEntry>, StoreError>;

    /// Checks that the backend answers (readiness).
    async fn ping(&self) -> Result<(), StoreError>;
}

/// Why and since when an account is banned, and by which operator.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ban {
    /// Since when.
    pub at: OffsetDateTime,
    /// The operator's reason.
    pub reason: String,
    /// The operator.
    pub by: Uuid,
}

/// SHA-256 of a refresh token: the only form in which refresh tokens are stored.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct TokenHash(pub [u8; 32]);

impl std::fmt::Debug for TokenHash {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // A prefix is enough to tell hashes apart in test output.
        write!(
            f,
            "TokenHash({:02x}{:02x}{:02x}{:02x}..)",
            self.0[0], self.0[1], self.0[2], self.0[3]
        )
    }
}

/// A refresh session ("family"): begun by a log in, carried on by each refresh.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Session {
    /// Session id (the `sid` of access tokens issued under it).
    pub id: Uuid,
    /// Owner.
    pub user_id: Uuid,
    /// Hash of the one refresh token that is valid now.
    pub current_hash: TokenHash,
    /// Log-in time.
    pub created_at: OffsetDateTime,
    /// Last refresh (or the log in).
    pub last_used_at: OffsetDateTime,
    /// Absolute end, whatever the refreshes.
    pub expires_at: OffsetDateTime,
    /// When the session was ended (log out, reuse, password change), if it was.
    pub revoked_at: Option<OffsetDateTime>,
    /// The last refresh, if there was one: lets a retried or concurrent refresh with the
    /// token it replaced get the same new token within the grace window.
    pub last_rotation: Option<Rotation>,
}

/// One refresh of a session: the token it replaced and the one it issued, sealed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rotation {
    /// Hash of the token that was replaced.
    pub replaced: TokenHash,
    /// When.
    pub at: OffsetDateTime,
    /// The new token's 32 secret bytes, XOR-ed with a pad derived from the replaced
    /// token's secret (`refresh::seal`): the store alone cannot open it.
    pub sealed_successor: [u8; 32],
}

impl Session {
    /// A new session whose first refresh token hashes to `hash`.
    pub fn begin(user_id: Uuid, hash: TokenHash, now: OffsetDateTime, lifetime: Duration) -> Self {
        Self {
            id: Uuid::now_v7(),
            user_id,
            current_hash: hash,
            created_at: now,
            last_used_at: now,
            expires_at: now + lifetime,
            revoked_at: None,
            last_rotation: None,
        }
    }

    /// Whether refresh tokens of this session may still be used at `now`.
    pub fn is_active(&self, now: OffsetDateTime) -> bool {
        self.revoked_at.is_none() && now < self.expires_at
    }
}

/// What a refresh token hash was found to be.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenLookup {
    /// The session the token was issued under.
    pub session: Session,
    /// Whether it is the session's current token (`false`: it was already rotated).
    pub is_current: bool,
}

/// Refresh-token sessions.
#[async_trait]
pub trait SessionStore: Send + Sync + std::fmt::Debug + 'static {
    /// Stores a new session and its first token.
    async fn create_session(&self, session: &Session) -> Result<(), StoreError>;

    /// The session with this id.
    async fn session(&self, id: Uuid) -> Result<Option<Session>, StoreError>;

    /// The session a token (current or rotated) was issued under.
    async fn find_by_token(&self, hash: &TokenHash) -> Result<Option<TokenLookup>, StoreError>;

    /// Replaces the current token of `session` (as read: `session.current_hash`) by `new`,
    /// only if that token is still current and the session is neither revoked nor expired
    /// at `rotation.at` — a conditional write, so that of two concurrent rotations of one
    /// token exactly one succeeds — and records `rotation` as the session's
    /// `last_rotation`. `true` when it did.
    async fn rotate(
        &self,
        session: &Session,
        new: &TokenHash,
        rotation: &Rotation,
    ) -> Result<bool, StoreError>;

    /// Ends the session `id` of `user_id`; `false` when there is no such active session.
    async fn revoke(
        &self,
        user_id: Uuid,
        id: Uuid,
        now: OffsetDateTime,
    ) -> Result<bool, StoreError>;

    /// Ends every active session of `user_id` except `keep`; returns the ids of those it
    /// ended, so that their access tokens can be refused everywhere.
    async fn revoke_all(
        &self,
        user_id: Uuid,
        keep: Option<Uuid>,
        now: OffsetDateTime,
    ) -> Result<Vec<Uuid>, StoreError>;

    /// The sessions of `user_id` that are active at `now`, oldest first.
    async fn active_sessions(
        &self,
        user_id: Uuid,
        now: OffsetDateTime,
    ) -> Result<Vec<Session>, StoreError>;

    /// Deletes sessions and tokens whose absolute lifetime ended before `now`; returns how
    /// many sessions were deleted (backends with native expiry may return 0).
    async fn purge_expired(&self, now: OffsetDateTime) -> Result<u64, StoreError>;

    /// Checks that the backend answers (readiness).
    async fn ping(&self) -> Result<(), StoreError>;
}

/// A `users` row as both SQL schemas store it.
#[derive(sqlx::FromRow)]
pub(crate) struct UserRow {
    id: Uuid,
    username: String,
    password_hash: String,
    display_name: String,
    gender: String,
    birth_date: Date,
    interests: sqlx::types::Json<Vec<String>>,
    pref_genders: sqlx::types::Json<Vec<Gender>>,
    pref_min_age: i32,
    pref_max_age: i32,
    pref_interests: sqlx::types::Json<Vec<String>>,
    pref_widening: sqlx::types::Json<Widening>,
    content_filter: String,
    created_at: OffsetDateTime,
    updated_at: OffsetDateTime,
}

impl TryFrom<UserRow> for User {
    type Error = StoreError;

    fn try_from(row: UserRow) -> Result<Self, StoreError> {
        let corrupt = |what: &str| StoreError::Backend(format!("user {}: invalid {what}", row.id));
        Ok(User {
            id: row.id,
            gender: Gender::parse(&row.gender).ok_or_else(|| corrupt("gender"))?,
            preferences: Preferences {
                genders: row.pref_genders.0,
                min_age: u8::try_from(row.pref_min_age).map_err(|_| corrupt("min_age"))?,
                max_age: u8::try_from(row.pref_max_age).map_err(|_| corrupt("max_age"))?,
                interests: row.pref_interests.0,
                interest_mode: row.pref_widening.0.interest_mode,
                age_widen_years: row.pref_widening.0.age_widen_years,
                widen_every_secs: row.pref_widening.0.widen_every_secs,
                fallback_after_secs: row.pref_widening.0.fallback_after_secs,
            },
            content_filter: parse_content_filter(&row.content_filter)
                .ok_or_else(|| corrupt("content_filter"))?,
            username: row.username,
            password_hash: row.password_hash,
            display_name: row.display_name,
            birth_date: row.birth_date,
            interests: row.interests.0,
            created_at: row.created_at,
            updated_at: row.updated_at,
        })
    }
}

/// The columns of a [`UserRow`], as a literal for `concat!`.
macro_rules! user_columns {
    () => {
        "id, username, password_hash, display_name, gender, birth_date, interests, \
         pref_genders, pref_min_age, pref_max_age, pref_interests, pref_widening, \
         content_filter, created_at, updated_at"
    };
}
pub(crate) use user_columns;
