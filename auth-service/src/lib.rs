//! auth-service: accounts, passwords, profiles, default matching preferences, JWT access
//! tokens and refresh sessions.
//!
//! - [`config`] — settings (`AUTH_*`).
//! - [`state`] — [`AppState`] and building it from settings.
//! - [`routes`] — the HTTP API, one module per resource.
//! - [`store`] — the storage traits and their PostgreSQL, SQLite and DynamoDB backends.
//! - [`domain`] — validated account values.
//! - [`password`] — argon2id hashing with bounded concurrency.
//! - [`refresh`] — refresh tokens and their hashes.
//! - [`throttle`] — login throttling.
//! - [`error`] — the service's errors and their HTTP answers.
//! - [`openapi`] — the OpenAPI description of the public routes.

pub mod config;
pub mod domain;
pub mod error;
pub mod openapi;
pub mod password;
pub mod refresh;
pub mod routes;
pub mod state;
pub mod store;
pub mod throttle;

use axum::Router;
use axum::extract::State;
use axum::response::Response;
use axum::routing::get;

pub use config::{AuthConfig, Settings};
pub use state::{AppState, Stores};

/// The service's name in logs and metrics.
pub const SERVICE: &str = "auth-service";

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
/// Ready when both stores answer.
async fn readyz(State(state): State<AppState>) -> Response {
    let users = state
        .users()
        .ping()
        .await
        .map_err(|e| format!("users: {e}"));
    let sessions = state
        .sessions()
        .ping()
        .await
        .map_err(|e| format!("sessions: {e}"));
    service_kit::telemetry::readiness(users.and(sessions))
}
