//! The errors message-service answers with, each mapped to a status and a stable code.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use service_kit::error::{ApiError, ErrorCode};
use wire::api::message::TextError;

use crate::store::StoreError;

/// Everything a handler of message-service can fail with.
#[derive(Debug, thiserror::Error)]
pub enum MessageError {
    /// A request field is invalid (422, naming the field).
    #[error("{field}: {message}")]
    Validation {
        /// The request field.
        field: String,
        /// Machine-readable code, e.g. `text_too_long`.
        code: ErrorCode,
        /// Human-readable explanation.
        message: String,
    },
    /// No such chat, or the caller is not a participant (404; the two are one answer so
    /// that existence does not leak).
    #[error("no such chat")]
    ChatNotFound,
    /// No such resource (404), e.g. a report.
    #[error("{0}")]
    NotFound(&'static str),
    /// The chat has ended (409).
    #[error("the chat has ended")]
    ChatEnded,
    /// A participant blocked another (409).
    #[error("one of the users blocked the other")]
    Blocked,
    /// Too many reports (429 with `Retry-After`).
    #[error("too many reports; retry in {retry_after} s")]
    TooManyReports {
        /// Seconds until the next report is allowed.
        retry_after: u64,
    },
    /// Too many of one action (chat ends, blocks) in a short time (429 `rate_limited`
    /// with `Retry-After`).
    #[error("too many {what}; retry in {retry_after} s")]
    RateLimited {
        /// What, for the message ("chat ends", "blocks").
        what: &'static str,
        /// Seconds until the next one is allowed.
        retry_after: u64,
    },
    /// A backend is down (503; the cause is logged).
    #[error("backend unavailable: {0}")]
    Unavailable(String),
    /// A bug or corrupt data (500; the cause is logged).
    #[error("internal error: {0}")]
    Internal(String),
}

impl MessageError {
    /// A 422 about `field`.
    pub fn validation(field: &str, code: ErrorCode, message: impl Into<String>) -> Self {
        MessageError::Validation {
            field: field.to_owned(),
            code,
            message: message.into(),
        }
    }

    /// The HTTP status.
    pub fn status_code(&self) -> StatusCode {
        match self {
            MessageError::Validation { .. } => StatusCode::UNPROCESSABLE_ENTITY,
            MessageError::ChatNotFound | MessageError::NotFound(_) => StatusCode::NOT_FOUND,
            MessageError::ChatEnded | MessageError::Blocked => StatusCode::CONFLICT,
            MessageError::TooManyReports { .. } | MessageError::RateLimited { .. } => {
                StatusCode::TOO_MANY_REQUESTS
            }
            MessageError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            MessageError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// The machine-readable code.
    pub fn code(&self) -> ErrorCode {
        match self {
            MessageError::Validation { code, .. } => *code,
            MessageError::ChatNotFound => ErrorCode::ChatNotFound,
            MessageError::NotFound(_) => ErrorCode::NotFound,
            MessageError::ChatEnded => ErrorCode::ChatEnded,
            MessageError::Blocked => ErrorCode::Blocked,
            MessageError::TooManyReports { .. } => ErrorCode::TooManyReports,
            MessageError::RateLimited { .. } => ErrorCode::RateLimited,
            MessageError::Unavailable(_) => ErrorCode::BackendUnavailable,
            MessageError::Internal(_) => ErrorCode::Internal,
        }
    }
}

impl From<TextError> for MessageError {
    fn from(err: TextError) -> Self {
        MessageError::validation(err.field(), err.code(), err.message())
    }
}

impl From<StoreError> for MessageError {
    fn from(err: StoreError) -> Self {
        match err {
            StoreError::ChatNotFound => MessageError::ChatNotFound,
            StoreError::ChatEnded => MessageError::ChatEnded,
            StoreError::Blocked => MessageError::Blocked,
            StoreError::Unavailable(cause) => MessageError::Unavailable(cause),
            StoreError::Backend(cause) => MessageError::Internal(cause),
        }
    }
}

impl From<MessageError> for ApiError {
    fn from(err: MessageError) -> Self {
        let status = err.status_code();
        let code = err.code();
        match err {
            MessageError::Validation { field, message, .. } => {
                ApiError::validation(&field, code, message)
            }
            MessageError::TooManyReports { retry_after } => {
                ApiError::new(status, code, "too many reports; try again later")
                    .with_retry_after(retry_after)
            }
            MessageError::RateLimited { what, retry_after } => {
                ApiError::new(status, code, format!("too many {what}; try again later"))
                    .with_retry_after(retry_after)
            }
            MessageError::Unavailable(cause) => {
                tracing::warn!(%cause, "backend unavailable");
                ApiError::unavailable("a backend is unavailable; try again shortly")
                    .with_retry_after(1)
            }
            MessageError::Internal(cause) => ApiError::internal(&cause),
            other => ApiError::new(status, code, other.to_string()),
        }
    }
}

impl IntoResponse for MessageError {
    fn into_response(self) -> Response {
        ApiError::from(self).into_response()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_errors_name_their_field_and_code() {
        let err = MessageError::from(TextError::TooLong);
        assert_eq!(err.status_code(), StatusCode::UNPROCESSABLE_ENTITY);
        assert_eq!(err.code(), ErrorCode::TextTooLong);
        let api = ApiError::from(MessageError::from(TextError::ClientMsgIdInvalid));
        assert_eq!(api.body.error.field.as_deref(), Some("client_msg_id"));
    }

    #[test]
    fn an_outage_is_a_503_with_the_uniform_code() {
        let api = ApiError::from(MessageError::from(StoreError::Unavailable("down".into())));
        assert_eq!(api.status, StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(api.code(), ErrorCode::BackendUnavailable);
    }
}
