//! [`Server::builder`]: the knobs, in tonic's style, with grpc-go's names and defaults.

use crate::browser::BrowserKeepalive;
use crate::faults::FaultInjector;
use crate::health::HealthReporter;
use crate::metrics::Registry;
use crate::routes::{self, BoxLayer, Inner};
use crate::serve;
use crate::stats::TransportStats;
use crate::{Error, Limits, Settings};
use bytes::Bytes;
use http::{Request, Response};
use keepalive::{EnforcementPolicy, ServerParameters};
use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio_rustls::rustls::ServerConfig;
use tonic::body::Body;
use tonic::server::NamedService;
use tower::Service;
use tower::util::BoxCloneSyncService;
use tower_http::cors::CorsLayer;

/// The server. Start with [`Server::builder`].
///
/// ```no_run
/// use keepalive_server::{EnforcementPolicy, Server, ServerParameters};
/// use std::time::Duration;
///
/// # async fn run() -> Result<(), keepalive_server::Error> {
/// Server::builder()
///     .keepalive(ServerParameters {
///         time: Duration::from_secs(30),
///         max_connection_age: Some(Duration::from_secs(300)),
///         max_connection_age_grace: Some(Duration::from_secs(30)),
///         ..Default::default()
///     })
///     .enforcement(EnforcementPolicy {
///         min_time: Duration::from_secs(10),
///         permit_without_stream: true,
///         ..Default::default()
///     })
///     // .add_service(MyServiceServer::new(my_service))
///     .axum(axum::Router::new().route("/healthz", axum::routing::get(|| async { "ok" })))
///     .serve_with_shutdown("127.0.0.1:8080".parse().unwrap(), async {
///         let _ = tokio::signal::ctrl_c().await;
///     })
///     .await
/// # }
/// ```
#[derive(Debug, Clone, Copy)]
pub struct Server;

impl Server {
    /// A builder with grpc-go's defaults: keepalive PINGs after 2 h of silence, no idle
    /// or age limit, PINGs at most every 5 min (2 strikes), gRPC-web on, no CORS (same
    /// origin only), no TLS, health and reflection served.
    pub fn builder() -> Builder {
        Builder::default()
    }
}

/// The knobs and services of a server; [`serve`](Self::serve) runs it.
pub struct Builder {
    pub(crate) keepalive: ServerParameters,
    pub(crate) enforcement: EnforcementPolicy,
    pub(crate) limits: Limits,
    pub(crate) shutdown_grace: Duration,
    pub(crate) grpc_web: bool,
    pub(crate) cors: Option<CorsLayer>,
    pub(crate) tls: Option<crate::conn::tls::Tls>,
    pub(crate) layers: Vec<BoxLayer>,
    pub(crate) grpc: tonic::service::Routes,
    pub(crate) services: Vec<&'static str>,
    pub(crate) extra_routes: Vec<tonic::service::Routes>,
    pub(crate) http: Option<axum::Router>,
    pub(crate) health: HealthReporter,
    pub(crate) serving_while: Vec<tokio::sync::watch::Receiver<bool>>,
    pub(crate) reflection: bool,
    pub(crate) descriptor_sets: Vec<&'static [u8]>,
    pub(crate) browsers: Vec<BrowserKeepalive>,
    pub(crate) faults: Option<Arc<FaultInjector>>,
    pub(crate) stats: Arc<TransportStats>,
}

impl Default for Builder {
    fn default() -> Self {
        Builder {
            keepalive: ServerParameters::default(),
            enforcement: EnforcementPolicy::default(),
            limits: Limits::default(),
            shutdown_grace: crate::settings::DEFAULT_SHUTDOWN_GRACE,
            grpc_web: true,
            cors: None,
            tls: None,
            layers: Vec::new(),
            grpc: tonic::service::Routes::default(),
            services: Vec::new(),
            extra_routes: Vec::new(),
            http: None,
            health: HealthReporter::new(),
            serving_while: Vec::new(),
            reflection: true,
            descriptor_sets: vec![tonic_health::pb::FILE_DESCRIPTOR_SET],
            browsers: Vec::new(),
            faults: None,
            stats: Arc::new(TransportStats::default()),
        }
    }
}

impl std::fmt::Debug for Builder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Builder")
            .field("keepalive", &self.keepalive)
            .field("enforcement", &self.enforcement)
            .field("limits", &self.limits)
            .field("shutdown_grace", &self.shutdown_grace)
            .field("grpc_web", &self.grpc_web)
            .field("cors", &self.cors.is_some())
            .field("tls", &self.tls.is_some())
            .field("layers", &self.layers.len())
            .field("axum", &self.http.is_some())
            .field("browsers", &self.browsers.len())
            .field("fault_injector", &self.faults.is_some())
            .finish_non_exhaustive()
    }
}

impl Builder {
    /// grpc-go's `keepalive.ServerParameters`: server PINGs after `time` of silence,
    /// closing after `timeout` more; max idle; max age with grace (both jittered ±10%).
    pub fn keepalive(mut self, params: ServerParameters) -> Self {
        self.keepalive = params;
        self
    }

    /// grpc-go's `keepalive.EnforcementPolicy`: how often clients may PING (HTTP/2) or
    /// heartbeat (browser sessions of [`browser_keepalive`](Self::browser_keepalive));
    /// past the strikes, GOAWAY `ENHANCE_YOUR_CALM` `too_many_pings`.
    pub fn enforcement(mut self, policy: EnforcementPolicy) -> Self {
        self.enforcement = policy;
        self
    }

    /// Message, body, stream and connection limits.
    pub fn limits(mut self, limits: Limits) -> Self {
        self.limits = limits;
        self
    }

    /// How long in-flight streams get to finish when the server stops (then the rest is
    /// closed) [default: 10 s].
    pub fn shutdown_grace(mut self, grace: Duration) -> Self {
        self.shutdown_grace = grace;
        self
    }

    /// Every setting of `settings` at once (what a binary's flags and TOML file give,
    /// see [`crate::cli`]): checked, and the TLS files read, now.
    ///
    /// # Errors
    /// The first mistake, in one line naming the flag or the file.
    pub fn settings(mut self, settings: &Settings) -> Result<Self, Error> {
        settings.validate().map_err(|e| Error(e.0))?;
        self = self
            .keepalive(settings.keepalive)
            .enforcement(settings.enforcement)
            .limits(settings.limits)
            .shutdown_grace(settings.shutdown_grace);
        if let Some(cors) = routes::cors_for_origins(&settings.cors_allow_origin).map_err(Error)? {
            self.cors = Some(cors);
        }
        if let (Some(cert), Some(key)) = (&settings.tls_cert, &settings.tls_key) {
            self = self.tls_pem(cert, key)?;
        }
        Ok(self)
    }

    /// Whether gRPC-web requests (HTTP/1.1 or HTTP/2, binary or text) are translated to
    /// gRPC [default: true].
    pub fn grpc_web(mut self, enabled: bool) -> Self {
        self.grpc_web = enabled;
        self
    }

    /// CORS for browsers of other origins. Start from [`routes::grpc_web_cors`], which
    /// exposes the gRPC status headers (a browser cannot read why a call failed
    /// otherwise) [default: none, same-origin only].
    pub fn cors(mut self, cors: CorsLayer) -> Self {
        self.cors = Some(cors);
        self
    }

    /// TLS with this rustls configuration; its ALPN protocols are set to `h2` and
    /// `http/1.1` when it names none.
    pub fn tls(mut self, mut config: ServerConfig) -> Self {
        if config.alpn_protocols.is_empty() {
            config.alpn_protocols = crate::conn::tls::ALPN.iter().map(|p| p.to_vec()).collect();
        }
        self.tls = Some(crate::conn::tls::Tls::from_config(Arc::new(config)));
        self
    }

    /// TLS from PEM files (a certificate chain, leaf first, and its private key; PKCS#8,
    /// PKCS#1 or SEC1), read now.
    ///
    /// # Errors
    /// An unreadable or invalid file, in one line naming it.
    pub fn tls_pem(mut self, cert: impl AsRef<Path>, key: impl AsRef<Path>) -> Result<Self, Error> {
        let tls = crate::conn::tls::load(cert.as_ref(), key.as_ref()).map_err(Error)?;
        self.tls = Some(tls);
        Ok(self)
    }

    /// Wraps every request (gRPC, after gRPC-web's translation, and axum) in a tower
    /// layer; the first added is the outermost. An error the layer's service returns
    /// becomes a gRPC status (tonic's `RecoverError`).
    pub fn layer<L, B, E>(mut self, layer: L) -> Self
    where
        L: tower::Layer<Inner> + Send + 'static,
        L::Service: Service<Request<Body>, Response = Response<B>, Error = E>
            + Clone
            + Send
            + Sync
            + 'static,
        <L::Service as Service<Request<Body>>>::Future: Send + 'static,
        E: Into<tower::BoxError> + 'static,
        B: http_body::Body<Data = Bytes> + Send + 'static,
        B::Error: Into<tower::BoxError>,
    {
        self.layers.push(Box::new(move |inner: Inner| {
            BoxCloneSyncService::new(routes::Recover::new(layer.layer(inner)))
        }));
        self
    }

    /// Serves a tonic service (any generated `XxxServer`, or any service with a
    /// [`NamedService`] name) on the gRPC paths `/NAME/*`; its health status starts as
    /// `SERVING`.
    pub fn add_service<S>(mut self, service: S) -> Self
    where
        S: Service<Request<Body>, Error = Infallible>
            + NamedService
            + Clone
            + Send
            + Sync
            + 'static,
        S::Response: axum::response::IntoResponse,
        S::Future: Send + 'static,
    {
        self.health.set_serving(S::NAME);
        self.services.push(S::NAME);
        self.grpc = self.grpc.add_service(service);
        self
    }

    /// Serves the services of a tonic [`Routes`](tonic::service::Routes) (for instance
    /// one built with `RoutesBuilder` elsewhere) next to the others.
    pub fn add_routes(mut self, routes: tonic::service::Routes) -> Self {
        self.extra_routes.push(routes);
        self
    }

    /// Serves an axum [`Router`](axum::Router) on the same port: every request that is
    /// not gRPC (nor gRPC-web) goes to it — your REST API, `/healthz`, `/metrics`, static
    /// files. Several calls merge their routers (axum's rules: one fallback at most).
    pub fn axum(mut self, router: axum::Router) -> Self {
        self.http = Some(match self.http.take() {
            Some(mine) => mine.merge(router),
            None => router,
        });
        self
    }

    /// The health statuses (`grpc.health.v1.Health`) this server answers with: set your
    /// services' statuses through it at any time.
    pub fn health_reporter(&self) -> HealthReporter {
        self.health.clone()
    }

    /// The server and every service it serves say `SERVING` only while `up` shows true
    /// (health-checking.md: a load balancer's health check takes the replica out): for a
    /// dependency every call needs, such as the shared Redis
    /// (`RedisStore::reachable`, feature `redis`).
    pub fn serving_while(mut self, up: tokio::sync::watch::Receiver<bool>) -> Self {
        self.serving_while.push(up);
        self
    }

    /// Whether gRPC server reflection (v1 and v1alpha) is served [default: true].
    pub fn reflection(mut self, enabled: bool) -> Self {
        self.reflection = enabled;
        self
    }

    /// Adds an encoded `FileDescriptorSet` (as `tonic-prost-build` writes it) to
    /// reflection, so `grpcurl list` shows your services.
    pub fn file_descriptor_set(mut self, encoded: &'static [u8]) -> Self {
        self.descriptor_sets.push(encoded);
        self
    }

    /// Mounts browser keepalive: the `keepalive.v1.Session` service, heartbeats judged by
    /// this server's [`enforcement`](Self::enforcement) policy (unless its options name
    /// one), and every resumable stream of it ending with GoAway `shutdown` when the
    /// server stops.
    /// One per server; a second is an [`Error`] when serving.
    pub fn browser_keepalive(mut self, browser: BrowserKeepalive) -> Self {
        self.browsers.push(browser);
        self
    }

    /// Lets `faults` break this server's connections on purpose (drop, stall, refuse,
    /// drain): for demos and tests. A server without one carries no fault state.
    pub fn fault_injector(mut self, faults: Arc<FaultInjector>) -> Self {
        self.faults = Some(faults);
        self
    }

    /// The transport counters of this server (connections, PINGs, GOAWAYs, strikes),
    /// readable at any time, also while it serves.
    pub fn stats(&self) -> Arc<TransportStats> {
        self.stats.clone()
    }

    /// Registers the transport counters on your Prometheus `registry`.
    pub fn register_metrics(&self, registry: &mut Registry) {
        self.stats.register(registry);
    }

    /// Binds `addr` and serves until the process ends.
    ///
    /// # Errors
    /// Invalid settings, unusable TLS files, or an address that cannot be bound.
    pub async fn serve(self, addr: SocketAddr) -> Result<(), Error> {
        self.serve_with_shutdown(addr, std::future::pending()).await
    }

    /// Binds `addr` and serves until `signal` completes, then drains: health turns
    /// `NOT_SERVING`, resumable streams get their GoAway, every connection a graceful
    /// GOAWAY; in-flight streams get the shutdown grace, then the rest is closed. Returns
    /// as soon as the drain is done.
    ///
    /// # Errors
    /// As [`serve`](Self::serve).
    pub async fn serve_with_shutdown(
        self,
        addr: SocketAddr,
        signal: impl Future<Output = ()>,
    ) -> Result<(), Error> {
        let listener =
            serve::listen(addr).map_err(|e| Error(format!("cannot listen on {addr}: {e}")))?;
        self.serve_with_incoming_shutdown(listener, signal).await
    }

    /// Serves connections accepted on `listener` until the process ends (bind it with
    /// [`crate::listen`] for a backlog fit for reconnect storms).
    ///
    /// # Errors
    /// Invalid settings or unusable TLS files.
    pub async fn serve_with_incoming(self, listener: TcpListener) -> Result<(), Error> {
        self.serve_with_incoming_shutdown(listener, std::future::pending())
            .await
    }

    /// [`serve_with_incoming`](Self::serve_with_incoming) until `signal` completes, then
    /// the drain of [`serve_with_shutdown`](Self::serve_with_shutdown).
    ///
    /// # Errors
    /// As [`serve_with_incoming`](Self::serve_with_incoming).
    pub async fn serve_with_incoming_shutdown(
        self,
        listener: TcpListener,
        signal: impl Future<Output = ()>,
    ) -> Result<(), Error> {
        serve::run(self, listener, signal).await
    }
}
