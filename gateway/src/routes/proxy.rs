//! The REST proxy: picks the upstream by path, checks the access token, forwards.

use axum::extract::{Request, State};
use axum::http::{HeaderMap, Method, header};
use axum::response::{IntoResponse, Response};
use service_kit::auth::SERVICE_TOKEN_HEADER;
use service_kit::error::ApiError;

use crate::balance::UpstreamPool;
use crate::state::AppState;

/// Which service owns a public path, and whether it may be called without a token.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Route {
    /// auth-service.
    Auth,
    /// message-service.
    Message,
    /// matching-service.
    Matching,
}

/// The upstream for `path`, or `None` for paths the gateway does not expose (including
/// everything under `/internal`).
pub fn route_for(path: &str) -> Option<Route> {
    let under = |prefix: &str| path == prefix || path.starts_with(&format!("{prefix}/"));
    if under("/v1/auth") || under("/v1/me") || path == "/.well-known/jwks.json" {
        Some(Route::Auth)
    } else if under("/v1/chats") || under("/v1/blocks") || under("/v1/reports") {
        Some(Route::Message)
    } else if under("/v1/queue") {
        Some(Route::Matching)
    } else {
        None
    }
}

/// The upstream for an operator (moderation) path, served only on the operator listener.
pub fn operator_route_for(path: &str) -> Option<Route> {
    let under = |prefix: &str| path == prefix || path.starts_with(&format!("{prefix}/"));
    if under("/v1/admin/users") || path == "/v1/admin/audit" {
        Some(Route::Auth)
    } else if under("/v1/admin/reports") {
        Some(Route::Message)
    } else {
        None
    }
}

/// Routes that need no access token: signing up, logging in, refreshing, the JWKS.
pub fn is_anonymous(method: &Method, path: &str) -> bool {
    matches!(
        (method, path),
        (
            &Method::POST,
            "/v1/auth/signup" | "/v1/auth/login" | "/v1/auth/refresh"
        ) | (&Method::GET, "/.well-known/jwks.json")
    )
}

/// Headers that belong to one hop and are never forwarded.
const HOP_BY_HOP: [&str; 9] = [
    "connection",
    "keep-alive",
    "proxy-authenticate",
    "proxy-authorization",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
    "host",
];

/// Removes hop-by-hop headers (and a forged service credential) before forwarding.
pub fn strip_hop_headers(headers: &mut HeaderMap) {
    for name in HOP_BY_HOP {
        headers.remove(name);
    }
    headers.remove(SERVICE_TOKEN_HEADER);
}

/// Fallback handler: every public REST route.
pub async fn forward(State(state): State<AppState>, request: Request) -> Response {
    match forward_inner(&state, request, route_for).await {
        Ok(response) => response,
        Err(err) => err.into_response(),
    }
}

/// Fallback handler of the operator listener: the moderation routes (the services check
/// the `admin` role; so does this handler, to refuse early).
pub async fn forward_operator(State(state): State<AppState>, request: Request) -> Response {
    let admin =
        service_kit::auth::authenticate(request.headers(), state.verifier()).and_then(|user| {
            if user.claims.role == wire::api::auth::Role::Admin {
                Ok(user)
            } else {
                Err(ApiError::new(
                    axum::http::StatusCode::FORBIDDEN,
                    service_kit::error::ErrorCode::AdminRequired,
                    "this route is for operators",
                ))
            }
        });
    if let Err(err) = admin {
        return err.into_response();
    }
    match forward_inner(&state, request, operator_route_for).await {
        Ok(response) => response,
        Err(err) => err.into_response(),
    }
}

async fn forward_inner(
    state: &AppState,
    request: Request,
    route_of: fn(&str) -> Option<Route>,
) -> Result<Response, ApiError> {
    let path = request.uri().path().to_owned();
    let route = route_of(&path).ok_or_else(|| ApiError::not_found("no such route"))?;
    if !is_anonymous(request.method(), &path) {
        service_kit::auth::authenticate(request.headers(), state.verifier())?;
    }
    let upstream: &UpstreamPool = match route {
        Route::Auth => &state.upstreams().auth,
        Route::Message => &state.upstreams().message,
        Route::Matching => &state.upstreams().matching,
    };
    let limit = state.limits().max_body_bytes;
    let declared = request
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok());
    if declared.is_some_and(|len| len > limit) {
        return Err(service_kit::extract::body_too_large());
    }
    let (mut parts, body) = request.into_parts();
    let bytes = axum::body::to_bytes(body, limit)
        .await
        .map_err(|_| service_kit::extract::body_too_large())?;
    strip_hop_headers(&mut parts.headers);
    parts.headers.remove(header::CONTENT_LENGTH);
    let mut response = upstream
        .send(parts.method, &parts.uri, &parts.headers, bytes)
        .await
        .map_err(|e| e.into_api_error())?;
    strip_hop_headers(response.headers_mut());
    Ok(response)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn internal_paths_are_not_routed() {
        assert_eq!(route_for("/internal/users/1/profile"), None);
        assert_eq!(route_for("/v1/chatsx"), None);
    }

    #[test]
    fn public_paths_reach_their_service() {
        assert_eq!(route_for("/v1/auth/login"), Some(Route::Auth));
        assert_eq!(route_for("/v1/me/sessions"), Some(Route::Auth));
        assert_eq!(route_for("/v1/chats/abc/messages"), Some(Route::Message));
        assert_eq!(route_for("/v1/blocks"), Some(Route::Message));
        assert_eq!(route_for("/v1/queue"), Some(Route::Matching));
        // Moderation is never public, and only moderation is on the operator listener.
        assert_eq!(route_for("/v1/admin/users/x/ban"), None);
        assert_eq!(
            operator_route_for("/v1/admin/users/x/ban"),
            Some(Route::Auth)
        );
        assert_eq!(operator_route_for("/v1/admin/audit"), Some(Route::Auth));
        assert_eq!(
            operator_route_for("/v1/admin/reports"),
            Some(Route::Message)
        );
        assert_eq!(operator_route_for("/v1/me"), None);
    }

    #[test]
    fn only_sign_up_log_in_refresh_and_jwks_are_anonymous() {
        assert!(is_anonymous(&Method::POST, "/v1/auth/login"));
        assert!(!is_anonymous(&Method::POST, "/v1/auth/logout"));
        assert!(!is_anonymous(&Method::GET, "/v1/me"));
    }
}
