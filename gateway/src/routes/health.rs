//! `GET /readyz`: ready when the token keys are loaded and every REST upstream has an
//! instance that answers.

use crate::balance::UpstreamPool;
use crate::state::AppState;
use axum::extract::State;
use axum::response::Response;

/// GET /readyz
pub async fn ready(State(state): State<AppState>) -> Response {
    let mut problems = Vec::new();
    if !state.verifier().is_ready() {
        problems.push("token keys not loaded".to_owned());
    }
    for pool in state.rest_upstreams() {
        if let Err(err) = healthy(pool).await {
            problems.push(err);
        }
    }
    service_kit::telemetry::readiness(if problems.is_empty() {
        Ok(())
    } else {
        Err(problems.join("; "))
    })
}

/// Whether at least one instance of the service is up.
async fn healthy(pool: &UpstreamPool) -> Result<(), String> {
    pool.get_json::<serde_json::Value>("/healthz")
        .await
        .map(|_| ())
        .map_err(|e| e.to_string())
}
