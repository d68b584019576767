//! The gateway binary: the public listener in front of the services.

use std::net::SocketAddr;
use std::time::Duration;

use anyhow::Context;
use clap::Parser;
use gateway::{AppState, Settings, Upstreams, WsUpstream};
use service_kit::client::{ServiceClient, default_http_client};
use service_kit::token::TokenVerifier;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let settings = Settings::parse();
    service_kit::telemetry::init_tracing(settings.common.log_format);

    let http = default_http_client();
    let credential = settings.common.service_token.clone();
    let upstreams = Upstreams {
        auth: ServiceClient::http("auth-service", http.clone(), &settings.auth_url, None),
        message: ServiceClient::http("message-service", http.clone(), &settings.message_url, None),
        matching: ServiceClient::http(
            "matching-service",
            http.clone(),
            &settings.matching_url,
            None,
        ),
        ws: WsUpstream::Discover(ServiceClient::http(
            "ws-manager",
            http.clone(),
            &settings.ws_manager_url,
            Some(credential),
        )),
    };
    let verifier = TokenVerifier::new(
        &settings.common.token_issuer,
        &settings.common.token_audience,
    );
    service_kit::jwks::spawn_refresh(
        verifier.clone(),
        upstreams.auth.clone(),
        Duration::from_secs(300),
    );

    let state = AppState::new(upstreams, verifier, settings.limits.clone());
    let app = gateway::app(state);
    let listener = tokio::net::TcpListener::bind(settings.listen)
        .await
        .with_context(|| format!("cannot listen on {}", settings.listen))?;
    tracing::info!(address = %listener.local_addr()?, "gateway listening");
    axum::serve(
        listener,
        app.into_make_service_with_connect_info::<SocketAddr>(),
    )
    .with_graceful_shutdown(service_kit::shutdown::signal())
    .await
    .context("server error")
}
