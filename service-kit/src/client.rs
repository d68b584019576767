//! Calling another service's endpoints, typed by [`wire::endpoint::Endpoint`]: over HTTP,
//! through the service's router in this process, or straight into its handler.
//!
//! In the distributed form a [`ServiceClient`] speaks HTTP to a base URL. In the
//! one-process form it hands the request to the other service's `axum::Router`, so no
//! loopback socket is spent, yet the request takes exactly the same path through routing,
//! extractors and the credential check. For the hottest endpoints a service may also
//! register [`DirectRoutes`]: the typed request then reaches the handler as a Rust value,
//! with no JSON round trip at all.

use std::any::{Any, TypeId};
use std::collections::HashMap;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::http::{HeaderValue, Method, Request, Response, StatusCode};
use futures::future::BoxFuture;
use serde::de::DeserializeOwned;
use tower::ServiceExt;
use wire::endpoint::{Endpoint, PathParams};

use crate::auth::{SERVICE_TOKEN_HEADER, ServiceCredential};
use crate::error::{ApiError, ErrorBody, ErrorCode};

/// Largest response body a service client reads.
const MAX_RESPONSE_BYTES: usize = 16 * 1024 * 1024;

/// Why a call to another service failed.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The service could not be reached or did not answer in time.
    #[error("{service} is unavailable: {cause}")]
    Unavailable {
        /// Which service.
        service: &'static str,
        /// What went wrong (for logs only).
        cause: String,
        /// How far the call got before it failed.
        failure: Failure,
    },
    /// The service answered with an error body.
    #[error("{service} answered {status}: {}", body.error.code)]
    Api {
        /// Which service.
        service: &'static str,
        /// The HTTP status.
        status: StatusCode,
        /// The uniform error body.
        body: ErrorBody,
    },
    /// The service answered something that is not the expected JSON.
    #[error("{service} answered an unexpected body: {cause}")]
    Decode {
        /// Which service.
        service: &'static str,
        /// What was wrong (for logs only).
        cause: String,
    },
}

/// How far a call that got no answer went before it failed: whether the request may have
/// reached the service decides whether it may be sent again elsewhere.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Failure {
    /// No connection could be made: nothing reached the service.
    Connect,
    /// The service did not answer in time; the request may have reached it.
    Timeout,
    /// Any other failure after the connection was made; the request may have reached it.
    Transport,
}

impl Failure {
    /// A short name for metrics and logs.
    pub fn as_str(self) -> &'static str {
        match self {
            Failure::Connect => "connect_failed",
            Failure::Timeout => "timed_out",
            Failure::Transport => "transport_failed",
        }
    }

    fn of(err: &reqwest::Error) -> Self {
        if err.is_connect() {
            Failure::Connect
        } else if err.is_timeout() {
            Failure::Timeout
        } else {
            Failure::Transport
        }
    }
}

impl ClientError {
    /// How far the call got, when it failed without an answer from the service.
    pub fn failure(&self) -> Option<Failure> {
        match self {
            ClientError::Unavailable { failure, .. } => Some(*failure),
            _ => None,
        }
    }

    /// The HTTP status of an API error.
    pub fn status(&self) -> Option<StatusCode> {
        match self {
            ClientError::Api { status, .. } => Some(*status),
            _ => None,
        }
    }

    /// The error code of an API error.
    pub fn code(&self) -> Option<ErrorCode> {
        match self {
            ClientError::Api { body, .. } => Some(body.error.code),
            _ => None,
        }
    }

    /// Converts to an error for our own caller: API errors with a 4xx status pass through
    /// unchanged; outages become 503; anything else is an internal error (logged).
    pub fn into_api_error(self) -> ApiError {
        match self {
            ClientError::Api { status, body, .. } if status.is_client_error() => ApiError {
                status,
                body,
                retry_after: None,
            },
            ClientError::Api { status, .. } if status == StatusCode::SERVICE_UNAVAILABLE => {
                ApiError::unavailable("a backend service is unavailable").with_retry_after(1)
            }
            ClientError::Unavailable { service, cause, .. } => {
                tracing::warn!(service, %cause, "backend service unavailable");
                ApiError::unavailable("a backend service is unavailable").with_retry_after(1)
            }
            other => ApiError::internal(&other),
        }
    }
}

impl From<ClientError> for ApiError {
    fn from(err: ClientError) -> Self {
        err.into_api_error()
    }
}

/// A handler of endpoint `E` called with typed values, in this process.
type DirectFn<E> = dyn Fn(
        <E as Endpoint>::Path,
        <E as Endpoint>::Request,
    ) -> BoxFuture<'static, Result<<E as Endpoint>::Response, ApiError>>
    + Send
    + Sync;

/// Endpoints of a service in this process that take their request as a Rust value: no
/// serialisation, no routing, no credential check (nothing leaves the process). A service
/// offers these for its hottest internal endpoints; every other call still goes through
/// its router.
#[derive(Default, Clone)]
pub struct DirectRoutes {
    handlers: HashMap<TypeId, Arc<dyn Any + Send + Sync>>,
}

impl std::fmt::Debug for DirectRoutes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DirectRoutes")
            .field("endpoints", &self.handlers.len())
            .finish()
    }
}

impl DirectRoutes {
    /// No direct endpoints.
    pub fn new() -> Self {
        Self::default()
    }

    /// Serves endpoint `E` with `handler`.
    pub fn route<E, F, Fut>(mut self, handler: F) -> Self
    where
        E: Endpoint,
        F: Fn(E::Path, E::Request) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<E::Response, ApiError>> + Send + 'static,
    {
        let boxed: Arc<DirectFn<E>> =
            Arc::new(move |path, request| Box::pin(handler(path, request)));
        self.handlers.insert(TypeId::of::<E>(), Arc::new(boxed));
        self
    }

    fn get<E: Endpoint>(&self) -> Option<Arc<DirectFn<E>>> {
        self.handlers
            .get(&TypeId::of::<E>())?
            .downcast_ref::<Arc<DirectFn<E>>>()
            .cloned()
    }
}

#[derive(Clone)]
enum Transport {
    Http {
        client: reqwest::Client,
        base: String,
    },
    InProcess {
        router: Router,
        direct: DirectRoutes,
    },
}

/// Calls one service, with the service credential attached. Cheap to clone.
#[derive(Clone)]
pub struct ServiceClient {
    service: &'static str,
    transport: Transport,
    credential: Option<ServiceCredential>,
}

impl std::fmt::Debug for ServiceClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let target = match &self.transport {
            Transport::Http { base, .. } => base.as_str(),
            Transport::InProcess { .. } => "in-process",
        };
        f.debug_struct("ServiceClient")
            .field("service", &self.service)
            .field("target", &target)
            .finish()
    }
}

/// A `reqwest` client tuned for service-to-service calls: fail fast when a peer is down.
pub fn default_http_client() -> reqwest::Client {
    reqwest::Client::builder()
        .connect_timeout(Duration::from_secs(2))
        .timeout(Duration::from_secs(15))
        .pool_idle_timeout(Duration::from_secs(60))
        .pool_max_idle_per_host(256)
        .build()
        .expect("a client with these settings always builds")
}

impl ServiceClient {
    /// Calls `service` over HTTP at `base_url` (e.g. `http://127.0.0.1:8081`).
    pub fn http(
        service: &'static str,
        client: reqwest::Client,
        base_url: &str,
        credential: Option<ServiceCredential>,
    ) -> Self {
        Self {
            service,
            transport: Transport::Http {
                client,
                base: base_url.trim_end_matches('/').to_owned(),
            },
            credential,
        }
    }

    /// Calls `service` by handing requests to its router in this process.
    pub fn in_process(
        service: &'static str,
        router: Router,
        credential: Option<ServiceCredential>,
    ) -> Self {
        Self {
            service,
            transport: Transport::InProcess {
                router,
                direct: DirectRoutes::new(),
            },
            credential,
        }
    }

    /// For an in-process client: serve the endpoints of `direct` straight from their
    /// handlers (an HTTP client ignores them).
    pub fn with_direct(mut self, routes: DirectRoutes) -> Self {
        if let Transport::InProcess { direct, .. } = &mut self.transport {
            *direct = routes;
        }
        self
    }

    /// The name of the service this client calls.
    pub fn service(&self) -> &'static str {
        self.service
    }

    /// The base URL, for an HTTP client.
    pub fn base_url(&self) -> Option<&str> {
        match &self.transport {
            Transport::Http { base, .. } => Some(base),
            Transport::InProcess { .. } => None,
        }
    }

    /// Calls endpoint `E` with its path values and request; decodes its response.
    pub async fn call<E: Endpoint>(
        &self,
        path: E::Path,
        request: E::Request,
    ) -> Result<E::Response, ClientError> {
        if let Transport::InProcess { direct, .. } = &self.transport
            && let Some(handler) = direct.get::<E>()
        {
            return handler(path, request)
                .await
                .map_err(|err| ClientError::Api {
                    service: self.service,
                    status: err.status,
                    body: err.body,
                });
        }
        let mut uri = path.render(E::ROUTE);
        let body = if E::request_in_query() {
            let query = serde_urlencoded::to_string(&request).map_err(|e| self.decode(e))?;
            if !query.is_empty() {
                uri.push('?');
                uri.push_str(&query);
            }
            None
        } else {
            Some(serde_json::to_vec(&request).map_err(|e| self.decode(e))?)
        };
        let bytes = self.exchange(E::METHOD, &uri, body).await?;
        decode_json(self.service, &bytes)
    }

    /// `GET path` decoding JSON, for the few routes that are not typed endpoints (health,
    /// published keys, OpenAPI documents).
    pub async fn get_json<T: DeserializeOwned>(&self, path: &str) -> Result<T, ClientError> {
        let bytes = self.exchange(Method::GET, path, None).await?;
        decode_json(self.service, &bytes)
    }

    /// Sends a raw request (path and query in its URI) and returns the raw response.
    /// The service credential is attached when this client has one.
    pub async fn send(&self, mut request: Request<Body>) -> Result<Response<Body>, ClientError> {
        if let Some(credential) = &self.credential {
            let value = HeaderValue::from_str(credential.expose()).map_err(|e| {
                self.unavailable(format!(
                    "service credential is not a valid header value: {e}"
                ))
            })?;
            request.headers_mut().insert(SERVICE_TOKEN_HEADER, value);
        }
        if !request
            .headers()
            .contains_key(&crate::telemetry::REQUEST_ID)
            && let Some(id) = crate::telemetry::current_request_id()
        {
            request
                .headers_mut()
                .insert(crate::telemetry::REQUEST_ID.clone(), id);
        }
        match &self.transport {
            Transport::InProcess { router, .. } => Ok(router
                .clone()
                .oneshot(request)
                .await
                .unwrap_or_else(|never| match never {})),
            Transport::Http { client, base } => {
                let (parts, body) = request.into_parts();
                let path = parts
                    .uri
                    .path_and_query()
                    .map(|pq| pq.as_str())
                    .unwrap_or("/");
                let bytes = axum::body::to_bytes(body, MAX_RESPONSE_BYTES)
                    .await
                    .map_err(|e| self.unavailable(e))?;
                let response = client
                    .request(parts.method, format!("{base}{path}"))
                    .headers(parts.headers)
                    .body(bytes)
                    .send()
                    .await
                    .map_err(|e| self.failed(Failure::of(&e), e))?;
                let mut builder = Response::builder().status(response.status());
                if let Some(headers) = builder.headers_mut() {
                    headers.extend(response.headers().clone());
                }
                let bytes = response
                    .bytes()
                    .await
                    .map_err(|e| self.failed(Failure::of(&e), e))?;
                Ok(builder
                    .body(Body::from(bytes))
                    .expect("status and headers came from a valid response"))
            }
        }
    }

    fn unavailable(&self, cause: impl std::fmt::Display) -> ClientError {
        self.failed(Failure::Transport, cause)
    }

    fn failed(&self, failure: Failure, cause: impl std::fmt::Display) -> ClientError {
        ClientError::Unavailable {
            service: self.service,
            cause: cause.to_string(),
            failure,
        }
    }

    fn decode(&self, cause: impl std::fmt::Display) -> ClientError {
        ClientError::Decode {
            service: self.service,
            cause: cause.to_string(),
        }
    }

    /// Sends `method uri` with an optional JSON body; the answer's bytes on success, the
    /// error body as [`ClientError::Api`] otherwise.
    async fn exchange(
        &self,
        method: Method,
        uri: &str,
        body: Option<Vec<u8>>,
    ) -> Result<bytes::Bytes, ClientError> {
        let mut builder = Request::builder().method(method).uri(uri);
        // A request of `()` serialises to `null`: no body at all.
        let body = match body {
            Some(json) if json != b"null" => {
                builder = builder.header(axum::http::header::CONTENT_TYPE, "application/json");
                Body::from(json)
            }
            _ => Body::empty(),
        };
        let request = builder.body(body).map_err(|e| self.unavailable(e))?;
        let response = self.send(request).await?;
        let status = response.status();
        let bytes = axum::body::to_bytes(response.into_body(), MAX_RESPONSE_BYTES)
            .await
            .map_err(|e| self.unavailable(e))?;
        if status.is_success() {
            return Ok(bytes);
        }
        let body = serde_json::from_slice::<ErrorBody>(&bytes).unwrap_or_else(|_| {
            ErrorBody::new(
                if status.is_server_error() {
                    ErrorCode::Internal
                } else {
                    ErrorCode::BadRequest
                },
                format!("{} answered {status}", self.service),
            )
        });
        Err(ClientError::Api {
            service: self.service,
            status,
            body,
        })
    }
}

fn decode_json<T: DeserializeOwned>(service: &'static str, bytes: &[u8]) -> Result<T, ClientError> {
    // An empty body (204) decodes as `null`, which is what `()` expects.
    let bytes = if bytes.is_empty() {
        &b"null"[..]
    } else {
        bytes
    };
    serde_json::from_slice(bytes).map_err(|e| ClientError::Decode {
        service,
        cause: e.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::routing::post;
    use wire::api::matching::DropTicket;
    use wire::api::wsmanager::{ConnectionCount, RegisterConnection, RegisterConnectionRequest};

    fn register_request() -> RegisterConnectionRequest {
        RegisterConnectionRequest {
            user_id: uuid::Uuid::new_v4(),
            connection: wire::api::wsmanager::ConnectionRef {
                handler_id: uuid::Uuid::new_v4(),
                connection_id: uuid::Uuid::new_v4(),
            },
        }
    }

    #[tokio::test]
    async fn a_typed_call_reaches_the_route_through_the_router() {
        let router = Router::new().route(
            RegisterConnection::ROUTE,
            post(
                |axum::Json(_): axum::Json<RegisterConnectionRequest>| async {
                    axum::Json(ConnectionCount { connections: 7 })
                },
            ),
        );
        let client = ServiceClient::in_process("ws-manager", router, None);
        let answer = client
            .call::<RegisterConnection>((), register_request())
            .await
            .unwrap();
        assert_eq!(answer.connections, 7);
    }

    #[tokio::test]
    async fn a_direct_route_is_served_without_the_router() {
        let direct = DirectRoutes::new().route::<RegisterConnection, _, _>(|(), _| async {
            Ok(ConnectionCount { connections: 3 })
        });
        let client =
            ServiceClient::in_process("ws-manager", Router::new(), None).with_direct(direct);
        let answer = client
            .call::<RegisterConnection>((), register_request())
            .await
            .unwrap();
        assert_eq!(answer.connections, 3);
        // Another endpoint still goes through the (empty) router: 404.
        let err = client
            .call::<DropTicket>(uuid::Uuid::nil(), ())
            .await
            .unwrap_err();
        assert_eq!(err.status(), Some(StatusCode::NOT_FOUND));
    }

    #[tokio::test]
    async fn a_direct_error_keeps_its_status_and_code() {
        let direct = DirectRoutes::new().route::<RegisterConnection, _, _>(|(), _| async {
            Err(ApiError::unavailable("down"))
        });
        let client =
            ServiceClient::in_process("ws-manager", Router::new(), None).with_direct(direct);
        let err = client
            .call::<RegisterConnection>((), register_request())
            .await
            .unwrap_err();
        assert_eq!(err.code(), Some(ErrorCode::BackendUnavailable));
        assert_eq!(err.status(), Some(StatusCode::SERVICE_UNAVAILABLE));
    }
}
