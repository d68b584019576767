//! The one behaviour suite every [`MessageStore`] must pass, so that the embedded backend
//! and MongoDB are proven to behave the same: one `pub async fn` per case, on a fresh
//! database, which `tests/stores.rs` runs on every backend through
//! `test_support::conformance!`. The stampede helpers are shared with the tests of two
//! instances on one database.

use std::collections::HashSet;
use std::sync::Arc;

use time::Duration;
use uuid::Uuid;
use wire::api::auth::PublicProfile;
use wire::api::message::{Message, Report, ReportOutcome, ReportResolution};
use wire::domain::Gender;

use super::{ChatCursor, MarkKind, MessageStore, NewChat, NewMessage, StoreError, StoredChat, now};

/// Concurrent appends wait for each other per chat; how many one case sends at once.
const CONCURRENT: usize = 40;

/// The store answers.
pub async fn the_store_answers(store: &dyn MessageStore) {
    store.ping().await.expect("ping");
}

/// Appends with distinct client ids at once, from both participants, get exactly the
/// seqs `1..=n`.
pub async fn concurrent_appends_get_dense_seqs(store: &dyn MessageStore) {
    let [a, b] = [Uuid::new_v4(), Uuid::new_v4()];
    let chat = new_chat(store, &[a, b]).await.chat;
    let sends = (0..CONCURRENT).map(|i| {
        let sender = if i % 2 == 0 { a } else { b };
        let new = message(chat.id, sender, &format!("p{i}"));
        async move { store.append(&new).await }
    });
    let mut seqs: Vec<u64> = futures::future::join_all(sends)
        .await
        .into_iter()
        .map(|written| {
            let written = written.expect("append");
            assert!(written.created);
            written.value.seq
        })
        .collect();
    seqs.sort_unstable();
    let dense: Vec<u64> = (1..=CONCURRENT as u64).collect();
    assert_eq!(seqs, dense);
    let stored = store
        .messages_after(chat.id, 0, CONCURRENT as u32 + 10)
        .await
        .unwrap();
    assert_eq!(stored.iter().map(|m| m.seq).collect::<Vec<_>>(), dense);
    assert_eq!(
        store.chat(chat.id).await.unwrap().unwrap().chat.last_seq,
        CONCURRENT as u64
    );
}

/// Appends of one client message id at once store one message, which every caller gets.
pub async fn one_client_msg_id_sent_at_once_is_stored_once(store: &dyn MessageStore) {
    let [a, b] = [Uuid::new_v4(), Uuid::new_v4()];
    let chat = new_chat(store, &[a, b]).await.chat;
    let same = message(chat.id, a, "same");
    let sends = (0..CONCURRENT).map(|_| store.append(&same));
    let answers = futures::future::join_all(sends)
        .await
        .into_iter()
        .map(|written| {
            let written = written.expect("append");
            (written.value, written.created)
        })
        .collect();
    assert_one_message(&SameIdOutcome {
        answers,
        stored: store.messages_after(chat.id, 0, 1000).await.unwrap(),
        last_seq: store.chat(chat.id).await.unwrap().unwrap().chat.last_seq,
    });
}

/// A public profile for user `id`.
pub fn profile(id: Uuid) -> PublicProfile {
    PublicProfile {
        id,
        display_name: format!("User {}", &id.simple().to_string()[..6]),
        gender: Gender::Other,
        age: 30,
        interests: vec!["rust".to_owned(), "chess".to_owned()],
    }
}

/// Creates a chat between `users` (fresh match id).
pub async fn new_chat(store: &dyn MessageStore, users: &[Uuid]) -> StoredChat {
    store
        .create_chat(&NewChat {
            id: Uuid::now_v7(),
            match_id: Uuid::new_v4(),
            participants: users.iter().copied().map(profile).collect(),
            created_at: now(),
        })
        .await
        .expect("create chat")
        .value
}

/// A message from `sender` with client id `client_msg_id`.
pub fn message(chat_id: Uuid, sender_id: Uuid, client_msg_id: &str) -> NewMessage {
    NewMessage {
        id: Uuid::now_v7(),
        chat_id,
        sender_id,
        client_msg_id: client_msg_id.to_owned(),
        text: format!("hello from {client_msg_id}"),
        created_at: now(),
    }
}

fn users(n: usize) -> Vec<Uuid> {
    (0..n).map(|_| Uuid::new_v4()).collect()
}

pub async fn a_created_chat_reads_back_with_its_profiles(store: &dyn MessageStore) {
    let [a, b] = [Uuid::new_v4(), Uuid::new_v4()];
    let chat = new_chat(store, &[a, b]).await;
    assert_eq!(chat.chat.participants, vec![a, b]);
    assert_eq!(chat.profiles, vec![profile(a), profile(b)]);
    assert_eq!(chat.chat.last_seq, 0);
    assert_eq!(chat.chat.ended_at, None);
    let read = store.chat(chat.chat.id).await.unwrap().expect("stored");
    assert_eq!(read, chat);
    assert_eq!(store.chat(Uuid::new_v4()).await.unwrap(), None);
    let marks = store.watermarks(chat.chat.id).await.unwrap();
    assert_eq!(
        marks.iter().map(|w| w.user_id).collect::<Vec<_>>(),
        vec![a, b]
    );
    assert!(
        marks
            .iter()
            .all(|w| w.delivered_seq == 0 && w.read_seq == 0)
    );
}

pub async fn creating_a_chat_is_idempotent_per_match(store: &dyn MessageStore) {
    let group = users(3);
    let new = NewChat {
        id: Uuid::now_v7(),
        match_id: Uuid::new_v4(),
        participants: group.iter().copied().map(profile).collect(),
        created_at: now(),
    };
    let first = store.create_chat(&new).await.unwrap();
    assert!(first.created);
    assert_eq!(first.value.chat.participants.len(), 3, "not only pairs");
    let again = store
        .create_chat(&NewChat {
            id: Uuid::now_v7(),
            ..new.clone()
        })
        .await
        .unwrap();
    assert!(!again.created);
    assert_eq!(again.value, first.value);
}

pub async fn a_chat_between_blocked_users_is_refused(store: &dyn MessageStore) {
    let [a, b] = [Uuid::new_v4(), Uuid::new_v4()];
    store.block(b, a, now()).await.unwrap();
    for pair in [[a, b], [b, a]] {
        let refused = store
            .create_chat(&NewChat {
                id: Uuid::now_v7(),
                match_id: Uuid::new_v4(),
                participants: pair.iter().copied().map(profile).collect(),
                created_at: now(),
            })
            .await;
        assert!(matches!(refused, Err(StoreError::Blocked)), "{refused:?}");
    }
    assert!(store.chats_of(a, false, 10, None).await.unwrap().is_empty());
    assert!(store.unblock(b, a).await.unwrap());
    new_chat(store, &[a, b]).await;
}

pub async fn appends_get_consecutive_seqs_and_resends_return_the_original(
    store: &dyn MessageStore,
) {
    let [a, b] = [Uuid::new_v4(), Uuid::new_v4()];
    let chat = new_chat(store, &[a, b]).await.chat;
    let first = store.append(&message(chat.id, a, "m1")).await.unwrap();
    assert!(first.created);
    assert_eq!(first.value.seq, 1);
    let second = store.append(&message(chat.id, b, "m1")).await.unwrap();
    assert!(second.created, "client ids are per sender");
    assert_eq!(second.value.seq, 2);
    let mut resend = message(chat.id, a, "m1");
    resend.text = "different text".to_owned();
    let again = store.append(&resend).await.unwrap();
    assert!(!again.created);
    assert_eq!(again.value, first.value);
    let third = store.append(&message(chat.id, a, "m2")).await.unwrap();
    assert_eq!(third.value.seq, 3);
    assert_eq!(store.chat(chat.id).await.unwrap().unwrap().chat.last_seq, 3);
    let all = store.messages_after(chat.id, 0, 100).await.unwrap();
    assert_eq!(all, vec![first.value, second.value, third.value]);
}

pub async fn only_participants_append_and_unknown_chats_are_not_found(store: &dyn MessageStore) {
    let [a, b, stranger] = [Uuid::new_v4(), Uuid::new_v4(), Uuid::new_v4()];
    let chat = new_chat(store, &[a, b]).await.chat;
    let refused = store.append(&message(chat.id, stranger, "x")).await;
    assert!(
        matches!(refused, Err(StoreError::ChatNotFound)),
        "{refused:?}"
    );
    let refused = store.append(&message(Uuid::new_v4(), a, "x")).await;
    assert!(
        matches!(refused, Err(StoreError::ChatNotFound)),
        "{refused:?}"
    );
    let refused = store
        .advance_watermark(chat.id, stranger, Some(1), None, now())
        .await;
    assert!(
        matches!(refused, Err(StoreError::ChatNotFound)),
        "{refused:?}"
    );
    let refused = store.end_chat(chat.id, stranger, now()).await;
    assert!(
        matches!(refused, Err(StoreError::ChatNotFound)),
        "{refused:?}"
    );
    let refused = store.end_chat(Uuid::new_v4(), a, now()).await;
    assert!(
        matches!(refused, Err(StoreError::ChatNotFound)),
        "{refused:?}"
    );
    assert!(
        store
            .messages_after(chat.id, 0, 10)
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(
        store.chat(chat.id).await.unwrap().unwrap().chat.ended_at,
        None
    );
}

pub async fn ending_is_idempotent_and_stops_appends_but_not_resends(store: &dyn MessageStore) {
    let [a, b] = [Uuid::new_v4(), Uuid::new_v4()];
    let chat = new_chat(store, &[a, b]).await.chat;
    let sent = store.append(&message(chat.id, a, "before")).await.unwrap();
    let at = now();
    let ended = store.end_chat(chat.id, b, at).await.unwrap();
    assert!(ended.created);
    assert_eq!(ended.value.ended_at, Some(at));
    assert_eq!(ended.value.ended_by, Some(b));
    let later = store
        .end_chat(chat.id, a, at + Duration::seconds(5))
        .await
        .unwrap();
    assert!(!later.created);
    assert_eq!(later.value.ended_by, Some(b), "the first ender wins");
    assert_eq!(later.value.ended_at, Some(at));
    let refused = store.append(&message(chat.id, a, "after")).await;
    assert!(matches!(refused, Err(StoreError::ChatEnded)), "{refused:?}");
    let resend = store.append(&message(chat.id, a, "before")).await.unwrap();
    assert!(!resend.created);
    assert_eq!(resend.value, sent.value);
    assert_eq!(store.chat(chat.id).await.unwrap().unwrap().chat.last_seq, 1);
}

pub async fn history_reads_after_before_and_by_id(store: &dyn MessageStore) {
    let [a, b] = [Uuid::new_v4(), Uuid::new_v4()];
    let chat = new_chat(store, &[a, b]).await.chat;
    let mut sent = Vec::new();
    for i in 1..=7 {
        let sender = if i % 2 == 0 { b } else { a };
        let m = store
            .append(&message(chat.id, sender, &format!("c{i}")))
            .await
            .unwrap();
        sent.push(m.value);
    }
    let seqs = |ms: &[Message]| ms.iter().map(|m| m.seq).collect::<Vec<_>>();
    assert_eq!(
        seqs(&store.messages_after(chat.id, 2, 3).await.unwrap()),
        [3, 4, 5]
    );
    assert_eq!(
        seqs(&store.messages_after(chat.id, 6, 3).await.unwrap()),
        [7]
    );
    assert_eq!(
        seqs(&store.messages_before(chat.id, 6, 3).await.unwrap()),
        [3, 4, 5]
    );
    assert_eq!(
        seqs(&store.messages_before(chat.id, 3, 10).await.unwrap()),
        [1, 2]
    );
    assert_eq!(
        seqs(&store.messages_before(chat.id, u64::MAX, 2).await.unwrap()),
        [6, 7]
    );
    let other = new_chat(store, &[a, b]).await.chat;
    let elsewhere = store
        .append(&message(other.id, a, "c1"))
        .await
        .unwrap()
        .value;
    let found = store
        .messages_by_id(chat.id, &[sent[1].id, elsewhere.id, Uuid::new_v4()])
        .await
        .unwrap();
    assert_eq!(found, vec![sent[1].clone()]);
}

pub async fn watermarks_are_clamped_monotonic_and_read_implies_delivered(store: &dyn MessageStore) {
    let [a, b] = [Uuid::new_v4(), Uuid::new_v4()];
    let chat = new_chat(store, &[a, b]).await.chat;
    for i in 0..5 {
        store
            .append(&message(chat.id, a, &format!("w{i}")))
            .await
            .unwrap();
    }
    let t1 = now();
    let w = store
        .advance_watermark(chat.id, b, Some(99), None, t1)
        .await
        .unwrap();
    assert_eq!(
        (w.delivered_seq, w.read_seq),
        (5, 0),
        "clamped to the last seq"
    );
    assert_eq!(w.delivered_at, Some(t1));
    assert_eq!(w.read_at, None);
    let w = store
        .advance_watermark(chat.id, b, Some(2), Some(3), t1 + Duration::seconds(1))
        .await
        .unwrap();
    assert_eq!(
        (w.delivered_seq, w.read_seq),
        (5, 3),
        "delivered does not move back"
    );
    assert_eq!(
        w.delivered_at,
        Some(t1),
        "an unmoved watermark keeps its time"
    );
    let w = store
        .advance_watermark(chat.id, b, None, Some(1), now())
        .await
        .unwrap();
    assert_eq!(
        (w.delivered_seq, w.read_seq),
        (5, 3),
        "read does not move back"
    );
    let other = store
        .advance_watermark(chat.id, a, None, Some(4), now())
        .await
        .unwrap();
    assert_eq!(
        (other.delivered_seq, other.read_seq),
        (4, 4),
        "read implies delivered"
    );
    let all = store.watermarks(chat.id).await.unwrap();
    assert_eq!(all.len(), 2);
    assert_eq!((all[0].user_id, all[0].read_seq), (a, 4));
    assert_eq!((all[1].user_id, all[1].read_seq), (b, 3));
}

pub async fn digests_of_a_page_agree_with_each_chat_read_alone(store: &dyn MessageStore) {
    let [me, b, c] = [Uuid::new_v4(), Uuid::new_v4(), Uuid::new_v4()];
    let quiet = new_chat(store, &[me, b]).await;
    let busy = new_chat(store, &[me, c]).await.chat.id;
    for (i, sender) in [c, me, c, c, me, c].into_iter().enumerate() {
        store
            .append(&message(busy, sender, &format!("d{i}")))
            .await
            .unwrap();
    }
    let t0 = now();
    store
        .advance_watermark(busy, me, Some(6), Some(3), t0)
        .await
        .unwrap();
    store
        .advance_watermark(busy, c, Some(6), Some(6), t0 + Duration::seconds(1))
        .await
        .unwrap();
    let read_alone = store.chat(busy).await.unwrap().expect("stored");
    let page = vec![read_alone.clone(), quiet.clone()];
    let digests = store.digests(&page, me).await.unwrap();
    assert_eq!(digests.len(), 2, "one per chat, in order");

    let busy_digest = &digests[0];
    let last = store.messages_before(busy, u64::MAX, 1).await.unwrap();
    assert_eq!(busy_digest.last_message.as_ref(), last.first());
    assert_eq!(busy_digest.last_message.as_ref().map(|m| m.seq), Some(6));
    assert_eq!(
        busy_digest.watermarks,
        store.watermarks(busy).await.unwrap()
    );
    assert_eq!(
        busy_digest.unread_count,
        store.count_from_others_after(busy, me, 3).await.unwrap()
    );
    assert_eq!(
        busy_digest.unread_count, 2,
        "c's seqs 4 and 6 after my read at 3"
    );
    let mut marks = busy_digest.last_marks.clone();
    marks.sort_by_key(|m| (m.user_id, m.kind == MarkKind::Read));
    let mut alone: Vec<_> = store
        .marks(busy, 6, 6)
        .await
        .unwrap()
        .into_iter()
        .filter(|m| m.seq >= 6)
        .collect();
    alone.sort_by_key(|m| (m.user_id, m.kind == MarkKind::Read));
    assert_eq!(marks, alone, "the moves that reached the last message");
    assert!(
        marks
            .iter()
            .any(|m| m.user_id == c && m.kind == MarkKind::Read && m.seq == 6)
    );

    let quiet_digest = &digests[1];
    assert_eq!(quiet_digest.last_message, None);
    assert_eq!(quiet_digest.unread_count, 0);
    assert!(quiet_digest.last_marks.is_empty());
    assert_eq!(
        quiet_digest.watermarks,
        store.watermarks(quiet.chat.id).await.unwrap()
    );
    assert!(store.digests(&[], me).await.unwrap().is_empty());
}

pub async fn marks_tell_when_each_seq_was_reached(store: &dyn MessageStore) {
    let [a, b] = [Uuid::new_v4(), Uuid::new_v4()];
    let chat = new_chat(store, &[a, b]).await.chat;
    for i in 0..6 {
        store
            .append(&message(chat.id, a, &format!("k{i}")))
            .await
            .unwrap();
    }
    let t0 = now();
    let t1 = t0 + Duration::seconds(1);
    let t2 = t0 + Duration::seconds(2);
    store
        .advance_watermark(chat.id, b, Some(2), None, t0)
        .await
        .unwrap();
    store
        .advance_watermark(chat.id, b, Some(5), Some(1), t1)
        .await
        .unwrap();
    store
        .advance_watermark(chat.id, b, None, Some(6), t2)
        .await
        .unwrap();
    let mut marks = store.marks(chat.id, 3, 4).await.unwrap();
    marks.sort_by_key(|m| (m.kind == MarkKind::Read, m.seq));
    let seen: Vec<_> = marks
        .iter()
        .map(|m| (m.user_id, m.kind, m.seq, m.at))
        .collect();
    assert_eq!(
        seen,
        vec![(b, MarkKind::Delivered, 5, t1), (b, MarkKind::Read, 6, t2),],
        "no move inside 3..=4, so the first ones past it"
    );
    let marks = store.marks(chat.id, 1, 2).await.unwrap();
    assert!(marks.contains(&super::WatermarkMark {
        user_id: b,
        kind: MarkKind::Delivered,
        seq: 2,
        at: t0,
    }));
    assert!(
        marks
            .iter()
            .any(|m| m.kind == MarkKind::Read && m.seq == 1 && m.at == t1)
    );
}

pub async fn unread_counts_only_others_messages(store: &dyn MessageStore) {
    let [a, b] = [Uuid::new_v4(), Uuid::new_v4()];
    let chat = new_chat(store, &[a, b]).await.chat;
    for (i, sender) in [a, b, a, a, b].into_iter().enumerate() {
        store
            .append(&message(chat.id, sender, &format!("u{i}")))
            .await
            .unwrap();
    }
    assert_eq!(
        store.count_from_others_after(chat.id, b, 0).await.unwrap(),
        3
    );
    assert_eq!(
        store.count_from_others_after(chat.id, b, 3).await.unwrap(),
        1
    );
    assert_eq!(
        store.count_from_others_after(chat.id, a, 0).await.unwrap(),
        2
    );
    assert_eq!(
        store.count_from_others_after(chat.id, a, 5).await.unwrap(),
        0
    );
}

pub async fn a_users_chats_list_newest_first(store: &dyn MessageStore) {
    let [me, p1, p2, p3] = [
        Uuid::new_v4(),
        Uuid::new_v4(),
        Uuid::new_v4(),
        Uuid::new_v4(),
    ];
    let base = now();
    let mut ids = Vec::new();
    for (i, partner) in [p1, p2, p3].into_iter().enumerate() {
        let chat = store
            .create_chat(&NewChat {
                id: Uuid::now_v7(),
                match_id: Uuid::new_v4(),
                participants: vec![profile(me), profile(partner)],
                created_at: base + Duration::seconds(i as i64),
            })
            .await
            .unwrap()
            .value;
        ids.push(chat.chat.id);
    }
    store.end_chat(ids[2], p3, now()).await.unwrap();
    let all: Vec<Uuid> = store
        .chats_of(me, false, 10, None)
        .await
        .unwrap()
        .iter()
        .map(|c| c.chat.id)
        .collect();
    assert_eq!(all, vec![ids[2], ids[1], ids[0]]);
    let active: Vec<Uuid> = store
        .chats_of(me, true, 10, None)
        .await
        .unwrap()
        .iter()
        .map(|c| c.chat.id)
        .collect();
    assert_eq!(active, vec![ids[1], ids[0]]);
    assert_eq!(store.chats_of(me, false, 1, None).await.unwrap().len(), 1);
    let theirs = store.chats_of(p2, false, 10, None).await.unwrap();
    assert_eq!(theirs.len(), 1);
    assert_eq!(theirs[0].profiles, vec![profile(me), profile(p2)]);

    // Pages: each continues after the last chat of the one before.
    let first = store.chats_of(me, false, 2, None).await.unwrap();
    let cursor = ChatCursor::after(&first[1].chat);
    let second = store.chats_of(me, false, 2, Some(cursor)).await.unwrap();
    let ids_of = |page: &[StoredChat]| page.iter().map(|c| c.chat.id).collect::<Vec<_>>();
    assert_eq!(ids_of(&first), vec![ids[2], ids[1]]);
    assert_eq!(ids_of(&second), vec![ids[0]]);

    // Chats created at the same instant are ordered by id, and paging visits each once.
    let solo = Uuid::new_v4();
    let same = now();
    let mut twins = Vec::new();
    for _ in 0..3 {
        let chat = store
            .create_chat(&NewChat {
                id: Uuid::new_v4(),
                match_id: Uuid::new_v4(),
                participants: vec![profile(solo), profile(Uuid::new_v4())],
                created_at: same,
            })
            .await
            .unwrap()
            .value;
        twins.push(chat.chat.id);
    }
    twins.sort_by(|a, b| b.cmp(a));
    let mut seen = Vec::new();
    let mut cursor = None;
    loop {
        let page = store.chats_of(solo, false, 1, cursor).await.unwrap();
        let Some(last) = page.last() else { break };
        cursor = Some(ChatCursor::after(&last.chat));
        seen.extend(ids_of(&page));
        assert!(seen.len() <= 3, "paging repeats chats: {seen:?}");
    }
    assert_eq!(seen, twins);
}

pub async fn blocks_are_idempotent_and_seen_from_both_sides(store: &dyn MessageStore) {
    let [a, b, c] = [Uuid::new_v4(), Uuid::new_v4(), Uuid::new_v4()];
    let t0 = now();
    let first = store.block(a, b, t0).await.unwrap();
    assert!(first.created);
    assert_eq!(first.value.user_id, b);
    let again = store.block(a, b, t0 + Duration::seconds(3)).await.unwrap();
    assert!(!again.created);
    assert_eq!(again.value.created_at, t0, "the first block is kept");
    store.block(a, c, t0 + Duration::seconds(1)).await.unwrap();
    let blocked: Vec<Uuid> = store
        .blocks_of(a)
        .await
        .unwrap()
        .iter()
        .map(|b| b.user_id)
        .collect();
    assert_eq!(blocked, vec![c, b], "newest first");
    assert_eq!(store.blockers_of(b).await.unwrap(), vec![a]);
    assert!(store.is_blocked(a, b).await.unwrap());
    assert!(store.is_blocked(b, a).await.unwrap());
    assert!(!store.is_blocked(b, c).await.unwrap());
    assert!(store.unblock(a, b).await.unwrap());
    assert!(!store.unblock(a, b).await.unwrap());
    assert!(!store.is_blocked(b, a).await.unwrap());
    assert!(store.blockers_of(b).await.unwrap().is_empty());
}

pub async fn reports_are_reviewed_oldest_first_and_resolved_once(store: &dyn MessageStore) {
    let (a, b) = (Uuid::new_v4(), Uuid::new_v4());
    let t0 = now();
    let mut ids = Vec::new();
    for i in 0..2 {
        let report = Report {
            id: Uuid::now_v7(),
            reporter_id: a,
            reported_id: b,
            chat_id: Uuid::new_v4(),
            message_ids: vec![Uuid::new_v4()],
            reason: format!("review {i}"),
            created_at: t0 + Duration::seconds(i),
        };
        store.add_report(&report).await.unwrap();
        ids.push(report.id);
    }
    let mine = |listed: Vec<(Report, Option<ReportResolution>)>| -> Vec<(Uuid, bool)> {
        listed
            .into_iter()
            .filter(|(r, _)| ids.contains(&r.id))
            .map(|(r, resolution)| (r.id, resolution.is_some()))
            .collect()
    };
    let open = mine(store.reports(true, 1000).await.unwrap());
    assert_eq!(open, vec![(ids[0], false), (ids[1], false)], "oldest first");

    let first = ReportResolution {
        outcome: ReportOutcome::Actioned,
        note: "banned".to_owned(),
        by: Uuid::new_v4(),
        at: t0 + Duration::seconds(5),
    };
    let (report, resolution) = store.resolve_report(ids[0], &first).await.unwrap().unwrap();
    assert_eq!((report.id, resolution.clone()), (ids[0], first.clone()));
    // Once: a second resolution keeps the first.
    let second = ReportResolution {
        outcome: ReportOutcome::Dismissed,
        ..first.clone()
    };
    let (_, kept) = store
        .resolve_report(ids[0], &second)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(kept, first);
    assert_eq!(
        store.resolve_report(Uuid::new_v4(), &first).await.unwrap(),
        None
    );

    assert_eq!(
        mine(store.reports(true, 1000).await.unwrap()),
        vec![(ids[1], false)]
    );
    assert_eq!(
        mine(store.reports(false, 1000).await.unwrap()),
        vec![(ids[0], true), (ids[1], false)]
    );
}

pub async fn reporters_of_a_user_count_each_once_within_the_window_unless_dismissed(
    store: &dyn MessageStore,
) {
    let [target, r1, r2, r3, r4] = [(); 5].map(|()| Uuid::new_v4());
    let t0 = now();
    let report = |reporter: Uuid, reported: Uuid, secs: i64| Report {
        id: Uuid::now_v7(),
        reporter_id: reporter,
        reported_id: reported,
        chat_id: Uuid::new_v4(),
        message_ids: vec![],
        reason: "abuse".to_owned(),
        created_at: t0 + Duration::seconds(secs),
    };
    let old = report(r4, target, -100);
    let dismissed = report(r3, target, 1);
    for r in [
        report(r1, target, 0),
        report(r1, target, 2), // the same reporter counts once
        report(r2, target, 3),
        dismissed.clone(),
        old,
        report(target, r1, 4), // a report by the user is no complaint against them
    ] {
        store.add_report(&r).await.unwrap();
    }
    let resolution = ReportResolution {
        outcome: ReportOutcome::Dismissed,
        note: "nothing wrong".to_owned(),
        by: Uuid::new_v4(),
        at: t0 + Duration::seconds(10),
    };
    store
        .resolve_report(dismissed.id, &resolution)
        .await
        .unwrap()
        .expect("known report");
    let mut got = store
        .reporters_of(target, t0 - Duration::seconds(10))
        .await
        .unwrap();
    got.sort();
    let mut want = vec![r1, r2];
    want.sort();
    assert_eq!(got, want, "distinct, in the window, not dismissed");
    assert!(
        store
            .reporters_of(r2, t0 - Duration::seconds(10))
            .await
            .unwrap()
            .is_empty()
    );
}

pub async fn reports_are_stored_and_counted_per_reporter(store: &dyn MessageStore) {
    let [a, b] = [Uuid::new_v4(), Uuid::new_v4()];
    let chat = new_chat(store, &[a, b]).await.chat;
    let t0 = now();
    for i in 0..3 {
        store
            .add_report(&Report {
                id: Uuid::now_v7(),
                reporter_id: a,
                reported_id: b,
                chat_id: chat.id,
                message_ids: vec![Uuid::new_v4()],
                reason: format!("spam {i}"),
                created_at: t0 + Duration::seconds(i),
            })
            .await
            .unwrap();
    }
    let times = store
        .report_times(a, t0 + Duration::seconds(1))
        .await
        .unwrap();
    assert_eq!(
        times,
        vec![t0 + Duration::seconds(1), t0 + Duration::seconds(2)]
    );
    assert!(store.report_times(b, t0).await.unwrap().is_empty());
}

/// The stored messages of `outcomes`, each asserted stored (new when `created`).
fn stored(outcomes: Vec<super::AppendOutcome>, created: &[bool]) -> Vec<Message> {
    assert_eq!(outcomes.len(), created.len(), "one outcome per item");
    outcomes
        .into_iter()
        .zip(created)
        .map(|(outcome, &created)| {
            let written = outcome.expect("stored");
            assert_eq!(written.created, created, "{written:?}");
            written.value
        })
        .collect()
}

/// A batch over two chats gives each chat's new items consecutive seqs in item order,
/// continuing after what the chat held, and an empty batch does nothing.
pub async fn a_batch_gets_dense_seqs_per_chat_in_item_order(store: &dyn MessageStore) {
    let [a, b, c] = [Uuid::new_v4(), Uuid::new_v4(), Uuid::new_v4()];
    let first = new_chat(store, &[a, b]).await.chat;
    let second = new_chat(store, &[a, c]).await.chat;
    let before = store.append(&message(first.id, b, "before")).await.unwrap();
    assert_eq!(before.value.seq, 1);
    assert!(store.append_batch(&[]).await.unwrap().is_empty());
    let batch = [
        message(first.id, a, "f1"),
        message(second.id, c, "s1"),
        message(first.id, b, "f2"),
        message(second.id, a, "s2"),
        message(first.id, a, "f3"),
    ];
    let written = stored(store.append_batch(&batch).await.unwrap(), &[true; 5]);
    let seqs: Vec<(Uuid, u64)> = written.iter().map(|m| (m.chat_id, m.seq)).collect();
    assert_eq!(
        seqs,
        vec![
            (first.id, 2),
            (second.id, 1),
            (first.id, 3),
            (second.id, 2),
            (first.id, 4)
        ]
    );
    for (sent, got) in batch.iter().zip(&written) {
        assert_eq!((got.id, &got.client_msg_id), (sent.id, &sent.client_msg_id));
        assert_eq!((got.sender_id, &got.text), (sent.sender_id, &sent.text));
    }
    let in_first = store.messages_after(first.id, 0, 10).await.unwrap();
    assert_eq!(
        in_first,
        vec![
            before.value,
            written[0].clone(),
            written[2].clone(),
            written[4].clone()
        ]
    );
    let in_second = store.messages_after(second.id, 0, 10).await.unwrap();
    assert_eq!(in_second, vec![written[1].clone(), written[3].clone()]);
    assert_eq!(
        store.chat(first.id).await.unwrap().unwrap().chat.last_seq,
        4
    );
    assert_eq!(
        store.chat(second.id).await.unwrap().unwrap().chat.last_seq,
        2
    );
    // Single appends carry on from the batch.
    let after = store.append(&message(second.id, c, "s3")).await.unwrap();
    assert_eq!(after.value.seq, 3);
}

/// A resend inside one batch, in a later batch, or as a single append returns the
/// original with `created: false` and spends no seq.
pub async fn a_resend_within_a_batch_or_across_batches_returns_the_original(
    store: &dyn MessageStore,
) {
    let [a, b] = [Uuid::new_v4(), Uuid::new_v4()];
    let chat = new_chat(store, &[a, b]).await.chat;
    let mut resend = message(chat.id, a, "m1");
    resend.text = "different text".to_owned();
    let outcomes = store
        .append_batch(&[
            message(chat.id, a, "m1"),
            message(chat.id, b, "m1"),
            resend.clone(),
        ])
        .await
        .unwrap();
    let first = stored(outcomes, &[true, true, false]);
    assert_eq!(
        (first[0].seq, first[1].seq),
        (1, 2),
        "client ids are per sender"
    );
    assert_eq!(
        first[2], first[0],
        "the resend in the batch gets the original"
    );
    let outcomes = store
        .append_batch(&[
            message(chat.id, b, "m1"),
            message(chat.id, a, "m2"),
            resend.clone(),
            message(chat.id, a, "m2"),
        ])
        .await
        .unwrap();
    let second = stored(outcomes, &[false, true, false, false]);
    assert_eq!(second[0], first[1]);
    assert_eq!(second[1].seq, 3);
    assert_eq!(second[2], first[0]);
    assert_eq!(second[3], second[1]);
    let single = store.append(&message(chat.id, a, "m2")).await.unwrap();
    assert!(!single.created);
    assert_eq!(single.value, second[1]);
    let all = store.messages_after(chat.id, 0, 100).await.unwrap();
    assert_eq!(
        all,
        vec![first[0].clone(), first[1].clone(), second[1].clone()]
    );
    assert_eq!(store.chat(chat.id).await.unwrap().unwrap().chat.last_seq, 3);
}

/// A batch of 200 items across 80 chats (more than a store may put in one statement):
/// seqs dense per chat in item order, and resends, of messages stored before and of this
/// batch's own items far apart, get the originals.
pub async fn a_large_batch_across_many_chats_keeps_seqs_and_resends(store: &dyn MessageStore) {
    let [a, b] = [Uuid::new_v4(), Uuid::new_v4()];
    let mut chats = Vec::new();
    for _ in 0..80 {
        chats.push(new_chat(store, &[a, b]).await.chat);
    }
    let earlier = store
        .append(&message(chats[79].id, b, "earlier"))
        .await
        .unwrap();
    let mut batch: Vec<NewMessage> = (0..190)
        .map(|i| message(chats[i % 80].id, a, &format!("m{i}")))
        .collect();
    // Resends: of item 3 (same chat, same sender, same client id) and of `earlier`.
    for _ in 0..5 {
        batch.push(message(chats[3].id, a, "m3"));
        batch.push(message(chats[79].id, b, "earlier"));
    }
    let mut created = vec![true; 190];
    created.extend([false; 10]);
    let written = stored(store.append_batch(&batch).await.unwrap(), &created);
    for (i, m) in written.iter().take(190).enumerate() {
        let turn = (i / 80) as u64 + 1;
        let expected = if i % 80 == 79 { turn + 1 } else { turn };
        assert_eq!((m.chat_id, m.seq), (chats[i % 80].id, expected), "item {i}");
    }
    for pair in written[190..].chunks(2) {
        assert_eq!(pair[0], written[3]);
        assert_eq!(pair[1], earlier.value);
    }
    for (chat, last_seq) in [(0, 3), (79, 3), (70, 2)] {
        let stored = store.chat(chats[chat].id).await.unwrap().unwrap();
        assert_eq!(stored.chat.last_seq, last_seq, "chat {chat}");
    }
    assert_eq!(
        store
            .messages_after(chats[79].id, 0, 10)
            .await
            .unwrap()
            .len(),
        3
    );
}

/// Items of a batch from a non-participant or to an unknown chat are refused alone: the
/// other items are stored, and no seq is spent on the refused ones.
pub async fn a_refused_item_of_a_batch_refuses_only_itself(store: &dyn MessageStore) {
    let [a, b, stranger] = [Uuid::new_v4(), Uuid::new_v4(), Uuid::new_v4()];
    let chat = new_chat(store, &[a, b]).await.chat;
    let unknown = Uuid::new_v4();
    let mut outcomes = store
        .append_batch(&[
            message(chat.id, a, "ok1"),
            message(chat.id, stranger, "intruder"),
            message(unknown, a, "nowhere"),
            message(chat.id, b, "ok2"),
        ])
        .await
        .unwrap()
        .into_iter();
    let ok1 = outcomes.next().unwrap().expect("stored");
    let intruder = outcomes.next().unwrap();
    assert!(
        matches!(intruder, Err(StoreError::ChatNotFound)),
        "{intruder:?}"
    );
    let nowhere = outcomes.next().unwrap();
    assert!(
        matches!(nowhere, Err(StoreError::ChatNotFound)),
        "{nowhere:?}"
    );
    let ok2 = outcomes.next().unwrap().expect("stored");
    assert!(outcomes.next().is_none());
    assert_eq!((ok1.value.seq, ok2.value.seq), (1, 2));
    assert_eq!(
        store.messages_after(chat.id, 0, 10).await.unwrap(),
        vec![ok1.value, ok2.value]
    );
    assert!(
        store
            .messages_after(unknown, 0, 10)
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(store.chat(chat.id).await.unwrap().unwrap().chat.last_seq, 2);
}

/// In a batch, new items to an ended chat are refused as ended, a resend of one of its
/// stored messages still returns it, and items to other chats are stored.
pub async fn an_ended_chat_refuses_its_new_items_of_a_batch_but_not_resends(
    store: &dyn MessageStore,
) {
    let [a, b] = [Uuid::new_v4(), Uuid::new_v4()];
    let ended = new_chat(store, &[a, b]).await.chat;
    let live = new_chat(store, &[a, b]).await.chat;
    let sent = store.append(&message(ended.id, a, "before")).await.unwrap();
    store.end_chat(ended.id, b, now()).await.unwrap();
    let mut outcomes = store
        .append_batch(&[
            message(ended.id, a, "after"),
            message(live.id, a, "live"),
            message(ended.id, a, "before"),
        ])
        .await
        .unwrap()
        .into_iter();
    let after = outcomes.next().unwrap();
    assert!(matches!(after, Err(StoreError::ChatEnded)), "{after:?}");
    let in_live = outcomes.next().unwrap().expect("stored");
    assert!(in_live.created);
    assert_eq!(in_live.value.seq, 1);
    let resend = outcomes.next().unwrap().expect("the resend is answered");
    assert!(!resend.created);
    assert_eq!(resend.value, sent.value);
    assert_eq!(
        store.messages_after(ended.id, 0, 10).await.unwrap(),
        vec![sent.value]
    );
    assert_eq!(
        store.chat(ended.id).await.unwrap().unwrap().chat.last_seq,
        1
    );
}

/// Batches committed at once, to the same chats, still give every message its own seq
/// with no gaps.
pub async fn concurrent_batches_get_dense_seqs(store: &dyn MessageStore) {
    const BATCHES: usize = 8;
    const ITEMS: usize = 10;
    let [a, b] = [Uuid::new_v4(), Uuid::new_v4()];
    let chats = [
        new_chat(store, &[a, b]).await.chat,
        new_chat(store, &[a, b]).await.chat,
    ];
    let batches: Vec<Vec<NewMessage>> = (0..BATCHES)
        .map(|i| {
            (0..ITEMS)
                .map(|j| {
                    let sender = if j % 2 == 0 { a } else { b };
                    message(chats[(i + j) % 2].id, sender, &format!("b{i}-{j}"))
                })
                .collect()
        })
        .collect();
    let outcomes = futures::future::join_all(batches.iter().map(|b| store.append_batch(b))).await;
    let mut seqs: Vec<Vec<u64>> = vec![Vec::new(), Vec::new()];
    for outcome in outcomes {
        for written in stored(outcome.expect("batch"), &[true; ITEMS]) {
            let which = usize::from(written.chat_id == chats[1].id);
            seqs[which].push(written.seq);
        }
    }
    for (chat, mut seqs) in chats.iter().zip(seqs) {
        seqs.sort_unstable();
        let dense: Vec<u64> = (1..=(BATCHES * ITEMS / 2) as u64).collect();
        assert_eq!(seqs, dense);
        let kept: Vec<u64> = store
            .messages_after(chat.id, 0, 1000)
            .await
            .unwrap()
            .iter()
            .map(|m| m.seq)
            .collect();
        assert_eq!(kept, dense);
        let last_seq = store.chat(chat.id).await.unwrap().unwrap().chat.last_seq;
        assert_eq!(last_seq, dense.len() as u64);
    }
}

/// What [`same_client_msg_id_across`] saw.
#[derive(Debug)]
pub struct SameIdOutcome {
    /// Every caller's answer, in spawn order.
    pub answers: Vec<(Message, bool)>,
    /// The chat's stored messages afterwards.
    pub stored: Vec<Message>,
    /// The chat's `last_seq` afterwards.
    pub last_seq: u64,
}

/// `n` appends with one client message id at once, each its own task, spread round-robin
/// over `stores`: handles on one database, as separate service instances would hold.
pub async fn same_client_msg_id_across(
    stores: &[Arc<dyn MessageStore>],
    n: usize,
) -> SameIdOutcome {
    let store = stores.first().expect("at least one store").clone();
    let [a, b] = [Uuid::new_v4(), Uuid::new_v4()];
    let chat = new_chat(store.as_ref(), &[a, b]).await.chat;
    let tasks: Vec<_> = (0..n)
        .map(|i| {
            let store = stores[i % stores.len()].clone();
            tokio::spawn(async move { store.append(&message(chat.id, a, "same")).await })
        })
        .collect();
    let mut answers = Vec::with_capacity(n);
    for task in tasks {
        let written = task.await.expect("task").expect("append");
        answers.push((written.value, written.created));
    }
    SameIdOutcome {
        answers,
        stored: store.messages_after(chat.id, 0, 1000).await.unwrap(),
        last_seq: store.chat(chat.id).await.unwrap().unwrap().chat.last_seq,
    }
}

/// Asserts that one message was stored and every caller got it, and exactly one created it.
pub fn assert_one_message(outcome: &SameIdOutcome) {
    assert_eq!(outcome.stored.len(), 1, "exactly one message is stored");
    assert_eq!(outcome.last_seq, 1, "no seq was spent on a duplicate");
    let stored = &outcome.stored[0];
    assert_eq!(stored.seq, 1);
    let ids: HashSet<(Uuid, u64)> = outcome.answers.iter().map(|(m, _)| (m.id, m.seq)).collect();
    assert_eq!(
        ids,
        HashSet::from([(stored.id, stored.seq)]),
        "every caller got it"
    );
    let creators = outcome
        .answers
        .iter()
        .filter(|(_, created)| *created)
        .count();
    assert_eq!(creators, 1, "exactly one caller created it");
}
