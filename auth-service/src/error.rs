//! The errors auth-service answers with, each mapped to a status and a stable code.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use service_kit::error::{ApiError, ErrorCode};

use crate::store::StoreError;

/// Everything a handler of auth-service can fail with.
#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    /// A request field is invalid (422, naming the field).
    #[error("{field}: {message}")]
    Validation {
        /// The request field.
        field: String,
        /// Machine-readable code, e.g. `invalid_username`.
        code: ErrorCode,
        /// Human-readable explanation.
        message: String,
    },
    /// The username exists already (409).
    #[error("the username is taken")]
    UsernameTaken,
    /// Unknown username or wrong password: one answer for both (401).
    #[error("invalid username or password")]
    InvalidCredentials,
    /// The current password given to change it is wrong (403).
    #[error("the current password is wrong")]
    WrongPassword,
    /// Too many failed log ins (429 with `Retry-After`).
    #[error("too many failed log ins; retry in {retry_after} s")]
    TooManyAttempts {
        /// Seconds until the next attempt is allowed.
        retry_after: u64,
    },
    /// The refresh token is unknown, ended or expired (401).
    #[error("the refresh token is invalid")]
    InvalidRefreshToken,
    /// An already rotated refresh token was presented; its session was ended (401).
    #[error("the refresh token was already used; the session has been ended")]
    RefreshTokenReused,
    /// The account is banned (403).
    #[error("this account is banned")]
    AccountBanned,
    /// No such user or session (404).
    #[error("{0}")]
    NotFound(&'static str),
    /// Too much password hashing is queued; shed at once (503 `overloaded`).
    #[error("too many requests are waiting for password hashing; try again shortly")]
    Overloaded,
    /// Too many sign-ups from this client IP (429 `rate_limited`).
    #[error("too many sign-ups from this address; try again later")]
    TooManySignups {
        /// Seconds until the next sign-up is allowed.
        retry_after: u64,
    },
    /// A backend is down (503; the cause is logged).
    #[error("backend unavailable: {0}")]
    Unavailable(String),
    /// A bug or corrupt data (500; the cause is logged).
    #[error("internal error: {0}")]
    Internal(String),
}

impl AuthError {
    /// A 422 about `field`.
    pub fn validation(field: &str, code: ErrorCode, message: impl Into<String>) -> Self {
        AuthError::Validation {
            field: field.to_owned(),
            code,
            message: message.into(),
        }
    }

    /// The HTTP status.
    pub fn status_code(&self) -> StatusCode {
        match self {
            AuthError::Validation { .. } => StatusCode::UNPROCESSABLE_ENTITY,
            AuthError::UsernameTaken => StatusCode::CONFLICT,
            AuthError::InvalidCredentials
            | AuthError::InvalidRefreshToken
            | AuthError::RefreshTokenReused => StatusCode::UNAUTHORIZED,
            AuthError::WrongPassword | AuthError::AccountBanned => StatusCode::FORBIDDEN,
            AuthError::TooManyAttempts { .. } => StatusCode::TOO_MANY_REQUESTS,
            AuthError::NotFound(_) => StatusCode::NOT_FOUND,
            AuthError::Unavailable(_) | AuthError::Overloaded => StatusCode::SERVICE_UNAVAILABLE,
            AuthError::TooManySignups { .. } => StatusCode::TOO_MANY_REQUESTS,
            AuthError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// The machine-readable code.
    pub fn code(&self) -> ErrorCode {
        match self {
            AuthError::Validation { code, .. } => *code,
            AuthError::UsernameTaken => ErrorCode::UsernameTaken,
            AuthError::InvalidCredentials => ErrorCode::InvalidCredentials,
            AuthError::WrongPassword => ErrorCode::WrongPassword,
            AuthError::TooManyAttempts { .. } => ErrorCode::TooManyAttempts,
            AuthError::InvalidRefreshToken => ErrorCode::InvalidRefreshToken,
            AuthError::RefreshTokenReused => ErrorCode::RefreshTokenReused,
            AuthError::AccountBanned => ErrorCode::AccountBanned,
            AuthError::NotFound(_) => ErrorCode::NotFound,
            AuthError::Unavailable(_) => ErrorCode::BackendUnavailable,
            AuthError::Overloaded => ErrorCode::Overloaded,
            AuthError::TooManySignups { .. } => ErrorCode::RateLimited,
            AuthError::Internal(_) => ErrorCode::Internal,
        }
    }
}

impl From<StoreError> for AuthError {
    fn from(err: StoreError) -> Self {
        match err {
            StoreError::UsernameTaken => AuthError::UsernameTaken,
            StoreError::Unavailable(cause) => AuthError::Unavailable(cause),
            StoreError::Backend(cause) => AuthError::Internal(cause),
        }
    }
}

impl From<AuthError> for ApiError {
    fn from(err: AuthError) -> Self {
        let status = err.status_code();
        let code = err.code();
        match err {
            AuthError::Validation { field, message, .. } => {
                ApiError::validation(&field, code, message)
            }
            AuthError::TooManyAttempts { retry_after } => {
                ApiError::new(status, code, "too many failed log ins; try again later")
                    .with_retry_after(retry_after)
            }
            AuthError::TooManySignups { retry_after } => ApiError::new(
                status,
                code,
                "too many sign-ups from this address; try again later",
            )
            .with_retry_after(retry_after),
            AuthError::Overloaded => ApiError::new(
                status,
                code,
                "too many requests are waiting for password hashing; try again shortly",
            )
            .with_retry_after(1),
            AuthError::Unavailable(cause) => {
                tracing::warn!(%cause, "backend unavailable");
                ApiError::unavailable("a backend is unavailable; try again shortly")
                    .with_retry_after(1)
            }
            AuthError::Internal(cause) => ApiError::internal(&cause),
            other => ApiError::new(status, code, other.to_string()),
        }
    }
}

impl IntoResponse for AuthError {
    fn into_response(self) -> Response {
        ApiError::from(self).into_response()
    }
}
