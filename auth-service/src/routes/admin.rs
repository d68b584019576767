//! Moderation for operators (`/v1/admin/*`, a token with the `admin` role, served to the
//! public by no listener: the gateway exposes these routes only on its operator listener):
//! banning and unbanning accounts, and the audit log of every such action.

use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::{get, post};
use service_kit::auth::AdminUser;
use service_kit::error::{ErrorBody, ErrorCode};
use service_kit::extract::{Json, Path, Query};
use uuid::Uuid;
use wire::api::auth::{AuditEntry, AuditQuery, BanRequest, BanUser, GetAuditLog};
use wire::endpoint::Endpoint;

use crate::error::AuthError;
use crate::state::AppState;
use crate::store::Ban;

/// Longest ban reason, in characters.
const MAX_REASON_CHARS: usize = 1000;
/// Default and largest audit page.
const DEFAULT_AUDIT_LIMIT: u32 = 100;
const MAX_AUDIT_LIMIT: u32 = 500;

/// `/v1/admin/*`.
pub fn router() -> Router<AppState> {
    Router::new()
        .route(BanUser::ROUTE, post(ban).delete(unban))
        .route(GetAuditLog::ROUTE, get(audit_log))
}

async fn record(
    state: &AppState,
    operator: &AdminUser,
    action: &str,
    target: Uuid,
    detail: String,
) -> Result<(), AuthError> {
    let entry = AuditEntry {
        id: Uuid::now_v7(),
        at: crate::store::now(),
        operator_id: operator.0.user_id,
        action: action.to_owned(),
        target_id: target,
        detail,
    };
    state.users().record_audit(&entry).await?;
    tracing::info!(operator = %entry.operator_id, action, target = %target, "operator action");
    Ok(())
}

/// POST /v1/admin/users/{id}/ban
///
/// Bans an account: it cannot log in or refresh, every session of it ends at once (its
/// access tokens are refused everywhere and its sockets close with 4001), and it can no
/// longer join the queue; a ticket already in the queue is dropped. Recorded in the audit
/// log.
#[utoipa::path(
    post,
    path = "/v1/admin/users/{id}/ban",
    tag = "admin",
    security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "The account")),
    request_body = BanRequest,
    responses(
        (status = 204, description = "Banned (or the reason of an existing ban replaced)"),
        (status = 401, description = "`missing_token`, `invalid_token`, `token_expired` or `session_ended`: no valid access token", body = ErrorBody),
        (status = 403, description = "`admin_required`: the token has no admin role", body = ErrorBody),
        (status = 404, description = "`not_found`: no such account", body = ErrorBody),
        (status = 422, description = "`reason_invalid`", body = ErrorBody),
        (status = 503, description = "`backend_unavailable`: a backend or the queue did not answer; banning again is safe", body = ErrorBody),
    )
)]
pub async fn ban(
    State(state): State<AppState>,
    operator: AdminUser,
    Path(id): Path<Uuid>,
    Json(body): Json<BanRequest>,
) -> Result<StatusCode, AuthError> {
    let reason = body.reason.trim();
    if reason.is_empty()
        || reason.chars().count() > MAX_REASON_CHARS
        || reason.chars().any(|c| c.is_control() && c != '\n')
    {
        return Err(AuthError::validation(
            "reason",
            ErrorCode::ReasonInvalid,
            format!(
                "the reason must be 1 to {MAX_REASON_CHARS} characters without control characters"
            ),
        ));
    }
    let ban = Ban {
        at: crate::store::now(),
        reason: reason.to_owned(),
        by: operator.0.user_id,
    };
    if !state.users().set_ban(id, Some(&ban)).await? {
        return Err(AuthError::NotFound("no such account"));
    }
    let ended = state.sessions().revoke_all(id, None, ban.at).await?;
    state.announce_ended(&ended).await;
    // Closing the sockets drops a queued ticket, but a ticket joined without a socket
    // would wait to be matched: take it out. On failure nothing is recorded yet, and
    // banning again (idempotent) finishes the job.
    state.drop_from_queue(id).await.map_err(|err| {
        AuthError::Unavailable(format!(
            "the ban is in force but the queue did not drop the account ({err}); ban again"
        ))
    })?;
    record(&state, &operator, "ban", id, ban.reason).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// DELETE /v1/admin/users/{id}/ban
///
/// Lifts a ban: the account may log in again. Recorded in the audit log.
#[utoipa::path(
    delete,
    path = "/v1/admin/users/{id}/ban",
    tag = "admin",
    security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "The account")),
    responses(
        (status = 204, description = "Not banned (any more)"),
        (status = 401, description = "`missing_token`, `invalid_token`, `token_expired` or `session_ended`: no valid access token", body = ErrorBody),
        (status = 403, description = "`admin_required`: the token has no admin role", body = ErrorBody),
        (status = 404, description = "`not_found`: no such account", body = ErrorBody),
    )
)]
pub async fn unban(
    State(state): State<AppState>,
    operator: AdminUser,
    Path(id): Path<Uuid>,
) -> Result<StatusCode, AuthError> {
    if !state.users().set_ban(id, None).await? {
        return Err(AuthError::NotFound("no such account"));
    }
    record(&state, &operator, "unban", id, String::new()).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// GET /v1/admin/audit
///
/// The operator actions, newest first.
#[utoipa::path(
    get,
    path = "/v1/admin/audit",
    tag = "admin",
    security(("bearer" = [])),
    params(AuditQuery),
    responses(
        (status = 200, description = "The newest entries", body = [AuditEntry]),
        (status = 401, description = "`missing_token`, `invalid_token`, `token_expired` or `session_ended`: no valid access token", body = ErrorBody),
        (status = 403, description = "`admin_required`: the token has no admin role", body = ErrorBody),
        (status = 422, description = "`limit_invalid`", body = ErrorBody),
    )
)]
pub async fn audit_log(
    State(state): State<AppState>,
    _operator: AdminUser,
    Query(query): Query<AuditQuery>,
) -> Result<Json<Vec<AuditEntry>>, AuthError> {
    let limit = query.limit.unwrap_or(DEFAULT_AUDIT_LIMIT);
    if !(1..=MAX_AUDIT_LIMIT).contains(&limit) {
        return Err(AuthError::validation(
            "limit",
            ErrorCode::LimitInvalid,
            format!("limit must be 1 to {MAX_AUDIT_LIMIT}"),
        ));
    }
    Ok(Json(state.users().audit_log(limit).await?))
}
