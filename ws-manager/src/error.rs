//! The errors ws-manager answers with, each mapped to a status and a stable code.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use service_kit::error::{ApiError, ErrorCode};
use service_kit::relay::RelayError;

use crate::store::StoreError;

/// Everything a handler of ws-manager can fail with.
#[derive(Debug, thiserror::Error)]
pub enum ManagerError {
    /// A request field is invalid (422, naming the field).
    #[error("{field}: {message}")]
    Validation {
        /// The request field.
        field: &'static str,
        /// Human-readable explanation.
        message: String,
    },
    /// The registry or the relay bus is down (503; the cause is logged).
    #[error("backend unavailable: {0}")]
    Unavailable(String),
    /// A bug or corrupt data (500; the cause is logged).
    #[error("internal error: {0}")]
    Internal(String),
}

impl ManagerError {
    /// The HTTP status.
    pub fn status_code(&self) -> StatusCode {
        match self {
            ManagerError::Validation { .. } => StatusCode::UNPROCESSABLE_ENTITY,
            ManagerError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            ManagerError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// The machine-readable code.
    pub fn code(&self) -> ErrorCode {
        match self {
            ManagerError::Validation { .. } => ErrorCode::InvalidRequest,
            ManagerError::Unavailable(_) => ErrorCode::BackendUnavailable,
            ManagerError::Internal(_) => ErrorCode::Internal,
        }
    }
}

impl From<StoreError> for ManagerError {
    fn from(err: StoreError) -> Self {
        match err {
            StoreError::Unavailable(cause) => ManagerError::Unavailable(cause),
            StoreError::Backend(cause) => ManagerError::Internal(cause),
        }
    }
}

impl From<RelayError> for ManagerError {
    fn from(err: RelayError) -> Self {
        match err {
            RelayError::Unavailable(cause) => ManagerError::Unavailable(cause),
            other => ManagerError::Internal(other.to_string()),
        }
    }
}

impl From<ManagerError> for ApiError {
    fn from(err: ManagerError) -> Self {
        let code = err.code();
        match err {
            ManagerError::Validation { field, message } => {
                ApiError::validation(field, code, message)
            }
            ManagerError::Unavailable(cause) => {
                tracing::warn!(%cause, "backend unavailable");
                ApiError::unavailable("a backend is unavailable; try again shortly")
                    .with_retry_after(1)
            }
            ManagerError::Internal(cause) => ApiError::internal(&cause),
        }
    }
}

impl IntoResponse for ManagerError {
    fn into_response(self) -> Response {
        ApiError::from(self).into_response()
    }
}
