//! Helpers for the Random Chats tests (a dev-dependency only, never in a release build).
//!
//! - [`backend`] — real backends by environment variable (`POSTGRES_URL`, `REDIS_URL`,
//!   `MONGODB_URL`, `DYNAMODB_URL`): skip with a printed reason when absent, fail when
//!   `RC_REQUIRE_BACKENDS=1` (CI); unique names for per-test databases and key prefixes.
//! - [`cleanup`] — [`cleanup::Cleanup`], which removes a test's database or keys when
//!   dropped, also when the test panicked.
//! - [`conformance`] — the [`conformance!`] macro: one `#[tokio::test]` per case and
//!   backend of a store conformance suite.
//! - [`http`] — sending a request to a router (`oneshot`) and reading the JSON answer.
//! - [`metrics`] — reading a metric's value out of a service's `/metrics` text.
//! - [`proxy`] — a TCP proxy that can be frozen, to test deadlines on a silent backend.

pub mod backend;
pub mod cleanup;
pub mod conformance;
pub mod http;
pub mod metrics;
pub mod proxy;

pub use backend::{REQUIRE_BACKENDS, backend_url, backends_required, unique_name};
pub use cleanup::Cleanup;
pub use http::{TestResponse, send};
