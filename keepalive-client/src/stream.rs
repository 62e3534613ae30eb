//! One call of a kept-open stream: open it with the resume point, feed its messages to the
//! core, and tell the core how it ended.
//!
//! The core decides when a stream's call opens (and after what it resumes); a
//! [`StreamRunner`] knows how to make that call — in Rust, the application's opener over
//! the channel ([`Typed`]); in JavaScript, a connect-es call (the `js` module). Both report
//! the same inputs through [`CallCtx`].
//!
//! How a call ends decides what happens next:
//! - a GoAway: reopened at once, resuming (no backoff);
//! - status OK without a GoAway: the stream is complete (a finite stream) — finished,
//!   not reopened, and the connection is fine;
//! - an application error from the server (NOT_FOUND, PERMISSION_DENIED, …): finished
//!   with that error, not reopened;
//! - a transport failure (UNAVAILABLE, a broken body, INTERNAL, UNKNOWN, …): the
//!   connection is lost: backoff, then reopened, resuming.
//!
//! The session is the channel's: a stream opens one if there is none, and opens a new one
//! once when the server forgot it (NOT_FOUND `unknown session`); a resume token the server
//! refuses (PERMISSION_DENIED) is dropped once, resuming after the last delivered event
//! without it.

use crate::session;
use crate::shared::{Shared, with_core};
use keepalive::client::{CallId, Delivery, StreamId, Welcome};
use keepalive_proto::resume::{Frame, ResumableMessage, Sequenced};
use keepalive_proto::v1::ResumeRequest;
use std::future::Future;
use std::pin::Pin;
use std::rc::{Rc, Weak};
use std::time::Duration;
use tonic::{Code, Status};

/// A boxed local future.
pub type LocalFuture<T> = Pin<Box<dyn Future<Output = T>>>;

/// Makes one call of a kept-open stream.
pub(crate) trait StreamRunner {
    fn run(self: Rc<Self>, ctx: CallCtx, resume: ResumeRequest) -> LocalFuture<()>;
}

/// Whether a failed stream call means the connection is lost (else the server refused
/// the stream: it is finished with that status).
pub fn is_transport_failure(status: &Status) -> bool {
    matches!(
        status.code(),
        Code::Unavailable
            | Code::Unknown
            | Code::Internal
            | Code::DeadlineExceeded
            | Code::Cancelled
            | Code::Aborted
            | Code::DataLoss
            | Code::ResourceExhausted
    )
}

/// One call of one stream, as the core knows it.
pub(crate) struct CallCtx {
    pub shared: Weak<Shared>,
    pub stream: StreamId,
    pub call: CallId,
}

impl CallCtx {
    /// The session to open the stream in.
    /// The channel's session, put into `resume` for the next call; `None` (the stream
    /// is reported lost, to be retried after the backoff) when none can be opened.
    pub async fn join_session(&self, resume: &mut ResumeRequest) -> Option<String> {
        match session::ensure_session(&self.shared).await {
            Ok(s) => {
                resume.session_id.clone_from(&s.id);
                Some(s.id)
            }
            Err(status) => {
                tracing::info!("opening a session failed: {status}");
                self.lost();
                None
            }
        }
    }

    pub fn forget_session(&self, id: &str) {
        session::forget(&self.shared, id);
    }

    pub fn welcome(&self, w: &Welcome) {
        with_core(&self.shared, |c, now| {
            c.on_welcome(now, self.stream, self.call, w)
        });
    }

    /// An event arrived: whether to deliver it.
    pub fn event(&self, seq: u64) -> bool {
        let d = with_core(&self.shared, |c, now| {
            c.on_event(now, self.stream, self.call, seq)
        });
        matches!(
            d,
            Some(Delivery::Deliver | Delivery::DeliverAfterGap { .. })
        )
    }

    pub fn gap(&self, from: u64, missed: u64) {
        with_core(&self.shared, |c, now| {
            c.on_gap(now, self.stream, self.call, from, missed)
        });
    }

    pub fn message(&self) {
        with_core(&self.shared, |c, now| {
            c.on_stream_message(now, self.stream, self.call)
        });
    }

    pub fn go_away(&self, token: &str, reason: &str) {
        self.forget_call();
        with_core(&self.shared, |c, now| {
            c.on_go_away(now, self.stream, self.call, token, reason)
        });
    }

    /// The call failed in transport: the connection is lost.
    pub fn lost(&self) {
        self.forget_call();
        with_core(&self.shared, |c, now| {
            c.on_stream_end(now, self.stream, self.call)
        });
    }

    /// The server ended the stream for good, with `end`.
    pub fn finished(&self, end: Result<(), Status>) {
        self.forget_call();
        let current = with_core(&self.shared, |c, now| {
            let current = c.open_call(self.stream) == Some(self.call);
            c.on_stream_finished(now, self.stream, self.call);
            current
        });
        if current != Some(true) {
            return;
        }
        let listeners = self
            .shared
            .upgrade()
            .and_then(|s| s.inner.borrow_mut().ends.remove(&self.stream))
            .unwrap_or_default();
        for l in listeners {
            l(&end);
        }
    }

    fn forget_call(&self) {
        if let Some(shared) = self.shared.upgrade() {
            let mut inner = shared.inner.borrow_mut();
            if inner
                .stream_calls
                .get(&self.stream)
                .is_some_and(|(c, _)| *c == self.call)
            {
                inner.stream_calls.remove(&self.stream);
            }
        }
    }
}

/// The core's view of a Welcome.
pub fn welcome(w: keepalive_proto::v1::Welcome) -> Welcome {
    Welcome {
        next_sequence: w.next_sequence,
        stream_heartbeat_interval: Some(Duration::from_millis(w.stream_heartbeat_interval_ms)),
        resume_token: w.resume_token,
        log_id: w.log_id,
    }
}

/// Opens one call of a stream with the opener.
pub(crate) type Opener<M> =
    Rc<dyn Fn(crate::Channel, ResumeRequest) -> LocalFuture<Result<tonic::Streaming<M>, Status>>>;

/// A Rust stream: the application's opener, and where its events go.
pub(crate) struct Typed<M: ResumableMessage> {
    pub opener: Opener<M>,
    pub sink: Rc<dyn Fn(M::Event)>,
}

impl<M: ResumableMessage> StreamRunner for Typed<M> {
    fn run(self: Rc<Self>, ctx: CallCtx, resume: ResumeRequest) -> LocalFuture<()> {
        Box::pin(run_typed(self, ctx, resume))
    }
}

async fn run_typed<M: ResumableMessage>(
    typed: Rc<Typed<M>>,
    ctx: CallCtx,
    mut resume: ResumeRequest,
) {
    let mut stream = None;
    for attempt in 0..2 {
        let Some(session) = ctx.join_session(&mut resume).await else {
            return;
        };
        let Some(channel) = ctx.shared.upgrade().map(|shared| crate::Channel { shared }) else {
            return;
        };
        match (typed.opener)(channel, resume.clone()).await {
            Ok(s) => {
                stream = Some(s);
                break;
            }
            Err(status) if attempt == 0 && refused_session(&status) => {
                tracing::info!("the server forgot session {session}: opening a new one");
                ctx.forget_session(&session);
                resume.resume_token.clear();
            }
            Err(status) if attempt == 0 && refused_token(&status) => {
                tracing::info!(
                    "resume token refused ({}); resuming without it",
                    status.message()
                );
                resume.resume_token.clear();
            }
            Err(status) => return end_with(&ctx, status),
        }
    }
    let Some(mut stream) = stream else {
        return ctx.lost();
    };
    loop {
        match stream.message().await {
            Ok(Some(msg)) => match msg.into_frame() {
                Some(Frame::Welcome(w)) => {
                    crate::shared::note_server(&ctx.shared, &w.server, |s| &mut s.stream);
                    ctx.welcome(&welcome(w));
                }
                Some(Frame::Event(e)) => {
                    if ctx.event(e.sequence()) {
                        (typed.sink)(e);
                    }
                }
                Some(Frame::Heartbeat(_)) | None => ctx.message(),
                Some(Frame::Gap(g)) => ctx.gap(g.from_sequence, g.missed),
                Some(Frame::GoAway(g)) => {
                    tracing::info!("stream go-away ({}): resuming at once", g.reason);
                    return ctx.go_away(&g.resume_token, &g.reason);
                }
            },
            Ok(None) => return ctx.finished(Ok(())),
            Err(status) => return end_with(&ctx, status),
        }
    }
}

/// The server does not take the session: UNAUTHENTICATED (its id is not valid there: a
/// restart with another key, a forged or expired id), or NOT_FOUND `unknown session`
/// (servers before signed ids). A new session is opened.
pub fn refused_session(status: &Status) -> bool {
    session::session_refused(status)
}

/// PERMISSION_DENIED for the resume token (of another session, or an old one).
pub fn refused_token(status: &Status) -> bool {
    status.code() == Code::PermissionDenied && status.message().contains("resume token")
}

/// A failed call: lost (transport) or finished (the server refused the stream).
fn end_with(ctx: &CallCtx, status: Status) {
    if is_transport_failure(&status) {
        tracing::info!("stream call failed: {status}");
        ctx.lost();
    } else {
        tracing::info!("the server refused the stream: {status}");
        ctx.finished(Err(status));
    }
}
