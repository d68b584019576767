//! `TestApp`: auth-service on a fresh database, driven through `app(state).oneshot(..)`,
//! with one method per endpoint.

use std::net::IpAddr;
use std::path::PathBuf;

use auth_service::store::dynamodb::{DynamoConfig, DynamoSessionStore};
use auth_service::store::postgres::{self, PgUserStore};
use auth_service::{AppState, AuthConfig, Stores};
use axum::Router;
use axum::body::Body;
use axum::http::{HeaderMap, Method, Request, StatusCode};
use http_body_util::BodyExt;
use serde_json::{Value, json};
use service_kit::auth::{SERVICE_TOKEN_HEADER, ServiceCredential};
use service_kit::token::{
    DEFAULT_AUDIENCE, DEFAULT_ISSUER, SigningKeyPem, TokenSigner, TokenVerifier,
};
use sqlx::{AssertSqlSafe, Connection, PgConnection};
use test_support::unique_name;
use tower::ServiceExt;

/// Password of every account made by [`TestApp::signup_user`].
pub const PASSWORD: &str = "correct horse battery";

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

    /// Asserts the status and the `error.code` of an error body.
    #[track_caller]
    pub fn assert_error(&self, status: StatusCode, code: &str) -> &Self {
        self.assert_status(status);
        assert_eq!(self.error_code(), code, "unexpected error: {}", self.body);
        self
    }
}

/// The tokens of a signed-up or logged-in user.
#[derive(Debug, Clone)]
pub struct Tokens {
    pub user_id: String,
    pub session_id: String,
    pub access: String,
    pub refresh: String,
}

impl Tokens {
    fn from_pair(pair: &Value) -> Self {
        Self {
            user_id: pair["user_id"].as_str().expect("user_id").to_owned(),
            session_id: pair["session_id"].as_str().expect("session_id").to_owned(),
            access: pair["access_token"]
                .as_str()
                .expect("access_token")
                .to_owned(),
            refresh: pair["refresh_token"]
                .as_str()
                .expect("refresh_token")
                .to_owned(),
        }
    }
}

/// Where the stores of a test app live, removed when it is dropped.
enum Backing {
    SqliteDir(PathBuf),
    Real {
        pg_admin_url: String,
        pg_database: String,
        dynamo: DynamoSessionStore,
    },
}

/// auth-service on a fresh database.
pub struct TestApp {
    pub router: Router,
    pub signing_key: SigningKeyPem,
    pub signer: TokenSigner,
    pub credential: ServiceCredential,
    backing: Option<Backing>,
}

impl TestApp {
    /// On a fresh SQLite file with the default settings.
    pub async fn spawn() -> Self {
        Self::with_config(AuthConfig::default()).await
    }

    /// On a fresh SQLite file with `config`.
    pub async fn with_config(config: AuthConfig) -> Self {
        let dir = std::env::temp_dir().join(unique_name("auth_api"));
        std::fs::create_dir_all(&dir).unwrap();
        let stores = Stores::sqlite(&format!("sqlite://{}/auth.db?mode=rwc", dir.display()))
            .await
            .unwrap();
        Self::assemble(stores, config, Backing::SqliteDir(dir))
    }

    /// Users on a fresh PostgreSQL database, sessions in a fresh DynamoDB table.
    pub async fn on_real_backends(pg_url: &str, dynamo_url: &str) -> Self {
        let pg_database = unique_name("auth_api");
        let mut admin = PgConnection::connect(pg_url).await.unwrap();
        sqlx::query(AssertSqlSafe(format!("CREATE DATABASE {pg_database}")))
            .execute(&mut admin)
            .await
            .unwrap();
        let mut url = url::Url::parse(pg_url).unwrap();
        url.set_path(&pg_database);
        let pool = postgres::pool(url.as_str(), 8).unwrap();
        postgres::migrate(&pool).await.unwrap();
        let dynamo = DynamoSessionStore::connect(&DynamoConfig {
            table: unique_name("rc_auth_api"),
            endpoint: Some(dynamo_url.to_owned()),
            region: Some("us-east-1".to_owned()),
            timeout: std::time::Duration::from_secs(5),
        })
        .await;
        dynamo.ensure_table().await.unwrap();
        let stores = Stores {
            users: std::sync::Arc::new(PgUserStore::new(pool)),
            sessions: std::sync::Arc::new(dynamo.clone()),
        };
        Self::assemble(
            stores,
            AuthConfig::default(),
            Backing::Real {
                pg_admin_url: pg_url.to_owned(),
                pg_database,
                dynamo,
            },
        )
    }

    fn assemble(stores: Stores, config: AuthConfig, backing: Backing) -> Self {
        let signing_key = SigningKeyPem::generate();
        let signer =
            TokenSigner::from_pem(signing_key.expose(), DEFAULT_ISSUER, DEFAULT_AUDIENCE).unwrap();
        let verifier =
            TokenVerifier::from_jwks(DEFAULT_ISSUER, DEFAULT_AUDIENCE, &signer.jwks()).unwrap();
        let credential = ServiceCredential::random();
        let state = AppState::new(stores, signer.clone(), verifier, credential.clone(), config);
        Self {
            router: auth_service::app(state),
            signing_key,
            signer,
            credential,
            backing: Some(backing),
        }
    }

    /// Removes the real-backend database and table (SQLite files go on drop).
    pub async fn cleanup(mut self) {
        if let Some(Backing::Real {
            pg_admin_url,
            pg_database,
            dynamo,
        }) = self.backing.take()
        {
            let mut admin = PgConnection::connect(&pg_admin_url).await.unwrap();
            sqlx::query(AssertSqlSafe(format!(
                "DROP DATABASE IF EXISTS {pg_database} WITH (FORCE)"
            )))
            .execute(&mut admin)
            .await
            .unwrap();
            dynamo.delete_table().await.unwrap();
        }
    }

    /// Sends one request.
    pub async fn send(
        &self,
        method: Method,
        uri: &str,
        bearer: Option<&str>,
        body: Option<Value>,
        headers: &[(&str, &str)],
    ) -> TestResponse {
        self.send_text(method, uri, bearer, body.map(|b| b.to_string()), headers)
            .await
    }

    /// Sends one request whose body is `body` as written, labelled as JSON.
    pub async fn send_text(
        &self,
        method: Method,
        uri: &str,
        bearer: Option<&str>,
        body: Option<String>,
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
                .body(Body::from(body))
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

    /// A valid sign-up body for `username`.
    pub fn signup_body(username: &str) -> Value {
        json!({
            "username": username,
            "password": PASSWORD,
            "display_name": "Test User",
            "gender": "female",
            "birth_date": "1995-04-23",
            "interests": ["Rust", " jazz ", "rust"],
        })
    }

    /// POST /v1/auth/signup
    pub async fn signup(&self, body: Value) -> TestResponse {
        self.send(Method::POST, "/v1/auth/signup", None, Some(body), &[])
            .await
    }

    /// POST /v1/auth/signup as the client at `ip` (the gateway's header).
    pub async fn signup_from(&self, body: Value, ip: IpAddr) -> TestResponse {
        let ip = ip.to_string();
        self.send(
            Method::POST,
            "/v1/auth/signup",
            None,
            Some(body),
            &[("x-rc-client-ip", &ip)],
        )
        .await
    }

    /// POST /v1/auth/signup with a body that may not be JSON.
    pub async fn signup_raw(&self, body: &str) -> TestResponse {
        self.send_text(
            Method::POST,
            "/v1/auth/signup",
            None,
            Some(body.to_owned()),
            &[],
        )
        .await
    }

    /// Signs up `username` with [`PASSWORD`] and answers its tokens.
    pub async fn signup_user(&self, username: &str) -> Tokens {
        let response = self.signup(Self::signup_body(username)).await;
        response.assert_status(StatusCode::CREATED);
        Tokens::from_pair(&response.body["tokens"])
    }

    /// POST /v1/auth/login
    pub async fn login(&self, username: &str, password: &str) -> TestResponse {
        self.send(
            Method::POST,
            "/v1/auth/login",
            None,
            Some(json!({"username": username, "password": password})),
            &[],
        )
        .await
    }

    /// POST /v1/auth/login, as the gateway forwards it for a client at `ip`.
    pub async fn login_from(&self, username: &str, password: &str, ip: IpAddr) -> TestResponse {
        let ip = ip.to_string();
        self.send(
            Method::POST,
            "/v1/auth/login",
            None,
            Some(json!({"username": username, "password": password})),
            &[("x-rc-client-ip", &ip)],
        )
        .await
    }

    /// Logs in and answers the tokens.
    pub async fn login_tokens(&self, username: &str, password: &str) -> Tokens {
        let response = self.login(username, password).await;
        response.assert_status(StatusCode::OK);
        Tokens::from_pair(&response.body)
    }

    /// POST /v1/auth/refresh
    pub async fn refresh(&self, refresh_token: &str) -> TestResponse {
        self.send(
            Method::POST,
            "/v1/auth/refresh",
            None,
            Some(json!({"refresh_token": refresh_token})),
            &[],
        )
        .await
    }

    /// Refreshes and answers the new tokens.
    pub async fn refresh_tokens(&self, refresh_token: &str) -> Tokens {
        let response = self.refresh(refresh_token).await;
        response.assert_status(StatusCode::OK);
        Tokens::from_pair(&response.body)
    }

    /// POST /v1/auth/logout
    pub async fn logout(&self, access: &str) -> TestResponse {
        self.send(Method::POST, "/v1/auth/logout", Some(access), None, &[])
            .await
    }

    /// GET /v1/me
    pub async fn me(&self, access: &str) -> TestResponse {
        self.send(Method::GET, "/v1/me", Some(access), None, &[])
            .await
    }

    /// PATCH /v1/me
    pub async fn update_me(&self, access: &str, body: Value) -> TestResponse {
        self.send(Method::PATCH, "/v1/me", Some(access), Some(body), &[])
            .await
    }

    /// GET /v1/me/preferences
    pub async fn preferences(&self, access: &str) -> TestResponse {
        self.send(Method::GET, "/v1/me/preferences", Some(access), None, &[])
            .await
    }

    /// PUT /v1/me/preferences
    pub async fn put_preferences(&self, access: &str, body: Value) -> TestResponse {
        self.send(
            Method::PUT,
            "/v1/me/preferences",
            Some(access),
            Some(body),
            &[],
        )
        .await
    }

    /// POST /v1/me/password
    pub async fn change_password(&self, access: &str, current: &str, new: &str) -> TestResponse {
        self.send(
            Method::POST,
            "/v1/me/password",
            Some(access),
            Some(json!({"current_password": current, "new_password": new})),
            &[],
        )
        .await
    }

    /// GET /v1/me/sessions
    pub async fn sessions(&self, access: &str) -> TestResponse {
        self.send(Method::GET, "/v1/me/sessions", Some(access), None, &[])
            .await
    }

    /// DELETE /v1/me/sessions/{id}
    pub async fn end_session(&self, access: &str, id: &str) -> TestResponse {
        self.send(
            Method::DELETE,
            &format!("/v1/me/sessions/{id}"),
            Some(access),
            None,
            &[],
        )
        .await
    }

    /// GET /.well-known/jwks.json
    pub async fn jwks(&self) -> TestResponse {
        self.send(Method::GET, "/.well-known/jwks.json", None, None, &[])
            .await
    }

    /// GET /internal/users/{id}/profile, with the given service credential.
    pub async fn internal_profile(&self, id: &str, credential: Option<&str>) -> TestResponse {
        let headers: Vec<(&str, &str)> = credential
            .map(|c| (SERVICE_TOKEN_HEADER, c))
            .into_iter()
            .collect();
        self.send(
            Method::GET,
            &format!("/internal/users/{id}/profile"),
            None,
            None,
            &headers,
        )
        .await
    }

    /// GET /internal/users/{id}, with the given service credential.
    pub async fn internal_user(&self, id: &str, credential: Option<&str>) -> TestResponse {
        let headers: Vec<(&str, &str)> = credential
            .map(|c| (SERVICE_TOKEN_HEADER, c))
            .into_iter()
            .collect();
        self.send(
            Method::GET,
            &format!("/internal/users/{id}"),
            None,
            None,
            &headers,
        )
        .await
    }

    /// GET /readyz
    pub async fn readyz(&self) -> TestResponse {
        self.send(Method::GET, "/readyz", None, None, &[]).await
    }

    /// GET /openapi.json
    pub async fn openapi(&self) -> TestResponse {
        self.send(Method::GET, "/openapi.json", None, None, &[])
            .await
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        if let Some(Backing::SqliteDir(dir)) = &self.backing {
            let _ = std::fs::remove_dir_all(dir);
        }
    }
}

/// A username unique to the calling test.
pub fn username(prefix: &str) -> String {
    format!(
        "{prefix}_{}",
        &uuid::Uuid::new_v4().simple().to_string()[..8]
    )
}
