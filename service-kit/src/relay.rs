//! The relay bus carrying events from ws-manager (and ws-handlers) to the ws-handler that
//! holds the target sockets: Redis pub/sub on channel `rc:relay:{handler_id}`, or
//! in-process channels when every service runs in one process.
//!
//! A subscription is a [`Stream`] of [`RelayEnvelope`]s for one handler id. The Redis form
//! reconnects and resubscribes by itself after the connection breaks (for instance a Redis
//! restart); events published while no subscription was active are lost, as with any
//! pub/sub, and the receivers recover them (ws-handler fills message gaps from
//! message-service). [`RelaySubscription::subscribed`] tells whether the subscription is
//! active right now.
//!
//! Besides its own channel every subscription also receives the broadcast channel
//! `rc:relay:all` ([`RelayBus::publish_all`]), on which ws-manager announces route changes.
//!
//! The in-process form only reaches subscribers in the same process: a ws-handler started
//! as its own process without a Redis URL cannot receive events from anyone else.

use std::collections::HashMap;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use futures::{Stream, StreamExt};
use tokio::sync::{broadcast, mpsc, watch};
use uuid::Uuid;

use wire::api::wsmanager::RelayEnvelope;

/// Prefix of the Redis channel of one handler: `rc:relay:{handler_id}`.
pub const CHANNEL_PREFIX: &str = "rc:relay:";
/// The Redis channel every handler subscribes to besides its own.
pub const BROADCAST_CHANNEL: &str = "rc:relay:all";
/// The in-process key of the broadcast channel (no handler has the nil id).
const BROADCAST_KEY: Uuid = Uuid::nil();
/// Envelopes an in-process subscriber may lag behind before it loses some.
const IN_PROCESS_CAPACITY: usize = 8192;
/// Envelopes buffered between the Redis reader task and the subscriber.
const REDIS_BUFFER: usize = 8192;
/// Time limit of one Redis command or connection attempt.
const REDIS_TIMEOUT: Duration = Duration::from_secs(2);

/// The Redis channel of a handler.
pub fn channel_name(handler_id: Uuid) -> String {
    format!("{CHANNEL_PREFIX}{handler_id}")
}

/// Why a publish failed.
#[derive(Debug, thiserror::Error)]
pub enum RelayError {
    /// The Redis URL is invalid.
    #[error("invalid Redis URL: {0}")]
    InvalidUrl(String),
    /// Redis cannot be reached or did not answer in time.
    #[error("the relay bus is unavailable: {0}")]
    Unavailable(String),
    /// The envelope could not be encoded.
    #[error("cannot encode the envelope: {0}")]
    Encode(String),
}

/// An event to publish to several handlers, serialised at most once however many handlers
/// it goes to (and not at all in process).
#[derive(Debug)]
pub struct PreparedEvent {
    frame: wire::protocol::ServerFrame,
    json: std::sync::OnceLock<Result<String, String>>,
}

impl PreparedEvent {
    /// Wraps `frame`.
    pub fn new(frame: wire::protocol::ServerFrame) -> Self {
        Self {
            frame,
            json: std::sync::OnceLock::new(),
        }
    }

    /// The event.
    pub fn frame(&self) -> &wire::protocol::ServerFrame {
        &self.frame
    }

    /// The Redis payload of an envelope carrying this event to `connection_ids`: the
    /// event's JSON is made once and spliced into each handler's envelope.
    fn payload(
        &self,
        connection_ids: &[Uuid],
        published_at_us: u64,
    ) -> Result<Vec<u8>, RelayError> {
        let event = self
            .json
            .get_or_init(|| serde_json::to_string(&self.frame).map_err(|e| e.to_string()))
            .as_ref()
            .map_err(|e| RelayError::Encode(e.clone()))?;
        let ids =
            serde_json::to_string(connection_ids).map_err(|e| RelayError::Encode(e.to_string()))?;
        let stamp = published_at_us.to_string();
        let mut payload = Vec::with_capacity(event.len() + ids.len() + stamp.len() + 60);
        payload.extend_from_slice(b"{\"connection_ids\":");
        payload.extend_from_slice(ids.as_bytes());
        payload.extend_from_slice(b",\"published_at_us\":");
        payload.extend_from_slice(stamp.as_bytes());
        payload.extend_from_slice(b",\"event\":");
        payload.extend_from_slice(event.as_bytes());
        payload.push(b'}');
        Ok(payload)
    }
}

/// Microseconds since the Unix epoch, the clock of [`RelayEnvelope::published_at_us`].
pub fn now_us() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_micros()).unwrap_or(u64::MAX))
}

/// A copy of `envelope` stamped with the time of publication (unless it already carries one).
fn stamped(envelope: &RelayEnvelope) -> RelayEnvelope {
    let mut envelope = envelope.clone();
    envelope.published_at_us.get_or_insert_with(now_us);
    envelope
}

/// A cheap-clone handle on the relay bus.
#[derive(Clone)]
pub struct RelayBus {
    inner: Arc<Backend>,
}

enum Backend {
    InProcess(Mutex<HashMap<Uuid, broadcast::Sender<RelayEnvelope>>>),
    Redis(RedisBus),
}

struct RedisBus {
    client: redis::Client,
    publisher: tokio::sync::Mutex<Option<redis::aio::ConnectionManager>>,
}

impl std::fmt::Debug for RelayBus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.inner.as_ref() {
            Backend::InProcess(_) => f.write_str("RelayBus::InProcess"),
            Backend::Redis(_) => f.write_str("RelayBus::Redis"),
        }
    }
}

impl RelayBus {
    /// A bus between the services of this process (the embedded default).
    pub fn in_process() -> Self {
        Self {
            inner: Arc::new(Backend::InProcess(Mutex::new(HashMap::new()))),
        }
    }

    /// A bus over Redis pub/sub at `url` (e.g. `redis://127.0.0.1:6379`). Connects lazily:
    /// Redis need not be up yet.
    pub fn redis(url: &str) -> Result<Self, RelayError> {
        let client = redis::Client::open(url).map_err(|e| RelayError::InvalidUrl(e.to_string()))?;
        Ok(Self {
            inner: Arc::new(Backend::Redis(RedisBus {
                client,
                publisher: tokio::sync::Mutex::new(None),
            })),
        })
    }

    /// Publishes `envelope` to the handler `handler_id`. Returns how many subscribers
    /// received it (0 when that handler is not subscribed right now).
    pub async fn publish(
        &self,
        handler_id: Uuid,
        envelope: &RelayEnvelope,
    ) -> Result<usize, RelayError> {
        let envelope = stamped(envelope);
        match self.inner.as_ref() {
            Backend::InProcess(channels) => {
                let sender = lock(channels).get(&handler_id).cloned();
                Ok(sender.map_or(0, |s| s.send(envelope).unwrap_or(0)))
            }
            Backend::Redis(bus) => {
                let payload =
                    serde_json::to_vec(&envelope).map_err(|e| RelayError::Encode(e.to_string()))?;
                bus.publish_bytes(&channel_name(handler_id), payload).await
            }
        }
    }

    /// Publishes `event` to the connections `connection_ids` of handler `handler_id`; like
    /// [`Self::publish`], but the event is serialised once for all the handlers it goes to.
    pub async fn publish_event(
        &self,
        handler_id: Uuid,
        connection_ids: Vec<Uuid>,
        event: &PreparedEvent,
    ) -> Result<usize, RelayError> {
        match self.inner.as_ref() {
            Backend::InProcess(_) => {
                let envelope = RelayEnvelope {
                    connection_ids,
                    event: Some(event.frame.clone()),
                    ..Default::default()
                };
                self.publish(handler_id, &envelope).await
            }
            Backend::Redis(bus) => {
                let payload = event.payload(&connection_ids, now_us())?;
                bus.publish_bytes(&channel_name(handler_id), payload).await
            }
        }
    }

    /// Publishes `envelope` to every handler (the broadcast channel).
    pub async fn publish_all(&self, envelope: &RelayEnvelope) -> Result<usize, RelayError> {
        match self.inner.as_ref() {
            Backend::InProcess(_) => self.publish(BROADCAST_KEY, envelope).await,
            Backend::Redis(bus) => {
                let payload = serde_json::to_vec(&stamped(envelope))
                    .map_err(|e| RelayError::Encode(e.to_string()))?;
                bus.publish_bytes(BROADCAST_CHANNEL, payload).await
            }
        }
    }

    /// Subscribes to the envelopes of `handler_id`. The stream never ends while the bus
    /// exists; with Redis it reconnects and resubscribes after failures by itself.
    pub fn subscribe(&self, handler_id: Uuid) -> RelaySubscription {
        match self.inner.as_ref() {
            Backend::InProcess(channels) => {
                let (own, all) = {
                    let mut channels = lock(channels);
                    let mut receiver = |key: Uuid| {
                        channels
                            .entry(key)
                            .or_insert_with(|| broadcast::channel(IN_PROCESS_CAPACITY).0)
                            .subscribe()
                    };
                    (receiver(handler_id), receiver(BROADCAST_KEY))
                };
                let (_, subscribed) = watch::channel(true);
                let stream = futures::stream::select(
                    tokio_stream::wrappers::BroadcastStream::new(own),
                    tokio_stream::wrappers::BroadcastStream::new(all),
                )
                .filter_map(
                    move |item| async move {
                        match item {
                            Ok(envelope) => Some(envelope),
                            Err(tokio_stream::wrappers::errors::BroadcastStreamRecvError::Lagged(n)) => {
                                tracing::warn!(%handler_id, lost = n, "relay subscriber lagged; events lost");
                                None
                            }
                        }
                    },
                );
                RelaySubscription {
                    stream: Box::pin(stream),
                    subscribed,
                }
            }
            Backend::Redis(bus) => {
                let (sender, receiver) = mpsc::channel(REDIS_BUFFER);
                let (state, subscribed) = watch::channel(false);
                tokio::spawn(redis_subscription(
                    bus.client.clone(),
                    handler_id,
                    sender,
                    state,
                ));
                RelaySubscription {
                    stream: Box::pin(tokio_stream::wrappers::ReceiverStream::new(receiver)),
                    subscribed,
                }
            }
        }
    }

    /// Checks that the bus works (Redis answers `PING`).
    pub async fn ping(&self) -> Result<(), RelayError> {
        match self.inner.as_ref() {
            Backend::InProcess(_) => Ok(()),
            Backend::Redis(bus) => {
                let mut connection = bus.publisher().await?;
                redis::cmd("PING")
                    .query_async::<String>(&mut connection)
                    .await
                    .map(|_| ())
                    .map_err(redis_unavailable)
            }
        }
    }
}

impl RedisBus {
    async fn publish_bytes(&self, channel: &str, payload: Vec<u8>) -> Result<usize, RelayError> {
        let mut connection = self.publisher().await?;
        redis::cmd("PUBLISH")
            .arg(channel)
            .arg(payload)
            .query_async(&mut connection)
            .await
            .map_err(redis_unavailable)
    }

    async fn publisher(&self) -> Result<redis::aio::ConnectionManager, RelayError> {
        let mut slot = self.publisher.lock().await;
        if let Some(connection) = slot.as_ref() {
            return Ok(connection.clone());
        }
        let config = redis::aio::ConnectionManagerConfig::new()
            .set_connection_timeout(Some(REDIS_TIMEOUT))
            .set_response_timeout(Some(REDIS_TIMEOUT))
            .set_number_of_retries(1);
        let connection =
            redis::aio::ConnectionManager::new_with_config(self.client.clone(), config)
                .await
                .map_err(redis_unavailable)?;
        *slot = Some(connection.clone());
        Ok(connection)
    }
}

/// A failed Redis call of the bus, counted as a backend error.
fn redis_unavailable(err: redis::RedisError) -> RelayError {
    crate::telemetry::count_backend_error(crate::telemetry::Backend::Redis, true);
    RelayError::Unavailable(err.to_string())
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|p| p.into_inner())
}

/// Keeps one handler's Redis subscription alive: subscribe, forward, and on any failure
/// reconnect with capped backoff. Ends when the subscriber is dropped.
async fn redis_subscription(
    client: redis::Client,
    handler_id: Uuid,
    sender: mpsc::Sender<RelayEnvelope>,
    state: watch::Sender<bool>,
) {
    let channel = channel_name(handler_id);
    let mut delay = Duration::from_millis(50);
    loop {
        let attempt = async {
            let mut pubsub = tokio::time::timeout(REDIS_TIMEOUT, client.get_async_pubsub())
                .await
                .map_err(|_| "connecting timed out".to_owned())?
                .map_err(|e| e.to_string())?;
            tokio::time::timeout(
                REDIS_TIMEOUT,
                pubsub.subscribe(&[channel.as_str(), BROADCAST_CHANNEL]),
            )
            .await
            .map_err(|_| "subscribing timed out".to_owned())?
            .map_err(|e| e.to_string())?;
            Ok::<_, String>(pubsub)
        };
        let pubsub = tokio::select! {
            result = attempt => result,
            () = sender.closed() => return,
        };
        match pubsub {
            Ok(pubsub) => {
                tracing::info!(%handler_id, "relay subscription active");
                delay = Duration::from_millis(50);
                state.send_replace(true);
                let mut messages = pubsub.into_on_message();
                loop {
                    let message = tokio::select! {
                        message = messages.next() => message,
                        () = sender.closed() => return,
                    };
                    let Some(message) = message else { break };
                    match serde_json::from_slice::<RelayEnvelope>(message.get_payload_bytes()) {
                        Ok(envelope) => {
                            if sender.send(envelope).await.is_err() {
                                return;
                            }
                        }
                        Err(err) => {
                            tracing::warn!(%handler_id, error = %err, "undecodable relay envelope dropped");
                        }
                    }
                }
                state.send_replace(false);
                crate::telemetry::count_backend_error(crate::telemetry::Backend::Redis, true);
                tracing::warn!(%handler_id, "relay subscription lost; resubscribing");
            }
            Err(cause) => {
                crate::telemetry::count_backend_error(crate::telemetry::Backend::Redis, true);
                tracing::warn!(%handler_id, %cause, retry_in_ms = delay.as_millis() as u64, "relay subscription failed");
                tokio::select! {
                    () = tokio::time::sleep(delay) => {}
                    () = sender.closed() => return,
                }
                delay = (delay * 2).min(Duration::from_secs(2));
            }
        }
    }
}

/// The envelopes of one handler, as a [`Stream`].
pub struct RelaySubscription {
    stream: Pin<Box<dyn Stream<Item = RelayEnvelope> + Send>>,
    subscribed: watch::Receiver<bool>,
}

impl std::fmt::Debug for RelaySubscription {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RelaySubscription")
            .field("subscribed", &*self.subscribed.borrow())
            .finish()
    }
}

impl RelaySubscription {
    /// Whether the subscription is active right now (always true in process); watch it to
    /// learn when it is lost and re-established.
    pub fn subscribed(&self) -> watch::Receiver<bool> {
        self.subscribed.clone()
    }
}

impl Stream for RelaySubscription {
    type Item = RelayEnvelope;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.stream.as_mut().poll_next(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use wire::protocol::ServerFrame;

    fn envelope(nonce: &str) -> RelayEnvelope {
        RelayEnvelope {
            connection_ids: vec![Uuid::new_v4()],
            event: Some(ServerFrame::Pong {
                nonce: Some(nonce.to_owned()),
            }),
            ..Default::default()
        }
    }

    #[tokio::test]
    async fn an_in_process_subscriber_receives_only_its_own_handlers_envelopes() {
        let bus = RelayBus::in_process();
        let (mine, other) = (Uuid::new_v4(), Uuid::new_v4());
        let mut subscription = bus.subscribe(mine);
        let _other = bus.subscribe(other);
        assert_eq!(bus.publish(other, &envelope("x")).await.unwrap(), 1);
        let before = now_us();
        assert_eq!(bus.publish(mine, &envelope("a")).await.unwrap(), 1);
        let after = now_us();
        let got = subscription.next().await.unwrap();
        assert_eq!(got.event, envelope("a").event);
        let stamp = got
            .published_at_us
            .expect("the bus stamps what it publishes");
        assert!(
            (before..=after).contains(&stamp),
            "{before} <= {stamp} <= {after}"
        );
    }

    #[tokio::test]
    async fn publishing_to_a_handler_nobody_listens_to_reaches_no_one() {
        let bus = RelayBus::in_process();
        assert_eq!(
            bus.publish(Uuid::new_v4(), &envelope("a")).await.unwrap(),
            0
        );
    }

    #[tokio::test]
    async fn a_broadcast_reaches_every_in_process_subscriber() {
        let bus = RelayBus::in_process();
        let mut one = bus.subscribe(Uuid::new_v4());
        let mut two = bus.subscribe(Uuid::new_v4());
        let news = RelayEnvelope {
            routes_changed: vec![Uuid::new_v4()],
            ..Default::default()
        };
        assert_eq!(bus.publish_all(&news).await.unwrap(), 2);
        for subscription in [&mut one, &mut two] {
            let got = subscription.next().await.unwrap();
            assert_eq!(got.routes_changed, news.routes_changed);
        }
    }

    #[test]
    fn a_prepared_events_payload_is_an_envelope() {
        let event = PreparedEvent::new(ServerFrame::Pong {
            nonce: Some("p".to_owned()),
        });
        let ids = vec![Uuid::new_v4(), Uuid::new_v4()];
        for stamp in [1_700_000_000_000_000, 1_700_000_000_000_123] {
            let payload = event.payload(&ids, stamp).unwrap();
            let envelope: RelayEnvelope = serde_json::from_slice(&payload).unwrap();
            assert_eq!(envelope.connection_ids, ids);
            assert_eq!(envelope.published_at_us, Some(stamp));
            assert_eq!(envelope.event.as_ref(), Some(event.frame()));
            assert!(envelope.close.is_none() && !envelope.routes_reset);
        }
    }

    #[test]
    fn an_invalid_redis_url_is_refused() {
        assert!(matches!(
            RelayBus::redis("not a url"),
            Err(RelayError::InvalidUrl(_))
        ));
    }

    #[tokio::test]
    async fn a_redis_subscriber_receives_published_envelopes() {
        let Some(url) = test_support::backend_url("REDIS_URL") else {
            return;
        };
        let bus = RelayBus::redis(&url).unwrap();
        let handler = Uuid::new_v4();
        let mut subscription = bus.subscribe(handler);
        let mut subscribed = subscription.subscribed();
        tokio::time::timeout(Duration::from_secs(10), subscribed.wait_for(|s| *s))
            .await
            .expect("subscribed in time")
            .unwrap();
        assert_eq!(bus.publish(handler, &envelope("r")).await.unwrap(), 1);
        let got = tokio::time::timeout(Duration::from_secs(10), subscription.next())
            .await
            .unwrap()
            .unwrap();
        assert_eq!(got.event, envelope("r").event);
        assert!(
            got.published_at_us.is_some(),
            "the bus stamps what it publishes"
        );
        // An event prepared once, and a broadcast (other subscribers of this Redis may
        // receive it too: at least this one does).
        let target = vec![Uuid::new_v4()];
        let prepared = PreparedEvent::new(ServerFrame::Pong { nonce: None });
        assert_eq!(
            bus.publish_event(handler, target.clone(), &prepared)
                .await
                .unwrap(),
            1
        );
        let got = tokio::time::timeout(Duration::from_secs(10), subscription.next())
            .await
            .unwrap()
            .unwrap();
        assert!(
            got.published_at_us.is_some(),
            "a prepared event is stamped too"
        );
        assert_eq!(
            (got.connection_ids, got.event),
            (target, Some(prepared.frame().clone()))
        );
        let reset = RelayEnvelope {
            routes_reset: true,
            ..Default::default()
        };
        assert!(bus.publish_all(&reset).await.unwrap() >= 1);
        let got = tokio::time::timeout(Duration::from_secs(10), async {
            loop {
                let envelope = subscription.next().await.unwrap();
                if envelope.routes_reset {
                    return envelope;
                }
            }
        })
        .await
        .unwrap();
        assert!(got.connection_ids.is_empty());
    }
}
