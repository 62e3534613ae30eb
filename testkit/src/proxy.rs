//! A TCP proxy that can go half-open: what a browser sees when a NAT entry or a middlebox
//! drops a connection without a word.
//!
//! Every connection to the proxy is copied to `upstream` both ways. [`Proxy::stall`] stops
//! moving bytes in both directions on every connection, open or new, without closing
//! anything; [`Proxy::resume`] lets them flow again. A closed side closes the other. Runs
//! in the test's tokio runtime; dropping the proxy stops it and every connection.

use std::net::SocketAddr;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// A running proxy.
#[derive(Debug)]
pub struct Proxy {
    addr: SocketAddr,
    stalled: watch::Sender<bool>,
    task: JoinHandle<()>,
}

impl Proxy {
    /// Listens on a free port of 127.0.0.1 and forwards to `upstream`.
    ///
    /// # Panics
    /// If it cannot bind.
    pub async fn start(upstream: SocketAddr) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind the proxy");
        let addr = listener.local_addr().expect("proxy address");
        let (stalled, _) = watch::channel(false);
        let tx = stalled.clone();
        let task = tokio::spawn(async move {
            let mut connections = tokio::task::JoinSet::new();
            loop {
                tokio::select! {
                    accepted = listener.accept() => {
                        let Ok((client, _)) = accepted else { continue };
                        let _ = client.set_nodelay(true);
                        connections.spawn(forward(client, upstream, tx.subscribe()));
                    }
                    Some(_) = connections.join_next() => {}
                }
            }
        });
        Proxy {
            addr,
            stalled,
            task,
        }
    }

    /// The proxy's address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://` + the proxy's address.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Stops moving bytes (both ways, every connection); nothing is closed.
    pub fn stall(&self) {
        self.stalled.send_replace(true);
    }

    /// Moves bytes again.
    pub fn resume(&self) {
        self.stalled.send_replace(false);
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn forward(client: TcpStream, upstream: SocketAddr, stalled: watch::Receiver<bool>) {
    let Ok(server) = TcpStream::connect(upstream).await else {
        return; // the server is down: the client sees its connection closed
    };
    let _ = server.set_nodelay(true);
    let (cr, cw) = client.into_split();
    let (sr, sw) = server.into_split();
    let up = pipe(cr, sw, stalled.clone());
    let down = pipe(sr, cw, stalled);
    tokio::select! {
        () = up => {}
        () = down => {}
    }
}

/// Copies `from` to `to` while not stalled; returns when either side closes.
async fn pipe(
    mut from: tokio::net::tcp::OwnedReadHalf,
    mut to: tokio::net::tcp::OwnedWriteHalf,
    mut stalled: watch::Receiver<bool>,
) {
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        if stalled.wait_for(|s| !*s).await.is_err() {
            return;
        }
        let n = tokio::select! {
            read = from.read(&mut buf) => match read {
                Ok(0) | Err(_) => return,
                Ok(n) => n,
            },
            // A stall that starts while waiting for bytes holds them back too.
            _ = stalled.wait_for(|s| *s) => continue,
        };
        if stalled.wait_for(|s| !*s).await.is_err() {
            return;
        }
        if to.write_all(&buf[..n]).await.is_err() {
            return;
        }
    }
}
