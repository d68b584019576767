//! message-service bodies: chats, messages, watermarks, blocks and reports.

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use utoipa::ToSchema;
use uuid::Uuid;

use super::auth::PublicProfile;

/// Longest message text, in Unicode scalar values.
pub const MAX_TEXT_CHARS: usize = 4000;
/// Longest client message id, in bytes.
pub const MAX_CLIENT_MSG_ID_LEN: usize = 64;
/// Most messages in one history page.
pub const MAX_PAGE_LIMIT: u32 = 100;

/// A chat between matched users.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Chat {
    /// Chat id.
    pub id: Uuid,
    /// The match that created it (idempotency key of chat creation).
    pub match_id: Uuid,
    /// Participant user ids (two today; never assumed structurally).
    pub participants: Vec<Uuid>,
    /// Creation time.
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub created_at: OffsetDateTime,
    /// When the chat ended, if it has.
    #[serde(default, with = "time::serde::rfc3339::option")]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub ended_at: Option<OffsetDateTime>,
    /// Who ended it.
    pub ended_by: Option<Uuid>,
    /// Highest sequence number assigned so far (0 when empty).
    pub last_seq: u64,
}

/// Internal `POST /internal/chats`: create the chat of a match.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CreateChatRequest {
    /// The match id; creating twice with one id returns the same chat.
    pub match_id: Uuid,
    /// The participants' public profiles as they were at match time.
    pub participants: Vec<PublicProfile>,
}

/// Internal `POST /internal/chats/{id}/messages`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AppendMessageRequest {
    /// The sender (a participant).
    pub sender_id: Uuid,
    /// Sender-chosen id; a resend with the same id returns the original message.
    pub client_msg_id: String,
    /// 1 to 4000 Unicode scalar values; no control characters but newline and tab.
    pub text: String,
}

/// A stored message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Message {
    /// Message id.
    pub id: Uuid,
    /// The chat.
    pub chat_id: Uuid,
    /// Per-chat sequence number, from 1, without gaps.
    pub seq: u64,
    /// The sender.
    pub sender_id: Uuid,
    /// The sender's client message id.
    pub client_msg_id: String,
    /// The text.
    pub text: String,
    /// When the server stored it.
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub created_at: OffsetDateTime,
}

/// Internal append answer.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AppendMessageResponse {
    /// The message (the original one for a resend).
    pub message: Message,
    /// False when this was a resend of an existing client message id.
    pub created: bool,
}

/// Internal `POST /internal/chats/{id}/watermarks`: advance a participant's watermarks.
/// Values beyond the last seq are clamped; read implies delivered; nothing moves back.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct WatermarkUpdate {
    /// The participant whose watermarks move.
    pub user_id: Uuid,
    /// Delivered up to and including this seq.
    pub delivered_seq: Option<u64>,
    /// Read up to and including this seq.
    pub read_seq: Option<u64>,
}

/// A participant's delivered and read watermarks in a chat.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Watermark {
    /// The chat.
    pub chat_id: Uuid,
    /// The participant.
    pub user_id: Uuid,
    /// Highest seq delivered to the participant (0 when none).
    pub delivered_seq: u64,
    /// Highest seq the participant has read (0 when none); never above `delivered_seq`.
    pub read_seq: u64,
    /// When `delivered_seq` last moved.
    #[serde(default, with = "time::serde::rfc3339::option")]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub delivered_at: Option<OffsetDateTime>,
    /// When `read_seq` last moved.
    #[serde(default, with = "time::serde::rfc3339::option")]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub read_at: Option<OffsetDateTime>,
}

/// Internal `POST /internal/chats/{id}/end`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct EndChatRequest {
    /// The participant ending the chat.
    pub user_id: Uuid,
}

/// Delivery state of a message as seen by the caller.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum DeliveryState {
    /// Stored by the server.
    Sent,
    /// Delivered to the recipient's device.
    Delivered,
    /// Read by the recipient.
    Read,
}

/// A message's status: for the caller's own messages, how far the partner got; for the
/// partner's messages, how far the caller got.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct MessageStatus {
    /// Sent, delivered or read.
    pub state: DeliveryState,
    /// When it became delivered.
    #[serde(default, with = "time::serde::rfc3339::option")]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub delivered_at: Option<OffsetDateTime>,
    /// When it became read.
    #[serde(default, with = "time::serde::rfc3339::option")]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub read_at: Option<OffsetDateTime>,
}

/// A message with its status, as history shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct MessageView {
    /// The message.
    #[serde(flatten)]
    pub message: Message,
    /// Its status as seen by the caller.
    pub status: MessageStatus,
}

/// `GET /v1/chats` item and `GET /v1/chats/{id}`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ChatSummary {
    /// Chat id.
    pub id: Uuid,
    /// The partner (the first other participant) as they were at match time.
    pub partner: PublicProfile,
    /// Every participant but the caller.
    pub others: Vec<PublicProfile>,
    /// Creation time.
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub created_at: OffsetDateTime,
    /// When it ended, if it has.
    #[serde(default, with = "time::serde::rfc3339::option")]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub ended_at: Option<OffsetDateTime>,
    /// Who ended it.
    pub ended_by: Option<Uuid>,
    /// The newest message.
    pub last_message: Option<MessageView>,
    /// Partner messages after the caller's read watermark.
    pub unread_count: u64,
    /// Highest seq in the chat.
    pub last_seq: u64,
}

/// `GET /v1/chats/{id}/messages` query: at most one of `before` / `after`.
#[derive(Debug, Clone, Default, Serialize, Deserialize, utoipa::IntoParams)]
pub struct HistoryQuery {
    /// Messages with seq below this (newest first page when both are absent).
    pub before: Option<u64>,
    /// Messages with seq above this.
    pub after: Option<u64>,
    /// Page size, 1 to 100 (default 50).
    pub limit: Option<u32>,
}

/// A page of history, in ascending seq order.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct HistoryPage {
    /// Messages, ascending by seq.
    pub messages: Vec<MessageView>,
    /// Whether more messages exist in the direction of the query.
    pub has_more: bool,
}

/// `POST /v1/blocks`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct BlockRequest {
    /// The user to block.
    pub user_id: Uuid,
}

/// `GET /v1/blocks` item.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct BlockedUser {
    /// The blocked user.
    pub user_id: Uuid,
    /// When they were blocked.
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub created_at: OffsetDateTime,
}

/// `POST /v1/reports`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ReportRequest {
    /// The reported user (someone the reporter has a chat with).
    pub user_id: Uuid,
    /// The chat the report is about.
    pub chat_id: Uuid,
    /// Offending messages in that chat (may be empty).
    #[serde(default)]
    pub message_ids: Vec<Uuid>,
    /// Free-text reason, 1 to 1000 characters.
    pub reason: String,
}

/// A stored report, for moderators.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct Report {
    /// Report id.
    pub id: Uuid,
    /// Who reported.
    pub reporter_id: Uuid,
    /// Who was reported.
    pub reported_id: Uuid,
    /// The chat.
    pub chat_id: Uuid,
    /// Offending messages.
    pub message_ids: Vec<Uuid>,
    /// Reason.
    pub reason: String,
    /// When.
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub created_at: OffsetDateTime,
}

/// Internal `GET /internal/blocks/check?a=..&b=..`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct BlockCheck {
    /// Whether either user blocked the other.
    pub blocked: bool,
}

/// Internal `GET /internal/users/{id}/blocks`: both directions, for the matcher.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct UserBlocks {
    /// Users this user blocked.
    pub blocked: Vec<Uuid>,
    /// Users who blocked this user.
    pub blocked_by: Vec<Uuid>,
}
