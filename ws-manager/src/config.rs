//! Settings of the ws-manager binary, from flags or `WSM_*` environment variables.

use std::net::SocketAddr;
use std::time::Duration;

use service_kit::config::CommonArgs;

/// ws-manager settings.
#[derive(Debug, Clone, clap::Parser)]
#[command(
    name = "ws-manager",
    version,
    about = "Random Chats connection registry and event delivery"
)]
pub struct Settings {
    /// Address to listen on.
    #[arg(long, env = "WSM_LISTEN", default_value = "127.0.0.1:8084", value_parser = service_kit::config::parse_listen)]
    pub listen: SocketAddr,

    /// Redis URL for the registry and the relay bus (e.g. `redis://127.0.0.1:6379`); unset
    /// keeps the registry in memory with an in-process bus, which only reaches ws-handlers
    /// in this same process.
    #[arg(long, env = "WSM_REDIS_URL", hide_env_values = true)]
    pub redis_url: Option<String>,

    /// Prefix of the registry's Redis keys.
    #[arg(long, env = "WSM_REDIS_PREFIX", default_value = "rc:wsm")]
    pub redis_prefix: String,

    /// Seconds a ws-handler stays live after its last heartbeat (handlers beat every few
    /// seconds; keep this at least three heartbeats long).
    #[arg(long, env = "WSM_HEARTBEAT_TTL_SECS", default_value_t = 15)]
    pub heartbeat_ttl_secs: u64,

    /// Connections one account may hold across every ws-handler; a connection beyond it
    /// closes the account's oldest ones (4009). 0 for no cap.
    #[arg(long, env = "WSM_MAX_CONNECTIONS_PER_USER", default_value_t = 10)]
    pub max_connections_per_user: u32,

    /// Settings shared by every service.
    #[command(flatten)]
    pub common: CommonArgs,
}

/// The behaviour settings of a running ws-manager.
#[derive(Debug, Clone)]
pub struct ManagerConfig {
    /// How long a handler stays live after a heartbeat.
    pub heartbeat_ttl: Duration,
    /// Connections one account may hold across every handler (0: no cap).
    pub max_connections_per_user: u32,
}

impl Default for ManagerConfig {
    fn default() -> Self {
        Self {
            heartbeat_ttl: Duration::from_secs(15),
            max_connections_per_user: 10,
        }
    }
}

impl Settings {
    /// The behaviour settings.
    pub fn manager_config(&self) -> ManagerConfig {
        ManagerConfig {
            heartbeat_ttl: Duration::from_secs(self.heartbeat_ttl_secs.max(1)),
            max_connections_per_user: self.max_connections_per_user,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[test]
    fn defaults_suit_the_embedded_form() {
        let settings =
            Settings::try_parse_from(["ws-manager", "--service-token", "0123456789abcdef"])
                .unwrap();
        assert_eq!(settings.listen.to_string(), "127.0.0.1:8084");
        assert!(settings.redis_url.is_none());
        assert_eq!(
            settings.manager_config().heartbeat_ttl,
            Duration::from_secs(15)
        );
    }
}
