//! HTTP routes, one module per resource; every one is internal (service credential).
//!
//! - [`connections`] — registering and looking up users' connections.
//! - [`handlers`] — ws-handler heartbeats, full connection lists, the live list.
//! - [`deliver`] — pushing an event to users wherever they are connected.

pub mod connections;
pub mod deliver;
pub mod handlers;

use axum::Router;

use crate::state::AppState;

/// Every route of the service (without the health routes and layers, see [`crate::app`]).
pub fn router() -> Router<AppState> {
    Router::new()
        .merge(connections::router())
        .merge(handlers::router())
        .merge(deliver::router())
}
