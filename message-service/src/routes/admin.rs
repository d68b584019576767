//! Report review for operators (`/v1/admin/reports*`, a token with the `admin` role; the
//! gateway exposes these routes only on its operator listener): open reports with the
//! reported messages as evidence, and recording how each was resolved.

use axum::Router;
use axum::extract::State;
use axum::routing::{get, post};
use service_kit::auth::AdminUser;
use service_kit::error::{ErrorBody, ErrorCode};
use service_kit::extract::{Json, Path, Query};
use uuid::Uuid;
use wire::api::auth::AuditEntry;
use wire::api::message::{
    ListReports, Report, ReportResolution, ReportReview, ReportsQuery, ResolveReport,
    ResolveReportRequest,
};
use wire::endpoint::Endpoint;

use super::page_limit;
use crate::error::MessageError;
use crate::state::AppState;

/// Longest resolution note, in characters.
const MAX_NOTE_CHARS: usize = 1000;

/// `/v1/admin/reports*`.
pub fn router() -> Router<AppState> {
    Router::new()
        .route(ListReports::ROUTE, get(list_reports))
        .route(ResolveReport::ROUTE, post(resolve_report))
}

async fn review(
    state: &AppState,
    report: Report,
    resolution: Option<ReportResolution>,
) -> Result<ReportReview, MessageError> {
    let evidence = if report.message_ids.is_empty() {
        Vec::new()
    } else {
        state
            .store()
            .messages_by_id(report.chat_id, &report.message_ids)
            .await?
    };
    Ok(ReportReview {
        report,
        evidence,
        resolution,
    })
}

/// GET /v1/admin/reports
///
/// Reports for review, oldest first: open ones by default (`open=false` for all), each
/// with the reported messages as they were stored.
#[utoipa::path(
    get,
    path = "/v1/admin/reports",
    tag = "admin",
    security(("bearer" = [])),
    params(ReportsQuery),
    responses(
        (status = 200, description = "Reports with their evidence", body = [ReportReview]),
        (status = 401, description = "`missing_token`, `invalid_token`, `token_expired` or `session_ended`: no valid access token", body = ErrorBody),
        (status = 403, description = "`admin_required`: the token has no admin role", body = ErrorBody),
        (status = 422, description = "`limit_invalid`", body = ErrorBody),
    )
)]
pub async fn list_reports(
    State(state): State<AppState>,
    _operator: AdminUser,
    Query(query): Query<ReportsQuery>,
) -> Result<Json<Vec<ReportReview>>, MessageError> {
    let limit = page_limit(query.limit, 50, 100)?;
    let reports = state
        .store()
        .reports(query.open.unwrap_or(true), limit)
        .await?;
    let mut reviews = Vec::with_capacity(reports.len());
    for (report, resolution) in reports {
        reviews.push(review(&state, report, resolution).await?);
    }
    Ok(Json(reviews))
}

/// The audit entry id of a report's resolution: time-ordered by the resolution time, the
/// rest from the report id, so the same resolution always gives the same id.
fn audit_id(report: &Report, resolution: &ReportResolution) -> Uuid {
    let millis = (resolution.at.unix_timestamp_nanos() / 1_000_000).max(0) as u64;
    let mut rest = [0u8; 10];
    rest.copy_from_slice(&report.id.as_bytes()[6..]);
    uuid::Builder::from_unix_timestamp_millis(millis, &rest).into_uuid()
}

/// POST /v1/admin/reports/{id}/resolve
///
/// Records how a report was resolved (once: a report already resolved keeps its first
/// resolution, which is answered) and puts it in the one audit log at auth-service
/// (`GET /v1/admin/audit`, action `resolve_report`).
#[utoipa::path(
    post,
    path = "/v1/admin/reports/{id}/resolve",
    tag = "admin",
    security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "Report id")),
    request_body = ResolveReportRequest,
    responses(
        (status = 200, description = "The report with its resolution", body = ReportReview),
        (status = 401, description = "`missing_token`, `invalid_token`, `token_expired` or `session_ended`: no valid access token", body = ErrorBody),
        (status = 403, description = "`admin_required`: the token has no admin role", body = ErrorBody),
        (status = 404, description = "`not_found`: no such report", body = ErrorBody),
        (status = 422, description = "`reason_invalid`: the note is too long or holds control characters", body = ErrorBody),
        (status = 503, description = "`backend_unavailable`: resolved, but the audit log is unreachable; resolving again records it", body = ErrorBody),
    )
)]
pub async fn resolve_report(
    State(state): State<AppState>,
    operator: AdminUser,
    Path(id): Path<Uuid>,
    Json(body): Json<ResolveReportRequest>,
) -> Result<Json<ReportReview>, MessageError> {
    let note = body.note.trim();
    if note.chars().count() > MAX_NOTE_CHARS || note.chars().any(|c| c.is_control() && c != '\n') {
        return Err(MessageError::validation(
            "note",
            ErrorCode::ReasonInvalid,
            format!(
                "the note must be at most {MAX_NOTE_CHARS} characters without control characters"
            ),
        ));
    }
    let resolution = ReportResolution {
        outcome: body.outcome,
        note: note.to_owned(),
        by: operator.0.user_id,
        at: crate::store::now(),
    };
    let Some((report, resolution)) = state.store().resolve_report(id, &resolution).await? else {
        return Err(MessageError::NotFound("no such report"));
    };
    // The audit entry is derived from the stored resolution alone, so resolving again
    // after a failure here records the same entry once.
    let entry = AuditEntry {
        id: audit_id(&report, &resolution),
        at: resolution.at,
        operator_id: resolution.by,
        action: "resolve_report".to_owned(),
        target_id: report.reported_id,
        detail: format!(
            "{} report {}: {}",
            crate::store::outcome_name(resolution.outcome),
            report.id,
            resolution.note
        ),
    };
    state.audit(entry).await.map_err(|err| {
        MessageError::Unavailable(format!(
            "report {id} is resolved but the audit log did not record it ({err}); resolving \
             again records it"
        ))
    })?;
    Ok(Json(review(&state, report, Some(resolution)).await?))
}
