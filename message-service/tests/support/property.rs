//! The interleaving property: batches of appends, resends and watermark updates run
//! concurrently against one chat never give a gap, a duplicate, a second message for a
//! resend, or a watermark or message status that moves backwards.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use message_service::store::commit::{DEFAULT_MAX_BATCH, GroupCommitter};
use message_service::store::conformance;
use message_service::store::{MessageStore, NewMessage, now};
use message_service::view::message_views;
use proptest::prelude::*;
use proptest::test_runner::{Config, TestCaseError, TestRunner};
use tokio::runtime::Runtime;
use uuid::Uuid;
use wire::api::message::{DeliveryState, MessageStatus, Watermark};

/// One step of a case.
#[derive(Debug, Clone)]
pub enum Op {
    /// Participant `sender` appends client message id `c{client}`: a resend when the
    /// sender used it before (the text may differ; the original must come back).
    Append { sender: usize, client: u8, text: u8 },
    /// Participant `user` reports delivered / read up to these seqs (possibly past the
    /// end or behind the current watermark).
    Mark {
        user: usize,
        delivered: Option<u64>,
        read: Option<u64>,
    },
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        3 => (0..2usize, 0..6u8, any::<u8>())
            .prop_map(|(sender, client, text)| Op::Append { sender, client, text }),
        2 => (
            0..2usize,
            proptest::option::of(0..16u64),
            proptest::option::of(0..16u64),
        )
            .prop_map(|(user, delivered, read)| Op::Mark { user, delivered, read }),
    ]
}

/// Batches of operations; the operations of one batch run concurrently.
fn batches() -> impl Strategy<Value = Vec<Vec<Op>>> {
    proptest::collection::vec(proptest::collection::vec(op(), 1..6), 1..8)
}

/// A runtime with real parallelism, so a batch's operations race.
pub fn runtime() -> Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio runtime")
}

/// Runs `cases` random cases on `store`, each on a chat of its own; panics with the
/// (shrunk) failing case.
pub fn check_interleavings(runtime: &Runtime, store: Arc<dyn MessageStore>, cases: u32) {
    run_interleavings(runtime, store, None, cases);
}

/// [`check_interleavings`] with every append sent through a group committer on `store`,
/// as the service sends them, so that concurrent appends share batches.
pub fn check_interleavings_through_committer(
    runtime: &Runtime,
    store: Arc<dyn MessageStore>,
    cases: u32,
) {
    let committer = {
        let _context = runtime.enter();
        GroupCommitter::spawn(store.clone(), DEFAULT_MAX_BATCH)
    };
    run_interleavings(runtime, store, Some(committer), cases);
}

fn run_interleavings(
    runtime: &Runtime,
    store: Arc<dyn MessageStore>,
    committer: Option<GroupCommitter>,
    cases: u32,
) {
    let mut runner = TestRunner::new(Config {
        cases,
        failure_persistence: None,
        ..Config::default()
    });
    let result = runner.run(&batches(), |batches| {
        runtime.block_on(run_case(store.clone(), committer.clone(), batches))
    });
    if let Err(err) = result {
        panic!("{err}");
    }
}

fn fail(what: &str) -> impl Fn(message_service::store::StoreError) -> TestCaseError + '_ {
    move |err| TestCaseError::fail(format!("{what}: {err}"))
}

enum Outcome {
    Appended(message_service::store::Written<wire::api::message::Message>),
    Marked(Watermark),
}

async fn apply(
    store: Arc<dyn MessageStore>,
    committer: Option<GroupCommitter>,
    chat_id: Uuid,
    users: [Uuid; 2],
    op: Op,
) -> Result<Outcome, TestCaseError> {
    match op {
        Op::Append {
            sender,
            client,
            text,
        } => {
            let message = NewMessage {
                id: Uuid::now_v7(),
                chat_id,
                sender_id: users[sender],
                client_msg_id: format!("c{client}"),
                text: format!("text {client} variant {text}"),
                created_at: now(),
            };
            let written = match committer {
                Some(committer) => committer.append(message).await,
                None => store.append(&message).await,
            }
            .map_err(fail("append"))?;
            Ok(Outcome::Appended(written))
        }
        Op::Mark {
            user,
            delivered,
            read,
        } => {
            let watermark = store
                .advance_watermark(chat_id, users[user], delivered, read, now())
                .await
                .map_err(fail("advance watermark"))?;
            Ok(Outcome::Marked(watermark))
        }
    }
}

/// What an append of (sender, client) must keep answering.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Original {
    id: Uuid,
    seq: u64,
    text: String,
}

async fn run_case(
    store: Arc<dyn MessageStore>,
    committer: Option<GroupCommitter>,
    batches: Vec<Vec<Op>>,
) -> Result<(), TestCaseError> {
    let users = [Uuid::new_v4(), Uuid::new_v4()];
    let chat_id = conformance::new_chat(store.as_ref(), &users).await.chat.id;
    let mut originals: HashMap<(usize, u8), Original> = HashMap::new();
    let mut creators: HashMap<(usize, u8), usize> = HashMap::new();
    // Per user: (delivered, read) as last seen.
    let mut seen_marks = [(0u64, 0u64); 2];
    // Per (viewer, seq): the status as last seen.
    let mut seen_status: HashMap<(Uuid, u64), MessageStatus> = HashMap::new();

    for batch in batches {
        let last_before = store
            .chat(chat_id)
            .await
            .map_err(fail("chat"))?
            .expect("the chat exists")
            .chat
            .last_seq;
        let tasks: Vec<_> = batch
            .iter()
            .cloned()
            .map(|op| tokio::spawn(apply(store.clone(), committer.clone(), chat_id, users, op)))
            .collect();
        let mut answers = Vec::with_capacity(tasks.len());
        for task in tasks {
            let outcome = task
                .await
                .map_err(|e| TestCaseError::fail(format!("task: {e}")))??;
            answers.push(outcome);
        }

        // Every answer on its own.
        for (op, outcome) in batch.iter().zip(&answers) {
            match (op, outcome) {
                (Op::Append { sender, client, .. }, Outcome::Appended(written)) => {
                    let key = (*sender, *client);
                    let message = &written.value;
                    prop_assert_eq!(message.sender_id, users[*sender]);
                    prop_assert_eq!(&message.client_msg_id, &format!("c{client}"));
                    prop_assert!(message.seq >= 1);
                    if written.created {
                        *creators.entry(key).or_default() += 1;
                    }
                    let answered = Original {
                        id: message.id,
                        seq: message.seq,
                        text: message.text.clone(),
                    };
                    let original = originals.entry(key).or_insert_with(|| answered.clone());
                    prop_assert_eq!(
                        &answered,
                        original,
                        "a resend must answer the original message"
                    );
                }
                (
                    Op::Mark {
                        user,
                        delivered,
                        read,
                    },
                    Outcome::Marked(w),
                ) => {
                    // The last seq only grows, so targets computed from the one before
                    // the batch are lower bounds of what the update must reach.
                    let read_target = read.unwrap_or(0).min(last_before);
                    let delivered_target = delivered.unwrap_or(0).min(last_before).max(read_target);
                    let (d0, r0) = seen_marks[*user];
                    prop_assert!(w.read_seq <= w.delivered_seq, "read ≤ delivered: {:?}", w);
                    prop_assert!(w.delivered_seq >= d0.max(delivered_target), "{:?}", w);
                    prop_assert!(w.read_seq >= r0.max(read_target), "{:?}", w);
                }
                _ => prop_assert!(false, "an answer of the wrong kind"),
            }
        }
        for (key, count) in &creators {
            prop_assert_eq!(*count, 1, "{:?} was created more than once", key);
        }

        // The stored state after the batch.
        let chat = store
            .chat(chat_id)
            .await
            .map_err(fail("chat"))?
            .expect("the chat exists");
        let messages = store
            .messages_after(chat_id, 0, 1000)
            .await
            .map_err(fail("messages"))?;
        let seqs: Vec<u64> = messages.iter().map(|m| m.seq).collect();
        let dense: Vec<u64> = (1..=originals.len() as u64).collect();
        prop_assert_eq!(&seqs, &dense, "one message per client id, without gaps");
        prop_assert_eq!(chat.chat.last_seq, originals.len() as u64);
        let keys: HashSet<(Uuid, &str)> = messages
            .iter()
            .map(|m| (m.sender_id, m.client_msg_id.as_str()))
            .collect();
        prop_assert_eq!(keys.len(), messages.len(), "a duplicate client id");
        for ((sender, client), original) in &originals {
            let stored = &messages[(original.seq - 1) as usize];
            prop_assert_eq!(stored.id, original.id);
            prop_assert_eq!(stored.sender_id, users[*sender]);
            prop_assert_eq!(&stored.client_msg_id, &format!("c{client}"));
            prop_assert_eq!(&stored.text, &original.text);
        }

        let watermarks = store
            .watermarks(chat_id)
            .await
            .map_err(fail("watermarks"))?;
        prop_assert_eq!(watermarks.len(), 2);
        for (i, w) in watermarks.iter().enumerate() {
            prop_assert_eq!(w.user_id, users[i]);
            prop_assert!(w.read_seq <= w.delivered_seq && w.delivered_seq <= chat.chat.last_seq);
            let (d0, r0) = seen_marks[i];
            prop_assert!(
                w.delivered_seq >= d0 && w.read_seq >= r0,
                "moved back: {:?}",
                w
            );
            prop_assert_eq!(w.delivered_at.is_some(), w.delivered_seq > 0);
            prop_assert_eq!(w.read_at.is_some(), w.read_seq > 0);
            seen_marks[i] = (w.delivered_seq, w.read_seq);
        }

        for (v, viewer) in users.iter().enumerate() {
            let partner = &watermarks[1 - v];
            let mine = &watermarks[v];
            let views = message_views(store.as_ref(), &chat, *viewer, messages.clone())
                .await
                .map_err(|e| TestCaseError::fail(format!("views: {e}")))?;
            prop_assert_eq!(views.len(), messages.len());
            for view in views {
                let seq = view.message.seq;
                // Whose progress the status shows: the partner's for my messages, mine
                // for theirs.
                let progress = if view.message.sender_id == *viewer {
                    partner
                } else {
                    mine
                };
                let expected = if progress.read_seq >= seq {
                    DeliveryState::Read
                } else if progress.delivered_seq >= seq {
                    DeliveryState::Delivered
                } else {
                    DeliveryState::Sent
                };
                let status = view.status;
                prop_assert_eq!(status.state, expected, "seq {} seen by {}", seq, v);
                prop_assert_eq!(
                    status.delivered_at.is_some(),
                    expected >= DeliveryState::Delivered
                );
                prop_assert_eq!(status.read_at.is_some(), expected == DeliveryState::Read);
                if let Some(before) = seen_status.get(&(*viewer, seq)) {
                    prop_assert!(status.state >= before.state, "status moved back");
                    if before.delivered_at.is_some() {
                        prop_assert_eq!(status.delivered_at, before.delivered_at);
                    }
                    if before.read_at.is_some() {
                        prop_assert_eq!(status.read_at, before.read_at);
                    }
                }
                seen_status.insert((*viewer, seq), status);
            }
        }
    }
    Ok(())
}
