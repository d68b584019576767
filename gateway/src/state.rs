//! Gateway state: the upstream services, the token verifier, limits and caches.

use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

use axum::Router;
use service_kit::client::ClientError;
use service_kit::token::TokenVerifier;
use wire::api::wsmanager::{HandlerInfo, LiveHandlers};

use crate::balance::UpstreamPool;
use crate::config::Limits;
use crate::placement::Placement;
use crate::ratelimit::IpRateLimiter;

/// How long the list of live ws-handlers is reused before asking ws-manager again.
const HANDLER_CACHE_TTL: Duration = Duration::from_millis(500);

/// Where the WebSocket endpoint is served from.
#[derive(Clone)]
pub enum WsUpstream {
    /// A ws-handler in this process: the upgrade is handed to its router directly.
    InProcess(Router),
    /// Live ws-handlers discovered through ws-manager (`GET /internal/handlers`), placed
    /// by load (see [`crate::placement`]); the upgrade is proxied over TCP.
    Discover(UpstreamPool),
}

impl std::fmt::Debug for WsUpstream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            WsUpstream::InProcess(_) => f.write_str("InProcess"),
            WsUpstream::Discover(pool) => f.debug_tuple("Discover").field(pool).finish(),
        }
    }
}

/// The services behind the gateway, each one or more instances. REST upstreams are called
/// without the service credential: only public routes are forwarded.
#[derive(Debug, Clone)]
pub struct Upstreams {
    /// auth-service.
    pub auth: UpstreamPool,
    /// message-service.
    pub message: UpstreamPool,
    /// matching-service.
    pub matching: UpstreamPool,
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
    /// The live ws-handlers, when they were fetched, and the placements since.
    handlers: Mutex<(Option<Instant>, Placement)>,
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
                handlers: Mutex::new((None, Placement::default())),
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

    /// The REST upstreams, each once.
    pub fn rest_upstreams(&self) -> [&UpstreamPool; 3] {
        let upstreams = &self.inner.upstreams;
        [&upstreams.auth, &upstreams.message, &upstreams.matching]
    }

    /// Places a new WebSocket: the live ws-handlers in the order to try them, the chosen
    /// one first (see [`crate::placement`]). The list from ws-manager is reused for a
    /// short while; placements made meanwhile count as load.
    pub async fn place_websocket(
        &self,
        ws_manager: &UpstreamPool,
    ) -> Result<Vec<HandlerInfo>, ClientError> {
        {
            let mut cached = self.lock_handlers();
            if let (Some(at), placement) = &mut *cached
                && at.elapsed() < HANDLER_CACHE_TTL
            {
                return Ok(placement.place());
            }
        }
        let handlers = ws_manager.call::<LiveHandlers>((), ()).await?;
        let mut cached = self.lock_handlers();
        cached.0 = Some(Instant::now());
        cached.1.refresh(handlers);
        Ok(cached.1.place())
    }

    /// Forgets the cached handler list (after a handler could not be reached).
    pub fn forget_handlers(&self) {
        self.lock_handlers().0 = None;
    }

    fn lock_handlers(&self) -> std::sync::MutexGuard<'_, (Option<Instant>, Placement)> {
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
