//! `/internal/deliver`: push an event to users wherever they are connected.

use std::collections::HashMap;

use axum::Router;
use axum::extract::State;
use axum::routing::post;
use futures::future::try_join_all;
use service_kit::auth::ServiceCaller;
use service_kit::extract::Json;
use uuid::Uuid;
use wire::api::wsmanager::{Deliver, DeliverRequest, DeliverResponse, RelayEnvelope};
use wire::endpoint::Endpoint;

use crate::error::ManagerError;
use crate::state::AppState;

/// Most recipients of one delivery.
pub const MAX_RECIPIENTS: usize = 1000;

/// The delivery route.
pub fn router() -> Router<AppState> {
    Router::new().route(Deliver::ROUTE, post(deliver))
}

/// POST /internal/deliver
///
/// Finds the users' live connections, groups them per handler and publishes one envelope
/// per handler on the relay bus. Answers how many connections the event was routed to.
#[utoipa::path(post, path = "/internal/deliver", tag = "internal", request_body(content_type = "application/json", description = "DeliverRequest"), responses((status = 200, description = "DeliverResponse"), (status = 422, description = "`malformed_json`, `missing_field` or `invalid_field`: the body does not parse", body = service_kit::error::ErrorBody), (status = 503, description = "`backend_unavailable`: the registry or the relay is unavailable", body = service_kit::error::ErrorBody)))]
pub async fn deliver(
    State(state): State<AppState>,
    _caller: ServiceCaller,
    Json(body): Json<DeliverRequest>,
) -> Result<Json<DeliverResponse>, ManagerError> {
    if body.user_ids.len() > MAX_RECIPIENTS {
        return Err(ManagerError::Validation {
            field: "user_ids",
            message: format!("at most {MAX_RECIPIENTS} recipients"),
        });
    }
    let mut users = body.user_ids.clone();
    users.sort_unstable();
    users.dedup();
    let found = try_join_all(users.iter().map(|u| state.store().connections(*u))).await?;
    let mut per_handler: HashMap<Uuid, Vec<Uuid>> = HashMap::new();
    for connection in found.into_iter().flatten() {
        if Some(connection.connection_id) != body.except_connection {
            per_handler
                .entry(connection.handler_id)
                .or_default()
                .push(connection.connection_id);
        }
    }
    let mut routed = 0u32;
    let publishes = per_handler.into_iter().map(|(handler_id, connection_ids)| {
        let count = connection_ids.len() as u32;
        let envelope = RelayEnvelope {
            connection_ids,
            event: Some(body.event.clone()),
            close: None,
            ..Default::default()
        };
        let relay = state.relay().clone();
        async move {
            relay.publish(handler_id, &envelope).await?;
            Ok::<_, ManagerError>(count)
        }
    });
    for count in try_join_all(publishes).await? {
        routed += count;
    }
    Ok(Json(DeliverResponse { routed }))
}
