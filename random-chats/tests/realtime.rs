//! The real-time scenario on the one-process platform, through its gateway: messages,
//! acks, delivered and read statuses, typing, presence, several connections of one user,
//! and a reconnect that resumes without gap or duplicate. (The same scenario on two
//! ws-handlers over Redis is `ws-handler/tests/distributed.rs`.)

use std::time::Duration;

use client_sdk::api::auth::SignupRequest;
use client_sdk::api::matching::{InterestMode, JoinQueueRequest};
use client_sdk::{Client, ConnectOptions, Connection, Event, Gender, ResumePoint};
use random_chats::{Platform, PlatformConfig};
use uuid::Uuid;

const DEADLINE: Duration = Duration::from_secs(20);

async fn sign_up(url: &str, name: &str) -> (Client, Uuid) {
    let client = Client::new(url).unwrap();
    let response = client
        .signup(&SignupRequest {
            username: format!("{name}_{}", &Uuid::new_v4().simple().to_string()[..10]),
            password: "correct horse battery staple".to_owned(),
            display_name: name.to_owned(),
            gender: Gender::Other,
            birth_date: time::macros::date!(1990 - 01 - 01),
            interests: Vec::new(),
        })
        .await
        .unwrap();
    (client, response.user.id)
}

/// The next event `pick` accepts, skipping others.
async fn next<T>(
    connection: &mut Connection,
    what: &str,
    mut pick: impl FnMut(Event) -> Option<T>,
) -> T {
    let deadline = tokio::time::Instant::now() + DEADLINE;
    loop {
        let event = tokio::time::timeout_at(deadline, connection.next_event())
            .await
            .unwrap_or_else(|_| panic!("timed out waiting for {what}"))
            .unwrap_or_else(|| panic!("connection closed while waiting for {what}"));
        if let Some(found) = pick(event) {
            return found;
        }
    }
}

fn message(event: Event) -> Option<(u64, String)> {
    match event {
        Event::Message(m) => Some((m.seq, m.text)),
        _ => None,
    }
}

/// Two users queued on a topic of their own are matched into one chat.
async fn matched_pair(url: &str) -> (Client, Uuid, Client, Uuid, Connection, Connection, Uuid) {
    let (alice_client, alice) = sign_up(url, "alice").await;
    let (bob_client, bob) = sign_up(url, "bob").await;
    let (a, b, chat) = connect_and_match(&alice_client, &bob_client).await;
    (alice_client, alice, bob_client, bob, a, b, chat)
}

/// Connects two signed-up users, queues them on a topic of their own and waits until both
/// are matched into one chat.
async fn connect_and_match(
    alice_client: &Client,
    bob_client: &Client,
) -> (Connection, Connection, Uuid) {
    let mut a = alice_client.connect().await.unwrap();
    let mut b = bob_client.connect().await.unwrap();
    let topic = format!("rt-{}", &Uuid::new_v4().simple().to_string()[..8]);
    let join = JoinQueueRequest {
        interests: Some(vec![topic]),
        interest_mode: Some(InterestMode::Required),
        ..JoinQueueRequest::default()
    };
    alice_client.join_queue(&join).await.unwrap();
    bob_client.join_queue(&join).await.unwrap();
    let chat = next(&mut a, "alice matched", |e| match e {
        Event::Matched(info) => Some(info.chat_id),
        _ => None,
    })
    .await;
    let bobs = next(&mut b, "bob matched", |e| match e {
        Event::Matched(info) => Some(info.chat_id),
        _ => None,
    })
    .await;
    assert_eq!(chat, bobs);
    (a, b, chat)
}

#[tokio::test]
async fn two_users_exchange_messages_statuses_typing_and_presence_on_one_process() {
    let platform = Platform::start(PlatformConfig::in_memory()).await.unwrap();
    let url = platform.gateway_url();
    let (_alice_client, alice, bob_client, bob, mut a, mut b, chat) = matched_pair(&url).await;

    let ack = a.send(chat, "hello bob").await.unwrap();
    assert_eq!((ack.chat_id, ack.seq), (chat, 1));
    assert_eq!(
        next(&mut b, "bob gets it", message).await,
        (1, "hello bob".to_owned())
    );
    let delivered = next(&mut a, "delivered", |e| match e {
        Event::Status(w) if w.user_id == bob => Some(w),
        _ => None,
    })
    .await;
    assert_eq!((delivered.delivered_seq, delivered.read_seq), (1, 0));
    b.mark_read(chat, 1).unwrap();
    next(&mut a, "read", |e| match e {
        Event::Status(w) if w.user_id == bob && w.read_seq == 1 => Some(()),
        _ => None,
    })
    .await;

    assert_eq!(b.send(chat, "hi alice").await.unwrap().seq, 2);
    assert_eq!(
        next(&mut a, "alice gets the reply", message).await,
        (2, "hi alice".to_owned())
    );

    a.typing(chat, true).unwrap();
    let typing = next(&mut b, "typing", |e| match e {
        Event::Typing {
            chat_id,
            user_id,
            typing,
        } => Some((chat_id, user_id, typing)),
        _ => None,
    })
    .await;
    assert_eq!(typing, (chat, alice, true));

    // Presence: Bob leaves and comes back.
    drop(b);
    let online = next(&mut a, "bob offline", |e| match e {
        Event::Presence {
            user_id, online, ..
        } if user_id == bob => Some(online),
        _ => None,
    })
    .await;
    assert!(!online);
    let mut b = bob_client.connect().await.unwrap();
    let online = next(&mut a, "bob online", |e| match e {
        Event::Presence {
            user_id, online, ..
        } if user_id == bob => Some(online),
        _ => None,
    })
    .await;
    assert!(online);
    let partner = next(&mut b, "alice's presence", |e| match e {
        Event::Presence {
            user_id, online, ..
        } => Some((user_id, online)),
        _ => None,
    })
    .await;
    assert_eq!(partner, (alice, true));
    drop(a);
    drop(b);
    platform.shutdown().await;
}

#[tokio::test]
async fn each_connection_of_a_user_gets_each_event_once() {
    let platform = Platform::start(PlatformConfig::in_memory()).await.unwrap();
    let url = platform.gateway_url();
    let (alice_client, alice, _bob_client, bob, a, b, chat) = matched_pair(&url).await;
    let mut second = alice_client.connect().await.unwrap();
    next(&mut second, "second connected", |e| {
        matches!(e, Event::Resumed).then_some(())
    })
    .await;
    let mut first = a;

    b.typing(chat, true).unwrap();
    b.send(chat, "to both").await.unwrap();
    for connection in [&mut first, &mut second] {
        let mut typing = 0;
        loop {
            match next(connection, "events", Some).await {
                Event::Typing { user_id, .. } if user_id == bob => typing += 1,
                Event::Message(m) if m.text == "to both" => break,
                _ => {}
            }
        }
        assert_eq!(typing, 1, "the typing event once per connection");
    }

    // Alice's send from the second connection shows on the first as her own message.
    let ack = second.send(chat, "from my laptop").await.unwrap();
    let mine = next(&mut first, "own message", |e| match e {
        Event::Message(m) => Some(m),
        _ => None,
    })
    .await;
    assert_eq!((mine.seq, mine.sender_id), (ack.seq, alice));

    // Closing one connection leaves the other registered.
    drop(second);
    b.send(chat, "still there?").await.unwrap();
    assert_eq!(
        next(&mut first, "after close", message).await,
        (ack.seq + 1, "still there?".to_owned())
    );
    drop(first);
    drop(b);
    platform.shutdown().await;
}

#[tokio::test]
async fn a_reconnect_resumes_with_exactly_the_missed_messages_then_live_ones() {
    let platform = Platform::start(PlatformConfig::in_memory()).await.unwrap();
    let url = platform.gateway_url();
    let (alice_client, _alice, _bob_client, _bob, a, b, chat) = matched_pair(&url).await;
    let mut a = a;
    for i in 1..=3 {
        b.send(chat, &format!("m{i}")).await.unwrap();
    }
    for i in 1..=3 {
        assert_eq!(next(&mut a, "live", message).await.0, i);
    }
    let last_seq = a.last_seq(chat);
    assert_eq!(last_seq, 3);
    drop(a);
    for i in 4..=6 {
        b.send(chat, &format!("m{i}")).await.unwrap();
    }
    let mut a = alice_client
        .connect_with(ConnectOptions {
            resume_from: vec![ResumePoint {
                chat_id: chat,
                last_seq,
            }],
            ..ConnectOptions::default()
        })
        .await
        .unwrap();
    let mut caught_up = Vec::new();
    loop {
        match next(&mut a, "catch-up", Some).await {
            Event::Message(m) => caught_up.push(m.seq),
            Event::Resumed => break,
            _ => {}
        }
    }
    assert_eq!(
        caught_up,
        vec![4, 5, 6],
        "exactly the missed messages, in order"
    );
    b.send(chat, "live again").await.unwrap();
    assert_eq!(
        next(&mut a, "live after resume", message).await,
        (7, "live again".to_owned())
    );
    drop(a);
    drop(b);
    platform.shutdown().await;
}

#[tokio::test]
async fn what_a_user_receives_is_masked_at_their_level_and_stored_as_sent() {
    let platform = Platform::start(PlatformConfig::in_memory()).await.unwrap();
    let url = platform.gateway_url();
    let (alice_client, _alice) = sign_up(&url, "alice").await;
    let (bob_client, _bob) = sign_up(&url, "bob").await;
    // Bob wants strict masking; Alice keeps the default (off).
    bob_client
        .update_profile(&client_sdk::api::auth::UpdateProfileRequest {
            content_filter: Some(client_sdk::api::auth::ContentFilter::Strict),
            ..Default::default()
        })
        .await
        .unwrap();
    let (a, mut b, chat) = connect_and_match(&alice_client, &bob_client).await;

    let rude = "what the fuck is this";
    a.send(chat, rude).await.unwrap();
    let (_, received) = next(&mut b, "bob gets the message", message).await;
    assert!(!received.contains("fuck"), "masked for bob: {received}");
    assert!(received.starts_with("what the f"), "{received}");

    // History: masked for Bob, as sent for Alice (and in storage).
    let query = client_sdk::api::message::HistoryQuery::default();
    let bobs = bob_client.history(chat, &query).await.unwrap();
    assert_eq!(bobs.messages[0].message.text, received);
    let alices = alice_client.history(chat, &query).await.unwrap();
    assert_eq!(alices.messages[0].message.text, rude);
    platform.shutdown().await;
}

#[tokio::test]
async fn matched_users_learn_at_once_that_the_new_partner_is_online() {
    let platform = Platform::start(PlatformConfig::in_memory()).await.unwrap();
    let url = platform.gateway_url();
    let (_alice_client, alice, _bob_client, bob, mut a, mut b, chat) = matched_pair(&url).await;
    for (connection, partner) in [(&mut a, bob), (&mut b, alice)] {
        let online = next(connection, "the new partner's presence", |e| match e {
            Event::Presence {
                chat_id,
                user_id,
                online,
            } if chat_id == chat && user_id == partner => Some(online),
            _ => None,
        })
        .await;
        assert!(online, "both are connected");
    }
    platform.shutdown().await;
}

#[tokio::test]
async fn queue_joins_are_rate_limited_per_user_through_the_gateway() {
    let mut config = PlatformConfig::in_memory();
    config.matching.join_burst = 2;
    config.matching.join_refill = Duration::from_secs(3600);
    let platform = Platform::start(config).await.unwrap();
    let url = platform.gateway_url();
    let (alice, _) = sign_up(&url, "alice").await;
    let (bob, _) = sign_up(&url, "bob").await;
    let join = JoinQueueRequest::default();
    alice.join_queue(&join).await.unwrap();
    alice.join_queue(&join).await.unwrap();
    let err = alice.join_queue(&join).await.unwrap_err();
    assert_eq!(
        err.code(),
        Some(client_sdk::ErrorCode::RateLimited),
        "{err}"
    );
    assert_eq!(err.status(), Some(reqwest::StatusCode::TOO_MANY_REQUESTS));
    // Another user is not affected.
    bob.join_queue(&join).await.unwrap();
    platform.shutdown().await;
}

#[tokio::test]
async fn users_many_blocked_are_matched_later_and_only_with_each_other() {
    let mut config = PlatformConfig::in_memory();
    config.matching.reputation.low_standing_after = 2;
    config.matching.reputation.hold_secs = 1;
    let platform = Platform::start(config).await.unwrap();
    let url = platform.gateway_url();
    let (good, _) = sign_up(&url, "good").await;
    let (rude, rude_id) = sign_up(&url, "rude").await;
    let (ruder, ruder_id) = sign_up(&url, "ruder").await;
    for name in ["critic", "censor"] {
        let (complainant, _) = sign_up(&url, name).await;
        complainant.block(rude_id).await.unwrap();
        complainant.block(ruder_id).await.unwrap();
    }
    let topic = format!("rep-{}", &Uuid::new_v4().simple().to_string()[..8]);
    let join = JoinQueueRequest {
        interests: Some(vec![topic]),
        interest_mode: Some(InterestMode::Required),
        ..JoinQueueRequest::default()
    };
    let mut rude_live = rude.connect().await.unwrap();
    // The good user waits longest, yet never meets the two in low standing.
    good.join_queue(&join).await.unwrap();
    let waiting = rude.join_queue(&join).await.unwrap();
    let since = waiting.waiting_since.expect("waiting, not matched at once");
    ruder.join_queue(&join).await.unwrap();
    let info = next(&mut rude_live, "rude matched", |e| match e {
        Event::Matched(info) => Some(info),
        _ => None,
    })
    .await;
    assert_eq!(info.partner.id, ruder_id, "only with each other");
    assert!(
        info.matched_at - since >= time::Duration::seconds(1),
        "not before the hold: waited {}",
        info.matched_at - since
    );
    let status = good.queue_status().await.unwrap();
    assert_eq!(
        status.state,
        client_sdk::api::matching::QueueState::Waiting,
        "the good user is still waiting for someone in good standing"
    );
    platform.shutdown().await;
}
