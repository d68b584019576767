//! The queue on Redis, shared by any number of matching-service instances.
//!
//! Every change is one Lua script (`store/lua/*.lua`), so each is atomic: a claim reads
//! the indexes, picks the partner and takes both tickets out in one step, and two
//! instances can never claim one ticket twice. Keys, under the hash-tagged prefix
//! `{prefix}` (one Redis Cluster slot per queue):
//!
//! - `t:{user}` — hash: ticket JSON `j`, waiting since `j0` (ms), index member `m`,
//!   fingerprint `fp`, state `st` (`w` waiting / `c` claimed), claim id `cid`.
//! - `b:{gender}{wanted}:{band}` — sorted set of members by join time: the age buckets
//!   ([`super::AGE_BAND`] years each).
//! - `i:{interest id}:{gender}{wanted}` — sorted set of members by join time.
//! - `l:b:…`, `l:i:…` — the same indexes for tickets in low standing, a pool of their own
//!   ([`crate::rules::LowStanding`]).
//! - `q` (waiting users), `due` (next search time), `claimed` (claim time) — sorted sets.
//! - `bl:{user}` — set of users the ticket must not meet (blocks, either direction).
//! - `rp:{user}` — sorted set of recent partners by end of cooldown.
//! - `m:{user}` — the latest match (JSON `MatchInfo`), kept for a day.
//! - `iid`, `iidn` — interest tag → small id.

use service_kit::telemetry::{Backend, count_backend_error};
use std::time::Duration;

use async_trait::async_trait;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::{AsyncCommands, RedisError, Script};
use time::OffsetDateTime;
use uuid::Uuid;
use wire::api::matching::MatchInfo;

use super::{Claim, Confirmation, QueueStore, SearchLimits, StoreError, TicketState};
use crate::rules::{Ticket, from_millis, gender_index, millis, mode_index, truncate_to_millis};

const PRELUDE: &str = include_str!("lua/prelude.lua");

/// How long a user's latest match is kept for the status endpoint.
const MATCH_TTL: Duration = Duration::from_secs(24 * 3600);

fn script(body: &str) -> Script {
    Script::new(&format!("{PRELUDE}\n{body}"))
}

#[derive(Debug)]
struct Scripts {
    join: Script,
    leave: Script,
    claim: Script,
    confirm: Script,
    release: Script,
    release_stale: Script,
}

/// The Redis queue. Cheap to clone (one multiplexed, auto-reconnecting connection).
#[derive(Clone)]
pub struct RedisQueueStore {
    conn: ConnectionManager,
    prefix: String,
    limits: SearchLimits,
    scripts: std::sync::Arc<Scripts>,
}

impl std::fmt::Debug for RedisQueueStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisQueueStore")
            .field("prefix", &self.prefix)
            .finish_non_exhaustive()
    }
}

fn map_err(err: RedisError) -> StoreError {
    let unavailable = err.is_io_error()
        || err.is_timeout()
        || err.is_connection_refusal()
        || err.is_connection_dropped();
    count_backend_error(Backend::Redis, unavailable);
    if unavailable {
        StoreError::Unavailable(err.to_string())
    } else {
        StoreError::Backend(err.to_string())
    }
}

fn decode_ticket(json: &str, joined_ms: i64) -> Result<Ticket, StoreError> {
    let mut ticket: Ticket = serde_json::from_str(json)
        .map_err(|e| StoreError::Backend(format!("corrupt ticket: {e}")))?;
    ticket.joined_at = from_millis(joined_ms);
    Ok(ticket)
}

fn parse_uuid(s: &str) -> Result<Uuid, StoreError> {
    Uuid::parse_str(s).map_err(|e| StoreError::Backend(format!("corrupt user id {s:?}: {e}")))
}

/// The fixed 37-byte head of a ticket's index member (the script appends interest ids);
/// the layout is described at the top of `lua/prelude.lua`.
fn member_header(t: &Ticket) -> Vec<u8> {
    let c = &t.criteria;
    let mut h = Vec::with_capacity(37);
    h.extend_from_slice(t.user_id().as_bytes());
    h.push(gender_index(t.profile.gender));
    h.push(t.profile.age);
    h.push(c.min_age);
    h.push(c.max_age);
    h.push(c.age_widen_years);
    h.extend_from_slice(&c.widen_every_secs.max(1).to_be_bytes());
    h.push(mode_index(c.interest_mode));
    h.extend_from_slice(&c.fallback_after_secs.unwrap_or(u32::MAX).to_be_bytes());
    let mask = t
        .wanted_genders()
        .into_iter()
        .fold(0u8, |m, g| m | (1 << gender_index(g)));
    h.push(mask);
    h.push(u8::from(!t.blocked.is_empty()));
    h.push(u8::from(t.is_low_standing()));
    let hold = t.low_standing.map_or(0, |l| l.hold_secs);
    h.extend_from_slice(&hold.to_be_bytes());
    h
}

impl RedisQueueStore {
    /// Connects to `url` (e.g. `redis://127.0.0.1:6379`), keeping every key under
    /// `{prefix}`. Commands time out after two seconds; the connection is re-established
    /// in the background when Redis comes back.
    pub async fn connect(
        url: &str,
        prefix: &str,
        limits: SearchLimits,
    ) -> Result<Self, StoreError> {
        let client = redis::Client::open(url).map_err(map_err)?;
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(Duration::from_secs(2)))
            .set_response_timeout(Some(Duration::from_secs(2)))
            .set_number_of_retries(2)
            .set_max_delay(Duration::from_secs(2));
        let conn = ConnectionManager::new_with_config(client, config)
            .await
            .map_err(map_err)?;
        Ok(Self {
            conn,
            prefix: format!("{{{prefix}}}"),
            limits,
            scripts: std::sync::Arc::new(Scripts {
                join: script(include_str!("lua/join.lua")),
                leave: script(include_str!("lua/leave.lua")),
                claim: script(include_str!("lua/claim.lua")),
                confirm: script(include_str!("lua/confirm.lua")),
                release: script(include_str!("lua/release.lua")),
                release_stale: script(include_str!("lua/release_stale.lua")),
            }),
        })
    }

    fn key(&self, kind: &str, user: Uuid) -> String {
        format!("{}:{kind}:{user}", self.prefix)
    }

    /// Deletes every key of this queue (for tests on a unique prefix). Uses `SCAN`, never
    /// `FLUSHALL`.
    pub async fn purge(&self) -> Result<usize, StoreError> {
        let mut conn = self.conn.clone();
        let pattern = format!("{}:*", self.prefix.replace('{', "\\{").replace('}', "\\}"));
        let keys: Vec<String> = {
            let mut iter: redis::AsyncIter<'_, String> =
                conn.scan_match(&pattern).await.map_err(map_err)?;
            let mut keys = Vec::new();
            while let Some(key) = futures::StreamExt::next(&mut iter).await {
                keys.push(key.map_err(map_err)?);
            }
            keys
        };
        let mut conn = self.conn.clone();
        for chunk in keys.chunks(500) {
            let _: () = conn.del(chunk).await.map_err(map_err)?;
        }
        Ok(keys.len())
    }
}

#[async_trait]
impl QueueStore for RedisQueueStore {
    async fn ping(&self) -> Result<(), StoreError> {
        let mut conn = self.conn.clone();
        let _: String = redis::cmd("PING")
            .query_async(&mut conn)
            .await
            .map_err(map_err)?;
        Ok(())
    }

    async fn join(&self, mut ticket: Ticket, now: OffsetDateTime) -> Result<Ticket, StoreError> {
        ticket.joined_at = truncate_to_millis(ticket.joined_at);
        let json =
            serde_json::to_string(&ticket).map_err(|e| StoreError::Backend(e.to_string()))?;
        let mut inv = self.scripts.join.prepare_invoke();
        inv.arg(&self.prefix)
            .arg(ticket.user_id().to_string())
            .arg(json)
            .arg(member_header(&ticket))
            .arg(millis(ticket.joined_at))
            .arg(millis(now))
            .arg(ticket.fingerprint())
            .arg(ticket.blocked.len());
        for b in &ticket.blocked {
            inv.arg(b.to_string());
        }
        for i in &ticket.criteria.interests {
            inv.arg(i);
        }
        let mut conn = self.conn.clone();
        let joined: i64 = inv.invoke_async(&mut conn).await.map_err(map_err)?;
        ticket.joined_at = from_millis(joined);
        Ok(ticket)
    }

    async fn leave(&self, user_id: Uuid) -> Result<bool, StoreError> {
        let mut conn = self.conn.clone();
        let removed: i64 = self
            .scripts
            .leave
            .arg(&self.prefix)
            .arg(user_id.to_string())
            .invoke_async(&mut conn)
            .await
            .map_err(map_err)?;
        Ok(removed == 1)
    }

    async fn ticket(&self, user_id: Uuid) -> Result<Option<(Ticket, TicketState)>, StoreError> {
        let mut conn = self.conn.clone();
        let (json, joined, state): (Option<String>, Option<i64>, Option<String>) = conn
            .hmget(self.key("t", user_id), &["j", "j0", "st"])
            .await
            .map_err(map_err)?;
        let (Some(json), Some(joined)) = (json, joined) else {
            return Ok(None);
        };
        let state = if state.as_deref() == Some("c") {
            TicketState::Claimed
        } else {
            TicketState::Waiting
        };
        Ok(Some((decode_ticket(&json, joined)?, state)))
    }

    async fn claim(
        &self,
        user_id: Uuid,
        match_id: Uuid,
        now: OffsetDateTime,
        recheck: Duration,
    ) -> Result<Option<Claim>, StoreError> {
        let mut conn = self.conn.clone();
        let found: Option<(String, String, i64, String, i64, i64)> = self
            .scripts
            .claim
            .arg(&self.prefix)
            .arg(user_id.to_string())
            .arg(match_id.to_string())
            .arg(millis(now))
            .arg(recheck.as_millis() as i64)
            .arg(self.limits.interest_scan)
            .arg(self.limits.merge_scan)
            .invoke_async(&mut conn)
            .await
            .map_err(map_err)?;
        let Some((partner, seeker_json, seeker_joined, partner_json, partner_joined, shared)) =
            found
        else {
            return Ok(None);
        };
        let seeker = decode_ticket(&seeker_json, seeker_joined)?;
        let partner_ticket = decode_ticket(&partner_json, partner_joined)?;
        if partner_ticket.user_id() != parse_uuid(&partner)? {
            return Err(StoreError::Backend(
                "claimed ticket under the wrong key".to_owned(),
            ));
        }
        Ok(Some(Claim {
            match_id,
            seeker,
            partner: partner_ticket,
            shared: shared.max(0) as usize,
        }))
    }

    async fn confirm(
        &self,
        claim: &Claim,
        seeker_info: &MatchInfo,
        partner_info: &MatchInfo,
        cooldown: Duration,
        now: OffsetDateTime,
    ) -> Result<Confirmation, StoreError> {
        let encode = |i: &MatchInfo| {
            serde_json::to_string(i).map_err(|e| StoreError::Backend(e.to_string()))
        };
        let mut conn = self.conn.clone();
        let withdrawn: Vec<String> = self
            .scripts
            .confirm
            .arg(&self.prefix)
            .arg(claim.seeker.user_id().to_string())
            .arg(claim.partner.user_id().to_string())
            .arg(claim.match_id.to_string())
            .arg(millis(now))
            .arg(cooldown.as_millis() as i64)
            .arg(encode(seeker_info)?)
            .arg(encode(partner_info)?)
            .arg(MATCH_TTL.as_millis() as i64)
            .invoke_async(&mut conn)
            .await
            .map_err(map_err)?;
        if withdrawn.is_empty() {
            return Ok(Confirmation::Confirmed);
        }
        let withdrawn = withdrawn
            .iter()
            .map(|u| parse_uuid(u))
            .collect::<Result<_, _>>()?;
        Ok(Confirmation::Withdrawn(withdrawn))
    }

    async fn release(
        &self,
        claim: &Claim,
        block_each_other: bool,
        now: OffsetDateTime,
    ) -> Result<Vec<Uuid>, StoreError> {
        let mut conn = self.conn.clone();
        let released: Vec<String> = self
            .scripts
            .release
            .arg(&self.prefix)
            .arg(claim.match_id.to_string())
            .arg(millis(now))
            .arg(if block_each_other { "1" } else { "0" })
            .arg(claim.seeker.user_id().to_string())
            .arg(claim.partner.user_id().to_string())
            .invoke_async(&mut conn)
            .await
            .map_err(map_err)?;
        released.iter().map(|u| parse_uuid(u)).collect()
    }

    async fn release_stale(
        &self,
        claimed_before: OffsetDateTime,
        now: OffsetDateTime,
    ) -> Result<usize, StoreError> {
        let mut conn = self.conn.clone();
        let n: i64 = self
            .scripts
            .release_stale
            .arg(&self.prefix)
            .arg(millis(claimed_before))
            .arg(millis(now))
            .invoke_async(&mut conn)
            .await
            .map_err(map_err)?;
        Ok(n.max(0) as usize)
    }

    async fn due(&self, now: OffsetDateTime, limit: usize) -> Result<Vec<Uuid>, StoreError> {
        let mut conn = self.conn.clone();
        let users: Vec<String> = conn
            .zrangebyscore_limit(
                format!("{}:due", self.prefix),
                "-inf",
                millis(now),
                0,
                limit as isize,
            )
            .await
            .map_err(map_err)?;
        users.iter().map(|u| parse_uuid(u)).collect()
    }

    async fn last_match(&self, user_id: Uuid) -> Result<Option<MatchInfo>, StoreError> {
        let mut conn = self.conn.clone();
        let json: Option<String> = conn.get(self.key("m", user_id)).await.map_err(map_err)?;
        json.map(|j| {
            serde_json::from_str(&j).map_err(|e| StoreError::Backend(format!("corrupt match: {e}")))
        })
        .transpose()
    }

    async fn clear_last_match(&self, user_id: Uuid) -> Result<(), StoreError> {
        let mut conn = self.conn.clone();
        let _: () = conn.del(self.key("m", user_id)).await.map_err(map_err)?;
        Ok(())
    }

    async fn waiting_count(&self) -> Result<u64, StoreError> {
        let mut conn = self.conn.clone();
        conn.zcard(format!("{}:q", self.prefix))
            .await
            .map_err(map_err)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_scripts_use_the_same_age_band() {
        assert!(PRELUDE.contains(&format!("local BAND = {}\n", super::super::AGE_BAND)));
    }
}
