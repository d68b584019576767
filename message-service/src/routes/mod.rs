//! HTTP routes, one module per resource, plus helpers they share.
//!
//! - [`chats`] — the caller's chats, history and ending a chat (`/v1/chats*`).
//! - [`blocks`] — blocking and unblocking users (`/v1/blocks*`).
//! - [`reports`] — reporting a chat partner (`/v1/reports`).
//! - [`internal`] — chats, appends, watermarks and blocks for other services
//!   (`/internal/*`, service credential).
//!
//! [`direct`] offers the hottest internal endpoints to a ws-handler in the same process.

pub mod admin;
pub mod blocks;
pub mod chats;
pub mod internal;
pub mod reports;

use axum::Router;
use axum::extract::State;
use service_kit::auth::ServiceCaller;
use service_kit::client::DirectRoutes;
use service_kit::error::{ApiError, ErrorCode};
use service_kit::extract::{Json, Path, Query};
use uuid::Uuid;
use wire::api::message::{
    AdvanceWatermark, AppendMessage, AppendMessages, GetChatInternal, MessagesAfter,
};

use crate::error::MessageError;
use crate::state::AppState;
use crate::store::StoredChat;

/// Every route of the service (without the health routes and layers, see [`crate::app`]).
pub fn router() -> Router<AppState> {
    Router::new()
        .merge(chats::router())
        .merge(blocks::router())
        .merge(reports::router())
        .merge(internal::router())
        .merge(admin::router())
}

/// The per-message endpoints of a ws-handler as direct routes, for one in the same process:
/// the same handlers (validation, group commit, answers), without JSON or routing between.
pub fn direct(state: AppState) -> DirectRoutes {
    let (chat, append, batch, after) = (state.clone(), state.clone(), state.clone(), state.clone());
    let watermark = state;
    DirectRoutes::new()
        .route::<GetChatInternal, _, _>(move |id, ()| {
            let state = chat.clone();
            async move {
                let Json(chat) = internal::get_chat(State(state), ServiceCaller, Path(id)).await?;
                Ok::<_, ApiError>(chat)
            }
        })
        .route::<AppendMessage, _, _>(move |id, body| {
            let state = append.clone();
            async move {
                let (_, Json(answer)) =
                    internal::append(State(state), ServiceCaller, Path(id), Json(body)).await?;
                Ok::<_, ApiError>(answer)
            }
        })
        .route::<AppendMessages, _, _>(move |(), body| {
            let state = batch.clone();
            async move {
                let Json(answer) =
                    internal::append_batch(State(state), ServiceCaller, Json(body)).await?;
                Ok::<_, ApiError>(answer)
            }
        })
        .route::<MessagesAfter, _, _>(move |id, query| {
            let state = after.clone();
            async move {
                let Json(messages) =
                    internal::messages_after(State(state), ServiceCaller, Path(id), Query(query))
                        .await?;
                Ok::<_, ApiError>(messages)
            }
        })
        .route::<AdvanceWatermark, _, _>(move |id, body| {
            let state = watermark.clone();
            async move {
                let Json(watermark) =
                    internal::advance_watermark(State(state), ServiceCaller, Path(id), Json(body))
                        .await?;
                Ok::<_, ApiError>(watermark)
            }
        })
}

/// Default page size of chat lists.
pub const DEFAULT_CHAT_LIMIT: u32 = 50;
/// Largest page of chat lists on the public API.
pub const MAX_CHAT_LIMIT: u32 = 100;

/// The chat `chat_id` if `user_id` takes part in it; otherwise 404, whether or not the chat
/// exists, so that existence does not leak.
pub(crate) async fn participant_chat(
    state: &AppState,
    chat_id: Uuid,
    user_id: Uuid,
) -> Result<StoredChat, MessageError> {
    state
        .store()
        .chat(chat_id)
        .await?
        .filter(|chat| chat.has_participant(user_id))
        .ok_or(MessageError::ChatNotFound)
}

/// `limit` checked against `1..=max`, `default` when absent.
pub(crate) fn page_limit(limit: Option<u32>, default: u32, max: u32) -> Result<u32, MessageError> {
    match limit {
        None => Ok(default),
        Some(n) if (1..=max).contains(&n) => Ok(n),
        Some(_) => Err(MessageError::validation(
            "limit",
            ErrorCode::LimitInvalid,
            format!("limit must be between 1 and {max}"),
        )),
    }
}

/// Ends every active chat between `blocker` and `blocked` on behalf of `blocker`, pushing
/// `chat_ended` for each one this call ended.
pub(crate) async fn end_chats_between(
    state: &AppState,
    blocker: Uuid,
    blocked: Uuid,
) -> Result<(), MessageError> {
    // A user has at most one live chat at a time; the bound only guards against bad data.
    let active = state.store().chats_of(blocker, true, 1000, None).await?;
    for chat in active.iter().filter(|c| c.has_participant(blocked)) {
        let ended = state
            .store()
            .end_chat(chat.chat.id, blocker, crate::store::now())
            .await?;
        if ended.created {
            state.notify_chat_ended(&ended.value);
        }
    }
    Ok(())
}
