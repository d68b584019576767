//! The registry conformance suite on every backend: in memory always, Redis when
//! `REDIS_URL` is set (under a fresh key prefix, deleted afterwards).

use test_support::{backend_url, unique_name};
use ws_manager::store::{MemoryStore, RedisStore, conformance};

#[tokio::test]
async fn the_memory_store_conforms() {
    conformance::run_all(&MemoryStore::new()).await;
}

#[tokio::test]
async fn the_redis_store_conforms() {
    let Some(url) = backend_url("REDIS_URL") else {
        return;
    };
    let store = RedisStore::connect(&url, &unique_name("rc_wsm_test"))
        .await
        .unwrap();
    conformance::run_all(&store).await;
    store.delete_all().await.unwrap();
}
