//! The errors matching-service answers with, each mapped to a status and a stable code.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use service_kit::client::ClientError;
use service_kit::error::{ApiError, ErrorCode};

use crate::store::StoreError;

/// Everything a handler of matching-service can fail with.
#[derive(Debug, thiserror::Error)]
pub enum MatchError {
    /// A request field is invalid (422, naming the field).
    #[error("{field}: {message}")]
    Validation {
        /// The request field.
        field: &'static str,
        /// Machine-readable code, e.g. `invalid_age_range`.
        code: ErrorCode,
        /// Human-readable explanation.
        message: String,
    },
    /// A peer service refused or failed (its 4xx passes through, outages are 503).
    #[error(transparent)]
    Peer(#[from] ClientError),
    /// Too many queue joins (429 with `Retry-After`).
    #[error("too many queue joins; retry in {retry_after} s")]
    TooManyJoins {
        /// Seconds until the next join is allowed.
        retry_after: u64,
    },
    /// The queue backend is down (503; the cause is logged).
    #[error("queue backend unavailable: {0}")]
    Unavailable(String),
    /// A bug or corrupt data (500; the cause is logged).
    #[error("internal error: {0}")]
    Internal(String),
}

impl MatchError {
    /// A 422 about `field`.
    pub fn validation(field: &'static str, code: ErrorCode, message: impl Into<String>) -> Self {
        MatchError::Validation {
            field,
            code,
            message: message.into(),
        }
    }

    /// The HTTP status.
    pub fn status_code(&self) -> StatusCode {
        match self {
            MatchError::Validation { .. } => StatusCode::UNPROCESSABLE_ENTITY,
            MatchError::Peer(err) => match err.status() {
                Some(s) if s.is_client_error() => s,
                Some(s) if s == StatusCode::SERVICE_UNAVAILABLE => s,
                Some(_) => StatusCode::INTERNAL_SERVER_ERROR,
                None => StatusCode::SERVICE_UNAVAILABLE,
            },
            MatchError::TooManyJoins { .. } => StatusCode::TOO_MANY_REQUESTS,
            MatchError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            MatchError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// The machine-readable code.
    pub fn code(&self) -> ErrorCode {
        match self {
            MatchError::Validation { code, .. } => *code,
            MatchError::Peer(err) => match err {
                ClientError::Api { status, body, .. } if status.is_client_error() => {
                    body.error.code
                }
                ClientError::Decode { .. } => ErrorCode::Internal,
                _ => ErrorCode::BackendUnavailable,
            },
            MatchError::TooManyJoins { .. } => ErrorCode::RateLimited,
            MatchError::Unavailable(_) => ErrorCode::BackendUnavailable,
            MatchError::Internal(_) => ErrorCode::Internal,
        }
    }
}

impl From<StoreError> for MatchError {
    fn from(err: StoreError) -> Self {
        match err {
            StoreError::Unavailable(cause) => MatchError::Unavailable(cause),
            StoreError::Backend(cause) => MatchError::Internal(cause),
        }
    }
}

impl From<MatchError> for ApiError {
    fn from(err: MatchError) -> Self {
        match err {
            MatchError::Validation {
                field,
                code,
                message,
            } => ApiError::validation(field, code, message),
            MatchError::Peer(err) => err.into_api_error(),
            MatchError::TooManyJoins { retry_after } => ApiError::new(
                StatusCode::TOO_MANY_REQUESTS,
                ErrorCode::RateLimited,
                "too many queue joins; try again later",
            )
            .with_retry_after(retry_after),
            MatchError::Unavailable(cause) => {
                tracing::warn!(%cause, "queue backend unavailable");
                ApiError::unavailable("the queue is unavailable; try again shortly")
                    .with_retry_after(1)
            }
            MatchError::Internal(cause) => ApiError::internal(&cause),
        }
    }
}

impl IntoResponse for MatchError {
    fn into_response(self) -> Response {
        ApiError::from(self).into_response()
    }
}
