//! Authentication extractors: `AuthUser` (an access token) and `ServiceCaller`
//! (the service-to-service credential on internal endpoints).

use axum::extract::{FromRef, FromRequestParts};
use axum::http::HeaderMap;
use axum::http::request::Parts;
use secrecy::{ExposeSecret, SecretString};
use subtle::ConstantTimeEq;
use uuid::Uuid;

use crate::error::{ApiError, ErrorCode};
use crate::token::{AccessClaims, TokenError, TokenVerifier};

/// Header carrying the service-to-service credential on internal endpoints.
pub const SERVICE_TOKEN_HEADER: &str = "x-rc-service-token";
/// `Sec-WebSocket-Protocol` entry prefix browsers use to pass the access token, since
/// they cannot set `Authorization` on a WebSocket handshake: `rc.bearer.<token>`.
pub const WS_BEARER_PROTOCOL_PREFIX: &str = "rc.bearer.";

/// The authenticated user of a request, from a verified access token.
#[derive(Debug, Clone)]
pub struct AuthUser {
    /// The user id (`sub`).
    pub user_id: Uuid,
    /// The refresh session the token belongs to (`sid`).
    pub session_id: Uuid,
    /// Every verified claim.
    pub claims: AccessClaims,
}

/// The access token of a request: `Authorization: Bearer <token>`, or for WebSocket
/// handshakes from browsers a `Sec-WebSocket-Protocol` entry `rc.bearer.<token>`.
pub fn access_token_from_headers(headers: &HeaderMap) -> Option<&str> {
    if let Some(value) = headers.get(axum::http::header::AUTHORIZATION) {
        let value = value.to_str().ok()?;
        let (scheme, token) = value.split_once(' ')?;
        return scheme
            .eq_ignore_ascii_case("bearer")
            .then(|| token.trim())
            .filter(|t| !t.is_empty());
    }
    headers
        .get_all(axum::http::header::SEC_WEBSOCKET_PROTOCOL)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .find_map(|p| p.trim().strip_prefix(WS_BEARER_PROTOCOL_PREFIX))
}

/// Verifies the access token in `headers`, mapping failures to the uniform 401 / 503.
pub fn authenticate(headers: &HeaderMap, verifier: &TokenVerifier) -> Result<AuthUser, ApiError> {
    let token = access_token_from_headers(headers).ok_or_else(|| {
        ApiError::unauthorized(ErrorCode::MissingToken, "an access token is required")
    })?;
    let claims = verifier.verify(token).map_err(token_error)?;
    Ok(AuthUser {
        user_id: claims.sub,
        session_id: claims.sid,
        claims,
    })
}

/// The uniform answer for a refused token.
pub fn token_error(err: TokenError) -> ApiError {
    match err {
        TokenError::Invalid => {
            ApiError::unauthorized(ErrorCode::InvalidToken, "the access token is invalid")
        }
        TokenError::Expired => {
            ApiError::unauthorized(ErrorCode::TokenExpired, "the access token has expired")
        }
        TokenError::KeysUnavailable => {
            ApiError::unavailable("token verification is not available yet").with_retry_after(1)
        }
        TokenError::SessionEnded => ApiError::unauthorized(
            ErrorCode::SessionEnded,
            "the session of this access token has ended; log in again",
        ),
    }
}

impl<S> FromRequestParts<S> for AuthUser
where
    TokenVerifier: FromRef<S>,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        authenticate(&parts.headers, &TokenVerifier::from_ref(state))
    }
}

/// An authenticated operator: a verified access token with the `admin` role. Operator
/// routes are served on a listener the public does not reach, and check this as well.
#[derive(Debug, Clone)]
pub struct AdminUser(pub AuthUser);

impl<S> FromRequestParts<S> for AdminUser
where
    TokenVerifier: FromRef<S>,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let user = authenticate(&parts.headers, &TokenVerifier::from_ref(state))?;
        if user.claims.role != wire::api::auth::Role::Admin {
            return Err(ApiError::new(
                axum::http::StatusCode::FORBIDDEN,
                ErrorCode::AdminRequired,
                "this route is for operators",
            ));
        }
        Ok(AdminUser(user))
    }
}

/// The shared secret services present to each other on internal endpoints. Never printed.
#[derive(Clone)]
pub struct ServiceCredential(SecretString);

impl std::fmt::Debug for ServiceCredential {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ServiceCredential([redacted])")
    }
}

impl ServiceCredential {
    /// Wraps a secret.
    pub fn new(secret: impl Into<String>) -> Self {
        Self(SecretString::from(secret.into()))
    }

    /// A random credential, for the one-process form where nothing leaves the process.
    pub fn random() -> Self {
        let mut bytes = [0u8; 32];
        rand::fill(&mut bytes);
        use base64::Engine;
        Self::new(base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes))
    }

    /// The secret, for putting in the request header.
    pub fn expose(&self) -> &str {
        self.0.expose_secret()
    }

    /// Constant-time comparison with a presented value.
    pub fn matches(&self, presented: &str) -> bool {
        self.expose().as_bytes().ct_eq(presented.as_bytes()).into()
    }
}

/// Marker proving the request carried the service credential.
#[derive(Debug, Clone, Copy)]
pub struct ServiceCaller;

impl<S> FromRequestParts<S> for ServiceCaller
where
    ServiceCredential: FromRef<S>,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let expected = ServiceCredential::from_ref(state);
        let presented = parts
            .headers
            .get(SERVICE_TOKEN_HEADER)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default();
        if !presented.is_empty() && expected.matches(presented) {
            Ok(ServiceCaller)
        } else {
            Err(ApiError::unauthorized(
                ErrorCode::InvalidServiceCredential,
                "this endpoint requires a service credential",
            ))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    #[test]
    fn a_bearer_token_is_read_from_authorization() {
        let mut headers = HeaderMap::new();
        headers.insert(
            "authorization",
            HeaderValue::from_static("Bearer abc.def.ghi"),
        );
        assert_eq!(access_token_from_headers(&headers), Some("abc.def.ghi"));
    }

    #[test]
    fn a_basic_authorization_is_not_a_bearer_token() {
        let mut headers = HeaderMap::new();
        headers.insert("authorization", HeaderValue::from_static("Basic dXNlcg=="));
        assert_eq!(access_token_from_headers(&headers), None);
    }

    #[test]
    fn a_token_is_read_from_the_websocket_protocol_list() {
        let mut headers = HeaderMap::new();
        headers.insert(
            "sec-websocket-protocol",
            HeaderValue::from_static("rc.v1, rc.bearer.abc.def.ghi"),
        );
        assert_eq!(access_token_from_headers(&headers), Some("abc.def.ghi"));
    }

    #[test]
    fn a_service_credential_matches_only_itself() {
        let credential = ServiceCredential::new("s3cret");
        assert!(credential.matches("s3cret"));
        assert!(!credential.matches("s3cre"));
        assert!(!format!("{credential:?}").contains("s3cret"));
    }
}
