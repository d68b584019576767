//! The store conformance suite, the one-client-message-id stampede and the interleaving
//! property on every backend: SQLite always (a temporary file and in memory), MongoDB when
//! `MONGODB_URL` is set (each test on a fresh database, dropped afterwards).

mod support;

use std::sync::Arc;

use message_service::store::MessageStore;
use message_service::store::conformance;
use support::{MongoDb, TempDir, property};

/// Callers appending one client message id at once in the stampede tests.
const STAMPEDE: usize = 1000;

#[tokio::test]
async fn sqlite_file_conforms() {
    let dir = TempDir::new("msg_store");
    conformance::run_all(dir.sqlite_store().await).await;
}

#[tokio::test]
async fn sqlite_in_memory_conforms() {
    let store = message_service::store::sqlite::SqliteMessageStore::open("sqlite::memory:")
        .await
        .unwrap();
    conformance::run_all(Arc::new(store)).await;
}

#[tokio::test]
async fn mongodb_conforms() {
    let Some(db) = MongoDb::create().await else {
        return;
    };
    // Creating the indexes again is a no-op.
    db.store.ensure_indexes().await.unwrap();
    conformance::run_all(db.arc()).await;
    db.drop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_a_thousand_concurrent_resends_store_one_message() {
    let dir = TempDir::new("msg_stampede");
    // Two pools on one file, as two processes would have.
    let stores = [dir.sqlite_store().await, dir.sqlite_store().await];
    let outcome = conformance::same_client_msg_id_across(&stores, STAMPEDE).await;
    assert_eq!(outcome.answers.len(), STAMPEDE);
    conformance::assert_one_message(&outcome);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mongodb_a_thousand_concurrent_resends_store_one_message() {
    let Some(db) = MongoDb::create().await else {
        return;
    };
    // Two instances: appends queue in each and conflict between them.
    let stores = [db.arc(), db.another_instance().await];
    let outcome = conformance::same_client_msg_id_across(&stores, STAMPEDE).await;
    assert_eq!(outcome.answers.len(), STAMPEDE);
    conformance::assert_one_message(&outcome);
    db.drop().await;
}

#[test]
fn sqlite_interleavings_keep_seqs_dense_and_status_monotonic() {
    let runtime = property::runtime();
    let dir = TempDir::new("msg_prop");
    let store: Arc<dyn MessageStore> = runtime.block_on(dir.sqlite_store());
    property::check_interleavings(&runtime, store, 64);
}

#[test]
fn mongodb_interleavings_keep_seqs_dense_and_status_monotonic() {
    let runtime = property::runtime();
    let Some(db) = runtime.block_on(MongoDb::create()) else {
        return;
    };
    property::check_interleavings(&runtime, db.arc(), 8);
    runtime.block_on(db.drop());
}
