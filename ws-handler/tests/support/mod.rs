//! Test support: the services around ws-handler on loopback listeners (auth-service and
//! message-service on SQLite, ws-manager on Redis or in memory, the gateway discovering
//! ws-handlers through ws-manager), ws-handler instances in this process, users, chats,
//! raw WebSocket clients, and waiting on conditions with a deadline.
#![allow(dead_code)]

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use client_sdk::Client;
use futures::{SinkExt, StreamExt};
use service_kit::auth::ServiceCredential;
use service_kit::client::{ServiceClient, default_http_client};
use service_kit::relay::RelayBus;
use service_kit::token::{DEFAULT_AUDIENCE, DEFAULT_ISSUER, TokenSigner, TokenVerifier};
use tokio::net::TcpStream;
use tokio::task::JoinHandle;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::{self, Message as WsMessage};
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};
use uuid::Uuid;
use wire::api::auth::{PublicProfile, SignupRequest};
use wire::api::message::{
    Chat, CreateChat, CreateChatRequest, Message, MessagesAfter, MessagesAfterQuery,
};
use wire::api::wsmanager::{ConnectionRef, HandlerInfo, LiveHandlers, UserConnections};
use wire::domain::Gender;
use wire::protocol::{ClientFrame, ServerFrame, WS_PATH};
use ws_handler::HandlerConfig;

/// The service credential every service of a test stack shares.
pub const SERVICE_TOKEN: &str = "rt-test-service-token-0123456789";
/// How long any awaited condition may take before the test fails.
pub const DEADLINE: Duration = Duration::from_secs(20);

/// A spawned task, aborted when dropped.
#[derive(Debug)]
pub struct Task(pub JoinHandle<()>);

impl Drop for Task {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Serves `router` on a fresh loopback port; returns its base URL.
pub async fn serve(router: Router) -> (String, Task) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let task = tokio::spawn(async move {
        let _ = axum::serve(
            listener,
            router.into_make_service_with_connect_info::<SocketAddr>(),
        )
        .await;
    });
    (format!("http://{addr}"), Task(task))
}

/// Where ws-manager keeps its registry and how events travel.
#[derive(Debug, Clone)]
pub enum Backplane {
    /// Registry in memory, in-process relay bus: handlers must run in this process.
    Embedded,
    /// Registry and relay bus in Redis at this URL.
    Redis(String),
}

/// The services around ws-handler.
pub struct Stack {
    pub signer: TokenSigner,
    pub verifier: TokenVerifier,
    pub credential: ServiceCredential,
    /// The relay bus in-process handlers use (the one ws-manager publishes on).
    pub relay: RelayBus,
    pub backplane: Backplane,
    pub redis_prefix: String,
    pub auth_url: String,
    pub message_url: String,
    pub wsm_url: String,
    pub gateway_url: String,
    registry: Arc<dyn ws_manager::store::ConnectionStore>,
    redis_store: Option<ws_manager::RedisStore>,
    data_dir: PathBuf,
    tasks: Vec<Task>,
}

impl Stack {
    /// Starts auth-service, message-service, ws-manager (heartbeat TTL `ttl`) and the
    /// gateway on loopback listeners.
    pub async fn start(backplane: Backplane, ttl: Duration) -> Stack {
        let signer = TokenSigner::generate(DEFAULT_ISSUER, DEFAULT_AUDIENCE);
        let verifier =
            TokenVerifier::from_jwks(DEFAULT_ISSUER, DEFAULT_AUDIENCE, &signer.jwks()).unwrap();
        let credential = ServiceCredential::new(SERVICE_TOKEN);
        let http = default_http_client();
        let data_dir = std::env::temp_dir().join(test_support::unique_name("rc_rt"));
        std::fs::create_dir_all(&data_dir).unwrap();
        let mut tasks = Vec::new();

        let redis_prefix = test_support::unique_name("rc_rt_wsm");
        let (registry, redis_store, relay): (Arc<dyn ws_manager::store::ConnectionStore>, _, _) =
            match &backplane {
                Backplane::Embedded => (
                    Arc::new(ws_manager::MemoryStore::new()),
                    None,
                    RelayBus::in_process(),
                ),
                Backplane::Redis(url) => {
                    let store = ws_manager::RedisStore::connect(url, &redis_prefix)
                        .await
                        .expect("Redis answers");
                    (
                        Arc::new(store.clone()),
                        Some(store),
                        RelayBus::redis(url).unwrap(),
                    )
                }
            };
        let wsm_state = ws_manager::AppState::new(
            registry.clone(),
            relay.clone(),
            credential.clone(),
            ws_manager::ManagerConfig {
                heartbeat_ttl: ttl,
                ..ws_manager::ManagerConfig::default()
            },
        );
        let (wsm_url, task) = serve(ws_manager::app(wsm_state)).await;
        tasks.push(task);

        let auth_state = auth_service::AppState::new(
            auth_service::state::Stores::sqlite(&format!(
                "sqlite://{}?mode=rwc",
                data_dir.join("auth.db").display()
            ))
            .await
            .unwrap(),
            signer.clone(),
            verifier.clone(),
            credential.clone(),
            auth_service::config::AuthConfig::default(),
        );
        let (auth_url, task) = serve(auth_service::app(auth_state)).await;
        tasks.push(task);

        let store = message_service::store::sqlite::SqliteMessageStore::open(&format!(
            "sqlite://{}?mode=rwc",
            data_dir.join("messages.db").display()
        ))
        .await
        .unwrap();
        let message_state = message_service::AppState::new(
            Arc::new(store),
            verifier.clone(),
            credential.clone(),
            Some(ServiceClient::http(
                "ws-manager",
                http.clone(),
                &wsm_url,
                Some(credential.clone()),
            )),
            message_service::MessageConfig::default(),
        );
        let (message_url, task) = serve(message_service::app(message_state)).await;
        tasks.push(task);

        let upstreams = gateway::Upstreams {
            auth: ServiceClient::http("auth-service", http.clone(), &auth_url, None).into(),
            message: ServiceClient::http("message-service", http.clone(), &message_url, None)
                .into(),
            // Matching is not part of these tests; its routes answer 503.
            matching: ServiceClient::http(
                "matching-service",
                http.clone(),
                "http://127.0.0.1:9",
                None,
            )
            .into(),
            ws: gateway::WsUpstream::Discover(
                ServiceClient::http(
                    "ws-manager",
                    http.clone(),
                    &wsm_url,
                    Some(credential.clone()),
                )
                .into(),
            ),
        };
        let limits = gateway::Limits {
            rate_per_second: 100_000,
            rate_burst: 100_000,
            ..gateway::Limits::default()
        };
        let gateway_state = gateway::AppState::new(upstreams, verifier.clone(), limits);
        let (gateway_url, task) = serve(gateway::app(gateway_state)).await;
        tasks.push(task);

        Stack {
            signer,
            verifier,
            credential,
            relay,
            backplane,
            redis_prefix,
            auth_url,
            message_url,
            wsm_url,
            gateway_url,
            registry,
            redis_store,
            data_dir,
            tasks,
        }
    }

    /// The Redis URL of the backplane, if any.
    pub fn redis_url(&self) -> Option<&str> {
        match &self.backplane {
            Backplane::Redis(url) => Some(url),
            Backplane::Embedded => None,
        }
    }

    fn internal(&self, name: &'static str, url: &str) -> ServiceClient {
        ServiceClient::http(
            name,
            default_http_client(),
            url,
            Some(self.credential.clone()),
        )
    }

    /// ws-manager, as a service calls it.
    pub fn ws_manager(&self) -> ServiceClient {
        self.internal("ws-manager", &self.wsm_url)
    }

    /// message-service, as a service calls it.
    pub fn message(&self) -> ServiceClient {
        self.internal("message-service", &self.message_url)
    }

    /// Starts a ws-handler in this process on its own loopback listener.
    pub async fn start_handler(&self, config: HandlerConfig) -> Handler {
        self.start_handler_with(config, |_| {}).await
    }

    /// [`Stack::start_handler`] with its peers adjusted by `adjust`.
    pub async fn start_handler_with(
        &self,
        config: HandlerConfig,
        adjust: impl FnOnce(&mut ws_handler::Peers),
    ) -> Handler {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let id = Uuid::new_v4();
        let relay = match &self.backplane {
            Backplane::Embedded => self.relay.clone(),
            // Its own bus, as a separate instance would have.
            Backplane::Redis(redis) => RelayBus::redis(redis).unwrap(),
        };
        let mut peers = ws_handler::Peers {
            ws_manager: self.ws_manager(),
            message: self.message(),
            matching: None,
        };
        adjust(&mut peers);
        let state =
            ws_handler::AppState::new(id, url.clone(), peers, relay, self.verifier.clone(), config);
        let background = ws_handler::spawn_background(state.clone());
        let app = ws_handler::app(state.clone());
        let server = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Handler {
            id,
            url,
            state,
            tasks: vec![
                Task(server),
                Task(background.heartbeat),
                Task(background.relay),
            ],
        }
    }

    /// Waits until ws-manager lists every handler of `ids` as live.
    pub async fn wait_live(&self, ids: &[Uuid]) {
        let ws_manager = self.ws_manager();
        wait_until("handlers live", || async {
            let live: Vec<HandlerInfo> = ws_manager.call::<LiveHandlers>((), ()).await.ok()?;
            ids.iter()
                .all(|id| live.iter().any(|h| h.handler_id == *id))
                .then_some(())
        })
        .await;
    }

    /// The user's live connections according to ws-manager.
    pub async fn connections_of(&self, user_id: Uuid) -> Vec<ConnectionRef> {
        self.ws_manager()
            .call::<UserConnections>(user_id, ())
            .await
            .unwrap()
    }

    /// Signs a user up through the gateway; returns the logged-in client and the profile
    /// partners see.
    pub async fn signup(&self, name: &str) -> (Client, PublicProfile) {
        let client = Client::new(&self.gateway_url).unwrap();
        let username = format!("{name}_{}", &Uuid::new_v4().simple().to_string()[..12]);
        let response = client
            .signup(&SignupRequest {
                username,
                password: "correct horse battery staple".to_owned(),
                display_name: name.to_owned(),
                gender: Gender::Other,
                birth_date: time::macros::date!(1990 - 01 - 01),
                interests: Vec::new(),
            })
            .await
            .unwrap();
        let user = response.user;
        let profile = PublicProfile {
            id: user.id,
            display_name: user.display_name,
            gender: user.gender,
            age: user.age,
            interests: user.interests,
        };
        (client, profile)
    }

    /// Creates a chat between two users through message-service's internal API.
    pub async fn create_chat(&self, a: &PublicProfile, b: &PublicProfile) -> Chat {
        let request = CreateChatRequest {
            match_id: Uuid::new_v4(),
            participants: vec![a.clone(), b.clone()],
        };
        self.message()
            .call::<CreateChat>((), request)
            .await
            .unwrap()
    }

    /// Every stored message of a chat, in seq order, from message-service.
    pub async fn stored_messages(&self, chat_id: Uuid) -> Vec<Message> {
        let mut all: Vec<Message> = Vec::new();
        loop {
            let after = all.last().map_or(0, |m| m.seq);
            let query = MessagesAfterQuery {
                after: Some(after),
                limit: Some(500),
            };
            let page: Vec<Message> = self
                .message()
                .call::<MessagesAfter>(chat_id, query)
                .await
                .unwrap();
            if page.is_empty() {
                return all;
            }
            all.extend(page);
        }
    }

    /// An access token for a user, signed like auth-service's.
    pub fn token_for(&self, user_id: Uuid) -> String {
        self.token_lasting(user_id, Duration::from_secs(600))
    }

    /// An access token for a user that expires after `ttl` (whole seconds).
    pub fn token_lasting(&self, user_id: Uuid, ttl: Duration) -> String {
        self.signer.sign(user_id, Uuid::new_v4(), ttl).0
    }

    /// Deletes the stack's Redis keys and files.
    pub async fn cleanup(self) {
        if let Some(store) = &self.redis_store {
            let _ = store.delete_all().await;
        }
        drop(self.tasks);
        let _ = std::fs::remove_dir_all(&self.data_dir);
    }
}

/// Connects through the gateway until the connection lands on a handler other than
/// `avoid` (the gateway prefers the least loaded one, as reported by heartbeats); returns
/// the connection and its handler. The user must have no other connection.
pub async fn connect_avoiding(
    stack: &Stack,
    client: &Client,
    user: &PublicProfile,
    avoid: Uuid,
    options: client_sdk::ConnectOptions,
) -> (client_sdk::Connection, Uuid) {
    let deadline = tokio::time::Instant::now() + DEADLINE;
    loop {
        let mut connection = client.connect_with(options.clone()).await.unwrap();
        next_event(&mut connection, "connected", |e| {
            matches!(e, client_sdk::Event::Connected { .. }).then_some(())
        })
        .await;
        let handler = wait_until("registered", || async {
            let list = stack.connections_of(user.id).await;
            (list.len() == 1).then(|| list[0].handler_id)
        })
        .await;
        if handler != avoid {
            return (connection, handler);
        }
        connection.close();
        drop(connection);
        wait_until("deregistered", || async {
            stack.connections_of(user.id).await.is_empty().then_some(())
        })
        .await;
        assert!(
            tokio::time::Instant::now() < deadline,
            "the gateway never placed the user on another handler"
        );
    }
}

/// A ws-handler in this process.
pub struct Handler {
    pub id: Uuid,
    pub url: String,
    pub state: ws_handler::AppState,
    tasks: Vec<Task>,
}

impl Handler {
    /// The WebSocket URL of this instance.
    pub fn ws_url(&self) -> String {
        ws_url(&self.url)
    }
}

/// Handler settings suited to tests: quick heartbeats, generous rate limits.
pub fn test_config() -> HandlerConfig {
    HandlerConfig {
        heartbeat_interval: Duration::from_millis(200),
        send_per_sec: 1000.0,
        send_burst: 1000,
        frames_per_sec: 5000.0,
        frames_burst: 5000,
        drain_timeout: Duration::from_secs(2),
        ..HandlerConfig::default()
    }
}

/// `ws://host:port/v1/ws` for an `http://host:port` base URL.
pub fn ws_url(base: &str) -> String {
    format!("{}{WS_PATH}", base.replacen("http://", "ws://", 1))
}

/// Polls `check` until it yields a value; panics after [`DEADLINE`].
pub async fn wait_until<T, F, Fut>(what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + DEADLINE;
    loop {
        if let Some(value) = check().await {
            return value;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for: {what}"
        );
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

/// The next SDK event satisfying `pick`, skipping others; panics after [`DEADLINE`].
pub async fn next_event<T>(
    connection: &mut client_sdk::Connection,
    what: &str,
    mut pick: impl FnMut(client_sdk::Event) -> Option<T>,
) -> T {
    let deadline = tokio::time::Instant::now() + DEADLINE;
    loop {
        let event = tokio::time::timeout_at(deadline, connection.next_event())
            .await
            .unwrap_or_else(|_| panic!("timed out waiting for: {what}"))
            .unwrap_or_else(|| panic!("connection closed while waiting for: {what}"));
        if let Some(found) = pick(event) {
            return found;
        }
    }
}

/// A raw WebSocket client speaking the protocol frame by frame.
pub struct RawClient {
    pub socket: WebSocketStream<MaybeTlsStream<TcpStream>>,
}

/// How a raw connection attempt ended.
#[derive(Debug)]
pub enum Handshake {
    Open(Box<RawClient>),
    Refused(u16, serde_json::Value),
}

impl Handshake {
    pub fn open(self) -> RawClient {
        match self {
            Handshake::Open(client) => *client,
            Handshake::Refused(status, body) => panic!("upgrade refused: {status} {body}"),
        }
    }
}

impl std::fmt::Debug for RawClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("RawClient")
    }
}

/// Opens a raw WebSocket at `url` with optional bearer token and `Origin`.
pub async fn raw_connect(url: &str, token: Option<&str>, origin: Option<&str>) -> Handshake {
    let mut request = url.into_client_request().unwrap();
    if let Some(token) = token {
        request
            .headers_mut()
            .insert("authorization", format!("Bearer {token}").parse().unwrap());
    }
    if let Some(origin) = origin {
        request
            .headers_mut()
            .insert("origin", origin.parse().unwrap());
    }
    match tokio_tungstenite::connect_async(request).await {
        Ok((socket, _)) => Handshake::Open(Box::new(RawClient { socket })),
        Err(tungstenite::Error::Http(response)) => {
            let status = response.status().as_u16();
            let body = response
                .body()
                .as_deref()
                .and_then(|b| serde_json::from_slice(b).ok())
                .unwrap_or(serde_json::Value::Null);
            Handshake::Refused(status, body)
        }
        Err(err) => panic!("cannot connect to {url}: {err}"),
    }
}

/// What a raw client read next.
#[derive(Debug)]
pub enum Received {
    Frame(ServerFrame),
    Closed(Option<u16>),
}

impl RawClient {
    /// Sends a client frame.
    pub async fn send(&mut self, frame: &ClientFrame) {
        self.send_text(&serde_json::to_string(frame).unwrap()).await;
    }

    /// Sends raw text.
    pub async fn send_text(&mut self, text: &str) {
        self.socket
            .send(WsMessage::Text(text.to_owned().into()))
            .await
            .unwrap();
    }

    /// The next server frame or the close; panics after [`DEADLINE`].
    pub async fn recv(&mut self) -> Received {
        let deadline = tokio::time::Instant::now() + DEADLINE;
        loop {
            let next = tokio::time::timeout_at(deadline, self.socket.next())
                .await
                .expect("a frame in time");
            match next {
                Some(Ok(WsMessage::Text(text))) => {
                    return Received::Frame(
                        serde_json::from_str(text.as_str()).expect("a protocol frame"),
                    );
                }
                Some(Ok(WsMessage::Close(frame))) => {
                    return Received::Closed(frame.map(|f| u16::from(f.code)));
                }
                Some(Ok(_)) => {}
                Some(Err(_)) | None => return Received::Closed(None),
            }
        }
    }

    /// The next server frame; panics on a close.
    pub async fn frame(&mut self) -> ServerFrame {
        match self.recv().await {
            Received::Frame(frame) => frame,
            Received::Closed(code) => panic!("closed ({code:?}) while a frame was expected"),
        }
    }

    /// The next frame satisfying `pick`, skipping others.
    pub async fn frame_where<T>(&mut self, mut pick: impl FnMut(ServerFrame) -> Option<T>) -> T {
        loop {
            if let Some(found) = pick(self.frame().await) {
                return found;
            }
        }
    }

    /// Reads until the server closes; returns the close code.
    pub async fn close_code(&mut self) -> Option<u16> {
        loop {
            if let Received::Closed(code) = self.recv().await {
                return code;
            }
        }
    }
}
