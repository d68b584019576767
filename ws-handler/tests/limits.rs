//! Connection limits on real sockets: oversize frames, malformed JSON, slow readers, the
//! Origin allowlist, the idle timeout, and authentication before the upgrade (at the
//! handler and through the gateway).

mod support;

use std::time::Duration;
use wire::error::ErrorCode;

use futures::stream::FuturesUnordered;
use futures::{SinkExt, StreamExt};
use support::{Backplane, Handshake, RawClient, Stack, raw_connect, test_config, ws_url};
use tokio_tungstenite::tungstenite::Message as WsMessage;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use uuid::Uuid;
use wire::api::wsmanager::RelayEnvelope;
use wire::protocol::{ClientFrame, MAX_FRAME_BYTES, ServerFrame, close};
use ws_handler::HandlerConfig;

async fn embedded() -> Stack {
    Stack::start(Backplane::Embedded, Duration::from_secs(3)).await
}

async fn hello(client: &mut RawClient) -> Uuid {
    client
        .frame_where(|f| match f {
            ServerFrame::Hello { connection_id, .. } => Some(connection_id),
            _ => None,
        })
        .await
}

#[tokio::test]
async fn a_frame_over_64_kib_closes_the_connection_with_1009() {
    let stack = embedded().await;
    let handler = stack.start_handler(test_config()).await;
    let token = stack.token_for(Uuid::new_v4());
    let mut client = raw_connect(&handler.ws_url(), Some(&token), None)
        .await
        .open();
    hello(&mut client).await;
    let text = format!(
        r#"{{"type":"ping","nonce":"{}"}}"#,
        "x".repeat(MAX_FRAME_BYTES)
    );
    client.send_text(&text).await;
    assert_eq!(client.close_code().await, Some(close::MESSAGE_TOO_BIG));
    stack.cleanup().await;
}

#[tokio::test]
async fn malformed_json_gets_an_error_and_the_connection_stays() {
    let stack = embedded().await;
    let handler = stack.start_handler(test_config()).await;
    let token = stack.token_for(Uuid::new_v4());
    let mut client = raw_connect(&handler.ws_url(), Some(&token), None)
        .await
        .open();
    hello(&mut client).await;
    for (text, expected) in [
        ("{nope", ErrorCode::InvalidJson),
        (r#"{"type":"shout"}"#, ErrorCode::UnknownType),
        (r#"{"type":"read","chat_id":"x"}"#, ErrorCode::InvalidFrame),
    ] {
        client.send_text(text).await;
        let code = client
            .frame_where(|f| match f {
                ServerFrame::Error { code, .. } => Some(code),
                _ => None,
            })
            .await;
        assert_eq!(code, expected, "answer to {text}");
    }
    client
        .send(&ClientFrame::Ping {
            nonce: Some("still-here".to_owned()),
        })
        .await;
    let nonce = client
        .frame_where(|f| match f {
            ServerFrame::Pong { nonce } => Some(nonce),
            _ => None,
        })
        .await;
    assert_eq!(nonce.as_deref(), Some("still-here"));
    stack.cleanup().await;
}

/// Opens a raw connection whose receive buffer is tiny, so that not reading it fills the
/// path quickly.
async fn tiny_buffer_client(url: &str, token: &str) -> RawClient {
    let addr = url
        .trim_start_matches("ws://")
        .split('/')
        .next()
        .unwrap()
        .parse()
        .unwrap();
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.set_recv_buffer_size(4096).unwrap();
    let stream = socket.connect(addr).await.unwrap();
    let mut request = url.into_client_request().unwrap();
    request
        .headers_mut()
        .insert("authorization", format!("Bearer {token}").parse().unwrap());
    let (socket, _) =
        tokio_tungstenite::client_async(request, tokio_tungstenite::MaybeTlsStream::Plain(stream))
            .await
            .unwrap();
    RawClient { socket }
}

#[tokio::test]
async fn a_client_that_stops_reading_is_closed_as_a_slow_consumer_and_others_are_unaffected() {
    let stack = embedded().await;
    let handler = stack
        .start_handler(HandlerConfig {
            outbound_queue: 8,
            close_timeout: Duration::from_secs(30),
            ..test_config()
        })
        .await;
    stack.wait_live(&[handler.id]).await;
    let (alice_client, alice) = stack.signup("alice").await;
    let (_, bob) = stack.signup("bob").await;
    let chat = stack.create_chat(&alice, &bob).await;
    let token = stack.token_for(bob.id);
    // Bob's phone stops reading; his laptop keeps reading.
    let mut stalled = tiny_buffer_client(&handler.ws_url(), &token).await;
    hello(&mut stalled).await;
    let mut reading = raw_connect(&handler.ws_url(), Some(&token), None)
        .await
        .open();
    hello(&mut reading).await;
    let alice_live = alice_client.connect().await.unwrap();

    let reader = tokio::spawn(async move {
        let mut seqs = Vec::new();
        loop {
            if let ServerFrame::Message { message } = reading.frame().await {
                seqs.push(message.seq);
                if message.text == "end" {
                    return (reading, seqs);
                }
            }
        }
    });
    // Large messages until the kernel buffers and the stalled connection's queue are
    // full and it is closed.
    support::wait_until("three connections", || async {
        (handler.state.connection_count() == 3).then_some(())
    })
    .await;
    let big = "x".repeat(4000);
    let mut sent = 0u64;
    while handler.state.connection_count() == 3 {
        assert!(sent < 20_000, "the stalled client was never closed");
        let batch: FuturesUnordered<_> = (0..50).map(|_| alice_live.send(chat.id, &big)).collect();
        for ack in batch.collect::<Vec<_>>().await {
            ack.unwrap();
        }
        sent += 50;
    }
    alice_live.send(chat.id, "end").await.unwrap();
    let (mut reading, seqs) = reader.await.unwrap();
    assert_eq!(
        seqs,
        (1..=sent + 1).collect::<Vec<u64>>(),
        "the reading client got everything"
    );
    assert_eq!(stalled.close_code().await, Some(close::SLOW_CONSUMER));
    // The other connection is still open.
    reading.send(&ClientFrame::Ping { nonce: None }).await;
    reading
        .frame_where(|f| matches!(f, ServerFrame::Pong { .. }).then_some(()))
        .await;
    drop(alice_live);
    stack.cleanup().await;
}

#[tokio::test]
async fn only_allowed_origins_may_connect_and_clients_without_origin_always_may() {
    let stack = embedded().await;
    let handler = stack
        .start_handler(HandlerConfig {
            allowed_origins: Some(vec!["https://chat.example".to_owned()]),
            ..test_config()
        })
        .await;
    stack.wait_live(&[handler.id]).await;
    let token = stack.token_for(Uuid::new_v4());
    for url in [handler.ws_url(), ws_url(&stack.gateway_url)] {
        match raw_connect(&url, Some(&token), Some("https://evil.example")).await {
            Handshake::Refused(status, body) => {
                assert_eq!(status, 403, "{url}");
                assert_eq!(body["error"]["code"], "origin_not_allowed");
            }
            Handshake::Open(_) => panic!("a foreign origin was let in at {url}"),
        }
        let mut allowed = raw_connect(&url, Some(&token), Some("https://chat.example"))
            .await
            .open();
        hello(&mut allowed).await;
        let mut no_origin = raw_connect(&url, Some(&token), None).await.open();
        hello(&mut no_origin).await;
    }
    stack.cleanup().await;
}

#[tokio::test]
async fn no_or_a_bad_token_is_refused_with_401_before_the_upgrade() {
    let stack = embedded().await;
    let handler = stack.start_handler(test_config()).await;
    stack.wait_live(&[handler.id]).await;
    let foreign = service_kit::token::TokenSigner::generate(
        service_kit::token::DEFAULT_ISSUER,
        service_kit::token::DEFAULT_AUDIENCE,
    )
    .sign(Uuid::new_v4(), Uuid::new_v4(), Duration::from_secs(60))
    .0;
    for url in [handler.ws_url(), ws_url(&stack.gateway_url)] {
        for token in [None, Some("not-a-jwt"), Some(foreign.as_str())] {
            match raw_connect(&url, token, None).await {
                Handshake::Refused(status, body) => {
                    assert_eq!(status, 401, "{url} with {token:?}");
                    assert!(body["error"]["code"].is_string());
                }
                Handshake::Open(_) => panic!("upgraded without a valid token at {url}"),
            }
        }
    }
    assert_eq!(handler.state.connection_count(), 0);
    stack.cleanup().await;
}

/// A handler that closes connections idle for 600 ms (and pings every 200 ms).
async fn with_short_idle_timeout(stack: &Stack) -> support::Handler {
    stack
        .start_handler(HandlerConfig {
            idle_timeout: Duration::from_millis(600),
            ..test_config()
        })
        .await
}

#[tokio::test]
async fn a_client_that_sends_nothing_is_closed_after_the_idle_timeout() {
    let stack = embedded().await;
    let handler = with_short_idle_timeout(&stack).await;
    let token = stack.token_for(Uuid::new_v4());
    let mut silent = raw_connect(&handler.ws_url(), Some(&token), None)
        .await
        .open();
    let mut pinging = raw_connect(&handler.ws_url(), Some(&token), None)
        .await
        .open();
    hello(&mut pinging).await;
    // The silent client neither reads nor answers the server's pings; the other one
    // keeps pinging.
    let deadline = tokio::time::Instant::now() + support::DEADLINE;
    while handler.state.connection_count() == 2 {
        pinging.send(&ClientFrame::Ping { nonce: None }).await;
        pinging
            .frame_where(|f| matches!(f, ServerFrame::Pong { .. }).then_some(()))
            .await;
        assert!(
            tokio::time::Instant::now() < deadline,
            "the silent client was never closed"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(silent.close_code().await, Some(close::IDLE_TIMEOUT));
    // The active one is still served.
    pinging
        .socket
        .send(WsMessage::Ping(Default::default()))
        .await
        .unwrap();
    pinging.send(&ClientFrame::Ping { nonce: None }).await;
    pinging
        .frame_where(|f| matches!(f, ServerFrame::Pong { .. }).then_some(()))
        .await;
    assert_eq!(handler.state.connection_count(), 1);
    stack.cleanup().await;
}

#[tokio::test]
async fn an_active_connection_closes_when_its_access_token_expires() {
    let stack = embedded().await;
    let handler = with_short_idle_timeout(&stack).await;
    let token = stack.token_lasting(Uuid::new_v4(), Duration::from_secs(2));
    let mut client = raw_connect(&handler.ws_url(), Some(&token), None)
        .await
        .open();
    hello(&mut client).await;
    // The client stays active (well within the idle timeout) until the server closes it:
    // activity keeps the idle timeout away but never the token's expiry.
    let deadline = tokio::time::Instant::now() + support::DEADLINE;
    let ping = serde_json::to_string(&ClientFrame::Ping { nonce: None }).unwrap();
    while handler.state.connection_count() == 1 {
        // The server may have closed the connection since the count was read.
        let _ = client
            .socket
            .send(WsMessage::Text(ping.clone().into()))
            .await;
        assert!(
            tokio::time::Instant::now() < deadline,
            "the connection outlived its token"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(client.close_code().await, Some(close::TOKEN_EXPIRED));
    stack.cleanup().await;
}

/// Sends `frame` over and over on `client`, which never reads (one every `every`, or as
/// fast as possible), until the server drops the connection (a send fails); returns how
/// many went out.
fn flood(
    mut client: RawClient,
    frame: ClientFrame,
    every: Option<Duration>,
) -> tokio::task::JoinHandle<u64> {
    let text = serde_json::to_string(&frame).unwrap();
    tokio::spawn(async move {
        let mut pace = every.map(tokio::time::interval);
        let mut sent = 0u64;
        loop {
            if let Some(pace) = &mut pace {
                pace.tick().await;
            }
            if client
                .socket
                .send(WsMessage::Text(text.clone().into()))
                .await
                .is_err()
            {
                return sent;
            }
            sent += 1;
        }
    })
}

#[tokio::test]
async fn a_client_that_floods_pings_and_never_reads_is_dropped_within_the_write_timeout() {
    let stack = embedded().await;
    let handler = stack
        .start_handler(HandlerConfig {
            // Only the write timeout can end this connection: it is never idle.
            write_timeout: Duration::from_secs(1),
            outbound_queue: 8,
            // No frame rate limit gets in the way (it would close with 4029 instead).
            frames_per_sec: 1_000_000.0,
            frames_burst: 1_000_000,
            ..test_config()
        })
        .await;
    let token = stack.token_for(Uuid::new_v4());
    let mut stalled = tiny_buffer_client(&handler.ws_url(), &token).await;
    hello(&mut stalled).await;
    let nonce = "n".repeat(wire::protocol::MAX_PING_NONCE_BYTES);
    let flooding = flood(stalled, ClientFrame::Ping { nonce: Some(nonce) }, None);
    // The pongs fill the path back to the client; the reader then waits for room in the
    // writer's queue, and the writer for the socket: both waits are bounded.
    support::wait_until("the flooding client is dropped", || async {
        (handler.state.connection_count() == 0).then_some(())
    })
    .await;
    flooding.abort();
    stack.cleanup().await;
}

#[tokio::test]
async fn a_client_that_keeps_sending_but_never_reads_is_dropped_within_the_write_timeout() {
    let stack = embedded().await;
    let handler = stack
        .start_handler(HandlerConfig {
            write_timeout: Duration::from_secs(1),
            // Far more than the test sends: the queue never overflows, so only the write
            // timeout can close the connection.
            outbound_queue: 100_000,
            ..test_config()
        })
        .await;
    stack.wait_live(&[handler.id]).await;
    let (alice_client, alice) = stack.signup("alice").await;
    let (_, bob) = stack.signup("bob").await;
    let chat = stack.create_chat(&alice, &bob).await;
    let mut stalled = tiny_buffer_client(&handler.ws_url(), &stack.token_for(bob.id)).await;
    hello(&mut stalled).await;
    let alice_live = alice_client.connect().await.unwrap();
    support::wait_until("two connections", || async {
        (handler.state.connection_count() == 2).then_some(())
    })
    .await;
    // Bob keeps the connection busy (typing frames get no answer) but reads nothing.
    let typing = flood(
        stalled,
        ClientFrame::Typing {
            chat_id: chat.id,
            typing: true,
        },
        Some(Duration::from_millis(100)),
    );
    let big = "x".repeat(4000);
    let mut sent = 0u64;
    while handler.state.connection_count() == 2 {
        assert!(sent < 20_000, "the stalled client was never dropped");
        let batch: FuturesUnordered<_> = (0..50).map(|_| alice_live.send(chat.id, &big)).collect();
        for ack in batch.collect::<Vec<_>>().await {
            ack.unwrap();
        }
        sent += 50;
    }
    typing.abort();
    // Alice's connection is untouched.
    assert_eq!(handler.state.connection_count(), 1);
    drop(alice_live);
    stack.cleanup().await;
}

#[tokio::test]
async fn a_ping_nonce_over_64_bytes_is_refused() {
    let stack = embedded().await;
    let handler = stack.start_handler(test_config()).await;
    let token = stack.token_for(Uuid::new_v4());
    let mut client = raw_connect(&handler.ws_url(), Some(&token), None)
        .await
        .open();
    hello(&mut client).await;
    let long = "n".repeat(wire::protocol::MAX_PING_NONCE_BYTES + 1);
    client.send(&ClientFrame::Ping { nonce: Some(long) }).await;
    let (code, in_reply_to) = client
        .frame_where(|f| match f {
            ServerFrame::Error {
                code, in_reply_to, ..
            } => Some((code, in_reply_to)),
            _ => None,
        })
        .await;
    assert_eq!(code, ErrorCode::InvalidFrame);
    assert_eq!(in_reply_to.as_deref(), Some("ping"));
    let exact = "n".repeat(wire::protocol::MAX_PING_NONCE_BYTES);
    client
        .send(&ClientFrame::Ping {
            nonce: Some(exact.clone()),
        })
        .await;
    let echoed = client
        .frame_where(|f| match f {
            ServerFrame::Pong { nonce } => Some(nonce),
            _ => None,
        })
        .await;
    assert_eq!(echoed, Some(exact));
    stack.cleanup().await;
}

#[tokio::test]
async fn a_close_order_from_the_relay_closes_the_connection_with_its_code() {
    let stack = embedded().await;
    let handler = stack.start_handler(test_config()).await;
    let token = stack.token_for(Uuid::new_v4());
    let mut doomed = raw_connect(&handler.ws_url(), Some(&token), None)
        .await
        .open();
    let doomed_id = hello(&mut doomed).await;
    let mut kept = raw_connect(&handler.ws_url(), Some(&token), None)
        .await
        .open();
    hello(&mut kept).await;
    // What ws-manager sends when the account went over its cap on another instance.
    let order = RelayEnvelope {
        connection_ids: vec![doomed_id],
        event: None,
        close: Some(close::TOO_MANY_CONNECTIONS),
        ..Default::default()
    };
    stack.relay.publish(handler.id, &order).await.unwrap();
    assert_eq!(doomed.close_code().await, Some(close::TOO_MANY_CONNECTIONS));
    kept.send(&ClientFrame::Ping { nonce: None }).await;
    kept.frame_where(|f| matches!(f, ServerFrame::Pong { .. }).then_some(()))
        .await;
    stack.cleanup().await;
}

#[tokio::test]
async fn opening_one_connection_too_many_closes_the_oldest_with_4009() {
    let stack = embedded().await;
    let handler = stack
        .start_handler(HandlerConfig {
            max_sockets_per_user: 2,
            ..test_config()
        })
        .await;
    let user = Uuid::new_v4();
    let token = stack.token_for(user);
    let mut clients = Vec::new();
    for _ in 0..2 {
        let mut client = raw_connect(&handler.ws_url(), Some(&token), None)
            .await
            .open();
        hello(&mut client).await;
        clients.push(client);
    }
    // Someone else's connection does not count against this user.
    let mut other = raw_connect(
        &handler.ws_url(),
        Some(&stack.token_for(Uuid::new_v4())),
        None,
    )
    .await
    .open();
    hello(&mut other).await;

    let mut newest = raw_connect(&handler.ws_url(), Some(&token), None)
        .await
        .open();
    hello(&mut newest).await;

    assert_eq!(
        clients[0].close_code().await,
        Some(close::TOO_MANY_CONNECTIONS),
        "the oldest is replaced"
    );
    support::wait_until("three connections left", || async {
        (handler.state.connection_count() == 3).then_some(())
    })
    .await;
    for client in [&mut clients[1], &mut newest, &mut other] {
        client.send(&ClientFrame::Ping { nonce: None }).await;
        client
            .frame_where(|f| matches!(f, ServerFrame::Pong { .. }).then_some(()))
            .await;
    }
    stack.cleanup().await;
}
