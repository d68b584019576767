//! `GET /v1/ws`: checks the origin and the access token, then upgrades to a WebSocket.

use axum::Router;
use axum::extract::State;
use axum::extract::ws::WebSocketUpgrade;
use axum::extract::ws::rejection::WebSocketUpgradeRejection;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use service_kit::error::ApiError;
use service_kit::error::ErrorCode;
use wire::protocol::{MAX_FRAME_BYTES, WS_PATH};

use crate::session;
use crate::state::AppState;

/// The subprotocol the server selects when a client offers it.
pub const SUBPROTOCOL: &str = "rc.v1";

/// Initial capacity of a connection's read buffer, and the most read from the socket at
/// once. Client frames are small (a `send` with a 64-character text is under 200 bytes, so
/// a read takes two or more of them), and the buffer grows for a larger frame up to
/// [`MAX_FRAME_BYTES`]; every connection holds it for its whole life, so it is one of the
/// larger parts of an idle connection's memory (the library's default is 128 KiB).
pub const READ_BUFFER_BYTES: usize = 512;

/// How many bytes of frames a connection's writer gathers before writing them out
/// without waiting for its flush (when it has that much at once; see
/// [`session::writer`]): enough for a burst of small frames in one write, small enough
/// that a connection does not keep a large write buffer after one.
pub const WRITE_BUFFER_BYTES: usize = 4 * 1024;

/// The WebSocket route.
pub fn router() -> Router<AppState> {
    Router::new().route(WS_PATH, get(upgrade))
}

/// Whether a browser origin may connect. Clients without `Origin` (not browsers) may.
pub fn origin_allowed(allowed: Option<&[String]>, origin: Option<&str>) -> bool {
    match (allowed, origin) {
        (None, _) | (_, None) => true,
        (Some(list), Some(origin)) => {
            let origin = origin.trim_end_matches('/');
            list.iter().any(|o| o.eq_ignore_ascii_case(origin))
        }
    }
}

/// GET /v1/ws
///
/// The access token comes in `Authorization: Bearer <token>` or, from browsers, as a
/// `Sec-WebSocket-Protocol` entry `rc.bearer.<token>` next to `rc.v1` (never in the URL).
#[utoipa::path(
    get,
    path = "/v1/ws",
    tag = "realtime",
    security(("bearer" = [])),
    responses(
        (status = 101, description = "Switching to the WebSocket protocol; see docs/PROTOCOL.md"),
        (status = 400, description = "`websocket_required`: not a WebSocket handshake", body = service_kit::error::ErrorBody),
        (status = 401, description = "`missing_token`, `invalid_token`, `token_expired` or `session_ended`: no valid access token", body = service_kit::error::ErrorBody),
        (status = 403, description = "`origin_not_allowed`", body = service_kit::error::ErrorBody),
        (status = 503, description = "`backend_unavailable`: shutting down, or the token keys are not loaded yet; see Retry-After", body = service_kit::error::ErrorBody),
    )
)]
pub async fn upgrade(
    State(state): State<AppState>,
    headers: HeaderMap,
    ws: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
) -> Response {
    if state.is_draining() {
        return ApiError::unavailable("this server is shutting down; reconnect")
            .with_retry_after(1)
            .into_response();
    }
    let origin = headers
        .get(header::ORIGIN)
        .map(|v| v.to_str().unwrap_or("\u{0}"));
    if !origin_allowed(state.config().allowed_origins.as_deref(), origin) {
        return ApiError::new(
            StatusCode::FORBIDDEN,
            ErrorCode::OriginNotAllowed,
            "this origin may not open WebSocket connections",
        )
        .into_response();
    }
    let user = match service_kit::auth::authenticate(&headers, state.verifier()) {
        Ok(user) => user,
        Err(err) => return err.into_response(),
    };
    let ws = match ws {
        Ok(ws) => ws,
        Err(rejection) => {
            return ApiError::new(
                StatusCode::BAD_REQUEST,
                ErrorCode::WebsocketRequired,
                format!("a WebSocket handshake is required: {rejection}"),
            )
            .into_response();
        }
    };
    let tracker = state.tasks().clone();
    let user = session::Identity::from(&user);
    ws.protocols([SUBPROTOCOL])
        .read_buffer_size(READ_BUFFER_BYTES)
        // The writer feeds the frames it has at once and flushes them together; past this
        // many bytes they go out without waiting for the flush.
        .write_buffer_size(WRITE_BUFFER_BYTES)
        .max_message_size(MAX_FRAME_BYTES)
        .max_frame_size(MAX_FRAME_BYTES)
        // The connection runs in a task of its own: awaited in the upgrade's task, its
        // future would sit beside what that task keeps (about 180 bytes) for its whole life.
        .on_upgrade(move |socket| {
            tracker.spawn(session::run(socket, state, user));
            std::future::ready(())
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clients_without_origin_are_allowed_whatever_the_list() {
        assert!(origin_allowed(
            Some(&["https://a.example".to_owned()]),
            None
        ));
    }

    #[test]
    fn only_listed_origins_are_allowed() {
        let list = ["https://a.example".to_owned()];
        assert!(origin_allowed(Some(&list), Some("https://a.example")));
        assert!(!origin_allowed(Some(&list), Some("https://evil.example")));
        assert!(origin_allowed(None, Some("https://evil.example")));
    }
}
