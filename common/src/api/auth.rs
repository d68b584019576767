//! auth-service bodies: sign up, log in, tokens, profiles, preferences, sessions.

use serde::{Deserialize, Serialize};
use time::{Date, OffsetDateTime};
use utoipa::ToSchema;
use uuid::Uuid;

use crate::domain::Gender;

/// `POST /v1/auth/signup`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
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
    #[schema(value_type = String, format = Date, example = "1995-04-23")]
    pub birth_date: Date,
    /// 0 to 20 interest tags.
    #[serde(default)]
    pub interests: Vec<String>,
}

/// `POST /v1/auth/login`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct LoginRequest {
    /// The username (any case).
    pub username: String,
    /// The password.
    pub password: String,
}

/// `POST /v1/auth/refresh`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct RefreshRequest {
    /// The current refresh token; it is rotated by this call.
    pub refresh_token: String,
}

/// Tokens issued by sign up, log in and refresh.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
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
    #[schema(value_type = String, format = DateTime)]
    pub refresh_expires_at: OffsetDateTime,
}

/// `POST /v1/auth/signup` answer.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct SignupResponse {
    /// The new account.
    pub user: Profile,
    /// Tokens of the first session.
    pub tokens: TokenPair,
}

/// Default matching preferences of a user.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Preferences {
    /// Genders the user wants to meet; empty means any.
    pub genders: Vec<Gender>,
    /// Youngest partner age, at least 18.
    pub min_age: u8,
    /// Oldest partner age.
    pub max_age: u8,
    /// Interests to match on (normalised tags).
    pub interests: Vec<String>,
}

/// The caller's own profile: `GET /v1/me`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
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
    #[schema(value_type = String, format = Date)]
    pub birth_date: Date,
    /// Age today.
    pub age: u8,
    /// Interest tags.
    pub interests: Vec<String>,
    /// Default matching preferences.
    pub preferences: Preferences,
    /// Account creation time.
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub created_at: OffsetDateTime,
}

/// `PATCH /v1/me`: every field optional.
#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema)]
pub struct UpdateProfileRequest {
    /// New display name.
    pub display_name: Option<String>,
    /// New gender.
    pub gender: Option<Gender>,
    /// New birth date.
    #[schema(value_type = Option<String>, format = Date)]
    pub birth_date: Option<Date>,
    /// New interests (replaces the list).
    pub interests: Option<Vec<String>>,
}

/// `POST /v1/me/password`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ChangePasswordRequest {
    /// The current password.
    pub current_password: String,
    /// The new password.
    pub new_password: String,
}

/// One refresh session: `GET /v1/me/sessions`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct SessionInfo {
    /// Session id.
    pub id: Uuid,
    /// When the session began (log in).
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub created_at: OffsetDateTime,
    /// Last refresh.
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub last_used_at: OffsetDateTime,
    /// Absolute end of the session.
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub expires_at: OffsetDateTime,
    /// Whether this is the session of the calling token.
    pub current: bool,
}

/// What other users (and services) may know of a user.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
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
