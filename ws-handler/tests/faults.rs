//! Faults: a ws-handler process killed (SIGKILL) while clients send, and Redis killed and
//! restarted mid-conversation. Afterwards every message exists once, in order, on both
//! sides, with no manual step.

mod support;

use std::collections::{BTreeMap, HashSet};
use std::process::Stdio;
use std::time::Duration;

use client_sdk::{Ack, ConnectOptions, Connection, Event};
use futures::StreamExt;
use futures::stream::FuturesUnordered;
use support::{Backplane, Stack, connect_avoiding, next_event, test_config, wait_until};
use test_support::backend_url;
use tokio::process::{Child, Command};
use uuid::Uuid;
use wire::api::message::Message;

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A ws-handler running as its own process.
struct HandlerProcess {
    id: Uuid,
    child: Child,
}

impl HandlerProcess {
    async fn spawn(stack: &Stack) -> HandlerProcess {
        let id = Uuid::new_v4();
        let listen = format!("127.0.0.1:{}", free_port());
        let child = Command::new(env!("CARGO_BIN_EXE_ws-handler"))
            .env("WSH_LISTEN", &listen)
            .env("WSH_HANDLER_ID", id.to_string())
            .env("WSH_WS_MANAGER_URL", &stack.wsm_url)
            .env("WSH_MESSAGE_URL", &stack.message_url)
            .env("WSH_MATCHING_URL", "")
            .env("WSH_AUTH_URL", &stack.auth_url)
            .env(
                "WSH_REDIS_URL",
                stack.redis_url().expect("a Redis backplane"),
            )
            .env("WSH_HEARTBEAT_SECS", "1")
            .env("WSH_SEND_PER_SEC", "1000")
            .env("WSH_SEND_BURST", "1000")
            .env("WSH_FRAMES_PER_SEC", "5000")
            .env("WSH_FRAMES_BURST", "5000")
            .env("RC_SERVICE_TOKEN", support::SERVICE_TOKEN)
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .expect("the ws-handler binary starts");
        let url = format!("http://{listen}");
        let http = reqwest::Client::new();
        wait_until("the ws-handler process is ready", || {
            let request = http.get(format!("{url}/readyz"));
            async move {
                let response = request.send().await.ok()?;
                response.status().is_success().then_some(())
            }
        })
        .await;
        HandlerProcess { id, child }
    }
}

/// Collects a connection's messages (by seq) until `want` of them arrived from `from`.
async fn collect_messages(
    connection: &mut Connection,
    from: Uuid,
    want: usize,
    into: &mut Vec<Message>,
) {
    while into.iter().filter(|m| m.sender_id == from).count() < want {
        let message = next_event(connection, "the partner's messages", |e| match e {
            Event::Message(m) => Some(m),
            _ => None,
        })
        .await;
        into.push(message);
    }
}

/// Checks the outcome: each acked message is stored once with its acked seq, seqs run
/// 1..=n, and each side received the partner's messages once, in seq order.
fn check_exactly_once(stored: &[Message], acks: &[Ack], seen_by: &[(Uuid, &[Message])]) {
    assert_eq!(
        stored.iter().map(|m| m.seq).collect::<Vec<_>>(),
        (1..=stored.len() as u64).collect::<Vec<_>>(),
        "stored seqs run without gap"
    );
    let by_id: BTreeMap<&str, &Message> = stored
        .iter()
        .map(|m| (m.client_msg_id.as_str(), m))
        .collect();
    assert_eq!(
        by_id.len(),
        stored.len(),
        "no client message id stored twice"
    );
    assert_eq!(acks.len(), stored.len(), "every stored message was acked");
    for ack in acks {
        let message = by_id
            .get(ack.client_msg_id.as_str())
            .expect("an acked message is stored");
        assert_eq!((message.seq, message.id), (ack.seq, ack.message_id));
    }
    for (user, seen) in seen_by {
        let expected: Vec<u64> = stored
            .iter()
            .filter(|m| m.sender_id != *user)
            .map(|m| m.seq)
            .collect();
        let got: Vec<u64> = seen.iter().map(|m| m.seq).collect();
        assert_eq!(
            got, expected,
            "{user} saw the partner's messages once, in order"
        );
        let unique: HashSet<u64> = got.iter().copied().collect();
        assert_eq!(unique.len(), got.len());
    }
}

/// `next` within the deadline.
async fn in_time<T>(next: impl std::future::Future<Output = T>) -> T {
    tokio::time::timeout(support::DEADLINE, next)
        .await
        .expect("sends are acked in time")
}

fn quick_options() -> ConnectOptions {
    ConnectOptions {
        backoff_min: Duration::from_millis(50),
        backoff_max: Duration::from_millis(500),
        resend_after: Duration::from_secs(2),
        ..ConnectOptions::default()
    }
}

#[tokio::test]
async fn a_killed_handler_process_loses_no_message_and_stores_none_twice() {
    let Some(redis) = backend_url("REDIS_URL") else {
        return;
    };
    let stack = Stack::start(Backplane::Redis(redis), Duration::from_secs(3)).await;
    let mut first = HandlerProcess::spawn(&stack).await;
    let mut second = HandlerProcess::spawn(&stack).await;
    stack.wait_live(&[first.id, second.id]).await;
    let (alice_client, alice) = stack.signup("alice").await;
    let (bob_client, bob) = stack.signup("bob").await;
    let chat = stack.create_chat(&alice, &bob).await;

    // Bob lands on one process, Alice on the other (the one to die); both reconnect
    // through the gateway.
    let mut b = bob_client.connect_with(quick_options()).await.unwrap();
    let bob_handler = wait_until("bob registered", || async {
        let list = stack.connections_of(bob.id).await;
        (list.len() == 1).then(|| list[0].handler_id)
    })
    .await;
    let (mut a, alice_handler) =
        connect_avoiding(&stack, &alice_client, &alice, bob_handler, quick_options()).await;
    let (victim, survivor) = if alice_handler == first.id {
        (&mut first, &second)
    } else {
        (&mut second, &first)
    };
    let survivor_id = survivor.id;
    assert_eq!(survivor_id, bob_handler);

    // Both send concurrently; the first process dies once some of Alice's are acked.
    let a_sends: FuturesUnordered<_> = (0..40)
        .map(|i| {
            let a = &a;
            async move {
                a.send_with_id(chat.id, &format!("a-{i}"), &format!("from alice {i}"))
                    .await
            }
        })
        .collect();
    let b_sends: FuturesUnordered<_> = (0..20)
        .map(|i| {
            let b = &b;
            async move {
                b.send_with_id(chat.id, &format!("b-{i}"), &format!("from bob {i}"))
                    .await
            }
        })
        .collect();
    let mut a_sends = a_sends;
    let mut b_sends = b_sends;
    let mut acks = Vec::new();
    while acks.len() < 10 {
        acks.push(in_time(a_sends.next()).await.unwrap().unwrap());
    }
    victim.child.start_kill().unwrap();
    victim.child.wait().await.unwrap();
    let mut killed_acks = 0;
    while let Some(ack) = in_time(a_sends.next()).await {
        acks.push(ack.expect("every send is eventually acked"));
        killed_acks += 1;
    }
    assert_eq!(killed_acks, 30);
    while let Some(ack) = in_time(b_sends.next()).await {
        acks.push(ack.expect("every send is eventually acked"));
    }
    drop(a_sends);
    drop(b_sends);

    // Alice is back, on the surviving process.
    wait_until("alice reconnected", || async {
        let list = stack.connections_of(alice.id).await;
        list.iter()
            .any(|c| c.handler_id == survivor_id)
            .then_some(())
    })
    .await;

    let mut seen_by_alice = Vec::new();
    let mut seen_by_bob = Vec::new();
    collect_messages(&mut a, bob.id, 20, &mut seen_by_alice).await;
    collect_messages(&mut b, alice.id, 40, &mut seen_by_bob).await;
    let stored = stack.stored_messages(chat.id).await;
    assert_eq!(stored.len(), 60);
    check_exactly_once(
        &stored,
        &acks,
        &[(alice.id, &seen_by_alice), (bob.id, &seen_by_bob)],
    );
    drop(a);
    drop(b);
    stack.cleanup().await;
}

/// A Redis server of this test's own, on a fixed port so it can be restarted there.
struct OwnRedis {
    port: u16,
    child: Child,
}

impl OwnRedis {
    async fn start(port: u16) -> OwnRedis {
        let child = Command::new("redis-server")
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .expect("redis-server is on PATH");
        let url = format!("redis://127.0.0.1:{port}");
        wait_until("redis-server answers", || {
            let url = url.clone();
            async move {
                let client = redis::Client::open(url).ok()?;
                let mut connection = client.get_multiplexed_async_connection().await.ok()?;
                redis::cmd("PING")
                    .query_async::<String>(&mut connection)
                    .await
                    .ok()
                    .map(|_| ())
            }
        })
        .await;
        OwnRedis { port, child }
    }

    fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    async fn kill(mut self) {
        self.child.start_kill().unwrap();
        self.child.wait().await.unwrap();
    }
}

#[tokio::test]
async fn relay_and_registry_recover_by_themselves_after_a_redis_restart() {
    // This test runs its own Redis; it needs the binary, not REDIS_URL.
    if std::process::Command::new("redis-server")
        .arg("--version")
        .output()
        .is_err()
    {
        assert!(
            !test_support::backends_required(),
            "redis-server is not on PATH"
        );
        eprintln!("skipping: redis-server is not on PATH");
        return;
    }
    let redis = OwnRedis::start(free_port()).await;
    let stack = Stack::start(Backplane::Redis(redis.url()), Duration::from_secs(3)).await;
    let one = stack.start_handler(test_config()).await;
    let two = stack.start_handler(test_config()).await;
    stack.wait_live(&[one.id, two.id]).await;
    let (alice_client, alice) = stack.signup("alice").await;
    let (bob_client, bob) = stack.signup("bob").await;
    let chat = stack.create_chat(&alice, &bob).await;
    let on = |client: &client_sdk::Client, url: &str| {
        let client = client.clone();
        let url = url.to_owned();
        async move {
            let direct = client_sdk::Client::new(&url).unwrap();
            direct.set_tokens(client.tokens().await.unwrap()).await;
            direct.connect_with(quick_options()).await.unwrap()
        }
    };
    let mut a = on(&alice_client, &one.url).await;
    let mut b = on(&bob_client, &two.url).await;
    wait_until("both registered", || async {
        (stack.connections_of(alice.id).await.len() == 1
            && stack.connections_of(bob.id).await.len() == 1)
            .then_some(())
    })
    .await;

    let mut acks = vec![a.send(chat.id, "before").await.unwrap()];
    let mut seen_by_bob = Vec::new();
    collect_messages(&mut b, alice.id, 1, &mut seen_by_bob).await;

    // Redis dies: sends are still stored and acked, their live delivery is lost.
    let port = redis.port;
    redis.kill().await;
    for i in 0..3 {
        acks.push(a.send(chat.id, &format!("during {i}")).await.unwrap());
    }
    let redis = OwnRedis::start(port).await;

    // No manual step: keep talking until a message sent now arrives live; gap filling
    // brings the ones lost meanwhile, in order.
    let deadline = tokio::time::Instant::now() + support::DEADLINE;
    let mut i = 0;
    loop {
        let ack = a.send(chat.id, &format!("after {i}")).await.unwrap();
        acks.push(ack.clone());
        i += 1;
        let arrived = tokio::time::timeout(Duration::from_millis(500), async {
            collect_messages(&mut b, alice.id, ack.seq as usize, &mut seen_by_bob).await;
        })
        .await;
        if arrived.is_ok() {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "messages never flowed again after the Redis restart"
        );
    }
    wait_until("both handlers ready again", || async {
        (one.state.is_ready() && two.state.is_ready()).then_some(())
    })
    .await;
    // And the other way round.
    acks.push(b.send(chat.id, "bob after restart").await.unwrap());
    let mut seen_by_alice = Vec::new();
    collect_messages(&mut a, bob.id, 1, &mut seen_by_alice).await;

    let stored = stack.stored_messages(chat.id).await;
    check_exactly_once(
        &stored,
        &acks,
        &[(alice.id, &seen_by_alice), (bob.id, &seen_by_bob)],
    );
    drop(a);
    drop(b);
    stack.cleanup().await;
    redis.kill().await;
}
