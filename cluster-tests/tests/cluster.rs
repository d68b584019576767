//! The distributed form end to end, through the gateway of `scripts/cluster.sh`: the SDK's
//! demo conversation, users on different ws-handlers, a ws-handler killed mid-conversation,
//! the cluster's Redis restarted under queued and chatting users, and the gateway on HTTPS
//! and WSS with a generated certificate. Each test brings a cluster of its own up and down
//! (one at a time) and checks that `down` leaves none of its processes behind.

#[allow(dead_code)]
#[path = "../../client-sdk/examples/demo.rs"]
mod demo;

use std::net::TcpStream as StdTcpStream;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use client_sdk::api::auth::{Preferences, SignupRequest};
use client_sdk::api::matching::{InterestMode, JoinQueueRequest, MatchInfo, QueueState};
use client_sdk::api::message::HistoryQuery;
use client_sdk::{Client, Connection, Event, Gender};
use cluster_tests::{Cluster, Prerequisites, TlsPair, WS_HANDLERS, wait_until};
use futures::{SinkExt, StreamExt};
use tokio_tungstenite::tungstenite::Message as WsMessage;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use uuid::Uuid;
use wire::api::wsmanager::{LiveHandlers, UserConnections};
use wire::protocol::{ClientFrame, ServerFrame};

/// One cluster at a time: they would only compete for the same two cores.
static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

/// How long one step may take.
const STEP: Duration = Duration::from_secs(30);
/// How long a failure (a killed handler, a restarted Redis) may take to heal.
const HEAL: Duration = Duration::from_secs(60);

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a runtime")
}

/// Brings the cluster down and asserts that none of the processes it ever started is left.
fn down(mut cluster: Cluster) {
    let left = cluster.down().expect("scripts/cluster.sh down");
    assert!(left.is_empty(), "processes left after down: {left:?}");
}

#[test]
fn the_distributed_form_keeps_conversations_through_handler_and_redis_failures() {
    let _serial = ONE_AT_A_TIME.lock().unwrap_or_else(|p| p.into_inner());
    let Some(prerequisites) = Prerequisites::check() else {
        return;
    };
    let mut cluster = Cluster::up(&prerequisites, None).expect("the cluster comes up");
    runtime().block_on(async {
        let started = Instant::now();
        demo::run(&cluster.gateway_url())
            .await
            .expect("every step of the SDK demo happened");
        eprintln!("demo: {:.1} s", started.elapsed().as_secs_f64());

        let started = Instant::now();
        let mut chat = Conversation::across_handlers(&cluster).await;
        chat.exchange("before any failure").await;
        eprintln!("across handlers: {:.1} s", started.elapsed().as_secs_f64());

        let started = Instant::now();
        chat.survives_a_killed_handler(&cluster).await;
        eprintln!(
            "ws-handler killed: {:.1} s",
            started.elapsed().as_secs_f64()
        );

        let started = Instant::now();
        redis_restart(&mut cluster, &mut chat).await;
        eprintln!("Redis restarted: {:.1} s", started.elapsed().as_secs_f64());
    });
    down(cluster);
}

#[test]
fn the_cluster_gateway_serves_https_and_wss_with_a_given_certificate() {
    let _serial = ONE_AT_A_TIME.lock().unwrap_or_else(|p| p.into_inner());
    let Some(prerequisites) = Prerequisites::check() else {
        return;
    };
    let generated = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()])
        .expect("a self-signed certificate");
    let pair = TlsPair {
        cert_pem: generated.cert.pem(),
        key_pem: generated.signing_key.serialize_pem(),
    };
    let cluster = Cluster::up(&prerequisites, Some(&pair)).expect("the cluster comes up");
    runtime().block_on(async {
        let url = cluster.gateway_url();
        assert!(url.starts_with("https://"), "{url}");

        // A client that does not trust the certificate gets nowhere.
        let untrusted = Client::new(&url).unwrap();
        let refused = untrusted.signup(&signup_request("mallory", "tls")).await;
        assert!(refused.is_err(), "an untrusted certificate was accepted");

        let http = reqwest::Client::builder()
            .tls_certs_only([reqwest::Certificate::from_pem(pair.cert_pem.as_bytes()).unwrap()])
            .timeout(STEP)
            .build()
            .unwrap();
        let topic = topic();
        let ann = Client::with_http(&url, http.clone()).unwrap();
        let bob = Client::with_http(&url, http).unwrap();
        sign_up(&ann, "ann", Gender::Female, Gender::Male, &topic).await;
        sign_up(&bob, "bob", Gender::Male, Gender::Female, &topic).await;

        let tls = rustls_client(&generated.cert);
        let mut ann_ws = wss_connect(&cluster, &tls, &ann).await;
        let mut bob_ws = wss_connect(&cluster, &tls, &bob).await;
        ann.join_queue(&join(&topic)).await.unwrap();
        bob.join_queue(&join(&topic)).await.unwrap();
        let chat = next_frame(&mut ann_ws, |f| match f {
            ServerFrame::Matched { info } => Some(info.chat_id),
            _ => None,
        })
        .await;
        let bob_chat = next_frame(&mut bob_ws, |f| match f {
            ServerFrame::Matched { info } => Some(info.chat_id),
            _ => None,
        })
        .await;
        assert_eq!(chat, bob_chat);

        let send = ClientFrame::Send {
            chat_id: chat,
            client_msg_id: "tls-1".to_owned(),
            text: "hello over wss".to_owned(),
        };
        ann_ws
            .send(WsMessage::text(serde_json::to_string(&send).unwrap()))
            .await
            .unwrap();
        let seq = next_frame(&mut ann_ws, |f| match f {
            ServerFrame::Ack { seq, .. } => Some(seq),
            _ => None,
        })
        .await;
        let received = next_frame(&mut bob_ws, |f| match f {
            ServerFrame::Message { message } => Some(message),
            _ => None,
        })
        .await;
        assert_eq!(
            (received.seq, received.text.as_str()),
            (seq, "hello over wss")
        );
    });
    down(cluster);
}

// ---- the conversation across handlers and its failures ------------------------------

/// Two matched users on different ws-handlers, and every message either side had acked.
struct Conversation {
    ann: User,
    bob: User,
    chat: Uuid,
    /// Every acked send: (seq, text, sender).
    acked: Vec<(u64, String, Uuid)>,
}

struct User {
    client: Client,
    id: Uuid,
    connection: Connection,
    /// Seqs of the chat's messages received, in arrival order.
    received: Vec<u64>,
}

impl Conversation {
    /// Ann connects wherever the gateway places her, Bob on the other ws-handler; then
    /// they queue on a topic of their own and are matched.
    async fn across_handlers(cluster: &Cluster) -> Self {
        let topic = topic();
        let url = cluster.gateway_url();
        let ann_client = Client::new(&url).unwrap();
        let bob_client = Client::new(&url).unwrap();
        sign_up(&ann_client, "ann", Gender::Female, Gender::Male, &topic).await;
        sign_up(&bob_client, "bob", Gender::Male, Gender::Female, &topic).await;
        let ann_id = ann_client.user_id().await.unwrap();
        let bob_id = bob_client.user_id().await.unwrap();

        let mut ann_connection = ann_client.connect().await.unwrap();
        wait_event(&mut ann_connection, "ann connected", |e| {
            matches!(e, Event::Connected { .. }).then_some(())
        })
        .await;
        let ann_handler = single_handler(cluster, ann_id).await;
        let (bob_connection, bob_handler) =
            connect_avoiding(cluster, &bob_client, bob_id, &ann_handler).await;
        assert_ne!(ann_handler, bob_handler);
        eprintln!("ann is on {ann_handler}, bob on {bob_handler}");

        let mut ann = User {
            client: ann_client,
            id: ann_id,
            connection: ann_connection,
            received: Vec::new(),
        };
        let mut bob = User {
            client: bob_client,
            id: bob_id,
            connection: bob_connection,
            received: Vec::new(),
        };
        ann.client.join_queue(&join(&topic)).await.unwrap();
        bob.client.join_queue(&join(&topic)).await.unwrap();
        let ann_match = matched(&mut ann.connection).await;
        let bob_match = matched(&mut bob.connection).await;
        assert_eq!(ann_match.chat_id, bob_match.chat_id);
        assert_eq!(ann_match.partner.id, bob.id);
        Self {
            ann,
            bob,
            chat: ann_match.chat_id,
            acked: Vec::new(),
        }
    }

    /// Ann sends, Bob receives; Bob answers, Ann receives.
    async fn exchange(&mut self, label: &str) {
        let text = format!("ann: {label}");
        let ack = heal("ann's ack", self.ann.connection.send(self.chat, &text)).await;
        self.acked.push((ack.seq, text, self.ann.id));
        self.bob.receive_up_to(self.chat, ack.seq).await;
        let text = format!("bob: {label}");
        let ack = heal("bob's ack", self.bob.connection.send(self.chat, &text)).await;
        self.acked.push((ack.seq, text, self.bob.id));
        self.ann.receive_up_to(self.chat, ack.seq).await;
    }

    /// kill -9 of Bob's ws-handler mid-conversation: Ann, on the other one, goes on
    /// sending; Bob's SDK reconnects through the gateway to the surviving handler,
    /// resumes, and sends what he wrote meanwhile. Nothing acked is lost, nothing arrives
    /// twice, Bob gets the missed messages in seq order.
    async fn survives_a_killed_handler(&mut self, cluster: &Cluster) {
        let bob_handler = single_handler(cluster, self.bob.id).await;
        let ann_handler = single_handler(cluster, self.ann.id).await;
        assert!(
            cluster.signal(&bob_handler, "KILL").unwrap(),
            "{bob_handler} was running"
        );
        wait_event(&mut self.bob.connection, "bob's disconnect", |e| {
            matches!(e, Event::Disconnected { .. }).then_some(())
        })
        .await;

        for i in 1..=3 {
            let text = format!("ann, while bob's handler is down: {i}");
            let ack = step("ann's ack", self.ann.connection.send(self.chat, &text)).await;
            self.acked.push((ack.seq, text, self.ann.id));
        }
        // Sent while disconnected: the SDK holds it until it is connected again.
        let text = "bob, written while disconnected".to_owned();
        let ack = heal("bob's ack", self.bob.connection.send(self.chat, &text)).await;
        self.acked.push((ack.seq, text, self.bob.id));
        self.bob
            .receive_up_to(self.chat, self.highest_of(self.ann.id))
            .await;
        self.ann
            .receive_up_to(self.chat, self.highest_of(self.bob.id))
            .await;

        wait_until("bob registered on the surviving handler", HEAL, || async {
            handlers_of(cluster, self.bob.id)
                .await
                .contains(&ann_handler)
                .then_some(())
        })
        .await;
        self.exchange("after the handler died").await;
        self.check().await;
    }

    /// The highest acked seq `sender` sent.
    fn highest_of(&self, sender: Uuid) -> u64 {
        self.acked
            .iter()
            .filter(|(_, _, from)| *from == sender)
            .map(|(seq, _, _)| *seq)
            .max()
            .unwrap_or(0)
    }

    /// Every acked message is in the history once, seqs run 1..=N without gaps, and each
    /// side received the other's messages in seq order, none twice.
    async fn check(&self) {
        let history = self
            .ann
            .client
            .history(self.chat, &HistoryQuery::default())
            .await
            .unwrap();
        let seqs: Vec<u64> = history.messages.iter().map(|m| m.message.seq).collect();
        let mut sorted = seqs.clone();
        sorted.sort_unstable();
        let expected: Vec<u64> = (1..=self.acked.len() as u64).collect();
        assert_eq!(
            sorted, expected,
            "the history holds every acked message once"
        );
        for (seq, text, sender) in &self.acked {
            let stored = history
                .messages
                .iter()
                .find(|m| m.message.seq == *seq)
                .unwrap();
            assert_eq!(
                (&stored.message.text, stored.message.sender_id),
                (text, *sender),
                "seq {seq}"
            );
        }
        for user in [&self.ann, &self.bob] {
            assert!(
                user.received.windows(2).all(|w| w[0] < w[1]),
                "in seq order, none twice: {:?}",
                user.received
            );
        }
    }
}

impl User {
    /// Reads events until the partner's message `seq` has arrived (messages come in seq
    /// order, so every earlier one of the partner's has too; own messages come back as
    /// acks, not events).
    async fn receive_up_to(&mut self, chat: Uuid, seq: u64) {
        let me = self.id;
        let deadline = Instant::now() + HEAL;
        let partner_seqs_held = |received: &Vec<u64>| received.last().is_some_and(|s| *s >= seq);
        while !partner_seqs_held(&self.received) {
            let left = deadline.saturating_duration_since(Instant::now());
            let event = tokio::time::timeout(left, self.connection.next_event())
                .await
                .unwrap_or_else(|_| panic!("seq {seq} never arrived; got {:?}", self.received))
                .expect("the connection stays open");
            match event {
                Event::Message(m) if m.chat_id == chat && m.sender_id != me => {
                    self.received.push(m.seq);
                }
                Event::Error { code, message } => panic!("refused: {message} ({code:?})"),
                _ => {}
            }
        }
    }
}

/// The Redis of the cluster restarts (empty: it keeps nothing on disk) while two users
/// wait in the queue and Ann and Bob are mid-conversation. Each queued user is matched
/// afterwards or sees from the queue status that they must queue again (never left
/// waiting for nothing); the conversation goes on.
async fn redis_restart(cluster: &mut Cluster, chat: &mut Conversation) {
    let url = cluster.gateway_url();
    let mut queued = Vec::new();
    for name in ["eve", "frank"] {
        let topic = topic();
        let client = Client::new(&url).unwrap();
        sign_up(&client, name, Gender::Female, Gender::Male, &topic).await;
        let mut connection = client.connect().await.unwrap();
        wait_event(&mut connection, "connected", |e| {
            matches!(e, Event::Connected { .. }).then_some(())
        })
        .await;
        let status = client.join_queue(&join(&topic)).await.unwrap();
        assert_eq!(status.state, QueueState::Waiting, "{name} waits alone");
        queued.push((name, topic, client, connection));
    }

    let redis = cluster
        .pid("redis")
        .unwrap()
        .expect("the cluster's own Redis runs");
    assert!(cluster.signal("redis", "KILL").unwrap());
    let port = cluster.redis_port();
    wait_until("Redis is gone", STEP, || async {
        StdTcpStream::connect(("127.0.0.1", port))
            .is_err()
            .then_some(())
    })
    .await;
    assert!(!cluster_tests::running(redis));
    // `up` starts what is missing (Redis, and the ws-handler killed before) and waits
    // until every instance is ready again.
    tokio::task::block_in_place(|| cluster.start()).expect("the cluster comes back");

    // Partners for the queued users arrive after the restart.
    let mut partners = Vec::new();
    for (name, topic, _, _) in &queued {
        let client = Client::new(&url).unwrap();
        sign_up(
            &client,
            &format!("{name}s_match"),
            Gender::Male,
            Gender::Female,
            topic,
        )
        .await;
        let connection = client.connect().await.unwrap();
        heal("a partner's queue join", client.join_queue(&join(topic))).await;
        partners.push((client, connection));
    }
    for ((name, topic, client, connection), (partner, _)) in queued.iter_mut().zip(&partners) {
        let partner_id = partner.user_id().await.unwrap();
        let (info, told) = matched_or_told(client, connection, topic).await;
        assert_eq!(
            info.partner.id, partner_id,
            "{name} is matched with the newcomer"
        );
        eprintln!(
            "{name}: {}",
            if told {
                "the queue status said to queue again; matched after that"
            } else {
                "matched from the queue as it was"
            }
        );
    }

    // The conversation goes on: live, or after the SDK reconnected and resumed.
    chat.exchange("after Redis restarted").await;
    chat.check().await;
}

/// Waits until the queued user is matched; whenever the queue status says the user is
/// no longer queued (the queue was lost), queues again. Returns the match and whether
/// the user was told to queue again.
async fn matched_or_told(
    client: &Client,
    connection: &mut Connection,
    topic: &str,
) -> (MatchInfo, bool) {
    let deadline = Instant::now() + HEAL;
    let mut told = false;
    loop {
        assert!(
            Instant::now() < deadline,
            "neither matched nor told to re-queue"
        );
        let event = tokio::time::timeout(Duration::from_millis(500), connection.next_event()).await;
        match event {
            Ok(Some(Event::Matched(info))) => return (info, told),
            Ok(Some(_)) => continue,
            Ok(None) => panic!("the connection closed"),
            Err(_) => {}
        }
        // Nothing pushed for a while: ask where the user stands.
        let Ok(status) = client.queue_status().await else {
            continue;
        };
        match status.state {
            QueueState::Matched => {
                return (
                    status.matched.expect("a matched status names the match"),
                    told,
                );
            }
            QueueState::Idle => {
                told = true;
                let _ = client.join_queue(&join(topic)).await;
            }
            QueueState::Waiting => {}
        }
    }
}

// ---- helpers -------------------------------------------------------------------------

fn topic() -> String {
    format!("cluster-{}", &Uuid::new_v4().simple().to_string()[..10])
}

fn signup_request(name: &str, topic: &str) -> SignupRequest {
    SignupRequest {
        username: format!("{name}_{}", &Uuid::new_v4().simple().to_string()[..10]),
        password: "cluster test password".to_owned(),
        display_name: name.to_owned(),
        gender: Gender::Other,
        birth_date: time::macros::date!(1995 - 03 - 02),
        interests: vec![topic.to_owned()],
    }
}

/// Signs up (logged in afterwards) as `gender` wanting `wants`, interested in `topic`.
async fn sign_up(client: &Client, name: &str, gender: Gender, wants: Gender, topic: &str) {
    let mut request = signup_request(name, topic);
    request.gender = gender;
    client.signup(&request).await.expect("signup");
    client
        .set_preferences(&Preferences {
            genders: vec![wants],
            min_age: 18,
            max_age: 80,
            interests: vec![topic.to_owned()],
            ..Default::default()
        })
        .await
        .expect("preferences");
}

fn join(topic: &str) -> JoinQueueRequest {
    JoinQueueRequest {
        interests: Some(vec![topic.to_owned()]),
        interest_mode: Some(InterestMode::Required),
        ..JoinQueueRequest::default()
    }
}

async fn step<T, E: std::fmt::Debug>(
    what: &str,
    future: impl std::future::Future<Output = Result<T, E>>,
) -> T {
    within(STEP, what, future).await
}

async fn heal<T, E: std::fmt::Debug>(
    what: &str,
    future: impl std::future::Future<Output = Result<T, E>>,
) -> T {
    within(HEAL, what, future).await
}

async fn within<T, E: std::fmt::Debug>(
    limit: Duration,
    what: &str,
    future: impl std::future::Future<Output = Result<T, E>>,
) -> T {
    match tokio::time::timeout(limit, future).await {
        Ok(Ok(value)) => value,
        Ok(Err(err)) => panic!("{what}: {err:?}"),
        Err(_) => panic!("{what}: nothing within {limit:?}"),
    }
}

/// The first event `pick` accepts, within [`HEAL`].
async fn wait_event<T>(
    connection: &mut Connection,
    what: &str,
    mut pick: impl FnMut(Event) -> Option<T>,
) -> T {
    let deadline = Instant::now() + HEAL;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let event = tokio::time::timeout(left, connection.next_event())
            .await
            .unwrap_or_else(|_| panic!("{what} did not happen"))
            .unwrap_or_else(|| panic!("the connection closed before {what}"));
        if let Some(found) = pick(event) {
            return found;
        }
    }
}

async fn matched(connection: &mut Connection) -> MatchInfo {
    wait_event(connection, "the matched event", |e| match e {
        Event::Matched(info) => Some(info),
        _ => None,
    })
    .await
}

/// The names (as in `scripts/cluster.sh`) of the ws-handlers holding the user's
/// connections, according to ws-manager's registry.
async fn handlers_of(cluster: &Cluster, user: Uuid) -> Vec<String> {
    let ws_manager = cluster.ws_manager();
    let Ok(connections) = ws_manager.call::<UserConnections>(user, ()).await else {
        return Vec::new();
    };
    let Ok(live) = ws_manager.call::<LiveHandlers>((), ()).await else {
        return Vec::new();
    };
    connections
        .iter()
        .filter_map(|c| live.iter().find(|h| h.handler_id == c.handler_id))
        .filter_map(|h| {
            WS_HANDLERS
                .iter()
                .map(|(name, _)| *name)
                .find(|name| cluster.ws_handler_url(name).as_deref() == Some(h.url.as_str()))
        })
        .map(str::to_owned)
        .collect()
}

/// The one ws-handler holding the user's only connection.
async fn single_handler(cluster: &Cluster, user: Uuid) -> String {
    wait_until("the user's connection registered", STEP, || async {
        let handlers = handlers_of(cluster, user).await;
        (handlers.len() == 1).then(|| handlers[0].clone())
    })
    .await
}

/// Connects until the gateway places the user on another handler than `avoid`.
async fn connect_avoiding(
    cluster: &Cluster,
    client: &Client,
    user: Uuid,
    avoid: &str,
) -> (Connection, String) {
    let deadline = Instant::now() + STEP;
    loop {
        let mut connection = client.connect().await.unwrap();
        wait_event(&mut connection, "connected", |e| {
            matches!(e, Event::Connected { .. }).then_some(())
        })
        .await;
        let handler = single_handler(cluster, user).await;
        if handler != avoid {
            return (connection, handler);
        }
        connection.close();
        drop(connection);
        wait_until("the connection deregistered", STEP, || async {
            handlers_of(cluster, user).await.is_empty().then_some(())
        })
        .await;
        assert!(
            Instant::now() < deadline,
            "the gateway never placed the user on the other handler"
        );
    }
}

// ---- raw WSS ---------------------------------------------------------------------------

type Wss =
    tokio_tungstenite::WebSocketStream<tokio_rustls::client::TlsStream<tokio::net::TcpStream>>;

fn rustls_client(cert: &rcgen::Certificate) -> Arc<rustls::ClientConfig> {
    let mut roots = rustls::RootCertStore::empty();
    roots.add(cert.der().clone()).unwrap();
    Arc::new(
        rustls::ClientConfig::builder_with_provider(Arc::new(
            rustls::crypto::aws_lc_rs::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth(),
    )
}

/// A WebSocket over TLS to the gateway, trusting only the test certificate; reads the
/// `hello` frame.
async fn wss_connect(cluster: &Cluster, tls: &Arc<rustls::ClientConfig>, client: &Client) -> Wss {
    let tcp = tokio::net::TcpStream::connect(("127.0.0.1", cluster.gateway_port()))
        .await
        .unwrap();
    let stream = tokio_rustls::TlsConnector::from(tls.clone())
        .connect(
            rustls::pki_types::ServerName::try_from("localhost").unwrap(),
            tcp,
        )
        .await
        .expect("the TLS handshake with the test certificate");
    let mut request = format!("wss://localhost:{}/v1/ws", cluster.gateway_port())
        .into_client_request()
        .unwrap();
    let token = client.access_token().await.unwrap();
    request
        .headers_mut()
        .insert("authorization", format!("Bearer {token}").parse().unwrap());
    let (mut socket, _) = tokio_tungstenite::client_async(request, stream)
        .await
        .expect("the WebSocket upgrade over TLS");
    next_frame(&mut socket, |f| {
        matches!(f, ServerFrame::Hello { .. }).then_some(())
    })
    .await;
    socket
}

/// The first server frame `pick` accepts, within [`STEP`].
async fn next_frame<T>(socket: &mut Wss, mut pick: impl FnMut(ServerFrame) -> Option<T>) -> T {
    let deadline = Instant::now() + STEP;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let message = tokio::time::timeout(left, socket.next())
            .await
            .expect("a frame in time")
            .expect("the socket stays open")
            .expect("a readable frame");
        let WsMessage::Text(text) = message else {
            continue;
        };
        let frame: ServerFrame = serde_json::from_str(&text).expect("a server frame");
        if let Some(found) = pick(frame) {
            return found;
        }
    }
}
