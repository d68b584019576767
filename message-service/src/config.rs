//! Settings of the message-service binary, from flags or `MESSAGE_*` environment variables.

use std::net::SocketAddr;
use std::time::Duration;

use service_kit::config::CommonArgs;

/// message-service settings.
#[derive(Debug, Clone, clap::Parser)]
#[command(
    name = "message-service",
    version,
    about = "Random Chats chats, messages, delivery status, blocks and reports"
)]
pub struct Settings {
    /// Address to listen on.
    #[arg(long, env = "MESSAGE_LISTEN", default_value = "127.0.0.1:8082", value_parser = service_kit::config::parse_listen)]
    pub listen: SocketAddr,

    /// Database: a `sqlite:` URL (embedded; `sqlite::memory:` keeps everything in this
    /// process's memory, lost on exit) or a `mongodb://` / `mongodb+srv://` URL.
    #[arg(
        long,
        env = "MESSAGE_DATABASE_URL",
        default_value = "sqlite://./data/messages.db?mode=rwc",
        hide_env_values = true
    )]
    pub database_url: String,

    /// MongoDB database name (with a `mongodb://` database URL).
    #[arg(long, env = "MESSAGE_MONGODB_DATABASE", default_value = "random_chats")]
    pub mongodb_database: String,

    /// Longest one MongoDB operation may take, retries included, before it fails as
    /// unavailable (seconds).
    #[arg(long, env = "MESSAGE_MONGODB_TIMEOUT_SECS", default_value_t = 10)]
    pub mongodb_timeout_secs: u64,

    /// Base URL of ws-manager, to push `chat_ended` events; empty to push nothing.
    #[arg(
        long,
        env = "MESSAGE_WS_MANAGER_URL",
        default_value = "http://127.0.0.1:8084"
    )]
    pub ws_manager_url: String,

    /// Base URL of auth-service, whose published keys verify access tokens.
    #[arg(
        long,
        env = "MESSAGE_AUTH_URL",
        default_value = "http://127.0.0.1:8081"
    )]
    pub auth_url: String,

    /// How often the token keys are fetched again from auth-service, in seconds.
    #[arg(long, env = "MESSAGE_JWKS_REFRESH_SECS", default_value_t = 300)]
    pub jwks_refresh_secs: u64,

    /// Reports one user may file per window (at least 1).
    #[arg(long, env = "MESSAGE_REPORTS_PER_WINDOW", default_value_t = 10,
          value_parser = clap::value_parser!(u32).range(1..))]
    pub reports_per_window: u32,

    /// The report rate-limit window, in seconds.
    #[arg(long, env = "MESSAGE_REPORT_WINDOW_SECS", default_value_t = 3600)]
    pub report_window_secs: u64,

    /// Chats one user may end ("Next") at once, then one more per refill.
    #[arg(long, env = "MESSAGE_ENDS_BURST", default_value_t = 10)]
    pub ends_burst: u32,

    /// Seconds after which one more chat end is allowed to a user past the burst.
    #[arg(long, env = "MESSAGE_ENDS_REFILL_SECS", default_value_t = 6)]
    pub ends_refill_secs: u64,

    /// Blocks one user may make at once, then one more per refill.
    #[arg(long, env = "MESSAGE_BLOCKS_BURST", default_value_t = 20)]
    pub blocks_burst: u32,

    /// Seconds after which one more block is allowed to a user past the burst.
    #[arg(long, env = "MESSAGE_BLOCKS_REFILL_SECS", default_value_t = 30)]
    pub blocks_refill_secs: u64,

    /// Most users one user may have blocked at a time (at least 1).
    #[arg(long, env = "MESSAGE_MAX_BLOCKS", default_value_t = 1000,
          value_parser = clap::value_parser!(u32).range(1..))]
    pub max_blocks: u32,

    /// Most messages one group commit stores in one transaction (at least 1). Appends
    /// arriving while a commit runs wait for the next one, up to this many; an idle
    /// service commits a lone append at once.
    #[arg(long, env = "MESSAGE_APPEND_BATCH_MAX", default_value_t = 256,
          value_parser = clap::value_parser!(u32).range(1..=65536))]
    pub append_batch_max: u32,

    /// Settings shared by every service.
    #[command(flatten)]
    pub common: CommonArgs,
}

/// The behaviour settings of a running service (everything but where things are stored).
#[derive(Debug, Clone)]
pub struct MessageConfig {
    /// Reports one user may file per `report_window`.
    pub reports_per_window: u32,
    /// The report rate-limit window.
    pub report_window: Duration,
    /// Chat ends a user may make at once.
    pub ends_burst: u32,
    /// Time after which one more chat end is allowed past the burst.
    pub ends_refill: Duration,
    /// Blocks a user may make at once.
    pub blocks_burst: u32,
    /// Time after which one more block is allowed past the burst.
    pub blocks_refill: Duration,
    /// Most users one user may have blocked.
    pub max_blocks: u32,
    /// Redis on which the per-user limits are shared by every instance (`RC_REDIS_URL`);
    /// `None` keeps them in this instance's memory.
    pub shared_limits: Option<String>,
    /// Most messages one group commit stores in one transaction.
    pub append_batch_max: usize,
}

impl Default for MessageConfig {
    fn default() -> Self {
        Self {
            reports_per_window: 10,
            report_window: Duration::from_secs(3600),
            ends_burst: 10,
            ends_refill: Duration::from_secs(6),
            blocks_burst: 20,
            blocks_refill: Duration::from_secs(30),
            max_blocks: 1000,
            shared_limits: None,
            append_batch_max: crate::store::commit::DEFAULT_MAX_BATCH,
        }
    }
}

impl Settings {
    /// The behaviour settings.
    pub fn message_config(&self) -> MessageConfig {
        MessageConfig {
            reports_per_window: self.reports_per_window,
            report_window: Duration::from_secs(self.report_window_secs),
            ends_burst: self.ends_burst.max(1),
            ends_refill: Duration::from_secs(self.ends_refill_secs.max(1)),
            blocks_burst: self.blocks_burst.max(1),
            blocks_refill: Duration::from_secs(self.blocks_refill_secs.max(1)),
            max_blocks: self.max_blocks.max(1),
            shared_limits: self.common.rc_redis_url.clone(),
            append_batch_max: usize::try_from(self.append_batch_max)
                .unwrap_or(usize::MAX)
                .max(1),
        }
    }

    /// Whether the database is MongoDB.
    pub fn on_mongodb(&self) -> bool {
        self.database_url.starts_with("mongodb://")
            || self.database_url.starts_with("mongodb+srv://")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[test]
    fn defaults_suit_the_embedded_form() {
        let settings =
            Settings::try_parse_from(["message-service", "--service-token", "0123456789abcdef"])
                .unwrap();
        assert_eq!(settings.listen.to_string(), "127.0.0.1:8082");
        assert!(!settings.on_mongodb());
        assert_eq!(settings.mongodb_database, "random_chats");
        assert_eq!(settings.message_config().reports_per_window, 10);
        assert_eq!(
            settings.message_config().append_batch_max,
            crate::store::commit::DEFAULT_MAX_BATCH
        );
    }

    #[test]
    fn a_report_limit_of_zero_is_refused_at_start() {
        let err = Settings::try_parse_from([
            "message-service",
            "--service-token",
            "0123456789abcdef",
            "--reports-per-window",
            "0",
        ])
        .unwrap_err();
        assert!(err.to_string().contains("reports-per-window"), "{err}");
    }

    #[test]
    fn a_mongodb_url_selects_mongodb() {
        let settings = Settings::try_parse_from([
            "message-service",
            "--service-token",
            "0123456789abcdef",
            "--database-url",
            "mongodb://127.0.0.1:27017",
        ])
        .unwrap();
        assert!(settings.on_mongodb());
    }
}
