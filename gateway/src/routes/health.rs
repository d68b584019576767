//! `GET /readyz`: ready when the token keys are loaded and every REST upstream answers.

use axum::extract::State;
use axum::response::Response;
use service_kit::client::ServiceClient;

use crate::state::AppState;

/// GET /readyz
pub async fn ready(State(state): State<AppState>) -> Response {
    let upstreams = state.upstreams();
    let mut problems = Vec::new();
    if !state.verifier().is_ready() {
        problems.push("token keys not loaded".to_owned());
    }
    for client in [&upstreams.auth, &upstreams.message, &upstreams.matching] {
        if let Err(err) = healthy(client).await {
            problems.push(err);
        }
    }
    service_kit::telemetry::readiness(if problems.is_empty() {
        Ok(())
    } else {
        Err(problems.join("; "))
    })
}

async fn healthy(client: &ServiceClient) -> Result<(), String> {
    client
        .get_json::<serde_json::Value>("/healthz")
        .await
        .map(|_| ())
        .map_err(|e| e.to_string())
}
