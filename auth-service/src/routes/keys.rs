//! The published access-token keys.

use axum::Router;
use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;
use axum::routing::get;

use crate::state::AppState;

/// `/.well-known/jwks.json`.
pub fn router() -> Router<AppState> {
    Router::new().route("/.well-known/jwks.json", get(jwks))
}

/// GET /.well-known/jwks.json
///
/// The public keys that verify access tokens (JWKS, RFC 7517).
#[utoipa::path(
    get,
    path = "/.well-known/jwks.json",
    tag = "auth",
    responses((status = 200, description = "JWK set of the Ed25519 (EdDSA) token keys", body = Object))
)]
pub async fn jwks(State(state): State<AppState>) -> impl IntoResponse {
    (
        [(header::CACHE_CONTROL, "public, max-age=300")],
        axum::Json(state.signer().jwks()),
    )
}
