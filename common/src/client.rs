//! A client for calling another service's HTTP API, over the network or in-process.
//!
//! In the distributed form a [`ServiceClient`] speaks HTTP to a base URL. In the one-process
//! form it hands the request straight to the other service's `axum::Router`, so no loopback
//! socket is spent, yet the request takes exactly the same path through routing, extractors
//! and the service credential check.

use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::http::{HeaderValue, Method, Request, Response, StatusCode};
use serde::Serialize;
use serde::de::DeserializeOwned;
use tower::ServiceExt;

use crate::auth::{SERVICE_TOKEN_HEADER, ServiceCredential};
use crate::error::{ApiError, ErrorBody};

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

impl ClientError {
    /// The HTTP status of an API error.
    pub fn status(&self) -> Option<StatusCode> {
        match self {
            ClientError::Api { status, .. } => Some(*status),
            _ => None,
        }
    }

    /// The error code of an API error.
    pub fn code(&self) -> Option<&str> {
        match self {
            ClientError::Api { body, .. } => Some(&body.error.code),
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
            ClientError::Unavailable { service, cause } => {
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

#[derive(Clone)]
enum Transport {
    Http {
        client: reqwest::Client,
        base: String,
    },
    InProcess(Router),
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
            Transport::InProcess(_) => "in-process",
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
            transport: Transport::InProcess(router),
            credential,
        }
    }

    /// The name of the service this client calls.
    pub fn service(&self) -> &'static str {
        self.service
    }

    /// The base URL, for an HTTP client.
    pub fn base_url(&self) -> Option<&str> {
        match &self.transport {
            Transport::Http { base, .. } => Some(base),
            Transport::InProcess(_) => None,
        }
    }

    /// Sends a raw request (path and query in its URI) and returns the raw response.
    /// The service credential is attached when this client has one.
    pub async fn send(&self, mut request: Request<Body>) -> Result<Response<Body>, ClientError> {
        if let Some(credential) = &self.credential {
            let value = HeaderValue::from_str(credential.expose()).map_err(|e| {
                ClientError::Unavailable {
                    service: self.service,
                    cause: format!("service credential is not a valid header value: {e}"),
                }
            })?;
            request.headers_mut().insert(SERVICE_TOKEN_HEADER, value);
        }
        match &self.transport {
            Transport::InProcess(router) => Ok(router
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
                    .map_err(|e| self.unavailable(e))?;
                let mut builder = Response::builder().status(response.status());
                if let Some(headers) = builder.headers_mut() {
                    headers.extend(response.headers().clone());
                }
                let bytes = response.bytes().await.map_err(|e| self.unavailable(e))?;
                Ok(builder
                    .body(Body::from(bytes))
                    .expect("status and headers came from a valid response"))
            }
        }
    }

    fn unavailable(&self, cause: impl std::fmt::Display) -> ClientError {
        ClientError::Unavailable {
            service: self.service,
            cause: cause.to_string(),
        }
    }

    /// Sends a request with an optional JSON body and decodes a JSON answer; an error
    /// status becomes [`ClientError::Api`].
    pub async fn call<B, T>(
        &self,
        method: Method,
        path: &str,
        body: Option<&B>,
    ) -> Result<T, ClientError>
    where
        B: Serialize + ?Sized,
        T: DeserializeOwned,
    {
        let bytes = self.call_raw(method, path, body).await?;
        let bytes = if bytes.is_empty() {
            &b"null"[..]
        } else {
            &bytes[..]
        };
        serde_json::from_slice(bytes).map_err(|e| ClientError::Decode {
            service: self.service,
            cause: e.to_string(),
        })
    }

    /// Like [`call`](Self::call) but ignores the answer's body.
    pub async fn call_no_content<B>(
        &self,
        method: Method,
        path: &str,
        body: Option<&B>,
    ) -> Result<(), ClientError>
    where
        B: Serialize + ?Sized,
    {
        self.call_raw(method, path, body).await.map(|_| ())
    }

    async fn call_raw<B>(
        &self,
        method: Method,
        path: &str,
        body: Option<&B>,
    ) -> Result<bytes::Bytes, ClientError>
    where
        B: Serialize + ?Sized,
    {
        let mut builder = Request::builder().method(method).uri(path);
        let body = match body {
            Some(body) => {
                builder = builder.header(axum::http::header::CONTENT_TYPE, "application/json");
                Body::from(serde_json::to_vec(body).map_err(|e| ClientError::Decode {
                    service: self.service,
                    cause: e.to_string(),
                })?)
            }
            None => Body::empty(),
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
                "unexpected_status",
                format!("{} answered {status}", self.service),
            )
        });
        Err(ClientError::Api {
            service: self.service,
            status,
            body,
        })
    }

    /// `GET path` decoding JSON.
    pub async fn get<T: DeserializeOwned>(&self, path: &str) -> Result<T, ClientError> {
        self.call::<(), T>(Method::GET, path, None).await
    }

    /// `POST path` with a JSON body, decoding JSON.
    pub async fn post<B: Serialize + ?Sized, T: DeserializeOwned>(
        &self,
        path: &str,
        body: &B,
    ) -> Result<T, ClientError> {
        self.call(Method::POST, path, Some(body)).await
    }

    /// `PUT path` with a JSON body, ignoring the answer's body.
    pub async fn put_no_content<B: Serialize + ?Sized>(
        &self,
        path: &str,
        body: &B,
    ) -> Result<(), ClientError> {
        self.call_no_content(Method::PUT, path, Some(body)).await
    }

    /// `DELETE path`, ignoring the answer's body.
    pub async fn delete(&self, path: &str) -> Result<(), ClientError> {
        self.call_no_content::<()>(Method::DELETE, path, None).await
    }
}
