//! Blocking users: a block hides each from the other in matching and ends their chat.

use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::{delete, get, post};
use service_kit::auth::AuthUser;
use service_kit::error::ErrorBody;
use service_kit::error::ErrorCode;
use service_kit::extract::{Json, Path};
use uuid::Uuid;
use wire::api::message::{Block, BlockRequest, BlockedUser, ListBlocks, Unblock};
use wire::endpoint::Endpoint;

use super::end_chats_between;
use crate::error::MessageError;
use crate::state::AppState;

/// `/v1/blocks*`.
pub fn router() -> Router<AppState> {
    Router::new()
        .route(ListBlocks::ROUTE, get(list_blocks))
        .route(Block::ROUTE, post(block))
        .route(Unblock::ROUTE, delete(unblock))
}

/// POST /v1/blocks
///
/// Blocks a user: they are never matched again, and an active chat between the two ends.
/// Idempotent: blocking again answers 200 with the first block.
#[utoipa::path(
    post,
    path = "/v1/blocks",
    tag = "blocks",
    security(("bearer" = [])),
    request_body = BlockRequest,
    responses(
        (status = 201, description = "Blocked", body = BlockedUser),
        (status = 200, description = "Already blocked", body = BlockedUser),
        (status = 401, description = "`missing_token`, `invalid_token`, `token_expired` or `session_ended`: no valid access token", body = ErrorBody),
        (status = 422, description = "`cannot_block_self`, or `too_many_blocks` (the cap)", body = ErrorBody),
        (status = 429, description = "`rate_limited`: too many blocks; see Retry-After", body = ErrorBody),
    )
)]
pub async fn block(
    State(state): State<AppState>,
    auth: AuthUser,
    Json(request): Json<BlockRequest>,
) -> Result<(StatusCode, Json<BlockedUser>), MessageError> {
    if request.user_id == auth.user_id {
        return Err(MessageError::validation(
            "user_id",
            ErrorCode::CannotBlockSelf,
            "you cannot block yourself",
        ));
    }
    state
        .block_limiter()
        .check(auth.user_id)
        .await
        .map_err(|retry_after| MessageError::RateLimited {
            what: "blocks",
            retry_after,
        })?;
    let max = state.config().max_blocks as usize;
    let blocked = state.store().blocks_of(auth.user_id).await?;
    if blocked.len() >= max && !blocked.iter().any(|b| b.user_id == request.user_id) {
        return Err(MessageError::validation(
            "user_id",
            ErrorCode::TooManyBlocks,
            format!("at most {max} users can be blocked; unblock someone first"),
        ));
    }
    let written = state
        .store()
        .block(auth.user_id, request.user_id, crate::store::now())
        .await?;
    // Also on a repeated block: a chat created between the two in a race is ended too.
    end_chats_between(&state, auth.user_id, request.user_id).await?;
    let status = if written.created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok((status, Json(written.value)))
}

/// DELETE /v1/blocks/{user_id}
///
/// Lifts a block (204 also when there was none).
#[utoipa::path(
    delete,
    path = "/v1/blocks/{user_id}",
    tag = "blocks",
    security(("bearer" = [])),
    params(("user_id" = Uuid, Path, description = "The blocked user")),
    responses(
        (status = 204, description = "Not blocked (any more)"),
        (status = 401, description = "`missing_token`, `invalid_token`, `token_expired` or `session_ended`: no valid access token", body = ErrorBody),
    )
)]
pub async fn unblock(
    State(state): State<AppState>,
    auth: AuthUser,
    Path(user_id): Path<Uuid>,
) -> Result<StatusCode, MessageError> {
    state.store().unblock(auth.user_id, user_id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// GET /v1/blocks
///
/// The users the caller blocked, newest first.
#[utoipa::path(
    get,
    path = "/v1/blocks",
    tag = "blocks",
    security(("bearer" = [])),
    responses(
        (status = 200, description = "Blocked users, newest first", body = Vec<BlockedUser>),
        (status = 401, description = "`missing_token`, `invalid_token`, `token_expired` or `session_ended`: no valid access token", body = ErrorBody),
    )
)]
pub async fn list_blocks(
    State(state): State<AppState>,
    auth: AuthUser,
) -> Result<Json<Vec<BlockedUser>>, MessageError> {
    Ok(Json(state.store().blocks_of(auth.user_id).await?))
}
