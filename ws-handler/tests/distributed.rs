//! End to end through the gateway with two ws-handler instances on the real Redis relay
//! and registry: users on different handlers exchange messages, acks, delivered and read
//! statuses, typing and presence; several connections of one user each get every event
//! once; a reconnect to the other handler resumes without gap or duplicate.

mod support;

use std::time::Duration;

use client_sdk::Event;
use support::{
    Backplane, Handler, RawClient, Stack, connect_avoiding, next_event, raw_connect, test_config,
};
use test_support::backend_url;
use uuid::Uuid;
use wire::protocol::{ClientFrame, ResumePoint, ServerFrame};

/// Two handlers on Redis, both live.
async fn two_handlers(redis: &str) -> (Stack, Handler, Handler) {
    let stack = Stack::start(Backplane::Redis(redis.to_owned()), Duration::from_secs(3)).await;
    let one = stack.start_handler(test_config()).await;
    let two = stack.start_handler(test_config()).await;
    stack.wait_live(&[one.id, two.id]).await;
    (stack, one, two)
}

/// The handler holding the user's only connection.
async fn handler_of(stack: &Stack, user_id: Uuid) -> Uuid {
    let connections = stack.connections_of(user_id).await;
    assert_eq!(connections.len(), 1, "one connection registered");
    connections[0].handler_id
}

fn message_text(event: Event) -> Option<(u64, String)> {
    match event {
        Event::Message(m) => Some((m.seq, m.text)),
        _ => None,
    }
}

#[tokio::test]
async fn users_on_two_handlers_exchange_messages_statuses_typing_and_presence() {
    let Some(redis) = backend_url("REDIS_URL") else {
        return;
    };
    let (stack, one, two) = two_handlers(&redis).await;
    let (alice_client, alice) = stack.signup("alice").await;
    let (bob_client, bob) = stack.signup("bob").await;

    // Alice lands somewhere; Bob on the other instance.
    let mut a = alice_client.connect().await.unwrap();
    let alice_handler = handler_of(&stack, alice.id).await;
    let (mut b, bob_handler) =
        connect_avoiding(&stack, &bob_client, &bob, alice_handler, Default::default()).await;
    assert_ne!(alice_handler, bob_handler);
    assert!([one.id, two.id].contains(&alice_handler));
    assert!([one.id, two.id].contains(&bob_handler));
    let chat = stack.create_chat(&alice, &bob).await;

    // A message crosses handlers: ack to Alice, message to Bob, whose SDK acks delivery.
    let ack = a.send(chat.id, "hello bob").await.unwrap();
    assert_eq!((ack.chat_id, ack.seq), (chat.id, 1));
    let got = next_event(&mut b, "bob gets the message", |e| match e {
        Event::Message(m) => Some(m),
        _ => None,
    })
    .await;
    assert_eq!(
        (got.seq, got.sender_id, got.text.as_str()),
        (1, alice.id, "hello bob")
    );
    assert_eq!(got.id, ack.message_id);
    let delivered = next_event(&mut a, "alice sees delivered", |e| match e {
        Event::Status(w) if w.user_id == bob.id => Some(w),
        _ => None,
    })
    .await;
    assert_eq!((delivered.delivered_seq, delivered.read_seq), (1, 0));

    // Read status.
    b.mark_read(chat.id, 1).unwrap();
    let read = next_event(&mut a, "alice sees read", |e| match e {
        Event::Status(w) if w.user_id == bob.id && w.read_seq == 1 => Some(w),
        _ => None,
    })
    .await;
    assert_eq!(read.delivered_seq, 1);

    // The other way round.
    let ack = b.send(chat.id, "hi alice").await.unwrap();
    assert_eq!(ack.seq, 2);
    let got = next_event(&mut a, "alice gets the reply", message_text).await;
    assert_eq!(got, (2, "hi alice".to_owned()));
    let delivered = next_event(&mut b, "bob sees delivered", |e| match e {
        Event::Status(w) if w.user_id == alice.id => Some(w),
        _ => None,
    })
    .await;
    assert_eq!(delivered.delivered_seq, 2);

    // Typing reaches the partner only.
    a.typing(chat.id, true).unwrap();
    let typing = next_event(&mut b, "bob sees typing", |e| match e {
        Event::Typing {
            chat_id,
            user_id,
            typing,
        } => Some((chat_id, user_id, typing)),
        _ => None,
    })
    .await;
    assert_eq!(typing, (chat.id, alice.id, true));

    // Presence: Bob leaves (Alice learns he is offline), comes back (online), and his
    // new connection learns that Alice is online.
    b.close();
    drop(b);
    let offline = next_event(&mut a, "bob offline", |e| match e {
        Event::Presence {
            user_id, online, ..
        } if user_id == bob.id => Some(online),
        _ => None,
    })
    .await;
    assert!(!offline);
    let mut b = bob_client.connect().await.unwrap();
    let online = next_event(&mut a, "bob online", |e| match e {
        Event::Presence {
            user_id, online, ..
        } if user_id == bob.id => Some(online),
        _ => None,
    })
    .await;
    assert!(online);
    let partner = next_event(&mut b, "alice's presence", |e| match e {
        Event::Presence {
            chat_id,
            user_id,
            online,
        } => Some((chat_id, user_id, online)),
        _ => None,
    })
    .await;
    assert_eq!(partner, (chat.id, alice.id, true));

    // Messages keep flowing after Bob's reconnect, in order and once.
    for i in 0..5 {
        b.send(chat.id, &format!("again {i}")).await.unwrap();
    }
    for i in 0..5 {
        let got = next_event(&mut a, "alice gets the burst", message_text).await;
        assert_eq!(got, (3 + i, format!("again {i}")));
    }
    drop(a);
    drop(b);
    stack.cleanup().await;
}

/// Reads frames until a `message` with `seq`, returning every `message` seq seen and the
/// other frames' kinds it skipped.
async fn messages_until(client: &mut RawClient, last: u64) -> Vec<u64> {
    let mut seqs = Vec::new();
    loop {
        if let ServerFrame::Message { message } = client.frame().await {
            seqs.push(message.seq);
            if message.seq >= last {
                return seqs;
            }
        }
    }
}

#[tokio::test]
async fn every_connection_of_a_user_gets_each_event_once_and_closing_one_keeps_the_other() {
    let Some(redis) = backend_url("REDIS_URL") else {
        return;
    };
    let (stack, one, two) = two_handlers(&redis).await;
    let (_, alice) = stack.signup("alice").await;
    let (bob_client, bob) = stack.signup("bob").await;
    let chat = stack.create_chat(&alice, &bob).await;

    // Alice on both handlers at once (two devices), connected directly.
    let token = stack.token_for(alice.id);
    let mut first = raw_connect(&one.ws_url(), Some(&token), None).await.open();
    let mut second = raw_connect(&two.ws_url(), Some(&token), None).await.open();
    let mut ids = Vec::new();
    for client in [&mut first, &mut second] {
        ids.push(
            client
                .frame_where(|f| match f {
                    ServerFrame::Hello { connection_id, .. } => Some(connection_id),
                    _ => None,
                })
                .await,
        );
    }
    support::wait_until("both registered", || async {
        (stack.connections_of(alice.id).await.len() == 2).then_some(())
    })
    .await;

    let b = bob_client.connect().await.unwrap();
    for i in 1..=3 {
        b.send(chat.id, &format!("m{i}")).await.unwrap();
    }
    b.typing(chat.id, true).unwrap();
    b.send(chat.id, "marker").await.unwrap();
    for client in [&mut first, &mut second] {
        let mut seqs = Vec::new();
        let mut typing = 0;
        loop {
            match client.frame().await {
                ServerFrame::Message { message } => {
                    seqs.push(message.seq);
                    if message.text == "marker" {
                        break;
                    }
                }
                ServerFrame::Typing { user_id, .. } if user_id == bob.id => typing += 1,
                _ => {}
            }
        }
        assert_eq!(seqs, vec![1, 2, 3, 4], "each message once, in order");
        assert_eq!(typing, 1, "the typing event once");
    }

    // A send from one device reaches the other as a message, the sender as an ack only.
    first
        .send(&ClientFrame::Send {
            chat_id: chat.id,
            client_msg_id: "from-first".to_owned(),
            text: "from my phone".to_owned(),
        })
        .await;
    let acked = first
        .frame_where(|f| match f {
            ServerFrame::Ack { seq, .. } => Some(seq),
            ServerFrame::Message { message } => panic!("own message echoed: {message:?}"),
            _ => None,
        })
        .await;
    assert_eq!(acked, 5);
    assert_eq!(messages_until(&mut second, 5).await, vec![5]);

    // Closing the first device deregisters that connection only.
    first.socket.close(None).await.unwrap();
    support::wait_until("first deregistered", || async {
        let list = stack.connections_of(alice.id).await;
        (list.len() == 1).then(|| list[0].connection_id)
    })
    .await;
    assert_eq!(
        stack.connections_of(alice.id).await[0].connection_id,
        ids[1]
    );
    b.send(chat.id, "still there?").await.unwrap();
    assert_eq!(messages_until(&mut second, 6).await, vec![6]);
    drop(b);
    stack.cleanup().await;
}

#[tokio::test]
async fn a_reconnect_to_the_other_handler_resumes_without_gap_or_duplicate() {
    let Some(redis) = backend_url("REDIS_URL") else {
        return;
    };
    let (stack, one, two) = two_handlers(&redis).await;
    let (_, alice) = stack.signup("alice").await;
    let (bob_client, bob) = stack.signup("bob").await;
    let chat = stack.create_chat(&alice, &bob).await;
    let b = bob_client.connect().await.unwrap();
    let token = stack.token_for(alice.id);

    let mut on_one = raw_connect(&one.ws_url(), Some(&token), None).await.open();
    on_one
        .frame_where(|f| matches!(f, ServerFrame::Hello { .. }).then_some(()))
        .await;
    support::wait_until("registered", || async {
        (!stack.connections_of(alice.id).await.is_empty()).then_some(())
    })
    .await;
    for i in 1..=3 {
        b.send(chat.id, &format!("live {i}")).await.unwrap();
    }
    assert_eq!(messages_until(&mut on_one, 3).await, vec![1, 2, 3]);
    on_one.socket.close(None).await.unwrap();
    drop(on_one);

    // Missed while away.
    for i in 4..=7 {
        b.send(chat.id, &format!("missed {i}")).await.unwrap();
    }
    let mut on_two = raw_connect(&two.ws_url(), Some(&token), None).await.open();
    on_two
        .send(&ClientFrame::Resume {
            chats: vec![ResumePoint {
                chat_id: chat.id,
                last_seq: 3,
            }],
        })
        .await;
    // Live messages sent while the catch-up runs must come after it, once each.
    let sender = tokio::spawn(async move {
        for i in 8..=10 {
            b.send(chat.id, &format!("live {i}")).await.unwrap();
        }
        b
    });
    let mut seqs = Vec::new();
    let mut resumed_at = None;
    // `resumed` may also come after seq 10, when the catch-up read already found the live ones.
    while seqs.last() != Some(&10) || resumed_at.is_none() {
        match on_two.frame().await {
            ServerFrame::Message { message } => seqs.push(message.seq),
            ServerFrame::Resumed { chats } => {
                assert_eq!(chats.len(), 1);
                resumed_at = Some(seqs.len());
            }
            _ => {}
        }
    }
    assert_eq!(seqs, (4..=10).collect::<Vec<u64>>(), "no gap, no duplicate");
    let resumed_at = resumed_at.expect("resumed was sent");
    assert!(resumed_at >= 4, "the missed messages come before `resumed`");
    drop(sender.await.unwrap());
    stack.cleanup().await;
}
