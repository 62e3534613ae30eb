//! [`LimitLayer`]: the size limits as a tower layer over the gRPC routes.
//!
//! Requests get a body wrapper that counts bytes and scans message prefixes and fails with
//! a `RESOURCE_EXHAUSTED` status (tonic passes a body's `Status` error on as the call's
//! status). gRPC responses get a wrapper that scans outgoing message prefixes and, at the
//! first one over the limit, sends what came before it, then trailers with
//! `RESOURCE_EXHAUSTED`, and drops the rest: the client never sees a cut message.
//!
//! A streaming handler sees a request-side failure as an error item on its inbound stream
//! and may end its response with OK anyway (tonic-reflection does). So the request wrapper
//! also records its failure where the response wrapper sees it, and a call whose request
//! was refused never ends with `grpc-status: 0`.

use super::Limits;
use super::scan::{MessageScanner, TooLarge};
use crate::stats::TransportStats;
use bytes::{Bytes, BytesMut};
use http::{HeaderMap, Request, Response};
use http_body::{Body as _, Frame, SizeHint};
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, OnceLock};
use std::task::{Context, Poll, ready};
use tonic::Status;
use tonic::body::Body;

/// Applies [`Limits`] to every call of the service it wraps.
#[derive(Clone, Debug)]
pub struct LimitLayer {
    limits: Limits,
    stats: Option<Arc<TransportStats>>,
}

impl LimitLayer {
    /// A layer enforcing `limits`.
    pub fn new(limits: Limits) -> Self {
        LimitLayer {
            limits,
            stats: None,
        }
    }

    /// Counts the calls it refuses in `stats` (`refused_*`).
    pub fn counting(mut self, stats: Arc<TransportStats>) -> Self {
        self.stats = Some(stats);
        self
    }
}

impl<S> tower::Layer<S> for LimitLayer {
    type Service = Limit<S>;

    fn layer(&self, inner: S) -> Limit<S> {
        Limit {
            inner,
            limits: self.limits,
            stats: self.stats.clone(),
        }
    }
}

/// The service of [`LimitLayer`].
#[derive(Clone, Debug)]
pub struct Limit<S> {
    inner: S,
    limits: Limits,
    stats: Option<Arc<TransportStats>>,
}

/// Whether headers say the body is gRPC (inside tonic-web, gRPC-web is gRPC too).
/// Compared as bytes: `to_str` would first check every byte of the value, twice per call.
fn is_grpc(headers: &HeaderMap) -> bool {
    headers
        .get(http::header::CONTENT_TYPE)
        .is_some_and(|ct| ct.as_bytes().starts_with(b"application/grpc"))
}

impl<S> tower::Service<Request<Body>> for Limit<S>
where
    S: tower::Service<Request<Body>, Response = Response<Body>>,
{
    type Response = Response<Body>;
    type Error = S::Error;
    type Future = LimitFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request<Body>) -> Self::Future {
        let limits = self.limits;
        let scan = is_grpc(req.headers()).then_some(limits.max_recv_message_size);
        let call = Arc::new(Call::new(self.stats.clone()));
        let req = req.map(|b| boxed(LimitedRequest::new(b, scan, limits).within(call.clone())));
        LimitFuture {
            inner: self.inner.call(req),
            limit: limits.max_send_message_size,
            call: Some(call),
        }
    }
}

/// `body` as tonic's [`Body`], boxed as the one type tonic takes as it is: given any other
/// body, `Body::new` wraps it in a `MapErr` to its error type first, which every frame
/// then passes through (~300 instructions per call), although ours already fail with a
/// `Status`.
fn boxed<B>(body: B) -> Body
where
    B: http_body::Body<Data = Bytes, Error = Status> + Send + 'static,
{
    Body::new(http_body_util::BodyExt::boxed_unsync(body))
}

/// The future of [`Limit`]: the inner service's, its response body wrapped (a named
/// future: no allocation per call for it).
#[pin_project::pin_project]
#[derive(Debug)]
pub struct LimitFuture<F> {
    #[pin]
    inner: F,
    limit: usize,
    call: Option<Arc<Call>>,
}

impl<F, E> Future for LimitFuture<F>
where
    F: Future<Output = Result<Response<Body>, E>>,
{
    type Output = Result<Response<Body>, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let res = ready!(this.inner.poll(cx))?;
        let call = this
            .call
            .take()
            .expect("LimitFuture polled after completion");
        // A trailers-only response (an error status in the headers, no body) stays one:
        // wrapping it would turn it into headers plus an empty body.
        Poll::Ready(Ok(
            if is_grpc(res.headers()) && !res.body().is_end_stream() {
                let limit = *this.limit;
                res.map(|b| boxed(LimitedResponse::new(b, limit).within(call)))
            } else {
                res
            },
        ))
    }
}

/// What the two halves of one call share: the status its request was refused with (the
/// response must not then end OK), and the counters refusals are counted in.
#[derive(Debug, Default)]
pub struct Call {
    refused: OnceLock<Status>,
    stats: Option<Arc<TransportStats>>,
}

impl Call {
    /// A call counting its refusals in `stats`, if any.
    pub fn new(stats: Option<Arc<TransportStats>>) -> Self {
        Call {
            refused: OnceLock::new(),
            stats,
        }
    }

    /// The status the request was refused with, if it was.
    pub fn refused(&self) -> Option<&Status> {
        self.refused.get()
    }

    fn count(&self, pick: fn(&TransportStats) -> &AtomicU64) {
        if let Some(stats) = &self.stats {
            TransportStats::inc(pick(stats));
        }
    }
}

/// `RESOURCE_EXHAUSTED` for a request message over the limit.
pub fn request_message_too_large(e: TooLarge) -> Status {
    Status::resource_exhausted(format!(
        "request message of {} bytes is larger than the server's limit of {} bytes \
         (max-recv-message-size)",
        e.len, e.limit
    ))
}

/// `RESOURCE_EXHAUSTED` for a request body over the limit.
pub fn request_body_too_large(limit: u64) -> Status {
    Status::resource_exhausted(format!(
        "request body is larger than the server's limit of {limit} bytes (max-request-body-size)"
    ))
}

/// `RESOURCE_EXHAUSTED` for a response message over the limit.
pub fn response_message_too_large(e: TooLarge) -> Status {
    Status::resource_exhausted(format!(
        "response message of {} bytes is larger than the server's limit of {} bytes \
         (max-send-message-size)",
        e.len, e.limit
    ))
}

/// A request body, counted and (for gRPC) scanned.
#[derive(Debug)]
pub struct LimitedRequest {
    inner: Body,
    scanner: Option<MessageScanner>,
    seen: u64,
    max_body: u64,
    failed: bool,
    call: Option<Arc<Call>>,
}

impl LimitedRequest {
    /// Wraps `inner`; `scan` is the message limit when the body is gRPC.
    pub fn new(inner: Body, scan: Option<usize>, limits: Limits) -> Self {
        LimitedRequest {
            inner,
            scanner: scan.map(MessageScanner::new),
            seen: 0,
            max_body: limits.max_request_body_size,
            failed: false,
            call: None,
        }
    }

    /// Part of `call`: a refusal is counted in its counters and recorded for its response.
    pub fn within(mut self, call: Arc<Call>) -> Self {
        self.call = Some(call);
        self
    }

    fn count(&self, pick: fn(&TransportStats) -> &AtomicU64) {
        if let Some(call) = &self.call {
            call.count(pick);
        }
    }

    fn check(&mut self, data: &Bytes) -> Result<(), Status> {
        self.seen = self.seen.saturating_add(data.len() as u64);
        if self.seen > self.max_body {
            self.count(|s| &s.refused_request_body_size);
            return Err(request_body_too_large(self.max_body));
        }
        let Some(scanner) = &mut self.scanner else {
            return Ok(());
        };
        scanner.feed(data).map_err(|e| {
            self.count(|s| &s.refused_recv_message_size);
            request_message_too_large(e)
        })
    }
}

impl http_body::Body for LimitedRequest {
    type Data = Bytes;
    type Error = Status;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Status>>> {
        if self.failed {
            return Poll::Ready(None);
        }
        let frame = match ready!(Pin::new(&mut self.inner).poll_frame(cx)) {
            Some(Ok(frame)) => frame,
            other => return Poll::Ready(other),
        };
        if let Some(data) = frame.data_ref()
            && let Err(status) = self.check(data)
        {
            self.failed = true;
            if let Some(call) = &self.call {
                let _ = call.refused.set(status.clone());
            }
            return Poll::Ready(Some(Err(status)));
        }
        Poll::Ready(Some(Ok(frame)))
    }

    fn is_end_stream(&self) -> bool {
        self.failed || self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// Where a [`LimitedResponse`] is.
#[derive(Debug)]
enum Out {
    /// Passing the inner body on.
    Streaming,
    /// The held bytes go out first, then this frame of the inner body.
    Then(Frame<Bytes>),
    /// A message was over the limit: these trailers are the last frame.
    Refused(HeaderMap),
    /// Nothing more.
    Done,
}

/// A gRPC response body whose messages are checked against the send limit.
#[derive(Debug)]
pub struct LimitedResponse {
    inner: Body,
    scanner: MessageScanner,
    /// Bytes received but not yet passed on: the start of a prefix not yet complete.
    held: BytesMut,
    /// Body bytes passed on so far.
    forwarded: u64,
    out: Out,
    /// The call: its request may have been refused (then it must not end OK).
    call: Option<Arc<Call>>,
}

impl LimitedResponse {
    /// Wraps `inner`, refusing messages over `limit` bytes.
    pub fn new(inner: Body, limit: usize) -> Self {
        LimitedResponse {
            inner,
            scanner: MessageScanner::new(limit),
            held: BytesMut::new(),
            forwarded: 0,
            out: Out::Streaming,
            call: None,
        }
    }

    /// Part of `call`: a refused message is counted in its counters, and if its request
    /// was refused, the response ends with that status instead of an OK the handler may
    /// give.
    pub fn within(mut self, call: Arc<Call>) -> Self {
        self.call = Some(call);
        self
    }

    fn request_refused(&self) -> Option<&Status> {
        self.call.as_deref().and_then(Call::refused)
    }

    /// The trailers to end with: `trailers` unless the request was refused and they say
    /// OK (or there are none).
    fn final_trailers(&self, trailers: Option<HeaderMap>) -> Option<HeaderMap> {
        // Most calls were not refused: then the trailers stand as they are, unread.
        let Some(refused) = self.request_refused() else {
            return trailers;
        };
        let ok = trailers
            .as_ref()
            .is_none_or(|t| t.get("grpc-status").is_none_or(|v| v == "0"));
        if !ok {
            return trailers;
        }
        let mut t = trailers.unwrap_or_default();
        t.remove("grpc-status");
        t.remove("grpc-message");
        t.remove("grpc-status-details-bin");
        let _ = refused.add_header(&mut t);
        Some(t)
    }

    /// Takes the first `n` held bytes (at most all of them) to pass on.
    fn release(&mut self, n: u64) -> Option<Bytes> {
        let n = usize::try_from(n)
            .unwrap_or(usize::MAX)
            .min(self.held.len());
        if n == 0 {
            return None;
        }
        self.forwarded += n as u64;
        Some(self.held.split_to(n).freeze())
    }

    /// Looks at a data chunk of the inner body; returns what may be passed on now.
    fn on_data(&mut self, data: Bytes) -> Option<Bytes> {
        match self.scanner.feed(&data) {
            Ok(()) => {
                if self.held.is_empty() && self.scanner.checked_up_to() == self.scanner.offset() {
                    self.forwarded += data.len() as u64;
                    return Some(data);
                }
                self.held.extend_from_slice(&data);
                self.release(self.scanner.checked_up_to().saturating_sub(self.forwarded))
            }
            Err(e) => {
                if let Some(call) = &self.call {
                    call.count(|s| &s.refused_send_message_size);
                }
                tracing::warn!(
                    len = e.len,
                    limit = e.limit,
                    "response message over --max-send-message-size: not sent"
                );
                let status = response_message_too_large(e);
                let mut trailers = HeaderMap::new();
                // A status of our own making always encodes.
                let _ = status.add_header(&mut trailers);
                self.out = Out::Refused(trailers);
                // The rest of the inner body is never polled again: release its stream.
                self.inner = Body::empty();
                self.held.extend_from_slice(&data);
                let before = e.start.saturating_sub(self.forwarded);
                let out = self.release(before);
                self.held.clear();
                out
            }
        }
    }
}

impl http_body::Body for LimitedResponse {
    type Data = Bytes;
    type Error = Status;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Status>>> {
        let this = &mut *self;
        loop {
            // The common case first: most polls are made while streaming, and moving the
            // enum out and back (it can hold a frame) cost a copy of it on every poll.
            if !matches!(this.out, Out::Streaming) {
                match std::mem::replace(&mut this.out, Out::Streaming) {
                    Out::Streaming => {}
                    Out::Then(frame) => return Poll::Ready(Some(Ok(frame))),
                    Out::Refused(trailers) => {
                        this.out = Out::Done;
                        return Poll::Ready(Some(Ok(Frame::trailers(trailers))));
                    }
                    Out::Done => {
                        this.out = Out::Done;
                        return Poll::Ready(None);
                    }
                }
            }
            match ready!(Pin::new(&mut this.inner).poll_frame(cx)) {
                Some(Ok(frame)) => match frame.into_data() {
                    Ok(data) => {
                        if let Some(out) = this.on_data(data) {
                            return Poll::Ready(Some(Ok(Frame::data(out))));
                        }
                    }
                    Err(frame) => {
                        let frame = match frame.into_trailers() {
                            Ok(t) => this
                                .final_trailers(Some(t))
                                .map_or_else(|| Frame::trailers(HeaderMap::new()), Frame::trailers),
                            Err(other) => other,
                        };
                        // Trailers: whatever is held (a malformed tail) goes first.
                        match this.release(u64::MAX) {
                            Some(held) => {
                                this.out = Out::Then(frame);
                                return Poll::Ready(Some(Ok(Frame::data(held))));
                            }
                            None => return Poll::Ready(Some(Ok(frame))),
                        }
                    }
                },
                Some(Err(status)) => return Poll::Ready(Some(Err(status))),
                None => {
                    this.out = match this.final_trailers(None) {
                        Some(t) => Out::Refused(t),
                        None => Out::Done,
                    };
                    if let Some(held) = this.release(u64::MAX) {
                        return Poll::Ready(Some(Ok(Frame::data(held))));
                    }
                }
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        match self.out {
            Out::Done => true,
            Out::Streaming => {
                self.held.is_empty()
                    && self.inner.is_end_stream()
                    && self.request_refused().is_none()
            }
            Out::Then(_) | Out::Refused(_) => false,
        }
    }

    fn size_hint(&self) -> SizeHint {
        // The body may be cut short: never promise a length.
        SizeHint::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::BodyExt;
    use proptest::prelude::*;

    fn message(len: usize, fill: u8) -> Vec<u8> {
        let mut m = vec![0];
        m.extend_from_slice(&(len as u32).to_be_bytes());
        m.extend(std::iter::repeat_n(fill, len));
        m
    }

    /// A body that yields `chunks`, then `trailers`.
    fn body(chunks: Vec<Vec<u8>>, trailers: Option<HeaderMap>) -> Body {
        let frames = chunks
            .into_iter()
            .map(|c| Ok::<_, Status>(Frame::data(Bytes::from(c))))
            .chain(trailers.map(|t| Ok(Frame::trailers(t))));
        Body::new(http_body_util::StreamBody::new(tokio_stream::iter(frames)))
    }

    /// Collects a body: its data and its trailers (or the error it ended with).
    async fn collect(
        b: impl http_body::Body<Data = Bytes, Error = Status>,
    ) -> (Vec<u8>, Result<Option<HeaderMap>, Status>) {
        let mut b = std::pin::pin!(b);
        let mut data = Vec::new();
        let mut trailers = None;
        while let Some(frame) = b.frame().await {
            match frame {
                Ok(f) => match f.into_data() {
                    Ok(d) => data.extend_from_slice(&d),
                    Err(f) => trailers = f.into_trailers().ok(),
                },
                Err(e) => return (data, Err(e)),
            }
        }
        (data, Ok(trailers))
    }

    fn ok_trailers() -> HeaderMap {
        let mut t = HeaderMap::new();
        t.insert("grpc-status", http::HeaderValue::from_static("0"));
        t
    }

    fn chunked(bytes: &[u8], cuts: &[usize]) -> Vec<Vec<u8>> {
        let mut out = Vec::new();
        let mut rest = bytes;
        let mut cuts = cuts.iter().copied().cycle();
        while !rest.is_empty() {
            let n = cuts.next().unwrap_or(rest.len()).clamp(1, rest.len());
            out.push(rest[..n].to_vec());
            rest = &rest[n..];
        }
        out
    }

    #[tokio::test]
    async fn request_over_the_message_limit_fails_with_resource_exhausted() {
        let limits = Limits {
            max_recv_message_size: 10,
            ..Limits::default()
        };
        let mut bytes = message(10, 1);
        bytes.extend(message(11, 2));
        let b = LimitedRequest::new(body(vec![bytes], None), Some(10), limits);
        let (_, end) = collect(b).await;
        let e = end.expect_err("over");
        assert_eq!(e.code(), tonic::Code::ResourceExhausted);
        assert!(
            e.message().contains("11 bytes") && e.message().contains("limit of 10 bytes"),
            "{e:?}"
        );
    }

    #[tokio::test]
    async fn request_body_over_its_limit_fails_even_with_small_messages() {
        let limits = Limits {
            max_request_body_size: 20,
            ..Limits::default()
        };
        let chunks = (0..5).map(|_| message(3, 0)).collect();
        let b = LimitedRequest::new(body(chunks, None), Some(100), limits);
        let e = collect(b).await.1.expect_err("over");
        assert_eq!(e.code(), tonic::Code::ResourceExhausted);
        assert!(e.message().contains("max-request-body-size"), "{e:?}");
    }

    #[test]
    fn a_trailers_only_response_stays_one() {
        assert!(LimitedResponse::new(Body::empty(), 10).is_end_stream());
        let b = LimitedResponse::new(body(vec![message(1, 0)], None), 10);
        assert!(!b.is_end_stream());
    }

    #[tokio::test]
    async fn a_refused_request_never_ends_ok() {
        let call = Arc::new(Call::default());
        let limits = Limits {
            max_request_body_size: 6,
            ..Limits::default()
        };
        let req = LimitedRequest::new(body(vec![message(3, 0)], None), Some(10), limits)
            .within(call.clone());
        assert!(collect(req).await.1.is_err());
        // The handler answered one message and OK anyway.
        let res = LimitedResponse::new(body(vec![message(1, 0)], Some(ok_trailers())), 10)
            .within(call.clone());
        let (data, end) = collect(res).await;
        assert_eq!(data, message(1, 0));
        let t = end.expect("trailers").expect("some");
        assert_eq!(t.get("grpc-status").map(|v| v.as_bytes()), Some(&b"8"[..]));
        // No trailers at all: ours are added.
        let res = LimitedResponse::new(body(vec![], None), 10).within(call);
        let t = collect(res).await.1.expect("trailers").expect("some");
        assert_eq!(t.get("grpc-status").map(|v| v.as_bytes()), Some(&b"8"[..]));
    }

    proptest! {
        /// However the response is chunked, the messages under the limit arrive whole and
        /// unchanged, the first one over it and everything after it never leave, and the
        /// body ends with RESOURCE_EXHAUSTED trailers; without one over, the body and its
        /// trailers pass unchanged.
        #[test]
        fn response_cut_only_at_a_message_boundary(
            lens in proptest::collection::vec(0usize..30, 0..8),
            limit in 0usize..30,
            cuts in proptest::collection::vec(1usize..13, 1..10),
        ) {
            let rt = tokio::runtime::Builder::new_current_thread().build().expect("rt");
            let bytes: Vec<u8> = lens.iter().enumerate().flat_map(|(i, &l)| message(l, i as u8)).collect();
            let b = LimitedResponse::new(body(chunked(&bytes, &cuts), Some(ok_trailers())), limit);
            let (data, end) = rt.block_on(collect(b));
            let trailers = end.expect("no body error").expect("trailers");
            match lens.iter().position(|&l| l > limit) {
                None => {
                    prop_assert_eq!(&data, &bytes);
                    prop_assert_eq!(trailers, ok_trailers());
                }
                Some(i) => {
                    let keep: usize = lens[..i].iter().map(|l| l + 5).sum();
                    prop_assert_eq!(&data[..], &bytes[..keep]);
                    prop_assert_eq!(trailers.get("grpc-status").map(|v| v.as_bytes()), Some(&b"8"[..]));
                }
            }
        }
    }
}
