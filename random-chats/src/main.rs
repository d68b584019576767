//! The whole Random Chats platform in one process on the embedded backends.

use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::Context;
use clap::Parser;
use random_chats::{Platform, PlatformConfig};

/// Every Random Chats service in one process: SQLite files under the data directory,
/// in-memory queue and registry, the gateway as the one listener.
#[derive(Debug, Parser)]
#[command(version, about)]
struct Settings {
    /// Address of the gateway, the platform's one listener.
    #[arg(long, env = "RC_LISTEN", default_value = "127.0.0.1:8080", value_parser = service_kit::config::parse_listen)]
    listen: SocketAddr,

    /// Directory of the SQLite databases and the token signing key.
    #[arg(long, env = "RC_DATA_DIR", default_value = "./data")]
    data_dir: PathBuf,

    /// Address of an operators' listener: `/metrics`, `/healthz` and the moderation routes
    /// (`/v1/admin/*`, for accounts named in `--admins`). None unless set; the public
    /// listener serves none of them.
    #[arg(long, env = "RC_OPERATOR_LISTEN", value_parser = service_kit::config::parse_listen)]
    operator_listen: Option<SocketAddr>,

    /// Usernames of operators (comma-separated), whose tokens carry the `admin` role.
    #[arg(long, env = "RC_ADMINS", value_delimiter = ',')]
    admins: Vec<String>,

    /// Distinct users whose blocks or reports (not dismissed, last 30 days) put a user in
    /// low standing: matched only with others in low standing, after a hold. 0 turns the
    /// reputation off.
    #[arg(long, env = "RC_LOW_STANDING_AFTER", default_value_t = 3)]
    low_standing_after: u32,

    /// Seconds a user in low standing waits in the queue before they may be paired.
    #[arg(long, env = "RC_LOW_STANDING_HOLD_SECS", default_value_t = 60)]
    low_standing_hold_secs: u32,

    /// Keep everything in memory instead (lost on exit).
    #[arg(long, env = "RC_IN_MEMORY", default_value_t = false)]
    in_memory: bool,

    /// Log format: `pretty` or `json`.
    #[arg(long, env = "RC_LOG_FORMAT", value_enum, default_value_t = service_kit::telemetry::LogFormat::Pretty)]
    log_format: service_kit::telemetry::LogFormat,

    /// `send` frames one WebSocket connection may make per second, sustained; past it the
    /// send is refused with `rate_limited`. Raise it for load tests.
    #[arg(long, env = "RC_WS_SEND_PER_SEC", default_value_t = 5.0)]
    ws_send_per_sec: f64,

    /// `send` frames one WebSocket connection may make in a burst.
    #[arg(long, env = "RC_WS_SEND_BURST", default_value_t = 20)]
    ws_send_burst: u32,

    /// Frames of any type one WebSocket connection may make per second, sustained.
    #[arg(long, env = "RC_WS_FRAMES_PER_SEC", default_value_t = 20.0)]
    ws_frames_per_sec: f64,

    /// Frames of any type one WebSocket connection may make in a burst.
    #[arg(long, env = "RC_WS_FRAMES_BURST", default_value_t = 60)]
    ws_frames_burst: u32,

    /// PEM file of the certificate chain (leaf first) for HTTPS and WSS on the gateway,
    /// with `RC_TLS_KEY`; unset (both), plain HTTP. Reloaded when the file changes.
    #[arg(long, env = "RC_TLS_CERT")]
    tls_cert: Option<PathBuf>,

    /// PEM file of the private key of `RC_TLS_CERT`. Reloaded when the file changes.
    #[arg(long, env = "RC_TLS_KEY")]
    tls_key: Option<PathBuf>,

    /// Gateway request limits and CORS.
    #[command(flatten)]
    limits: gateway::Limits,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let settings = Settings::parse();
    service_kit::telemetry::init_tracing(settings.log_format);
    let mut config = PlatformConfig::new(
        settings.listen,
        (!settings.in_memory).then(|| settings.data_dir.clone()),
    );
    config.tls = gateway::tls::TlsFiles::from_options(settings.tls_cert, settings.tls_key)
        .context("RC_TLS_CERT and RC_TLS_KEY go together")?;
    config.limits = settings.limits;
    config.ws_handler.send_per_sec = settings.ws_send_per_sec;
    config.ws_handler.send_burst = settings.ws_send_burst.max(1);
    config.ws_handler.frames_per_sec = settings.ws_frames_per_sec;
    config.ws_handler.frames_burst = settings.ws_frames_burst.max(1);
    config.matching.reputation.low_standing_after = settings.low_standing_after;
    config.matching.reputation.hold_secs = settings.low_standing_hold_secs;
    config.auth.admins = settings
        .admins
        .iter()
        .map(|name| name.trim().to_lowercase())
        .filter(|name| !name.is_empty())
        .collect();
    let mut platform = Platform::start(config).await?;
    if let Some(address) = settings.operator_listen {
        let listener = tokio::net::TcpListener::bind(address)
            .await
            .with_context(|| format!("cannot listen on {address}"))?;
        println!(
            "Operators (metrics, moderation) at http://{}",
            listener.local_addr()?
        );
        tokio::spawn(service_kit::serve::serve(
            listener,
            platform.operator_app(),
            service_kit::shutdown::signal(),
            service_kit::serve::ServeOptions::default(),
        ));
    }
    let storage = if settings.in_memory {
        "in memory".to_owned()
    } else {
        format!("data in {}", settings.data_dir.display())
    };
    println!(
        "Random Chats is running at {} ({storage}). Press Ctrl-C to stop.",
        platform.gateway_url()
    );
    tokio::select! {
        result = platform.wait() => result?,
        () = service_kit::shutdown::signal() => {
            println!("stopping");
            platform.shutdown().await;
        }
    }
    Ok(())
}
