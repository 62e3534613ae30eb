//! The channel's session (`keepalive.v1.Session`) and its heartbeats.
//!
//! A session is the identity the server judges heartbeats by and binds resume tokens to.
//! The channel opens one when it first needs it (a heartbeat, a kept-open stream), one at
//! a time (concurrent callers wait for the same one), and forgets it when the server says
//! it does not know it (it restarted): the next need opens a new one.

use crate::shared::{Shared, with_core};
use crate::status::{CallError, classify};
use crate::time;
use keepalive::client::HeartbeatOutcome;
use keepalive_proto::v1::{HeartbeatRequest, OpenSessionRequest};
use std::rc::Weak;
use std::task::{Poll, Waker};
use tonic::{Code, Status};

/// A server session.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Session {
    /// Its id.
    pub id: String,
}

/// Where the channel's session is.
#[derive(Debug)]
pub(crate) enum SessionState {
    None,
    Opening(Vec<Waker>),
    Open(Session),
}

/// The server's message for a session it does not know.
pub const UNKNOWN_SESSION: &str = "unknown session";

/// Returns the session, opening one if needed (one at a time: concurrent callers wait).
pub(crate) async fn ensure_session(weak: &Weak<Shared>) -> Result<Session, Status> {
    loop {
        let open = {
            let shared = weak
                .upgrade()
                .ok_or_else(|| Status::cancelled("channel closed"))?;
            let mut inner = shared.inner.borrow_mut();
            match &inner.session {
                SessionState::Open(s) => return Ok(s.clone()),
                SessionState::Opening(_) => false,
                SessionState::None => {
                    inner.session = SessionState::Opening(Vec::new());
                    true
                }
            }
        };
        if !open {
            std::future::poll_fn(|cx| {
                let Some(shared) = weak.upgrade() else {
                    return Poll::Ready(());
                };
                let mut inner = shared.inner.borrow_mut();
                match &mut inner.session {
                    SessionState::Opening(waiters) => {
                        waiters.push(cx.waker().clone());
                        Poll::Pending
                    }
                    _ => Poll::Ready(()),
                }
            })
            .await;
            continue;
        }
        let guard = OpeningGuard(weak.clone());
        let mut api = weak
            .upgrade()
            .ok_or_else(|| Status::cancelled("channel closed"))?
            .session_api();
        let result = api.open_session(OpenSessionRequest {}).await;
        std::mem::forget(guard);
        let shared = weak
            .upgrade()
            .ok_or_else(|| Status::cancelled("channel closed"))?;
        let mut inner = shared.inner.borrow_mut();
        let waiters = match std::mem::replace(&mut inner.session, SessionState::None) {
            SessionState::Opening(w) => w,
            _ => Vec::new(),
        };
        let out = result.map(|r| {
            let s = Session {
                id: r.into_inner().session_id,
            };
            inner.session = SessionState::Open(s.clone());
            tracing::info!(session = %s.id, "session opened");
            s
        });
        drop(inner);
        waiters.into_iter().for_each(Waker::wake);
        return out;
    }
}

/// Forgets session `id` (the server does not know it).
pub(crate) fn forget(weak: &Weak<Shared>, id: &str) {
    if let Some(shared) = weak.upgrade() {
        let mut inner = shared.inner.borrow_mut();
        if matches!(&inner.session, SessionState::Open(s) if s.id == id) {
            inner.session = SessionState::None;
        }
    }
}

/// Resets "opening" if the task opening a session is dropped (aborted) midway.
struct OpeningGuard(Weak<Shared>);

impl Drop for OpeningGuard {
    fn drop(&mut self) {
        if let Some(shared) = self.0.upgrade()
            && let Ok(mut inner) = shared.inner.try_borrow_mut()
            && let SessionState::Opening(waiters) =
                std::mem::replace(&mut inner.session, SessionState::None)
        {
            waiters.into_iter().for_each(Waker::wake);
        }
    }
}

/// One heartbeat call (opening the session first if needed), its outcome fed to the core.
pub(crate) async fn heartbeat(weak: Weak<Shared>, seq: u64) {
    let outcome = match ensure_session(&weak).await {
        Err(status) => outcome_of(&weak, "", &status),
        Ok(session) => {
            let Some(mut api) = weak.upgrade().map(|s| s.session_api()) else {
                return;
            };
            let req = HeartbeatRequest {
                session_id: session.id.clone(),
                sequence: seq,
                client_send_time_ms: time::wall_ms(),
            };
            match api.heartbeat(req).await {
                Ok(r) => {
                    crate::shared::note_server(&weak, &r.get_ref().server, |s| &mut s.heartbeat);
                    HeartbeatOutcome::Answered
                }
                Err(status) => outcome_of(&weak, &session.id, &status),
            }
        }
    };
    if let Some(shared) = weak.upgrade() {
        shared.inner.borrow_mut().heartbeats.remove(&seq);
    }
    with_core(&weak, |core, now| core.on_heartbeat(now, seq, outcome));
}

/// Whether `status` refuses the session itself (see [`crate::stream::refused_session`]).
pub fn session_refused(status: &Status) -> bool {
    match status.code() {
        Code::Unauthenticated => true,
        Code::NotFound => status.message() == UNKNOWN_SESSION,
        _ => false,
    }
}

fn outcome_of(weak: &Weak<Shared>, session: &str, status: &Status) -> HeartbeatOutcome {
    match classify(status) {
        CallError::Answered(Code::ResourceExhausted) if status.message() == "too_many_pings" => {
            HeartbeatOutcome::TooManyPings
        }
        CallError::Answered(_) if session_refused(status) => {
            // The server does not take the session (it restarted, the id expired): open a
            // new one next time.
            forget(weak, session);
            HeartbeatOutcome::Rejected
        }
        CallError::Answered(_) => HeartbeatOutcome::Rejected,
        CallError::Failed => HeartbeatOutcome::Failed,
    }
}
