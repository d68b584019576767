//! The registry conformance suite on every backend, one test per case and backend: in
//! memory always, Redis when `REDIS_URL` is set (each case under a fresh key prefix,
//! deleted afterwards, also when the case panics).

use std::ops::Deref;

use test_support::{Cleanup, backend_url, unique_name};
use ws_manager::store::{ConnectionStore, MemoryStore, RedisStore, conformance};

/// An empty store for one case, and what removes it.
struct Fixture {
    store: Box<dyn ConnectionStore>,
    _cleanup: Cleanup,
}

impl Deref for Fixture {
    type Target = dyn ConnectionStore;

    fn deref(&self) -> &Self::Target {
        self.store.as_ref()
    }
}

async fn memory() -> Option<Fixture> {
    Some(Fixture {
        store: Box::new(MemoryStore::new()),
        _cleanup: Cleanup::none(),
    })
}

async fn redis() -> Option<Fixture> {
    let url = backend_url("REDIS_URL")?;
    let prefix = unique_name("rc_wsm_test");
    let store = RedisStore::connect(&url, &prefix).await.unwrap();
    Some(Fixture {
        store: Box::new(store),
        _cleanup: Cleanup::new(async move {
            if let Ok(store) = RedisStore::connect(&url, &prefix).await {
                let _ = store.delete_all().await;
            }
        }),
    })
}

test_support::conformance! {
    cases: conformance,
    backends: { memory => memory(), redis => redis() },
    tests: [
        the_store_answers,
        registering_counts_connections_per_user,
        deregistering_removes_only_that_connection,
        a_heartbeat_tells_whether_the_handler_was_live,
        a_handler_without_heartbeat_expires,
        replacing_a_handlers_connections,
        removing_a_handler,
        live_handlers_carry_their_load,
    ],
}
