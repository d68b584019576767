//! A message-service outage while a client sends: the handler answers `error`
//! `unavailable`, the SDK keeps the send and resends it, and once message-service is back
//! the send is acked and delivered once.

mod support;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use client_sdk::{ConnectOptions, Event};
use service_kit::client::ServiceClient;
use support::{Backplane, Stack, Task, next_event, test_config, wait_until};
use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;

/// A TCP proxy that can be cut: while cut it closes new connections at once and has
/// closed the ones in flight.
struct Cuttable {
    url: String,
    up: Arc<AtomicBool>,
    refused: Arc<AtomicUsize>,
    generation: Arc<std::sync::Mutex<CancellationToken>>,
    _task: Task,
}

impl Cuttable {
    async fn start(target: &str) -> Cuttable {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let target = target.trim_start_matches("http://").to_owned();
        let up = Arc::new(AtomicBool::new(true));
        let refused = Arc::new(AtomicUsize::new(0));
        let generation = Arc::new(std::sync::Mutex::new(CancellationToken::new()));
        let task = tokio::spawn({
            let (up, refused, generation) = (up.clone(), refused.clone(), generation.clone());
            async move {
                while let Ok((mut inbound, _)) = listener.accept().await {
                    if !up.load(Ordering::SeqCst) {
                        refused.fetch_add(1, Ordering::SeqCst);
                        continue;
                    }
                    let cut = generation.lock().unwrap().clone();
                    let target = target.clone();
                    tokio::spawn(async move {
                        let Ok(mut outbound) = TcpStream::connect(&target).await else {
                            return;
                        };
                        tokio::select! {
                            _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound) => {}
                            () = cut.cancelled() => {}
                        }
                    });
                }
            }
        });
        Cuttable {
            url,
            up,
            refused,
            generation,
            _task: Task(task),
        }
    }

    fn cut(&self) {
        self.up.store(false, Ordering::SeqCst);
        let mut generation = self.generation.lock().unwrap();
        generation.cancel();
        *generation = CancellationToken::new();
    }

    fn restore(&self) {
        self.up.store(true, Ordering::SeqCst);
    }
}

#[tokio::test]
async fn a_send_refused_during_a_message_service_outage_is_resent_and_lands_once() {
    let stack = Stack::start(Backplane::Embedded, Duration::from_secs(3)).await;
    let proxy = Cuttable::start(&stack.message_url).await;
    let message = ServiceClient::http(
        "message-service",
        service_kit::client::default_http_client(),
        &proxy.url,
        Some(stack.credential.clone()),
    );
    let handler = stack
        .start_handler_with(test_config(), |peers| peers.message = message)
        .await;
    stack.wait_live(&[handler.id]).await;
    let (alice_client, alice) = stack.signup("alice").await;
    let (bob_client, bob) = stack.signup("bob").await;
    let chat = stack.create_chat(&alice, &bob).await;
    let options = ConnectOptions {
        resend_after: Duration::from_millis(200),
        ..ConnectOptions::default()
    };
    let a = alice_client.connect_with(options.clone()).await.unwrap();
    let mut b = bob_client.connect_with(options).await.unwrap();
    a.send(chat.id, "before").await.unwrap();

    proxy.cut();
    let sending = tokio::spawn(async move {
        let ack = a.send(chat.id, "during the outage").await;
        (a, ack)
    });
    // At least one resend met the outage.
    wait_until("a resend hit the outage", || async {
        (proxy.refused.load(Ordering::SeqCst) >= 2).then_some(())
    })
    .await;
    assert!(!sending.is_finished(), "the send is still pending");
    proxy.restore();
    let (a, ack) = sending.await.unwrap();
    let ack = ack.expect("acked once message-service is back");
    assert_eq!(ack.seq, 2);

    let mut texts = Vec::new();
    while texts.len() < 2 {
        texts.push(
            next_event(&mut b, "bob's messages", |e| match e {
                Event::Message(m) => Some((m.seq, m.text)),
                _ => None,
            })
            .await,
        );
    }
    assert_eq!(
        texts,
        vec![
            (1, "before".to_owned()),
            (2, "during the outage".to_owned())
        ]
    );
    assert_eq!(stack.stored_messages(chat.id).await.len(), 2);
    drop(a);
    drop(b);
    stack.cleanup().await;
}
