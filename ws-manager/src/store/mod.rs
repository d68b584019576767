//! The connection registry behind a trait, one implementation per backend.
//!
//! - [`memory`] — in this process (the embedded default).
//! - [`redis`] — in Redis, shared by every ws-manager instance.
//! - `conformance` (tests, or the `conformance` feature) — the one test suite every implementation must pass.

#[cfg(any(test, feature = "conformance"))]
pub mod conformance;
pub mod memory;
pub mod redis;

use std::time::Duration;

use async_trait::async_trait;
use uuid::Uuid;
use wire::api::wsmanager::{ConnectionRef, HandlerInfo, UserConnection};

pub use self::memory::MemoryStore;
pub use self::redis::RedisStore;

/// Why a store operation failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The backend cannot be reached or did not answer in time.
    #[error("the registry backend is unavailable: {0}")]
    Unavailable(String),
    /// Any other backend failure (a bug or corrupt data).
    #[error("registry backend error: {0}")]
    Backend(String),
}

/// What a heartbeat records about a handler.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Heartbeat {
    /// Base URL for WebSocket upgrades.
    pub url: String,
    /// Open connections on the handler.
    pub connections: u64,
}

/// Users' connections and handlers' liveness.
///
/// A connection counts (and is returned) only while its handler is live: a handler is
/// live from a heartbeat until `ttl` passes without another one. Connection ids are
/// unique across handlers.
#[async_trait]
pub trait ConnectionStore: Send + Sync + std::fmt::Debug {
    /// Adds a connection of `user_id`; returns the user's live connections afterwards,
    /// counting this one even when its handler has not sent a heartbeat yet.
    async fn register(&self, user_id: Uuid, connection: ConnectionRef) -> Result<u32, StoreError>;

    /// Removes exactly that connection of `user_id` (nothing else); returns the user's
    /// live connections afterwards.
    async fn deregister(&self, user_id: Uuid, connection_id: Uuid) -> Result<u32, StoreError>;

    /// The user's connections on live handlers.
    async fn connections(&self, user_id: Uuid) -> Result<Vec<ConnectionRef>, StoreError>;

    /// Records a heartbeat valid for `ttl`; returns whether the handler was live before it
    /// (false: first heartbeat, after expiry, or after the registry lost its data).
    async fn heartbeat(
        &self,
        handler_id: Uuid,
        beat: Heartbeat,
        ttl: Duration,
    ) -> Result<bool, StoreError>;

    /// Replaces every connection recorded for `handler_id` by `connections`.
    async fn replace_handler_connections(
        &self,
        handler_id: Uuid,
        connections: &[UserConnection],
    ) -> Result<(), StoreError>;

    /// Forgets a handler and its connections (it shut down).
    async fn remove_handler(&self, handler_id: Uuid) -> Result<(), StoreError>;

    /// Live handlers; also drops what is left of expired ones.
    async fn live_handlers(&self) -> Result<Vec<HandlerInfo>, StoreError>;

    /// Checks that the backend answers.
    async fn ping(&self) -> Result<(), StoreError>;
}
