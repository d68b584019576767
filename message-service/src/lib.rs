//! message-service: chats, ordered messages, durable delivery and read status, blocks and
//! reports.
//!
//! # Model
//!
//! - A **chat** has participants (two today; nothing assumes two), their public profiles
//!   as they were at match time, a creation time, and — once it ends — an end time and
//!   who ended it. It is created once per match (idempotent on the match id) and never
//!   between users of whom one blocked another.
//! - A **message** has an id, its chat, a per-chat sequence number (from 1, without gaps,
//!   assigned here), the sender, the sender's client message id, the text (1 to 4000
//!   Unicode scalar values, no control characters but newline and tab) and its time.
//!   Appending is idempotent on (chat, sender, client message id): a resend returns the
//!   original id and seq and never creates a second message.
//! - Each participant has a **delivered** and a **read** watermark: read ≤ delivered ≤
//!   the chat's last seq, and neither moves backwards. Every forward move is recorded, so
//!   a message's status (sent → delivered → read) comes with when it got there.
//! - **Blocks** (who blocked whom): a block ends an active chat between the two and keeps
//!   them from being matched again. **Reports** (reporter, reported user, chat, message
//!   ids, reason, time) are stored for moderators.
//!
//! Storage is MongoDB or, embedded, SQLite, behind one trait
//! ([`store::MessageStore`]) with one conformance suite run on both.
//!
//! # Modules
//!
//! - [`config`] — settings (`MESSAGE_*`).
//! - [`state`] — [`AppState`] and building it from settings.
//! - [`routes`] — the HTTP API, one module per resource (public and internal).
//! - [`store`] — the storage trait, its SQLite and MongoDB backends, the conformance suite.
//! - [`view`] — message status and chat summaries as a caller sees them.
//! - [`notify`] — pushing `chat_ended` through ws-manager.
//! - [`error`] — the service's errors and their HTTP answers.
//! - [`openapi`] — the OpenAPI description of the public routes.

pub mod config;
pub mod error;
pub mod notify;
pub mod openapi;
pub mod routes;
pub mod state;
pub mod store;
pub mod view;

use axum::Router;
use axum::extract::State;
use axum::response::Response;
use axum::routing::get;

pub use config::{MessageConfig, Settings};
pub use state::AppState;

/// The service's name in logs and metrics.
pub const SERVICE: &str = "message-service";

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
/// Ready when the store answers.
async fn readyz(State(state): State<AppState>) -> Response {
    let store = state
        .store()
        .ping()
        .await
        .map_err(|e| format!("store: {e}"));
    service_kit::telemetry::readiness(store)
}
