//! The registry in this process's memory (the embedded default).

use std::collections::{HashMap, HashSet};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use time::OffsetDateTime;
use uuid::Uuid;
use wire::api::wsmanager::{ConnectionRef, HandlerInfo, UserConnection};

use super::{ConnectionStore, Heartbeat, StoreError};

/// An in-memory registry. Lost when the process exits, like the sockets it describes.
#[derive(Debug, Default)]
pub struct MemoryStore {
    state: Mutex<State>,
}

#[derive(Debug, Default)]
struct State {
    /// user → connection id → handler id.
    users: HashMap<Uuid, UserConnections>,
    /// handler id → its connections.
    handler_connections: HashMap<Uuid, HashSet<UserConnection>>,
    handlers: HashMap<Uuid, HandlerEntry>,
}

/// One user's connections, as (connection id, handler id). A user holds a few at most
/// (handlers cap them per account), so a short list: 32 bytes for the usual single
/// connection, where a map would take about 150 for every connected user.
#[derive(Debug, Default)]
struct UserConnections(Vec<(Uuid, Uuid)>);

impl UserConnections {
    fn insert(&mut self, connection_id: Uuid, handler_id: Uuid) {
        if let Some(entry) = self.0.iter_mut().find(|(c, _)| *c == connection_id) {
            entry.1 = handler_id;
            return;
        }
        if self.0.capacity() == 0 {
            self.0.reserve_exact(1);
        }
        self.0.push((connection_id, handler_id));
    }

    /// Removes a connection; its handler, if it was there.
    fn remove(&mut self, connection_id: &Uuid) -> Option<Uuid> {
        let at = self.0.iter().position(|(c, _)| c == connection_id)?;
        Some(self.0.swap_remove(at).1)
    }

    fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// (connection id, handler id) pairs.
    fn iter(&self) -> impl Iterator<Item = (&Uuid, &Uuid)> {
        self.0.iter().map(|(c, h)| (c, h))
    }
}

#[derive(Debug)]
struct HandlerEntry {
    url: String,
    connections: u64,
    last_seen: OffsetDateTime,
    expires_at: Instant,
}

impl State {
    fn is_live(&self, handler_id: Uuid, now: Instant) -> bool {
        self.handlers
            .get(&handler_id)
            .is_some_and(|h| h.expires_at > now)
    }

    fn live_count(&self, user_id: Uuid, also: Option<Uuid>, now: Instant) -> u32 {
        self.users.get(&user_id).map_or(0, |conns| {
            conns
                .iter()
                .filter(|(conn, handler)| Some(**conn) == also || self.is_live(**handler, now))
                .count() as u32
        })
    }

    fn remove_connection(&mut self, user_id: Uuid, connection_id: Uuid) {
        if let Some(conns) = self.users.get_mut(&user_id)
            && let Some(handler) = conns.remove(&connection_id)
        {
            if conns.is_empty() {
                self.users.remove(&user_id);
            }
            if let Some(set) = self.handler_connections.get_mut(&handler) {
                set.remove(&UserConnection {
                    user_id,
                    connection_id,
                });
            }
        }
    }

    fn drop_handler_connections(&mut self, handler_id: Uuid) {
        for c in self
            .handler_connections
            .remove(&handler_id)
            .unwrap_or_default()
        {
            if let Some(conns) = self.users.get_mut(&c.user_id) {
                conns.remove(&c.connection_id);
                if conns.is_empty() {
                    self.users.remove(&c.user_id);
                }
            }
        }
    }
}

impl MemoryStore {
    /// An empty registry.
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }
}

#[async_trait]
impl ConnectionStore for MemoryStore {
    async fn register(&self, user_id: Uuid, connection: ConnectionRef) -> Result<u32, StoreError> {
        let mut state = self.lock();
        state
            .users
            .entry(user_id)
            .or_default()
            .insert(connection.connection_id, connection.handler_id);
        state
            .handler_connections
            .entry(connection.handler_id)
            .or_default()
            .insert(UserConnection {
                user_id,
                connection_id: connection.connection_id,
            });
        Ok(state.live_count(user_id, Some(connection.connection_id), Instant::now()))
    }

    async fn deregister(&self, user_id: Uuid, connection_id: Uuid) -> Result<u32, StoreError> {
        let mut state = self.lock();
        state.remove_connection(user_id, connection_id);
        Ok(state.live_count(user_id, None, Instant::now()))
    }

    async fn connections(&self, user_id: Uuid) -> Result<Vec<ConnectionRef>, StoreError> {
        let state = self.lock();
        let now = Instant::now();
        let mut found: Vec<ConnectionRef> = state
            .users
            .get(&user_id)
            .map(|conns| {
                conns
                    .iter()
                    .filter(|(_, handler)| state.is_live(**handler, now))
                    .map(|(conn, handler)| ConnectionRef {
                        handler_id: *handler,
                        connection_id: *conn,
                    })
                    .collect()
            })
            .unwrap_or_default();
        found.sort_by_key(|c| (c.handler_id, c.connection_id));
        Ok(found)
    }

    async fn heartbeat(
        &self,
        handler_id: Uuid,
        beat: Heartbeat,
        ttl: Duration,
    ) -> Result<bool, StoreError> {
        let mut state = self.lock();
        let now = Instant::now();
        let was_live = state.is_live(handler_id, now);
        state.handlers.insert(
            handler_id,
            HandlerEntry {
                url: beat.url,
                connections: beat.connections,
                last_seen: OffsetDateTime::now_utc(),
                expires_at: now + ttl,
            },
        );
        Ok(was_live)
    }

    async fn replace_handler_connections(
        &self,
        handler_id: Uuid,
        connections: &[UserConnection],
    ) -> Result<(), StoreError> {
        let mut state = self.lock();
        state.drop_handler_connections(handler_id);
        for c in connections {
            state
                .users
                .entry(c.user_id)
                .or_default()
                .insert(c.connection_id, handler_id);
        }
        state
            .handler_connections
            .insert(handler_id, connections.iter().copied().collect());
        Ok(())
    }

    async fn remove_handler(&self, handler_id: Uuid) -> Result<(), StoreError> {
        let mut state = self.lock();
        state.drop_handler_connections(handler_id);
        state.handlers.remove(&handler_id);
        Ok(())
    }

    async fn live_handlers(&self) -> Result<Vec<HandlerInfo>, StoreError> {
        let mut state = self.lock();
        let now = Instant::now();
        let expired: Vec<Uuid> = state
            .handlers
            .iter()
            .filter(|(_, h)| h.expires_at <= now)
            .map(|(id, _)| *id)
            .collect();
        for id in expired {
            state.handlers.remove(&id);
            state.drop_handler_connections(id);
        }
        let mut live: Vec<HandlerInfo> = state
            .handlers
            .iter()
            .map(|(id, h)| HandlerInfo {
                handler_id: *id,
                url: h.url.clone(),
                connections: h.connections,
                last_seen: h.last_seen,
            })
            .collect();
        live.sort_by_key(|h| (h.connections, h.handler_id));
        Ok(live)
    }

    async fn ping(&self) -> Result<(), StoreError> {
        Ok(())
    }
}
