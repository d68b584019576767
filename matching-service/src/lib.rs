//! matching-service: the waiting queue and the pairing algorithm, in memory (embedded) or
//! on Redis (shared by any number of instances).
//!
//! - [`config`] — settings (`MATCHING_*`).
//! - [`state`] — [`AppState`], its peers and clock, and building it from settings.
//! - [`routes`] — the HTTP API (`/v1/queue`, `/internal/queue/{user_id}`).
//! - [`matcher`] — joining, status, making a match, and the background matcher loop.
//! - [`rules`] — tickets, widening with waiting time, compatibility.
//! - [`store`] — the queue trait, its memory and Redis backends, the conformance suite.
//! - [`error`] — the service's errors and their HTTP answers.
//! - [`openapi`] — the OpenAPI description of the public routes.
//!
//! See `README.md` for the algorithm, the Redis layout and the benchmark figures.

pub mod config;
pub mod error;
pub mod matcher;
pub mod openapi;
pub mod routes;
pub mod rules;
pub mod state;
pub mod store;

use axum::Router;
use axum::extract::State;
use axum::response::Response;
use axum::routing::get;

pub use config::{MatchingConfig, Reputation, Settings};
pub use matcher::spawn_matcher;
pub use state::{AppState, Clock, ManualClock, Peers};

/// The service's name in logs and metrics.
pub const SERVICE: &str = "matching-service";

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
/// Ready when the queue backend answers.
async fn readyz(State(state): State<AppState>) -> Response {
    service_kit::telemetry::readiness(state.store().ping().await.map_err(|e| e.to_string()))
}
