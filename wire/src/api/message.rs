//! message-service bodies: chats, messages, watermarks, blocks and reports.

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use uuid::Uuid;

use super::auth::PublicProfile;

/// Longest message text, in Unicode scalar values.
pub const MAX_TEXT_CHARS: usize = 4000;
/// Longest client message id, in bytes.
pub const MAX_CLIENT_MSG_ID_LEN: usize = 64;
/// Most messages in one history page.
pub const MAX_PAGE_LIMIT: u32 = 100;

/// A chat between matched users.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Chat {
    /// Chat id.
    pub id: Uuid,
    /// The match that created it (idempotency key of chat creation).
    pub match_id: Uuid,
    /// Participant user ids (two today; never assumed structurally).
    pub participants: Vec<Uuid>,
    /// Creation time.
    #[serde(with = "time::serde::rfc3339")]
    #[cfg_attr(feature = "openapi", schema(value_type = String, format = DateTime))]
    pub created_at: OffsetDateTime,
    /// When the chat ended, if it has.
    #[serde(default, with = "time::serde::rfc3339::option")]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<String>, format = DateTime))]
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
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
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
    #[cfg_attr(feature = "openapi", schema(value_type = String, format = DateTime))]
    pub created_at: OffsetDateTime,
}

/// Internal append answer: the message and what fan-out needs next.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AppendMessageResponse {
    /// The message (the original one for a resend).
    pub message: Message,
    /// False when this was a resend of an existing client message id.
    pub created: bool,
    /// The chat's participants (the sender among them), in chat order.
    pub participants: Vec<Uuid>,
}

/// One message of an [`AppendMessages`] batch.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AppendItem {
    /// The chat.
    pub chat_id: Uuid,
    /// The message.
    #[serde(flatten)]
    pub message: AppendMessageRequest,
}

/// Internal `POST /internal/messages/append`: several appends, possibly to several chats,
/// stored in order (items of one chat get consecutive seqs in item order).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct AppendBatchRequest {
    /// The messages, in order.
    pub items: Vec<AppendItem>,
}

/// What became of one item of a batch.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub enum AppendOutcome {
    /// Stored (or found stored before, for a resend).
    Stored(AppendMessageResponse),
    /// Refused (e.g. `chat_ended`, `text_too_long`); nothing was stored for it.
    Refused {
        /// Why.
        error: crate::error::ErrorDetail,
    },
}

/// Answer of [`AppendMessages`]: one outcome per item, in item order. The whole call fails
/// (and no item is stored) only when the batch could not be committed.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct AppendBatchResponse {
    /// Outcomes in item order.
    pub results: Vec<AppendOutcome>,
}

/// One update of an [`AdvanceWatermarks`] batch.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct WatermarkItem {
    /// The chat.
    pub chat_id: Uuid,
    /// The update.
    #[serde(flatten)]
    pub update: WatermarkUpdate,
}

/// Internal `POST /internal/watermarks/advance`: several watermark moves at once.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct WatermarkBatchRequest {
    /// The updates.
    pub items: Vec<WatermarkItem>,
}

/// The watermarks after a move, with the chat's participants (what fan-out needs).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct WatermarkMoved {
    /// The watermarks after the update.
    pub watermark: Watermark,
    /// The chat's participants, in chat order.
    pub participants: Vec<Uuid>,
}

/// What became of one item of a watermark batch.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub enum WatermarkOutcome {
    /// Applied (the watermarks may not have moved if they were already there).
    Moved(WatermarkMoved),
    /// Refused (e.g. `chat_not_found`).
    Refused {
        /// Why.
        error: crate::error::ErrorDetail,
    },
}

/// Answer of [`AdvanceWatermarks`]: one outcome per item, in item order.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct WatermarkBatchResponse {
    /// Outcomes in item order.
    pub results: Vec<WatermarkOutcome>,
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
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
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
    #[cfg_attr(feature = "openapi", schema(value_type = Option<String>, format = DateTime))]
    pub delivered_at: Option<OffsetDateTime>,
    /// When `read_seq` last moved.
    #[serde(default, with = "time::serde::rfc3339::option")]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<String>, format = DateTime))]
    pub read_at: Option<OffsetDateTime>,
}

/// Internal `POST /internal/chats/{id}/end`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct EndChatRequest {
    /// The participant ending the chat.
    pub user_id: Uuid,
}

/// Delivery state of a message as seen by the caller.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
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
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct MessageStatus {
    /// Sent, delivered or read.
    pub state: DeliveryState,
    /// When it became delivered.
    #[serde(default, with = "time::serde::rfc3339::option")]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<String>, format = DateTime))]
    pub delivered_at: Option<OffsetDateTime>,
    /// When it became read.
    #[serde(default, with = "time::serde::rfc3339::option")]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<String>, format = DateTime))]
    pub read_at: Option<OffsetDateTime>,
}

/// A message with its status, as history shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct MessageView {
    /// The message.
    #[serde(flatten)]
    pub message: Message,
    /// Its status as seen by the caller.
    pub status: MessageStatus,
}

/// `GET /v1/chats` item and `GET /v1/chats/{id}`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ChatSummary {
    /// Chat id.
    pub id: Uuid,
    /// The partner (the first other participant) as they were at match time.
    pub partner: PublicProfile,
    /// Every participant but the caller.
    pub others: Vec<PublicProfile>,
    /// Creation time.
    #[serde(with = "time::serde::rfc3339")]
    #[cfg_attr(feature = "openapi", schema(value_type = String, format = DateTime))]
    pub created_at: OffsetDateTime,
    /// When it ended, if it has.
    #[serde(default, with = "time::serde::rfc3339::option")]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<String>, format = DateTime))]
    pub ended_at: Option<OffsetDateTime>,
    /// Who ended it.
    pub ended_by: Option<Uuid>,
    /// The newest message.
    pub last_message: Option<MessageView>,
    /// Partner messages after the caller's read watermark.
    pub unread_count: u64,
    /// Highest seq in the chat.
    pub last_seq: u64,
    /// Every participant's delivered and read watermarks now (the caller's included): what
    /// a client shows as delivered / read marks on the caller's own messages.
    #[serde(default)]
    pub watermarks: Vec<Watermark>,
}

/// `GET /v1/chats` query: a page of the caller's chats, newest first.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::IntoParams))]
pub struct ChatListQuery {
    /// Most chats to return, 1 to 100 (default 50).
    #[cfg_attr(feature = "openapi", param(minimum = 1, maximum = 100))]
    pub limit: Option<u32>,
    /// The `next_before` of the previous page: chats older than that page's last one.
    /// Absent: the newest page.
    pub before: Option<String>,
}

/// `GET /v1/chats` answer: a page of chats, newest first.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ChatPage {
    /// The chats, newest first.
    pub chats: Vec<ChatSummary>,
    /// Pass as `before` to get the next (older) page; absent on the last page.
    pub next_before: Option<String>,
}

/// `GET /v1/chats/{id}/messages` query: at most one of `before` / `after`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::IntoParams))]
pub struct HistoryQuery {
    /// Messages with seq below this (newest first page when both are absent).
    pub before: Option<u64>,
    /// Messages with seq above this.
    pub after: Option<u64>,
    /// Page size, 1 to 100 (default 50).
    #[cfg_attr(feature = "openapi", param(minimum = 1, maximum = 100))]
    pub limit: Option<u32>,
}

/// A page of history, in ascending seq order.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct HistoryPage {
    /// Messages, ascending by seq.
    pub messages: Vec<MessageView>,
    /// Whether more messages exist in the direction of the query.
    pub has_more: bool,
}

/// How an operator resolved a report.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum ReportOutcome {
    /// Nothing wrong was found.
    Dismissed,
    /// Action was taken (for example a ban, recorded in the audit log).
    Actioned,
}

/// An operator's resolution of a report.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ReportResolution {
    /// The outcome.
    pub outcome: ReportOutcome,
    /// The operator's note.
    pub note: String,
    /// The operator.
    pub by: Uuid,
    /// When.
    #[serde(with = "time::serde::rfc3339")]
    #[cfg_attr(feature = "openapi", schema(value_type = String, format = DateTime))]
    pub at: OffsetDateTime,
}

/// A report as operators review it: the report, the reported messages as evidence, and
/// its resolution once there is one.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ReportReview {
    /// The report.
    pub report: Report,
    /// The reported messages, in seq order (what was stored, never masked).
    pub evidence: Vec<Message>,
    /// How it was resolved; absent while open.
    pub resolution: Option<ReportResolution>,
}

/// `GET /v1/admin/reports` query.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::IntoParams))]
pub struct ReportsQuery {
    /// Only open (unresolved) reports (default true).
    pub open: Option<bool>,
    /// Most reports, oldest first, 1 to 100 (default 50).
    #[cfg_attr(feature = "openapi", param(minimum = 1, maximum = 100))]
    pub limit: Option<u32>,
}

/// `POST /v1/admin/reports/{id}/resolve`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ResolveReportRequest {
    /// The outcome.
    pub outcome: ReportOutcome,
    /// A note for the record (up to 1000 characters; may be empty).
    #[serde(default)]
    pub note: String,
}

/// `POST /v1/blocks`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct BlockRequest {
    /// The user to block.
    pub user_id: Uuid,
}

/// `GET /v1/blocks` item.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct BlockedUser {
    /// The blocked user.
    pub user_id: Uuid,
    /// When they were blocked.
    #[serde(with = "time::serde::rfc3339")]
    #[cfg_attr(feature = "openapi", schema(value_type = String, format = DateTime))]
    pub created_at: OffsetDateTime,
}

/// `POST /v1/reports`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
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
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
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
    #[cfg_attr(feature = "openapi", schema(value_type = String, format = DateTime))]
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
    /// Distinct users who reported this user since [`UserBlocksQuery::reports_since`], in
    /// reports an operator has not dismissed (empty when the query names no time).
    #[serde(default)]
    pub reported_by: Vec<Uuid>,
}

/// Internal `GET /internal/users/{id}/blocks` query.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct UserBlocksQuery {
    /// Also list who reported the user since this time (Unix seconds).
    pub reports_since: Option<i64>,
}

/// Internal `GET /internal/chats/{id}/messages` query.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct MessagesAfterQuery {
    /// Messages with seq above this (default 0: from the first).
    pub after: Option<u64>,
    /// Most messages, 1 to 500 (default 100).
    pub limit: Option<u32>,
}

/// Internal `GET /internal/users/{id}/chats` query.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct UserChatsQuery {
    /// Only chats that have not ended.
    #[serde(default)]
    pub active: bool,
    /// Most chats, 1 to 500 (default 100).
    pub limit: Option<u32>,
}

/// Internal `GET /internal/blocks/check` query.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct BlockPairQuery {
    /// One user.
    pub a: Uuid,
    /// The other.
    pub b: Uuid,
}

/// Why a message text or client message id is refused; [`code`](TextError::code) is the
/// machine-readable error code services answer with (422).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TextError {
    /// The text is empty.
    Empty,
    /// The text has more than [`MAX_TEXT_CHARS`] Unicode scalar values.
    TooLong,
    /// The text holds a control character other than newline and tab, a text-direction
    /// override or isolate, or an invisible zero-width character (see [`check_text`]).
    ControlChars,
    /// The client message id is empty, longer than [`MAX_CLIENT_MSG_ID_LEN`] bytes, or
    /// holds a control character.
    ClientMsgIdInvalid,
}

impl TextError {
    /// The error code: `text_empty`, `text_too_long`, `text_control_chars` or
    /// `client_msg_id_invalid`.
    pub fn code(self) -> crate::error::ErrorCode {
        use crate::error::ErrorCode;
        match self {
            TextError::Empty => ErrorCode::TextEmpty,
            TextError::TooLong => ErrorCode::TextTooLong,
            TextError::ControlChars => ErrorCode::TextControlChars,
            TextError::ClientMsgIdInvalid => ErrorCode::ClientMsgIdInvalid,
        }
    }

    /// The request field the error is about.
    pub fn field(self) -> &'static str {
        match self {
            TextError::ClientMsgIdInvalid => "client_msg_id",
            _ => "text",
        }
    }

    /// A human-readable explanation.
    pub fn message(self) -> String {
        match self {
            TextError::Empty => "the message text is empty".to_owned(),
            TextError::TooLong => {
                format!("the message text is longer than {MAX_TEXT_CHARS} characters")
            }
            TextError::ControlChars => {
                "the message text holds control, text-direction or invisible characters (of the controls only newline and tab are allowed)"
                    .to_owned()
            }
            TextError::ClientMsgIdInvalid => format!(
                "the client message id must be 1 to {MAX_CLIENT_MSG_ID_LEN} bytes without control characters"
            ),
        }
    }
}

impl std::fmt::Display for TextError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message())
    }
}

impl std::error::Error for TextError {}

/// Checks a message text: 1 to [`MAX_TEXT_CHARS`] Unicode scalar values, no control
/// characters but newline and tab, and none of the characters that reorder or hide text
/// ([`crate::domain::is_invisible_or_bidi`]) except those right-to-left writing needs:
/// the zero-width non-joiner (U+200C), the left-to-right and right-to-left marks (U+200E,
/// U+200F) and the Arabic letter mark (U+061C).
pub fn check_text(text: &str) -> Result<(), TextError> {
    if text.is_empty() {
        return Err(TextError::Empty);
    }
    let refused = |c: char| {
        (c.is_control() && c != '\n' && c != '\t')
            || (crate::domain::is_invisible_or_bidi(c)
                && !matches!(c, '\u{200C}' | '\u{200E}' | '\u{200F}' | '\u{061C}'))
    };
    if text.chars().any(refused) {
        return Err(TextError::ControlChars);
    }
    // `chars` counts Unicode scalar values; stop counting once past the limit.
    if text.chars().nth(MAX_TEXT_CHARS).is_some() {
        return Err(TextError::TooLong);
    }
    Ok(())
}

/// Checks a client message id: 1 to [`MAX_CLIENT_MSG_ID_LEN`] bytes, no control characters.
pub fn check_client_msg_id(id: &str) -> Result<(), TextError> {
    if id.is_empty() || id.len() > MAX_CLIENT_MSG_ID_LEN || id.chars().any(char::is_control) {
        return Err(TextError::ClientMsgIdInvalid);
    }
    Ok(())
}

// ---- endpoints ---------------------------------------------------------------------

use crate::endpoint::endpoint;

endpoint! {
    /// `GET /v1/chats`: the caller's chats, newest first.
    ListChats: GET "/v1/chats", (), ChatListQuery => ChatPage
}
endpoint! {
    /// `GET /v1/chats/{id}`: one of the caller's chats.
    GetChat: GET "/v1/chats/{id}", Uuid, () => ChatSummary
}
endpoint! {
    /// `GET /v1/chats/{id}/messages`: a page of a chat's history.
    History: GET "/v1/chats/{id}/messages", Uuid, HistoryQuery => HistoryPage
}
endpoint! {
    /// `POST /v1/chats/{id}/end`: end the chat for every participant (*Next*).
    EndChat: POST "/v1/chats/{id}/end", Uuid, () => ChatSummary
}
endpoint! {
    /// `POST /v1/blocks`: block a user.
    Block: POST "/v1/blocks", (), BlockRequest => BlockedUser
}
endpoint! {
    /// `GET /v1/blocks`: the users the caller blocked, newest first.
    ListBlocks: GET "/v1/blocks", (), () => Vec<BlockedUser>
}
endpoint! {
    /// `DELETE /v1/blocks/{user_id}`: lift a block.
    Unblock: DELETE "/v1/blocks/{user_id}", Uuid, () => ()
}
endpoint! {
    /// `POST /v1/reports`: report a chat partner to the moderators.
    FileReport: POST "/v1/reports", (), ReportRequest => Report
}
endpoint! {
    /// Internal `POST /internal/chats`: create the chat of a match (idempotent per match).
    CreateChat: POST "/internal/chats", (), CreateChatRequest => Chat
}
endpoint! {
    /// Internal `GET /internal/chats/{id}`: a chat with its participants.
    GetChatInternal: GET "/internal/chats/{id}", Uuid, () => Chat
}
endpoint! {
    /// Internal `POST /internal/chats/{id}/messages`: store a message with the chat's next
    /// seq; answers the message and the participants (what fan-out needs).
    AppendMessage: POST "/internal/chats/{id}/messages", Uuid, AppendMessageRequest => AppendMessageResponse
}
endpoint! {
    /// Internal `POST /internal/messages/append`: a batch of appends, committed together.
    AppendMessages: POST "/internal/messages/append", (), AppendBatchRequest => AppendBatchResponse
}
endpoint! {
    /// Internal `POST /internal/watermarks/advance`: a batch of watermark moves.
    AdvanceWatermarks: POST "/internal/watermarks/advance", (), WatermarkBatchRequest => WatermarkBatchResponse
}
endpoint! {
    /// Internal `GET /internal/chats/{id}/messages`: messages after a seq, ascending.
    MessagesAfter: GET "/internal/chats/{id}/messages", Uuid, MessagesAfterQuery => Vec<Message>
}
endpoint! {
    /// Internal `POST /internal/chats/{id}/watermarks`: advance a participant's watermarks.
    AdvanceWatermark: POST "/internal/chats/{id}/watermarks", Uuid, WatermarkUpdate => Watermark
}
endpoint! {
    /// Internal `GET /internal/chats/{id}/watermarks`: every participant's watermarks.
    ChatWatermarks: GET "/internal/chats/{id}/watermarks", Uuid, () => Vec<Watermark>
}
endpoint! {
    /// Internal `POST /internal/chats/{id}/end`: end a chat on behalf of a participant.
    EndChatInternal: POST "/internal/chats/{id}/end", Uuid, EndChatRequest => Chat
}
endpoint! {
    /// Internal `GET /internal/users/{id}/chats`: a user's chats, newest first.
    UserChats: GET "/internal/users/{id}/chats", Uuid, UserChatsQuery => Vec<Chat>
}
endpoint! {
    /// Internal `GET /internal/users/{id}/blocks`: whom the user blocked, who blocked
    /// them, and (when asked) who reported them.
    GetUserBlocks: GET "/internal/users/{id}/blocks", Uuid, UserBlocksQuery => UserBlocks
}
endpoint! {
    /// Internal `GET /internal/blocks/check`: whether either user blocked the other.
    CheckBlock: GET "/internal/blocks/check", (), BlockPairQuery => BlockCheck
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_text_of_one_to_four_thousand_characters_is_accepted() {
        assert_eq!(check_text("a"), Ok(()));
        assert_eq!(check_text(&"é".repeat(MAX_TEXT_CHARS)), Ok(()));
        assert_eq!(check_text("line one\n\tline two"), Ok(()));
    }

    #[test]
    fn an_empty_text_is_rejected() {
        assert_eq!(check_text(""), Err(TextError::Empty));
    }

    #[test]
    fn a_text_over_four_thousand_scalar_values_is_rejected() {
        assert_eq!(
            check_text(&"😀".repeat(MAX_TEXT_CHARS + 1)),
            Err(TextError::TooLong)
        );
    }

    #[test]
    fn control_characters_other_than_newline_and_tab_are_rejected() {
        for bad in ["a\u{0}b", "bell\u{7}", "cr\r", "del\u{7f}", "c1\u{85}"] {
            assert_eq!(check_text(bad), Err(TextError::ControlChars), "{bad:?}");
        }
    }

    #[test]
    fn text_direction_overrides_and_invisible_characters_are_rejected() {
        for bad in [
            "evil\u{202E}txt.exe",
            "a\u{2066}b",
            "zero\u{200B}width",
            "bom\u{FEFF}",
        ] {
            assert_eq!(check_text(bad), Err(TextError::ControlChars), "{bad:?}");
        }
    }

    #[test]
    fn right_to_left_writing_marks_and_emoji_joiners_are_kept() {
        for good in [
            "می\u{200C}خواهم",
            "abc \u{200F}שלום",
            "\u{061C}مرحبا",
            "👩\u{200D}💻",
        ] {
            assert_eq!(check_text(good), Ok(()), "{good:?}");
        }
    }

    #[test]
    fn client_message_ids_are_bounded_and_printable() {
        assert_eq!(check_client_msg_id("c-1"), Ok(()));
        assert_eq!(check_client_msg_id(""), Err(TextError::ClientMsgIdInvalid));
        assert_eq!(
            check_client_msg_id(&"x".repeat(MAX_CLIENT_MSG_ID_LEN + 1)),
            Err(TextError::ClientMsgIdInvalid)
        );
        assert_eq!(
            check_client_msg_id("a\nb"),
            Err(TextError::ClientMsgIdInvalid)
        );
    }
}
endpoint! {
    /// `GET /v1/admin/reports` (operators only): reports with their evidence, oldest first.
    ListReports: GET "/v1/admin/reports", (), ReportsQuery => Vec<ReportReview>
}
endpoint! {
    /// `POST /v1/admin/reports/{id}/resolve` (operators only): records the outcome.
    ResolveReport: POST "/v1/admin/reports/{id}/resolve", uuid::Uuid, ResolveReportRequest => ReportReview
}
