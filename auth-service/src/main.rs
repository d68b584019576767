//! The auth-service binary.

use anyhow::Context;
use auth_service::{AppState, Settings};
use clap::Parser;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let settings = Settings::parse();
    service_kit::telemetry::init_tracing(settings.common.log_format);
    let state = AppState::from_settings(&settings).await?;
    auth_service::state::spawn_purge(state.clone());
    let listener = tokio::net::TcpListener::bind(settings.listen)
        .await
        .with_context(|| format!("binding {}", settings.listen))?;
    tracing::info!(addr = %listener.local_addr()?, "auth-service listening");
    service_kit::serve::serve(
        listener,
        auth_service::app(state),
        service_kit::shutdown::signal(),
        settings.common.serve_options(),
    )
    .await;
    Ok(())
}
