//! The caller's place in the queue: join, status, leave.

use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::{delete, get, post};
use service_kit::auth::AuthUser;
use service_kit::error::ErrorBody;
use service_kit::extract::Json;
use wire::api::matching::{GetQueue, JoinQueue, JoinQueueRequest, LeaveQueue, QueueStatus};
use wire::endpoint::Endpoint;

use crate::error::MatchError;
use crate::matcher;
use crate::state::AppState;

/// `/v1/queue`.
pub fn router() -> Router<AppState> {
    Router::new()
        .route(JoinQueue::ROUTE, post(join))
        .route(GetQueue::ROUTE, get(status))
        .route(LeaveQueue::ROUTE, delete(leave))
}

/// POST /v1/queue
///
/// Joins the queue (ending the caller's active chat first: "Next"). Absent fields come from
/// the saved preferences; interests from the request, else the saved preferences, else
/// the profile. Joining again replaces the ticket; with the same criteria it keeps its
/// original waiting time. A partner is searched at once, so the answer may already be
/// `matched`.
#[utoipa::path(
    post,
    path = "/v1/queue",
    tag = "queue",
    security(("bearer" = [])),
    request_body = JoinQueueRequest,
    responses(
        (status = 200, description = "Waiting, or already matched", body = QueueStatus),
        (status = 401, description = "`missing_token`, `invalid_token`, `token_expired` or `session_ended`: no valid access token", body = ErrorBody),
        (status = 422, description = "`age_out_of_range`, `invalid_age_range`, `invalid_age_widen`, `invalid_widen_every`, `invalid_fallback`, `interests_required`, `invalid_interest`, `too_many_interests` or `invalid_field`; the error names the field", body = ErrorBody),
        (status = 429, description = "`rate_limited`: too many joins; see Retry-After", body = ErrorBody),
        (status = 503, description = "`backend_unavailable`: the queue or a peer service is unavailable", body = ErrorBody),
    )
)]
pub async fn join(
    State(state): State<AppState>,
    auth: AuthUser,
    Json(body): Json<JoinQueueRequest>,
) -> Result<Json<QueueStatus>, MatchError> {
    state
        .join_limiter()
        .check(auth.user_id)
        .await
        .map_err(|retry_after| MatchError::TooManyJoins { retry_after })?;
    matcher::join(&state, auth.user_id, &body).await.map(Json)
}

/// GET /v1/queue
///
/// Waiting (since when, with the criteria in force now after widening), matched (the
/// latest match while its chat is live) or idle.
#[utoipa::path(
    get,
    path = "/v1/queue",
    tag = "queue",
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The caller's queue status", body = QueueStatus),
        (status = 401, description = "`missing_token`, `invalid_token`, `token_expired` or `session_ended`: no valid access token", body = ErrorBody),
    )
)]
pub async fn status(
    State(state): State<AppState>,
    auth: AuthUser,
) -> Result<Json<QueueStatus>, MatchError> {
    matcher::status(&state, auth.user_id).await.map(Json)
}

/// DELETE /v1/queue
///
/// Leaves the queue at once (also while a match is being made). Idempotent.
#[utoipa::path(
    delete,
    path = "/v1/queue",
    tag = "queue",
    security(("bearer" = [])),
    responses(
        (status = 204, description = "Not in the queue any more"),
        (status = 401, description = "`missing_token`, `invalid_token`, `token_expired` or `session_ended`: no valid access token", body = ErrorBody),
    )
)]
pub async fn leave(
    State(state): State<AppState>,
    auth: AuthUser,
) -> Result<StatusCode, MatchError> {
    matcher::leave(&state, auth.user_id).await?;
    Ok(StatusCode::NO_CONTENT)
}
