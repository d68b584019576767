//! Internal endpoints for other services (matching, ws-handler); they require the service
//! credential. Bodies are in `wire::api::message`.

use service_kit::error::{ApiError, ErrorCode};
use std::collections::HashSet;

use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::{get, post};
use service_kit::auth::ServiceCaller;
use service_kit::extract::{Json, Path, Query};
use time::OffsetDateTime;
use uuid::Uuid;
use wire::api::message::{
    AdvanceWatermark, AppendBatchRequest, AppendBatchResponse, AppendMessage, AppendMessageRequest,
    AppendMessageResponse, AppendMessages, AppendOutcome, BlockCheck, BlockPairQuery, Chat,
    ChatWatermarks, CheckBlock, CreateChat, CreateChatRequest, EndChatInternal, EndChatRequest,
    GetChatInternal, GetUserBlocks, Message, MessagesAfter, MessagesAfterQuery, UserBlocks,
    UserBlocksQuery, UserChats, UserChatsQuery, Watermark, WatermarkUpdate, check_client_msg_id,
    check_text,
};
use wire::endpoint::Endpoint;

use super::page_limit;
use crate::error::MessageError;
use crate::state::AppState;
use crate::store::{NewChat, NewMessage, now};

/// Most participants of one chat.
pub const MAX_PARTICIPANTS: usize = 50;
/// Default and largest page of internal message reads.
pub const DEFAULT_INTERNAL_LIMIT: u32 = 100;
/// Largest page of internal reads.
pub const MAX_INTERNAL_LIMIT: u32 = 500;
/// Most items of one `POST /internal/messages/append`.
pub const MAX_APPEND_BATCH_ITEMS: usize = 1000;

/// `/internal/*`.
pub fn router() -> Router<AppState> {
    Router::new()
        .route(CreateChat::ROUTE, post(create_chat))
        .route(GetChatInternal::ROUTE, get(get_chat))
        .route(AppendMessage::ROUTE, post(append))
        .route(AppendMessages::ROUTE, post(append_batch))
        .route(MessagesAfter::ROUTE, get(messages_after))
        .route(AdvanceWatermark::ROUTE, post(advance_watermark))
        .route(ChatWatermarks::ROUTE, get(watermarks))
        .route(EndChatInternal::ROUTE, post(end_chat))
        .route(UserChats::ROUTE, get(user_chats))
        .route(GetUserBlocks::ROUTE, get(user_blocks))
        .route(CheckBlock::ROUTE, get(block_check))
}

/// POST /internal/chats
///
/// Creates the chat of a match: 201 when new, 200 with the same chat for a match id seen
/// before, 409 `blocked` when a participant blocked another.
pub async fn create_chat(
    State(state): State<AppState>,
    _caller: ServiceCaller,
    Json(request): Json<CreateChatRequest>,
) -> Result<(StatusCode, Json<Chat>), MessageError> {
    let distinct: HashSet<Uuid> = request.participants.iter().map(|p| p.id).collect();
    if request.participants.len() < 2
        || request.participants.len() > MAX_PARTICIPANTS
        || distinct.len() != request.participants.len()
    {
        return Err(MessageError::validation(
            "participants",
            ErrorCode::ParticipantsInvalid,
            format!("a chat needs 2 to {MAX_PARTICIPANTS} distinct participants"),
        ));
    }
    let written = state
        .store()
        .create_chat(&NewChat {
            id: Uuid::now_v7(),
            match_id: request.match_id,
            participants: request.participants,
            created_at: now(),
        })
        .await?;
    let status = if written.created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok((status, Json(written.value.chat)))
}

/// GET /internal/chats/{id}
pub async fn get_chat(
    State(state): State<AppState>,
    _caller: ServiceCaller,
    Path(id): Path<Uuid>,
) -> Result<Json<Chat>, MessageError> {
    let chat = state
        .store()
        .chat(id)
        .await?
        .ok_or(MessageError::ChatNotFound)?;
    Ok(Json(chat.chat))
}

/// POST /internal/chats/{id}/messages
///
/// Appends a message with the chat's next seq: 201 when new, 200 with the original for a
/// resend of a client message id.
pub async fn append(
    State(state): State<AppState>,
    _caller: ServiceCaller,
    Path(id): Path<Uuid>,
    Json(request): Json<AppendMessageRequest>,
) -> Result<(StatusCode, Json<AppendMessageResponse>), MessageError> {
    check_client_msg_id(&request.client_msg_id)?;
    check_text(&request.text)?;
    let written = state
        .committer()
        .append(NewMessage {
            id: Uuid::now_v7(),
            chat_id: id,
            sender_id: request.sender_id,
            client_msg_id: request.client_msg_id,
            text: request.text,
            created_at: now(),
        })
        .await?;
    let status = if written.created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    let participants = state
        .participants(id)
        .await?
        .ok_or(MessageError::ChatNotFound)?
        .to_vec();
    Ok((
        status,
        Json(AppendMessageResponse {
            message: written.value,
            created: written.created,
            participants,
        }),
    ))
}

/// POST /internal/messages/append
///
/// Appends a batch of messages, possibly to several chats, in one commit (items of one
/// chat get consecutive seqs in item order): one outcome per item, in item order. An item
/// is refused alone (invalid text or client message id, no such chat, chat ended); the
/// whole call fails, with nothing stored, only when the batch could not be committed.
pub async fn append_batch(
    State(state): State<AppState>,
    _caller: ServiceCaller,
    Json(request): Json<AppendBatchRequest>,
) -> Result<Json<AppendBatchResponse>, MessageError> {
    if request.items.len() > MAX_APPEND_BATCH_ITEMS {
        return Err(MessageError::validation(
            "items",
            ErrorCode::InvalidField,
            format!("a batch holds at most {MAX_APPEND_BATCH_ITEMS} items"),
        ));
    }
    // Item i is stored as message `slots[i]` of the batch, or refused up front.
    let mut slots = Vec::with_capacity(request.items.len());
    let mut messages = Vec::new();
    for item in request.items {
        let checked = check_client_msg_id(&item.message.client_msg_id)
            .and_then(|()| check_text(&item.message.text));
        match checked {
            Ok(()) => {
                slots.push(Ok(messages.len()));
                messages.push(NewMessage {
                    id: Uuid::now_v7(),
                    chat_id: item.chat_id,
                    sender_id: item.message.sender_id,
                    client_msg_id: item.message.client_msg_id,
                    text: item.message.text,
                    created_at: now(),
                });
            }
            Err(err) => slots.push(Err(MessageError::from(err))),
        }
    }
    let mut outcomes: Vec<Option<_>> = state
        .committer()
        .append_all(messages)
        .await?
        .into_iter()
        .map(Some)
        .collect();
    let mut results = Vec::with_capacity(slots.len());
    for slot in slots {
        let stored = slot.and_then(|i| {
            outcomes
                .get_mut(i)
                .and_then(Option::take)
                .ok_or_else(|| MessageError::Internal(format!("no outcome for item {i}")))?
                .map_err(MessageError::from)
        });
        let outcome = match stored {
            Ok(written) => match state.participants(written.value.chat_id).await? {
                Some(participants) => AppendOutcome::Stored(AppendMessageResponse {
                    message: written.value,
                    created: written.created,
                    participants: participants.to_vec(),
                }),
                None => refused(MessageError::ChatNotFound),
            },
            Err(err) => refused(err),
        };
        results.push(outcome);
    }
    Ok(Json(AppendBatchResponse { results }))
}

/// The outcome of an item refused with `err`, in the uniform error shape.
fn refused(err: MessageError) -> AppendOutcome {
    AppendOutcome::Refused {
        error: ApiError::from(err).body.error,
    }
}

/// GET /internal/chats/{id}/messages?after=SEQ&limit=N
///
/// Messages after a seq, ascending: what a reconnecting client missed.
pub async fn messages_after(
    State(state): State<AppState>,
    _caller: ServiceCaller,
    Path(id): Path<Uuid>,
    Query(query): Query<MessagesAfterQuery>,
) -> Result<Json<Vec<Message>>, MessageError> {
    let limit = page_limit(query.limit, DEFAULT_INTERNAL_LIMIT, MAX_INTERNAL_LIMIT)?;
    if state.store().chat(id).await?.is_none() {
        return Err(MessageError::ChatNotFound);
    }
    let messages = state
        .store()
        .messages_after(id, query.after.unwrap_or(0), limit)
        .await?;
    Ok(Json(messages))
}

/// POST /internal/chats/{id}/watermarks
///
/// Advances a participant's delivered / read watermarks (clamped to the last seq, read
/// implies delivered, never backwards); answers the watermarks after the update.
pub async fn advance_watermark(
    State(state): State<AppState>,
    _caller: ServiceCaller,
    Path(id): Path<Uuid>,
    Json(update): Json<WatermarkUpdate>,
) -> Result<Json<Watermark>, MessageError> {
    let watermark = state
        .store()
        .advance_watermark(
            id,
            update.user_id,
            update.delivered_seq,
            update.read_seq,
            now(),
        )
        .await?;
    Ok(Json(watermark))
}

/// GET /internal/chats/{id}/watermarks
///
/// Every participant's watermarks.
pub async fn watermarks(
    State(state): State<AppState>,
    _caller: ServiceCaller,
    Path(id): Path<Uuid>,
) -> Result<Json<Vec<Watermark>>, MessageError> {
    if state.store().chat(id).await?.is_none() {
        return Err(MessageError::ChatNotFound);
    }
    Ok(Json(state.store().watermarks(id).await?))
}

/// POST /internal/chats/{id}/end
///
/// Ends the chat on behalf of a participant (idempotent; the first ender wins) and pushes
/// `chat_ended` to the participants.
pub async fn end_chat(
    State(state): State<AppState>,
    _caller: ServiceCaller,
    Path(id): Path<Uuid>,
    Json(request): Json<EndChatRequest>,
) -> Result<Json<Chat>, MessageError> {
    let ended = state.store().end_chat(id, request.user_id, now()).await?;
    if ended.created {
        state.notify_chat_ended(&ended.value);
    }
    Ok(Json(ended.value))
}

/// GET /internal/users/{id}/chats?active=true
///
/// A user's chats, newest first.
pub async fn user_chats(
    State(state): State<AppState>,
    _caller: ServiceCaller,
    Path(id): Path<Uuid>,
    Query(query): Query<UserChatsQuery>,
) -> Result<Json<Vec<Chat>>, MessageError> {
    let limit = page_limit(query.limit, DEFAULT_INTERNAL_LIMIT, MAX_INTERNAL_LIMIT)?;
    let chats = state
        .store()
        .chats_of(id, query.active, limit, None)
        .await?;
    Ok(Json(chats.into_iter().map(|c| c.chat).collect()))
}

/// GET /internal/users/{id}/blocks
///
/// Whom the user blocked and who blocked the user, for the matcher; with `reports_since`,
/// also who reported the user since then (reports not dismissed).
pub async fn user_blocks(
    State(state): State<AppState>,
    _caller: ServiceCaller,
    Path(id): Path<Uuid>,
    Query(query): Query<UserBlocksQuery>,
) -> Result<Json<UserBlocks>, MessageError> {
    let blocked = state
        .store()
        .blocks_of(id)
        .await?
        .into_iter()
        .map(|b| b.user_id)
        .collect();
    let blocked_by = state.store().blockers_of(id).await?;
    let reported_by = match query.reports_since {
        Some(secs) => {
            let since = OffsetDateTime::from_unix_timestamp(secs).map_err(|_| {
                MessageError::validation(
                    "reports_since",
                    ErrorCode::InvalidQuery,
                    "reports_since is not a valid time",
                )
            })?;
            state.store().reporters_of(id, since).await?
        }
        None => Vec::new(),
    };
    Ok(Json(UserBlocks {
        blocked,
        blocked_by,
        reported_by,
    }))
}

/// GET /internal/blocks/check?a=UUID&b=UUID
///
/// Whether either user blocked the other.
pub async fn block_check(
    State(state): State<AppState>,
    _caller: ServiceCaller,
    Query(pair): Query<BlockPairQuery>,
) -> Result<Json<BlockCheck>, MessageError> {
    let blocked = state.store().is_blocked(pair.a, pair.b).await?;
    Ok(Json(BlockCheck { blocked }))
}
