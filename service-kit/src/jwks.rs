//! Keeping a [`TokenVerifier`] loaded with auth-service's published keys
//! (`GET /.well-known/jwks.json`) in services that run as their own process.

use std::future::Future;
use std::time::Duration;

use jsonwebtoken::jwk::JwkSet;
use tokio::task::JoinHandle;

use crate::client::{ClientError, ServiceClient};
use crate::token::TokenVerifier;

/// Path of the JWKS document on auth-service.
pub const JWKS_PATH: &str = "/.well-known/jwks.json";

/// Fetches the JWKS once and loads it into `verifier`.
pub async fn load(verifier: &TokenVerifier, auth: &ServiceClient) -> Result<usize, String> {
    let jwks: JwkSet = auth.get_json(JWKS_PATH).await.map_err(|e| e.to_string())?;
    verifier.set_jwks(&jwks).map_err(|e| e.to_string())
}

/// Spawns a task that loads the keys as soon as auth-service answers (retrying with
/// backoff meanwhile; until then token checks answer 503), then refreshes them every
/// `every` so rotated keys are picked up.
pub fn spawn_refresh(
    verifier: TokenVerifier,
    auth: ServiceClient,
    every: Duration,
) -> JoinHandle<()> {
    spawn_refresh_with(verifier, every, move || {
        let auth = auth.clone();
        async move { auth.get_json(JWKS_PATH).await }
    })
}

/// As [`spawn_refresh`], with the JWKS document fetched by `fetch` (for a caller that
/// reaches auth-service through something other than one client, such as a balanced set
/// of instances).
pub fn spawn_refresh_with<F, Fut>(
    verifier: TokenVerifier,
    every: Duration,
    fetch: F,
) -> JoinHandle<()>
where
    F: Fn() -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<JwkSet, ClientError>> + Send,
{
    tokio::spawn(async move {
        loop {
            let count = crate::telemetry::retry_until_ok("auth-service JWKS", || async {
                let jwks = fetch().await.map_err(|e| e.to_string())?;
                verifier.set_jwks(&jwks).map_err(|e| e.to_string())
            })
            .await;
            tracing::debug!(keys = count, "access-token keys loaded");
            tokio::time::sleep(every).await;
        }
    })
}
