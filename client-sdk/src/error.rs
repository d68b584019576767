//! The SDK's error type: what a caller can match on.

use reqwest::StatusCode;
use wire::error::{ErrorBody, ErrorCode};

/// Why a call failed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The server answered with an error: its status and the uniform error body
    /// (`code` is stable and machine-readable, e.g. `username_taken`).
    #[error("{status}: {} ({})", body.error.message, body.error.code)]
    Api {
        /// HTTP status.
        status: StatusCode,
        /// The error body.
        body: ErrorBody,
        /// Seconds the server asked to wait before retrying (`Retry-After`).
        retry_after: Option<u64>,
    },
    /// The call needs a logged-in client (sign up or log in first).
    #[error("not logged in")]
    NotLoggedIn,
    /// The session ended (logged out, expired, or revoked elsewhere): log in again.
    #[error("the session has ended; log in again")]
    SessionEnded,
    /// The server could not be reached or the connection broke.
    #[error("transport: {0}")]
    Transport(String),
    /// The server answered something the SDK does not understand.
    #[error("unexpected answer: {0}")]
    Decode(String),
    /// The server refused a real-time frame (an `error` event answering it), e.g.
    /// `chat_ended` or `text_too_long` for a send.
    #[error("refused: {message} ({code})")]
    Refused {
        /// Machine-readable code (see `docs/PROTOCOL.md`).
        code: ErrorCode,
        /// Human-readable message.
        message: String,
    },
    /// The real-time connection was closed by the caller or dropped for good.
    #[error("the real-time connection is closed")]
    Closed,
}

impl Error {
    /// The error code (`username_taken`, `text_too_long`, ...), if the server answered one.
    pub fn code(&self) -> Option<ErrorCode> {
        match self {
            Error::Api { body, .. } => Some(body.error.code),
            Error::Refused { code, .. } => Some(*code),
            _ => None,
        }
    }

    /// The HTTP status, if the server answered an error.
    pub fn status(&self) -> Option<StatusCode> {
        match self {
            Error::Api { status, .. } => Some(*status),
            _ => None,
        }
    }

    /// The request field a validation error is about.
    pub fn field(&self) -> Option<&str> {
        match self {
            Error::Api { body, .. } => body.error.field.as_deref(),
            _ => None,
        }
    }

    /// Whether retrying later may succeed (outage, rate limit, broken connection).
    pub fn is_transient(&self) -> bool {
        match self {
            Error::Api { status, body, .. } => {
                body.error.code.is_transient()
                    || *status == StatusCode::TOO_MANY_REQUESTS
                    || status.is_server_error()
            }
            Error::Transport(_) => true,
            _ => false,
        }
    }
}

impl From<reqwest::Error> for Error {
    fn from(err: reqwest::Error) -> Self {
        if err.is_decode() {
            Error::Decode(err.to_string())
        } else {
            Error::Transport(err.to_string())
        }
    }
}

/// A result with the SDK's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;
