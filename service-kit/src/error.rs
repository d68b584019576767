//! [`ApiError`]: an error response with the uniform JSON body (`wire::error::ErrorBody`),
//! as every service and the gateway answer.

use axum::Json;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
pub use wire::error::{ErrorBody, ErrorCode, ErrorDetail};

/// An error response ready to send: a status and the uniform body, plus optional headers
/// such as `Retry-After` or `WWW-Authenticate`.
#[derive(Debug, Clone)]
pub struct ApiError {
    /// HTTP status to answer with.
    pub status: StatusCode,
    /// The JSON body.
    pub body: ErrorBody,
    /// Seconds the client should wait before retrying (sets `Retry-After`).
    pub retry_after: Option<u64>,
}

impl ApiError {
    /// An error with a status, a code and a message.
    pub fn new(status: StatusCode, code: ErrorCode, message: impl Into<String>) -> Self {
        Self {
            status,
            body: ErrorBody::new(code, message),
            retry_after: None,
        }
    }

    /// A 422 about one request field.
    pub fn validation(field: &str, code: ErrorCode, message: impl Into<String>) -> Self {
        let mut err = Self::new(StatusCode::UNPROCESSABLE_ENTITY, code, message);
        err.body = err.body.with_field(field);
        err
    }

    /// A 401 with `WWW-Authenticate: Bearer`.
    pub fn unauthorized(code: ErrorCode, message: impl Into<String>) -> Self {
        Self::new(StatusCode::UNAUTHORIZED, code, message)
    }

    /// A 404 `not_found`.
    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, ErrorCode::NotFound, message)
    }

    /// A 503 for a backend that is down; the cause is logged by the caller, not sent.
    pub fn unavailable(message: impl Into<String>) -> Self {
        Self::new(
            StatusCode::SERVICE_UNAVAILABLE,
            ErrorCode::BackendUnavailable,
            message,
        )
    }

    /// A 500 whose cause is logged here and never sent to the client.
    pub fn internal(cause: &dyn std::fmt::Display) -> Self {
        tracing::error!(error = %cause, "internal error");
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            ErrorCode::Internal,
            "an internal error occurred",
        )
    }

    /// Sets `Retry-After` (seconds); used with 429 and 503.
    pub fn with_retry_after(mut self, seconds: u64) -> Self {
        self.retry_after = Some(seconds);
        self
    }

    /// The machine-readable code.
    pub fn code(&self) -> ErrorCode {
        self.body.error.code
    }
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} {}: {}",
            self.status.as_u16(),
            self.body.error.code,
            self.body.error.message
        )
    }
}

impl std::error::Error for ApiError {}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut response = (self.status, Json(self.body)).into_response();
        let headers = response.headers_mut();
        if self.status == StatusCode::UNAUTHORIZED {
            headers.insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer realm=\"random-chats\""),
            );
        }
        if let Some(seconds) = self.retry_after {
            headers.insert(header::RETRY_AFTER, HeaderValue::from(seconds));
        }
        response
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn an_unauthorized_error_carries_www_authenticate() {
        let response = ApiError::unauthorized(ErrorCode::InvalidToken, "bad").into_response();
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
        assert!(response.headers().contains_key(header::WWW_AUTHENTICATE));
    }

    #[tokio::test]
    async fn a_validation_error_names_its_field() {
        let response = ApiError::validation("username", ErrorCode::InvalidUsername, "too short")
            .into_response();
        let bytes = axum::body::to_bytes(response.into_body(), 1024)
            .await
            .unwrap();
        let body: ErrorBody = serde_json::from_slice(&bytes).unwrap();
        assert_eq!(body.error.field.as_deref(), Some("username"));
        assert_eq!(body.error.code, ErrorCode::InvalidUsername);
    }

    #[test]
    fn retry_after_is_sent_as_a_header() {
        let response = ApiError::new(
            StatusCode::TOO_MANY_REQUESTS,
            ErrorCode::RateLimited,
            "slow down",
        )
        .with_retry_after(7)
        .into_response();
        assert_eq!(response.headers()[header::RETRY_AFTER], "7");
    }
}
