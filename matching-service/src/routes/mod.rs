//! HTTP routes, one module per resource.
//!
//! - [`queue`] — join, status and leave (`/v1/queue`).
//! - [`internal`] — dropping a ticket when a user's last connection closes (`/internal/*`,
//!   service credential).

pub mod internal;
pub mod queue;

use axum::Router;

use crate::state::AppState;

/// Every route of the service (without the health routes and layers, see [`crate::app`]).
pub fn router() -> Router<AppState> {
    Router::new()
        .merge(queue::router())
        .merge(internal::router())
}
