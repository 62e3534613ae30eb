//! A self-signed certificate made at test time (rcgen) for the TLS tests, with a client
//! that trusts exactly it. Shared by `tls.rs` and `chromium_tls.rs`.

#![allow(dead_code)] // Not every test file uses every helper.

use rustls_pki_types::{CertificateDer, ServerName};
use std::path::PathBuf;
use std::sync::Arc;
use testkit::ServerProcess;
use tests::h2raw::RawH2;
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tokio_rustls::rustls::crypto::ring;
use tokio_rustls::rustls::{ClientConfig, RootCertStore};

/// A self-signed certificate and its key, written as PEM files into a fresh directory
/// (removed on drop).
pub struct TestCert {
    pub dir: PathBuf,
    der: CertificateDer<'static>,
    pub pem: String,
}

impl TestCert {
    pub fn new(tag: &str) -> Self {
        let rcgen::CertifiedKey { cert, signing_key } =
            rcgen::generate_simple_self_signed(vec!["localhost".into(), "127.0.0.1".into()])
                .expect("certificate");
        let dir = std::env::temp_dir().join(format!("keepalive-tls-{tag}-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        std::fs::write(dir.join("cert.pem"), cert.pem()).expect("write cert");
        std::fs::write(dir.join("key.pem"), signing_key.serialize_pem()).expect("write key");
        TestCert {
            dir,
            der: cert.der().clone(),
            pem: cert.pem(),
        }
    }

    pub fn cert_path(&self) -> String {
        self.dir.join("cert.pem").display().to_string()
    }

    pub fn key_path(&self) -> String {
        self.dir.join("key.pem").display().to_string()
    }

    /// Starts the server with this certificate and `extra` flags.
    pub async fn server(&self, extra: &[&str]) -> ServerProcess {
        let (cert, key) = (self.cert_path(), self.key_path());
        let mut args = vec!["--tls-cert", &cert, "--tls-key", &key];
        args.extend_from_slice(extra);
        ServerProcess::start(&args).await
    }

    /// A TLS client that trusts only this certificate and offers `alpn`.
    pub fn connector(&self, alpn: &[&[u8]]) -> TlsConnector {
        let mut roots = RootCertStore::empty();
        roots.add(self.der.clone()).expect("root");
        let mut config = ClientConfig::builder_with_provider(Arc::new(ring::default_provider()))
            .with_safe_default_protocol_versions()
            .expect("versions")
            .with_root_certificates(roots)
            .with_no_client_auth();
        config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
        TlsConnector::from(Arc::new(config))
    }

    /// Connects to `srv` over TLS offering `alpn`; returns the stream and the protocol
    /// the server chose.
    pub async fn connect(
        &self,
        srv: &ServerProcess,
        alpn: &[&[u8]],
    ) -> (tokio_rustls::client::TlsStream<TcpStream>, Option<Vec<u8>>) {
        let tcp = TcpStream::connect(srv.addr()).await.expect("connect");
        tcp.set_nodelay(true).expect("nodelay");
        let name = ServerName::try_from("localhost").expect("name");
        let tls = self
            .connector(alpn)
            .connect(name, tcp)
            .await
            .expect("TLS handshake");
        let chosen = tls.get_ref().1.alpn_protocol().map(<[u8]>::to_vec);
        (tls, chosen)
    }

    /// A raw HTTP/2 connection over TLS (ALPN `h2`), after the HTTP/2 handshake.
    pub async fn raw_h2(&self, srv: &ServerProcess) -> RawH2 {
        let (tls, alpn) = self.connect(srv, &[b"h2"]).await;
        assert_eq!(alpn.as_deref(), Some(&b"h2"[..]));
        let local = tls.get_ref().0.local_addr().expect("local addr");
        let mut c = RawH2::over(tls, format!("localhost:{}", srv.addr().port()), local);
        c.handshake().await.expect("HTTP/2 handshake over TLS");
        c
    }
}

impl Drop for TestCert {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

impl TestCert {
    /// `GET /metrics` over TLS (HTTP/1.1, a connection of its own).
    pub async fn metrics(&self, srv: &ServerProcess) -> testkit::Metrics {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let (mut tls, _) = self.connect(srv, &[b"http/1.1"]).await;
        let request = format!(
            "GET /metrics HTTP/1.1\r\nhost: localhost:{}\r\nconnection: close\r\n\r\n",
            srv.addr().port()
        );
        tls.write_all(request.as_bytes()).await.expect("write");
        let mut raw = Vec::new();
        let _ = tokio::time::timeout(std::time::Duration::from_secs(5), tls.read_to_end(&mut raw))
            .await;
        let body = testkit::metrics::response_body(&raw)
            .unwrap_or_else(|e| panic!("/metrics over TLS: {e}"));
        testkit::Metrics::parse(&body)
    }

    /// One sample of [`metrics`](Self::metrics), once it satisfies `ok` (polled for up
    /// to `timeout`); the last value seen otherwise.
    pub async fn wait_for_metric(
        &self,
        srv: &ServerProcess,
        sample: &str,
        ok: impl Fn(f64) -> bool,
        timeout: std::time::Duration,
    ) -> Result<f64, Option<f64>> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let value = self.metrics(srv).await.get(sample);
            if let Some(v) = value.filter(|v| ok(*v)) {
                return Ok(v);
            }
            if tokio::time::Instant::now() >= deadline {
                return Err(value);
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
    }
}
