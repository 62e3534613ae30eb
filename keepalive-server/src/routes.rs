//! What the server answers on its one port: your gRPC services and your axum routes,
//! behind CORS; the gRPC services behind gRPC-web, your layers and the size limits.
//!
//! Order, outermost first, and why:
//! 1. CORS ([`Builder::cors`](crate::Builder::cors)): preflights are answered before
//!    anything else, and error responses still carry the headers a browser needs to read
//!    `grpc-status`;
//! 2. the dispatch: a gRPC or gRPC-web request (`content-type: application/grpc*`, or any
//!    request to the path of a service you added) goes to the gRPC side; anything else to
//!    your axum router ([`Builder::axum`](crate::Builder::axum)), if there is one, untouched
//!    by what follows (layer it with axum's own `Router::layer`);
//! 3. tonic-web ([`Builder::grpc_web`](crate::Builder::grpc_web)): `application/grpc-web*`
//!    over HTTP/1.1 or HTTP/2 becomes gRPC, so everything below sees gRPC;
//! 4. your layers ([`Builder::layer`](crate::Builder::layer)), first added outermost, as in
//!    tonic and tower's `ServiceBuilder`; an error they return becomes a gRPC status;
//! 5. the size limits ([`crate::limits`], inside gRPC-web so they measure decoded messages
//!    and their errors reach browsers as gRPC-web trailers), then tonic's routes.
//!
//! Without layers nothing is boxed below the top: a gRPC call pays for the CORS and
//! gRPC-web checks, one content-type comparison and the limits, as before the library.

use crate::limits::{LimitLayer, Limits};
use http::{HeaderValue, Method, Request, Response};
use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;
use tonic::body::Body;
use tower::util::BoxCloneSyncService;
use tower::{Layer, Service, ServiceBuilder};
use tower_http::cors::{AllowHeaders, AllowOrigin, CorsLayer};

/// Response headers a browser may read cross-origin: without them a gRPC-web client
/// cannot see why a call failed.
pub const EXPOSED_HEADERS: [&str; 3] = ["grpc-status", "grpc-message", "grpc-status-details-bin"];

/// The service every connection serves: the whole stack behind one `Arc`. Each call runs
/// on a clone of the stack (its `Arc`s counted up) inside the call's future, so a call
/// costs one allocation, its future; a `BoxCloneSyncService` cost two (a boxed clone of
/// the stack, 392 bytes, and the future).
#[derive(Clone)]
pub struct Routes(Arc<dyn CallRoutes>);

/// The future of a call of [`Routes`].
pub type RoutesFuture = Pin<Box<dyn Future<Output = Result<Response<Body>, Infallible>> + Send>>;

impl Routes {
    fn new<S>(stack: S) -> Self
    where
        Stack<S>: CallRoutes + 'static,
    {
        Routes(Arc::new(Stack(stack)))
    }

    /// Serves `req`: waits until a clone of the stack is ready, then calls it.
    pub fn call(&self, req: Request<hyper::body::Incoming>) -> RoutesFuture {
        self.0.call(req)
    }
}

impl std::fmt::Debug for Routes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Routes").finish_non_exhaustive()
    }
}

/// [`Routes`]' stack with its type erased.
trait CallRoutes: Send + Sync {
    fn call(&self, req: Request<hyper::body::Incoming>) -> RoutesFuture;
}

struct Stack<S>(S);

impl<S> CallRoutes for Stack<S>
where
    S: Service<Request<hyper::body::Incoming>, Response = Response<Body>, Error = Infallible>
        + Clone
        + Send
        + Sync
        + 'static,
    S::Future: Send + 'static,
{
    fn call(&self, req: Request<hyper::body::Incoming>) -> RoutesFuture {
        Box::pin(tower::ServiceExt::oneshot(self.0.clone(), req))
    }
}

/// The service between gRPC-web and the dispatch, boxed once a layer wraps it.
pub type Inner = BoxCloneSyncService<Request<Body>, Response<Body>, Infallible>;

/// A user layer, applied when the server is built.
pub(crate) type BoxLayer = Box<dyn FnOnce(Inner) -> Inner + Send>;

/// What [`build`] puts together.
pub(crate) struct Parts {
    pub grpc: tonic::service::Routes,
    pub services: Vec<&'static str>,
    pub http: Option<axum::Router>,
    pub layers: Vec<BoxLayer>,
    pub cors: Option<CorsLayer>,
    pub grpc_web: bool,
    pub limits: Limits,
    pub stats: std::sync::Arc<crate::stats::TransportStats>,
}

/// Builds the one service of the port.
pub(crate) fn build(parts: Parts) -> Routes {
    let limits = LimitLayer::new(parts.limits).counting(parts.stats);
    let limited = tower::Layer::layer(&limits, parts.grpc.prepare());
    let http = parts.http.map(|r| r.with_state(()));
    let services: std::sync::Arc<[&'static str]> = parts.services.into();
    if parts.layers.is_empty() {
        return outer(limited, http, services, parts.cors, parts.grpc_web);
    }
    let mut inner: Inner = BoxCloneSyncService::new(limited);
    for layer in parts.layers.into_iter().rev() {
        inner = layer(inner);
    }
    outer(inner, http, services, parts.cors, parts.grpc_web)
}

/// gRPC-web around the gRPC side, the dispatch, and CORS around it all.
fn outer<S>(
    grpc: S,
    http: Option<axum::Router>,
    services: std::sync::Arc<[&'static str]>,
    cors: Option<CorsLayer>,
    grpc_web: bool,
) -> Routes
where
    S: Service<Request<Body>, Response = Response<Body>, Error = Infallible>
        + Clone
        + Send
        + Sync
        + 'static,
    S::Future: Send + 'static,
{
    let builder = ServiceBuilder::new().option_layer(cors);
    if grpc_web {
        let grpc = tonic_web::GrpcWebLayer::new().layer(grpc);
        Routes::new(builder.service(Dispatch {
            grpc,
            http,
            services,
        }))
    } else {
        let grpc = ServiceBuilder::new()
            .map_request(|req: Request<hyper::body::Incoming>| req.map(Body::new))
            .service(grpc);
        Routes::new(builder.service(Dispatch {
            grpc,
            http,
            services,
        }))
    }
}

/// A CORS layer for gRPC-web from browsers of other origins: `POST` and preflights, the
/// request headers the browser asks for, the gRPC status headers exposed, preflights
/// cached for two hours. Set the origins with `allow_origin`.
///
/// ```
/// use keepalive_server::routes::grpc_web_cors;
/// let cors = grpc_web_cors().allow_origin(["https://app.example".parse::<http::HeaderValue>().unwrap()]);
/// # drop(cors);
/// ```
pub fn grpc_web_cors() -> CorsLayer {
    CorsLayer::new()
        .allow_methods([Method::POST, Method::OPTIONS])
        .allow_headers(AllowHeaders::mirror_request())
        .expose_headers(EXPOSED_HEADERS.map(http::HeaderName::from_static))
        .max_age(Duration::from_secs(2 * 60 * 60))
}

/// [`grpc_web_cors`] for a list of origins as flags give them (`*` for any); `None`
/// (same-origin only) for an empty list. An origin that is not `http(s)://host[:port]`
/// is an error naming it.
pub fn cors_for_origins(origins: &[String]) -> Result<Option<CorsLayer>, String> {
    if origins.is_empty() {
        return Ok(None);
    }
    for origin in origins {
        validate_origin(origin)?;
    }
    let allow = if origins.iter().any(|o| o == "*") {
        AllowOrigin::any()
    } else {
        AllowOrigin::list(
            origins
                .iter()
                .map(|o| HeaderValue::from_str(o).map_err(|_| format!("bad CORS origin {o:?}")))
                .collect::<Result<Vec<_>, _>>()?,
        )
    };
    Ok(Some(grpc_web_cors().allow_origin(allow)))
}

/// Checks one CORS origin as a person writes it.
pub fn validate_origin(origin: &str) -> Result<(), String> {
    let ok = origin == "*"
        || ((origin.starts_with("http://") || origin.starts_with("https://"))
            && !origin.ends_with('/')
            && HeaderValue::from_str(origin).is_ok()
            && origin.split("://").nth(1).is_some_and(|h| !h.is_empty()));
    if ok {
        Ok(())
    } else {
        Err(format!(
            "invalid CORS origin {origin:?}; use e.g. http://localhost:3000 or *"
        ))
    }
}

/// A user layer's service with its errors turned into gRPC statuses (an error from
/// `poll_ready` answers the next call), and its response body boxed.
#[derive(Clone, Debug)]
pub(crate) struct Recover<S> {
    inner: S,
    not_ready: Option<tonic::Status>,
}

impl<S> Recover<S> {
    pub(crate) fn new(inner: S) -> Self {
        Recover {
            inner,
            not_ready: None,
        }
    }
}

impl<S, B> Service<Request<Body>> for Recover<S>
where
    S: Service<Request<Body>, Response = Response<B>>,
    S::Error: Into<tower::BoxError>,
    S::Future: Send + 'static,
    B: http_body::Body<Data = bytes::Bytes> + Send + 'static,
    B::Error: Into<tower::BoxError>,
{
    type Response = Response<Body>;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Response<Body>, Infallible>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        match self.inner.poll_ready(cx) {
            Poll::Ready(Err(e)) => {
                self.not_ready = Some(tonic::Status::from_error(e.into()));
                Poll::Ready(Ok(()))
            }
            Poll::Ready(Ok(())) => Poll::Ready(Ok(())),
            Poll::Pending => Poll::Pending,
        }
    }

    fn call(&mut self, req: Request<Body>) -> Self::Future {
        if let Some(status) = self.not_ready.take() {
            return Box::pin(async move { Ok(status.into_http()) });
        }
        let fut = self.inner.call(req);
        Box::pin(async move {
            Ok(match fut.await {
                Ok(res) => res.map(Body::new),
                Err(e) => tonic::Status::from_error(e.into()).into_http(),
            })
        })
    }
}

/// Whether a request is for the gRPC services: gRPC by its content type (inside
/// tonic-web, gRPC-web is gRPC too), or on the path of a service of `services` whatever
/// its content type (tonic then answers it as a gRPC call, with a gRPC status).
fn is_grpc<B>(req: &Request<B>, services: &[&str]) -> bool {
    let by_type = req
        .headers()
        .get(http::header::CONTENT_TYPE)
        .is_some_and(|ct| ct.as_bytes().starts_with(b"application/grpc"));
    by_type
        || req
            .uri()
            .path()
            .strip_prefix('/')
            .and_then(|p| p.split_once('/'))
            .is_some_and(|(service, _)| services.contains(&service))
}

/// gRPC to the services, anything else to the axum router.
#[derive(Clone, Debug)]
struct Dispatch<G> {
    grpc: G,
    http: Option<axum::Router>,
    services: std::sync::Arc<[&'static str]>,
}

impl<G> Service<Request<hyper::body::Incoming>> for Dispatch<G>
where
    G: Service<Request<hyper::body::Incoming>, Response = Response<Body>, Error = Infallible>,
    G::Future: Send + 'static,
{
    type Response = Response<Body>;
    type Error = Infallible;
    type Future = DispatchFuture<G::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        // axum's router is always ready; the gRPC side says for itself.
        self.grpc.poll_ready(cx)
    }

    fn call(&mut self, req: Request<hyper::body::Incoming>) -> Self::Future {
        match &mut self.http {
            Some(router) if !is_grpc(&req, &self.services) => {
                DispatchFuture::Http(Box::pin(router.call(req)))
            }
            _ => DispatchFuture::Grpc(self.grpc.call(req)),
        }
    }
}

/// The future of [`Dispatch`].
#[pin_project::pin_project(project = DispatchProj)]
enum DispatchFuture<F> {
    Grpc(#[pin] F),
    Http(Pin<Box<axum::routing::future::RouteFuture<Infallible>>>),
}

impl<F> Future for DispatchFuture<F>
where
    F: Future<Output = Result<Response<Body>, Infallible>>,
{
    type Output = Result<Response<Body>, Infallible>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match self.project() {
            DispatchProj::Grpc(f) => f.poll(cx),
            DispatchProj::Http(f) => f.as_mut().poll(cx).map_ok(|r| r.map(Body::new)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn origins() {
        assert!(cors_for_origins(&[]).expect("empty").is_none());
        assert!(
            cors_for_origins(&["http://localhost:3000".into()])
                .expect("ok")
                .is_some()
        );
        assert!(cors_for_origins(&["*".into()]).expect("any").is_some());
        for bad in ["localhost", "http://", "http://x/", "ftp://x"] {
            assert!(cors_for_origins(&[bad.into()]).is_err(), "{bad}");
        }
    }
}
