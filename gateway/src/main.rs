//! The gateway binary: the public listener in front of the services.

use std::time::Duration;

use anyhow::Context;
use clap::Parser;
use gateway::tls::Tls;
use gateway::{AppState, Settings, UpstreamPool, Upstreams, WsUpstream};
use service_kit::client::default_http_client;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let settings = Settings::parse();
    service_kit::telemetry::init_tracing(settings.common.log_format);
    // Checked before anything starts: a TLS setting that cannot work stops the gateway.
    let files = settings
        .tls_files()
        .context("GATEWAY_TLS_CERT and GATEWAY_TLS_KEY go together")?;
    let tls = Tls::load_at_start(files.as_ref())?;

    let http = default_http_client();
    let policy = settings.ejection_policy();
    let upstreams = Upstreams {
        auth: UpstreamPool::http("auth-service", &http, &settings.auth_url, None, policy)?,
        message: UpstreamPool::http(
            "message-service",
            &http,
            &settings.message_url,
            None,
            policy,
        )?,
        matching: UpstreamPool::http(
            "matching-service",
            &http,
            &settings.matching_url,
            None,
            policy,
        )?,
        ws: WsUpstream::Discover(UpstreamPool::http(
            "ws-manager",
            &http,
            &settings.ws_manager_url,
            Some(&settings.common.service_token),
            policy,
        )?),
    };
    let verifier = settings.common.token_verifier()?;
    let auth = upstreams.auth.clone();
    service_kit::jwks::spawn_refresh_with(verifier.clone(), Duration::from_secs(300), move || {
        let auth = auth.clone();
        async move { auth.get_json(service_kit::jwks::JWKS_PATH).await }
    });

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
    let options = settings.common.serve_options();
    match tls {
        Some(tls) => {
            tls.spawn_reload(Duration::from_secs(settings.tls_reload_secs.max(1)));
            tracing::info!(address = %listener.local_addr()?, "gateway listening (HTTPS)");
            service_kit::serve::serve_with(
                listener,
                app,
                service_kit::shutdown::signal(),
                options,
                tls,
            )
            .await;
        }
        None => {
            tracing::info!(address = %listener.local_addr()?, "gateway listening");
            service_kit::serve::serve(listener, app, service_kit::shutdown::signal(), options)
                .await;
        }
    }
    Ok(())
}
