//! The conformance suite every [`ConnectionStore`] must pass: one `pub async fn` per case,
//! which `tests/stores.rs` runs on every backend through `test_support::conformance!`
//! (one test per case and backend, each on an empty store).

use std::time::{Duration, Instant};

use uuid::Uuid;
use wire::api::wsmanager::{ConnectionRef, UserConnection};

use super::{ConnectionStore, Heartbeat};

/// A long enough heartbeat TTL that nothing expires during a check.
const LONG: Duration = Duration::from_secs(60);

fn beat(url: &str, connections: u64) -> Heartbeat {
    Heartbeat {
        url: url.to_owned(),
        connections,
    }
}

fn conn(handler_id: Uuid) -> ConnectionRef {
    ConnectionRef {
        handler_id,
        connection_id: Uuid::new_v4(),
    }
}

fn sorted(mut refs: Vec<ConnectionRef>) -> Vec<ConnectionRef> {
    refs.sort_by_key(|c| (c.handler_id, c.connection_id));
    refs
}

/// The store answers.
pub async fn the_store_answers(store: &dyn ConnectionStore) {
    store.ping().await.expect("the store answers");
}

/// Registering returns the live count, counting the new connection even before its
/// handler's first heartbeat.
pub async fn registering_counts_connections_per_user(store: &dyn ConnectionStore) {
    let (h1, h2) = (Uuid::new_v4(), Uuid::new_v4());
    let user = Uuid::new_v4();
    let first = conn(h1);
    assert_eq!(store.register(user, first).await.unwrap(), 1);
    // h1 has not sent a heartbeat: its connection is not routed to yet.
    assert!(store.connections(user).await.unwrap().is_empty());
    assert!(
        !store
            .heartbeat(h1, beat("http://h1", 1), LONG)
            .await
            .unwrap()
    );
    assert_eq!(store.connections(user).await.unwrap(), vec![first]);
    store
        .heartbeat(h2, beat("http://h2", 1), LONG)
        .await
        .unwrap();
    let second = conn(h2);
    assert_eq!(store.register(user, second).await.unwrap(), 2);
    assert_eq!(
        store.connections(user).await.unwrap(),
        sorted(vec![first, second])
    );
    // Registering the same connection again changes nothing.
    assert_eq!(store.register(user, second).await.unwrap(), 2);
    // Another user is separate.
    let other = Uuid::new_v4();
    assert!(store.connections(other).await.unwrap().is_empty());
    assert_eq!(store.register(other, conn(h1)).await.unwrap(), 1);
    store.remove_handler(h1).await.unwrap();
    store.remove_handler(h2).await.unwrap();
}

/// Deregistering removes exactly the given connection id.
pub async fn deregistering_removes_only_that_connection(store: &dyn ConnectionStore) {
    let (h1, h2) = (Uuid::new_v4(), Uuid::new_v4());
    store
        .heartbeat(h1, beat("http://h1", 1), LONG)
        .await
        .unwrap();
    store
        .heartbeat(h2, beat("http://h2", 1), LONG)
        .await
        .unwrap();
    let user = Uuid::new_v4();
    let old = conn(h1);
    let new = conn(h2);
    store.register(user, old).await.unwrap();
    store.register(user, new).await.unwrap();
    assert_eq!(store.deregister(user, old.connection_id).await.unwrap(), 1);
    assert_eq!(store.connections(user).await.unwrap(), vec![new]);
    // A stale deregistration (unknown id, or another user's) is harmless.
    assert_eq!(store.deregister(user, Uuid::new_v4()).await.unwrap(), 1);
    assert_eq!(
        store
            .deregister(Uuid::new_v4(), new.connection_id)
            .await
            .unwrap(),
        0
    );
    assert_eq!(store.connections(user).await.unwrap(), vec![new]);
    assert_eq!(store.deregister(user, new.connection_id).await.unwrap(), 0);
    assert!(store.connections(user).await.unwrap().is_empty());
    store.remove_handler(h1).await.unwrap();
    store.remove_handler(h2).await.unwrap();
}

/// The first heartbeat answers "was not live"; the next ones "was live".
pub async fn a_heartbeat_tells_whether_the_handler_was_live(store: &dyn ConnectionStore) {
    let h = Uuid::new_v4();
    assert!(!store.heartbeat(h, beat("http://h", 0), LONG).await.unwrap());
    assert!(store.heartbeat(h, beat("http://h", 3), LONG).await.unwrap());
    let live = store.live_handlers().await.unwrap();
    let info = live.iter().find(|i| i.handler_id == h).expect("listed");
    assert_eq!(info.connections, 3);
    assert_eq!(info.url, "http://h");
    store.remove_handler(h).await.unwrap();
}

/// Without heartbeats a handler stops being live and its users' connections stop being
/// routed to it; its next heartbeat answers "was not live".
pub async fn a_handler_without_heartbeat_expires(store: &dyn ConnectionStore) {
    let (dying, alive) = (Uuid::new_v4(), Uuid::new_v4());
    store
        .heartbeat(dying, beat("http://dying", 1), Duration::from_millis(300))
        .await
        .unwrap();
    store
        .heartbeat(alive, beat("http://alive", 1), LONG)
        .await
        .unwrap();
    let user = Uuid::new_v4();
    let on_dying = conn(dying);
    let on_alive = conn(alive);
    store.register(user, on_dying).await.unwrap();
    store.register(user, on_alive).await.unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let live = store.live_handlers().await.unwrap();
        if !live.iter().any(|h| h.handler_id == dying) {
            assert!(live.iter().any(|h| h.handler_id == alive));
            break;
        }
        assert!(Instant::now() < deadline, "the handler never expired");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(store.connections(user).await.unwrap(), vec![on_alive]);
    assert_eq!(store.deregister(user, Uuid::new_v4()).await.unwrap(), 1);
    assert!(
        !store
            .heartbeat(dying, beat("http://dying", 0), LONG)
            .await
            .unwrap()
    );
    store.remove_handler(dying).await.unwrap();
    store.remove_handler(alive).await.unwrap();
}

/// A handler's full list replaces what was recorded for it, and only for it.
pub async fn replacing_a_handlers_connections(store: &dyn ConnectionStore) {
    let (h, other) = (Uuid::new_v4(), Uuid::new_v4());
    store.heartbeat(h, beat("http://h", 2), LONG).await.unwrap();
    store
        .heartbeat(other, beat("http://o", 1), LONG)
        .await
        .unwrap();
    let (u1, u2) = (Uuid::new_v4(), Uuid::new_v4());
    let stale = conn(h);
    let elsewhere = conn(other);
    store.register(u1, stale).await.unwrap();
    store.register(u1, elsewhere).await.unwrap();
    let kept = UserConnection {
        user_id: u1,
        connection_id: Uuid::new_v4(),
    };
    let added = UserConnection {
        user_id: u2,
        connection_id: Uuid::new_v4(),
    };
    store
        .replace_handler_connections(h, &[kept, added])
        .await
        .unwrap();
    let as_ref = |c: UserConnection| ConnectionRef {
        handler_id: h,
        connection_id: c.connection_id,
    };
    assert_eq!(
        store.connections(u1).await.unwrap(),
        sorted(vec![as_ref(kept), elsewhere])
    );
    assert_eq!(store.connections(u2).await.unwrap(), vec![as_ref(added)]);
    // Deregistering after a replacement still works.
    assert_eq!(store.deregister(u2, added.connection_id).await.unwrap(), 0);
    store.replace_handler_connections(h, &[]).await.unwrap();
    assert_eq!(store.connections(u1).await.unwrap(), vec![elsewhere]);
    store.remove_handler(h).await.unwrap();
    store.remove_handler(other).await.unwrap();
}

/// Removing a handler forgets it and its connections.
pub async fn removing_a_handler(store: &dyn ConnectionStore) {
    let h = Uuid::new_v4();
    store.heartbeat(h, beat("http://h", 1), LONG).await.unwrap();
    let user = Uuid::new_v4();
    store.register(user, conn(h)).await.unwrap();
    store.remove_handler(h).await.unwrap();
    assert!(store.connections(user).await.unwrap().is_empty());
    assert!(
        !store
            .live_handlers()
            .await
            .unwrap()
            .iter()
            .any(|i| i.handler_id == h)
    );
    assert!(!store.heartbeat(h, beat("http://h", 0), LONG).await.unwrap());
    store.remove_handler(h).await.unwrap();
}

/// Live handlers come least loaded first.
pub async fn live_handlers_carry_their_load(store: &dyn ConnectionStore) {
    let (busy, idle) = (Uuid::new_v4(), Uuid::new_v4());
    store
        .heartbeat(busy, beat("http://busy", 9), LONG)
        .await
        .unwrap();
    store
        .heartbeat(idle, beat("http://idle", 2), LONG)
        .await
        .unwrap();
    let live = store.live_handlers().await.unwrap();
    let order: Vec<Uuid> = live
        .iter()
        .map(|h| h.handler_id)
        .filter(|id| *id == busy || *id == idle)
        .collect();
    assert_eq!(order, vec![idle, busy]);
    store.remove_handler(busy).await.unwrap();
    store.remove_handler(idle).await.unwrap();
}
