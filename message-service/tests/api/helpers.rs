//! `TestApp`: message-service on a fresh SQLite file, with a token signer standing in for
//! auth-service and one method per endpoint.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::http::{HeaderMap, Method, Request, StatusCode};
use http_body_util::BodyExt;
use message_service::store::conformance::profile;
use message_service::store::sqlite::SqliteMessageStore;
use message_service::{AppState, MessageConfig};
use serde_json::{Value, json};
use service_kit::auth::{SERVICE_TOKEN_HEADER, ServiceCredential};
use service_kit::token::{DEFAULT_AUDIENCE, DEFAULT_ISSUER, TokenSigner, TokenVerifier};
use test_support::unique_name;
use tower::ServiceExt;
use uuid::Uuid;
use wire::api::auth::PublicProfile;

/// An answer: status, headers and the JSON body (`Null` when empty).
#[derive(Debug)]
pub struct TestResponse {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Value,
}

impl TestResponse {
    /// The `error.code` of an error body.
    pub fn error_code(&self) -> &str {
        self.body["error"]["code"].as_str().unwrap_or_default()
    }

    /// The `error.field` of a validation error.
    pub fn error_field(&self) -> &str {
        self.body["error"]["field"].as_str().unwrap_or_default()
    }

    /// Asserts the status, printing the body when it differs.
    #[track_caller]
    pub fn assert_status(&self, expected: StatusCode) -> &Self {
        assert_eq!(self.status, expected, "unexpected answer: {}", self.body);
        self
    }

    /// Asserts an error answer with this status and code.
    #[track_caller]
    pub fn assert_error(&self, expected: StatusCode, code: &str) -> &Self {
        self.assert_status(expected);
        assert_eq!(self.error_code(), code, "unexpected body: {}", self.body);
        self
    }
}

/// A user with an access token.
#[derive(Debug, Clone)]
pub struct User {
    pub id: Uuid,
    pub token: String,
}

/// message-service on a fresh SQLite file (removed on drop).
pub struct TestApp {
    pub router: Router,
    pub credential: ServiceCredential,
    signer: TokenSigner,
    dir: PathBuf,
}

impl Drop for TestApp {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

impl TestApp {
    /// With the default settings.
    pub async fn spawn() -> Self {
        Self::with_config(MessageConfig::default()).await
    }

    /// With `config`.
    pub async fn with_config(config: MessageConfig) -> Self {
        let dir = std::env::temp_dir().join(unique_name("msg_api"));
        std::fs::create_dir_all(&dir).unwrap();
        let url = format!("sqlite://{}/messages.db?mode=rwc", dir.display());
        let store = SqliteMessageStore::open(&url).await.unwrap();
        let signer = TokenSigner::generate(DEFAULT_ISSUER, DEFAULT_AUDIENCE);
        let verifier =
            TokenVerifier::from_jwks(DEFAULT_ISSUER, DEFAULT_AUDIENCE, &signer.jwks()).unwrap();
        let credential = ServiceCredential::random();
        let state = AppState::new(Arc::new(store), verifier, credential.clone(), None, config);
        Self {
            router: message_service::app(state),
            credential,
            signer,
            dir,
        }
    }

    /// A new user with a valid access token.
    pub fn user(&self) -> User {
        let id = Uuid::new_v4();
        let (token, _) = self
            .signer
            .sign(id, Uuid::new_v4(), Duration::from_secs(600));
        User { id, token }
    }

    /// A new operator (a token with the `admin` role).
    pub fn admin(&self) -> User {
        let id = Uuid::new_v4();
        let grant = service_kit::token::Grant {
            role: wire::api::auth::Role::Admin,
            ..service_kit::token::Grant::user(id, Uuid::new_v4())
        };
        let (token, _) = self.signer.sign_grant(&grant, Duration::from_secs(600));
        User { id, token }
    }

    /// Sends one request with an optional bearer token and extra headers.
    pub async fn send(
        &self,
        method: Method,
        uri: &str,
        bearer: Option<&str>,
        body: Option<Value>,
        headers: &[(&str, &str)],
    ) -> TestResponse {
        let mut request = Request::builder().method(method).uri(uri);
        if let Some(token) = bearer {
            request = request.header("authorization", format!("Bearer {token}"));
        }
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        let request = match body {
            Some(body) => request
                .header("content-type", "application/json")
                .body(Body::from(body.to_string()))
                .unwrap(),
            None => request.body(Body::empty()).unwrap(),
        };
        let response = self.router.clone().oneshot(request).await.unwrap();
        let status = response.status();
        let headers = response.headers().clone();
        let bytes = response.into_body().collect().await.unwrap().to_bytes();
        let body = if bytes.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&bytes)
                .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into_owned()))
        };
        TestResponse {
            status,
            headers,
            body,
        }
    }

    /// A public request as `user`.
    pub async fn public(
        &self,
        method: Method,
        uri: &str,
        user: &User,
        body: Option<Value>,
    ) -> TestResponse {
        self.send(method, uri, Some(&user.token), body, &[]).await
    }

    /// An internal request with `credential` (`None`: without one).
    pub async fn internal_as(
        &self,
        method: Method,
        uri: &str,
        credential: Option<&str>,
        body: Option<Value>,
    ) -> TestResponse {
        let headers: Vec<(&str, &str)> = credential
            .map(|c| (SERVICE_TOKEN_HEADER, c))
            .into_iter()
            .collect();
        self.send(method, uri, None, body, &headers).await
    }

    /// An internal request with the service credential.
    pub async fn internal(&self, method: Method, uri: &str, body: Option<Value>) -> TestResponse {
        let credential = self.credential.expose().to_owned();
        self.internal_as(method, uri, Some(&credential), body).await
    }

    /// POST /internal/chats for a fresh match between `users`.
    pub async fn create_chat(&self, users: &[&User]) -> TestResponse {
        let participants: Vec<PublicProfile> = users.iter().map(|u| profile(u.id)).collect();
        self.internal(
            Method::POST,
            "/internal/chats",
            Some(json!({ "match_id": Uuid::new_v4(), "participants": participants })),
        )
        .await
    }

    /// Creates a chat between `users` and answers its id.
    pub async fn chat_between(&self, users: &[&User]) -> Uuid {
        let response = self.create_chat(users).await;
        response.assert_status(StatusCode::CREATED);
        response.body["id"].as_str().unwrap().parse().unwrap()
    }

    /// POST /internal/chats/{id}/messages
    pub async fn append(
        &self,
        chat: Uuid,
        sender: Uuid,
        client_msg_id: &str,
        text: &str,
    ) -> TestResponse {
        self.internal(
            Method::POST,
            &format!("/internal/chats/{chat}/messages"),
            Some(json!({ "sender_id": sender, "client_msg_id": client_msg_id, "text": text })),
        )
        .await
    }

    /// Appends and answers the stored message.
    pub async fn send_message(&self, chat: Uuid, sender: &User, client_msg_id: &str) -> Value {
        let response = self
            .append(
                chat,
                sender.id,
                client_msg_id,
                &format!("text of {client_msg_id}"),
            )
            .await;
        response.assert_status(StatusCode::CREATED);
        response.body["message"].clone()
    }

    /// POST /internal/chats/{id}/watermarks
    pub async fn mark(
        &self,
        chat: Uuid,
        user: &User,
        delivered: Option<u64>,
        read: Option<u64>,
    ) -> TestResponse {
        self.internal(
            Method::POST,
            &format!("/internal/chats/{chat}/watermarks"),
            Some(json!({ "user_id": user.id, "delivered_seq": delivered, "read_seq": read })),
        )
        .await
    }

    /// GET /v1/chats/{id}/messages?{query}
    pub async fn history(&self, user: &User, chat: Uuid, query: &str) -> TestResponse {
        self.public(
            Method::GET,
            &format!("/v1/chats/{chat}/messages?{query}"),
            user,
            None,
        )
        .await
    }

    /// POST /v1/reports
    pub async fn report(&self, user: &User, body: Value) -> TestResponse {
        self.public(Method::POST, "/v1/reports", user, Some(body))
            .await
    }

    /// POST /v1/blocks
    pub async fn block(&self, user: &User, blocked: &User) -> TestResponse {
        self.public(
            Method::POST,
            "/v1/blocks",
            user,
            Some(json!({ "user_id": blocked.id })),
        )
        .await
    }
}
