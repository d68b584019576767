//! Settings of the ws-handler binary, from flags or `WSH_*` environment variables.

use std::net::SocketAddr;
use std::time::Duration;

use service_kit::config::CommonArgs;

/// ws-handler settings.
#[derive(Debug, Clone, clap::Parser)]
#[command(
    name = "ws-handler",
    version,
    about = "Random Chats WebSocket endpoint"
)]
pub struct Settings {
    /// Address to listen on.
    #[arg(long, env = "WSH_LISTEN", default_value = "127.0.0.1:8090", value_parser = service_kit::config::parse_listen)]
    pub listen: SocketAddr,

    /// Base URL the gateway reaches this instance at (default `http://<listen>`).
    #[arg(long, env = "WSH_PUBLIC_URL")]
    pub public_url: Option<String>,

    /// This instance's id (default: a new random one per start).
    #[arg(long, env = "WSH_HANDLER_ID")]
    pub handler_id: Option<uuid::Uuid>,

    /// ws-manager base URL.
    #[arg(
        long,
        env = "WSH_WS_MANAGER_URL",
        default_value = "http://127.0.0.1:8084"
    )]
    pub ws_manager_url: String,

    /// message-service base URL.
    #[arg(long, env = "WSH_MESSAGE_URL", default_value = "http://127.0.0.1:8082")]
    pub message_url: String,

    /// matching-service base URL (a user's last connection closing drops their queue
    /// ticket); empty to not call it.
    #[arg(
        long,
        env = "WSH_MATCHING_URL",
        default_value = "http://127.0.0.1:8083"
    )]
    pub matching_url: String,

    /// auth-service base URL, for the token keys (JWKS).
    #[arg(long, env = "WSH_AUTH_URL", default_value = "http://127.0.0.1:8081")]
    pub auth_url: String,

    /// Redis URL of the relay bus (must be the one ws-manager publishes on). Unset: the
    /// in-process bus, which only works when ws-manager runs in this same process — a
    /// separate ws-handler process without Redis receives no events from others.
    #[arg(long, env = "WSH_REDIS_URL", hide_env_values = true)]
    pub redis_url: Option<String>,

    /// Allowed `Origin` values of browser clients, comma-separated (e.g.
    /// `https://chat.example.com,http://localhost:5173`); `*` allows any. Clients that send
    /// no `Origin` (non-browser) are always allowed.
    #[arg(
        long,
        env = "WSH_ALLOWED_ORIGINS",
        default_value = "*",
        value_delimiter = ','
    )]
    pub allowed_origins: Vec<String>,

    /// Seconds without any frame from the client (pongs included) before closing with 4000.
    #[arg(long, env = "WSH_IDLE_TIMEOUT_SECS", default_value_t = 60)]
    pub idle_timeout_secs: u64,

    /// Seconds one write to a client may take (and a reply may wait for room in its
    /// queue) before the client counts as not reading and is closed with 4008.
    #[arg(long, env = "WSH_WRITE_TIMEOUT_SECS", default_value_t = 20)]
    pub write_timeout_secs: u64,

    /// WebSocket connections one user may hold on this instance; opening one more closes
    /// their oldest (4009).
    #[arg(long, env = "WSH_MAX_SOCKETS_PER_USER", default_value_t = 10)]
    pub max_sockets_per_user: usize,

    /// Events queued for one connection before it counts as a slow consumer (closed with 4008);
    /// at least 128 (two batches of sends, which fan out at once).
    #[arg(long, env = "WSH_OUTBOUND_QUEUE", default_value_t = 256)]
    pub outbound_queue: usize,

    /// `send` frames allowed per second per connection (sustained).
    #[arg(long, env = "WSH_SEND_PER_SEC", default_value_t = 5.0)]
    pub send_per_sec: f64,

    /// `send` frames allowed in a burst per connection.
    #[arg(long, env = "WSH_SEND_BURST", default_value_t = 20)]
    pub send_burst: u32,

    /// Frames of any type allowed per second per connection (sustained).
    #[arg(long, env = "WSH_FRAMES_PER_SEC", default_value_t = 20.0)]
    pub frames_per_sec: f64,

    /// Frames of any type allowed in a burst per connection.
    #[arg(long, env = "WSH_FRAMES_BURST", default_value_t = 60)]
    pub frames_burst: u32,

    /// Seconds between heartbeats to ws-manager.
    #[arg(long, env = "WSH_HEARTBEAT_SECS", default_value_t = 5)]
    pub heartbeat_secs: u64,

    /// Seconds to wait for connections to close and deregister on shutdown.
    #[arg(long, env = "WSH_DRAIN_SECS", default_value_t = 10)]
    pub drain_secs: u64,

    /// Settings shared by every service.
    #[command(flatten)]
    pub common: CommonArgs,
}

/// The behaviour settings of a running ws-handler.
#[derive(Debug, Clone)]
pub struct HandlerConfig {
    /// Allowed browser origins; `None` allows any.
    pub allowed_origins: Option<Vec<String>>,
    /// Idle timeout of a connection.
    pub idle_timeout: Duration,
    /// Longest one write to a client (or a reply's wait for queue room) may take.
    pub write_timeout: Duration,
    /// Connections one user may hold on this instance (the oldest is closed beyond).
    pub max_sockets_per_user: usize,
    /// Capacity of a connection's outbound queue.
    pub outbound_queue: usize,
    /// Sustained `send` rate per connection.
    pub send_per_sec: f64,
    /// `send` burst per connection.
    pub send_burst: u32,
    /// Sustained frame rate per connection.
    pub frames_per_sec: f64,
    /// Frame burst per connection.
    pub frames_burst: u32,
    /// Refused frames in a row after which the connection is closed with 4029.
    pub max_refused_in_a_row: u32,
    /// Interval of heartbeats to ws-manager.
    pub heartbeat_interval: Duration,
    /// How long a close frame may take to reach a client.
    pub close_timeout: Duration,
    /// How long shutdown waits for connections to deregister.
    pub drain_timeout: Duration,
}

impl Default for HandlerConfig {
    fn default() -> Self {
        Self {
            allowed_origins: None,
            idle_timeout: Duration::from_secs(60),
            write_timeout: Duration::from_secs(20),
            max_sockets_per_user: 10,
            outbound_queue: 256,
            send_per_sec: 5.0,
            send_burst: 20,
            frames_per_sec: 20.0,
            frames_burst: 60,
            max_refused_in_a_row: 50,
            heartbeat_interval: Duration::from_secs(5),
            close_timeout: Duration::from_secs(5),
            drain_timeout: Duration::from_secs(10),
        }
    }
}

impl Settings {
    /// The behaviour settings.
    pub fn handler_config(&self) -> HandlerConfig {
        let origins: Vec<String> = self
            .allowed_origins
            .iter()
            .map(|o| o.trim().trim_end_matches('/').to_owned())
            .filter(|o| !o.is_empty())
            .collect();
        HandlerConfig {
            allowed_origins: (!origins.iter().any(|o| o == "*")).then_some(origins),
            idle_timeout: Duration::from_secs(self.idle_timeout_secs.max(1)),
            write_timeout: Duration::from_secs(self.write_timeout_secs.max(1)),
            max_sockets_per_user: self.max_sockets_per_user.max(1),
            outbound_queue: self.outbound_queue.max(1),
            send_per_sec: self.send_per_sec,
            send_burst: self.send_burst.max(1),
            frames_per_sec: self.frames_per_sec,
            frames_burst: self.frames_burst.max(1),
            heartbeat_interval: Duration::from_secs(self.heartbeat_secs.max(1)),
            drain_timeout: Duration::from_secs(self.drain_secs),
            ..HandlerConfig::default()
        }
    }

    /// The URL published to the gateway.
    pub fn public_url(&self) -> String {
        self.public_url
            .clone()
            .unwrap_or_else(|| format!("http://{}", self.listen))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[test]
    fn defaults_suit_the_embedded_form() {
        let settings =
            Settings::try_parse_from(["ws-handler", "--service-token", "0123456789abcdef"])
                .unwrap();
        assert_eq!(settings.public_url(), "http://127.0.0.1:8090");
        let config = settings.handler_config();
        assert!(config.allowed_origins.is_none());
        assert_eq!(config.outbound_queue, 256);
    }

    #[test]
    fn an_origin_list_is_an_allowlist() {
        let settings = Settings::try_parse_from([
            "ws-handler",
            "--service-token",
            "0123456789abcdef",
            "--allowed-origins",
            "https://a.example, http://localhost:5173/",
        ])
        .unwrap();
        assert_eq!(
            settings.handler_config().allowed_origins.unwrap(),
            vec!["https://a.example", "http://localhost:5173"]
        );
    }
}
