//! Serving a router on a listener with every wait on a client bounded: a client must send
//! its request head within the header-read timeout, and after shutdown begins the
//! connections still open get a deadline, then are dropped. The connections are plain TCP,
//! or whatever a [`Handshake`] makes of them (TLS).

use std::future::Future;
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::ConnectInfo;
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::JoinSet;
use tower::ServiceExt;

/// The client-facing bounds of a server.
#[derive(Debug, Clone, Copy)]
pub struct ServeOptions {
    /// How long a client may take to send a whole request head (line and headers), on a
    /// new connection and between requests on a kept-alive one.
    pub header_read_timeout: Duration,
    /// How long, after shutdown begins, the connections still open may take to finish
    /// their requests before they are dropped.
    pub shutdown_deadline: Duration,
}

impl Default for ServeOptions {
    fn default() -> Self {
        Self {
            header_read_timeout: Duration::from_secs(10),
            shutdown_deadline: Duration::from_secs(15),
        }
    }
}

/// What an accepted TCP connection becomes before HTTP is spoken on it: the connection
/// itself ([`PlainTcp`]) or, for instance, a TLS session over it.
pub trait Handshake: Clone + Send + Sync + 'static {
    /// The stream HTTP is spoken on.
    type Stream: AsyncRead + AsyncWrite + Unpin + Send + 'static;

    /// Turns an accepted connection into the stream HTTP is spoken on. It runs within
    /// the header-read timeout of the connection.
    fn handshake(
        &self,
        tcp: TcpStream,
    ) -> impl Future<Output = std::io::Result<Self::Stream>> + Send;
}

/// No handshake: HTTP straight on the TCP connection.
#[derive(Debug, Clone, Copy, Default)]
pub struct PlainTcp;

impl Handshake for PlainTcp {
    type Stream = TcpStream;

    async fn handshake(&self, tcp: TcpStream) -> std::io::Result<TcpStream> {
        Ok(tcp)
    }
}

/// Serves `app` on `listener` (HTTP/1.1 with upgrades, the peer address as
/// [`ConnectInfo<SocketAddr>`]) until `shutdown` completes; then stops accepting, lets
/// open requests finish within [`ServeOptions::shutdown_deadline`] and returns.
/// Upgraded connections (WebSockets) belong to their handlers from the upgrade on, which
/// close them on shutdown themselves.
pub async fn serve(
    listener: TcpListener,
    app: Router,
    shutdown: impl Future<Output = ()>,
    options: ServeOptions,
) {
    serve_with(listener, app, shutdown, options, PlainTcp).await;
}

/// As [`serve`], with each accepted connection first put through `handshake` (bounded by
/// the header-read timeout; a connection whose handshake fails or times out is closed).
pub async fn serve_with<H: Handshake>(
    listener: TcpListener,
    app: Router,
    shutdown: impl Future<Output = ()>,
    options: ServeOptions,
    handshake: H,
) {
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(options.header_read_timeout);
    // Connection tasks; `stopping` asks each to finish its request and close.
    let mut connections = JoinSet::new();
    let (stopping, stop_seen) = watch::channel(false);
    tokio::pin!(shutdown);
    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(err) => {
                    // Out of file descriptors and the like: the listener is fine, so
                    // keep going after a pause instead of spinning.
                    tracing::warn!(error = %err, "cannot accept a connection");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            // Reap finished connections as they end.
            Some(_) = connections.join_next() => continue,
            () = &mut shutdown => break,
        };
        // Frames go out as they are written: with Nagle's algorithm a small WebSocket frame
        // would wait for the acknowledgement of the one before (tens of milliseconds).
        if let Err(err) = stream.set_nodelay(true) {
            tracing::debug!(error = %err, %peer, "cannot set TCP_NODELAY");
        }
        let service = app
            .clone()
            .map_request(move |request: hyper::Request<Incoming>| {
                let mut request = request.map(Body::new);
                request.extensions_mut().insert(ConnectInfo(peer));
                request
            });
        let builder = builder.clone();
        let handshake = handshake.clone();
        let mut stop_seen = stop_seen.clone();
        connections.spawn(async move {
            let stream = tokio::select! {
                done = tokio::time::timeout(options.header_read_timeout, handshake.handshake(stream)) => match done {
                    Ok(Ok(stream)) => stream,
                    Ok(Err(err)) => {
                        tracing::debug!(error = %err, %peer, "handshake failed");
                        return;
                    }
                    Err(_) => {
                        tracing::debug!(%peer, "handshake timed out");
                        return;
                    }
                },
                _ = stop_seen.wait_for(|stop| *stop) => return,
            };
            let connection = builder
                .serve_connection(TokioIo::new(stream), TowerToHyperService::new(service))
                .with_upgrades();
            tokio::pin!(connection);
            let stop = async move {
                // The guard `wait_for` returns is dropped here, not held across awaits.
                let _ = stop_seen.wait_for(|stop| *stop).await;
            };
            let ended = tokio::select! {
                ended = connection.as_mut() => ended,
                () = stop => {
                    connection.as_mut().graceful_shutdown();
                    connection.await
                }
            };
            if let Err(err) = ended {
                tracing::debug!(error = %err, %peer, "connection ended with an error");
            }
        });
    }
    drop(listener);
    let _ = stopping.send(true);
    let drained = tokio::time::timeout(options.shutdown_deadline, async {
        while connections.join_next().await.is_some() {}
    })
    .await;
    match drained {
        Ok(()) => tracing::info!("every connection finished"),
        Err(_) => {
            tracing::warn!(
                open = connections.len(),
                deadline_secs = options.shutdown_deadline.as_secs(),
                "shutdown deadline passed; dropping the connections still open"
            );
            connections.shutdown().await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::routing::get;
    use std::net::SocketAddr;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::sync::oneshot;

    async fn start(app: Router, options: ServeOptions) -> (SocketAddr, oneshot::Sender<()>) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (stop, stopped) = oneshot::channel::<()>();
        tokio::spawn(serve(
            listener,
            app,
            async move {
                let _ = stopped.await;
            },
            options,
        ));
        (addr, stop)
    }

    /// Reads until the peer closes; what it sent.
    async fn read_to_close(stream: &mut tokio::net::TcpStream) -> Vec<u8> {
        let mut all = Vec::new();
        let _ = stream.read_to_end(&mut all).await;
        all
    }

    #[tokio::test]
    async fn a_client_that_sends_half_a_request_line_is_disconnected() {
        let options = ServeOptions {
            header_read_timeout: Duration::from_millis(300),
            ..ServeOptions::default()
        };
        let (addr, _stop) = start(Router::new().route("/", get(|| async { "hi" })), options).await;
        let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
        stream.write_all(b"GET / HT").await.unwrap();
        // The server closes it (no answer to a request it never got); the test's own
        // bound only turns a hang into a failure.
        let read = tokio::time::timeout(Duration::from_secs(20), read_to_close(&mut stream))
            .await
            .expect("the server kept a connection with half a request line open");
        assert!(
            !String::from_utf8_lossy(&read).contains("200 OK"),
            "no request was made"
        );
    }

    #[tokio::test]
    async fn a_client_that_sends_nothing_is_disconnected() {
        let options = ServeOptions {
            header_read_timeout: Duration::from_millis(300),
            ..ServeOptions::default()
        };
        let (addr, _stop) = start(Router::new().route("/", get(|| async { "hi" })), options).await;
        let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
        tokio::time::timeout(Duration::from_secs(20), read_to_close(&mut stream))
            .await
            .expect("the server kept a silent connection open");
    }

    /// A handshake that never finishes, as a client that opens a TLS connection and
    /// sends no hello would cause.
    #[derive(Clone)]
    struct NeverDone;

    impl Handshake for NeverDone {
        type Stream = TcpStream;

        async fn handshake(&self, _tcp: TcpStream) -> std::io::Result<TcpStream> {
            std::future::pending().await
        }
    }

    #[tokio::test]
    async fn a_handshake_that_does_not_finish_is_dropped_at_the_header_read_timeout() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let options = ServeOptions {
            header_read_timeout: Duration::from_millis(300),
            ..ServeOptions::default()
        };
        tokio::spawn(serve_with(
            listener,
            Router::new().route("/", get(|| async { "hi" })),
            std::future::pending::<()>(),
            options,
            NeverDone,
        ));
        let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
        tokio::time::timeout(Duration::from_secs(20), read_to_close(&mut stream))
            .await
            .expect("the server kept a connection whose handshake never finished");
    }

    #[tokio::test]
    async fn a_whole_request_is_served_with_the_peer_address() {
        let app = Router::new().route(
            "/",
            get(|ConnectInfo(peer): ConnectInfo<SocketAddr>| async move { peer.ip().to_string() }),
        );
        let (addr, _stop) = start(app, ServeOptions::default()).await;
        let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
        stream
            .write_all(b"GET / HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n")
            .await
            .unwrap();
        let answer = String::from_utf8(read_to_close(&mut stream).await).unwrap();
        assert!(answer.starts_with("HTTP/1.1 200 OK"), "{answer}");
        assert!(answer.ends_with("127.0.0.1"), "{answer}");
    }

    #[tokio::test]
    async fn shutdown_waits_for_open_requests_only_until_the_deadline() {
        let (started, started_rx) = oneshot::channel::<()>();
        let started = std::sync::Arc::new(std::sync::Mutex::new(Some(started)));
        let app = Router::new().route(
            "/forever",
            get(move || {
                if let Some(started) = started.lock().unwrap().take() {
                    let _ = started.send(());
                }
                std::future::pending::<&'static str>()
            }),
        );
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (stop, stopped) = oneshot::channel::<()>();
        let server = tokio::spawn(serve(
            listener,
            app,
            async move {
                let _ = stopped.await;
            },
            ServeOptions {
                shutdown_deadline: Duration::from_millis(300),
                ..ServeOptions::default()
            },
        ));
        let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
        stream
            .write_all(b"GET /forever HTTP/1.1\r\nhost: x\r\n\r\n")
            .await
            .unwrap();
        started_rx.await.unwrap();
        stop.send(()).unwrap();
        tokio::time::timeout(Duration::from_secs(20), server)
            .await
            .expect("serve never returned: the shutdown deadline did not bite")
            .unwrap();
        // No new connection is accepted.
        assert!(tokio::net::TcpStream::connect(addr).await.is_err());
    }
}
