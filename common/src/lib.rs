//! Shared plumbing for every Random Chats crate.
//!
//! Services never depend on each other's crates; they share only this one:
//!
//! - [`protocol`] — the versioned WebSocket wire protocol (client and server frames).
//! - [`api`] — request and response bodies of the public REST API and the internal
//!   service-to-service endpoints, so callers and callees cannot drift apart.
//! - [`domain`] — validated value types used by several services (gender, interests, age).
//! - [`error`] — the uniform JSON error body `{"error": {"code", "message"}}`.
//! - [`extract`] — axum extractors whose rejections use that body.
//! - [`token`] — access-token claims, JWKS documents and local token verification.
//! - [`auth`] — the `AuthUser` and `ServiceCaller` extractors.
//! - [`jwks`] — loading and refreshing the published token keys in a verifier.
//! - [`client`] — a service-to-service client over HTTP or, in one process, in-process.
//! - [`telemetry`] — tracing, request ids, Prometheus metrics, health endpoints.
//! - [`relay`] — the bus carrying events to ws-handlers (Redis pub/sub or in-process).
//! - [`shutdown`] — ctrl-c / SIGTERM handling.
//! - [`config`] — settings shared by every service binary.
//! - [`testing`] — helpers for tests that need a real backend.

pub mod api;
pub mod auth;
pub mod client;
pub mod config;
pub mod domain;
pub mod error;
pub mod extract;
pub mod jwks;
pub mod protocol;
pub mod relay;
pub mod shutdown;
pub mod telemetry;
pub mod testing;
pub mod token;
