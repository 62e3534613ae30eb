//! The library's builder in this process, as a user holds it: a tower layer around the
//! gRPC services (and its errors as gRPC statuses), an axum router on the same port,
//! tonic `Routes` added whole, the health reporter, the transport counters read and
//! registered on the user's own registry, and `serve_with_incoming_shutdown` returning
//! once the drain is done.

use http::{HeaderValue, Request, Response};
use keepalive_server::browser::{BrowserKeepalive, BrowserOptions};
use keepalive_server::metrics::{self, Registry};
use keepalive_server::{Server, TransportStats};
use prices_proto::v1::QuoteRequest;
use prices_proto::v1::prices_client::PricesClient;
use prices_proto::v1::prices_server::PricesServer;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_client::HealthClient;

/// A layer that tags every gRPC response, and refuses calls with `x-refuse` by failing
/// (an error the builder must turn into a gRPC status).
#[derive(Clone)]
struct Tag;

impl<S> tower::Layer<S> for Tag {
    type Service = Tagged<S>;
    fn layer(&self, inner: S) -> Tagged<S> {
        Tagged(inner)
    }
}

#[derive(Clone)]
struct Tagged<S>(S);

type BoxFut<T> = Pin<Box<dyn Future<Output = T> + Send>>;

impl<S, B> tower::Service<Request<B>> for Tagged<S>
where
    S: tower::Service<
            Request<B>,
            Response = Response<tonic::body::Body>,
            Error = std::convert::Infallible,
        >,
    S::Future: Send + 'static,
{
    type Response = Response<tonic::body::Body>;
    type Error = tonic::Status;
    type Future = BoxFut<Result<Self::Response, tonic::Status>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), tonic::Status>> {
        self.0
            .poll_ready(cx)
            .map_err(|e: std::convert::Infallible| match e {})
    }

    fn call(&mut self, req: Request<B>) -> Self::Future {
        if req.headers().contains_key("x-refuse") {
            return Box::pin(async {
                Err(tonic::Status::permission_denied("refused by the layer"))
            });
        }
        let fut = self.0.call(req);
        Box::pin(async move {
            let Ok(mut res) = fut.await;
            res.headers_mut()
                .insert("x-layer", HeaderValue::from_static("yes"));
            Ok(res)
        })
    }
}

#[tokio::test]
async fn a_user_server_built_with_the_builder() {
    let browser = BrowserKeepalive::new(BrowserOptions::default());
    let prices = prices_server::Prices::open(browser.clone(), None).expect("prices");
    let builder = Server::builder()
        .browser_keepalive(browser)
        .layer(Tag)
        .add_routes(tonic::service::Routes::new(PricesServer::new(prices)))
        .axum(axum::Router::new().route("/hello", axum::routing::get(|| async { "hi" })));
    let health = builder.health_reporter();
    let stats: Arc<TransportStats> = builder.stats();
    let mut registry = Registry::default();
    builder.register_metrics(&mut registry);

    let listener = keepalive_server::listen("127.0.0.1:0".parse().expect("addr")).expect("bind");
    let addr = listener.local_addr().expect("addr");
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(builder.serve_with_incoming_shutdown(listener, async {
        let _ = stop_rx.await;
    }));

    let channel = tonic::transport::Endpoint::from_shared(format!("http://{addr}"))
        .expect("url")
        .connect()
        .await
        .expect("connect");
    // The added Routes are served, through the layer.
    let mut prices = PricesClient::new(channel.clone());
    let err = prices
        .quote(QuoteRequest {
            symbol: "NOPE".into(),
        })
        .await
        .expect_err("unknown symbol");
    assert_eq!(err.code(), tonic::Code::NotFound);
    assert_eq!(
        err.metadata().get("x-layer").map(|v| v.to_str().ok()),
        Some(Some("yes"))
    );
    // The layer's own error is a gRPC status.
    let mut req = tonic::Request::new(QuoteRequest {
        symbol: "ACME".into(),
    });
    req.metadata_mut()
        .insert("x-refuse", "1".parse().expect("value"));
    let err = prices.quote(req).await.expect_err("refused");
    assert_eq!(
        (err.code(), err.message()),
        (tonic::Code::PermissionDenied, "refused by the layer")
    );

    // Health: the server, its services, and what the user sets.
    let mut h = HealthClient::new(channel.clone());
    let check = |service: &str| HealthCheckRequest {
        service: service.into(),
    };
    assert_eq!(
        h.check(check(""))
            .await
            .expect("server")
            .into_inner()
            .status,
        1
    );
    assert_eq!(
        h.check(check("keepalive.v1.Session"))
            .await
            .expect("session")
            .into_inner()
            .status,
        1
    );
    health.set_not_serving("prices.v1.Prices");
    assert_eq!(
        h.check(check("prices.v1.Prices"))
            .await
            .expect("prices")
            .into_inner()
            .status,
        2
    );

    // The axum router on the same port (HTTP/1.1), untouched by the gRPC layer.
    let mut sock = tokio::net::TcpStream::connect(addr).await.expect("tcp");
    sock.write_all(b"GET /hello HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n")
        .await
        .expect("write");
    let mut answer = String::new();
    sock.read_to_string(&mut answer).await.expect("read");
    assert!(
        answer.starts_with("HTTP/1.1 200") && answer.ends_with("hi"),
        "{answer}"
    );
    assert!(!answer.contains("x-layer"), "{answer}");

    // The transport counters, read directly and from the user's registry.
    assert!(
        TransportStats::snapshot(&stats)
            .iter()
            .any(|s| s.name == "connections_h2" && s.value >= 1)
    );
    let text = metrics::render(&registry);
    assert!(
        text.contains("keepalive_connections_total{protocol=\"http1\"} 1"),
        "{text}"
    );

    // The drain: serve returns once it is done (the tonic channel is closed by GOAWAY).
    let t = tokio::time::Instant::now();
    let _ = stop_tx.send(());
    tokio::time::timeout(Duration::from_secs(5), server)
        .await
        .expect("returned")
        .expect("join")
        .expect("served");
    eprintln!(
        "FIGURE library: serve returned {:?} after the signal",
        t.elapsed()
    );
    assert!(t.elapsed() < Duration::from_secs(3));
}

#[tokio::test]
async fn settings_mistakes_are_errors_before_serving() {
    let mut settings = keepalive_server::Settings::default();
    settings.keepalive.max_connection_age_grace = Some(Duration::from_secs(1));
    let e = Server::builder()
        .settings(&settings)
        .expect_err("grace without age");
    assert_eq!(e.0, "--max-connection-age-grace needs --max-connection-age");
    let settings = keepalive_server::Settings {
        tls_cert: Some("/nonexistent/cert.pem".into()),
        tls_key: Some("/nonexistent/key.pem".into()),
        ..Default::default()
    };
    let e = Server::builder()
        .settings(&settings)
        .expect_err("missing TLS files");
    assert!(e.0.contains("--tls-cert") && !e.0.contains('\n'), "{e}");
    // A second browser keepalive is refused when serving.
    let b = || BrowserKeepalive::new(BrowserOptions::default());
    let listener = keepalive_server::listen("127.0.0.1:0".parse().expect("addr")).expect("bind");
    let e = Server::builder()
        .browser_keepalive(b())
        .browser_keepalive(b())
        .serve_with_incoming(listener)
        .await
        .expect_err("two");
    assert!(e.0.contains("one browser keepalive per server"), "{e}");
}
