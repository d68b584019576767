//! Gateway state: the upstream services, the token verifier, limits and caches.

use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

use axum::Router;
use service_kit::client::{ClientError, ServiceClient};
use service_kit::token::TokenVerifier;
use wire::api::wsmanager::{HandlerInfo, LiveHandlers};

use crate::config::Limits;
use crate::ratelimit::IpRateLimiter;

/// How long the list of live ws-handlers is reused before asking ws-manager again.
const HANDLER_CACHE_TTL: Duration = Duration::from_millis(500);

/// Where the WebSocket endpoint is served from.
#[derive(Clone)]
pub enum WsUpstream {
    /// A ws-handler in this process: the upgrade is handed to its router directly.
    InProcess(Router),
    /// Live ws-handlers discovered through ws-manager (`GET /internal/handlers`), least
    /// loaded first; the upgrade is proxied over TCP.
    Discover(ServiceClient),
}

impl std::fmt::Debug for WsUpstream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            WsUpstream::InProcess(_) => f.write_str("InProcess"),
            WsUpstream::Discover(client) => f.debug_tuple("Discover").field(client).finish(),
        }
    }
}

/// The services behind the gateway. REST upstreams are called without the service
/// credential: only public routes are forwarded.
#[derive(Debug, Clone)]
pub struct Upstreams {
    /// auth-service.
    pub auth: ServiceClient,
    /// message-service.
    pub message: ServiceClient,
    /// matching-service.
    pub matching: ServiceClient,
    /// ws-handler instances.
    pub ws: WsUpstream,
}

/// Shared gateway state. Cheap to clone.
#[derive(Clone, Debug)]
pub struct AppState {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    upstreams: Upstreams,
    verifier: TokenVerifier,
    limits: Limits,
    limiter: IpRateLimiter,
    handlers: Mutex<Option<(Instant, Vec<HandlerInfo>)>>,
}

/// A handle on the state that does not keep it alive (for background tasks).
#[derive(Debug, Clone)]
pub struct WeakState(Weak<Inner>);

impl AppState {
    /// A handle that does not keep the state alive.
    pub fn downgrade(&self) -> WeakState {
        WeakState(Arc::downgrade(&self.inner))
    }

    /// The state again, unless every strong handle was dropped.
    pub fn upgrade(weak: &WeakState) -> Option<Self> {
        weak.0.upgrade().map(|inner| Self { inner })
    }

    /// Builds the state.
    pub fn new(upstreams: Upstreams, verifier: TokenVerifier, limits: Limits) -> Self {
        let limiter = IpRateLimiter::new(limits.rate_per_second, limits.rate_burst);
        Self {
            inner: Arc::new(Inner {
                upstreams,
                verifier,
                limits,
                limiter,
                handlers: Mutex::new(None),
            }),
        }
    }

    /// The upstream services.
    pub fn upstreams(&self) -> &Upstreams {
        &self.inner.upstreams
    }

    /// The access-token verifier.
    pub fn verifier(&self) -> &TokenVerifier {
        &self.inner.verifier
    }

    /// Request limits.
    pub fn limits(&self) -> &Limits {
        &self.inner.limits
    }

    /// The per-IP limiter.
    pub fn limiter(&self) -> &IpRateLimiter {
        &self.inner.limiter
    }

    /// Live ws-handlers, least loaded first, from a short-lived cache.
    pub async fn live_handlers(
        &self,
        ws_manager: &ServiceClient,
    ) -> Result<Vec<HandlerInfo>, ClientError> {
        if let Some((at, handlers)) = self.lock_handlers().as_ref()
            && at.elapsed() < HANDLER_CACHE_TTL
        {
            return Ok(handlers.clone());
        }
        let mut handlers = ws_manager.call::<LiveHandlers>((), ()).await?;
        handlers.sort_by_key(|h| h.connections);
        *self.lock_handlers() = Some((Instant::now(), handlers.clone()));
        Ok(handlers)
    }

    /// Forgets the cached handler list (after a handler could not be reached).
    pub fn forget_handlers(&self) {
        *self.lock_handlers() = None;
    }

    fn lock_handlers(&self) -> std::sync::MutexGuard<'_, Option<(Instant, Vec<HandlerInfo>)>> {
        self.inner
            .handlers
            .lock()
            .unwrap_or_else(|p| p.into_inner())
    }
}

impl axum::extract::FromRef<AppState> for TokenVerifier {
    fn from_ref(state: &AppState) -> Self {
        state.inner.verifier.clone()
    }
}
