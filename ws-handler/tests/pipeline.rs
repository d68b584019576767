//! Pipelined sends: frames sent back to back, without waiting for acks, are stored in the
//! order sent (consecutive seqs), acked in that order, a refused one refuses only itself,
//! and the partner gets each message once, in seq order: on one handler, and across two
//! handlers on the Redis relay (the one-hop path, where the relay lag is measured).

mod support;

use std::time::Duration;

use service_kit::telemetry::metrics_handle;
use support::{Backplane, Handler, RawClient, Stack, raw_connect, test_config, wait_until};
use test_support::backend_url;
use test_support::metrics::metric_sum;
use uuid::Uuid;
use wire::error::ErrorCode;
use wire::protocol::{ClientFrame, ServerFrame};

/// Sends in one burst.
const BURST: usize = 60;
/// The send in the burst that names a chat that is not the sender's.
const REFUSED_AT: usize = 17;

async fn open(stack: &Stack, handler: &Handler, user_id: Uuid) -> RawClient {
    let token = stack.token_for(user_id);
    let mut client = raw_connect(&handler.ws_url(), Some(&token), None)
        .await
        .open();
    client
        .frame_where(|f| matches!(f, ServerFrame::Hello { .. }).then_some(()))
        .await;
    client
}

/// Alice (on `alice_on`) sends a burst to Bob (on `bob_on`) without reading in between,
/// one send of it to a chat that is not hers; then the acks and Bob's messages are checked.
async fn burst_keeps_send_order(stack: &Stack, alice_on: &Handler, bob_on: &Handler) {
    let (_, alice) = stack.signup("alice").await;
    let (_, bob) = stack.signup("bob").await;
    let (_, carol) = stack.signup("carol").await;
    let chat = stack.create_chat(&alice, &bob).await;
    let foreign = stack.create_chat(&bob, &carol).await;
    let mut a = open(stack, alice_on, alice.id).await;
    let mut b = open(stack, bob_on, bob.id).await;
    for user in [alice.id, bob.id] {
        wait_until("both registered", || async {
            (stack.connections_of(user).await.len() == 1).then_some(())
        })
        .await;
    }

    for i in 0..BURST {
        let chat_id = if i == REFUSED_AT { foreign.id } else { chat.id };
        a.send(&ClientFrame::Send {
            chat_id,
            client_msg_id: format!("m{i}"),
            text: format!("message {i}"),
        })
        .await;
    }

    let mut answered = Vec::new();
    while answered.len() < BURST {
        let answer = a
            .frame_where(|f| match f {
                ServerFrame::Ack {
                    client_msg_id, seq, ..
                } => Some((client_msg_id, Ok(seq))),
                ServerFrame::Error {
                    client_msg_id: Some(id),
                    code,
                    ..
                } => Some((id, Err(code))),
                _ => None,
            })
            .await;
        answered.push(answer);
    }
    let mut expected = Vec::new();
    let mut seq = 0;
    for i in 0..BURST {
        let outcome = if i == REFUSED_AT {
            Err(ErrorCode::ChatNotFound)
        } else {
            seq += 1;
            Ok(seq)
        };
        expected.push((format!("m{i}"), outcome));
    }
    assert_eq!(
        answered, expected,
        "answered in send order, seqs in send order"
    );

    let mut received = Vec::new();
    while received.len() < BURST - 1 {
        let message = b
            .frame_where(|f| match f {
                ServerFrame::Message { message } => Some(message),
                _ => None,
            })
            .await;
        received.push((message.seq, message.text));
    }
    let want: Vec<(u64, String)> = (0..BURST)
        .filter(|i| *i != REFUSED_AT)
        .zip(1u64..)
        .map(|(i, seq)| (seq, format!("message {i}")))
        .collect();
    assert_eq!(
        received, want,
        "the partner got each message once, in order"
    );
    let stored = stack.stored_messages(chat.id).await;
    assert_eq!(stored.len(), BURST - 1);
    assert!(stack.stored_messages(foreign.id).await.is_empty());
}

#[tokio::test]
async fn a_burst_of_sends_on_one_handler_keeps_its_order() {
    let stack = Stack::start(Backplane::Embedded, Duration::from_secs(3)).await;
    let handler = stack.start_handler(test_config()).await;
    burst_keeps_send_order(&stack, &handler, &handler).await;
    stack.cleanup().await;
}

#[tokio::test]
async fn a_burst_of_sends_across_two_handlers_keeps_its_order() {
    let Some(redis) = backend_url("REDIS_URL") else {
        return;
    };
    let relayed = || {
        metric_sum(
            &metrics_handle().render(),
            "ws_relay_lag_seconds_count",
            &[],
        )
    };
    let stack = Stack::start(Backplane::Redis(redis), Duration::from_secs(3)).await;
    let one = stack.start_handler(test_config()).await;
    let two = stack.start_handler(test_config()).await;
    stack.wait_live(&[one.id, two.id]).await;
    let relayed_before = relayed();
    burst_keeps_send_order(&stack, &one, &two).await;
    // Each message Bob got crossed the relay, and its lag was measured on arrival.
    let relayed_after = relayed();
    assert!(
        relayed_after >= relayed_before + (BURST - 1) as f64,
        "relay lag measured {relayed_before} -> {relayed_after} times"
    );
    stack.cleanup().await;
}
