//! One call of the application through the channel: liveness, abort, and A6 retries.
//!
//! - The call counts as an active stream for the keepalive from start to the end of its
//!   response body ([`CallGuard`]).
//! - Its response headers, and every frame of its body, count as bytes received: the
//!   keepalive's `Time` is measured from the last one of any call.
//! - When the core judges the connection lost, the call fails with UNAVAILABLE at once,
//!   before or after its headers: its fetch is dropped (aborted).
//! - A method with a declared [`RetryPolicy`](keepalive::client::RetryPolicy) is retried
//!   per proposal A6: on its retryable codes (UNAVAILABLE by default), at most 5 attempts,
//!   with exponential backoff and jitter, `grpc-retry-pushback-ms` obeyed, and never once
//!   response headers arrived (a trailers-only answer — status in the headers, no
//!   message — has no headers in gRPC's sense and may be retried). The request body is
//!   buffered once and sent again, so a retried call carries the same bytes (the same
//!   idempotency key).

use crate::shared::{Abort, Shared, with_core, with_core_soon};
use crate::task::{Signal, abortable};
use bytes::Bytes;
use http::{HeaderMap, Request, Response};
use http_body::{Body, Frame, SizeHint};
use http_body_util::{BodyExt, Full};
use keepalive::client::{Failure, RetryDecision, RetryState};
use send_wrapper::SendWrapper;
use std::pin::Pin;
use std::rc::{Rc, Weak};
use std::task::{Context, Poll};
use tonic::{Code, Status};
use tower_service::Service;

/// Runs the call `req` on the channel `shared`.
pub(crate) async fn run(
    shared: Rc<Shared>,
    req: Request<tonic::body::Body>,
) -> Result<Response<CallBody>, Status> {
    let path = req.uri().path().to_owned();
    let (parts, body) = req.into_parts();
    let bytes = body
        .collect()
        .await
        .map_err(|e| Status::internal(format!("cannot read the request: {e}")))?
        .to_bytes();
    let guard = CallGuard::start(&shared);
    let mut retry = shared
        .options
        .retry_policy(&path)
        .cloned()
        .map(RetryState::new);
    let mut transport = shared.transport.clone();
    drop(shared);
    loop {
        guard.abort.clear();
        let attempt = transport.call(Request::from_parts(
            parts.clone(),
            tonic::body::Body::new(Full::new(bytes.clone())),
        ));
        let (failure, answer) = match abortable(attempt, guard.abort.clone()).await {
            None => (failure(Code::Unavailable, None), Err(guard.lost())),
            Some(Err(e)) => {
                with_core(&guard.shared, |c, now| c.on_call(now, false));
                let status = Status::unavailable(format!("the request failed: {e}"));
                (failure(Code::Unavailable, None), Err(status))
            }
            Some(Ok(res)) => {
                let answered = !matches!(res.status().as_u16(), 502..=504);
                with_core(&guard.shared, |c, now| c.on_call(now, answered));
                match trailers_only(&res) {
                    // A status before any message: not committed, may be retried.
                    Some((code, pushback)) if code != Code::Ok => {
                        (failure(code, pushback), Ok(res))
                    }
                    // Headers of an answer: committed.
                    _ => return Ok(res.map(|body| CallBody::new(body, guard))),
                }
            }
        };
        let decision = retry
            .as_mut()
            .map(|r| r.on_failure(failure, js_sys::Math::random()));
        match decision {
            Some(RetryDecision::Retry(delay)) => {
                tracing::info!(
                    path,
                    code = failure.code,
                    attempt = retry.as_ref().map_or(0, RetryState::attempts),
                    "call failed; retrying in {delay:?}"
                );
                gloo_timers::future::sleep(delay).await;
                if guard
                    .shared
                    .upgrade()
                    .is_none_or(|s| s.inner.borrow().closed)
                {
                    return Err(Status::cancelled("channel closed"));
                }
            }
            _ => return answer.map(|res| res.map(|body| CallBody::new(body, guard))),
        }
    }
}

fn failure(code: Code, pushback_ms: Option<Option<u64>>) -> Failure {
    Failure {
        code: code as i32,
        headers_received: false,
        pushback_ms,
    }
}

/// The status of a trailers-only response (`grpc-status` in the headers, no message),
/// with the server's `grpc-retry-pushback-ms`; for HTTP errors, the status gRPC maps
/// them to. `None` for a response that starts an answer.
fn trailers_only<B>(res: &Response<B>) -> Option<(Code, Option<Option<u64>>)> {
    let headers: &HeaderMap = res.headers();
    let pushback = headers
        .get("grpc-retry-pushback-ms")
        .map(|v| v.to_str().ok().and_then(|v| v.trim().parse::<u64>().ok()));
    if let Some(status) = headers.get("grpc-status") {
        let code = status
            .to_str()
            .ok()
            .and_then(|s| s.trim().parse::<i32>().ok())
            .map_or(Code::Unknown, Code::from_i32);
        return Some((code, pushback));
    }
    // gRPC's http-grpc-status-mapping.md.
    let code = match res.status().as_u16() {
        200 => return None,
        400 => Code::Internal,
        401 => Code::Unauthenticated,
        403 => Code::PermissionDenied,
        404 => Code::Unimplemented,
        429 | 502..=504 => Code::Unavailable,
        _ => Code::Unknown,
    };
    Some((code, pushback))
}

/// An application call in flight: counted by the core from start to the end (or drop) of
/// its response body; notified when the connection is judged lost.
pub(crate) struct CallGuard {
    shared: Weak<Shared>,
    id: u64,
    abort: Rc<Signal>,
}

impl CallGuard {
    fn start(shared: &Rc<Shared>) -> CallGuard {
        let abort = Rc::new(Signal::default());
        let id = {
            let mut inner = shared.inner.borrow_mut();
            inner.next_call += 1;
            let id = inner.next_call;
            inner.calls.insert(id, Abort::Signal(abort.clone()));
            id
        };
        let weak = Rc::downgrade(shared);
        with_core(&weak, |c, now| c.call_started(now));
        CallGuard {
            shared: weak,
            id,
            abort,
        }
    }

    /// The status of a call cut off because the connection was judged lost.
    fn lost(&self) -> Status {
        let why = self
            .shared
            .upgrade()
            .map_or("channel closed", |s| s.inner.borrow().last_loss);
        Status::unavailable(format!("connection lost ({why})"))
    }
}

impl Drop for CallGuard {
    fn drop(&mut self) {
        let id = self.id;
        if let Some(shared) = self.shared.upgrade()
            && let Ok(mut inner) = shared.inner.try_borrow_mut()
        {
            inner.calls.remove(&id);
        }
        with_core_soon(&self.shared, |c, now| c.call_ended(now));
    }
}

/// The response body of a call: frames pass through; each one is liveness; a lost
/// connection ends it with UNAVAILABLE (and dropping it aborts the fetch).
#[pin_project::pin_project]
pub struct CallBody {
    #[pin]
    inner: tonic_web_wasm_client::ResponseBody,
    // Single-threaded wasm: the guard's Rc never leaves the page's thread.
    guard: SendWrapper<CallGuard>,
    ended: bool,
}

impl CallBody {
    fn new(inner: tonic_web_wasm_client::ResponseBody, guard: CallGuard) -> Self {
        CallBody {
            inner,
            guard: SendWrapper::new(guard),
            ended: false,
        }
    }
}

impl std::fmt::Debug for CallBody {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CallBody")
            .field("ended", &self.ended)
            .finish()
    }
}

impl Body for CallBody {
    type Data = Bytes;
    type Error = Status;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Status>>> {
        let this = self.project();
        if *this.ended {
            return Poll::Ready(None);
        }
        if this.guard.abort.is_set() {
            *this.ended = true;
            return Poll::Ready(Some(Err(this.guard.lost())));
        }
        this.guard.abort.register(cx.waker());
        match this.inner.poll_frame(cx) {
            Poll::Ready(Some(Ok(frame))) => {
                with_core(&this.guard.shared, |c, now| c.on_bytes(now));
                Poll::Ready(Some(Ok(frame)))
            }
            Poll::Ready(Some(Err(e))) => {
                *this.ended = true;
                with_core(&this.guard.shared, |c, now| c.on_call(now, false));
                Poll::Ready(Some(Err(Status::unavailable(format!(
                    "the response broke off: {e}"
                )))))
            }
            Poll::Ready(None) => {
                *this.ended = true;
                Poll::Ready(None)
            }
            Poll::Pending => Poll::Pending,
        }
    }

    fn is_end_stream(&self) -> bool {
        self.ended || self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}
