//! Settings of the matching-service binary, from flags or `MATCHING_*` environment variables.

use std::net::SocketAddr;
use std::time::Duration;

use service_kit::config::CommonArgs;

use crate::store::SearchLimits;

/// matching-service settings.
#[derive(Debug, Clone, clap::Parser)]
#[command(
    name = "matching-service",
    version,
    about = "Random Chats waiting queue and matcher"
)]
pub struct Settings {
    /// Address to listen on.
    #[arg(long, env = "MATCHING_LISTEN", default_value = "127.0.0.1:8083", value_parser = service_kit::config::parse_listen)]
    pub listen: SocketAddr,

    /// Redis URL of the shared queue (e.g. `redis://127.0.0.1:6379`); unset keeps the queue
    /// in memory (one instance only).
    #[arg(long, env = "MATCHING_REDIS_URL", hide_env_values = true)]
    pub redis_url: Option<String>,

    /// Prefix of every Redis key of the queue (wrapped in `{}` as a cluster hash tag).
    #[arg(long, env = "MATCHING_KEY_PREFIX", default_value = "rc:match")]
    pub key_prefix: String,

    /// Base URL of auth-service (profiles, preferences, token keys).
    #[arg(
        long,
        env = "MATCHING_AUTH_URL",
        default_value = "http://127.0.0.1:8081"
    )]
    pub auth_url: String,

    /// Base URL of message-service (blocks, chats).
    #[arg(
        long,
        env = "MATCHING_MESSAGE_URL",
        default_value = "http://127.0.0.1:8082"
    )]
    pub message_url: String,

    /// Base URL of ws-manager (delivery of the `matched` event).
    #[arg(
        long,
        env = "MATCHING_WS_MANAGER_URL",
        default_value = "http://127.0.0.1:8084"
    )]
    pub ws_manager_url: String,

    /// Seconds during which two former partners are not paired again.
    #[arg(long, env = "MATCHING_COOLDOWN_SECS", default_value_t = 600)]
    pub cooldown_secs: u64,

    /// Milliseconds between two sweeps of the matcher over tickets due for a search.
    #[arg(long, env = "MATCHING_TICK_MS", default_value_t = 500)]
    pub tick_ms: u64,

    /// Seconds after which a ticket that found no partner searches again even if its
    /// criteria did not widen (others may have left their cooldown).
    #[arg(long, env = "MATCHING_RECHECK_SECS", default_value_t = 30)]
    pub recheck_secs: u64,

    /// Seconds after which a claimed pair whose chat was never confirmed goes back to the
    /// queue (its matcher died).
    #[arg(long, env = "MATCHING_CLAIM_TIMEOUT_SECS", default_value_t = 30)]
    pub claim_timeout_secs: u64,

    /// Oldest entries read per (interest, gender) list in one search.
    #[arg(long, env = "MATCHING_INTEREST_SCAN", default_value_t = 8)]
    pub interest_scan: usize,

    /// Tickets examined, oldest first across age buckets, in one search.
    #[arg(long, env = "MATCHING_MERGE_SCAN", default_value_t = 64)]
    pub merge_scan: usize,

    /// Queue joins one user may make at once (then one more per refill).
    #[arg(long, env = "MATCHING_JOIN_BURST", default_value_t = 10)]
    pub join_burst: u32,

    /// Seconds after which one more queue join is allowed to a user past the burst.
    #[arg(long, env = "MATCHING_JOIN_REFILL_SECS", default_value_t = 6)]
    pub join_refill_secs: u64,

    /// Settings shared by every service.
    #[command(flatten)]
    pub common: CommonArgs,
}

/// The behaviour settings of a running service.
#[derive(Debug, Clone)]
pub struct MatchingConfig {
    /// Former partners are not paired again within this time.
    pub cooldown: Duration,
    /// Time between two matcher sweeps.
    pub tick: Duration,
    /// A ticket without a partner searches again at least this often.
    pub recheck: Duration,
    /// Claims older than this go back to the queue.
    pub claim_timeout: Duration,
    /// Most due tickets one sweep handles.
    pub sweep_batch: usize,
    /// Searches run at once by one sweep.
    pub sweep_concurrency: usize,
    /// Queue joins a user may make at once.
    pub join_burst: u32,
    /// Time after which one more join is allowed past the burst.
    pub join_refill: Duration,
}

impl Default for MatchingConfig {
    fn default() -> Self {
        Self {
            cooldown: Duration::from_secs(600),
            tick: Duration::from_millis(500),
            recheck: Duration::from_secs(30),
            claim_timeout: Duration::from_secs(30),
            sweep_batch: 256,
            sweep_concurrency: 16,
            join_burst: 10,
            join_refill: Duration::from_secs(6),
        }
    }
}

impl Settings {
    /// The behaviour settings.
    pub fn matching_config(&self) -> MatchingConfig {
        MatchingConfig {
            cooldown: Duration::from_secs(self.cooldown_secs),
            tick: Duration::from_millis(self.tick_ms.max(10)),
            recheck: Duration::from_secs(self.recheck_secs.max(1)),
            claim_timeout: Duration::from_secs(self.claim_timeout_secs.max(1)),
            join_burst: self.join_burst.max(1),
            join_refill: Duration::from_secs(self.join_refill_secs.max(1)),
            ..MatchingConfig::default()
        }
    }

    /// The search limits.
    pub fn search_limits(&self) -> SearchLimits {
        SearchLimits {
            interest_scan: self.interest_scan.max(1),
            merge_scan: self.merge_scan.max(1),
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
            Settings::try_parse_from(["matching-service", "--service-token", "0123456789abcdef"])
                .unwrap();
        assert_eq!(settings.listen.to_string(), "127.0.0.1:8083");
        assert!(settings.redis_url.is_none());
        assert_eq!(
            settings.matching_config().cooldown,
            Duration::from_secs(600)
        );
        assert_eq!(settings.search_limits(), SearchLimits::default());
    }
}
