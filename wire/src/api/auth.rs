//! auth-service bodies: sign up, log in, tokens, profiles, preferences, sessions.

use serde::{Deserialize, Serialize};
use time::{Date, OffsetDateTime};
use uuid::Uuid;

use crate::domain::Gender;

/// `POST /v1/auth/signup`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct SignupRequest {
    /// 3 to 32 of `a-z0-9_`, case-insensitive unique.
    pub username: String,
    /// 8 to 128 characters, not equal to the username.
    pub password: String,
    /// Name shown to partners, 1 to 64 characters.
    pub display_name: String,
    /// The user's gender.
    pub gender: Gender,
    /// `YYYY-MM-DD`; the user must be 18 or older.
    #[cfg_attr(feature = "openapi", schema(value_type = String, format = Date, example = "1995-04-23"))]
    pub birth_date: Date,
    /// 0 to 20 interest tags.
    #[serde(default)]
    pub interests: Vec<String>,
}

/// `POST /v1/auth/login`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct LoginRequest {
    /// The username (any case).
    pub username: String,
    /// The password.
    pub password: String,
}

/// `POST /v1/auth/refresh`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct RefreshRequest {
    /// The current refresh token; it is rotated by this call.
    pub refresh_token: String,
}

/// Tokens issued by sign up, log in and refresh.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct TokenPair {
    /// The user these tokens are for.
    pub user_id: Uuid,
    /// The refresh session (one per login).
    pub session_id: Uuid,
    /// Signed JWT for `Authorization: Bearer`.
    pub access_token: String,
    /// Always `Bearer`.
    pub token_type: String,
    /// Seconds until the access token expires.
    pub expires_in: u64,
    /// Opaque refresh token; single use.
    pub refresh_token: String,
    /// When the session ends at the latest, whatever the refreshes.
    #[serde(with = "time::serde::rfc3339")]
    #[cfg_attr(feature = "openapi", schema(value_type = String, format = DateTime))]
    pub refresh_expires_at: OffsetDateTime,
}

/// `POST /v1/auth/signup` answer.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct SignupResponse {
    /// The new account.
    pub user: Profile,
    /// Tokens of the first session.
    pub tokens: TokenPair,
}

/// How much of what a user receives is masked by the profanity and slur filter. What is
/// stored is never altered; the filter applies on delivery and in history.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum ContentFilter {
    /// Nothing is masked (the default: masking costs an analysis of every message the
    /// user receives, so it is paid only by those who ask for it).
    #[default]
    Off,
    /// Slurs and severe insults are masked.
    Mild,
    /// Every profane, sexual or offensive word is masked.
    Strict,
}

/// What an account may do beyond chatting.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// A user.
    #[default]
    User,
    /// An operator: may use the moderation interface (on its non-public listener).
    Admin,
}

/// Default matching preferences of a user.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Preferences {
    /// Genders the user wants to meet; empty means any.
    pub genders: Vec<Gender>,
    /// Youngest partner age, at least 18.
    pub min_age: u8,
    /// Oldest partner age.
    pub max_age: u8,
    /// Interests to match on (normalised tags).
    pub interests: Vec<String>,
    /// How strictly interests apply when joining the queue without saying (default
    /// `preferred`).
    #[serde(default)]
    pub interest_mode: crate::api::matching::InterestMode,
    /// How many years the age range may widen on each side while waiting (default 0).
    #[serde(default)]
    pub age_widen_years: u8,
    /// Seconds of waiting per year of widening (default 10).
    #[serde(default = "default_widen_every_secs")]
    pub widen_every_secs: u32,
    /// After this many seconds of waiting, required interests fall back to preferred
    /// (absent: never).
    #[serde(default)]
    pub fallback_after_secs: Option<u32>,
}

impl Default for Preferences {
    /// Anyone from 18 to 120, no interests, interests preferred, no widening.
    fn default() -> Self {
        Self {
            genders: Vec::new(),
            min_age: crate::domain::MIN_AGE,
            max_age: crate::domain::MAX_AGE,
            interests: Vec::new(),
            interest_mode: Default::default(),
            age_widen_years: 0,
            widen_every_secs: DEFAULT_WIDEN_EVERY_SECS,
            fallback_after_secs: None,
        }
    }
}

/// The default of [`Preferences::widen_every_secs`].
pub const DEFAULT_WIDEN_EVERY_SECS: u32 = 10;

fn default_widen_every_secs() -> u32 {
    DEFAULT_WIDEN_EVERY_SECS
}

/// The caller's own profile: `GET /v1/me`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Profile {
    /// User id.
    pub id: Uuid,
    /// Lower-case username.
    pub username: String,
    /// Name shown to partners.
    pub display_name: String,
    /// Gender.
    pub gender: Gender,
    /// Birth date.
    #[cfg_attr(feature = "openapi", schema(value_type = String, format = Date))]
    pub birth_date: Date,
    /// Age today.
    pub age: u8,
    /// Interest tags.
    pub interests: Vec<String>,
    /// Default matching preferences.
    pub preferences: Preferences,
    /// How much of what the user receives is masked.
    #[serde(default)]
    pub content_filter: ContentFilter,
    /// Account creation time.
    #[serde(with = "time::serde::rfc3339")]
    #[cfg_attr(feature = "openapi", schema(value_type = String, format = DateTime))]
    pub created_at: OffsetDateTime,
}

/// `PATCH /v1/me`: every field optional.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct UpdateProfileRequest {
    /// New display name.
    pub display_name: Option<String>,
    /// New gender.
    pub gender: Option<Gender>,
    /// New birth date.
    #[cfg_attr(feature = "openapi", schema(value_type = Option<String>, format = Date))]
    pub birth_date: Option<Date>,
    /// New interests (replaces the list).
    pub interests: Option<Vec<String>>,
    /// New content filter level: how much of what others send this user is masked. It
    /// travels in the access token, so it applies from the next token on (refresh).
    #[serde(default)]
    pub content_filter: Option<ContentFilter>,
}

/// `POST /v1/me/password`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ChangePasswordRequest {
    /// The current password.
    pub current_password: String,
    /// The new password.
    pub new_password: String,
}

/// One refresh session: `GET /v1/me/sessions`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct SessionInfo {
    /// Session id.
    pub id: Uuid,
    /// When the session began (log in).
    #[serde(with = "time::serde::rfc3339")]
    #[cfg_attr(feature = "openapi", schema(value_type = String, format = DateTime))]
    pub created_at: OffsetDateTime,
    /// Last refresh.
    #[serde(with = "time::serde::rfc3339")]
    #[cfg_attr(feature = "openapi", schema(value_type = String, format = DateTime))]
    pub last_used_at: OffsetDateTime,
    /// Absolute end of the session.
    #[serde(with = "time::serde::rfc3339")]
    #[cfg_attr(feature = "openapi", schema(value_type = String, format = DateTime))]
    pub expires_at: OffsetDateTime,
    /// Whether this is the session of the calling token.
    pub current: bool,
}

/// What other users (and services) may know of a user.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct PublicProfile {
    /// User id.
    pub id: Uuid,
    /// Name shown to partners.
    pub display_name: String,
    /// Gender.
    pub gender: Gender,
    /// Age today.
    pub age: u8,
    /// Interest tags.
    pub interests: Vec<String>,
}

/// Internal `GET /internal/users/{id}`: public profile plus default preferences, for the
/// matching service.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct MatchingProfile {
    /// The public profile.
    pub profile: PublicProfile,
    /// Default matching preferences.
    pub preferences: Preferences,
}

// ---- endpoints ---------------------------------------------------------------------

use crate::endpoint::endpoint;

endpoint! {
    /// `POST /v1/auth/signup`: create an account and its first session.
    Signup: POST "/v1/auth/signup", (), SignupRequest => SignupResponse
}
endpoint! {
    /// `POST /v1/auth/login`: begin a session.
    Login: POST "/v1/auth/login", (), LoginRequest => TokenPair
}
endpoint! {
    /// `POST /v1/auth/refresh`: rotate the refresh token, get a new access token.
    Refresh: POST "/v1/auth/refresh", (), RefreshRequest => TokenPair
}
endpoint! {
    /// `POST /v1/auth/logout`: end the session of the calling access token.
    Logout: POST "/v1/auth/logout", (), () => ()
}
endpoint! {
    /// `GET /v1/me`: the caller's profile.
    GetMe: GET "/v1/me", (), () => Profile
}
endpoint! {
    /// `PATCH /v1/me`: edit the caller's profile.
    UpdateMe: PATCH "/v1/me", (), UpdateProfileRequest => Profile
}
endpoint! {
    /// `GET /v1/me/preferences`: the caller's saved matching preferences.
    GetPreferences: GET "/v1/me/preferences", (), () => Preferences
}
endpoint! {
    /// `PUT /v1/me/preferences`: replace the caller's saved matching preferences.
    SetPreferences: PUT "/v1/me/preferences", (), Preferences => Preferences
}
endpoint! {
    /// `POST /v1/me/password`: change the password; every other session ends.
    ChangePassword: POST "/v1/me/password", (), ChangePasswordRequest => ()
}
endpoint! {
    /// `GET /v1/me/sessions`: the caller's active sessions.
    ListSessions: GET "/v1/me/sessions", (), () => Vec<SessionInfo>
}
endpoint! {
    /// `DELETE /v1/me/sessions/{id}`: end one of the caller's sessions.
    EndSession: DELETE "/v1/me/sessions/{id}", uuid::Uuid, () => ()
}
endpoint! {
    /// Internal `GET /internal/users/{id}`: public profile and saved preferences, for the
    /// matcher.
    GetMatchingProfile: GET "/internal/users/{id}", uuid::Uuid, () => MatchingProfile
}
endpoint! {
    /// Internal `GET /internal/users/{id}/profile`: what other users may know of a user.
    GetPublicProfile: GET "/internal/users/{id}/profile", uuid::Uuid, () => PublicProfile
}

/// `POST /v1/admin/users/{id}/ban` (operators only): why.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct BanRequest {
    /// The reason, for the audit log and the user (1 to 1000 characters).
    pub reason: String,
}

/// `GET /v1/admin/audit` query.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::IntoParams))]
pub struct AuditQuery {
    /// Most entries, newest first, 1 to 500 (default 100).
    #[cfg_attr(feature = "openapi", param(minimum = 1, maximum = 500))]
    pub limit: Option<u32>,
}

/// One operator action, as the audit log keeps it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct AuditEntry {
    /// Entry id (time-ordered).
    pub id: Uuid,
    /// When.
    #[serde(with = "time::serde::rfc3339")]
    #[cfg_attr(feature = "openapi", schema(value_type = String, format = DateTime))]
    pub at: OffsetDateTime,
    /// The operator's user id.
    pub operator_id: Uuid,
    /// What was done: `ban`, `unban` (auth-service) or `resolve_report` (message-service).
    pub action: String,
    /// The account it was done to (for a report, the reported user).
    pub target_id: Uuid,
    /// Details: the ban reason, or the report's outcome, id and the operator's note.
    pub detail: String,
}

endpoint! {
    /// `POST /v1/admin/users/{id}/ban` (operators only): bans an account; every session
    /// of it ends at once.
    BanUser: POST "/v1/admin/users/{id}/ban", uuid::Uuid, BanRequest => ()
}
endpoint! {
    /// `DELETE /v1/admin/users/{id}/ban` (operators only): lifts a ban.
    UnbanUser: DELETE "/v1/admin/users/{id}/ban", uuid::Uuid, () => ()
}
endpoint! {
    /// `GET /v1/admin/audit` (operators only): the operator actions, newest first.
    GetAuditLog: GET "/v1/admin/audit", (), AuditQuery => Vec<AuditEntry>
}
endpoint! {
    /// Internal `POST /internal/audit`: another service records an operator action in
    /// the one audit log. Idempotent by entry id.
    RecordAudit: POST "/internal/audit", (), AuditEntry => ()
}
