//! Backend outages: requests fail fast with 503 `backend_unavailable`, and the service
//! recovers by itself when the backend returns. The outage is made by a TCP proxy in
//! front of the real server that drops every connection and refuses new ones, so the
//! shared servers themselves are never stopped.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::http::StatusCode;
use test_support::backend_url;
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

use crate::helpers::{PASSWORD, TestApp, TestResponse, username};

/// A TCP proxy that can be cut and restored.
struct Proxy {
    addr: SocketAddr,
    up: Arc<AtomicBool>,
    connections: Arc<Mutex<Vec<JoinHandle<()>>>>,
    accept: JoinHandle<()>,
}

impl Proxy {
    async fn start(upstream: SocketAddr) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let up = Arc::new(AtomicBool::new(true));
        let connections: Arc<Mutex<Vec<JoinHandle<()>>>> = Arc::default();
        let accept = tokio::spawn({
            let up = up.clone();
            let connections = connections.clone();
            async move {
                while let Ok((mut client, _)) = listener.accept().await {
                    if !up.load(Ordering::SeqCst) {
                        drop(client);
                        continue;
                    }
                    let task = tokio::spawn(async move {
                        if let Ok(mut server) = TcpStream::connect(upstream).await {
                            let _ = tokio::io::copy_bidirectional(&mut client, &mut server).await;
                        }
                    });
                    connections.lock().unwrap().push(task);
                }
            }
        });
        Self {
            addr,
            up,
            connections,
            accept,
        }
    }

    /// Drops every open connection and refuses new ones.
    fn cut(&self) {
        self.up.store(false, Ordering::SeqCst);
        for task in self.connections.lock().unwrap().drain(..) {
            task.abort();
        }
    }

    fn restore(&self) {
        self.up.store(true, Ordering::SeqCst);
    }

    /// `url` with its host and port replaced by the proxy's.
    fn url_for(&self, url: &str) -> String {
        let mut url = url::Url::parse(url).unwrap();
        url.set_host(Some("127.0.0.1")).unwrap();
        url.set_port(Some(self.addr.port())).unwrap();
        url.to_string().trim_end_matches('/').to_owned()
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.accept.abort();
        self.cut();
    }
}

fn upstream_of(url: &str) -> SocketAddr {
    let url = url::Url::parse(url).unwrap();
    let host = url.host_str().unwrap();
    let host = if host == "localhost" {
        "127.0.0.1"
    } else {
        host
    };
    format!("{host}:{}", url.port_or_known_default().unwrap())
        .parse()
        .unwrap()
}

/// Repeats `request` until it answers `expected` (the backend came back), failing after
/// `deadline`.
async fn eventually<F, Fut>(
    expected: StatusCode,
    deadline: Duration,
    mut request: F,
) -> TestResponse
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = TestResponse>,
{
    let until = tokio::time::Instant::now() + deadline;
    loop {
        let response = request().await;
        if response.status == expected || tokio::time::Instant::now() >= until {
            return response;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn a_postgres_outage_is_503_and_the_service_recovers() {
    let (Some(pg), Some(dynamo)) = (backend_url("POSTGRES_URL"), backend_url("DYNAMODB_URL"))
    else {
        return;
    };
    let proxy = Proxy::start(upstream_of(&pg)).await;
    let app = TestApp::on_real_backends(&proxy.url_for(&pg), &dynamo).await;
    let tokens = app.signup_user(&username("outage")).await;

    proxy.cut();
    let during = app.me(&tokens.access).await;
    let ready = app.readyz().await;
    let login = app.login(&username("someone"), PASSWORD).await;

    during.assert_status(StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(during.error_code(), "backend_unavailable");
    assert!(during.headers.contains_key("retry-after"));
    ready.assert_status(StatusCode::SERVICE_UNAVAILABLE);
    login.assert_status(StatusCode::SERVICE_UNAVAILABLE);

    proxy.restore();
    let after = eventually(StatusCode::OK, Duration::from_secs(20), || {
        app.me(&tokens.access)
    })
    .await;
    after.assert_status(StatusCode::OK);
    app.readyz().await.assert_status(StatusCode::OK);
    app.cleanup().await;
}

#[tokio::test]
async fn a_dynamodb_outage_is_503_and_the_service_recovers() {
    let (Some(pg), Some(dynamo)) = (backend_url("POSTGRES_URL"), backend_url("DYNAMODB_URL"))
    else {
        return;
    };
    let proxy = Proxy::start(upstream_of(&dynamo)).await;
    let app = TestApp::on_real_backends(&pg, &proxy.url_for(&dynamo)).await;
    let tokens = app.signup_user(&username("outage")).await;

    proxy.cut();
    let during = app.refresh(&tokens.refresh).await;
    let ready = app.readyz().await;

    during.assert_status(StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(during.error_code(), "backend_unavailable");
    ready.assert_status(StatusCode::SERVICE_UNAVAILABLE);

    proxy.restore();
    let after = eventually(StatusCode::OK, Duration::from_secs(20), || {
        app.refresh(&tokens.refresh)
    })
    .await;
    after.assert_status(StatusCode::OK);
    app.readyz().await.assert_status(StatusCode::OK);
    app.cleanup().await;
}
