//! Internal endpoints for other services; they require the service credential.

use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::{get, post};
use service_kit::auth::ServiceCaller;
use service_kit::extract::{Json, Path};
use uuid::Uuid;
use wire::api::auth::{
    AuditEntry, GetMatchingProfile, GetPublicProfile, MatchingProfile, PublicProfile, RecordAudit,
};
use wire::domain::today_utc;
use wire::endpoint::Endpoint;

use super::public_profile_of;
use crate::error::AuthError;
use crate::state::AppState;
use crate::store::User;

/// `/internal/users/*` and `/internal/audit`.
pub fn router() -> Router<AppState> {
    Router::new()
        .route(GetMatchingProfile::ROUTE, get(matching_profile))
        .route(GetPublicProfile::ROUTE, get(public_profile))
        .route(RecordAudit::ROUTE, post(record_audit))
}

/// POST /internal/audit
///
/// Records an operator action taken at another service (report resolutions at
/// message-service), so that `GET /v1/admin/audit` is the one audit view. An entry whose
/// id is already recorded is kept as it was (retries are safe).
pub async fn record_audit(
    State(state): State<AppState>,
    _caller: ServiceCaller,
    Json(entry): Json<AuditEntry>,
) -> Result<StatusCode, AuthError> {
    state.users().record_audit(&entry).await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn user(state: &AppState, id: Uuid) -> Result<User, AuthError> {
    state
        .users()
        .user_by_id(id)
        .await?
        .ok_or(AuthError::NotFound("no such user"))
}

/// GET /internal/users/{id}/profile
///
/// What other users may know of a user.
pub async fn public_profile(
    State(state): State<AppState>,
    _caller: ServiceCaller,
    Path(id): Path<Uuid>,
) -> Result<Json<PublicProfile>, AuthError> {
    let user = user(&state, id).await?;
    Ok(Json(public_profile_of(&user, today_utc())))
}

/// GET /internal/users/{id}
///
/// The public profile plus the default matching preferences, for the matching service.
/// A banned account answers 403 `account_banned`, so it cannot join the queue.
pub async fn matching_profile(
    State(state): State<AppState>,
    _caller: ServiceCaller,
    Path(id): Path<Uuid>,
) -> Result<Json<MatchingProfile>, AuthError> {
    let user = user(&state, id).await?;
    if state.users().ban_of(id).await?.is_some() {
        return Err(AuthError::AccountBanned);
    }
    Ok(Json(MatchingProfile {
        profile: public_profile_of(&user, today_utc()),
        preferences: user.preferences,
    }))
}
