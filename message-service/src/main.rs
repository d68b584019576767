//! The message-service binary.

use anyhow::Context;
use clap::Parser;
use message_service::{AppState, Settings};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let settings = Settings::parse();
    service_kit::telemetry::init_tracing(settings.common.log_format);
    let state = AppState::from_settings(&settings).await?;
    let listener = tokio::net::TcpListener::bind(settings.listen)
        .await
        .with_context(|| format!("binding {}", settings.listen))?;
    tracing::info!(addr = %listener.local_addr()?, "message-service listening");
    service_kit::serve::serve(
        listener,
        message_service::app(state),
        service_kit::shutdown::signal(),
        settings.common.serve_options(),
    )
    .await;
    Ok(())
}
