//! The registry in Redis, shared by every ws-manager instance.
//!
//! Keys (under a configurable prefix `P`):
//! - `P:u:{user_id}` — hash: connection id → handler id.
//! - `P:hc:{handler_id}` — set of `{user_id}:{connection_id}` on that handler.
//! - `P:h:{handler_id}` — the handler's last heartbeat (JSON), expiring after the TTL.
//! - `P:handlers` — set of handler ids ever seen, pruned when their heartbeat expired.
//!
//! Multi-key updates run as Lua scripts, so each is atomic. The scripts derive key names
//! from the prefix, which suits a single Redis server or a primary with replicas; on Redis
//! Cluster every key would need the same hash tag (a prefix such as `{rc}`).

use service_kit::telemetry::{Backend, count_backend_error};
use std::time::Duration;

use async_trait::async_trait;
use redis::aio::ConnectionManager;
use redis::{AsyncCommands, Script};
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use uuid::Uuid;
use wire::api::wsmanager::{ConnectionRef, HandlerInfo, UserConnection};

use super::{ConnectionStore, Heartbeat, StoreError};

/// Time limit of one Redis command or connection attempt.
const REDIS_TIMEOUT: Duration = Duration::from_secs(2);

const COUNT_LIVE: &str = r"
local function count_live(user_key, prefix, always)
  local all = redis.call('HGETALL', user_key)
  local n = 0
  for i = 1, #all, 2 do
    if all[i] == always or redis.call('EXISTS', prefix .. ':h:' .. all[i + 1]) == 1 then
      n = n + 1
    end
  end
  return n
end
";

/// KEYS: user hash, handler set. ARGV: connection id, handler id, set member, prefix.
const REGISTER: &str = r"
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
redis.call('SADD', KEYS[2], ARGV[3])
return count_live(KEYS[1], ARGV[4], ARGV[1])
";

/// KEYS: user hash. ARGV: connection id, prefix, user id.
const DEREGISTER: &str = r"
local handler = redis.call('HGET', KEYS[1], ARGV[1])
if handler then
  redis.call('HDEL', KEYS[1], ARGV[1])
  redis.call('SREM', ARGV[2] .. ':hc:' .. handler, ARGV[3] .. ':' .. ARGV[1])
end
return count_live(KEYS[1], ARGV[2], '')
";

/// KEYS: user hash. ARGV: prefix. Returns connection id, handler id pairs on live handlers.
const CONNECTIONS: &str = r"
local all = redis.call('HGETALL', KEYS[1])
local live = {}
for i = 1, #all, 2 do
  if redis.call('EXISTS', ARGV[1] .. ':h:' .. all[i + 1]) == 1 then
    table.insert(live, all[i])
    table.insert(live, all[i + 1])
  end
end
return live
";

/// KEYS: handler set, heartbeat key, handlers set. ARGV: prefix, handler id, mode, then
/// `user:connection` members to record. Modes: `replace` (the handler's connections become
/// the members), `remove` (forget the handler), `gc` (forget it only if its heartbeat is
/// still absent: it may have come back since it was seen expired).
const REPLACE: &str = r"
if ARGV[3] == 'gc' and redis.call('EXISTS', KEYS[2]) == 1 then
  return -1
end
local old = redis.call('SMEMBERS', KEYS[1])
for _, member in ipairs(old) do
  local sep = string.find(member, ':', 1, true)
  redis.call('HDEL', ARGV[1] .. ':u:' .. string.sub(member, 1, sep - 1), string.sub(member, sep + 1))
end
redis.call('DEL', KEYS[1])
if ARGV[3] ~= 'replace' then
  if ARGV[3] == 'remove' then
    redis.call('DEL', KEYS[2])
  end
  redis.call('SREM', KEYS[3], ARGV[2])
  return 0
end
for i = 4, #ARGV do
  local member = ARGV[i]
  local sep = string.find(member, ':', 1, true)
  redis.call('HSET', ARGV[1] .. ':u:' .. string.sub(member, 1, sep - 1), string.sub(member, sep + 1), ARGV[2])
  redis.call('SADD', KEYS[1], member)
end
return #ARGV - 3
";

/// The heartbeat as stored.
#[derive(Debug, Serialize, Deserialize)]
struct StoredHeartbeat {
    url: String,
    connections: u64,
    #[serde(with = "time::serde::rfc3339")]
    last_seen: OffsetDateTime,
}

/// A registry in Redis.
#[derive(Clone)]
pub struct RedisStore {
    connection: ConnectionManager,
    prefix: String,
    register: Script,
    deregister: Script,
    connections: Script,
    replace: Script,
}

impl std::fmt::Debug for RedisStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisStore")
            .field("prefix", &self.prefix)
            .finish()
    }
}

fn redis_error(err: redis::RedisError) -> StoreError {
    let unavailable = err.is_io_error()
        || err.is_timeout()
        || err.is_connection_dropped()
        || err.is_connection_refusal()
        || err.is_unrecoverable_error();
    count_backend_error(Backend::Redis, unavailable);
    if unavailable {
        StoreError::Unavailable(err.to_string())
    } else {
        StoreError::Backend(err.to_string())
    }
}

impl RedisStore {
    /// Connects to Redis at `url`, keeping keys under `key_prefix` (e.g. `rc:wsm`). The
    /// connection reconnects by itself after failures.
    pub async fn connect(url: &str, key_prefix: &str) -> Result<Self, StoreError> {
        let client = redis::Client::open(url)
            .map_err(|e| StoreError::Backend(format!("invalid Redis URL: {e}")))?;
        let config = redis::aio::ConnectionManagerConfig::new()
            .set_connection_timeout(Some(REDIS_TIMEOUT))
            .set_response_timeout(Some(REDIS_TIMEOUT))
            .set_number_of_retries(1);
        let connection = ConnectionManager::new_with_config(client, config)
            .await
            .map_err(redis_error)?;
        Ok(Self {
            connection,
            prefix: key_prefix.to_owned(),
            register: Script::new(&format!("{COUNT_LIVE}{REGISTER}")),
            deregister: Script::new(&format!("{COUNT_LIVE}{DEREGISTER}")),
            connections: Script::new(CONNECTIONS),
            replace: Script::new(REPLACE),
        })
    }

    fn user_key(&self, user_id: Uuid) -> String {
        format!("{}:u:{user_id}", self.prefix)
    }

    fn handler_set_key(&self, handler_id: Uuid) -> String {
        format!("{}:hc:{handler_id}", self.prefix)
    }

    fn heartbeat_key(&self, handler_id: Uuid) -> String {
        format!("{}:h:{handler_id}", self.prefix)
    }

    fn handlers_key(&self) -> String {
        format!("{}:handlers", self.prefix)
    }

    async fn replace_members(
        &self,
        handler_id: Uuid,
        mode: &str,
        members: Vec<String>,
    ) -> Result<(), StoreError> {
        let mut invocation = self.replace.key(self.handler_set_key(handler_id));
        invocation
            .key(self.heartbeat_key(handler_id))
            .key(self.handlers_key())
            .arg(&self.prefix)
            .arg(handler_id.to_string())
            .arg(mode);
        for member in members {
            invocation.arg(member);
        }
        let mut connection = self.connection.clone();
        invocation
            .invoke_async::<i64>(&mut connection)
            .await
            .map_err(redis_error)?;
        Ok(())
    }

    /// Deletes every key under the prefix (for tests on a shared server).
    pub async fn delete_all(&self) -> Result<(), StoreError> {
        let mut connection = self.connection.clone();
        let mut cursor: u64 = 0;
        loop {
            let (next, keys): (u64, Vec<String>) = redis::cmd("SCAN")
                .arg(cursor)
                .arg("MATCH")
                .arg(format!("{}:*", self.prefix))
                .arg("COUNT")
                .arg(500)
                .query_async(&mut connection)
                .await
                .map_err(redis_error)?;
            if !keys.is_empty() {
                connection.del::<_, ()>(keys).await.map_err(redis_error)?;
            }
            if next == 0 {
                return Ok(());
            }
            cursor = next;
        }
    }
}

fn member(user_id: Uuid, connection_id: Uuid) -> String {
    format!("{user_id}:{connection_id}")
}

fn parse_uuid(raw: &str) -> Result<Uuid, StoreError> {
    raw.parse()
        .map_err(|_| StoreError::Backend(format!("corrupt id {raw:?} in the registry")))
}

#[async_trait]
impl ConnectionStore for RedisStore {
    async fn register(&self, user_id: Uuid, connection: ConnectionRef) -> Result<u32, StoreError> {
        let mut con = self.connection.clone();
        let count: u32 = self
            .register
            .key(self.user_key(user_id))
            .key(self.handler_set_key(connection.handler_id))
            .arg(connection.connection_id.to_string())
            .arg(connection.handler_id.to_string())
            .arg(member(user_id, connection.connection_id))
            .arg(&self.prefix)
            .invoke_async(&mut con)
            .await
            .map_err(redis_error)?;
        Ok(count)
    }

    async fn deregister(&self, user_id: Uuid, connection_id: Uuid) -> Result<u32, StoreError> {
        let mut con = self.connection.clone();
        let count: u32 = self
            .deregister
            .key(self.user_key(user_id))
            .arg(connection_id.to_string())
            .arg(&self.prefix)
            .arg(user_id.to_string())
            .invoke_async(&mut con)
            .await
            .map_err(redis_error)?;
        Ok(count)
    }

    async fn connections(&self, user_id: Uuid) -> Result<Vec<ConnectionRef>, StoreError> {
        let mut con = self.connection.clone();
        let flat: Vec<String> = self
            .connections
            .key(self.user_key(user_id))
            .arg(&self.prefix)
            .invoke_async(&mut con)
            .await
            .map_err(redis_error)?;
        let mut found = flat
            .chunks_exact(2)
            .map(|pair| {
                Ok(ConnectionRef {
                    connection_id: parse_uuid(&pair[0])?,
                    handler_id: parse_uuid(&pair[1])?,
                })
            })
            .collect::<Result<Vec<_>, StoreError>>()?;
        found.sort_by_key(|c| (c.handler_id, c.connection_id));
        Ok(found)
    }

    async fn heartbeat(
        &self,
        handler_id: Uuid,
        beat: Heartbeat,
        ttl: Duration,
    ) -> Result<bool, StoreError> {
        let stored = StoredHeartbeat {
            url: beat.url,
            connections: beat.connections,
            last_seen: OffsetDateTime::now_utc(),
        };
        let json =
            serde_json::to_string(&stored).map_err(|e| StoreError::Backend(e.to_string()))?;
        let ttl_ms = ttl.as_millis().max(1) as u64;
        let mut con = self.connection.clone();
        let (previous, _): (Option<String>, i64) = redis::pipe()
            .atomic()
            .cmd("SET")
            .arg(self.heartbeat_key(handler_id))
            .arg(json)
            .arg("PX")
            .arg(ttl_ms)
            .arg("GET")
            .sadd(self.handlers_key(), handler_id.to_string())
            .query_async(&mut con)
            .await
            .map_err(redis_error)?;
        Ok(previous.is_some())
    }

    async fn replace_handler_connections(
        &self,
        handler_id: Uuid,
        connections: &[UserConnection],
    ) -> Result<(), StoreError> {
        let members = connections
            .iter()
            .map(|c| member(c.user_id, c.connection_id))
            .collect();
        self.replace_members(handler_id, "replace", members).await
    }

    async fn remove_handler(&self, handler_id: Uuid) -> Result<(), StoreError> {
        self.replace_members(handler_id, "remove", Vec::new()).await
    }

    async fn live_handlers(&self) -> Result<Vec<HandlerInfo>, StoreError> {
        let mut con = self.connection.clone();
        let ids: Vec<String> = con
            .smembers(self.handlers_key())
            .await
            .map_err(redis_error)?;
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let ids = ids
            .iter()
            .map(|id| parse_uuid(id))
            .collect::<Result<Vec<_>, _>>()?;
        let keys: Vec<String> = ids.iter().map(|id| self.heartbeat_key(*id)).collect();
        let beats: Vec<Option<String>> = redis::cmd("MGET")
            .arg(&keys)
            .query_async(&mut con)
            .await
            .map_err(redis_error)?;
        let mut live = Vec::new();
        for (id, beat) in ids.into_iter().zip(beats) {
            match beat {
                Some(json) => {
                    let beat: StoredHeartbeat = serde_json::from_str(&json)
                        .map_err(|e| StoreError::Backend(format!("corrupt heartbeat: {e}")))?;
                    live.push(HandlerInfo {
                        handler_id: id,
                        url: beat.url,
                        connections: beat.connections,
                        last_seen: beat.last_seen,
                    });
                }
                None => {
                    // Expired: its connections are routed nowhere any more; drop them.
                    self.replace_members(id, "gc", Vec::new()).await?;
                }
            }
        }
        live.sort_by_key(|h| (h.connections, h.handler_id));
        Ok(live)
    }

    async fn ping(&self) -> Result<(), StoreError> {
        let mut con = self.connection.clone();
        redis::cmd("PING")
            .query_async::<String>(&mut con)
            .await
            .map(|_| ())
            .map_err(redis_error)
    }
}
