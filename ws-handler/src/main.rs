//! The ws-handler binary.

use std::time::Duration;

use anyhow::Context;
use clap::Parser;
use service_kit::client::{ServiceClient, default_http_client};
use service_kit::relay::RelayBus;
use ws_handler::{AppState, Peers, Settings};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let settings = Settings::parse();
    service_kit::telemetry::init_tracing(settings.common.log_format);
    let credential = settings.common.service_token.clone();
    let http = default_http_client();
    let client = |name: &'static str, url: &str| {
        ServiceClient::http(name, http.clone(), url, Some(credential.clone()))
    };
    let peers = Peers {
        ws_manager: client("ws-manager", &settings.ws_manager_url),
        message: client("message-service", &settings.message_url),
        matching: (!settings.matching_url.trim().is_empty())
            .then(|| client("matching-service", &settings.matching_url)),
    };
    let verifier = settings.common.token_verifier()?;
    service_kit::jwks::spawn_refresh(
        verifier.clone(),
        ServiceClient::http("auth-service", http.clone(), &settings.auth_url, None),
        Duration::from_secs(300),
    );
    let relay = match &settings.redis_url {
        Some(url) => RelayBus::redis(url).context("WSH_REDIS_URL")?,
        None => {
            tracing::warn!(
                "WSH_REDIS_URL is unset: the in-process relay bus receives nothing from a \
                 ws-manager in another process; set it for the distributed form"
            );
            RelayBus::in_process()
        }
    };
    let handler_id = settings.handler_id.unwrap_or_else(uuid::Uuid::new_v4);
    let state = AppState::new(
        handler_id,
        settings.public_url(),
        peers,
        relay,
        verifier,
        settings.handler_config(),
    );
    ws_handler::spawn_background(state.clone());
    let listener = tokio::net::TcpListener::bind(settings.listen)
        .await
        .with_context(|| format!("binding {}", settings.listen))?;
    tracing::info!(addr = %listener.local_addr()?, %handler_id, "ws-handler listening");
    let draining = state.clone();
    let options = settings.common.serve_options();
    service_kit::serve::serve(
        listener,
        ws_handler::app(state),
        async move {
            service_kit::shutdown::signal().await;
            // Every socket is told to reconnect elsewhere (1001) and drained first.
            draining.shutdown().await;
        },
        options,
    )
    .await;
    Ok(())
}
