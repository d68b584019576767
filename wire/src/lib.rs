//! The Random Chats wire contract: everything a client and a server must agree on, and
//! nothing else (no server plumbing), so that clients build on it alone.
//!
//! - [`api`] — request and response bodies of the public REST API and the internal
//!   service-to-service endpoints, with each endpoint's method and path as a type.
//! - [`endpoint`] — the [`endpoint::Endpoint`] trait tying a route to its bodies.
//! - [`protocol`] — the versioned WebSocket protocol (client and server frames, close codes).
//! - [`error`] — the uniform JSON error body and every error code ([`error::ErrorCode`]).
//! - [`domain`] — validated values used on both sides (gender, interests, age).
//!
//! The `openapi` feature derives OpenAPI schemas (utoipa) for the servers.

pub mod api;
pub mod domain;
pub mod endpoint;
pub mod error;
pub mod protocol;
