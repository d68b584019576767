//! One hop from a sender to the recipients' connections: where users are connected (ws-manager's
//! registry, remembered here and kept current by ws-manager's route announcements) and the
//! fan-out of an event to the handlers holding them, this instance's own connections directly.
//!
//! A remembered route is used for at most [`ROUTE_TTL`], and ws-manager announces every
//! registration on the broadcast channel, so a route is normally fresh at once and never
//! staler than the TTL even when an announcement is lost. A connection registered less than
//! the TTL ago may still miss a live event routed with an older route: its writer therefore
//! catches up once more when the TTL has passed ([`SETTLE_AFTER`]).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::future::join_all;
use service_kit::relay::PreparedEvent;
use uuid::Uuid;
use wire::api::wsmanager::{ConnectionRef, RelayEnvelope};
use wire::protocol::ServerFrame;

use crate::chats;
use crate::state::AppState;

/// How long a remembered route is used before the registry is asked again.
pub const ROUTE_TTL: Duration = Duration::from_secs(2);
/// When a new connection catches up once more: once every route older than its
/// registration has expired (with a margin for the time a fan-out takes).
pub const SETTLE_AFTER: Duration = Duration::from_millis(2_500);
/// Most users whose routes are remembered; the cache is emptied when it fills.
const CAPACITY: usize = 100_000;

/// User id → the user's connections, as ws-manager's registry last said.
#[derive(Debug, Default)]
pub struct RouteCache {
    inner: Mutex<Routes>,
}

#[derive(Debug, Default)]
struct Routes {
    users: HashMap<Uuid, (Instant, Arc<[ConnectionRef]>)>,
    /// Bumped by every forget and reset: a lookup that started before one must not store
    /// what it found (it may predate the change).
    generation: u64,
}

impl RouteCache {
    fn lock(&self) -> std::sync::MutexGuard<'_, Routes> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The remembered, unexpired route of `user_id`, and the generation to store a fresh
    /// one with when there is none.
    fn cached(&self, user_id: Uuid, now: Instant) -> Result<Arc<[ConnectionRef]>, u64> {
        let routes = self.lock();
        match routes.users.get(&user_id) {
            Some((fetched, found)) if now.duration_since(*fetched) < ROUTE_TTL => Ok(found.clone()),
            _ => Err(routes.generation),
        }
    }

    /// Remembers a route looked up since `started` unless a change was announced since
    /// the lookup began (`generation`).
    fn store(&self, user_id: Uuid, found: Arc<[ConnectionRef]>, started: Instant, generation: u64) {
        let mut routes = self.lock();
        if routes.generation != generation {
            return;
        }
        if routes.users.len() >= CAPACITY {
            routes.users.clear();
        }
        routes.users.insert(user_id, (started, found));
    }

    /// Forgets the routes of `users` (their connections changed).
    pub fn forget(&self, users: &[Uuid]) {
        let mut routes = self.lock();
        routes.generation += 1;
        for user in users {
            routes.users.remove(user);
        }
    }

    /// Forgets every route.
    pub fn reset(&self) {
        let mut routes = self.lock();
        routes.generation += 1;
        routes.users.clear();
    }

    /// How many users' routes are remembered.
    pub fn len(&self) -> usize {
        self.lock().users.len()
    }

    /// Whether no route is remembered.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// The connections of each of `users` (remembered or asked of ws-manager), all together;
/// a user whose lookup failed is left out (live events are best effort: messages are
/// recovered by gap filling and resume).
async fn connections_of(state: &AppState, users: &[Uuid]) -> Vec<ConnectionRef> {
    let routes = state.routes();
    let now = Instant::now();
    let mut found = Vec::new();
    let mut missing = Vec::new();
    for user in users {
        match routes.cached(*user, now) {
            Ok(connections) => found.extend(connections.iter().copied()),
            Err(generation) => missing.push((*user, generation)),
        }
    }
    metrics::counter!("ws_route_lookups_total", "cached" => "hit")
        .increment((users.len() - missing.len()) as u64);
    if missing.is_empty() {
        return found;
    }
    metrics::counter!("ws_route_lookups_total", "cached" => "miss").increment(missing.len() as u64);
    let ws_manager = &state.peers().ws_manager;
    let lookups = missing.iter().map(|(user, generation)| async move {
        let started = Instant::now();
        let result = chats::connections_of(ws_manager, *user).await;
        (*user, *generation, started, result)
    });
    for (user, generation, started, result) in join_all(lookups).await {
        match result {
            Ok(connections) => {
                let connections: Arc<[ConnectionRef]> = connections.into();
                found.extend(connections.iter().copied());
                routes.store(user, connections, started, generation);
            }
            Err(err) => tracing::warn!(error = %err, %user, "cannot look up a user's connections"),
        }
    }
    found
}

/// Pushes `event` to every live connection of `users` but `except`: to this instance's
/// own connections directly, to each other handler holding some with one relay publish
/// (the event serialised once for all of them).
pub async fn fan_out(state: &AppState, users: &[Uuid], event: ServerFrame, except: Option<Uuid>) {
    if users.is_empty() {
        return;
    }
    let mut per_handler: HashMap<Uuid, Vec<Uuid>> = HashMap::new();
    for connection in connections_of(state, users).await {
        if Some(connection.connection_id) != except {
            per_handler
                .entry(connection.handler_id)
                .or_default()
                .push(connection.connection_id);
        }
    }
    let own = per_handler.remove(&state.handler_id());
    if per_handler.is_empty() {
        if let Some(connection_ids) = own {
            state.dispatch(RelayEnvelope {
                connection_ids,
                event: Some(event),
                ..Default::default()
            });
        }
        return;
    }
    let prepared = PreparedEvent::new(event);
    if let Some(connection_ids) = own {
        state.dispatch(RelayEnvelope {
            connection_ids,
            event: Some(prepared.frame().clone()),
            ..Default::default()
        });
    }
    let relay = state.relay();
    let publishes = per_handler.into_iter().map(|(handler_id, connection_ids)| {
        relay.publish_event(handler_id, connection_ids, &prepared)
    });
    for result in join_all(publishes).await {
        if let Err(err) = result {
            metrics::counter!("ws_relay_publish_failures_total").increment(1);
            tracing::warn!(error = %err, "cannot relay an event to another handler");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn route(handler: Uuid) -> Arc<[ConnectionRef]> {
        vec![ConnectionRef {
            handler_id: handler,
            connection_id: Uuid::new_v4(),
        }]
        .into()
    }

    #[test]
    fn a_route_is_used_until_it_expires() {
        let cache = RouteCache::default();
        let (user, handler) = (Uuid::new_v4(), Uuid::new_v4());
        let start = Instant::now();
        let generation = cache.cached(user, start).unwrap_err();
        cache.store(user, route(handler), start, generation);
        assert_eq!(cache.cached(user, start).unwrap()[0].handler_id, handler);
        assert!(cache.cached(user, start + ROUTE_TTL).is_err());
    }

    #[test]
    fn a_lookup_that_overlapped_an_announcement_is_not_remembered() {
        let cache = RouteCache::default();
        let user = Uuid::new_v4();
        let start = Instant::now();
        let generation = cache.cached(user, start).unwrap_err();
        // The user registers a new connection while the lookup is on its way.
        cache.forget(&[user]);
        cache.store(user, route(Uuid::new_v4()), start, generation);
        assert!(cache.cached(user, start).is_err());
        assert!(cache.is_empty());
    }

    #[test]
    fn forgetting_and_resetting_drop_routes() {
        let cache = RouteCache::default();
        let (one, two) = (Uuid::new_v4(), Uuid::new_v4());
        let start = Instant::now();
        for user in [one, two] {
            let generation = cache.cached(user, start).unwrap_err();
            cache.store(user, route(Uuid::new_v4()), start, generation);
        }
        cache.forget(&[one]);
        assert!(cache.cached(one, start).is_err());
        assert!(cache.cached(two, start).is_ok());
        cache.reset();
        assert!(cache.is_empty());
    }
}
