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
        (status = 401, description = "Missing or invalid access token", body = ErrorBody),
        (status = 403, description = "`admin_required`", body = ErrorBody),
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

/// POST /v1/admin/reports/{id}/resolve
///
/// Records how a report was resolved (once: a report already resolved keeps its first
/// resolution, which is answered).
#[utoipa::path(
    post,
    path = "/v1/admin/reports/{id}/resolve",
    tag = "admin",
    security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "Report id")),
    request_body = ResolveReportRequest,
    responses(
        (status = 200, description = "The report with its resolution", body = ReportReview),
        (status = 401, description = "Missing or invalid access token", body = ErrorBody),
        (status = 403, description = "`admin_required`", body = ErrorBody),
        (status = 404, description = "No such report", body = ErrorBody),
        (status = 422, description = "`reason_invalid`: the note is too long or holds control characters", body = ErrorBody),
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
    tracing::info!(operator = %operator.0.user_id, report = %id, outcome = ?resolution.outcome, "report resolved");
    Ok(Json(review(&state, report, Some(resolution)).await?))
}
