//! The gateway: the one public listener of Random Chats.
//!
//! It routes the public REST API to the services by path prefix, verifies access tokens
//! locally before anything reaches a service (401 with `WWW-Authenticate`), adds request
//! ids, CORS, a body size limit and per-IP rate limits, keeps `/internal/*` unreachable,
//! serves the merged OpenAPI document, and proxies WebSocket upgrades to the least-loaded
//! live ws-handler.
//!
//! - [`config`] — settings.
//! - [`state`] — the shared state and the upstream services.
//! - [`balance`] — several instances per REST service: least requests in flight, passive
//!   ejection, re-admission by probe, safe retries.
//! - [`placement`] — which ws-handler a new WebSocket goes to.
//! - [`tls`] — HTTPS and WSS on the public listener, reloading the certificate.
//! - [`routes`] — the REST proxy, the WebSocket proxy, the OpenAPI document and the
//!   middleware in front of them (path hygiene, rate limit).
//! - [`ratelimit`] — the per-IP limiter and the client IP behind trusted proxies.
//!
//! `/metrics` and the moderation routes are not on the public router: [`operator_app`]
//! serves them on a separate listener for operators.

pub mod balance;
pub mod config;
pub mod placement;
pub mod ratelimit;
pub mod routes;
pub mod state;
pub mod tls;

use axum::Router;
use axum::http::{HeaderValue, Method, header};
use axum::middleware;
use axum::routing::get;
use std::time::Duration;
use tower_http::cors::{AllowOrigin, CorsLayer};

pub use balance::{EjectionPolicy, UpstreamPool};
pub use config::{Limits, Settings};
pub use state::{AppState, Upstreams, WsUpstream};

/// How often the rate limiter forgets clients that are back to a full allowance.
const LIMITER_SHRINK_EVERY: Duration = Duration::from_secs(60);

/// The gateway's public router. Spawns the rate limiter's clean-up and the probes of
/// ejected upstream instances, which end when the state is dropped.
pub fn app(state: AppState) -> Router {
    spawn_limiter_shrink(&state);
    for pool in state.rest_upstreams() {
        pool.spawn_probe();
    }
    if let WsUpstream::Discover(pool) = &state.upstreams().ws {
        pool.spawn_probe();
    }
    let cors = cors_layer(&state.limits().cors_origins);
    let public = Router::new()
        .route(wire::protocol::WS_PATH, get(routes::ws::upgrade))
        .route("/openapi.json", get(routes::openapi::document))
        .route("/readyz", get(routes::health::ready))
        .fallback(routes::proxy::forward)
        .layer(middleware::from_fn_with_state(
            state.clone(),
            routes::guard::limit,
        ))
        .layer(cors)
        .with_state(state);
    let router = Router::new()
        .merge(service_kit::telemetry::liveness_routes())
        .merge(public)
        // Outermost, so that nothing routes or counts a path before it is checked.
        .layer(middleware::from_fn(routes::guard::refuse_unsafe_paths));
    service_kit::telemetry::service_layers(router, "gateway")
}

/// The operators' router, for a listener that is not public: `/metrics`, `/healthz` and
/// the moderation routes (`/v1/admin/*`, forwarded for tokens with the `admin` role).
pub fn operator_app(state: AppState) -> Router {
    let moderation = Router::new()
        .fallback(routes::proxy::forward_operator)
        .with_state(state);
    let router = service_kit::telemetry::health_routes()
        .merge(moderation)
        .layer(middleware::from_fn(routes::guard::refuse_unsafe_paths));
    service_kit::telemetry::service_layers(router, "gateway-operator")
}

fn spawn_limiter_shrink(state: &AppState) {
    let weak = state.downgrade();
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(LIMITER_SHRINK_EVERY);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        tick.tick().await;
        loop {
            tick.tick().await;
            let Some(state) = AppState::upgrade(&weak) else {
                return;
            };
            state.limiter().shrink();
        }
    });
}

fn cors_layer(origins: &[String]) -> CorsLayer {
    let allow_origin = if origins.iter().any(|o| o == "*") {
        AllowOrigin::any()
    } else {
        AllowOrigin::list(
            origins
                .iter()
                .filter_map(|o| HeaderValue::from_str(o.trim()).ok()),
        )
    };
    CorsLayer::new()
        .allow_origin(allow_origin)
        .allow_methods([
            Method::GET,
            Method::POST,
            Method::PUT,
            Method::PATCH,
            Method::DELETE,
        ])
        .allow_headers([header::AUTHORIZATION, header::CONTENT_TYPE])
        .expose_headers([
            header::RETRY_AFTER,
            header::WWW_AUTHENTICATE,
            service_kit::telemetry::REQUEST_ID.clone(),
        ])
}
