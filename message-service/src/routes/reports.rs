//! Reporting a chat partner, for moderators; rate limited per reporter.

use service_kit::error::ErrorCode;
use std::collections::HashSet;

use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::post;
use service_kit::auth::AuthUser;
use service_kit::error::ErrorBody;
use service_kit::extract::Json;
use time::OffsetDateTime;
use uuid::Uuid;
use wire::api::message::{FileReport, Report, ReportRequest};
use wire::endpoint::Endpoint;

use super::participant_chat;
use crate::error::MessageError;
use crate::state::AppState;

/// Longest report reason, in characters.
pub const MAX_REASON_CHARS: usize = 1000;
/// Most message ids in one report.
pub const MAX_REPORTED_MESSAGES: usize = 100;

/// `/v1/reports`.
pub fn router() -> Router<AppState> {
    Router::new().route(FileReport::ROUTE, post(report))
}

fn check_reason(reason: &str) -> Result<(), MessageError> {
    let invalid =
        |message: String| MessageError::validation("reason", ErrorCode::ReasonInvalid, message);
    if reason.trim().is_empty() {
        return Err(invalid("give a reason".to_owned()));
    }
    if reason.chars().nth(MAX_REASON_CHARS).is_some() {
        return Err(invalid(format!(
            "the reason is longer than {MAX_REASON_CHARS} characters"
        )));
    }
    if reason
        .chars()
        .any(|c| c.is_control() && c != '\n' && c != '\t')
    {
        return Err(invalid(
            "the reason holds control characters (only newline and tab are allowed)".to_owned(),
        ));
    }
    Ok(())
}

/// Seconds until one more report is allowed, given the reporter's report `times` in the
/// window (oldest first); `None` when one is allowed now.
pub fn report_retry_after(
    times: &[OffsetDateTime],
    per_window: u32,
    window: std::time::Duration,
    now: OffsetDateTime,
) -> Option<u64> {
    let per_window = (per_window as usize).max(1);
    // The report whose leaving the window makes room for one more.
    let freeing = *times.get(times.len().checked_sub(per_window)?)?;
    let wait = (freeing + window - now).whole_seconds().max(0) as u64;
    Some(wait.max(1))
}

/// POST /v1/reports
///
/// Reports a user the caller has a chat with, optionally naming messages of that chat.
#[utoipa::path(
    post,
    path = "/v1/reports",
    tag = "reports",
    security(("bearer" = [])),
    request_body = ReportRequest,
    responses(
        (status = 201, description = "Stored for moderators", body = Report),
        (status = 401, description = "`missing_token`, `invalid_token`, `token_expired` or `session_ended`: no valid access token", body = ErrorBody),
        (status = 404, description = "`chat_not_found`: no such chat with that user among the caller's", body = ErrorBody),
        (status = 422, description = "`cannot_report_self`, `reason_invalid`, `too_many_message_ids` or `message_not_in_chat`", body = ErrorBody),
        (status = 429, description = "`too_many_reports`; see Retry-After", body = ErrorBody),
    )
)]
pub async fn report(
    State(state): State<AppState>,
    auth: AuthUser,
    Json(request): Json<ReportRequest>,
) -> Result<(StatusCode, Json<Report>), MessageError> {
    check_reason(&request.reason)?;
    if request.message_ids.len() > MAX_REPORTED_MESSAGES {
        return Err(MessageError::validation(
            "message_ids",
            ErrorCode::TooManyMessageIds,
            format!("name at most {MAX_REPORTED_MESSAGES} messages"),
        ));
    }
    if request.user_id == auth.user_id {
        return Err(MessageError::validation(
            "user_id",
            ErrorCode::CannotReportSelf,
            "you cannot report yourself",
        ));
    }
    let chat = participant_chat(&state, request.chat_id, auth.user_id).await?;
    if !chat.has_participant(request.user_id) {
        return Err(MessageError::ChatNotFound);
    }
    let mut seen = HashSet::new();
    let message_ids: Vec<Uuid> = request
        .message_ids
        .iter()
        .copied()
        .filter(|id| seen.insert(*id))
        .collect();
    if !message_ids.is_empty() {
        let found = state
            .store()
            .messages_by_id(chat.chat.id, &message_ids)
            .await?;
        if found.len() != message_ids.len() {
            return Err(MessageError::validation(
                "message_ids",
                ErrorCode::MessageNotInChat,
                "every reported message must belong to the chat",
            ));
        }
    }
    let _one_at_a_time = state.report_lock(auth.user_id).await;
    let now = crate::store::now();
    let config = state.config();
    let times = state
        .store()
        .report_times(auth.user_id, now - config.report_window)
        .await?;
    if let Some(retry_after) =
        report_retry_after(&times, config.reports_per_window, config.report_window, now)
    {
        return Err(MessageError::TooManyReports { retry_after });
    }
    let report = Report {
        id: Uuid::now_v7(),
        reporter_id: auth.user_id,
        reported_id: request.user_id,
        chat_id: chat.chat.id,
        message_ids,
        reason: request.reason,
        created_at: now,
    };
    state.store().add_report(&report).await?;
    tracing::info!(report_id = %report.id, chat_id = %report.chat_id, "report filed");
    Ok((StatusCode::CREATED, Json(report)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn a_reporter_under_the_limit_may_report() {
        let now = OffsetDateTime::now_utc();
        assert_eq!(
            report_retry_after(&[now], 2, Duration::from_secs(60), now),
            None
        );
    }

    #[test]
    fn a_reporter_at_the_limit_waits_for_the_oldest_to_leave_the_window() {
        let now = OffsetDateTime::now_utc();
        let times = [
            now - time::Duration::seconds(50),
            now - time::Duration::seconds(10),
        ];
        assert_eq!(
            report_retry_after(&times, 2, Duration::from_secs(60), now),
            Some(10)
        );
    }

    #[test]
    fn a_zero_limit_does_not_panic() {
        let now = OffsetDateTime::now_utc();
        assert_eq!(
            report_retry_after(&[], 0, Duration::from_secs(60), now),
            None
        );
        assert!(report_retry_after(&[now], 0, Duration::from_secs(60), now).is_some());
    }

    #[test]
    fn reasons_must_be_present_short_and_printable() {
        assert!(check_reason("spam").is_ok());
        assert!(check_reason("  ").is_err());
        assert!(check_reason(&"x".repeat(MAX_REASON_CHARS + 1)).is_err());
        assert!(check_reason("bad\u{0}").is_err());
    }
}
