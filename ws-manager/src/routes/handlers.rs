//! `/internal/handlers*`: ws-handler liveness, load and full connection lists.

use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::{delete, get, put};
use service_kit::auth::ServiceCaller;
use service_kit::extract::{Json, Path};
use uuid::Uuid;
use wire::api::wsmanager::{
    HandlerConnections, HandlerHeartbeat, HandlerInfo, HeartbeatAck, LiveHandlers, RelayEnvelope,
    RemoveHandler, ReplaceConnections,
};
use wire::endpoint::Endpoint;

use crate::error::ManagerError;
use crate::state::AppState;
use crate::store::Heartbeat;

/// Longest handler URL accepted.
const MAX_URL_LEN: usize = 2048;
/// Most connections in one full list.
const MAX_CONNECTIONS_PER_LIST: usize = 1_000_000;

/// The handler routes.
pub fn router() -> Router<AppState> {
    Router::new()
        .route(LiveHandlers::ROUTE, get(live_handlers))
        .route(wire::api::wsmanager::Heartbeat::ROUTE, put(heartbeat))
        .route(RemoveHandler::ROUTE, delete(remove_handler))
        .route(ReplaceConnections::ROUTE, put(replace_connections))
}

/// PUT /internal/handlers/{id}
///
/// A heartbeat: the handler is live for the heartbeat TTL. `resync: true` asks the handler
/// for its full connection list (it was not known as live).
#[utoipa::path(put, path = "/internal/handlers/{id}", tag = "internal", params(("id" = uuid::Uuid, Path)), request_body(content_type = "application/json", description = "HandlerHeartbeat"), responses((status = 200, description = "HeartbeatAck"), (status = 422, description = "`malformed_json`, `missing_field` or `invalid_field`: the body does not parse", body = service_kit::error::ErrorBody)))]
pub async fn heartbeat(
    State(state): State<AppState>,
    _caller: ServiceCaller,
    Path(handler_id): Path<Uuid>,
    Json(body): Json<HandlerHeartbeat>,
) -> Result<Json<HeartbeatAck>, ManagerError> {
    let valid_url = body.url.len() <= MAX_URL_LEN
        && (body.url.starts_with("http://") || body.url.starts_with("https://"));
    if !valid_url {
        return Err(ManagerError::Validation {
            field: "url",
            message: "the handler URL must be an http(s) URL of at most 2048 bytes".to_owned(),
        });
    }
    let was_live = state
        .store()
        .heartbeat(
            handler_id,
            Heartbeat {
                url: body.url,
                connections: body.connections,
            },
            state.config().heartbeat_ttl,
        )
        .await?;
    if !was_live {
        tracing::info!(%handler_id, "ws-handler is live");
        // Its connections count again: routes remembered while it was away are wrong.
        announce_reset(&state).await;
    }
    Ok(Json(HeartbeatAck { resync: !was_live }))
}

/// PUT /internal/handlers/{id}/connections
///
/// Replaces every connection recorded for the handler by its full list.
#[utoipa::path(put, path = "/internal/handlers/{id}/connections", tag = "internal", params(("id" = uuid::Uuid, Path)), request_body(content_type = "application/json", description = "HandlerConnections"), responses((status = 204, description = "Replaced")))]
pub async fn replace_connections(
    State(state): State<AppState>,
    _caller: ServiceCaller,
    Path(handler_id): Path<Uuid>,
    Json(body): Json<HandlerConnections>,
) -> Result<StatusCode, ManagerError> {
    if body.connections.len() > MAX_CONNECTIONS_PER_LIST {
        return Err(ManagerError::Validation {
            field: "connections",
            message: "too many connections in one list".to_owned(),
        });
    }
    state
        .store()
        .replace_handler_connections(handler_id, &body.connections)
        .await?;
    tracing::info!(%handler_id, connections = body.connections.len(), "ws-handler connections resynchronised");
    announce_reset(&state).await;
    Ok(StatusCode::NO_CONTENT)
}

/// DELETE /internal/handlers/{id}
///
/// The handler shut down: forget it and its connections.
#[utoipa::path(delete, path = "/internal/handlers/{id}", tag = "internal", params(("id" = uuid::Uuid, Path)), responses((status = 204, description = "Forgotten")))]
pub async fn remove_handler(
    State(state): State<AppState>,
    _caller: ServiceCaller,
    Path(handler_id): Path<Uuid>,
) -> Result<StatusCode, ManagerError> {
    state.store().remove_handler(handler_id).await?;
    tracing::info!(%handler_id, "ws-handler left");
    Ok(StatusCode::NO_CONTENT)
}

/// GET /internal/handlers
///
/// Live handlers, least loaded first.
#[utoipa::path(get, path = "/internal/handlers", tag = "internal", responses((status = 200, description = "HandlerInfo list, least loaded first")))]
pub async fn live_handlers(
    State(state): State<AppState>,
    _caller: ServiceCaller,
) -> Result<Json<Vec<HandlerInfo>>, ManagerError> {
    Ok(Json(state.store().live_handlers().await?))
}

/// Tells every ws-handler to forget the routes it remembers.
async fn announce_reset(state: &AppState) {
    let news = RelayEnvelope {
        routes_reset: true,
        ..Default::default()
    };
    super::connections::announce_routes(state, news).await;
}
