//! The caller's chats: list, one chat, its history, and ending it ("Next").

use axum::Router;
use axum::extract::State;
use axum::routing::{get, post};
use std::borrow::Cow;

use service_kit::auth::AuthUser;
use service_kit::content;
use service_kit::error::ErrorBody;
use service_kit::error::ErrorCode;
use service_kit::extract::{Json, Path, Query};
use uuid::Uuid;
use wire::api::message::{
    ChatListQuery, ChatPage, ChatSummary, EndChat, GetChat, History, HistoryPage, HistoryQuery,
    ListChats, MAX_PAGE_LIMIT,
};
use wire::endpoint::Endpoint;

use super::{DEFAULT_CHAT_LIMIT, MAX_CHAT_LIMIT, page_limit, participant_chat};
use crate::error::MessageError;
use crate::state::AppState;
use crate::store::ChatCursor;
use crate::view::{chat_summaries, chat_summary, message_views};

/// Default number of messages in a history page.
pub const DEFAULT_PAGE_LIMIT: u32 = 50;

/// `/v1/chats*`.
pub fn router() -> Router<AppState> {
    Router::new()
        .route(ListChats::ROUTE, get(list_chats))
        .route(GetChat::ROUTE, get(get_chat))
        .route(History::ROUTE, get(history))
        .route(EndChat::ROUTE, post(end_chat))
}

/// GET /v1/chats
///
/// The caller's chats, newest first, each with the partner's profile, the last message
/// and the unread count.
#[utoipa::path(
    get,
    path = "/v1/chats",
    tag = "chats",
    security(("bearer" = [])),
    params(ChatListQuery),
    responses(
        (status = 200, description = "A page of the caller's chats, newest first", body = ChatPage),
        (status = 401, description = "`missing_token`, `invalid_token`, `token_expired` or `session_ended`: no valid access token", body = ErrorBody),
        (status = 422, description = "`limit_invalid` or `invalid_query` (a cursor that is not a next_before)", body = ErrorBody),
    )
)]
pub async fn list_chats(
    State(state): State<AppState>,
    auth: AuthUser,
    Query(query): Query<ChatListQuery>,
) -> Result<Json<ChatPage>, MessageError> {
    let limit = page_limit(query.limit, DEFAULT_CHAT_LIMIT, MAX_CHAT_LIMIT)?;
    let before = match query.before.as_deref() {
        None => None,
        Some(raw) => Some(ChatCursor::decode(raw).ok_or_else(|| {
            MessageError::validation(
                "before",
                ErrorCode::InvalidQuery,
                "`before` must be the `next_before` of a previous page",
            )
        })?),
    };
    // One more than asked tells whether there is a next page.
    let mut chats = state
        .store()
        .chats_of(auth.user_id, false, limit + 1, before)
        .await?;
    let next_before = if chats.len() > limit as usize {
        chats.truncate(limit as usize);
        chats
            .last()
            .map(|last| ChatCursor::after(&last.chat).encode())
    } else {
        None
    };
    Ok(Json(ChatPage {
        chats: chat_summaries(state.store(), chats, auth.user_id).await?,
        next_before,
    }))
}

/// GET /v1/chats/{id}
#[utoipa::path(
    get,
    path = "/v1/chats/{id}",
    tag = "chats",
    security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "Chat id")),
    responses(
        (status = 200, description = "The chat", body = ChatSummary),
        (status = 401, description = "`missing_token`, `invalid_token`, `token_expired` or `session_ended`: no valid access token", body = ErrorBody),
        (status = 404, description = "`chat_not_found`: no such chat among the caller's", body = ErrorBody),
    )
)]
pub async fn get_chat(
    State(state): State<AppState>,
    auth: AuthUser,
    Path(id): Path<Uuid>,
) -> Result<Json<ChatSummary>, MessageError> {
    let chat = participant_chat(&state, id, auth.user_id).await?;
    Ok(Json(chat_summary(state.store(), chat, auth.user_id).await?))
}

/// GET /v1/chats/{id}/messages
///
/// A page of history in ascending seq order: after `after`, or before `before`, or the
/// newest page when neither is given. Each message carries its status as the caller sees
/// it.
#[utoipa::path(
    get,
    path = "/v1/chats/{id}/messages",
    tag = "chats",
    security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "Chat id"), HistoryQuery),
    responses(
        (status = 200, description = "A page of messages", body = HistoryPage),
        (status = 401, description = "`missing_token`, `invalid_token`, `token_expired` or `session_ended`: no valid access token", body = ErrorBody),
        (status = 404, description = "`chat_not_found`: no such chat among the caller's", body = ErrorBody),
        (status = 422, description = "`cursor_conflict` (both cursors given) or `limit_invalid`", body = ErrorBody),
    )
)]
pub async fn history(
    State(state): State<AppState>,
    auth: AuthUser,
    Path(id): Path<Uuid>,
    Query(query): Query<HistoryQuery>,
) -> Result<Json<HistoryPage>, MessageError> {
    if query.before.is_some() && query.after.is_some() {
        return Err(MessageError::validation(
            "before",
            ErrorCode::CursorConflict,
            "give at most one of `before` and `after`",
        ));
    }
    let limit = page_limit(query.limit, DEFAULT_PAGE_LIMIT, MAX_PAGE_LIMIT)?;
    let chat = participant_chat(&state, id, auth.user_id).await?;
    // One more than asked tells whether there are more.
    let (messages, has_more) = match query.after {
        Some(after) => {
            let mut messages = state.store().messages_after(id, after, limit + 1).await?;
            let has_more = messages.len() > limit as usize;
            messages.truncate(limit as usize);
            (messages, has_more)
        }
        None => {
            let before = query.before.unwrap_or(u64::MAX);
            let mut messages = state.store().messages_before(id, before, limit + 1).await?;
            let has_more = messages.len() > limit as usize;
            if has_more {
                messages.remove(0);
            }
            (messages, has_more)
        }
    };
    let mut messages = message_views(state.store(), &chat, auth.user_id, messages).await?;
    // Others' words as this user chose to see them; what is stored stays as it was sent.
    for view in &mut messages {
        if view.message.sender_id != auth.user_id
            && let Cow::Owned(masked) = content::mask(&view.message.text, auth.claims.cf)
        {
            view.message.text = masked;
        }
    }
    Ok(Json(HistoryPage { messages, has_more }))
}

/// POST /v1/chats/{id}/end
///
/// Ends the chat for every participant ("Next"); they are told over their connections.
/// Ending an ended chat changes nothing.
#[utoipa::path(
    post,
    path = "/v1/chats/{id}/end",
    tag = "chats",
    security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "Chat id")),
    responses(
        (status = 200, description = "The ended chat", body = ChatSummary),
        (status = 401, description = "`missing_token`, `invalid_token`, `token_expired` or `session_ended`: no valid access token", body = ErrorBody),
        (status = 404, description = "`chat_not_found`: no such chat among the caller's", body = ErrorBody),
        (status = 429, description = "`rate_limited`: too many chats ended; see Retry-After", body = ErrorBody),
    )
)]
pub async fn end_chat(
    State(state): State<AppState>,
    auth: AuthUser,
    Path(id): Path<Uuid>,
) -> Result<Json<ChatSummary>, MessageError> {
    state
        .end_limiter()
        .check(auth.user_id)
        .await
        .map_err(|retry_after| MessageError::RateLimited {
            what: "chat ends",
            retry_after,
        })?;
    let ended = state
        .store()
        .end_chat(id, auth.user_id, crate::store::now())
        .await?;
    if ended.created {
        state.notify_chat_ended(&ended.value);
    }
    let chat = participant_chat(&state, id, auth.user_id).await?;
    Ok(Json(chat_summary(state.store(), chat, auth.user_id).await?))
}
