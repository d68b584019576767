//! Gateway settings, from flags or `GATEWAY_*` environment variables.

use std::net::SocketAddr;
use std::path::PathBuf;

use service_kit::config::{CommonArgs, parse_listen};

use crate::balance::EjectionPolicy;
use crate::tls::{TlsError, TlsFiles};

/// Every gateway setting.
#[derive(Debug, Clone, clap::Parser)]
#[command(
    name = "gateway",
    version,
    about = "The one public entry of Random Chats"
)]
pub struct Settings {
    /// Address to listen on.
    #[arg(long, env = "GATEWAY_LISTEN", default_value = "127.0.0.1:8080", value_parser = parse_listen)]
    pub listen: SocketAddr,

    /// Base URLs of the auth-service instances, comma-separated: each request goes to the
    /// healthy one with the fewest requests in flight.
    #[arg(
        long,
        env = "GATEWAY_AUTH_URL",
        default_value = "http://127.0.0.1:8081",
        value_delimiter = ','
    )]
    pub auth_url: Vec<String>,

    /// Base URLs of the message-service instances, comma-separated: each request goes to the
    /// healthy one with the fewest requests in flight.
    #[arg(
        long,
        env = "GATEWAY_MESSAGE_URL",
        default_value = "http://127.0.0.1:8082",
        value_delimiter = ','
    )]
    pub message_url: Vec<String>,

    /// Base URLs of the matching-service instances, comma-separated: each request goes to the
    /// healthy one with the fewest requests in flight.
    #[arg(
        long,
        env = "GATEWAY_MATCHING_URL",
        default_value = "http://127.0.0.1:8083",
        value_delimiter = ','
    )]
    pub matching_url: Vec<String>,

    /// Base URLs of the ws-manager instances, comma-separated, asked for the live
    /// ws-handlers and their load.
    #[arg(
        long,
        env = "GATEWAY_WS_MANAGER_URL",
        default_value = "http://127.0.0.1:8084",
        value_delimiter = ','
    )]
    pub ws_manager_url: Vec<String>,

    /// Milliseconds an upstream instance stays out after its connection failed, it timed
    /// out or it answered a run of 502/503/504, before the first probe of its `GET /readyz`; doubled after each failed
    /// probe, up to `GATEWAY_UPSTREAM_MAX_BACKOFF_MS`.
    #[arg(long, env = "GATEWAY_UPSTREAM_BACKOFF_MS", default_value_t = 1000)]
    pub upstream_backoff_ms: u64,

    /// The longest wait, in milliseconds, between two probes of an ejected upstream
    /// instance.
    #[arg(
        long,
        env = "GATEWAY_UPSTREAM_MAX_BACKOFF_MS",
        default_value_t = 30_000
    )]
    pub upstream_max_backoff_ms: u64,

    /// How many 502, 503 or 504 answers in a row take an upstream instance out of the
    /// rotation, as a refused connection or a timeout does (an instance that is up but
    /// cannot serve); it comes back once its `GET /readyz` answers 200.
    #[arg(long, env = "GATEWAY_UPSTREAM_EJECT_AFTER_5XX", default_value_t = 3)]
    pub upstream_eject_after_5xx: u32,

    /// PEM file of the certificate chain (leaf first) for HTTPS and WSS on the public
    /// listener, with `GATEWAY_TLS_KEY`; unset (both), the listener speaks plain HTTP.
    /// Reloaded when the file changes.
    #[arg(long, env = "GATEWAY_TLS_CERT")]
    pub tls_cert: Option<PathBuf>,

    /// PEM file of the private key of `GATEWAY_TLS_CERT` (PKCS#8, PKCS#1 or SEC1).
    /// Reloaded when the file changes.
    #[arg(long, env = "GATEWAY_TLS_KEY")]
    pub tls_key: Option<PathBuf>,

    /// Seconds between two checks of the modification times of the certificate and key
    /// files; a new pair that does not load is logged and the one served stays.
    #[arg(long, env = "GATEWAY_TLS_RELOAD_SECS", default_value_t = 5)]
    pub tls_reload_secs: u64,

    /// Address of the operators' listener: `/metrics`, `/healthz` and the moderation
    /// routes (`/v1/admin/*`, an `admin` token). It is kept apart from the public
    /// listener: never expose it to the Internet.
    #[arg(long, env = "GATEWAY_OPERATOR_LISTEN", default_value = "127.0.0.1:9080", value_parser = parse_listen)]
    pub operator_listen: SocketAddr,

    #[command(flatten)]
    pub limits: Limits,

    #[command(flatten)]
    pub common: CommonArgs,
}

impl Settings {
    /// The certificate and key files when TLS is configured; an error when only one of
    /// the two is set.
    pub fn tls_files(&self) -> Result<Option<TlsFiles>, TlsError> {
        TlsFiles::from_options(self.tls_cert.clone(), self.tls_key.clone())
    }

    /// How ejected upstream instances are brought back.
    pub fn ejection_policy(&self) -> EjectionPolicy {
        let backoff = std::time::Duration::from_millis(self.upstream_backoff_ms.max(1));
        EjectionPolicy {
            backoff,
            max_backoff: std::time::Duration::from_millis(self.upstream_max_backoff_ms)
                .max(backoff),
            server_errors: self.upstream_eject_after_5xx.max(1),
        }
    }
}

/// Request limits and CORS.
#[derive(Debug, Clone, clap::Args)]
pub struct Limits {
    /// Largest request body accepted, in bytes (larger answers 413).
    #[arg(long, env = "GATEWAY_MAX_BODY_BYTES", default_value_t = 64 * 1024)]
    pub max_body_bytes: usize,

    /// Sustained requests per second allowed per client IP.
    #[arg(long, env = "GATEWAY_RATE_PER_SECOND", default_value_t = 50)]
    pub rate_per_second: u32,

    /// Burst of requests allowed per client IP above the sustained rate.
    #[arg(long, env = "GATEWAY_RATE_BURST", default_value_t = 200)]
    pub rate_burst: u32,

    /// How many trusted proxies stand in front of the gateway, each appending the address
    /// it received from to `X-Forwarded-For`. The client IP is then the entry that many
    /// places from the right (entries further left are written by the client and ignored);
    /// 0 (the default) ignores the header and uses the peer address.
    #[arg(long, env = "GATEWAY_TRUSTED_PROXIES", default_value_t = 0)]
    pub trusted_proxies: usize,

    /// Milliseconds a ws-handler may take to answer a proxied WebSocket handshake (connect
    /// included) before the next instance is tried.
    #[arg(long, env = "GATEWAY_WS_HANDSHAKE_TIMEOUT_MS", default_value_t = 5000)]
    pub ws_handshake_timeout_ms: u64,

    /// Origins allowed by CORS, comma-separated; `*` allows any (tokens travel in
    /// headers, never cookies, so no credentials mode is needed).
    #[arg(
        long,
        env = "GATEWAY_CORS_ORIGINS",
        default_value = "*",
        value_delimiter = ','
    )]
    pub cors_origins: Vec<String>,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_body_bytes: 64 * 1024,
            rate_per_second: 50,
            rate_burst: 200,
            trusted_proxies: 0,
            ws_handshake_timeout_ms: 5000,
            cors_origins: vec!["*".to_owned()],
        }
    }
}
