//! The shared state of every handler, and building it from settings.

use std::sync::Arc;

use anyhow::Context;
use axum::extract::FromRef;
use service_kit::auth::ServiceCredential;
use service_kit::relay::RelayBus;

use crate::config::{ManagerConfig, Settings};
use crate::store::{ConnectionStore, MemoryStore, RedisStore};

/// Everything a handler needs. Cheap to clone.
#[derive(Debug, Clone)]
pub struct AppState {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    store: Arc<dyn ConnectionStore>,
    relay: RelayBus,
    credential: ServiceCredential,
    config: ManagerConfig,
}

impl AppState {
    /// Assembles the state. In one process `relay` is the same [`RelayBus::in_process`]
    /// the ws-handlers subscribe to.
    pub fn new(
        store: Arc<dyn ConnectionStore>,
        relay: RelayBus,
        credential: ServiceCredential,
        config: ManagerConfig,
    ) -> Self {
        Self {
            inner: Arc::new(Inner {
                store,
                relay,
                credential,
                config,
            }),
        }
    }

    /// Builds the state from settings: Redis registry and bus when `WSM_REDIS_URL` is set
    /// (waiting for Redis to answer), else memory and an in-process bus.
    pub async fn from_settings(settings: &Settings) -> anyhow::Result<Self> {
        let (store, relay): (Arc<dyn ConnectionStore>, RelayBus) = match &settings.redis_url {
            Some(url) => {
                let store = service_kit::telemetry::retry_until_ok("Redis registry", || {
                    RedisStore::connect(url, &settings.redis_prefix)
                })
                .await;
                let relay = RelayBus::redis(url).context("WSM_REDIS_URL")?;
                (Arc::new(store), relay)
            }
            None => {
                tracing::warn!(
                    "WSM_REDIS_URL is unset: registry in memory and an in-process relay bus, \
                     which reaches no ws-handler in another process"
                );
                (Arc::new(MemoryStore::new()), RelayBus::in_process())
            }
        };
        Ok(Self::new(
            store,
            relay,
            settings.common.service_token.clone(),
            settings.manager_config(),
        ))
    }

    /// The registry.
    pub fn store(&self) -> &dyn ConnectionStore {
        self.inner.store.as_ref()
    }

    /// The relay bus.
    pub fn relay(&self) -> &RelayBus {
        &self.inner.relay
    }

    /// The behaviour settings.
    pub fn config(&self) -> &ManagerConfig {
        &self.inner.config
    }
}

impl FromRef<AppState> for ServiceCredential {
    fn from_ref(state: &AppState) -> Self {
        state.inner.credential.clone()
    }
}
