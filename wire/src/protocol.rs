//! The WebSocket wire protocol, version 1: JSON text frames tagged by `type`.
//!
//! `docs/PROTOCOL.md` is the full description (every frame, field, error code and close
//! code, with examples); this module is its source of truth in code.

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use uuid::Uuid;

use crate::api::matching::MatchInfo;
use crate::api::message::{Message, Watermark};
use crate::error::ErrorCode;

/// Protocol version announced in `hello`.
pub const PROTOCOL_VERSION: u32 = 1;
/// Path of the WebSocket endpoint.
pub const WS_PATH: &str = "/v1/ws";
/// Largest frame (and message) a server accepts; larger ones close with 1009.
pub const MAX_FRAME_BYTES: usize = 64 * 1024;
/// Longest `ping` nonce the server echoes, in bytes; a longer one is refused.
pub const MAX_PING_NONCE_BYTES: usize = 64;

/// Close codes used by the server, beyond the standard ones.
pub mod close {
    /// Normal closure.
    pub const NORMAL: u16 = 1000;
    /// The server is shutting down (or restarting); reconnect elsewhere.
    pub const GOING_AWAY: u16 = 1001;
    /// A frame was not text, or not valid UTF-8.
    pub const UNSUPPORTED_DATA: u16 = 1003;
    /// A frame exceeded [`super::MAX_FRAME_BYTES`].
    pub const MESSAGE_TOO_BIG: u16 = 1009;
    /// The client stopped reading: its outbound queue overflowed.
    pub const SLOW_CONSUMER: u16 = 4008;
    /// No frame (not even a pong) arrived within the idle timeout.
    pub const IDLE_TIMEOUT: u16 = 4000;
    /// The access token expired or its session was revoked.
    pub const TOKEN_EXPIRED: u16 = 4001;
    /// A server error (RFC 6455 "internal error"), e.g. a backend was unreachable while
    /// the connection was being set up; reconnect shortly.
    pub const INTERNAL_ERROR: u16 = 1011;
    /// Too many frames too fast.
    pub const RATE_LIMITED: u16 = 4029;
    /// The account opened more connections than one instance allows; this, its oldest,
    /// was closed. Do not reconnect it automatically (that would close another).
    pub const TOO_MANY_CONNECTIONS: u16 = 4009;
}

/// A resume point: the last seq the client holds for one chat.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ResumePoint {
    /// The chat.
    pub chat_id: Uuid,
    /// Highest seq the client has (0 for none).
    pub last_seq: u64,
}

/// Frames a client sends.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ClientFrame {
    /// Send a message; answered by `ack` (or `error` with the same `client_msg_id`).
    Send {
        /// The chat.
        chat_id: Uuid,
        /// Client-chosen id, 1 to 64 bytes; resending it never creates a second message.
        client_msg_id: String,
        /// Message text.
        text: String,
    },
    /// The client has received every message up to `seq`.
    Delivered {
        /// The chat.
        chat_id: Uuid,
        /// Watermark.
        seq: u64,
    },
    /// The user has seen every message up to `seq`.
    Read {
        /// The chat.
        chat_id: Uuid,
        /// Watermark.
        seq: u64,
    },
    /// Typing started or stopped.
    Typing {
        /// The chat.
        chat_id: Uuid,
        /// Whether the user is typing.
        typing: bool,
    },
    /// Resume after reconnecting: the last seq held per chat. Chats not listed resume
    /// from 0. Answered by missed `message`s in order, then `resumed`.
    Resume {
        /// Resume points.
        chats: Vec<ResumePoint>,
    },
    /// Keep-alive; answered by `pong`.
    Ping {
        /// Echoed back; at most [`MAX_PING_NONCE_BYTES`] bytes.
        #[serde(default)]
        nonce: Option<String>,
    },
}

/// Frames the server sends.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ServerFrame {
    /// First frame on every connection.
    Hello {
        /// [`PROTOCOL_VERSION`].
        protocol: u32,
        /// The authenticated user.
        user_id: Uuid,
        /// This connection's id.
        connection_id: Uuid,
        /// Idle timeout: send something (e.g. `ping`) at least this often.
        idle_timeout_secs: u64,
    },
    /// A `send` was persisted.
    Ack {
        /// The client's id for it.
        client_msg_id: String,
        /// The chat.
        chat_id: Uuid,
        /// Assigned seq.
        seq: u64,
        /// Message id.
        message_id: Uuid,
        /// Server time of storage.
        #[serde(with = "time::serde::rfc3339")]
        created_at: OffsetDateTime,
        /// True when this `client_msg_id` had been stored before (a resend).
        duplicate: bool,
    },
    /// A message in one of the user's chats (a partner's, or the user's own from another
    /// device).
    Message {
        /// The message.
        message: Message,
    },
    /// A participant's delivered/read watermarks moved.
    Status {
        /// The watermarks.
        watermark: Watermark,
    },
    /// A participant started or stopped typing.
    Typing {
        /// The chat.
        chat_id: Uuid,
        /// Who.
        user_id: Uuid,
        /// Whether typing.
        typing: bool,
    },
    /// A partner came online or went offline.
    Presence {
        /// The chat they are a partner in.
        chat_id: Uuid,
        /// Who.
        user_id: Uuid,
        /// Online or not.
        online: bool,
    },
    /// A chat ended (*Next*).
    ChatEnded {
        /// The chat.
        chat_id: Uuid,
        /// Who ended it.
        ended_by: Uuid,
        /// When.
        #[serde(with = "time::serde::rfc3339")]
        ended_at: OffsetDateTime,
    },
    /// The matcher paired the user with a partner; the chat exists.
    Matched {
        /// The match.
        #[serde(flatten)]
        info: MatchInfo,
    },
    /// Catch-up after `resume` is complete: every later message is live.
    Resumed {
        /// Highest seq per chat after catch-up.
        chats: Vec<ResumePoint>,
    },
    /// A frame was refused. The connection stays open.
    Error {
        /// Machine-readable code (see `docs/PROTOCOL.md`).
        code: ErrorCode,
        /// Human-readable message.
        message: String,
        /// The `type` of the frame this answers, when known.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        in_reply_to: Option<String>,
        /// The `client_msg_id` of a refused `send`.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        client_msg_id: Option<String>,
    },
    /// Answer to `ping`.
    Pong {
        /// The ping's nonce.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        nonce: Option<String>,
    },
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_send_frame_is_tagged_by_type() {
        let frame: ClientFrame = serde_json::from_str(
            r#"{"type":"send","chat_id":"6f1c2a4e-9a57-4b7a-9d0e-1f6f1d9f2a10","client_msg_id":"m1","text":"hi"}"#,
        )
        .unwrap();
        assert!(matches!(frame, ClientFrame::Send { ref text, .. } if text == "hi"));
    }

    #[test]
    fn an_unknown_frame_type_does_not_parse() {
        assert!(serde_json::from_str::<ClientFrame>(r#"{"type":"shout"}"#).is_err());
    }

    #[test]
    fn a_pong_without_nonce_omits_it() {
        let json = serde_json::to_string(&ServerFrame::Pong { nonce: None }).unwrap();
        assert_eq!(json, r#"{"type":"pong"}"#);
    }
}
