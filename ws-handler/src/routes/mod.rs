//! HTTP routes.
//!
//! - [`ws`] — the WebSocket endpoint `GET /v1/ws`.

pub mod ws;

use axum::Router;

use crate::state::AppState;

/// Every route of the service (without the health routes and layers, see [`crate::app`]).
pub fn router() -> Router<AppState> {
    Router::new().merge(ws::router())
}
