//! Middleware in front of every public route: path hygiene, then the per-IP rate limit.

use std::net::SocketAddr;

use axum::extract::{ConnectInfo, Request, State};
use axum::http::{HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use service_kit::error::{ApiError, ErrorCode};
use service_kit::telemetry::CLIENT_IP_HEADER;

use crate::ratelimit::client_ip;
use crate::state::AppState;

/// Why a request path is refused before routing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UnsafePath {
    /// A `.` or `..` segment, which an upstream could resolve into another route.
    DotSegment,
    /// A percent-encoded `.`, `/` or `\`, which could decode into one of the above.
    EncodedSeparator,
    /// A backslash or an empty segment (`//`).
    OddSeparator,
}

/// Checks that `path` is in the one form the gateway routes: `/`-separated, non-empty
/// segments, none of them `.` or `..`, and no encoded separator or dot anywhere.
/// Routing looks at the raw path, so anything an upstream might normalise differently is
/// refused rather than normalised.
pub fn check_path(path: &str) -> Result<(), UnsafePath> {
    if path.contains('\\') {
        return Err(UnsafePath::OddSeparator);
    }
    let lower = path.to_ascii_lowercase();
    if ["%2e", "%2f", "%5c"]
        .iter()
        .any(|code| lower.contains(code))
    {
        return Err(UnsafePath::EncodedSeparator);
    }
    let rest = path.strip_prefix('/').unwrap_or(path);
    let segments: Vec<&str> = rest.split('/').collect();
    let last = segments.len() - 1;
    for (i, segment) in segments.into_iter().enumerate() {
        match segment {
            "." | ".." => return Err(UnsafePath::DotSegment),
            // A trailing slash (an empty last segment) is harmless; any other is not.
            "" if i != last => return Err(UnsafePath::OddSeparator),
            _ => {}
        }
    }
    Ok(())
}

/// Middleware: refuses paths that fail [`check_path`] with 400 `bad_request`.
pub async fn refuse_unsafe_paths(req: Request, next: Next) -> Response {
    if let Err(why) = check_path(req.uri().path()) {
        metrics::counter!("gateway_unsafe_paths_total").increment(1);
        let message = match why {
            UnsafePath::DotSegment => "the path must not contain `.` or `..` segments",
            UnsafePath::EncodedSeparator => "the path must not contain an encoded `.`, `/` or `\\`",
            UnsafePath::OddSeparator => "the path must not contain `\\` or empty segments",
        };
        return ApiError::new(StatusCode::BAD_REQUEST, ErrorCode::BadRequest, message)
            .into_response();
    }
    next.run(req).await
}

/// Middleware: refuses over-rate clients with 429 and records the client IP for services
/// (replacing any value the client sent).
pub async fn limit(State(state): State<AppState>, mut req: Request, next: Next) -> Response {
    let peer = req
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|ConnectInfo(addr)| *addr);
    let ip = client_ip(req.headers(), peer, state.limits().trusted_proxies);
    if let Err(wait) = state.limiter().check(ip) {
        metrics::counter!("gateway_rate_limited_total").increment(1);
        return ApiError::new(
            StatusCode::TOO_MANY_REQUESTS,
            ErrorCode::RateLimited,
            "too many requests; slow down",
        )
        .with_retry_after(wait.max(1))
        .into_response();
    }
    let value =
        HeaderValue::from_str(&ip.to_string()).expect("an IP address is a valid header value");
    req.headers_mut().insert(CLIENT_IP_HEADER.clone(), value);
    next.run(req).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ordinary_paths_pass() {
        for path in [
            "/",
            "/v1/me",
            "/v1/me/",
            "/v1/chats/0190b3c2-0000-7000-8000-000000000000/messages",
            "/.well-known/jwks.json",
            "/v1/auth/login",
        ] {
            assert_eq!(check_path(path), Ok(()), "{path}");
        }
    }

    #[test]
    fn dot_segments_are_refused() {
        assert_eq!(
            check_path("/v1/me/../../internal/users/1"),
            Err(UnsafePath::DotSegment)
        );
        assert_eq!(check_path("/v1/me/./sessions"), Err(UnsafePath::DotSegment));
        assert_eq!(check_path("/v1/me/.."), Err(UnsafePath::DotSegment));
    }

    #[test]
    fn encoded_separators_are_refused_in_any_case() {
        for path in [
            "/v1/me/%2e%2e/%2e%2e/internal/users/1",
            "/v1/me/%2E%2E/metrics",
            "/v1/me%2f..%2fmetrics",
            "/v1/me/%5c..",
        ] {
            assert_eq!(
                check_path(path),
                Err(UnsafePath::EncodedSeparator),
                "{path}"
            );
        }
    }

    #[test]
    fn backslashes_and_empty_segments_are_refused() {
        assert_eq!(check_path("/v1/me\\..\\x"), Err(UnsafePath::OddSeparator));
        assert_eq!(check_path("/v1//me"), Err(UnsafePath::OddSeparator));
        assert_eq!(check_path("/v1/me//"), Err(UnsafePath::OddSeparator));
    }
}
