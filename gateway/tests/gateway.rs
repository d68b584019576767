//! Gateway behaviour with small in-test upstreams: routing, token checks, limits, headers
//! and the WebSocket proxy. End-to-end tests with the real services live in `random-chats`.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::ws::{Message as WsMessage, WebSocketUpgrade};
use axum::http::{HeaderMap, Request, StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::{any, get};
use futures::{SinkExt, StreamExt};
use gateway::{AppState, Limits, Upstreams, WsUpstream};
use service_kit::client::{ServiceClient, default_http_client};
use service_kit::error::ErrorBody;
use service_kit::token::{DEFAULT_AUDIENCE, DEFAULT_ISSUER, TokenSigner, TokenVerifier};
use tower::ServiceExt;
use uuid::Uuid;
use wire::api::wsmanager::HandlerInfo;

/// Records the headers of every request an upstream receives and echoes its path.
#[derive(Clone, Default)]
struct Recorder(Arc<Mutex<Vec<HeaderMap>>>);

impl Recorder {
    fn router(&self, name: &'static str) -> Router {
        let seen = self.0.clone();
        Router::new().fallback(any(move |req: Request<Body>| {
            let seen = seen.clone();
            async move {
                seen.lock().unwrap().push(req.headers().clone());
                axum::Json(serde_json::json!({"service": name, "path": req.uri().path()}))
            }
        }))
    }

    fn count(&self) -> usize {
        self.0.lock().unwrap().len()
    }

    fn last(&self) -> HeaderMap {
        self.0
            .lock()
            .unwrap()
            .last()
            .cloned()
            .expect("upstream was called")
    }
}

struct TestGateway {
    app: Router,
    state: AppState,
    signer: TokenSigner,
    auth: Recorder,
}

impl TestGateway {
    fn new(limits: Limits) -> Self {
        let auth = Recorder::default();
        let signer = TokenSigner::generate(DEFAULT_ISSUER, DEFAULT_AUDIENCE);
        let verifier =
            TokenVerifier::from_jwks(DEFAULT_ISSUER, DEFAULT_AUDIENCE, &signer.jwks()).unwrap();
        let upstreams = Upstreams {
            auth: ServiceClient::in_process("auth-service", auth.router("auth"), None).into(),
            message: ServiceClient::in_process(
                "message-service",
                Recorder::default().router("message"),
                None,
            )
            .into(),
            matching: ServiceClient::in_process(
                "matching-service",
                Recorder::default().router("matching"),
                None,
            )
            .into(),
            ws: WsUpstream::InProcess(Router::new()),
        };
        let state = AppState::new(upstreams, verifier, limits);
        let app = gateway::app(state.clone());
        Self {
            app,
            state,
            signer,
            auth,
        }
    }

    fn token(&self) -> String {
        self.signer
            .sign(Uuid::new_v4(), Uuid::new_v4(), Duration::from_secs(60))
            .0
    }

    async fn call(&self, request: Request<Body>) -> (StatusCode, HeaderMap, serde_json::Value) {
        let response = self.app.clone().oneshot(request).await.unwrap();
        let status = response.status();
        let headers = response.headers().clone();
        let bytes = axum::body::to_bytes(response.into_body(), 1 << 20)
            .await
            .unwrap();
        let json = serde_json::from_slice(&bytes).unwrap_or(serde_json::Value::Null);
        (status, headers, json)
    }

    async fn get(
        &self,
        path: &str,
        token: Option<&str>,
    ) -> (StatusCode, HeaderMap, serde_json::Value) {
        let mut builder = Request::get(path);
        if let Some(token) = token {
            builder = builder.header(header::AUTHORIZATION, format!("Bearer {token}"));
        }
        self.call(builder.body(Body::empty()).unwrap()).await
    }
}

fn error_code(json: &serde_json::Value) -> String {
    serde_json::from_value::<ErrorBody>(json.clone())
        .expect("uniform error body")
        .error
        .code
        .as_str()
        .to_owned()
}

#[tokio::test]
async fn internal_paths_are_not_reachable_through_the_gateway() {
    let gw = TestGateway::new(Limits::default());
    let token = gw.token();
    let (status, _, json) = gw.get("/internal/users/x/profile", Some(&token)).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(error_code(&json), "not_found");
}

#[tokio::test]
async fn a_request_without_a_token_is_refused_before_the_service() {
    let gw = TestGateway::new(Limits::default());
    let (status, headers, json) = gw.get("/v1/me", None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert!(headers.contains_key(header::WWW_AUTHENTICATE));
    assert_eq!(error_code(&json), "missing_token");
    assert!(gw.auth.0.lock().unwrap().is_empty());
}

#[tokio::test]
async fn a_token_signed_by_another_key_is_refused() {
    let gw = TestGateway::new(Limits::default());
    let other = TokenSigner::generate(DEFAULT_ISSUER, DEFAULT_AUDIENCE);
    let (token, _) = other.sign(Uuid::new_v4(), Uuid::new_v4(), Duration::from_secs(60));
    let (status, _, json) = gw.get("/v1/me", Some(&token)).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(error_code(&json), "invalid_token");
}

#[tokio::test]
async fn a_valid_token_reaches_the_owning_service_with_a_request_id() {
    let gw = TestGateway::new(Limits::default());
    let token = gw.token();
    let (status, headers, json) = gw.get("/v1/me", Some(&token)).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(json["service"], "auth");
    assert!(headers.contains_key("x-request-id"));
    assert!(gw.auth.last().contains_key("x-request-id"));
}

#[tokio::test]
async fn dot_segments_and_encoded_separators_never_reach_a_service() {
    let gw = TestGateway::new(Limits::default());
    let token = gw.token();
    // `http::Uri` keeps the path as written (a client library would normalise it).
    for path in [
        "/v1/me/../../internal/users/0190b3c2-0000-7000-8000-000000000000",
        "/v1/me/%2e%2e/%2e%2e/internal/users/0190b3c2-0000-7000-8000-000000000000",
        "/v1/me/../../metrics",
        "/v1/me/%2E%2E/%2E%2E/readyz",
        "/v1/me/..%2f..%2fopenapi.json",
        "/v1//me",
    ] {
        let calls_before = gw.auth.0.lock().unwrap().len();
        let (status, _, json) = gw.get(path, Some(&token)).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{path}");
        assert_eq!(error_code(&json), "bad_request", "{path}");
        assert_eq!(
            gw.auth.0.lock().unwrap().len(),
            calls_before,
            "{path} reached auth-service"
        );
    }
}

#[tokio::test]
async fn metrics_are_not_served_on_the_public_listener() {
    let gw = TestGateway::new(Limits::default());
    let (status, _, _) = gw.get("/metrics", None).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, _, _) = gw.get("/healthz", None).await;
    assert_eq!(status, StatusCode::OK);

    let operators = gateway::operator_app(gw.state.clone())
        .oneshot(Request::get("/metrics").body(Body::empty()).unwrap())
        .await
        .unwrap();
    assert_eq!(operators.status(), StatusCode::OK);
}

#[tokio::test]
async fn forged_forwarded_for_entries_do_not_escape_the_limit() {
    let gw = TestGateway::new(Limits {
        rate_per_second: 1,
        rate_burst: 3,
        trusted_proxies: 1,
        ..Limits::default()
    });
    let mut limited = 0;
    for i in 0..20 {
        let request = Request::get("/.well-known/jwks.json")
            .header("x-forwarded-for", format!("198.51.100.{i}, 203.0.113.9"))
            .body(Body::empty())
            .unwrap();
        let (status, _, _) = gw.call(request).await;
        if status == StatusCode::TOO_MANY_REQUESTS {
            limited += 1;
        }
    }
    assert!(limited >= 16, "only {limited} of 20 were limited");
    assert_eq!(gw.auth.last()["x-rc-client-ip"], "203.0.113.9");
}

#[tokio::test]
async fn log_in_needs_no_token() {
    let gw = TestGateway::new(Limits::default());
    let request = Request::post("/v1/auth/login")
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from(r#"{"username":"a","password":"b"}"#))
        .unwrap();
    let (status, _, json) = gw.call(request).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(json["path"], "/v1/auth/login");
}

#[tokio::test]
async fn a_forged_service_credential_and_client_ip_are_not_passed_on() {
    let gw = TestGateway::new(Limits::default());
    let request = Request::post("/v1/auth/login")
        .header("x-rc-service-token", "forged-forged-forged")
        .header("x-rc-client-ip", "203.0.113.7")
        .body(Body::from("{}"))
        .unwrap();
    gw.call(request).await;
    let seen = gw.auth.last();
    assert!(!seen.contains_key("x-rc-service-token"));
    assert_ne!(seen["x-rc-client-ip"], "203.0.113.7");
}

#[tokio::test]
async fn a_body_over_the_limit_is_413() {
    let gw = TestGateway::new(Limits {
        max_body_bytes: 1024,
        ..Limits::default()
    });
    let request = Request::post("/v1/auth/signup")
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from(vec![b'x'; 4096]))
        .unwrap();
    let (status, _, json) = gw.call(request).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(error_code(&json), "body_too_large");
}

#[tokio::test]
async fn a_client_over_the_rate_limit_gets_429_with_retry_after() {
    let gw = TestGateway::new(Limits {
        rate_per_second: 1,
        rate_burst: 3,
        ..Limits::default()
    });
    let mut statuses = Vec::new();
    for _ in 0..5 {
        let (status, headers, _) = gw.get("/.well-known/jwks.json", None).await;
        if status == StatusCode::TOO_MANY_REQUESTS {
            assert!(headers.contains_key(header::RETRY_AFTER));
        }
        statuses.push(status);
    }
    assert_eq!(statuses.iter().filter(|s| **s == StatusCode::OK).count(), 3);
    assert_eq!(
        statuses
            .iter()
            .filter(|s| **s == StatusCode::TOO_MANY_REQUESTS)
            .count(),
        2
    );
}

#[tokio::test]
async fn an_unreachable_service_is_503() {
    let signer = TokenSigner::generate(DEFAULT_ISSUER, DEFAULT_AUDIENCE);
    let verifier =
        TokenVerifier::from_jwks(DEFAULT_ISSUER, DEFAULT_AUDIENCE, &signer.jwks()).unwrap();
    // Nothing listens on port 9 of loopback (discard), so connecting fails at once.
    let dead =
        |name| ServiceClient::http(name, default_http_client(), "http://127.0.0.1:9", None).into();
    let upstreams = Upstreams {
        auth: dead("auth-service"),
        message: dead("message-service"),
        matching: dead("matching-service"),
        ws: WsUpstream::InProcess(Router::new()),
    };
    let app = gateway::app(AppState::new(upstreams, verifier, Limits::default()));
    let (token, _) = signer.sign(Uuid::new_v4(), Uuid::new_v4(), Duration::from_secs(60));
    let response = app
        .oneshot(
            Request::get("/v1/chats")
                .header(header::AUTHORIZATION, format!("Bearer {token}"))
                .body(Body::empty())
                .unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
}

/// A WebSocket echo server standing in for a ws-handler, on a real socket.
async fn spawn_echo_handler() -> String {
    let app = Router::new().route(
        "/v1/ws",
        get(|ws: WebSocketUpgrade| async move {
            ws.on_upgrade(|mut socket| async move {
                while let Some(Ok(msg)) = socket.recv().await {
                    if let WsMessage::Text(text) = msg
                        && socket
                            .send(WsMessage::Text(format!("echo:{text}").into()))
                            .await
                            .is_err()
                    {
                        break;
                    }
                }
            })
            .into_response()
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    format!("http://{addr}")
}

#[tokio::test]
async fn a_websocket_is_proxied_to_a_live_handler_skipping_dead_and_silent_ones() {
    let live_url = spawn_echo_handler().await;
    // A handler that accepts connections and never answers them.
    let silent = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let silent_url = format!("http://{}", silent.local_addr().unwrap());
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((stream, _)) = silent.accept().await {
            held.push(stream);
        }
    });
    let handlers = vec![
        // The least-loaded handler never answers: the gateway gives up on it after the
        // handshake timeout.
        HandlerInfo {
            handler_id: Uuid::new_v4(),
            url: silent_url,
            connections: 0,
            last_seen: time::OffsetDateTime::now_utc(),
        },
        // The next is dead: the gateway must move on again.
        HandlerInfo {
            handler_id: Uuid::new_v4(),
            url: "http://127.0.0.1:9".to_owned(),
            connections: 0,
            last_seen: time::OffsetDateTime::now_utc(),
        },
        HandlerInfo {
            handler_id: Uuid::new_v4(),
            url: live_url,
            connections: 5,
            last_seen: time::OffsetDateTime::now_utc(),
        },
    ];
    let ws_manager = Router::new().route(
        "/internal/handlers",
        get(move || {
            let handlers = handlers.clone();
            async move { axum::Json(handlers) }
        }),
    );
    let signer = TokenSigner::generate(DEFAULT_ISSUER, DEFAULT_AUDIENCE);
    let verifier =
        TokenVerifier::from_jwks(DEFAULT_ISSUER, DEFAULT_AUDIENCE, &signer.jwks()).unwrap();
    let unused = || ServiceClient::in_process("unused", Router::new(), None).into();
    let upstreams = Upstreams {
        auth: unused(),
        message: unused(),
        matching: unused(),
        ws: WsUpstream::Discover(ServiceClient::in_process("ws-manager", ws_manager, None).into()),
    };
    let limits = Limits {
        ws_handshake_timeout_ms: 300,
        ..Limits::default()
    };
    let app = gateway::app(AppState::new(upstreams, verifier, limits));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });

    use tokio_tungstenite::tungstenite::client::IntoClientRequest;
    let mut request = format!("ws://{addr}/v1/ws").into_client_request().unwrap();
    let unauthenticated = tokio_tungstenite::connect_async(request.clone()).await;
    match unauthenticated {
        Err(tokio_tungstenite::tungstenite::Error::Http(response)) => {
            assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
        }
        other => panic!("expected 401 before the upgrade, got {other:?}"),
    }

    let (token, _) = signer.sign(Uuid::new_v4(), Uuid::new_v4(), Duration::from_secs(60));
    request.headers_mut().insert(
        header::AUTHORIZATION,
        format!("Bearer {token}").parse().unwrap(),
    );
    // The test's own bound turns a hang into a failure.
    let (mut socket, _) = tokio::time::timeout(
        Duration::from_secs(20),
        tokio_tungstenite::connect_async(request),
    )
    .await
    .expect("the gateway waited on the silent handler")
    .unwrap();
    socket
        .send(tokio_tungstenite::tungstenite::Message::Text("hi".into()))
        .await
        .unwrap();
    let reply = socket.next().await.unwrap().unwrap();
    assert_eq!(reply.into_text().unwrap().as_str(), "echo:hi");
}

#[tokio::test]
async fn moderation_is_only_on_the_operator_listener_and_only_for_admins() {
    let gw = TestGateway::new(Limits::default());
    let user = gw.token();
    // Never on the public listener, whoever asks.
    let (status, _, _) = gw.get("/v1/admin/audit", Some(&user)).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(gw.auth.count(), 0, "nothing reached auth-service");

    let operators = gateway::operator_app(gw.state.clone());
    let call = |token: String, path: &str| {
        let request = Request::get(path)
            .header("authorization", format!("Bearer {token}"))
            .body(Body::empty())
            .unwrap();
        operators.clone().oneshot(request)
    };
    // On the operator listener, a plain user's token is refused before forwarding...
    let refused = call(user, "/v1/admin/audit").await.unwrap();
    assert_eq!(refused.status(), StatusCode::FORBIDDEN);
    assert_eq!(gw.auth.count(), 0, "nothing reached auth-service");
    // ...an operator's is forwarded, and only moderation paths are.
    let grant = service_kit::token::Grant {
        role: wire::api::auth::Role::Admin,
        ..service_kit::token::Grant::user(Uuid::new_v4(), Uuid::new_v4())
    };
    let admin = gw.signer.sign_grant(&grant, Duration::from_secs(60)).0;
    let forwarded = call(admin.clone(), "/v1/admin/audit").await.unwrap();
    assert_eq!(forwarded.status(), StatusCode::OK);
    let body = axum::body::to_bytes(forwarded.into_body(), 1 << 20)
        .await
        .unwrap();
    let echoed: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(echoed["path"], "/v1/admin/audit");
    assert_eq!(gw.auth.count(), 1);
    let other = call(admin, "/v1/me").await.unwrap();
    assert_eq!(other.status(), StatusCode::NOT_FOUND);
}
