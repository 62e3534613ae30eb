//! Counting a connection's active streams at the service boundary.
//!
//! A request is an active stream from the moment it reaches the routes until its
//! response body is finished or dropped (which is also what a client reset does). This is
//! grpc-go's `activeStreams`, and it works the same for HTTP/2 streams and HTTP/1.1
//! requests, so max-idle and the enforcement policy see one number for both.

use super::shared::ConnShared;
use crate::stats::TransportStats as Stats;
use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};

use crate::routes::{Routes, RoutesFuture};

/// The hyper service of one connection: the routes, with each request counted.
#[derive(Debug, Clone)]
pub struct CountedService {
    routes: Routes,
    shared: Arc<ConnShared>,
}

impl CountedService {
    /// Serves `routes` for the connection `shared`.
    pub fn new(routes: Routes, shared: Arc<ConnShared>) -> Self {
        CountedService { routes, shared }
    }
}

impl hyper::service::Service<http::Request<hyper::body::Incoming>> for CountedService {
    type Response = http::Response<CountedBody>;
    type Error = Infallible;
    type Future = CountedFuture;

    fn call(&self, req: http::Request<hyper::body::Incoming>) -> Self::Future {
        CountedFuture {
            guard: Some(StreamGuard::open(self.shared.clone())),
            inner: self.routes.call(req),
        }
    }
}

/// The response of a counted request: the routes' future and the stream's guard, which
/// moves into the body (a named future: no allocation per request for it).
pub struct CountedFuture {
    inner: RoutesFuture,
    guard: Option<StreamGuard>,
}

impl std::fmt::Debug for CountedFuture {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CountedFuture")
            .field("guard", &self.guard)
            .finish_non_exhaustive()
    }
}

impl Future for CountedFuture {
    type Output = Result<http::Response<CountedBody>, Infallible>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = &mut *self;
        let response = ready!(this.inner.as_mut().poll(cx))?;
        let guard = this
            .guard
            .take()
            .expect("CountedFuture polled after completion");
        Poll::Ready(Ok(response.map(|inner| CountedBody {
            inner,
            _guard: guard,
        })))
    }
}

/// Keeps its stream counted while alive.
#[derive(Debug)]
struct StreamGuard(Arc<ConnShared>);

impl StreamGuard {
    /// A stream opening only removes the idle deadline: the task's timer may then fire
    /// early, find nothing due and re-arm, so it is not woken now (a wake would cost it a
    /// round of polling the connection per request).
    fn open(shared: Arc<ConnShared>) -> Self {
        let now = shared.clock.now();
        shared.lock().core.on_stream_opened(now);
        Stats::inc(&shared.stats.open_streams);
        Stats::inc(&shared.stats.streams);
        StreamGuard(shared)
    }
}

impl Drop for StreamGuard {
    /// The last stream ending starts the idle deadline; the task is woken only if that
    /// comes before the deadline its timer is set for (with max-idle off, never).
    fn drop(&mut self) {
        let now = self.0.clock.now();
        let wake = {
            let mut st = self.0.lock();
            st.core.on_stream_closed(now);
            st.earlier_deadline().is_some()
        };
        Stats::dec(&self.0.stats.open_streams);
        if wake {
            self.0.notify.notify_one();
        }
    }
}

/// A response body that ends its stream's count when finished or dropped.
#[derive(Debug)]
pub struct CountedBody {
    inner: tonic::body::Body,
    _guard: StreamGuard,
}

impl Body for CountedBody {
    type Data = Bytes;
    type Error = tonic::Status;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, tonic::Status>>> {
        Pin::new(&mut self.inner).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}
