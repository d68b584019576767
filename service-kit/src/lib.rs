//! The service kit: plumbing every Random Chats server shares, on top of the wire contract
//! (`wire`). Clients never depend on it.
//!
//! Services never depend on each other's crates; they share only `wire` and this one:
//!
//! - [`error`] — [`error::ApiError`], an error response with the uniform JSON body.
//! - [`extract`] — axum extractors whose rejections use that body and name the field.
//! - [`token`] — access-token claims, signing, JWKS documents and local verification.
//! - [`auth`] — the `AuthUser` and `ServiceCaller` extractors.
//! - [`jwks`] — loading and refreshing the published token keys in a verifier.
//! - [`client`] — typed calls to another service over HTTP, through its router in this
//!   process, or straight into its handler.
//! - [`telemetry`] — tracing, request ids, Prometheus metrics, health endpoints.
//! - [`relay`] — the bus carrying events to ws-handlers (Redis pub/sub or in-process).
//! - [`revocation`] — ended sessions, refused by every token check within seconds.
//! - [`shutdown`] — ctrl-c / SIGTERM handling.
//! - [`serve`] — serving a router with a header-read timeout and a shutdown deadline.
//! - [`content`] — the profanity and slur filter applied to what users receive.
//! - [`fs`] — owner-only data directories, files and keys.
//! - [`limit`] — per-user rate limits (queue joins, *Next*, blocks).
//! - [`config`] — settings shared by every service binary.

pub mod auth;
pub mod client;
pub mod config;
pub mod content;
pub mod error;
pub mod extract;
pub mod fs;
pub mod jwks;
pub mod limit;
pub mod relay;
pub mod revocation;
pub mod serve;
pub mod shutdown;
pub mod telemetry;
pub mod token;
