//! Where users are connected, as ws-manager's registry last said: a cache the fan-out reads
//! and ws-manager's registration news (and this handler's own resubscriptions) keep current.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use uuid::Uuid;
use wire::api::wsmanager::ConnectionRef;

/// How long a remembered route is used before the registry is asked again.
pub const ROUTE_TTL: Duration = Duration::from_secs(2);
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
    pub(crate) fn cached(&self, user_id: Uuid, now: Instant) -> Result<Arc<[ConnectionRef]>, u64> {
        let routes = self.lock();
        match routes.users.get(&user_id) {
            Some((fetched, found)) if now.duration_since(*fetched) < ROUTE_TTL => Ok(found.clone()),
            _ => Err(routes.generation),
        }
    }

    /// Remembers a route looked up since `started` unless a change was announced since
    /// the lookup began (`generation`).
    pub(crate) fn store(
        &self,
        user_id: Uuid,
        found: Arc<[ConnectionRef]>,
        started: Instant,
        generation: u64,
    ) {
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
