//! ws-handler: the clients' WebSocket connections. Authenticates them, registers them with
//! ws-manager, persists sent messages through message-service, acknowledges them, relays
//! events between handlers, keeps per-connection order (resume, gap filling), and pushes
//! statuses, typing and presence.
//!
//! - [`config`] — settings (`WSH_*`).
//! - [`state`] — [`AppState`], the peers, the connections held, graceful shutdown.
//! - [`routes`] — `GET /v1/ws`.
//! - [`session`] — one connection: reader, writer, rate limits.
//! - [`chats`] — calls to message-service and ws-manager, the participants cache.
//! - [`fanout`] — one hop to the recipients' connections.
//! - [`route_cache`] — where users are connected: ws-manager's registry, cached.
//! - [`presence`] — online/offline announcements.
//! - [`background`] — heartbeats and the relay subscription.
//! - [`openapi`] — the OpenAPI description of the handshake.

pub mod background;
pub mod chats;
pub mod config;
pub mod fanout;
pub mod openapi;
pub mod outbound;
pub mod presence;
pub mod route_cache;
pub mod routes;
pub mod session;
pub mod state;

use axum::Router;
use axum::extract::State;
use axum::response::Response;
use axum::routing::get;

pub use background::{Background, spawn_background};
pub use config::{HandlerConfig, Settings};
pub use state::{AppState, Peers};

/// The service's name in logs and metrics.
pub const SERVICE: &str = "ws-handler";

/// The whole service: `GET /v1/ws`, `/healthz`, `/readyz`, `/metrics` and
/// `/openapi.json`, with the standard layers.
pub fn app(state: AppState) -> Router {
    let routes = routes::router()
        .route("/readyz", get(readyz))
        .with_state(state);
    service_kit::telemetry::service_app(routes, SERVICE, openapi::openapi())
}

/// GET /readyz
///
/// Ready when the relay subscription is active, ws-manager took the last heartbeat, the
/// token keys are loaded, and the instance is not shutting down.
async fn readyz(State(state): State<AppState>) -> Response {
    let result = if !state.verifier().is_ready() {
        Err("token keys not loaded".to_owned())
    } else if !state.is_ready() {
        Err("relay not subscribed, heartbeat not accepted, or shutting down".to_owned())
    } else {
        Ok(())
    };
    service_kit::telemetry::readiness(result)
}
