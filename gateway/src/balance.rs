//! Several instances of one REST service behind the gateway: each request goes to the
//! healthy instance with the fewest requests in flight (ties in turn), an instance whose
//! connection fails, that times out, or that answers a run of 502, 503 or 504 (it is up
//! but cannot serve: its own backend or dependency is gone) is ejected, and a probe
//! re-admits it once its `GET /readyz` answers 200 again.
//!
//! A request is sent again to another instance only when that cannot repeat its effect:
//! when no connection could be made (nothing reached the service), or when the method is
//! `GET` or `HEAD` and the call failed without an answer or was answered 502, 503 or 504.
//! A `POST` that may have reached the service is never repeated.

use std::future::Future;
use std::sync::atomic::{AtomicU32, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use axum::body::Body;
use axum::http::{HeaderMap, Method, Request, Response, StatusCode, Uri};
use bytes::Bytes;
use serde::de::DeserializeOwned;
use service_kit::auth::ServiceCredential;
use service_kit::client::{ClientError, Failure, ServiceClient};
use tokio::time::Instant;
use wire::endpoint::Endpoint;

/// Path every service answers 200 on when it can serve.
const READY_PATH: &str = "/readyz";
/// How long a probe of an ejected instance may take.
const PROBE_TIMEOUT: Duration = Duration::from_secs(2);

/// Why a set of instances could not be built.
#[derive(Debug, thiserror::Error)]
pub enum PoolError {
    /// No instance was given.
    #[error("{service}: no instance URL given")]
    Empty {
        /// Which service.
        service: &'static str,
    },
    /// A URL is not an `http://` or `https://` URL.
    #[error("{service}: {url:?} is not an http(s) URL")]
    BadUrl {
        /// Which service.
        service: &'static str,
        /// The URL as given.
        url: String,
    },
}

/// How ejected instances are brought back.
#[derive(Debug, Clone, Copy)]
pub struct EjectionPolicy {
    /// Wait before the first probe of an ejected instance; doubled after each failed
    /// probe.
    pub backoff: Duration,
    /// The longest wait between two probes.
    pub max_backoff: Duration,
    /// How many 502, 503 or 504 answers in a row eject an instance (at least 1).
    pub server_errors: u32,
}

impl Default for EjectionPolicy {
    fn default() -> Self {
        Self {
            backoff: Duration::from_secs(1),
            max_backoff: Duration::from_secs(30),
            server_errors: 3,
        }
    }
}

/// Whether an answer with `status` says the instance cannot serve at all (as opposed to a
/// refusal of this one request, or a 500 that may be this request's own fault).
fn unavailable_answer(status: StatusCode) -> bool {
    matches!(
        status,
        StatusCode::BAD_GATEWAY | StatusCode::SERVICE_UNAVAILABLE | StatusCode::GATEWAY_TIMEOUT
    )
}

/// The instances of one service. Cheap to clone.
#[derive(Clone)]
pub struct UpstreamPool {
    inner: Arc<PoolInner>,
}

struct PoolInner {
    service: &'static str,
    instances: Vec<Instance>,
    /// Where the search for the least busy instance starts, so that ties take turns.
    turn: AtomicUsize,
    policy: EjectionPolicy,
}

struct Instance {
    client: ServiceClient,
    /// The base URL, or `in-process`: the `upstream` label of the metrics (not `instance`,
    /// which Prometheus sets to the scraped gateway).
    label: String,
    in_flight: AtomicUsize,
    /// 502, 503 and 504 answers since the last other answer.
    server_errors: AtomicU32,
    health: Mutex<Health>,
}

#[derive(Debug, Clone, Copy)]
enum Health {
    Healthy,
    Ejected {
        /// When the next probe is due.
        probe_at: Instant,
        /// The wait after the next failed probe is twice this.
        backoff: Duration,
    },
}

impl std::fmt::Debug for UpstreamPool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UpstreamPool")
            .field("service", &self.inner.service)
            .field(
                "instances",
                &self
                    .inner
                    .instances
                    .iter()
                    .map(|i| i.label.as_str())
                    .collect::<Vec<_>>(),
            )
            .finish()
    }
}

impl From<ServiceClient> for UpstreamPool {
    fn from(client: ServiceClient) -> Self {
        Self::from_clients(vec![client], EjectionPolicy::default())
            .expect("one client is not an empty set")
    }
}

/// Counts a request in flight on an instance until dropped.
struct InFlight<'a>(&'a AtomicUsize);

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

impl UpstreamPool {
    /// The instances of `service` at `urls` (each `http://host:port`), called over HTTP
    /// with `http`, presenting `credential` when given.
    pub fn http(
        service: &'static str,
        http: &reqwest::Client,
        urls: &[String],
        credential: Option<&ServiceCredential>,
        policy: EjectionPolicy,
    ) -> Result<Self, PoolError> {
        let mut clients = Vec::new();
        for url in urls.iter().map(|u| u.trim()).filter(|u| !u.is_empty()) {
            let valid = reqwest::Url::parse(url)
                .is_ok_and(|u| matches!(u.scheme(), "http" | "https") && u.host().is_some());
            if !valid {
                return Err(PoolError::BadUrl {
                    service,
                    url: url.to_owned(),
                });
            }
            clients.push(ServiceClient::http(
                service,
                http.clone(),
                url,
                credential.cloned(),
            ));
        }
        Self::with_instances(service, clients, policy)
    }

    /// A set of clients of the same service.
    pub fn from_clients(
        clients: Vec<ServiceClient>,
        policy: EjectionPolicy,
    ) -> Result<Self, PoolError> {
        let Some(service) = clients.first().map(ServiceClient::service) else {
            return Err(PoolError::Empty { service: "unknown" });
        };
        Self::with_instances(service, clients, policy)
    }

    fn with_instances(
        service: &'static str,
        clients: Vec<ServiceClient>,
        policy: EjectionPolicy,
    ) -> Result<Self, PoolError> {
        if clients.is_empty() {
            return Err(PoolError::Empty { service });
        }
        let instances = clients
            .into_iter()
            .map(|client| Instance {
                label: client.base_url().unwrap_or("in-process").to_owned(),
                client,
                in_flight: AtomicUsize::new(0),
                server_errors: AtomicU32::new(0),
                health: Mutex::new(Health::Healthy),
            })
            .collect();
        let pool = Self {
            inner: Arc::new(PoolInner {
                service,
                instances,
                turn: AtomicUsize::new(0),
                policy,
            }),
        };
        pool.record_healthy();
        Ok(pool)
    }

    /// The service name.
    pub fn service(&self) -> &'static str {
        self.inner.service
    }

    /// How many instances there are.
    pub fn len(&self) -> usize {
        self.inner.instances.len()
    }

    /// Whether there is no instance (never true: a pool is built with at least one).
    pub fn is_empty(&self) -> bool {
        self.inner.instances.is_empty()
    }

    /// How many instances are not ejected.
    pub fn healthy(&self) -> usize {
        self.inner
            .instances
            .iter()
            .filter(|i| matches!(*i.health(), Health::Healthy))
            .count()
    }

    /// Sends a raw request (path and query in `uri`) to one instance, and to another when
    /// that is safe (see the module docs).
    pub async fn send(
        &self,
        method: Method,
        uri: &Uri,
        headers: &HeaderMap,
        body: Bytes,
    ) -> Result<Response<Body>, ClientError> {
        let status = |result: &Result<Response<Body>, ClientError>| match result {
            Ok(response) => Some(response.status()),
            Err(err) => err.status(),
        };
        self.attempt(&method, status, |client| {
            let mut request = Request::builder()
                .method(method.clone())
                .uri(uri.clone())
                .body(Body::from(body.clone()))
                .expect("method and URI come from a valid request");
            *request.headers_mut() = headers.clone();
            async move { client.send(request).await }
        })
        .await
    }

    /// Calls endpoint `E` on one instance (and on another when that is safe).
    pub async fn call<E: Endpoint>(
        &self,
        path: E::Path,
        request: E::Request,
    ) -> Result<E::Response, ClientError>
    where
        E::Path: Clone,
        E::Request: Clone,
    {
        self.attempt(&E::METHOD, error_status, |client| {
            let (path, request) = (path.clone(), request.clone());
            async move { client.call::<E>(path, request).await }
        })
        .await
    }

    /// `GET path` decoding JSON, on one instance (and on the others while they fail).
    pub async fn get_json<T: DeserializeOwned>(&self, path: &str) -> Result<T, ClientError> {
        self.attempt(&Method::GET, error_status, |client| async move {
            client.get_json::<T>(path).await
        })
        .await
    }

    /// Runs `call` on the chosen instance, then on others while it fails in a way that
    /// makes another try safe. `status` reads the HTTP status of an answer, if any.
    async fn attempt<'a, T, F, Fut>(
        &'a self,
        method: &Method,
        status: impl Fn(&Result<T, ClientError>) -> Option<StatusCode>,
        mut call: F,
    ) -> Result<T, ClientError>
    where
        F: FnMut(&'a ServiceClient) -> Fut,
        Fut: Future<Output = Result<T, ClientError>>,
    {
        let idempotent = matches!(*method, Method::GET | Method::HEAD);
        let mut candidates = self.candidates();
        let mut last_error = None;
        while let Some(index) = self.pick(&mut candidates) {
            let instance = &self.inner.instances[index];
            instance.in_flight.fetch_add(1, Ordering::Relaxed);
            let guard = InFlight(&instance.in_flight);
            let result = call(&instance.client).await;
            drop(guard);
            let failure = match &result {
                Err(err) => err.failure(),
                Ok(_) => None,
            };
            let unavailable = failure.is_none() && status(&result).is_some_and(unavailable_answer);
            let outcome = match failure {
                Some(failure) => failure.as_str(),
                None if unavailable => "unavailable_answer",
                None => "answered",
            };
            metrics::counter!(
                "gateway_upstream_requests_total",
                "service" => self.inner.service,
                "upstream" => instance.label.clone(),
                "outcome" => outcome,
            )
            .increment(1);
            let safe = match failure {
                Some(failure) => {
                    if matches!(failure, Failure::Connect | Failure::Timeout) {
                        self.eject(index);
                    }
                    failure == Failure::Connect || idempotent
                }
                None if unavailable => {
                    let run = instance.server_errors.fetch_add(1, Ordering::Relaxed) + 1;
                    if run >= self.inner.policy.server_errors.max(1) {
                        self.eject(index);
                    }
                    idempotent
                }
                None => {
                    instance.server_errors.store(0, Ordering::Relaxed);
                    return result;
                }
            };
            if !safe || candidates.is_empty() {
                return result;
            }
            tracing::warn!(
                service = self.inner.service,
                instance = %instance.label,
                outcome,
                "upstream instance failed; trying another"
            );
            last_error = Some(result);
        }
        last_error.unwrap_or_else(|| {
            Err(ClientError::Unavailable {
                service: self.inner.service,
                cause: "no instance to call".to_owned(),
                failure: Failure::Connect,
            })
        })
    }

    /// The instances a request may go to: the healthy ones, or all of them when every
    /// one is ejected.
    fn candidates(&self) -> Vec<usize> {
        let instances = &self.inner.instances;
        let healthy: Vec<usize> = (0..instances.len())
            .filter(|&i| matches!(*instances[i].health(), Health::Healthy))
            .collect();
        if healthy.is_empty() {
            (0..instances.len()).collect()
        } else {
            healthy
        }
    }

    /// Takes out of `candidates` the one with the fewest requests in flight; among equals,
    /// the first at or after the pool's turn, which then moves on.
    fn pick(&self, candidates: &mut Vec<usize>) -> Option<usize> {
        if candidates.is_empty() {
            return None;
        }
        let count = self.inner.instances.len();
        let start = self.inner.turn.fetch_add(1, Ordering::Relaxed) % count;
        let (position, _) = candidates
            .iter()
            .enumerate()
            .min_by_key(|&(_, &index)| {
                let busy = self.inner.instances[index]
                    .in_flight
                    .load(Ordering::Relaxed);
                (busy, (index + count - start) % count)
            })
            .expect("candidates is not empty");
        Some(candidates.swap_remove(position))
    }

    /// Takes instance `index` out of rotation until a probe finds it ready.
    fn eject(&self, index: usize) {
        let instance = &self.inner.instances[index];
        {
            let mut health = instance.health();
            if matches!(*health, Health::Ejected { .. }) {
                return;
            }
            instance.server_errors.store(0, Ordering::Relaxed);
            let backoff = self.inner.policy.backoff;
            *health = Health::Ejected {
                probe_at: Instant::now() + backoff,
                backoff,
            };
        }
        tracing::warn!(service = self.inner.service, instance = %instance.label, "upstream instance ejected");
        metrics::counter!(
            "gateway_upstream_ejections_total",
            "service" => self.inner.service,
            "upstream" => instance.label.clone(),
        )
        .increment(1);
        self.record_healthy();
    }

    fn record_healthy(&self) {
        metrics::gauge!("gateway_upstream_healthy_instances", "service" => self.inner.service)
            .set(self.healthy() as f64);
    }

    /// Probes every ejected instance whose back-off has passed: re-admits those whose
    /// `GET /readyz` answers 200, doubles the back-off of the others.
    pub async fn probe_ejected(&self) {
        let now = Instant::now();
        for instance in &self.inner.instances {
            let due =
                matches!(*instance.health(), Health::Ejected { probe_at, .. } if probe_at <= now);
            if !due {
                continue;
            }
            let ready = probe(&instance.client).await;
            let mut health = instance.health();
            let Health::Ejected { backoff, .. } = *health else {
                continue;
            };
            if ready {
                *health = Health::Healthy;
                drop(health);
                tracing::info!(service = self.inner.service, instance = %instance.label, "upstream instance re-admitted");
                self.record_healthy();
            } else {
                let backoff = (backoff * 2).min(self.inner.policy.max_backoff);
                *health = Health::Ejected {
                    probe_at: Instant::now() + backoff,
                    backoff,
                };
            }
        }
    }

    /// Spawns the task that probes ejected instances; it ends when the pool is dropped.
    pub fn spawn_probe(&self) {
        let weak: Weak<PoolInner> = Arc::downgrade(&self.inner);
        let every = self
            .inner
            .policy
            .backoff
            .clamp(Duration::from_millis(10), Duration::from_secs(1));
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(every);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
                let Some(inner) = weak.upgrade() else {
                    return;
                };
                UpstreamPool { inner }.probe_ejected().await;
            }
        });
    }
}

impl Instance {
    fn health(&self) -> std::sync::MutexGuard<'_, Health> {
        self.health.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// The HTTP status of a typed call's error answer (a success carries none).
fn error_status<T>(result: &Result<T, ClientError>) -> Option<StatusCode> {
    result.as_ref().err().and_then(ClientError::status)
}

/// Whether the instance answers `GET /readyz` with 200 in time.
async fn probe(client: &ServiceClient) -> bool {
    let request = Request::get(READY_PATH)
        .body(Body::empty())
        .expect("a static request is valid");
    matches!(
        tokio::time::timeout(PROBE_TIMEOUT, client.send(request)).await,
        Ok(Ok(response)) if response.status() == StatusCode::OK
    )
}
