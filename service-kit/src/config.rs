//! Settings every service binary shares, read from flags or environment variables.

use std::net::SocketAddr;

use crate::auth::ServiceCredential;
use crate::telemetry::LogFormat;
use crate::token::{DEFAULT_AUDIENCE, DEFAULT_ISSUER};

/// Common settings; each service flattens these into its own `clap` parser.
#[derive(Debug, Clone, clap::Args)]
pub struct CommonArgs {
    /// Log format: `pretty` or `json`.
    #[arg(long, env = "RC_LOG_FORMAT", value_enum, default_value_t = LogFormat::Pretty)]
    pub log_format: LogFormat,

    /// Shared secret services present to each other on internal endpoints
    /// (header `x-rc-service-token`). Required when services run as separate processes.
    #[arg(long, env = "RC_SERVICE_TOKEN", hide_env_values = true, value_parser = parse_credential)]
    pub service_token: ServiceCredential,

    /// Expected `iss` of access tokens.
    #[arg(long, env = "RC_TOKEN_ISSUER", default_value = DEFAULT_ISSUER)]
    pub token_issuer: String,

    /// Expected `aud` of access tokens.
    #[arg(long, env = "RC_TOKEN_AUDIENCE", default_value = DEFAULT_AUDIENCE)]
    pub token_audience: String,
}

fn parse_credential(raw: &str) -> Result<ServiceCredential, String> {
    if raw.len() < 16 {
        return Err("the service token must be at least 16 characters".to_owned());
    }
    Ok(ServiceCredential::new(raw))
}

/// Parses a listen address such as `127.0.0.1:8080`.
pub fn parse_listen(raw: &str) -> Result<SocketAddr, String> {
    raw.parse()
        .map_err(|e| format!("invalid listen address {raw:?}: {e}"))
}
