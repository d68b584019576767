//! `/internal/connections` and `/internal/users/{id}/connections`.

use std::collections::HashMap;

use axum::Router;
use axum::extract::State;
use axum::routing::{delete, get, post};
use service_kit::auth::ServiceCaller;
use service_kit::extract::{Json, Path};
use uuid::Uuid;
use wire::api::wsmanager::{
    ConnectionCount, ConnectionRef, DeregisterConnection, RegisterConnection,
    RegisterConnectionRequest, RelayEnvelope, UserConnections,
};
use wire::endpoint::Endpoint;

use crate::error::ManagerError;
use crate::state::AppState;

/// The connection routes.
pub fn router() -> Router<AppState> {
    Router::new()
        .route(RegisterConnection::ROUTE, post(register))
        .route(DeregisterConnection::ROUTE, delete(deregister))
        .route(UserConnections::ROUTE, get(connections))
}

/// POST /internal/connections
///
/// Records a new connection; answers the user's live connection count (1 means the user
/// just came online). When the account then holds more than
/// [`ManagerConfig::max_connections_per_user`](crate::ManagerConfig) connections across
/// every handler, its oldest ones are ordered closed (4009) through the relay.
#[utoipa::path(post, path = "/internal/connections", tag = "internal", request_body(content_type = "application/json", description = "RegisterConnection"), responses((status = 200, description = "ConnectionCount: the user's live connections"), (status = 503, description = "`backend_unavailable`: the registry or the relay is unavailable", body = service_kit::error::ErrorBody)))]
pub async fn register(
    State(state): State<AppState>,
    _caller: ServiceCaller,
    Json(body): Json<RegisterConnectionRequest>,
) -> Result<Json<ConnectionCount>, ManagerError> {
    let connections = state
        .store()
        .register(body.user_id, body.connection)
        .await?;
    announce_routes(
        &state,
        RelayEnvelope {
            routes_changed: vec![body.user_id],
            ..Default::default()
        },
    )
    .await;
    let cap = state.config().max_connections_per_user;
    if cap > 0 && connections > cap {
        close_oldest(&state, body.user_id, cap as usize).await?;
    }
    Ok(Json(ConnectionCount { connections }))
}

/// Tells every ws-handler that routes changed (they cache where users are connected).
/// A failure is logged, not answered: the handlers' caches expire by themselves.
pub(crate) async fn announce_routes(state: &AppState, news: RelayEnvelope) {
    if let Err(err) = state.relay().publish_all(&news).await {
        metrics::counter!("wsm_route_announcements_failed_total").increment(1);
        tracing::warn!(error = %err, "cannot announce a route change; handler caches expire by themselves");
    }
}

/// Orders the handlers holding `user`'s oldest connections beyond `cap` to close them.
/// Connection ids are time-ordered (UUIDv7), so the smallest are the oldest.
async fn close_oldest(state: &AppState, user: Uuid, cap: usize) -> Result<(), ManagerError> {
    let mut all = state.store().connections(user).await?;
    all.sort_by_key(|c| c.connection_id);
    let excess = all.len().saturating_sub(cap);
    let mut per_handler: HashMap<Uuid, Vec<Uuid>> = HashMap::new();
    for old in all.into_iter().take(excess) {
        per_handler
            .entry(old.handler_id)
            .or_default()
            .push(old.connection_id);
    }
    for (handler_id, connection_ids) in per_handler {
        metrics::counter!("wsm_replaced_connections_total").increment(connection_ids.len() as u64);
        let order = RelayEnvelope {
            connection_ids,
            event: None,
            close: Some(wire::protocol::close::TOO_MANY_CONNECTIONS),
            ..Default::default()
        };
        state.relay().publish(handler_id, &order).await?;
    }
    Ok(())
}

/// DELETE /internal/connections/{user_id}/{connection_id}
///
/// Removes exactly that connection (a newer one elsewhere stays); answers the user's live
/// connection count (0 means the user just went offline).
#[utoipa::path(delete, path = "/internal/connections/{user_id}/{connection_id}", tag = "internal", params(("user_id" = uuid::Uuid, Path), ("connection_id" = uuid::Uuid, Path)), responses((status = 200, description = "ConnectionCount: the user's live connections")))]
pub async fn deregister(
    State(state): State<AppState>,
    _caller: ServiceCaller,
    Path((user_id, connection_id)): Path<(Uuid, Uuid)>,
) -> Result<Json<ConnectionCount>, ManagerError> {
    let connections = state.store().deregister(user_id, connection_id).await?;
    Ok(Json(ConnectionCount { connections }))
}

/// GET /internal/users/{id}/connections
///
/// The user's connections on live handlers.
#[utoipa::path(get, path = "/internal/users/{id}/connections", tag = "internal", params(("id" = uuid::Uuid, Path)), responses((status = 200, description = "ConnectionRef list on live handlers")))]
pub async fn connections(
    State(state): State<AppState>,
    _caller: ServiceCaller,
    Path(user_id): Path<Uuid>,
) -> Result<Json<Vec<ConnectionRef>>, ManagerError> {
    Ok(Json(state.store().connections(user_id).await?))
}
