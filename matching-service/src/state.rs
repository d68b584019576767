//! The shared state of every handler and of the matcher, and building it from settings.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::Context;
use axum::extract::FromRef;
use service_kit::auth::ServiceCredential;
use service_kit::client::{ServiceClient, default_http_client};
use service_kit::limit::UserLimiter;
use service_kit::token::TokenVerifier;
use time::OffsetDateTime;
use tokio::sync::Notify;

use crate::config::{MatchingConfig, Settings};
use crate::rules::truncate_to_millis;
use crate::store::QueueStore;
use crate::store::memory::MemoryQueueStore;
use crate::store::redis::RedisQueueStore;

/// The services matching-service calls.
#[derive(Debug, Clone)]
pub struct Peers {
    /// auth-service: `GET /internal/users/{id}` (profile and saved preferences).
    pub auth: ServiceClient,
    /// message-service: blocks, active chats, chat creation.
    pub message: ServiceClient,
    /// ws-manager: delivery of the `matched` event.
    pub ws_manager: ServiceClient,
}

/// Where the service reads the time. Injectable so that tests control widening and
/// cooldowns without sleeping.
#[derive(Clone)]
pub struct Clock(Arc<dyn Fn() -> OffsetDateTime + Send + Sync>);

impl std::fmt::Debug for Clock {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Clock")
    }
}

impl Clock {
    /// The system clock.
    pub fn system() -> Self {
        Self(Arc::new(crate::store::now))
    }

    /// A clock reading `f`.
    pub fn from_fn(f: impl Fn() -> OffsetDateTime + Send + Sync + 'static) -> Self {
        Self(Arc::new(f))
    }

    /// The time now, in whole milliseconds.
    pub fn now(&self) -> OffsetDateTime {
        truncate_to_millis((self.0)())
    }
}

/// A clock that moves only when told to (for tests).
#[derive(Debug, Clone)]
pub struct ManualClock(Arc<Mutex<OffsetDateTime>>);

impl ManualClock {
    /// A clock standing at `start`.
    pub fn new(start: OffsetDateTime) -> Self {
        Self(Arc::new(Mutex::new(truncate_to_millis(start))))
    }

    /// The time it shows.
    pub fn now(&self) -> OffsetDateTime {
        *self.0.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Moves it forward.
    pub fn advance(&self, by: Duration) {
        let mut t = self.0.lock().unwrap_or_else(|p| p.into_inner());
        *t += by;
    }

    /// A [`Clock`] reading this one.
    pub fn clock(&self) -> Clock {
        let me = self.clone();
        Clock::from_fn(move || me.now())
    }
}

/// Everything a handler and the matcher need. Cheap to clone.
#[derive(Debug, Clone)]
pub struct AppState {
    inner: Arc<Inner>,
    clock: Clock,
}

#[derive(Debug)]
struct Inner {
    store: Arc<dyn QueueStore>,
    peers: Peers,
    verifier: TokenVerifier,
    credential: ServiceCredential,
    config: MatchingConfig,
    wake: Notify,
    joins: UserLimiter,
}

impl AppState {
    /// Assembles the state from its parts (the all-in-one binary and tests pass in-process
    /// peers). Reads the system clock; see [`AppState::with_clock`].
    pub fn new(
        store: Arc<dyn QueueStore>,
        peers: Peers,
        verifier: TokenVerifier,
        credential: ServiceCredential,
        config: MatchingConfig,
    ) -> Self {
        Self {
            inner: Arc::new(Inner {
                store,
                peers,
                verifier,
                credential,
                joins: service_kit::limit::limiter(
                    config.join_burst,
                    config.join_refill,
                    config.shared_limits.as_deref(),
                    "queue-join",
                ),
                config,
                wake: Notify::new(),
            }),
            clock: Clock::system(),
        }
    }

    /// The same state reading time from `clock`.
    pub fn with_clock(mut self, clock: Clock) -> Self {
        self.clock = clock;
        self
    }

    /// Builds the whole state from settings: the queue (Redis or memory), the peers over
    /// HTTP and a verifier kept loaded from auth-service's published keys.
    pub async fn from_settings(settings: &Settings) -> anyhow::Result<Self> {
        let store: Arc<dyn QueueStore> = match &settings.redis_url {
            Some(url) => {
                let store = service_kit::telemetry::retry_until_ok("Redis", || {
                    RedisQueueStore::connect(url, &settings.key_prefix, settings.search_limits())
                })
                .await;
                Arc::new(store)
            }
            None => Arc::new(MemoryQueueStore::with_limits(settings.search_limits())),
        };
        let credential = settings.common.service_token.clone();
        let http = default_http_client();
        let peer = |name: &'static str, url: &str| {
            url::Url::parse(url).with_context(|| format!("the {name} URL {url:?}"))?;
            anyhow::Ok(ServiceClient::http(
                name,
                http.clone(),
                url,
                Some(credential.clone()),
            ))
        };
        let peers = Peers {
            auth: peer("auth-service", &settings.auth_url)?,
            message: peer("message-service", &settings.message_url)?,
            ws_manager: peer("ws-manager", &settings.ws_manager_url)?,
        };
        let verifier = settings.common.token_verifier()?;
        service_kit::jwks::spawn_refresh(
            verifier.clone(),
            peers.auth.clone(),
            Duration::from_secs(300),
        );
        Ok(Self::new(
            store,
            peers,
            verifier,
            credential,
            settings.matching_config(),
        ))
    }

    /// The queue.
    pub fn store(&self) -> &dyn QueueStore {
        self.inner.store.as_ref()
    }

    /// The peer services.
    pub fn peers(&self) -> &Peers {
        &self.inner.peers
    }

    /// The behaviour settings.
    pub fn config(&self) -> &MatchingConfig {
        &self.inner.config
    }

    /// The per-user limit on queue joins.
    pub fn join_limiter(&self) -> &UserLimiter {
        &self.inner.joins
    }

    /// The time now.
    pub fn now(&self) -> OffsetDateTime {
        self.clock.now()
    }

    /// Wakes the matcher loop.
    pub fn wake_matcher(&self) {
        self.inner.wake.notify_one();
    }

    /// Completes when the matcher loop is woken.
    pub async fn woken(&self) {
        self.inner.wake.notified().await;
    }
}

impl FromRef<AppState> for TokenVerifier {
    fn from_ref(state: &AppState) -> Self {
        state.inner.verifier.clone()
    }
}

impl FromRef<AppState> for ServiceCredential {
    fn from_ref(state: &AppState) -> Self {
        state.inner.credential.clone()
    }
}
