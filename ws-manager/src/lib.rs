//! ws-manager: which user is connected to which ws-handler, handler liveness and load,
//! and delivering events to users over the relay bus.
//!
//! - [`config`] — settings (`WSM_*`).
//! - [`state`] — [`AppState`] and building it from settings.
//! - [`routes`] — the internal HTTP API, one module per resource.
//! - [`store`] — the registry trait and its in-memory and Redis backends.
//! - [`error`] — the service's errors and their HTTP answers.
//! - [`openapi`] — the OpenAPI description of the internal routes.

pub mod config;
pub mod error;
pub mod openapi;
pub mod routes;
pub mod state;
pub mod store;

use axum::Router;
use axum::extract::State;
use axum::response::Response;
use axum::routing::get;

pub use config::{ManagerConfig, Settings};
pub use state::AppState;
pub use store::{ConnectionStore, MemoryStore, RedisStore};

/// The service's name in logs and metrics.
pub const SERVICE: &str = "ws-manager";

/// The whole service: every route, `/healthz`, `/readyz`, `/metrics` and
/// `/openapi.json`, with the standard layers.
pub fn app(state: AppState) -> Router {
    let routes = routes::router()
        .route("/readyz", get(readyz))
        .with_state(state);
    service_kit::telemetry::service_app(routes, SERVICE, openapi::openapi())
}

/// GET /readyz
///
/// Ready when the registry and the relay bus answer.
async fn readyz(State(state): State<AppState>) -> Response {
    let store = state
        .store()
        .ping()
        .await
        .map_err(|e| format!("registry: {e}"));
    let relay = state
        .relay()
        .ping()
        .await
        .map_err(|e| format!("relay: {e}"));
    service_kit::telemetry::readiness(store.and(relay))
}
