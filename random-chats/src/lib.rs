//! The whole Random Chats platform in one process: every service wired to the others
//! in-process, on the embedded backends.
//!
//! Services hand requests to each other's routers directly
//! ([`service_kit::client::ServiceClient::in_process`]), share one access-token verifier and one
//! in-process relay bus, and keep their data in SQLite files under a data directory (or in
//! memory). Only the gateway listens on a socket, exactly as in the distributed form: clients
//! cannot tell the two apart.
//!
//! ```no_run
//! # async fn run() -> anyhow::Result<()> {
//! let platform = random_chats::Platform::start(random_chats::PlatformConfig::in_memory()).await?;
//! println!("gateway at {}", platform.gateway_url());
//! platform.shutdown().await;
//! # Ok(())
//! # }
//! ```

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context;
use service_kit::auth::ServiceCredential;
use service_kit::client::ServiceClient;
use service_kit::relay::RelayBus;
use service_kit::token::{DEFAULT_AUDIENCE, DEFAULT_ISSUER, TokenSigner, TokenVerifier};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// How the one-process platform is set up.
#[derive(Debug, Clone)]
pub struct PlatformConfig {
    /// Where the gateway listens (port 0 picks a free port).
    pub listen: SocketAddr,
    /// Directory of the SQLite files and the token signing key; `None` keeps everything in
    /// memory (lost on exit; a fresh signing key every start).
    pub data_dir: Option<PathBuf>,
    /// Gateway request limits and CORS.
    pub limits: gateway::Limits,
    /// auth-service behaviour.
    pub auth: auth_service::config::AuthConfig,
    /// message-service behaviour.
    pub message: message_service::MessageConfig,
    /// matching-service behaviour.
    pub matching: matching_service::MatchingConfig,
    /// ws-manager behaviour.
    pub ws_manager: ws_manager::ManagerConfig,
    /// ws-handler behaviour.
    pub ws_handler: ws_handler::HandlerConfig,
    /// The listener's header-read timeout and shutdown deadline.
    pub serve: service_kit::serve::ServeOptions,
    /// Certificate and key for HTTPS and WSS on the gateway; `None` serves plain HTTP.
    pub tls: Option<gateway::tls::TlsFiles>,
    /// How often the certificate and key files are checked for a change to reload.
    pub tls_reload_every: std::time::Duration,
}

impl PlatformConfig {
    /// Data under `data_dir`, the gateway on `listen`, default behaviour.
    pub fn new(listen: SocketAddr, data_dir: Option<PathBuf>) -> Self {
        Self {
            listen,
            data_dir,
            limits: gateway::Limits::default(),
            auth: auth_service::config::AuthConfig::default(),
            message: message_service::MessageConfig::default(),
            matching: matching_service::MatchingConfig::default(),
            ws_manager: ws_manager::ManagerConfig::default(),
            ws_handler: ws_handler::HandlerConfig::default(),
            serve: service_kit::serve::ServeOptions::default(),
            tls: None,
            tls_reload_every: std::time::Duration::from_secs(5),
        }
    }

    /// Everything in memory, the gateway on a free loopback port: for tests and demos.
    pub fn in_memory() -> Self {
        Self::new(SocketAddr::from(([127, 0, 0, 1], 0)), None)
    }

    fn sqlite_url(&self, file: &str) -> String {
        match &self.data_dir {
            Some(dir) => format!("sqlite://{}?mode=rwc", dir.join(file).display()),
            None => "sqlite::memory:".to_owned(),
        }
    }
}

/// A running platform. Dropping it does not stop it; call [`Platform::shutdown`].
#[derive(Debug)]
pub struct Platform {
    addr: SocketAddr,
    scheme: &'static str,
    stop: CancellationToken,
    server: JoinHandle<()>,
    ws_handler: ws_handler::AppState,
    gateway: gateway::AppState,
    background: Vec<JoinHandle<()>>,
}

impl Platform {
    /// Opens the stores, wires the services and starts serving the gateway.
    pub async fn start(config: PlatformConfig) -> anyhow::Result<Self> {
        if let Some(dir) = &config.data_dir {
            // Owner-only: it holds the databases and the signing key.
            service_kit::fs::ensure_private_dir(dir)
                .with_context(|| format!("creating the data directory {}", dir.display()))?;
        }
        // Before anything starts: a certificate that cannot be served stops the start.
        let tls = gateway::tls::Tls::load_at_start(config.tls.as_ref())?;
        let scheme = if tls.is_some() { "https" } else { "http" };
        let credential = ServiceCredential::random();
        let signer = match &config.data_dir {
            Some(dir) => auth_service::state::load_or_create_signer(
                &dir.join("signing-key.pem"),
                DEFAULT_ISSUER,
                DEFAULT_AUDIENCE,
            )?,
            None => TokenSigner::generate(DEFAULT_ISSUER, DEFAULT_AUDIENCE),
        };
        let verifier = TokenVerifier::from_jwks(DEFAULT_ISSUER, DEFAULT_AUDIENCE, &signer.jwks())
            .map_err(|e| anyhow::anyhow!("loading our own public key: {e}"))?;
        let internal = |name: &'static str, router: &axum::Router| {
            ServiceClient::in_process(name, router.clone(), Some(credential.clone()))
        };
        let mut background = Vec::new();

        let auth_state = auth_service::AppState::new(
            auth_service::state::Stores::sqlite(&config.sqlite_url("auth.db")).await?,
            signer,
            verifier.clone(),
            credential.clone(),
            config.auth.clone(),
        );
        background.push(auth_service::state::spawn_purge(auth_state.clone()));
        let auth = auth_service::app(auth_state.clone());

        let relay = RelayBus::in_process();
        let wsm_state = ws_manager::AppState::new(
            Arc::new(ws_manager::MemoryStore::new()),
            relay.clone(),
            credential.clone(),
            config.ws_manager.clone(),
        );
        let ws_manager = ws_manager::app(wsm_state.clone());
        // Registrations, lookups and deliveries skip JSON and routing.
        let ws_manager_client =
            internal("ws-manager", &ws_manager).with_direct(ws_manager::routes::direct(wsm_state));

        // In memory, messages skip SQLite altogether: a batch of appends is one short
        // critical section instead of statements handed to a database thread.
        let message_store: Arc<dyn message_service::store::MessageStore> = match config.data_dir {
            Some(_) => Arc::new(
                message_service::store::sqlite::SqliteMessageStore::open(
                    &config.sqlite_url("messages.db"),
                )
                .await
                .context("opening the message store")?,
            ),
            None => Arc::new(message_service::store::memory::MemoryMessageStore::new()),
        };
        let message_state = message_service::AppState::new(
            message_store,
            verifier.clone(),
            credential.clone(),
            Some(ws_manager_client.clone()),
            config.message.clone(),
        )
        .with_auditor(internal("auth-service", &auth));
        let message = message_service::app(message_state.clone());

        let matching_state = matching_service::AppState::new(
            Arc::new(matching_service::store::memory::MemoryQueueStore::new()),
            matching_service::Peers {
                auth: internal("auth-service", &auth),
                message: internal("message-service", &message),
                ws_manager: ws_manager_client.clone(),
            },
            verifier.clone(),
            credential.clone(),
            config.matching.clone(),
        );
        background.push(matching_service::spawn_matcher(matching_state.clone()));
        let matching = matching_service::app(matching_state);
        auth_state.set_matching(internal("matching-service", &matching));

        // Bound first: the ws-handler announces where it is reached (through the gateway).
        let listener = tokio::net::TcpListener::bind(config.listen)
            .await
            .with_context(|| format!("cannot listen on {}", config.listen))?;
        let addr = listener.local_addr()?;
        let ws_state = ws_handler::AppState::new(
            uuid::Uuid::new_v4(),
            format!("{scheme}://{addr}"),
            ws_handler::Peers {
                ws_manager: ws_manager_client.clone(),
                // Appends, catch-up reads and watermarks skip JSON and routing.
                message: internal("message-service", &message)
                    .with_direct(message_service::routes::direct(message_state)),
                matching: Some(internal("matching-service", &matching)),
            },
            relay,
            verifier.clone(),
            config.ws_handler.clone(),
        );
        let ws = ws_handler::spawn_background(ws_state.clone());
        background.extend([ws.heartbeat, ws.relay]);

        let upstreams = gateway::Upstreams {
            auth: ServiceClient::in_process("auth-service", auth, None).into(),
            message: ServiceClient::in_process("message-service", message, None).into(),
            matching: ServiceClient::in_process("matching-service", matching, None).into(),
            ws: gateway::WsUpstream::InProcess(ws_handler::app(ws_state.clone())),
        };
        let gateway_state = gateway::AppState::new(upstreams, verifier, config.limits.clone());
        let app = gateway::app(gateway_state.clone());

        if let Some(tls) = &tls {
            background.push(tls.spawn_reload(config.tls_reload_every));
        }
        let stop = CancellationToken::new();
        let server = tokio::spawn({
            let stop = stop.clone();
            let draining = ws_state.clone();
            let options = config.serve;
            async move {
                let stopped = async move {
                    stop.cancelled().await;
                    // Close WebSocket sessions (1001: reconnect elsewhere) first.
                    draining.shutdown().await;
                };
                match tls {
                    Some(tls) => {
                        service_kit::serve::serve_with(listener, app, stopped, options, tls).await;
                    }
                    None => service_kit::serve::serve(listener, app, stopped, options).await,
                }
            }
        });
        Ok(Self {
            addr,
            scheme,
            stop,
            server,
            ws_handler: ws_state,
            gateway: gateway_state,
            background,
        })
    }

    /// The operators' router (`/metrics`, `/healthz`, the moderation routes) to serve on a
    /// listener that is not public.
    pub fn operator_app(&self) -> axum::Router {
        gateway::operator_app(self.gateway.clone())
    }

    /// The address the gateway listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The gateway's base URL, e.g. `http://127.0.0.1:8080` (`https://` with TLS).
    pub fn gateway_url(&self) -> String {
        format!("{}://{}", self.scheme, self.addr)
    }

    /// Completes when the server task ends, which it does only after [`Self::shutdown`]
    /// or when it panicked.
    pub async fn wait(&mut self) -> anyhow::Result<()> {
        (&mut self.server)
            .await
            .map_err(|err| anyhow::anyhow!("the server task failed: {err}"))
    }

    /// Stops accepting, closes WebSocket sessions, waits for requests in flight, and
    /// stops the background tasks.
    pub async fn shutdown(self) {
        self.stop.cancel();
        self.ws_handler.shutdown().await;
        if let Err(err) = self.server.await {
            tracing::warn!(error = %err, "the server task failed");
        }
        for task in self.background {
            task.abort();
        }
    }
}
