//! Tracing, request ids, Prometheus metrics and the health endpoints every service shares.

use std::sync::OnceLock;
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::{MatchedPath, Request};
use axum::http::{HeaderName, HeaderValue, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::sensitive_headers::SetSensitiveRequestHeadersLayer;
use tower_http::trace::TraceLayer;
use tracing_subscriber::EnvFilter;

use crate::error::ApiError;

/// The request id header, set by the gateway (or the first service to see a request) and
/// propagated to every response and log line.
pub static REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// Header the gateway sets to the client's IP for the services (any value the client
/// sent is replaced); services read it for per-IP limits.
pub static CLIENT_IP_HEADER: HeaderName = HeaderName::from_static("x-rc-client-ip");

/// Log output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines.
    #[default]
    Pretty,
    /// One JSON object per line.
    Json,
}

/// Installs the global tracing subscriber once; later calls are no-ops. The filter comes
/// from `RUST_LOG` (default `info`). Installs the Prometheus recorder too, so that every
/// main (which calls this first) counts from its start, not from its first scrape.
pub fn init_tracing(format: LogFormat) {
    let _ = metrics_handle();
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt().with_env_filter(filter);
    let _ = match format {
        LogFormat::Pretty => builder.try_init(),
        LogFormat::Json => builder.json().flatten_event(true).try_init(),
    };
}

/// A backend a service depends on, as named in `backend_errors_total{backend}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// PostgreSQL (auth-service's users).
    Postgres,
    /// SQLite (the embedded stores).
    Sqlite,
    /// MongoDB (message-service).
    MongoDb,
    /// DynamoDB (auth-service's sessions).
    DynamoDb,
    /// Redis (queue, registry, relay, ended sessions, shared limits).
    Redis,
}

impl Backend {
    /// The label value.
    pub fn as_str(self) -> &'static str {
        match self {
            Backend::Postgres => "postgres",
            Backend::Sqlite => "sqlite",
            Backend::MongoDb => "mongodb",
            Backend::DynamoDb => "dynamodb",
            Backend::Redis => "redis",
        }
    }
}

/// Counts one failed call to `backend` in `backend_errors_total{backend, kind}`: `kind` is
/// `unavailable` when the backend could not be reached, was overloaded or did not answer in
/// time, `error` when it answered with a failure (a bug, corrupt data, a misconfiguration).
/// Outcomes the product expects (a taken username, a lost race on a condition) are not
/// errors and are not counted.
pub fn count_backend_error(backend: Backend, unavailable: bool) {
    let kind = if unavailable { "unavailable" } else { "error" };
    metrics::counter!("backend_errors_total", "backend" => backend.as_str(), "kind" => kind)
        .increment(1);
}

/// The process-wide Prometheus recorder, installed on first use.
pub fn metrics_handle() -> PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE
        .get_or_init(|| {
            let builder = PrometheusBuilder::new()
                .set_buckets(&[
                    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
                    10.0, 30.0, 60.0, 300.0,
                ])
                .expect("the bucket list is not empty")
                // Counts of things (e.g. messages per group commit), not durations.
                .set_buckets_for_metric(
                    Matcher::Suffix("_batch_size".to_owned()),
                    &[
                        1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0, 512.0, 1024.0, 4096.0,
                    ],
                )
                .expect("the bucket list is not empty");
            match builder.install_recorder() {
                Ok(handle) => handle,
                // Another recorder is already global (e.g. in a test harness): keep a
                // private one so /metrics still answers.
                Err(_) => PrometheusBuilder::new().build_recorder().handle(),
            }
        })
        .clone()
}

/// `GET /healthz` (liveness) only: for a public listener, which must not serve metrics.
pub fn liveness_routes<S: Clone + Send + Sync + 'static>() -> Router<S> {
    Router::new().route(
        "/healthz",
        get(|| async { axum::Json(serde_json::json!({"status": "ok"})) }),
    )
}

/// `GET /healthz` (liveness) and `GET /metrics` (Prometheus text format).
pub fn health_routes<S: Clone + Send + Sync + 'static>() -> Router<S> {
    liveness_routes().route("/metrics", get(|| async { metrics_handle().render() }))
}

/// A service's whole router: its own `routes` (with `/readyz`, state applied) plus
/// `/healthz`, `/metrics`, `GET /openapi.json` serving `openapi`, the uniform 404 and 405
/// answers, and [`service_layers`].
pub fn service_app(
    routes: Router,
    service: &'static str,
    openapi: utoipa::openapi::OpenApi,
) -> Router {
    // Serialised once: the document never changes while the service runs.
    let document = axum::body::Bytes::from(
        serde_json::to_vec(&openapi).expect("an OpenAPI document always serialises to JSON"),
    );
    let router = routes
        .route(
            "/openapi.json",
            get(move || {
                let document = document.clone();
                async move {
                    (
                        [(axum::http::header::CONTENT_TYPE, "application/json")],
                        document,
                    )
                }
            }),
        )
        .merge(health_routes())
        .fallback(crate::extract::not_found_fallback)
        .method_not_allowed_fallback(crate::extract::method_not_allowed_fallback);
    service_layers(router, service)
}

/// Answer of a readiness check: 200 `{"status":"ready"}` or 503 with the uniform body.
pub fn readiness(result: Result<(), String>) -> Response {
    match result {
        Ok(()) => axum::Json(serde_json::json!({"status": "ready"})).into_response(),
        Err(cause) => {
            tracing::warn!(%cause, "not ready");
            ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                crate::error::ErrorCode::NotReady,
                "a backend is unavailable",
            )
            .into_response()
        }
    }
}

/// Wraps a service's router with the standard layers: request id (set if absent, then
/// propagated), redaction of credentials in traces, per-request tracing, HTTP metrics
/// labelled with `service`, and a panic guard that answers 500 with the uniform body.
pub fn service_layers(router: Router, service: &'static str) -> Router {
    router
        .layer(middleware::from_fn(move |req: Request, next: Next| {
            record_http_metrics(service, req, next)
        }))
        .layer(CatchPanicLayer::custom(|_| {
            ApiError::internal(&"a request handler panicked").into_response()
        }))
        .layer(PropagateRequestIdLayer::new(REQUEST_ID.clone()))
        .layer(
            TraceLayer::new_for_http().make_span_with(move |req: &Request| {
                let request_id = req
                    .headers()
                    .get(&REQUEST_ID)
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or("-");
                tracing::info_span!(
                    "request",
                    service,
                    method = %req.method(),
                    path = %req.uri().path(),
                    request_id,
                )
            }),
        )
        .layer(SetSensitiveRequestHeadersLayer::new([
            axum::http::header::AUTHORIZATION,
            axum::http::header::COOKIE,
            axum::http::header::SEC_WEBSOCKET_PROTOCOL,
            HeaderName::from_static(crate::auth::SERVICE_TOKEN_HEADER),
        ]))
        .layer(SetRequestIdLayer::new(REQUEST_ID.clone(), MakeRequestUuid))
}

tokio::task_local! {
    static CURRENT_REQUEST_ID: HeaderValue;
}

/// The id of the request being handled by the current task, so that calls to other
/// services carry it on (see [`crate::client::ServiceClient`]).
pub fn current_request_id() -> Option<HeaderValue> {
    CURRENT_REQUEST_ID.try_with(Clone::clone).ok()
}

async fn record_http_metrics(service: &'static str, req: Request, next: Next) -> Response {
    let start = Instant::now();
    let request_id = req.headers().get(&REQUEST_ID).cloned();
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map(|p| p.as_str().to_owned())
        .unwrap_or_else(|| "unmatched".to_owned());
    let method = req.method().to_string();
    let response = match request_id {
        Some(id) => CURRENT_REQUEST_ID.scope(id, next.run(req)).await,
        None => next.run(req).await,
    };
    let labels = [
        ("service", service.to_owned()),
        ("method", method),
        ("route", route),
        ("status", response.status().as_u16().to_string()),
    ];
    metrics::counter!("http_requests_total", &labels).increment(1);
    metrics::histogram!("http_request_duration_seconds", &labels)
        .record(start.elapsed().as_secs_f64());
    response
}

/// Retries `attempt` with capped exponential backoff until it succeeds; used at startup
/// to wait for a backend that is not up yet.
pub async fn retry_until_ok<T, E, F, Fut>(what: &str, mut attempt: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, E>>,
    E: std::fmt::Display,
{
    let mut delay = Duration::from_millis(100);
    loop {
        match attempt().await {
            Ok(value) => return value,
            Err(err) => {
                tracing::warn!(what, error = %err, retry_in_ms = delay.as_millis() as u64, "not available yet");
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(Duration::from_secs(5));
            }
        }
    }
}
