//! Ended sessions, known to every service within seconds: an in-memory list that every
//! token check consults (no network on the hot path), fed directly in one process or,
//! across processes, from Redis.
//!
//! auth-service ends a session (log out, password change, session delete, refresh-token
//! reuse) and calls [`Revocations::announce`]. In one process that records the session in
//! the list the whole platform shares. With Redis ([`Revocations::follow_redis`]) it also
//! adds the session to the sorted set [`REVOKED_SET`] (score: when the entry may be
//! forgotten, i.e. when the session's last access token has expired) and publishes it on
//! [`REVOKED_CHANNEL`]. Every follower subscribes to the channel and, each time its
//! subscription (re)starts, loads the set, so a service that starts late or loses Redis for
//! a while catches up on what it missed. A revocation reaches every follower as fast as a
//! Redis publish; while Redis is unreachable, the sessions ended meanwhile keep working
//! until their access tokens expire (at most the access-token lifetime).
//!
//! Sockets: [`Revocations::watch`] tells open WebSocket sessions which sessions ended, so
//! that ws-handler closes them with 4001.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use futures::StreamExt;
use tokio::sync::broadcast;
use uuid::Uuid;

/// Redis channel on which ended sessions are announced (payload `{session_id} {forget_at}`).
pub const REVOKED_CHANNEL: &str = "rc:revoked";
/// Redis sorted set of ended sessions, scored by the Unix time after which they may be
/// forgotten.
pub const REVOKED_SET: &str = "rc:revoked-sessions";
/// Time limit of one Redis command or connection attempt.
const REDIS_TIMEOUT: Duration = Duration::from_secs(2);
/// Ended sessions an open socket may lag behind before it re-checks its own.
const WATCH_CAPACITY: usize = 1024;
/// How often entries whose tokens have all expired are dropped, at most.
const PRUNE_EVERY_SECS: i64 = 60;

/// Why following Redis could not start.
#[derive(Debug, thiserror::Error)]
#[error("invalid Redis URL for revocations: {0}")]
pub struct RevocationError(String);

/// The list of ended sessions. Cheap to clone; clones share the list.
#[derive(Clone)]
pub struct Revocations {
    inner: Arc<Inner>,
}

struct Inner {
    /// Session id → Unix time after which no token of it can be valid any more.
    ended: RwLock<HashMap<Uuid, i64>>,
    last_prune: Mutex<i64>,
    news: broadcast::Sender<Uuid>,
    redis: Mutex<Option<redis::Client>>,
}

impl std::fmt::Debug for Revocations {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Revocations")
            .field("ended", &self.len())
            .finish()
    }
}

impl Default for Revocations {
    fn default() -> Self {
        Self::new()
    }
}

fn unix_now() -> i64 {
    time::OffsetDateTime::now_utc().unix_timestamp()
}

impl Revocations {
    /// An empty list, fed only in this process until [`Self::follow_redis`] is called.
    pub fn new() -> Self {
        Self {
            inner: Arc::new(Inner {
                ended: RwLock::new(HashMap::new()),
                last_prune: Mutex::new(unix_now()),
                news: broadcast::channel(WATCH_CAPACITY).0,
                redis: Mutex::new(None),
            }),
        }
    }

    /// Whether the session `session_id` has ended.
    pub fn is_ended(&self, session_id: Uuid) -> bool {
        self.inner
            .ended
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .contains_key(&session_id)
    }

    /// How many ended sessions are remembered.
    pub fn len(&self) -> usize {
        self.inner
            .ended
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .len()
    }

    /// Whether no ended session is remembered.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Ended sessions as they are recorded here, for open sockets to compare with their
    /// own. A receiver that lags must re-check its session with [`Self::is_ended`].
    pub fn watch(&self) -> broadcast::Receiver<Uuid> {
        self.inner.news.subscribe()
    }

    /// Records that `session_id` ended; `forget_at` is the Unix time after which none of
    /// its access tokens can be valid. Returns whether it was new here.
    pub fn record(&self, session_id: Uuid, forget_at: i64) -> bool {
        let now = unix_now();
        if forget_at <= now {
            return false;
        }
        let new = {
            let mut ended = self.inner.ended.write().unwrap_or_else(|p| p.into_inner());
            let new = ended.insert(session_id, forget_at).is_none();
            let mut last_prune = self
                .inner
                .last_prune
                .lock()
                .unwrap_or_else(|p| p.into_inner());
            if now - *last_prune >= PRUNE_EVERY_SECS {
                ended.retain(|_, until| *until > now);
                *last_prune = now;
            }
            new
        };
        if new {
            metrics::counter!("revoked_sessions_recorded_total").increment(1);
            let _ = self.inner.news.send(session_id);
        }
        new
    }

    /// Ends `session_id` everywhere: records it here and, when following Redis, announces
    /// it to every other process. A Redis failure is logged; the session's tokens then
    /// keep working elsewhere until `forget_at` (their expiry).
    pub async fn announce(&self, session_id: Uuid, forget_at: i64) {
        self.record(session_id, forget_at);
        let client = self
            .inner
            .redis
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        let Some(client) = client else { return };
        let publish = async {
            let mut connection = client.get_multiplexed_async_connection().await?;
            redis::pipe()
                .atomic()
                .cmd("ZADD")
                .arg(REVOKED_SET)
                .arg(forget_at)
                .arg(session_id.to_string())
                .ignore()
                .cmd("ZREMRANGEBYSCORE")
                .arg(REVOKED_SET)
                .arg("-inf")
                .arg(unix_now())
                .ignore()
                .cmd("PUBLISH")
                .arg(REVOKED_CHANNEL)
                .arg(format!("{session_id} {forget_at}"))
                .ignore()
                .query_async::<()>(&mut connection)
                .await
        };
        match tokio::time::timeout(REDIS_TIMEOUT, publish).await {
            Ok(Ok(())) => {}
            Ok(Err(err)) => {
                crate::telemetry::count_backend_error(crate::telemetry::Backend::Redis, true);
                tracing::error!(%session_id, error = %err, "cannot announce an ended session; other services learn of it only when its tokens expire");
            }
            Err(_) => {
                crate::telemetry::count_backend_error(crate::telemetry::Backend::Redis, true);
                tracing::error!(%session_id, "announcing an ended session timed out; other services learn of it only when its tokens expire");
            }
        }
    }

    /// Follows the ended sessions announced through Redis at `url` (and announces this
    /// process's own there). Spawns a task that keeps the subscription alive for as long
    /// as the list exists.
    pub fn follow_redis(&self, url: &str) -> Result<(), RevocationError> {
        let client = redis::Client::open(url).map_err(|e| RevocationError(e.to_string()))?;
        *self.inner.redis.lock().unwrap_or_else(|p| p.into_inner()) = Some(client.clone());
        let weak = Arc::downgrade(&self.inner);
        tokio::spawn(follow(client, weak));
        Ok(())
    }
}

/// Subscribes, loads the set, then records every announcement; on failure, again after a
/// capped backoff. Ends when the list is dropped.
async fn follow(client: redis::Client, list: std::sync::Weak<Inner>) {
    let mut delay = Duration::from_millis(50);
    loop {
        let attempt = async {
            let mut pubsub = tokio::time::timeout(REDIS_TIMEOUT, client.get_async_pubsub())
                .await
                .map_err(|_| "connecting timed out".to_owned())?
                .map_err(|e| e.to_string())?;
            tokio::time::timeout(REDIS_TIMEOUT, pubsub.subscribe(REVOKED_CHANNEL))
                .await
                .map_err(|_| "subscribing timed out".to_owned())?
                .map_err(|e| e.to_string())?;
            // Subscribed first, so nothing announced from now on is missed; then what was
            // announced before.
            let mut connection =
                tokio::time::timeout(REDIS_TIMEOUT, client.get_multiplexed_async_connection())
                    .await
                    .map_err(|_| "connecting timed out".to_owned())?
                    .map_err(|e| e.to_string())?;
            let known: Vec<(String, i64)> = tokio::time::timeout(
                REDIS_TIMEOUT,
                redis::cmd("ZRANGEBYSCORE")
                    .arg(REVOKED_SET)
                    .arg(unix_now())
                    .arg("+inf")
                    .arg("WITHSCORES")
                    .query_async(&mut connection),
            )
            .await
            .map_err(|_| "loading the ended sessions timed out".to_owned())?
            .map_err(|e| e.to_string())?;
            Ok::<_, String>((pubsub, known))
        };
        match attempt.await {
            Ok((pubsub, known)) => {
                let Some(inner) = list.upgrade() else { return };
                let revocations = Revocations { inner };
                for (session, forget_at) in known {
                    if let Ok(session) = session.parse() {
                        revocations.record(session, forget_at);
                    }
                }
                drop(revocations);
                tracing::info!("following ended sessions on Redis");
                delay = Duration::from_millis(50);
                let mut messages = pubsub.into_on_message();
                while let Some(message) = messages.next().await {
                    let Some(inner) = list.upgrade() else { return };
                    let payload = String::from_utf8_lossy(message.get_payload_bytes()).into_owned();
                    match parse_announcement(&payload) {
                        Some((session, forget_at)) => {
                            Revocations { inner }.record(session, forget_at);
                        }
                        None => tracing::warn!("undecodable ended-session announcement dropped"),
                    }
                }
                crate::telemetry::count_backend_error(crate::telemetry::Backend::Redis, true);
                tracing::warn!("lost the ended-session subscription; resubscribing");
            }
            Err(cause) => {
                if list.strong_count() == 0 {
                    return;
                }
                crate::telemetry::count_backend_error(crate::telemetry::Backend::Redis, true);
                tracing::warn!(%cause, retry_in_ms = delay.as_millis() as u64, "cannot follow ended sessions on Redis");
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(Duration::from_secs(2));
            }
        }
    }
}

fn parse_announcement(payload: &str) -> Option<(Uuid, i64)> {
    let (session, forget_at) = payload.split_once(' ')?;
    Some((session.parse().ok()?, forget_at.parse().ok()?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_recorded_session_is_ended_and_others_are_not() {
        let list = Revocations::new();
        let (ended, other) = (Uuid::new_v4(), Uuid::new_v4());
        assert!(list.record(ended, unix_now() + 60));
        assert!(!list.record(ended, unix_now() + 60), "recorded twice");
        assert!(list.is_ended(ended));
        assert!(!list.is_ended(other));
        assert!(list.clone().is_ended(ended), "clones share the list");
    }

    #[test]
    fn a_session_whose_tokens_already_expired_is_not_kept() {
        let list = Revocations::new();
        assert!(!list.record(Uuid::new_v4(), unix_now() - 1));
        assert!(list.is_empty());
    }

    #[tokio::test]
    async fn watchers_hear_of_ended_sessions() {
        let list = Revocations::new();
        let mut watch = list.watch();
        let session = Uuid::new_v4();
        list.announce(session, unix_now() + 60).await;
        assert_eq!(watch.recv().await.unwrap(), session);
    }

    #[test]
    fn announcements_parse_back() {
        let session = Uuid::new_v4();
        assert_eq!(
            parse_announcement(&format!("{session} 1700000000")),
            Some((session, 1_700_000_000))
        );
        assert_eq!(parse_announcement("nonsense"), None);
    }

    #[tokio::test]
    async fn an_announcement_reaches_another_process_through_redis() {
        let Some(url) = test_support::backend_url("REDIS_URL") else {
            return;
        };
        // Two lists stand for two processes.
        let (auth, gateway) = (Revocations::new(), Revocations::new());
        auth.follow_redis(&url).unwrap();
        let mut heard = gateway.watch();
        gateway.follow_redis(&url).unwrap();
        let session = Uuid::new_v4();
        // The follower may not be subscribed yet; it then loads the set when it is.
        auth.announce(session, unix_now() + 60).await;
        let got = tokio::time::timeout(Duration::from_secs(10), async {
            loop {
                if heard.recv().await.unwrap() == session {
                    return;
                }
            }
        })
        .await;
        assert!(
            got.is_ok(),
            "the other process never heard of the ended session"
        );
        assert!(gateway.is_ended(session));

        // A process that starts later catches up from the set.
        let late = Revocations::new();
        let mut late_heard = late.watch();
        late.follow_redis(&url).unwrap();
        let got = tokio::time::timeout(Duration::from_secs(10), async {
            loop {
                if late_heard.recv().await.unwrap() == session {
                    return;
                }
            }
        })
        .await;
        assert!(
            got.is_ok(),
            "a late follower did not load the ended session"
        );
    }
}
