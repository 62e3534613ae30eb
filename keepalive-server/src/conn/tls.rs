//! TLS ([`Builder::tls`](crate::Builder::tls), `--tls-cert`/`--tls-key`): rustls with the
//! ring provider, ALPN `h2` and `http/1.1`.
//!
//! Why TLS at all: browsers speak HTTP/2 only over TLS, so without it a page's gRPC-web
//! calls each take one of at most six HTTP/1.1 connections, and the browser's own HTTP/2
//! PINGs (which the enforcement policy must tolerate) never happen.
//!
//! After the handshake the protocol is what ALPN chose (`h2`, else HTTP/1.1: a client that
//! offers no ALPN is taken for HTTP/1.1). HTTP/1.1 runs over the TLS stream directly. HTTP/2
//! must go through the frame observer, which shares its socket with the connection task
//! and writes through `&self` without blocking ([`super::sock::Socket`]) — a TLS stream
//! cannot. So the TLS stream is bridged ([`bridge`]) to one end of a local socket pair and
//! the observer gets the other end: it then sees exactly the plaintext frames it sees on a
//! TCP connection, keepalive, enforcement, limits and chaos included, and no line of the
//! observer changes. The cost (one more copy of each byte through the kernel) is paid by
//! TLS connections only.

use super::shared::Proto;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncWriteExt, split};
use tokio::net::{TcpStream, UnixStream};
use tokio_rustls::TlsAcceptor;
use tokio_rustls::rustls::ServerConfig;
use tokio_rustls::rustls::crypto::ring;
use tokio_rustls::server::TlsStream;

/// ALPN protocol ids, in the server's order of preference.
pub const ALPN: [&[u8]; 2] = [b"h2", b"http/1.1"];

/// How long the bridge keeps reading from the client once the server side has closed,
/// so the last bytes (a GOAWAY) are not destroyed by a reset.
const LINGER: Duration = Duration::from_secs(1);

/// Builds the acceptor from PEM files: a certificate chain and a private key (PKCS#8,
/// PKCS#1 or SEC1). Errors are one line naming the file.
pub fn load(cert: &Path, key: &Path) -> Result<Tls, String> {
    let certs = CertificateDer::pem_file_iter(cert)
        .and_then(|it| it.collect::<Result<Vec<_>, _>>())
        .map_err(|e| format!("--tls-cert {}: {e}", cert.display()))?;
    if certs.is_empty() {
        return Err(format!(
            "--tls-cert {}: no CERTIFICATE in the file",
            cert.display()
        ));
    }
    let key = PrivateKeyDer::from_pem_file(key)
        .map_err(|e| format!("--tls-key {}: {e}", key.display()))?;
    let mut config = ServerConfig::builder_with_provider(Arc::new(ring::default_provider()))
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("TLS: {e}"))?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .map_err(|e| format!("--tls-cert/--tls-key: {e}"))?;
    config.alpn_protocols = ALPN.iter().map(|p| p.to_vec()).collect();
    Ok(Tls(TlsAcceptor::from(Arc::new(config))))
}

/// The server's TLS settings, shared by every connection (cheap to clone).
#[derive(Clone)]
pub struct Tls(TlsAcceptor);

impl Tls {
    /// An acceptor over a rustls configuration made elsewhere.
    pub fn from_config(config: Arc<ServerConfig>) -> Self {
        Tls(TlsAcceptor::from(config))
    }

    /// The server side of the handshake on `sock`.
    pub async fn accept(&self, sock: TcpStream) -> std::io::Result<TlsStream<TcpStream>> {
        self.0.accept(sock).await
    }
}

impl std::fmt::Debug for Tls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Tls(rustls, ring)")
    }
}

/// The protocol ALPN settled on.
pub fn negotiated(tls: &TlsStream<TcpStream>) -> Proto {
    match tls.get_ref().1.alpn_protocol() {
        Some(b"h2") => Proto::H2,
        _ => Proto::H1,
    }
}

/// Copies plaintext between the TLS connection and `inner` (the local end the observer
/// does not hold) until both directions are done. When the server side ends, the client
/// gets close_notify and FIN, and what it still sends is read for `LINGER` (1 s) at most; when
/// the client side ends, the server side gets FIN and its remaining bytes still go out.
pub async fn bridge(tls: TlsStream<TcpStream>, inner: UnixStream) {
    let (mut tls_read, mut tls_write) = split(tls);
    let (mut inner_read, mut inner_write) = inner.into_split();
    let up = async {
        let _ = tokio::io::copy(&mut tls_read, &mut inner_write).await;
        let _ = inner_write.shutdown().await;
    };
    let down = async {
        let _ = tokio::io::copy(&mut inner_read, &mut tls_write).await;
        let _ = tls_write.shutdown().await;
    };
    let (mut up, mut down) = (std::pin::pin!(up), std::pin::pin!(down));
    tokio::select! {
        () = &mut down => {
            let _ = tokio::time::timeout(LINGER, up).await;
        }
        () = &mut up => down.await,
    }
}
