//! A TCP proxy that can be frozen: it forwards bytes both ways until [`Freezer::freeze`],
//! then keeps every connection open but forwards nothing, as a backend that accepted a
//! connection and stopped answering would.

use std::net::SocketAddr;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

/// Freezes the proxy it came from.
#[derive(Debug, Clone)]
pub struct Freezer(watch::Sender<bool>);

impl Freezer {
    /// From now on, no byte goes through in either direction.
    pub fn freeze(&self) {
        self.0.send_replace(true);
    }
}

/// Starts a proxy on `127.0.0.1` in front of `upstream`; its address and its freezer.
pub async fn freezable_proxy(upstream: SocketAddr) -> (SocketAddr, Freezer) {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind proxy");
    let address = listener.local_addr().expect("proxy address");
    let (frozen, watch) = watch::channel(false);
    tokio::spawn(async move {
        while let Ok((client, _)) = listener.accept().await {
            let Ok(server) = TcpStream::connect(upstream).await else {
                continue;
            };
            let (client_read, client_write) = client.into_split();
            let (server_read, server_write) = server.into_split();
            tokio::spawn(pump(client_read, server_write, watch.clone()));
            tokio::spawn(pump(server_read, client_write, watch.clone()));
        }
    });
    (address, Freezer(frozen))
}

/// Copies `from` to `to` while not frozen; once frozen, holds both open and idle.
async fn pump(
    mut from: tokio::net::tcp::OwnedReadHalf,
    mut to: tokio::net::tcp::OwnedWriteHalf,
    mut frozen: watch::Receiver<bool>,
) {
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        let n = tokio::select! {
            read = from.read(&mut buf) => match read {
                Ok(0) | Err(_) => return,
                Ok(n) => n,
            },
            _ = frozen.wait_for(|f| *f) => break,
        };
        if *frozen.borrow() {
            break;
        }
        if to.write_all(&buf[..n]).await.is_err() {
            return;
        }
    }
    // Frozen: keep the connection, answer nothing, until the other side gives up.
    while from.read(&mut buf).await.is_ok_and(|n| n > 0) {}
    drop(to);
}
