//! The matcher through in-process peers, on every queue backend (memory, and Redis when
//! `REDIS_URL` is set), one test per case and backend: matches are delivered to both,
//! failed chat creation and blocks put tickets back, racing matchers never double-pair.

mod support;

/// The cases: each takes handles on one empty queue.
mod cases {
    use std::sync::Arc;

    use axum::http::StatusCode;
    use matching_service::ManualClock;
    use matching_service::matcher;
    use matching_service::store::TicketState;
    use matching_service::store::conformance::{
        Handles, Rng, at, join, joined, person, secs, state_of, t0,
    };
    use service_kit::auth::ServiceCredential;
    use service_kit::client::ServiceClient;
    use wire::api::matching::{JoinQueueRequest, QueueState};
    use wire::domain::Gender;

    use super::support::{CREDENTIAL, PeerStandIns, matcher_on};

    /// The full flow: join with preferences (interests from the profile), the status shows
    /// the criteria widening with time, a later join matches, both learn it through a
    /// `matched` event (chat id, partner's public profile, shared interests, what was
    /// relaxed) and the status; "Next" ends the chat; the internal drop removes a ticket.
    pub async fn matcher_delivers_the_match_to_both(stores: &Handles) {
        let peers = PeerStandIns::default();
        let clock = ManualClock::new(t0());
        let state = matcher_on(Arc::clone(&stores[0]), &peers, &clock);
        let a = peers.add_user(Gender::Male, 30, &["chess", "films"]);
        let b = peers.add_user(Gender::Female, 28, &["films", "music"]);
        let req = JoinQueueRequest {
            genders: Some(vec![Gender::Female]),
            min_age: Some(30),
            max_age: Some(35),
            age_widen_years: Some(3),
            widen_every_secs: Some(10),
            ..JoinQueueRequest::default()
        };
        let st = matcher::join(&state, a.id, &req).await.expect("join");
        assert_eq!(st.state, QueueState::Waiting);
        assert_eq!(st.waiting_since, Some(t0()));
        let criteria = st.criteria.expect("criteria");
        assert_eq!((criteria.min_age, criteria.max_age), (30, 35));
        assert_eq!(criteria.interests, a.interests, "from the profile");
        clock.advance(secs(25));
        let st = matcher::status(&state, a.id).await.expect("status");
        assert_eq!(st.waiting_since, Some(t0()));
        let criteria = st.criteria.expect("criteria");
        assert_eq!((criteria.min_age, criteria.max_age), (28, 37), "two steps");

        let st = matcher::join(&state, b.id, &JoinQueueRequest::default())
            .await
            .expect("join");
        assert_eq!(st.state, QueueState::Matched, "a accepts 28 by now");
        let for_b = st.matched.expect("match");
        let to_a = peers.delivered_to(a.id);
        let to_b = peers.delivered_to(b.id);
        assert_eq!((to_a.len(), to_b.len()), (1, 1), "one matched event each");
        assert_eq!(to_b[0], for_b);
        let for_a = &to_a[0];
        assert_eq!(for_a.chat_id, for_b.chat_id);
        assert_eq!(for_a.match_id, for_b.match_id);
        assert_eq!(for_a.partner, b);
        assert_eq!(for_b.partner, a);
        assert_eq!(for_a.shared_interests, vec!["films".to_owned()]);
        assert_eq!(for_b.shared_interests, vec!["films".to_owned()]);
        assert_eq!(
            for_a.relaxed,
            vec![wire::api::matching::RelaxedCriterion::AgeRange]
        );
        assert!(for_b.relaxed.is_empty());
        let chat = peers.live_chats_of(a.id);
        assert_eq!(chat.len(), 1);
        assert_eq!(chat[0].id, for_a.chat_id);
        assert!(chat[0].participants.contains(&b.id));
        let st = matcher::status(&state, a.id).await.expect("status");
        assert_eq!(st.state, QueueState::Matched);
        assert_eq!(st.matched.as_ref(), Some(for_a));

        // "Next": joining again ends the live chat; at most one live chat per user.
        let st = matcher::join(&state, a.id, &req).await.expect("join");
        assert_eq!(st.state, QueueState::Waiting);
        assert!(peers.live_chats_of(a.id).is_empty());
        let st = matcher::status(&state, b.id).await.expect("status");
        assert_eq!(st.state, QueueState::Idle, "b's chat ended");

        // ws-handler drops the ticket when the last connection closes.
        let me = ServiceClient::in_process(
            "matching-service",
            matching_service::app(state.clone()),
            Some(ServiceCredential::new(CREDENTIAL)),
        );
        me.call::<wire::api::matching::DropTicket>(a.id, ())
            .await
            .expect("drop");
        assert_eq!(state_of(stores[0].as_ref(), a.id).await, None);
        let st = matcher::status(&state, a.id).await.expect("status");
        assert_eq!(st.state, QueueState::Idle);
        let anonymous = ServiceClient::in_process(
            "matching-service",
            matching_service::app(state.clone()),
            None,
        );
        let err = anonymous
            .call::<wire::api::matching::DropTicket>(b.id, ())
            .await
            .expect_err("the drop needs the service credential");
        assert_eq!(err.status(), Some(StatusCode::UNAUTHORIZED));
    }

    /// When the chat cannot be created, both tickets go back with their original waiting
    /// time, and the pair is made once chats can be created again.
    pub async fn failed_chat_creation_puts_both_tickets_back(stores: &Handles) {
        let peers = PeerStandIns::default();
        let clock = ManualClock::new(t0());
        let state = matcher_on(Arc::clone(&stores[0]), &peers, &clock);
        let a = peers.add_user(Gender::Male, 30, &["chess"]);
        let b = peers.add_user(Gender::Female, 30, &["chess"]);
        peers.fail_chats(true);
        let st = matcher::join(&state, a.id, &JoinQueueRequest::default())
            .await
            .expect("join");
        assert_eq!(st.state, QueueState::Waiting);
        assert_eq!(peers.chat_attempts(), 0, "nobody to meet yet");
        clock.advance(secs(5));
        let st = matcher::join(&state, b.id, &JoinQueueRequest::default())
            .await
            .expect("the join succeeds; the search failed");
        assert_eq!(st.state, QueueState::Waiting);
        assert_eq!(st.waiting_since, Some(at(t0(), 5000)));
        assert!(peers.chat_attempts() >= 1);
        let store = stores[0].as_ref();
        assert_eq!(
            state_of(store, a.id).await,
            Some((t0(), TicketState::Waiting))
        );
        assert_eq!(
            state_of(store, b.id).await,
            Some((at(t0(), 5000), TicketState::Waiting))
        );
        let attempts = peers.chat_attempts();
        clock.advance(secs(1));
        // Take the wake-up left by the join, then sweep against the failing peer.
        futures::FutureExt::now_or_never(state.woken()).expect("the join left a wake-up");
        matcher::sweep(&state).await;
        assert!(peers.chat_attempts() > attempts, "the matcher tried again");
        assert!(
            futures::FutureExt::now_or_never(state.woken()).is_none(),
            "a failing peer must not wake the matcher at once (it would spin): the next \
             tick retries"
        );
        assert_eq!(
            state_of(store, a.id).await,
            Some((t0(), TicketState::Waiting))
        );
        assert_eq!(
            state_of(store, b.id).await,
            Some((at(t0(), 5000), TicketState::Waiting))
        );
        assert!(peers.delivered_to(a.id).is_empty() && peers.chats().is_empty());
        let st = matcher::status(&state, a.id).await.expect("status");
        assert_eq!(st.waiting_since, Some(t0()));

        peers.fail_chats(false);
        clock.advance(secs(1));
        matcher::sweep(&state).await;
        let to_a = peers.delivered_to(a.id);
        let to_b = peers.delivered_to(b.id);
        assert_eq!((to_a.len(), to_b.len()), (1, 1));
        assert_eq!(to_a[0].chat_id, to_b[0].chat_id);
        assert_eq!(to_a[0].shared_interests, vec!["chess".to_owned()]);
        assert_eq!(state_of(store, a.id).await, None);
        assert_eq!(
            matcher::status(&state, b.id).await.expect("status").state,
            QueueState::Matched
        );
    }

    /// A block known at join keeps a pair apart; a block made after both joined is caught at
    /// chat creation, and the pair is put back and never tried again.
    pub async fn blocked_at_chat_creation_never_pairs_again(stores: &Handles) {
        let peers = PeerStandIns::default();
        let clock = ManualClock::new(t0());
        let state = matcher_on(Arc::clone(&stores[0]), &peers, &clock);
        let store = stores[0].as_ref();
        let d = peers.add_user(Gender::Male, 30, &[]);
        let e = peers.add_user(Gender::Female, 30, &[]);
        peers.block(e.id, d.id);
        matcher::join(&state, d.id, &JoinQueueRequest::default())
            .await
            .expect("join");
        let st = matcher::join(&state, e.id, &JoinQueueRequest::default())
            .await
            .expect("join");
        assert_eq!(st.state, QueueState::Waiting, "blocked at join");
        assert_eq!(peers.chat_attempts(), 0, "never even tried");
        matcher::leave(&state, d.id).await.expect("leave");
        matcher::leave(&state, e.id).await.expect("leave");

        let a = peers.add_user(Gender::Male, 30, &[]);
        let b = peers.add_user(Gender::Female, 30, &[]);
        peers.fail_chats(true);
        matcher::join(&state, a.id, &JoinQueueRequest::default())
            .await
            .expect("join");
        matcher::join(&state, b.id, &JoinQueueRequest::default())
            .await
            .expect("join");
        peers.block(a.id, b.id);
        peers.fail_chats(false);
        let attempts = peers.chat_attempts();
        clock.advance(secs(1));
        matcher::sweep(&state).await;
        assert!(peers.chat_attempts() > attempts);
        assert!(peers.chats().is_empty(), "refused: they blocked each other");
        assert_eq!(
            state_of(store, a.id).await,
            Some((t0(), TicketState::Waiting))
        );
        assert_eq!(
            state_of(store, b.id).await,
            Some((t0(), TicketState::Waiting))
        );
        let attempts = peers.chat_attempts();
        clock.advance(secs(31));
        matcher::sweep(&state).await;
        assert_eq!(peers.chat_attempts(), attempts, "never tried again");
        let c = peers.add_user(Gender::Other, 30, &[]);
        let st = matcher::join(&state, c.id, &JoinQueueRequest::default())
            .await
            .expect("join");
        assert_eq!(st.state, QueueState::Matched);
        assert_eq!(
            st.matched.expect("match").partner.id,
            a.id,
            "the oldest ticket"
        );
    }

    /// Two matcher instances sweeping one queue at once (chat creation failing now and then):
    /// every user ends in exactly one live chat, learns exactly one match, and the partner's
    /// event names them back.
    pub async fn matchers_racing_never_double_pair(stores: &Handles) {
        let peers = PeerStandIns::default();
        let clock = ManualClock::new(t0());
        let one = matcher_on(Arc::clone(&stores[0]), &peers, &clock);
        let two = matcher_on(Arc::clone(&stores[stores.len() - 1]), &peers, &clock);
        let store = stores[0].as_ref();
        let mut rng = Rng::new(0xD0_0B1E);
        let mut users = Vec::new();
        for i in 0..60 {
            let p = peers.add_user(Gender::ALL[i % 3], 18 + rng.below(43) as u8, &[]);
            let mut t = person(p.gender, p.age);
            t.profile = p.clone();
            join(store, &joined(t, at(t0(), i as i64)), t0()).await;
            users.push(p.id);
        }
        for round in 0..40 {
            peers.fail_chats(round % 3 == 0);
            tokio::join!(matcher::sweep(&one), matcher::sweep(&two));
            clock.advance(secs(31));
            if store.waiting_count().await.expect("count") == 0 && round % 3 != 0 {
                break;
            }
        }
        assert_eq!(store.waiting_count().await.expect("count"), 0);
        for u in &users {
            assert_eq!(state_of(store, *u).await, None, "{u} still has a ticket");
            let live = peers.live_chats_of(*u);
            assert_eq!(live.len(), 1, "{u} is in {} live chats", live.len());
            let got = peers.delivered_to(*u);
            assert_eq!(got.len(), 1, "{u} learnt {} matches", got.len());
            assert_eq!(got[0].chat_id, live[0].id);
            let partner = got[0].partner.id;
            let back = peers.delivered_to(partner);
            assert_eq!(back.len(), 1);
            assert_eq!(back[0].partner.id, *u);
            assert_eq!(back[0].chat_id, got[0].chat_id);
        }
        assert!(
            peers.chats().iter().all(|c| c.ended_at.is_none()),
            "no chat was abandoned"
        );
    }
}

test_support::conformance! {
    cases: cases,
    backends: { memory => support::memory(), redis => support::redis() },
    tests: [
        matcher_delivers_the_match_to_both,
        failed_chat_creation_puts_both_tickets_back,
        blocked_at_chat_creation_never_pairs_again,
        matchers_racing_never_double_pair,
    ],
}
