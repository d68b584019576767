//! The gateway's public listener over TLS, with self-signed certificates made in the test:
//! an HTTPS request reaches its service, a WSS connection upgrades through to a ws-handler,
//! and a certificate replaced on disk is served to new connections.

use std::future::Future;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::ws::{Message as WsMessage, WebSocketUpgrade};
use axum::http::{Request, StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::{any, get};
use futures::{SinkExt, StreamExt};
use gateway::tls::{Tls, TlsError, TlsFiles};
use gateway::{AppState, Limits, Upstreams, WsUpstream};
use hyper_util::rt::TokioIo;
use rustls::pki_types::{CertificateDer, ServerName};
use service_kit::client::ServiceClient;
use service_kit::serve::ServeOptions;
use service_kit::token::{DEFAULT_AUDIENCE, DEFAULT_ISSUER, TokenSigner, TokenVerifier};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use uuid::Uuid;
use wire::api::wsmanager::HandlerInfo;

/// A self-signed certificate for `localhost`.
struct Pair {
    cert_pem: String,
    key_pem: String,
    der: CertificateDer<'static>,
}

fn self_signed() -> Pair {
    let generated = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).unwrap();
    Pair {
        cert_pem: generated.cert.pem(),
        key_pem: generated.signing_key.serialize_pem(),
        der: generated.cert.der().clone(),
    }
}

/// A directory of its own for one test's files, removed when dropped.
struct TempDir(PathBuf);

impl TempDir {
    fn new() -> Self {
        let dir = std::env::temp_dir().join(format!("rc-gateway-tls-{}", Uuid::new_v4()));
        std::fs::create_dir_all(&dir).unwrap();
        Self(dir)
    }

    fn files(&self) -> TlsFiles {
        TlsFiles {
            cert: self.0.join("cert.pem"),
            key: self.0.join("key.pem"),
        }
    }

    fn write(&self, pair: &Pair) {
        let files = self.files();
        std::fs::write(files.key, &pair.key_pem).unwrap();
        std::fs::write(files.cert, &pair.cert_pem).unwrap();
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
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

struct TlsGateway {
    addr: SocketAddr,
    tls: Tls,
    signer: TokenSigner,
}

impl TlsGateway {
    /// The gateway on HTTPS with `files`: auth-service echoes the path it was asked, and
    /// the WebSocket goes to an echo handler found through a stand-in ws-manager.
    async fn start(files: TlsFiles) -> Self {
        let handler_url = spawn_echo_handler().await;
        let handlers = vec![HandlerInfo {
            handler_id: Uuid::new_v4(),
            url: handler_url,
            connections: 0,
            last_seen: time::OffsetDateTime::now_utc(),
        }];
        let ws_manager = Router::new().route(
            "/internal/handlers",
            get(move || {
                let handlers = handlers.clone();
                async move { axum::Json(handlers) }
            }),
        );
        let auth = Router::new().fallback(any(|req: Request<Body>| async move {
            axum::Json(serde_json::json!({"service": "auth", "path": req.uri().path()}))
        }));
        let signer = TokenSigner::generate(DEFAULT_ISSUER, DEFAULT_AUDIENCE);
        let verifier =
            TokenVerifier::from_jwks(DEFAULT_ISSUER, DEFAULT_AUDIENCE, &signer.jwks()).unwrap();
        let unused = || ServiceClient::in_process("unused", Router::new(), None).into();
        let upstreams = Upstreams {
            auth: ServiceClient::in_process("auth-service", auth, None).into(),
            message: unused(),
            matching: unused(),
            ws: WsUpstream::Discover(
                ServiceClient::in_process("ws-manager", ws_manager, None).into(),
            ),
        };
        let app = gateway::app(AppState::new(upstreams, verifier, Limits::default()));
        let tls = Tls::load(files).unwrap();
        tls.spawn_reload(Duration::from_millis(50));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(service_kit::serve::serve_with(
            listener,
            app,
            std::future::pending::<()>(),
            ServeOptions::default(),
            tls.clone(),
        ));
        Self { addr, tls, signer }
    }

    fn token(&self) -> String {
        self.signer
            .sign(Uuid::new_v4(), Uuid::new_v4(), Duration::from_secs(60))
            .0
    }

    /// A TLS connection to the gateway as `localhost`, trusting only `roots`.
    fn connect(
        &self,
        roots: &[&CertificateDer<'static>],
    ) -> impl Future<Output = std::io::Result<TlsStream<TcpStream>>> + use<> {
        let mut store = rustls::RootCertStore::empty();
        for root in roots {
            store.add((*root).clone()).unwrap();
        }
        let config = rustls::ClientConfig::builder_with_provider(Arc::new(
            rustls::crypto::aws_lc_rs::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(store)
        .with_no_client_auth();
        let connector = TlsConnector::from(Arc::new(config));
        let addr = self.addr;
        async move {
            let tcp = TcpStream::connect(addr).await?;
            connector
                .connect(ServerName::try_from("localhost").unwrap(), tcp)
                .await
        }
    }
}

/// The certificate the server presented on `stream`.
fn served_cert(stream: &TlsStream<TcpStream>) -> CertificateDer<'static> {
    stream.get_ref().1.peer_certificates().unwrap()[0].clone()
}

#[tokio::test]
async fn an_https_request_reaches_its_service_through_the_gateway() {
    let dir = TempDir::new();
    let pair = self_signed();
    dir.write(&pair);
    let gw = TlsGateway::start(dir.files()).await;

    let stream = gw.connect(&[&pair.der]).await.unwrap();
    let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .unwrap();
    tokio::spawn(connection);
    let response = sender
        .send_request(
            Request::get("/v1/me")
                .header(header::HOST, "localhost")
                .header(header::AUTHORIZATION, format!("Bearer {}", gw.token()))
                .body(Body::empty())
                .unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let body = axum::body::to_bytes(Body::new(response.into_body()), 1 << 20)
        .await
        .unwrap();
    let json: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(json["service"], "auth");
    assert_eq!(json["path"], "/v1/me");
}

#[tokio::test]
async fn a_client_that_does_not_trust_the_certificate_is_refused() {
    let dir = TempDir::new();
    dir.write(&self_signed());
    let gw = TlsGateway::start(dir.files()).await;
    let stranger = self_signed();
    assert!(gw.connect(&[&stranger.der]).await.is_err());
}

#[tokio::test]
async fn a_wss_connection_upgrades_through_the_gateway() {
    let dir = TempDir::new();
    let pair = self_signed();
    dir.write(&pair);
    let gw = TlsGateway::start(dir.files()).await;

    let stream = gw.connect(&[&pair.der]).await.unwrap();
    let mut request = format!("wss://localhost:{}/v1/ws", gw.addr.port())
        .into_client_request()
        .unwrap();
    request.headers_mut().insert(
        header::AUTHORIZATION,
        format!("Bearer {}", gw.token()).parse().unwrap(),
    );
    let (mut socket, response) = tokio::time::timeout(
        Duration::from_secs(20),
        tokio_tungstenite::client_async(request, stream),
    )
    .await
    .expect("the upgrade finished")
    .unwrap();
    assert_eq!(response.status(), StatusCode::SWITCHING_PROTOCOLS);
    socket
        .send(tokio_tungstenite::tungstenite::Message::Text("hi".into()))
        .await
        .unwrap();
    let reply = socket.next().await.unwrap().unwrap();
    assert_eq!(reply.into_text().unwrap().as_str(), "echo:hi");
}

#[tokio::test]
async fn a_certificate_replaced_on_disk_is_served_to_new_connections() {
    let dir = TempDir::new();
    let (old, new) = (self_signed(), self_signed());
    dir.write(&old);
    let gw = TlsGateway::start(dir.files()).await;
    let first = gw.connect(&[&old.der, &new.der]).await.unwrap();
    assert_eq!(served_cert(&first), old.der);

    dir.write(&new);
    // The reload task notices the change on one of its next checks: connect again until
    // the new certificate is served.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        let stream = gw.connect(&[&old.der, &new.der]).await.unwrap();
        if served_cert(&stream) == new.der {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the new certificate was never served"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // Only the new one is needed from now on.
    let stream = gw.connect(&[&new.der]).await.unwrap();
    assert_eq!(served_cert(&stream), new.der);
}

#[tokio::test]
async fn a_bad_new_pair_is_refused_and_the_served_certificate_stays() {
    let dir = TempDir::new();
    let (good, other) = (self_signed(), self_signed());
    dir.write(&good);
    let gw = TlsGateway::start(dir.files()).await;

    // A key that does not belong to the certificate.
    std::fs::write(dir.files().key, &other.key_pem).unwrap();
    let err = gw.tls.reload().unwrap_err();
    assert!(matches!(err, TlsError::Rustls(_)), "{err}");
    // Not PEM at all.
    std::fs::write(dir.files().cert, "not a certificate").unwrap();
    let err = gw.tls.reload().unwrap_err();
    assert!(matches!(err, TlsError::Pem { .. }), "{err}");
    assert!(
        !err.to_string().contains("PRIVATE KEY"),
        "no key material in errors: {err}"
    );

    let stream = gw.connect(&[&good.der]).await.unwrap();
    assert_eq!(served_cert(&stream), good.der);
}
