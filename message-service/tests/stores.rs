//! The store conformance suite (one test per case and backend), the one-client-message-id
//! stampede across two instances, the interleaving property (straight to the store and
//! through the group committer) and the group committer's batching and failure handling
//! on every backend: SQLite (a temporary file) and the in-memory store always, MongoDB
//! when `MONGODB_URL` is set (each test on a fresh database, dropped afterwards, also when
//! it panics).

mod support;

use std::collections::HashMap;
use std::ops::Deref;
use std::sync::Arc;
use std::time::Duration;

use message_service::store::commit::GroupCommitter;
use message_service::store::conformance::{self, message, new_chat};
use message_service::store::memory::MemoryMessageStore;
use message_service::store::mongo::MongoMessageStore;
use message_service::store::{MessageStore, NewMessage, StoreError, Written};
use support::controlled::Controlled;
use support::{MongoDb, TempDir, property};
use test_support::Cleanup;
use uuid::Uuid;
use wire::api::message::Message;

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

async fn memory() -> Option<Fixture> {
    Some(Fixture {
        store: Arc::new(MemoryMessageStore::new()),
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
    backends: { sqlite_file => sqlite_file(), memory => memory(), mongodb => mongodb() },
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
        a_batch_gets_dense_seqs_per_chat_in_item_order,
        a_resend_within_a_batch_or_across_batches_returns_the_original,
        a_large_batch_across_many_chats_keeps_seqs_and_resends,
        a_refused_item_of_a_batch_refuses_only_itself,
        an_ended_chat_refuses_its_new_items_of_a_batch_but_not_resends,
        concurrent_batches_get_dense_seqs,
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn memory_a_thousand_concurrent_resends_store_one_message() {
    let store: Arc<dyn MessageStore> = Arc::new(MemoryMessageStore::new());
    let stores = [store.clone(), store];
    let outcome = conformance::same_client_msg_id_across(&stores, STAMPEDE).await;
    assert_eq!(outcome.answers.len(), STAMPEDE);
    conformance::assert_one_message(&outcome);
}

#[test]
fn memory_interleavings_keep_seqs_dense_and_status_monotonic() {
    let runtime = property::runtime();
    property::check_interleavings(&runtime, Arc::new(MemoryMessageStore::new()), 64);
}

#[test]
fn memory_interleavings_through_the_committer_keep_seqs_dense_and_status_monotonic() {
    let runtime = property::runtime();
    property::check_interleavings_through_committer(
        &runtime,
        Arc::new(MemoryMessageStore::new()),
        64,
    );
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

#[test]
fn sqlite_interleavings_through_the_committer_keep_seqs_dense_and_status_monotonic() {
    let runtime = property::runtime();
    let dir = TempDir::new("msg_prop_commit");
    let store: Arc<dyn MessageStore> = runtime.block_on(dir.sqlite_store());
    property::check_interleavings_through_committer(&runtime, store, 64);
}

#[test]
fn mongodb_interleavings_through_the_committer_keep_seqs_dense_and_status_monotonic() {
    let runtime = property::runtime();
    let Some(db) = runtime.block_on(MongoDb::create()) else {
        return;
    };
    property::check_interleavings_through_committer(&runtime, db.arc(), 8);
    runtime.block_on(db.drop());
}

/// Waits (yielding, never sleeping) until `reached` holds; fails after a generous guard.
async fn until(what: &str, reached: impl Fn() -> bool) {
    let waited = tokio::time::timeout(Duration::from_secs(60), async {
        while !reached() {
            tokio::task::yield_now().await;
        }
    })
    .await;
    assert!(waited.is_ok(), "never reached: {what}");
}

/// Starts `messages` as concurrent single appends through `committer`.
fn send_each(
    committer: &GroupCommitter,
    messages: &[NewMessage],
) -> Vec<tokio::task::JoinHandle<Result<Written<Message>, StoreError>>> {
    messages
        .iter()
        .cloned()
        .map(|m| {
            let committer = committer.clone();
            tokio::spawn(async move { committer.append(m).await })
        })
        .collect()
}

async fn answers(
    tasks: Vec<tokio::task::JoinHandle<Result<Written<Message>, StoreError>>>,
) -> Vec<Result<Written<Message>, StoreError>> {
    let mut out = Vec::with_capacity(tasks.len());
    for task in tasks {
        out.push(task.await.expect("append task"));
    }
    out
}

/// The seqs of `chat` as stored, ascending.
async fn stored_seqs(store: &dyn MessageStore, chat: Uuid) -> Vec<u64> {
    let messages = store.messages_after(chat, 0, 1000).await.unwrap();
    messages.iter().map(|m| m.seq).collect()
}

/// Appends arriving while a commit runs are committed together in the next batch: all of
/// them are answered as stored, with dense seqs per chat, and the committer's counters
/// show the shared batch (the batch in flight is held at a gate, so the test does not
/// depend on timing).
async fn appends_queued_during_a_commit_share_the_next_batch(store: Arc<dyn MessageStore>) {
    const SENDERS: usize = 100;
    let controlled = Controlled::new(store.clone());
    let committer = GroupCommitter::spawn(controlled.clone(), 256);
    let [a, b] = [Uuid::new_v4(), Uuid::new_v4()];
    let chats = [
        new_chat(store.as_ref(), &[a, b]).await.chat.id,
        new_chat(store.as_ref(), &[a, b]).await.chat.id,
    ];
    controlled.hold();
    let opener = send_each(&committer, &[message(chats[0], a, "opener")]);
    until("the first batch at the gate", || {
        controlled.sizes().len() == 1
    })
    .await;
    let queued: Vec<NewMessage> = (0..SENDERS)
        .map(|i| {
            let sender = if i % 4 < 2 { a } else { b };
            message(chats[i % 2], sender, &format!("m{i}"))
        })
        .collect();
    let tasks = send_each(&committer, &queued);
    until("every sender queued", || committer.queued() == SENDERS).await;
    controlled.let_through(2);

    let opened = answers(opener).await.pop().unwrap().expect("stored");
    assert!(opened.created);
    assert_eq!(opened.value.seq, 1);
    let mut seqs: HashMap<Uuid, Vec<u64>> = HashMap::new();
    for (sent, answer) in queued.iter().zip(answers(tasks).await) {
        let written = answer.expect("stored");
        assert!(written.created);
        assert_eq!(written.value.id, sent.id);
        seqs.entry(sent.chat_id)
            .or_default()
            .push(written.value.seq);
    }
    assert_eq!(
        controlled.sizes(),
        vec![1, SENDERS],
        "the queued ones shared a batch"
    );
    let stats = committer.stats();
    assert_eq!(stats.batches, 2);
    assert_eq!(stats.messages, SENDERS as u64 + 1);
    assert_eq!(stats.largest_batch, SENDERS as u64);
    assert_eq!(stats.failed, 0);
    for (chat, first) in [(chats[0], 2u64), (chats[1], 1)] {
        let mut got = seqs.remove(&chat).unwrap();
        got.sort_unstable();
        let dense: Vec<u64> = (first..=SENDERS as u64 / 2 + first - 1).collect();
        assert_eq!(got, dense);
        assert_eq!(
            stored_seqs(store.as_ref(), chat).await,
            (1..=SENDERS as u64 / 2 + first - 1).collect::<Vec<_>>()
        );
    }
}

/// Holds the committer at the gate on a batch of one ("opener"), queues `doomed` behind
/// it as `singles` single appends plus one request of the rest, lets the opener commit,
/// then runs the doomed batch after `arm` (which makes it fail) and returns its answers.
async fn run_doomed_batch(
    controlled: &Controlled,
    committer: &GroupCommitter,
    opener: NewMessage,
    doomed: &[NewMessage],
    singles: usize,
    arm: impl FnOnce(),
) -> Vec<Result<Written<Message>, StoreError>> {
    controlled.hold();
    let before = controlled.sizes().len();
    let opener = send_each(committer, &[opener]);
    until("the opener at the gate", || {
        controlled.sizes().len() == before + 1
    })
    .await;
    let tasks = send_each(committer, &doomed[..singles]);
    let together = {
        let committer = committer.clone();
        let rest = doomed[singles..].to_vec();
        tokio::spawn(async move { committer.append_all(rest).await })
    };
    until("the doomed batch queued", || {
        committer.queued() == singles + 1
    })
    .await;
    controlled.let_through(1);
    let opened = answers(opener)
        .await
        .pop()
        .unwrap()
        .expect("the opener is stored");
    assert!(opened.created);
    until("the doomed batch at the gate", || {
        controlled.sizes().len() == before + 2
    })
    .await;
    assert_eq!(controlled.sizes()[before + 1], doomed.len(), "one batch");
    arm();
    controlled.let_through(1);
    let mut out = answers(tasks).await;
    match together.await.expect("batch task") {
        Ok(outcomes) => out.extend(outcomes),
        Err(err) => out.extend(doomed[singles..].iter().map(|_| Err(err.clone()))),
    }
    out
}

/// After a failed batch: nobody of it was answered as stored, everything acknowledged
/// before is still there and nothing of the batch is, and sending the failed messages
/// again (same client ids) stores each exactly once.
async fn assert_failed_batch_lost_nothing_acked(
    store: &dyn MessageStore,
    committer: &GroupCommitter,
    chat: Uuid,
    acked: &[Message],
    doomed: &[NewMessage],
    failed: Vec<Result<Written<Message>, StoreError>>,
) {
    assert_eq!(failed.len(), doomed.len());
    for answer in &failed {
        assert!(
            answer.is_err(),
            "a sender of the failed batch was acked: {answer:?}"
        );
    }
    assert_eq!(committer.stats().failed, 1);
    assert_eq!(
        store.messages_after(chat, 0, 1000).await.unwrap(),
        acked,
        "everything acked before is stored, nothing of the failed batch is"
    );
    assert_eq!(
        store.chat(chat).await.unwrap().unwrap().chat.last_seq,
        acked.len() as u64
    );

    let retried = committer.append_all(doomed.to_vec()).await.expect("retry");
    let mut seqs = Vec::new();
    for (sent, outcome) in doomed.iter().zip(retried) {
        let written = outcome.expect("stored on retry");
        assert!(written.created, "stored by the retry, not before");
        assert_eq!(written.value.client_msg_id, sent.client_msg_id);
        seqs.push(written.value.seq);
    }
    let next = acked.len() as u64 + 1;
    assert_eq!(seqs, (next..next + doomed.len() as u64).collect::<Vec<_>>());
    let again = answers(send_each(committer, doomed)).await;
    for (seq, answer) in seqs.iter().zip(again) {
        let written = answer.expect("resend");
        assert!(!written.created, "stored exactly once");
        assert_eq!(written.value.seq, *seq);
    }
    assert_eq!(
        stored_seqs(store, chat).await,
        (1..next + doomed.len() as u64).collect::<Vec<_>>()
    );
}

/// A batch whose commit fails (injected in front of the store) answers every sender of
/// it with the error and stores nothing of it; acked messages stay; a retry stores once.
async fn a_batch_that_fails_to_commit_acks_nobody(store: Arc<dyn MessageStore>) {
    let controlled = Controlled::new(store.clone());
    let committer = GroupCommitter::spawn(controlled.clone(), 256);
    let [a, b] = [Uuid::new_v4(), Uuid::new_v4()];
    let chat = new_chat(store.as_ref(), &[a, b]).await.chat.id;
    let mut acked = Vec::new();
    for i in 0..5 {
        let written = committer.append(message(chat, a, &format!("ok{i}"))).await;
        acked.push(written.expect("stored").value);
    }
    let doomed: Vec<NewMessage> = (0..8)
        .map(|i| message(chat, if i % 2 == 0 { a } else { b }, &format!("doomed{i}")))
        .collect();
    let failed = run_doomed_batch(
        &controlled,
        &committer,
        message(chat, b, "opener"),
        &doomed,
        5,
        || controlled.fail_next_batch(),
    )
    .await;
    acked.push(store.messages_after(chat, 5, 1).await.unwrap().remove(0));
    assert_eq!(acked[5].client_msg_id, "opener");
    controlled.open();
    assert_failed_batch_lost_nothing_acked(
        store.as_ref(),
        &committer,
        chat,
        &acked,
        &doomed,
        failed,
    )
    .await;
}

#[tokio::test]
async fn sqlite_appends_queued_during_a_commit_share_the_next_batch() {
    let fixture = sqlite_file().await.expect("SQLite");
    appends_queued_during_a_commit_share_the_next_batch(fixture.store.clone()).await;
}

#[tokio::test]
async fn mongodb_appends_queued_during_a_commit_share_the_next_batch() {
    let Some(fixture) = mongodb().await else {
        return;
    };
    appends_queued_during_a_commit_share_the_next_batch(fixture.store.clone()).await;
}

#[tokio::test]
async fn memory_appends_queued_during_a_commit_share_the_next_batch() {
    let fixture = memory().await.expect("memory");
    appends_queued_during_a_commit_share_the_next_batch(fixture.store.clone()).await;
}

#[tokio::test]
async fn memory_a_batch_that_fails_to_commit_acks_nobody() {
    let fixture = memory().await.expect("memory");
    a_batch_that_fails_to_commit_acks_nobody(fixture.store.clone()).await;
}

/// A batch of the in-memory store that fails part-way (its third item reuses a stored
/// message's id) stores nothing of it, not even the items before the failing one; the
/// retry with a fresh id stores each message once.
#[tokio::test]
async fn memory_a_batch_failing_part_way_stores_nothing_of_it() {
    let store = MemoryMessageStore::new();
    let [a, b] = [Uuid::new_v4(), Uuid::new_v4()];
    let chat = new_chat(&store, &[a, b]).await.chat.id;
    let first = store
        .append(&message(chat, a, "first"))
        .await
        .unwrap()
        .value;
    let mut batch = vec![
        message(chat, a, "x1"),
        message(chat, b, "x2"),
        message(chat, a, "x3"),
    ];
    batch[2].id = first.id;
    let failed = store.append_batch(&batch).await;
    assert!(matches!(failed, Err(StoreError::Backend(_))), "{failed:?}");
    assert_eq!(stored_seqs(&store, chat).await, vec![1]);
    assert_eq!(store.chat(chat).await.unwrap().unwrap().chat.last_seq, 1);
    batch[2].id = Uuid::new_v4();
    let outcomes = store.append_batch(&batch).await.unwrap();
    let seqs: Vec<u64> = outcomes
        .into_iter()
        .map(|o| {
            let written = o.unwrap();
            assert!(written.created);
            written.value.seq
        })
        .collect();
    assert_eq!(seqs, vec![2, 3, 4]);
    assert_eq!(stored_seqs(&store, chat).await, vec![1, 2, 3, 4]);
}

#[tokio::test]
async fn sqlite_a_batch_that_fails_to_commit_acks_nobody() {
    let fixture = sqlite_file().await.expect("SQLite");
    a_batch_that_fails_to_commit_acks_nobody(fixture.store.clone()).await;
}

#[tokio::test]
async fn mongodb_a_batch_that_fails_to_commit_acks_nobody() {
    let Some(fixture) = mongodb().await else {
        return;
    };
    a_batch_that_fails_to_commit_acks_nobody(fixture.store.clone()).await;
}

/// A batch that fails inside its SQLite transaction, after some of its messages were
/// inserted (a trigger refuses one message of the batch), is rolled back whole: nobody of
/// it is acked, nothing of it is stored, earlier messages stay, and a retry once the cause
/// is gone stores each message once.
#[tokio::test]
async fn sqlite_a_batch_failing_inside_its_transaction_is_rolled_back_whole() {
    let dir = TempDir::new("msg_commit_fail");
    let store = dir.sqlite_store().await;
    let admin = message_service::store::sqlite::connect(&dir.sqlite_url())
        .await
        .expect("a second pool on the file");
    let controlled = Controlled::new(store.clone());
    let committer = GroupCommitter::spawn(controlled.clone(), 256);
    let [a, b] = [Uuid::new_v4(), Uuid::new_v4()];
    let chat = new_chat(store.as_ref(), &[a, b]).await.chat.id;
    let mut acked = Vec::new();
    for i in 0..3 {
        let written = committer.append(message(chat, b, &format!("ok{i}"))).await;
        acked.push(written.expect("stored").value);
    }
    let mut doomed: Vec<NewMessage> = (0..6)
        .map(|i| message(chat, if i % 2 == 0 { a } else { b }, &format!("doomed{i}")))
        .collect();
    // In the middle of the request, so that the messages before it are inserted first.
    doomed[4].text = "poison".to_owned();
    sqlx::query(
        "CREATE TRIGGER refuse_poison BEFORE INSERT ON messages WHEN NEW.text = 'poison' \
         BEGIN SELECT RAISE(ABORT, 'injected failure'); END",
    )
    .execute(&admin)
    .await
    .expect("create the trigger");
    let failed = run_doomed_batch(
        &controlled,
        &committer,
        message(chat, a, "opener"),
        &doomed,
        2,
        || {},
    )
    .await;
    acked.push(store.messages_after(chat, 3, 1).await.unwrap().remove(0));
    assert_eq!(acked[3].client_msg_id, "opener");
    sqlx::query("DROP TRIGGER refuse_poison")
        .execute(&admin)
        .await
        .expect("drop the trigger");
    controlled.open();
    assert_failed_batch_lost_nothing_acked(
        store.as_ref(),
        &committer,
        chat,
        &acked,
        &doomed,
        failed,
    )
    .await;
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
