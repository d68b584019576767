//! Settings of the matching-service binary, from flags or `MATCHING_*` environment variables.

use std::collections::HashSet;
use std::net::SocketAddr;
use std::time::Duration;

use service_kit::config::CommonArgs;
use uuid::Uuid;
use wire::api::message::UserBlocks;

use crate::rules::LowStanding;

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

    /// Distinct users whose complaints (blocks, reports not dismissed) within the window
    /// put a user in low standing: matched only with others in low standing, after a
    /// hold. 0 turns the reputation off.
    #[arg(long, env = "MATCHING_LOW_STANDING_AFTER", default_value_t = 3)]
    pub low_standing_after: u32,

    /// Seconds a ticket in low standing waits before it may be paired.
    #[arg(long, env = "MATCHING_LOW_STANDING_HOLD_SECS", default_value_t = 60)]
    pub low_standing_hold_secs: u32,

    /// Days of reports the reputation counts (blocks count while they last).
    #[arg(long, env = "MATCHING_COMPLAINT_WINDOW_DAYS", default_value_t = 30)]
    pub complaint_window_days: u32,

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
    /// Who is matched in low standing.
    pub reputation: Reputation,
    /// Redis on which the per-user join limit is shared by every instance
    /// (`RC_REDIS_URL`); `None` keeps it in this instance's memory.
    pub shared_limits: Option<String>,
}

/// The reputation rule's settings (see [`crate::rules::LowStanding`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Reputation {
    /// Distinct complainants that put a user in low standing; 0 turns it off.
    pub low_standing_after: u32,
    /// Seconds a ticket in low standing waits before it may be paired.
    pub hold_secs: u32,
    /// How far back reports count.
    pub report_window: Duration,
}

impl Default for Reputation {
    fn default() -> Self {
        Self {
            low_standing_after: 3,
            hold_secs: 60,
            report_window: Duration::from_secs(30 * 24 * 3600),
        }
    }
}

impl Reputation {
    /// The standing of a user with these blocks and reports against them: low when at
    /// least [`Reputation::low_standing_after`] distinct users blocked or reported them.
    pub fn standing(&self, against: &UserBlocks) -> Option<LowStanding> {
        if self.low_standing_after == 0 {
            return None;
        }
        let complainants: HashSet<&Uuid> = against
            .blocked_by
            .iter()
            .chain(&against.reported_by)
            .collect();
        (complainants.len() >= self.low_standing_after as usize).then_some(LowStanding {
            hold_secs: self.hold_secs,
        })
    }
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
            reputation: Reputation::default(),
            shared_limits: None,
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
            reputation: Reputation {
                low_standing_after: self.low_standing_after,
                hold_secs: self.low_standing_hold_secs,
                report_window: Duration::from_secs(
                    u64::from(self.complaint_window_days) * 24 * 3600,
                ),
            },
            shared_limits: self.common.rc_redis_url.clone(),
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
        assert_eq!(settings.matching_config().reputation, Reputation::default());
    }

    #[test]
    fn low_standing_counts_distinct_complainants_and_can_be_turned_off() {
        let [a, b, c] = [(); 3].map(|()| Uuid::new_v4());
        let rule = Reputation::default();
        let against = |blocked_by: Vec<Uuid>, reported_by: Vec<Uuid>| UserBlocks {
            blocked: vec![Uuid::new_v4()],
            blocked_by,
            reported_by,
        };
        assert_eq!(rule.standing(&against(vec![a, b], vec![a, b])), None);
        assert_eq!(
            rule.standing(&against(vec![a, b], vec![c])),
            Some(LowStanding { hold_secs: 60 })
        );
        let off = Reputation {
            low_standing_after: 0,
            ..rule
        };
        assert_eq!(off.standing(&against(vec![a, b], vec![c])), None);
    }
}
