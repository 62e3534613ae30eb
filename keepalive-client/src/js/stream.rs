//! Kept-open streams whose calls JavaScript makes (connect-es): the same resume, session
//! and end handling as a Rust stream ([`crate::stream`]), with the call's messages
//! reported by JavaScript through a [`JsStreamCall`].

use super::objects::{self, set};
use crate::stream::{self, CallCtx, LocalFuture, StreamRunner, is_transport_failure};
use crate::task::Signal;
use crate::{Channel, KeepOpen};
use js_sys::{Function, Object};
use keepalive_proto::v1::ResumeRequest;
use std::cell::RefCell;
use std::rc::Rc;
use std::time::Duration;
use tonic::{Code, Status};
use wasm_bindgen::prelude::*;

/// Keeps a stream open whose calls `open(resume, call)` makes.
pub(crate) fn keep_open(
    channel: &Channel,
    open: Function,
    after: Option<u64>,
    log_id: Option<String>,
) -> JsStream {
    let keep = channel.add_stream(Rc::new(JsRunner { open }), after, log_id);
    JsStream { keep }
}

struct JsRunner {
    open: Function,
}

impl StreamRunner for JsRunner {
    fn run(self: Rc<Self>, ctx: CallCtx, resume: ResumeRequest) -> LocalFuture<()> {
        Box::pin(run(self, ctx, resume))
    }
}

/// How JavaScript said one call ended.
#[derive(Debug)]
enum Outcome {
    /// Reported to the core already (a GoAway, a lost connection, a completed stream).
    Reported,
    /// The call failed with this status (the runner decides what it means).
    Failed(Status),
}

/// What a call and its JavaScript side share.
struct CallState {
    ctx: Rc<CallCtx>,
    outcome: RefCell<Option<Outcome>>,
    done: Signal,
    abort: RefCell<Option<Function>>,
}

impl CallState {
    fn end(&self, outcome: Outcome) -> bool {
        let mut slot = self.outcome.borrow_mut();
        if slot.is_some() {
            return false;
        }
        *slot = Some(outcome);
        self.done.notify();
        true
    }

    fn ended(&self) -> bool {
        self.outcome.borrow().is_some()
    }
}

/// Aborts the JavaScript call when the core aborts this one (the runner's future is
/// dropped before JavaScript reported an end).
struct AbortOnDrop(Rc<CallState>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        if !self.0.ended()
            && let Some(f) = self.0.abort.borrow_mut().take()
        {
            objects::call0(&f);
        }
    }
}

async fn run(runner: Rc<JsRunner>, ctx: CallCtx, mut resume: ResumeRequest) {
    let ctx = Rc::new(ctx);
    for attempt in 0..2 {
        let Some(session) = ctx.join_session(&mut resume).await else {
            return;
        };
        let state = Rc::new(CallState {
            ctx: ctx.clone(),
            outcome: RefCell::new(None),
            done: Signal::default(),
            abort: RefCell::new(None),
        });
        let guard = AbortOnDrop(state.clone());
        let call = JsStreamCall {
            state: state.clone(),
        };
        if let Err(e) =
            runner
                .open
                .call2(&JsValue::NULL, &resume_object(&resume).into(), &call.into())
        {
            tracing::error!("keepOpen's opener threw: {e:?}");
            return ctx.finished(Err(Status::internal(format!("the opener threw: {e:?}"))));
        }
        state.done.wait().await;
        drop(guard);
        let outcome = state.outcome.borrow_mut().take();
        match outcome {
            None | Some(Outcome::Reported) => return,
            Some(Outcome::Failed(status)) if attempt == 0 && stream::refused_session(&status) => {
                tracing::info!("the server forgot session {session}: opening a new one");
                ctx.forget_session(&session);
                resume.resume_token.clear();
            }
            Some(Outcome::Failed(status)) if attempt == 0 && stream::refused_token(&status) => {
                resume.resume_token.clear();
            }
            Some(Outcome::Failed(status)) if is_transport_failure(&status) => return ctx.lost(),
            Some(Outcome::Failed(status)) => return ctx.finished(Err(status)),
        }
    }
    ctx.lost();
}

/// The resume point as a JS object (`afterSequence` a BigInt, as protobuf-es has uint64).
fn resume_object(r: &ResumeRequest) -> Object {
    let o = Object::new();
    set(&o, "sessionId", r.session_id.as_str());
    if let Some(after) = r.after_sequence {
        set(&o, "afterSequence", js_sys::BigInt::from(after));
    }
    set(&o, "resumeToken", r.resume_token.as_str());
    set(&o, "logId", r.log_id.as_str());
    set(&o, "streamKey", r.stream_key.as_str());
    o
}

/// One call of a kept-open stream, as JavaScript reports it. Calls after the call ended
/// (or after the channel aborted it) are ignored.
#[wasm_bindgen(js_name = KeepaliveStreamCall)]
pub struct JsStreamCall {
    state: Rc<CallState>,
}

impl std::fmt::Debug for JsStreamCall {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JsStreamCall")
            .field("ended", &self.state.ended())
            .finish()
    }
}

#[wasm_bindgen(js_class = KeepaliveStreamCall)]
impl JsStreamCall {
    /// The Welcome: where the stream starts, the server's heartbeat interval, the resume
    /// token and the log.
    pub fn welcome(
        &self,
        next_sequence: u64,
        stream_heartbeat_interval_ms: f64,
        resume_token: String,
        log_id: String,
        server: Option<String>,
    ) {
        if self.state.ended() {
            return;
        }
        if let Some(server) = server {
            crate::shared::note_server(&self.state.ctx.shared, &server, |s| &mut s.stream);
        }
        self.state.ctx.welcome(&keepalive::client::Welcome {
            next_sequence,
            stream_heartbeat_interval: Some(Duration::from_secs_f64(
                stream_heartbeat_interval_ms.max(0.0) / 1000.0,
            )),
            resume_token,
            log_id,
        });
    }

    /// An event with `sequence` arrived: `true` to deliver it to the application, `false`
    /// when it was delivered before (or the call is stale).
    pub fn event(&self, sequence: u64) -> bool {
        !self.state.ended() && self.state.ctx.event(sequence)
    }

    /// A StreamHeartbeat (or any other message) arrived.
    pub fn heartbeat(&self) {
        if !self.state.ended() {
            self.state.ctx.message();
        }
    }

    /// A Gap: `missed` events from `from` are gone.
    pub fn gap(&self, from: u64, missed: u64) {
        if !self.state.ended() {
            self.state.ctx.gap(from, missed);
        }
    }

    /// A GoAway: the server ends the stream on purpose; it is reopened at once.
    #[wasm_bindgen(js_name = goAway)]
    pub fn go_away(&self, resume_token: String, reason: String) {
        if self.state.end(Outcome::Reported) {
            self.state.ctx.go_away(&resume_token, &reason);
        }
    }

    /// The stream completed with status OK (without a GoAway): it ends for good.
    pub fn completed(&self) {
        if self.state.end(Outcome::Reported) {
            self.state.ctx.finished(Ok(()));
        }
    }

    /// The call failed with gRPC status `code` and `message` (a network failure is
    /// UNAVAILABLE): the channel decides whether the connection is lost, the stream was
    /// refused, or the session must be opened again.
    pub fn failed(&self, code: i32, message: String) {
        self.state
            .end(Outcome::Failed(Status::new(Code::from_i32(code), message)));
    }

    /// `f()` is called if the channel aborts this call (the connection is lost, the stream
    /// closed): cancel the fetch then.
    #[wasm_bindgen(js_name = onAbort)]
    pub fn on_abort(&self, f: super::AbortCallback) {
        *self.state.abort.borrow_mut() = Some(f.unchecked_into());
    }
}

/// A stream the channel keeps open for JavaScript.
#[wasm_bindgen(js_name = KeepaliveStream)]
#[derive(Debug)]
pub struct JsStream {
    keep: KeepOpen,
}

#[wasm_bindgen(js_class = KeepaliveStream)]
impl JsStream {
    /// Stops keeping it open.
    pub fn close(&self) {
        self.keep.close();
    }

    /// The last sequence delivered.
    pub fn delivered(&self) -> Option<u64> {
        self.keep.delivered()
    }

    /// Whether the channel still keeps it open.
    #[wasm_bindgen(js_name = isOpen)]
    pub fn is_open(&self) -> bool {
        self.keep.is_open()
    }

    /// `f(end)` once the server ends the stream for good: `undefined` when it completed,
    /// `{code, message}` when it refused it.
    #[wasm_bindgen(js_name = onEnd)]
    pub fn on_end(&self, f: super::EndCallback) {
        let f: Function = f.unchecked_into();
        self.keep.on_end(move |end| {
            let arg = match end {
                Ok(()) => JsValue::UNDEFINED,
                Err(status) => {
                    let o = Object::new();
                    set(&o, "code", status.code() as i32);
                    set(&o, "message", status.message());
                    o.into()
                }
            };
            objects::call(&f, &arg);
        });
    }
}
