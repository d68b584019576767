//! Internal endpoints for other services; they require the service credential.

use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::delete;
use service_kit::auth::ServiceCaller;
use service_kit::extract::Path;
use uuid::Uuid;
use wire::api::matching::DropTicket;
use wire::endpoint::Endpoint;

use crate::error::MatchError;
use crate::matcher;
use crate::state::AppState;

/// `/internal/queue/*`.
pub fn router() -> Router<AppState> {
    Router::new().route(DropTicket::ROUTE, delete(drop_ticket))
}

/// DELETE /internal/queue/{user_id}
///
/// Called by ws-handler when a user's last connection closes: the ticket leaves at once.
pub async fn drop_ticket(
    State(state): State<AppState>,
    _caller: ServiceCaller,
    Path(user_id): Path<Uuid>,
) -> Result<StatusCode, MatchError> {
    matcher::leave(&state, user_id).await?;
    Ok(StatusCode::NO_CONTENT)
}
