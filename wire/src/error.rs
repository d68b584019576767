//! The uniform error body (`{"error": {"code", "message", "field"}}`) and every error code
//! a server answers with, over HTTP and in WebSocket `error` frames.

use serde::{Deserialize, Deserializer, Serialize, Serializer};

macro_rules! error_codes {
    ($( $(#[doc = $doc:literal])+ $variant:ident = $code:literal, transient = $transient:literal; )+) => {
        /// Every machine-readable error code, over HTTP (`error.code`) and in WebSocket
        /// `error` frames. On the wire each is its `snake_case` name; a code this version
        /// does not know (from a newer server) reads as [`ErrorCode::Unknown`].
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        #[non_exhaustive]
        pub enum ErrorCode {
            $( $(#[doc = $doc])+ $variant, )+
            /// A code this version does not know (sent by a newer server).
            Unknown,
        }

        impl ErrorCode {
            /// Every known code, in declaration order.
            pub const ALL: &'static [ErrorCode] = &[$(ErrorCode::$variant),+];

            /// The wire name, e.g. `username_taken`.
            pub fn as_str(self) -> &'static str {
                match self {
                    $(ErrorCode::$variant => $code,)+
                    ErrorCode::Unknown => "unknown",
                }
            }

            /// The code with this wire name; [`ErrorCode::Unknown`] for any other name.
            pub fn parse(name: &str) -> ErrorCode {
                match name {
                    $($code => ErrorCode::$variant,)+
                    _ => ErrorCode::Unknown,
                }
            }

            /// Whether the same request may succeed later, unchanged: the server or one of
            /// its backends is temporarily unable to serve it (outage, overload, rate
            /// limit). Clients retry these after a pause (`Retry-After` when given).
            pub fn is_transient(self) -> bool {
                match self {
                    $(ErrorCode::$variant => $transient,)+
                    ErrorCode::Unknown => false,
                }
            }

            /// One sentence on what the code means.
            pub fn description(self) -> &'static str {
                match self {
                    $(ErrorCode::$variant => concat!($($doc),+).trim_ascii(),)+
                    ErrorCode::Unknown => "A code this version does not know.",
                }
            }
        }
    };
}

error_codes! {
    // ---- any route ----------------------------------------------------------------
    /// No such route or resource.
    NotFound = "not_found", transient = false;
    /// The route exists, but not with this method.
    MethodNotAllowed = "method_not_allowed", transient = false;
    /// The request is malformed in a way no other code describes.
    BadRequest = "bad_request", transient = false;
    /// The body is not valid JSON.
    MalformedJson = "malformed_json", transient = false;
    /// A required body field is absent (`field` names it).
    MissingField = "missing_field", transient = false;
    /// A body field has the wrong type or a value outside its set (`field` names it).
    InvalidField = "invalid_field", transient = false;
    /// The body is not `Content-Type: application/json`.
    UnsupportedMediaType = "unsupported_media_type", transient = false;
    /// The body is larger than the server accepts.
    BodyTooLarge = "body_too_large", transient = false;
    /// A query-string parameter is invalid (`field` names it when known).
    InvalidQuery = "invalid_query", transient = false;
    /// Too many requests or frames; retry after `Retry-After` (or `retry_after`) seconds.
    RateLimited = "rate_limited", transient = true;
    /// The server is overloaded and shed this request; retry after `Retry-After` seconds.
    Overloaded = "overloaded", transient = true;
    /// A backend of the server is unavailable; retry after `Retry-After` seconds.
    BackendUnavailable = "backend_unavailable", transient = true;
    /// A readiness check failed: a backend of the service does not answer.
    NotReady = "not_ready", transient = true;
    /// The server failed; the cause is logged on the server, never sent.
    Internal = "internal", transient = true;
    // ---- access tokens ------------------------------------------------------------
    /// No access token was given.
    MissingToken = "missing_token", transient = false;
    /// The access token is not a valid token of ours.
    InvalidToken = "invalid_token", transient = false;
    /// The access token has expired; refresh it.
    TokenExpired = "token_expired", transient = false;
    /// The access token's session has ended (log out, password change, session deleted,
    /// refresh-token reuse, ban): log in again.
    SessionEnded = "session_ended", transient = false;
    /// An internal route was called without the service credential.
    InvalidServiceCredential = "invalid_service_credential", transient = false;
    /// An operator route was called with a token without the `admin` role.
    AdminRequired = "admin_required", transient = false;
    // ---- accounts -----------------------------------------------------------------
    /// The username is not 3 to 32 of `a-z`, `0-9` and `_`.
    InvalidUsername = "invalid_username", transient = false;
    /// The password is not 8 to 128 characters, or equals the username.
    InvalidPassword = "invalid_password", transient = false;
    /// The display name is empty, too long, or holds control or invisible characters.
    InvalidDisplayName = "invalid_display_name", transient = false;
    /// The birth date is in the future or implausibly far back.
    InvalidBirthDate = "invalid_birth_date", transient = false;
    /// The user would be younger than 18.
    TooYoung = "too_young", transient = false;
    /// An interest tag is empty, too long, or holds control or invisible characters.
    InvalidInterest = "invalid_interest", transient = false;
    /// More than 20 distinct interest tags.
    TooManyInterests = "too_many_interests", transient = false;
    /// The username exists already.
    UsernameTaken = "username_taken", transient = false;
    /// Unknown username or wrong password (one answer for both).
    InvalidCredentials = "invalid_credentials", transient = false;
    /// The current password given to change it is wrong.
    WrongPassword = "wrong_password", transient = false;
    /// Too many failed log ins; retry after `Retry-After` seconds.
    TooManyAttempts = "too_many_attempts", transient = false;
    /// The account is banned; it cannot log in.
    AccountBanned = "account_banned", transient = false;
    /// The refresh token is unknown, ended or expired.
    InvalidRefreshToken = "invalid_refresh_token", transient = false;
    /// An already rotated refresh token was presented; its session was ended.
    RefreshTokenReused = "refresh_token_reused", transient = false;
    // ---- the queue ----------------------------------------------------------------
    /// An age is outside 18 to 120.
    AgeOutOfRange = "age_out_of_range", transient = false;
    /// `min_age` is above `max_age`.
    InvalidAgeRange = "invalid_age_range", transient = false;
    /// `age_widen_years` is larger than the whole age range.
    InvalidAgeWiden = "invalid_age_widen", transient = false;
    /// `widen_every_secs` is outside 1 to 86,400 (a day).
    InvalidWidenEvery = "invalid_widen_every", transient = false;
    /// `fallback_after_secs` is larger than 604,800 (a week).
    InvalidFallback = "invalid_fallback", transient = false;
    /// `interest_mode` is `required` but there are no interests to require.
    InterestsRequired = "interests_required", transient = false;
    // ---- chats, messages, blocks, reports -----------------------------------------
    /// No such chat among the caller's (existence is not revealed).
    ChatNotFound = "chat_not_found", transient = false;
    /// The chat has ended; nothing more can be sent in it.
    ChatEnded = "chat_ended", transient = false;
    /// One of the users blocked the other.
    Blocked = "blocked", transient = false;
    /// The message text is empty.
    TextEmpty = "text_empty", transient = false;
    /// The message text is longer than 4000 characters.
    TextTooLong = "text_too_long", transient = false;
    /// The message text holds control characters other than newline and tab.
    TextControlChars = "text_control_chars", transient = false;
    /// The client message id is not 1 to 64 bytes without control characters.
    ClientMsgIdInvalid = "client_msg_id_invalid", transient = false;
    /// A page `limit` is outside its allowed range.
    LimitInvalid = "limit_invalid", transient = false;
    /// Both `before` and `after` were given.
    CursorConflict = "cursor_conflict", transient = false;
    /// A chat needs 2 to 50 distinct participants.
    ParticipantsInvalid = "participants_invalid", transient = false;
    /// Users cannot block themselves.
    CannotBlockSelf = "cannot_block_self", transient = false;
    /// The user has blocked as many users as allowed; unblock someone first.
    TooManyBlocks = "too_many_blocks", transient = false;
    /// Users cannot report themselves.
    CannotReportSelf = "cannot_report_self", transient = false;
    /// A report reason is empty, longer than 1000 characters, or holds control characters.
    ReasonInvalid = "reason_invalid", transient = false;
    /// A report names more than 100 messages.
    TooManyMessageIds = "too_many_message_ids", transient = false;
    /// A reported message does not belong to the reported chat.
    MessageNotInChat = "message_not_in_chat", transient = false;
    /// Too many reports; retry after `Retry-After` seconds.
    TooManyReports = "too_many_reports", transient = false;
    // ---- internal routes ----------------------------------------------------------
    /// An internal request is invalid (`field` names the field).
    InvalidRequest = "invalid_request", transient = false;
    // ---- the WebSocket ------------------------------------------------------------
    /// The handshake is not a WebSocket upgrade.
    WebsocketRequired = "websocket_required", transient = false;
    /// The browser `Origin` is not on the allowlist.
    OriginNotAllowed = "origin_not_allowed", transient = false;
    /// No WebSocket handler instance is available; retry after `Retry-After` seconds.
    NoWsHandler = "no_ws_handler", transient = true;
    /// A frame is not valid JSON.
    InvalidJson = "invalid_json", transient = false;
    /// A frame has no `type`, or one the server does not know.
    UnknownType = "unknown_type", transient = false;
    /// A frame of a known type has missing or mistyped fields.
    InvalidFrame = "invalid_frame", transient = false;
    /// A service behind the WebSocket is temporarily unavailable; retry shortly.
    Unavailable = "unavailable", transient = true;
}

impl std::fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Serialize for ErrorCode {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for ErrorCode {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let name = std::borrow::Cow::<'de, str>::deserialize(deserializer)?;
        Ok(ErrorCode::parse(&name))
    }
}

#[cfg(feature = "openapi")]
impl utoipa::PartialSchema for ErrorCode {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        use utoipa::openapi::schema::{ObjectBuilder, SchemaType, Type};
        ObjectBuilder::new()
            .schema_type(SchemaType::Type(Type::String))
            .enum_values(Some(ErrorCode::ALL.iter().map(|c| c.as_str())))
            .description(Some("Machine-readable error code; see docs/PROTOCOL.md"))
            .into()
    }
}

#[cfg(feature = "openapi")]
impl utoipa::ToSchema for ErrorCode {}

/// `{"error": {"code": "...", "message": "..."}}`: the body of every error response.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ErrorBody {
    /// The error itself.
    pub error: ErrorDetail,
}

/// A machine-readable code and a human-readable message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ErrorDetail {
    /// Stable, machine-readable code in `snake_case`, e.g. `username_taken`.
    pub code: ErrorCode,
    /// Human-readable explanation; never contains internal causes.
    pub message: String,
    /// The request field the error is about, for validation errors.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
}

impl ErrorBody {
    /// Builds a body from a code and a message.
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        Self {
            error: ErrorDetail {
                code,
                message: message.into(),
                field: None,
            },
        }
    }

    /// Names the request field the error is about.
    pub fn with_field(mut self, field: impl Into<String>) -> Self {
        self.error.field = Some(field.into());
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_code_round_trips_through_its_wire_name() {
        for code in ErrorCode::ALL {
            let json = serde_json::to_string(code).unwrap();
            assert_eq!(json, format!("\"{}\"", code.as_str()));
            assert_eq!(serde_json::from_str::<ErrorCode>(&json).unwrap(), *code);
        }
    }

    #[test]
    fn wire_names_are_unique_snake_case() {
        let mut names: Vec<&str> = ErrorCode::ALL.iter().map(|c| c.as_str()).collect();
        assert!(
            names
                .iter()
                .all(|n| n.chars().all(|c| c.is_ascii_lowercase() || c == '_'))
        );
        names.sort_unstable();
        let before = names.len();
        names.dedup();
        assert_eq!(names.len(), before);
    }

    #[test]
    fn an_unknown_code_from_a_newer_server_still_decodes() {
        let body: ErrorBody =
            serde_json::from_str(r#"{"error":{"code":"brand_new","message":"m"}}"#).unwrap();
        assert_eq!(body.error.code, ErrorCode::Unknown);
    }

    #[test]
    fn outages_and_rate_limits_are_transient_and_refusals_are_not() {
        assert!(ErrorCode::Unavailable.is_transient());
        assert!(ErrorCode::RateLimited.is_transient());
        assert!(ErrorCode::BackendUnavailable.is_transient());
        assert!(!ErrorCode::ChatEnded.is_transient());
        assert!(!ErrorCode::TextTooLong.is_transient());
    }

    #[test]
    fn every_code_has_a_description() {
        for code in ErrorCode::ALL {
            assert!(code.description().ends_with('.'), "{code}");
        }
    }
}
