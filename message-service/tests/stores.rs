//! The store conformance suite (one test per case and backend), the one-client-message-id
//! stampede across two instances and the interleaving property on every backend: SQLite
//! always (a temporary file and in memory), MongoDB when `MONGODB_URL` is set (each test on
//! a fresh database, dropped afterwards, also when it panics).

mod support;

use std::ops::Deref;
use std::sync::Arc;

use message_service::store::conformance;
use message_service::store::mongo::MongoMessageStore;
use message_service::store::sqlite::SqliteMessageStore;
use message_service::store::{MessageStore, StoreError};
use support::{MongoDb, TempDir, property};
use test_support::Cleanup;

/// Callers appending one client message id at once in the stampede tests.
const STAMPEDE: usize = 1000;

/// An empty store for one case, and what removes it (the directory or the database).
struct Fixture {
    store: Arc<dyn MessageStore>,
    _dir: Option<TempDir>,
    _cleanup: Cleanup,
}

impl Deref for Fixture {
    type Target = dyn MessageStore;

    fn deref(&self) -> &Self::Target {
        self.store.as_ref()
    }
}

async fn sqlite_file() -> Option<Fixture> {
    let dir = TempDir::new("msg_store");
    Some(Fixture {
        store: dir.sqlite_store().await,
        _dir: Some(dir),
        _cleanup: Cleanup::none(),
    })
}

async fn sqlite_in_memory() -> Option<Fixture> {
    let store = SqliteMessageStore::open("sqlite::memory:").await.unwrap();
    Some(Fixture {
        store: Arc::new(store),
        _dir: None,
        _cleanup: Cleanup::none(),
    })
}

async fn mongodb() -> Option<Fixture> {
    let db = MongoDb::create().await?;
    // Creating the indexes again is a no-op.
    db.store.ensure_indexes().await.unwrap();
    Some(Fixture {
        store: db.arc(),
        _dir: None,
        _cleanup: db.cleanup(),
    })
}

test_support::conformance! {
    cases: conformance,
    backends: { sqlite_file => sqlite_file(), sqlite_in_memory => sqlite_in_memory(), mongodb => mongodb() },
    tests: [
        the_store_answers,
        a_created_chat_reads_back_with_its_profiles,
        creating_a_chat_is_idempotent_per_match,
        a_chat_between_blocked_users_is_refused,
        appends_get_consecutive_seqs_and_resends_return_the_original,
        only_participants_append_and_unknown_chats_are_not_found,
        ending_is_idempotent_and_stops_appends_but_not_resends,
        history_reads_after_before_and_by_id,
        watermarks_are_clamped_monotonic_and_read_implies_delivered,
        marks_tell_when_each_seq_was_reached,
        digests_of_a_page_agree_with_each_chat_read_alone,
        unread_counts_only_others_messages,
        a_users_chats_list_newest_first,
        blocks_are_idempotent_and_seen_from_both_sides,
        reports_are_stored_and_counted_per_reporter,
        reports_are_reviewed_oldest_first_and_resolved_once,
        reporters_of_a_user_count_each_once_within_the_window_unless_dismissed,
        concurrent_appends_get_dense_seqs,
        one_client_msg_id_sent_at_once_is_stored_once,
    ],
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

/// A MongoDB that accepted the connection and then stopped answering fails each operation
/// as unavailable once the operation timeout has passed, instead of holding it forever.
#[tokio::test]
async fn mongodb_operations_fail_within_their_deadline_when_the_server_goes_silent() {
    let Some(url) = test_support::backend_url("MONGODB_URL") else {
        return;
    };
    let host = url
        .trim_start_matches("mongodb://")
        .split(['/', '?'])
        .next()
        .expect("a host in MONGODB_URL");
    let upstream = tokio::net::lookup_host(host)
        .await
        .expect("resolve MONGODB_URL")
        .next()
        .expect("an address for MONGODB_URL");
    let (proxy, freezer) = test_support::proxy::freezable_proxy(upstream).await;
    let store = MongoMessageStore::connect(
        &format!("mongodb://{proxy}/?directConnection=true"),
        &test_support::unique_name("rc_msg_deadline"),
    )
    .await
    .expect("MongoDB client")
    .with_operation_timeout(std::time::Duration::from_secs(1));
    store.ping().await.expect("answers through the proxy");
    freezer.freeze();
    let answer = tokio::time::timeout(
        std::time::Duration::from_secs(60),
        store.chat(uuid::Uuid::new_v4()),
    )
    .await
    .expect("the operation timeout ends the wait, not this guard");
    assert!(
        matches!(answer, Err(StoreError::Unavailable(_))),
        "{answer:?}"
    );
}
