//! Resume on one handler, frame by frame: live messages that reach a connection before its
//! first frame wait for a possible `resume`, so catch-up comes first, in order, and
//! nothing is sent twice; a client that never resumes still gets them.

mod support;

use std::time::Duration;

use support::{Backplane, RawClient, Stack, raw_connect, test_config};
use uuid::Uuid;
use wire::api::auth::PublicProfile;
use wire::domain::Gender;
use wire::protocol::{ClientFrame, ResumePoint, ServerFrame};

fn profile(id: Uuid) -> PublicProfile {
    PublicProfile {
        id,
        display_name: "user".to_owned(),
        gender: Gender::Other,
        age: 30,
        interests: Vec::new(),
    }
}

async fn connect(url: &str, token: &str) -> RawClient {
    let mut client = raw_connect(url, Some(token), None).await.open();
    client
        .frame_where(|f| matches!(f, ServerFrame::Hello { .. }).then_some(()))
        .await;
    client
}

async fn send(client: &mut RawClient, chat_id: Uuid, id: &str) -> u64 {
    client
        .send(&ClientFrame::Send {
            chat_id,
            client_msg_id: id.to_owned(),
            text: id.to_owned(),
        })
        .await;
    client
        .frame_where(|f| match f {
            ServerFrame::Ack { seq, .. } => Some(seq),
            _ => None,
        })
        .await
}

#[tokio::test]
async fn live_messages_before_the_first_frame_wait_for_resume_and_are_not_repeated() {
    let stack = Stack::start(Backplane::Embedded, Duration::from_secs(3)).await;
    let handler = stack.start_handler(test_config()).await;
    let (alice, bob) = (Uuid::new_v4(), Uuid::new_v4());
    let chat = stack.create_chat(&profile(alice), &profile(bob)).await;
    let url = handler.ws_url();
    let alice_token = stack.token_for(alice);
    let bob_token = stack.token_for(bob);

    let mut bob_phone = connect(&url, &bob_token).await;
    let mut bob_laptop = connect(&url, &bob_token).await;
    bob_laptop.send(&ClientFrame::Ping { nonce: None }).await;
    for i in 1..=3 {
        send(&mut bob_phone, chat.id, &format!("m{i}")).await;
    }

    // Alice connects; two messages go live before she says anything.
    let mut alice_phone = connect(&url, &alice_token).await;
    for i in 4..=5 {
        send(&mut bob_phone, chat.id, &format!("m{i}")).await;
    }
    // The relay hands one event to all of a handler's target connections at once: once
    // Bob's other device has message 5, Alice's connection holds 4 and 5.
    let mut laptop_seqs = Vec::new();
    while laptop_seqs.last() != Some(&5) {
        if let ServerFrame::Message { message } = bob_laptop.frame().await {
            laptop_seqs.push(message.seq);
        }
    }
    assert_eq!(laptop_seqs, vec![1, 2, 3, 4, 5]);

    alice_phone
        .send(&ClientFrame::Resume {
            chats: vec![ResumePoint {
                chat_id: chat.id,
                last_seq: 0,
            }],
        })
        .await;
    let mut seqs = Vec::new();
    loop {
        match alice_phone.frame().await {
            ServerFrame::Message { message } => seqs.push(message.seq),
            ServerFrame::Resumed { chats } => {
                assert_eq!(chats[0].last_seq, 5);
                break;
            }
            _ => {}
        }
    }
    assert_eq!(
        seqs,
        vec![1, 2, 3, 4, 5],
        "catch-up in order, nothing before it"
    );
    // Live again, and nothing repeated in between.
    send(&mut bob_phone, chat.id, "m6").await;
    let next = alice_phone
        .frame_where(|f| match f {
            ServerFrame::Message { message } => Some(message.seq),
            _ => None,
        })
        .await;
    assert_eq!(next, 6);

    // A client that never sends a frame still gets live messages.
    let mut silent = connect(&url, &alice_token).await;
    send(&mut bob_phone, chat.id, "m7").await;
    let got = silent
        .frame_where(|f| match f {
            ServerFrame::Message { message } => Some(message.seq),
            _ => None,
        })
        .await;
    assert_eq!(got, 7);
    stack.cleanup().await;
}

#[tokio::test]
async fn a_resume_naming_hundreds_of_foreign_chats_refuses_each_and_catches_up_its_own() {
    let stack = Stack::start(Backplane::Embedded, Duration::from_secs(3)).await;
    let handler = stack.start_handler(test_config()).await;
    let (alice, bob, carol) = (Uuid::new_v4(), Uuid::new_v4(), Uuid::new_v4());
    let chat = stack.create_chat(&profile(alice), &profile(bob)).await;
    // A chat that exists but is not Alice's.
    let theirs = stack.create_chat(&profile(bob), &profile(carol)).await;
    let url = handler.ws_url();
    let mut bob_phone = connect(&url, &stack.token_for(bob)).await;
    for i in 1..=2 {
        send(&mut bob_phone, chat.id, &format!("m{i}")).await;
    }

    let mut alice_phone = connect(&url, &stack.token_for(alice)).await;
    let mut points: Vec<ResumePoint> = (0..900)
        .map(|_| ResumePoint {
            chat_id: Uuid::new_v4(),
            last_seq: 0,
        })
        .collect();
    points.push(ResumePoint {
        chat_id: theirs.id,
        last_seq: 0,
    });
    points.push(ResumePoint {
        chat_id: chat.id,
        last_seq: 0,
    });
    alice_phone
        .send(&ClientFrame::Resume { chats: points })
        .await;
    let mut refused = 0;
    let mut seqs = Vec::new();
    let resumed = loop {
        match alice_phone.frame().await {
            ServerFrame::Error { code, .. } => {
                assert_eq!(code, wire::error::ErrorCode::ChatNotFound);
                refused += 1;
            }
            ServerFrame::Message { message } => seqs.push(message.seq),
            ServerFrame::Resumed { chats } => break chats,
            _ => {}
        }
    };
    assert_eq!(
        refused, 901,
        "every foreign chat, the existing one included"
    );
    assert_eq!(seqs, vec![1, 2]);
    assert_eq!(
        resumed,
        vec![ResumePoint {
            chat_id: chat.id,
            last_seq: 2
        }]
    );
    stack.cleanup().await;
}

#[tokio::test]
async fn presence_comes_right_after_hello_before_the_catch_up() {
    let stack = Stack::start(Backplane::Embedded, Duration::from_secs(3)).await;
    let handler = stack.start_handler(test_config()).await;
    let (alice, bob) = (Uuid::new_v4(), Uuid::new_v4());
    let chat = stack.create_chat(&profile(alice), &profile(bob)).await;
    let url = handler.ws_url();
    let mut bob_phone = connect(&url, &stack.token_for(bob)).await;
    for i in 1..=2 {
        send(&mut bob_phone, chat.id, &format!("m{i}")).await;
    }

    // Alice's first frame is a resume, sent before she reads anything.
    let mut alice_phone = raw_connect(&url, Some(&stack.token_for(alice)), None)
        .await
        .open();
    alice_phone
        .send(&ClientFrame::Resume {
            chats: vec![ResumePoint {
                chat_id: chat.id,
                last_seq: 0,
            }],
        })
        .await;
    let mut kinds = Vec::new();
    loop {
        match alice_phone.frame().await {
            ServerFrame::Hello { .. } => kinds.push("hello".to_owned()),
            ServerFrame::Presence {
                user_id, online, ..
            } => {
                assert_eq!((user_id, online), (bob, true));
                kinds.push("presence".to_owned());
            }
            ServerFrame::Message { message } => kinds.push(format!("message {}", message.seq)),
            ServerFrame::Resumed { .. } => {
                kinds.push("resumed".to_owned());
                break;
            }
            _ => {}
        }
    }
    assert_eq!(
        kinds,
        ["hello", "presence", "message 1", "message 2", "resumed"],
        "presence right after hello, then the catch-up"
    );
    stack.cleanup().await;
}

#[tokio::test]
async fn a_chat_that_ended_while_away_is_reported_ended_after_its_catch_up() {
    let stack = Stack::start(Backplane::Embedded, Duration::from_secs(3)).await;
    let handler = stack.start_handler(test_config()).await;
    let (alice, bob) = (Uuid::new_v4(), Uuid::new_v4());
    let chat = stack.create_chat(&profile(alice), &profile(bob)).await;
    let url = handler.ws_url();
    let mut bob_phone = connect(&url, &stack.token_for(bob)).await;
    send(&mut bob_phone, chat.id, "bye").await;
    // Bob presses Next while Alice is offline.
    let ended = reqwest::Client::new()
        .post(format!("{}/v1/chats/{}/end", stack.message_url, chat.id))
        .bearer_auth(stack.token_for(bob))
        .send()
        .await
        .unwrap();
    assert!(ended.status().is_success(), "{}", ended.status());

    let mut alice_phone = connect(&url, &stack.token_for(alice)).await;
    alice_phone
        .send(&ClientFrame::Resume {
            chats: vec![ResumePoint {
                chat_id: chat.id,
                last_seq: 0,
            }],
        })
        .await;
    let mut kinds = Vec::new();
    loop {
        match alice_phone.frame().await {
            ServerFrame::Message { message } => kinds.push(format!("message {}", message.seq)),
            ServerFrame::ChatEnded {
                chat_id, ended_by, ..
            } => {
                assert_eq!((chat_id, ended_by), (chat.id, bob));
                kinds.push("chat_ended".to_owned());
            }
            ServerFrame::Resumed { .. } => break,
            _ => {}
        }
    }
    assert_eq!(kinds, ["message 1", "chat_ended"]);
    stack.cleanup().await;
}
