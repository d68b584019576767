//! Settings every service binary shares, read from flags or environment variables.

use std::net::SocketAddr;
use std::time::Duration;

use crate::auth::ServiceCredential;
use crate::revocation::RevocationError;
use crate::serve::ServeOptions;
use crate::telemetry::LogFormat;
use crate::token::{DEFAULT_AUDIENCE, DEFAULT_ISSUER, TokenVerifier};

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

    /// Redis through which ended sessions are announced to every service (see
    /// `service_kit::revocation`). Every service of a distributed deployment needs it;
    /// without it, an ended session's access tokens keep working in other processes
    /// until they expire.
    #[arg(long = "rc-redis-url", env = "RC_REDIS_URL", hide_env_values = true)]
    pub rc_redis_url: Option<String>,

    /// Seconds a client may take to send a whole request head before its connection is
    /// closed.
    #[arg(long, env = "RC_HEADER_READ_TIMEOUT_SECS", default_value_t = 10)]
    pub header_read_timeout_secs: u64,

    /// Seconds open requests may take to finish after SIGTERM before their connections
    /// are dropped.
    #[arg(long, env = "RC_SHUTDOWN_DEADLINE_SECS", default_value_t = 15)]
    pub shutdown_deadline_secs: u64,
}

impl CommonArgs {
    /// The client-facing bounds of this service's listener.
    pub fn serve_options(&self) -> ServeOptions {
        ServeOptions {
            header_read_timeout: Duration::from_secs(self.header_read_timeout_secs.max(1)),
            shutdown_deadline: Duration::from_secs(self.shutdown_deadline_secs),
        }
    }

    /// A verifier for this service's settings, following ended sessions on Redis when
    /// [`Self::rc_redis_url`] is set. Must be called inside a Tokio runtime.
    pub fn token_verifier(&self) -> Result<TokenVerifier, RevocationError> {
        let verifier = TokenVerifier::new(&self.token_issuer, &self.token_audience);
        match &self.rc_redis_url {
            Some(url) => verifier.revocations().follow_redis(url)?,
            None => tracing::warn!(
                "RC_REDIS_URL is not set: sessions ended in auth-service stay usable here until their access tokens expire"
            ),
        }
        Ok(verifier)
    }
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
