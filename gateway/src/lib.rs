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
//! - [`routes`] — the REST proxy, the WebSocket proxy and the OpenAPI document.
//! - [`ratelimit`] — per-IP request rate limiting.

pub mod config;
pub mod ratelimit;
pub mod routes;
pub mod state;

use axum::Router;
use axum::http::{HeaderValue, Method, header};
use axum::middleware;
use axum::routing::get;
use tower_http::cors::{AllowOrigin, CorsLayer};

pub use config::{Limits, Settings};
pub use state::{AppState, Upstreams, WsUpstream};

/// The gateway's whole router.
pub fn app(state: AppState) -> Router {
    let cors = cors_layer(&state.limits().cors_origins);
    let public = Router::new()
        .route(wire::protocol::WS_PATH, get(routes::ws::upgrade))
        .route("/openapi.json", get(routes::openapi::document))
        .route("/readyz", get(routes::health::ready))
        .fallback(routes::proxy::forward)
        .layer(middleware::from_fn_with_state(
            state.clone(),
            ratelimit::limit,
        ))
        .layer(cors)
        .with_state(state);
    let router = Router::new()
        .merge(service_kit::telemetry::health_routes())
        .merge(public);
    service_kit::telemetry::service_layers(router, "gateway")
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
