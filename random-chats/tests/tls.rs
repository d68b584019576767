//! The one-process platform on HTTPS: given a certificate, its gateway speaks TLS and
//! answers through it.

use std::sync::Arc;

use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use hyper_util::rt::TokioIo;
use random_chats::{Platform, PlatformConfig};
use rustls::pki_types::ServerName;

#[tokio::test]
async fn the_platform_serves_https_when_given_a_certificate() {
    let generated = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).unwrap();
    let dir = std::env::temp_dir().join(format!("rc-platform-tls-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&dir).unwrap();
    let files = gateway::tls::TlsFiles {
        cert: dir.join("cert.pem"),
        key: dir.join("key.pem"),
    };
    std::fs::write(&files.cert, generated.cert.pem()).unwrap();
    std::fs::write(&files.key, generated.signing_key.serialize_pem()).unwrap();
    let mut config = PlatformConfig::in_memory();
    config.tls = Some(files);
    let platform = Platform::start(config).await.unwrap();
    assert!(
        platform.gateway_url().starts_with("https://"),
        "{}",
        platform.gateway_url()
    );

    let mut roots = rustls::RootCertStore::empty();
    roots.add(generated.cert.der().clone()).unwrap();
    let client = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::aws_lc_rs::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates(roots)
    .with_no_client_auth();
    let tcp = tokio::net::TcpStream::connect(platform.addr())
        .await
        .unwrap();
    let stream = tokio_rustls::TlsConnector::from(Arc::new(client))
        .connect(ServerName::try_from("localhost").unwrap(), tcp)
        .await
        .unwrap();
    let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .unwrap();
    tokio::spawn(connection);
    let response = sender
        .send_request(
            Request::get("/.well-known/jwks.json")
                .header(header::HOST, "localhost")
                .body(Body::empty())
                .unwrap(),
        )
        .await
        .unwrap();
    let status = response.status();

    platform.shutdown().await;
    let _ = std::fs::remove_dir_all(&dir);
    assert_eq!(status, StatusCode::OK);
}
