//! `GET /v1/ws`: checks the access token before the upgrade, then hands the upgrade to a
//! ws-handler — in process, or by proxying the handshake and then the raw bytes to the
//! live instance chosen by [`crate::placement`], trying the next one when an instance
//! cannot be reached.

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use hyper_util::rt::TokioIo;
use service_kit::error::ErrorCode;
use service_kit::error::{ApiError, ErrorBody};
use tower::ServiceExt;

use crate::routes::proxy::strip_hop_headers;
use crate::state::{AppState, WsUpstream};

/// GET /v1/ws
///
/// The access token comes in `Authorization: Bearer <token>` or, from browsers, as a
/// `Sec-WebSocket-Protocol` entry `rc.bearer.<token>` next to `rc.v1` (never in the URL).
/// After the upgrade the frames are those of docs/PROTOCOL.md.
#[utoipa::path(
    get,
    path = "/v1/ws",
    tag = "realtime",
    security(("bearer" = [])),
    responses(
        (status = 101, description = "Switching to the WebSocket protocol; see docs/PROTOCOL.md"),
        (status = 400, description = "`websocket_required`: not a WebSocket handshake", body = ErrorBody),
        (status = 401, description = "`missing_token`, `invalid_token`, `token_expired` or `session_ended`", body = ErrorBody),
        (status = 403, description = "`origin_not_allowed`", body = ErrorBody),
        (status = 429, description = "`rate_limited`: too many requests from this IP; see Retry-After", body = ErrorBody),
        (status = 503, description = "`no_ws_handler` or `backend_unavailable`; see Retry-After", body = ErrorBody),
    )
)]
pub async fn upgrade(State(state): State<AppState>, request: Request) -> Response {
    if let Err(err) = service_kit::auth::authenticate(request.headers(), state.verifier()) {
        return err.into_response();
    }
    match &state.upstreams().ws {
        WsUpstream::InProcess(router) => router
            .clone()
            .oneshot(request)
            .await
            .unwrap_or_else(|never| match never {}),
        WsUpstream::Discover(ws_manager) => {
            let handlers = match state.place_websocket(ws_manager).await {
                Ok(handlers) => handlers,
                Err(err) => return err.into_api_error().into_response(),
            };
            let mut request = request;
            let limit = std::time::Duration::from_millis(state.limits().ws_handshake_timeout_ms);
            for handler in &handlers {
                let attempt =
                    tokio::time::timeout(limit, proxy_upgrade(&handler.url, &mut request));
                let outcome = attempt
                    .await
                    .unwrap_or_else(|_| Err("the handshake timed out".to_owned()));
                match outcome {
                    Ok(response) => return response,
                    Err(cause) => {
                        tracing::warn!(handler = %handler.handler_id, %cause, "ws-handler unreachable; trying the next");
                        state.forget_handlers();
                    }
                }
            }
            ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                ErrorCode::NoWsHandler,
                "no WebSocket handler is available",
            )
            .with_retry_after(1)
            .into_response()
        }
    }
}

/// Performs the handshake with the handler at `base_url`. On a 101 it splices the two
/// upgraded connections together in a background task; any other answer is passed back
/// to the client. An `Err` means the handler could not be reached.
async fn proxy_upgrade(base_url: &str, request: &mut Request) -> Result<Response, String> {
    let base: Uri = base_url
        .parse()
        .map_err(|e| format!("bad handler url: {e}"))?;
    let authority = base.authority().ok_or("handler url without host")?.clone();
    let stream = tokio::net::TcpStream::connect(authority.as_str())
        .await
        .map_err(|e| e.to_string())?;
    stream.set_nodelay(true).map_err(|e| e.to_string())?;
    let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .map_err(|e| e.to_string())?;
    tokio::spawn(async move {
        if let Err(err) = connection.with_upgrades().await {
            tracing::debug!(error = %err, "ws-handler connection ended");
        }
    });

    let path = request
        .uri()
        .path_and_query()
        .map(|pq| pq.as_str().to_owned())
        .unwrap_or_else(|| wire::protocol::WS_PATH.to_owned());
    let mut upstream_request = hyper::Request::builder()
        .method(request.method().clone())
        .uri(path)
        .body(Body::empty())
        .map_err(|e| e.to_string())?;
    // Forward the handshake headers (Upgrade, Connection, Sec-WebSocket-*, Authorization,
    // Origin, request id) as they are; only Host is rewritten.
    *upstream_request.headers_mut() = request.headers().clone();
    upstream_request.headers_mut().insert(
        header::HOST,
        authority
            .as_str()
            .parse()
            .map_err(|e: header::InvalidHeaderValue| e.to_string())?,
    );
    let mut upstream_response = sender
        .send_request(upstream_request)
        .await
        .map_err(|e| e.to_string())?;

    if upstream_response.status() != StatusCode::SWITCHING_PROTOCOLS {
        let (mut parts, body) = upstream_response.into_parts();
        strip_hop_headers(&mut parts.headers);
        return Ok(Response::from_parts(parts, Body::new(body)));
    }

    let client_upgrade = hyper::upgrade::on(&mut *request);
    let upstream_upgrade = hyper::upgrade::on(&mut upstream_response);
    tokio::spawn(async move {
        match tokio::try_join!(client_upgrade, upstream_upgrade) {
            Ok((client, upstream)) => {
                let mut client = TokioIo::new(client);
                let mut upstream = TokioIo::new(upstream);
                if let Err(err) = tokio::io::copy_bidirectional(&mut client, &mut upstream).await {
                    tracing::debug!(error = %err, "proxied WebSocket ended");
                }
            }
            Err(err) => tracing::warn!(error = %err, "WebSocket upgrade failed"),
        }
    });

    let mut response = Response::builder().status(StatusCode::SWITCHING_PROTOCOLS);
    if let Some(headers) = response.headers_mut() {
        *headers = upstream_response.headers().clone();
    }
    response.body(Body::empty()).map_err(|e| e.to_string())
}
