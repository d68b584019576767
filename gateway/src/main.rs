//! The gateway binary: the public listener in front of the services.

use std::time::Duration;

use anyhow::Context;
use clap::Parser;
use gateway::{AppState, Settings, Upstreams, WsUpstream};
use service_kit::client::{ServiceClient, default_http_client};

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
    let verifier = settings.common.token_verifier()?;
    service_kit::jwks::spawn_refresh(
        verifier.clone(),
        upstreams.auth.clone(),
        Duration::from_secs(300),
    );

    let state = AppState::new(upstreams, verifier, settings.limits.clone());
    let operator_listener = tokio::net::TcpListener::bind(settings.operator_listen)
        .await
        .with_context(|| format!("cannot listen on {}", settings.operator_listen))?;
    tracing::info!(address = %operator_listener.local_addr()?, "gateway operator listener");
    let operators = gateway::operator_app(state.clone());
    let operator_options = settings.common.serve_options();
    tokio::spawn(service_kit::serve::serve(
        operator_listener,
        operators,
        service_kit::shutdown::signal(),
        operator_options,
    ));
    let app = gateway::app(state);
    let listener = tokio::net::TcpListener::bind(settings.listen)
        .await
        .with_context(|| format!("cannot listen on {}", settings.listen))?;
    tracing::info!(address = %listener.local_addr()?, "gateway listening");
    service_kit::serve::serve(
        listener,
        app,
        service_kit::shutdown::signal(),
        settings.common.serve_options(),
    )
    .await;
    Ok(())
}
