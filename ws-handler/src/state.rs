//! The shared state: peers, the relay bus, the token verifier, and the connections this
//! instance holds.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use axum::extract::FromRef;
use service_kit::client::ServiceClient;
use service_kit::relay::RelayBus;
use service_kit::token::TokenVerifier;
use tokio::sync::{Notify, watch};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use uuid::Uuid;
use wire::api::wsmanager::{RelayEnvelope, RemoveHandler, UserConnection};

use crate::chats::ChatCache;
use crate::config::HandlerConfig;
use crate::outbound::{Closer, Outbound, OutboundSender};
use crate::route_cache::RouteCache;

/// The services a ws-handler calls.
#[derive(Debug, Clone)]
pub struct Peers {
    /// ws-manager (registry, heartbeats, delivery).
    pub ws_manager: ServiceClient,
    /// message-service (persisting, watermarks, history).
    pub message: ServiceClient,
    /// matching-service, told when a user's last connection closes (optional).
    pub matching: Option<ServiceClient>,
}

/// A connection held by this instance.
#[derive(Debug, Clone)]
pub(crate) struct LocalConnection {
    pub(crate) user_id: Uuid,
    pub(crate) outbound: OutboundSender,
    pub(crate) closer: Closer,
    /// Order of opening on this instance (set by [`AppState::add_connection`]).
    pub(crate) opened: u64,
}

/// Everything a connection needs. Cheap to clone.
#[derive(Debug, Clone)]
pub struct AppState {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    handler_id: Uuid,
    public_url: String,
    peers: Peers,
    relay: RelayBus,
    verifier: TokenVerifier,
    config: HandlerConfig,
    connections: Mutex<HashMap<Uuid, LocalConnection>>,
    /// Connections opened so far: the next [`LocalConnection::opened`].
    opened: std::sync::atomic::AtomicU64,
    /// How many connections each user holds here, so that opening one scans the table
    /// only when the user is over the cap.
    per_user: Mutex<HashMap<Uuid, usize>>,
    chats: ChatCache,
    routes: RouteCache,
    tasks: TaskTracker,
    shutdown: CancellationToken,
    draining: AtomicBool,
    relay_subscribed: Mutex<Option<watch::Receiver<bool>>>,
    registered: AtomicBool,
    beat_now: Notify,
}

impl AppState {
    /// Assembles the state. `handler_id` identifies this instance (ws-manager routes to
    /// it by that id, on relay channel `rc:relay:{handler_id}`); `public_url` is where
    /// the gateway reaches it (only used in the distributed form).
    pub fn new(
        handler_id: Uuid,
        public_url: impl Into<String>,
        peers: Peers,
        relay: RelayBus,
        verifier: TokenVerifier,
        config: HandlerConfig,
    ) -> Self {
        Self {
            inner: Arc::new(Inner {
                handler_id,
                public_url: public_url.into(),
                peers,
                relay,
                verifier,
                config,
                connections: Mutex::new(HashMap::new()),
                opened: std::sync::atomic::AtomicU64::new(0),
                per_user: Mutex::new(HashMap::new()),
                chats: ChatCache::default(),
                routes: RouteCache::default(),
                tasks: TaskTracker::new(),
                shutdown: CancellationToken::new(),
                draining: AtomicBool::new(false),
                relay_subscribed: Mutex::new(None),
                registered: AtomicBool::new(false),
                beat_now: Notify::new(),
            }),
        }
    }

    /// This instance's id.
    pub fn handler_id(&self) -> Uuid {
        self.inner.handler_id
    }

    /// Where the gateway reaches this instance.
    pub fn public_url(&self) -> &str {
        &self.inner.public_url
    }

    /// The peers.
    pub fn peers(&self) -> &Peers {
        &self.inner.peers
    }

    /// The relay bus.
    pub fn relay(&self) -> &RelayBus {
        &self.inner.relay
    }

    /// The access-token verifier.
    pub fn verifier(&self) -> &TokenVerifier {
        &self.inner.verifier
    }

    /// The behaviour settings.
    pub fn config(&self) -> &HandlerConfig {
        &self.inner.config
    }

    pub(crate) fn chats(&self) -> &ChatCache {
        &self.inner.chats
    }

    /// Where users are connected, as last looked up.
    pub fn routes(&self) -> &RouteCache {
        &self.inner.routes
    }

    pub(crate) fn tasks(&self) -> &TaskTracker {
        &self.inner.tasks
    }

    pub(crate) fn shutdown_token(&self) -> &CancellationToken {
        &self.inner.shutdown
    }

    /// Open connections on this instance.
    pub fn connection_count(&self) -> usize {
        self.lock().len()
    }

    /// Whether the instance is shutting down (new connections are refused).
    pub fn is_draining(&self) -> bool {
        self.inner.draining.load(Ordering::SeqCst)
    }

    /// Whether the relay subscription is active and ws-manager has accepted a heartbeat:
    /// events can reach this instance's connections.
    pub fn is_ready(&self) -> bool {
        let subscribed = self
            .inner
            .relay_subscribed
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .as_ref()
            .is_some_and(|w| *w.borrow());
        subscribed && self.inner.registered.load(Ordering::SeqCst) && !self.is_draining()
    }

    pub(crate) fn set_relay_watch(&self, watch: watch::Receiver<bool>) {
        *self
            .inner
            .relay_subscribed
            .lock()
            .unwrap_or_else(|p| p.into_inner()) = Some(watch);
    }

    pub(crate) fn set_registered(&self, registered: bool) {
        self.inner.registered.store(registered, Ordering::SeqCst);
    }

    /// Asks the heartbeat loop to beat now (after the relay was re-established).
    pub(crate) fn request_heartbeat(&self) {
        self.inner.beat_now.notify_one();
    }

    pub(crate) async fn heartbeat_requested(&self) {
        self.inner.beat_now.notified().await;
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<Uuid, LocalConnection>> {
        self.inner
            .connections
            .lock()
            .unwrap_or_else(|p| p.into_inner())
    }

    /// Adds a connection; when its user then holds more than
    /// [`HandlerConfig::max_sockets_per_user`] here, their oldest ones are closed (4009).
    pub(crate) fn add_connection(&self, connection_id: Uuid, mut connection: LocalConnection) {
        connection.opened = self.inner.opened.fetch_add(1, Ordering::Relaxed);
        let user_id = connection.user_id;
        let mut connections = self.lock();
        connections.insert(connection_id, connection);
        metrics::gauge!("ws_connections").increment(1.0);
        let held = {
            let mut per_user = self.per_user();
            let count = per_user.entry(user_id).or_default();
            *count += 1;
            *count
        };
        let cap = self.config().max_sockets_per_user.max(1);
        if held <= cap {
            return;
        }
        let mut mine: Vec<&LocalConnection> = connections
            .values()
            .filter(|c| c.user_id == user_id && c.closer.reason().is_none())
            .collect();
        if mine.len() > cap {
            mine.sort_by_key(|c| c.opened);
            for oldest in &mine[..mine.len() - cap] {
                metrics::counter!("ws_replaced_connections_total").increment(1);
                oldest.closer.close(
                    wire::protocol::close::TOO_MANY_CONNECTIONS,
                    "a newer connection of this account replaced this one",
                );
            }
        }
    }

    pub(crate) fn remove_connection(&self, connection_id: Uuid) {
        let Some(removed) = self.lock().remove(&connection_id) else {
            return;
        };
        metrics::gauge!("ws_connections").decrement(1.0);
        let mut per_user = self.per_user();
        if let Some(count) = per_user.get_mut(&removed.user_id) {
            *count -= 1;
            if *count == 0 {
                per_user.remove(&removed.user_id);
            }
        }
    }

    fn per_user(&self) -> std::sync::MutexGuard<'_, HashMap<Uuid, usize>> {
        self.inner
            .per_user
            .lock()
            .unwrap_or_else(|p| p.into_inner())
    }

    /// Every connection held now, for a full resynchronisation with ws-manager.
    pub(crate) fn connection_list(&self) -> Vec<UserConnection> {
        self.lock()
            .iter()
            .map(|(id, c)| UserConnection {
                user_id: c.user_id,
                connection_id: *id,
            })
            .collect()
    }

    /// Pushes a relayed event to its target connections here, or closes them on a close
    /// order. A connection whose queue is full is a slow consumer: it is closed with 4008
    /// and the others are unaffected.
    pub(crate) fn dispatch(&self, envelope: RelayEnvelope) {
        if let Some(published) = envelope.published_at_us {
            // Clocks of different machines may disagree: a lag below zero counts as none.
            let lag = service_kit::relay::now_us().saturating_sub(published);
            metrics::histogram!("ws_relay_lag_seconds").record(lag as f64 / 1e6);
        }
        if envelope.routes_reset {
            self.routes().reset();
        } else if !envelope.routes_changed.is_empty() {
            self.routes().forget(&envelope.routes_changed);
        }
        let targets: Vec<(Uuid, LocalConnection)> = {
            let connections = self.lock();
            envelope
                .connection_ids
                .iter()
                .filter_map(|id| connections.get(id).map(|c| (*id, c.clone())))
                .collect()
        };
        if let Some(code) = envelope.close {
            for (_, connection) in targets {
                metrics::counter!("ws_replaced_connections_total").increment(1);
                connection
                    .closer
                    .close(code, "a newer connection of this account replaced this one");
            }
            return;
        }
        let Some(event) = envelope.event else {
            return;
        };
        for (connection_id, connection) in targets {
            match connection
                .outbound
                .try_send(Outbound::Frame(Box::new(event.clone())))
            {
                Ok(()) => {}
                Err(flume::TrySendError::Full(_)) => {
                    tracing::info!(%connection_id, "slow consumer: outbound queue full; closing");
                    metrics::counter!("ws_slow_consumer_closes_total").increment(1);
                    connection.closer.close(
                        wire::protocol::close::SLOW_CONSUMER,
                        "outbound queue overflow: the client is not reading",
                    );
                }
                Err(flume::TrySendError::Disconnected(_)) => {}
            }
        }
    }

    /// Closes every connection with 1001 (going away), waits for them to deregister (at
    /// most the drain timeout), and tells ws-manager this instance left.
    pub async fn shutdown(&self) {
        self.inner.draining.store(true, Ordering::SeqCst);
        self.inner.shutdown.cancel();
        let connections: Vec<LocalConnection> = self.lock().values().cloned().collect();
        tracing::info!(
            connections = connections.len(),
            "closing WebSocket connections"
        );
        for connection in connections {
            connection.closer.close(
                wire::protocol::close::GOING_AWAY,
                "the server is shutting down; reconnect",
            );
        }
        self.inner.tasks.close();
        if tokio::time::timeout(self.config().drain_timeout, self.inner.tasks.wait())
            .await
            .is_err()
        {
            tracing::warn!("some connections did not finish closing in time");
        }
        let left = self
            .peers()
            .ws_manager
            .call::<RemoveHandler>(self.handler_id(), ())
            .await;
        if let Err(err) = left {
            tracing::warn!(error = %err, "cannot tell ws-manager this handler left");
        }
    }
}

impl FromRef<AppState> for TokenVerifier {
    fn from_ref(state: &AppState) -> Self {
        state.inner.verifier.clone()
    }
}
