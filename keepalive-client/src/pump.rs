//! The action pump: carries out what the core asks (open or abort a stream's call, send or
//! abort a heartbeat), aborts the application's calls when the core judges the connection
//! lost, and hands the core's events to the listeners.
//!
//! Calls are started as cancellable tasks ([`crate::task::abortable`]): aborting one drops
//! its future, which drops the fetch.

use crate::session::heartbeat;
use crate::shared::{Abort, Shared, Stats};
use crate::stream::CallCtx;
use crate::task::{Signal, abortable};
use crate::time;
use keepalive::client::{ClientAction, ClientEvent, ConnectivityState};
use keepalive_proto::v1::ResumeRequest;
use std::rc::Rc;

/// Carries out the core's actions and delivers its events; call after every input.
pub(crate) fn pump(shared: &Rc<Shared>) {
    loop {
        let (actions, events) = {
            let Ok(mut inner) = shared.inner.try_borrow_mut() else {
                return;
            };
            let actions: Vec<ClientAction> =
                std::iter::from_fn(|| inner.core.poll_action()).collect();
            let events: Vec<ClientEvent> = std::iter::from_fn(|| inner.core.poll_event()).collect();
            (actions, events)
        };
        if actions.is_empty() && events.is_empty() {
            break;
        }
        for action in actions {
            execute(shared, action);
        }
        dispatch(shared, &events);
    }
    let (stats, listeners) = {
        let Ok(mut inner) = shared.inner.try_borrow_mut() else {
            return;
        };
        let stats: Stats = inner.stats();
        let changed = inner.last_stats != Some(stats);
        inner.last_stats = Some(stats);
        let listeners = if changed {
            inner.listeners.stats.clone()
        } else {
            Vec::new()
        };
        (stats, listeners)
    };
    shared.timer.notify();
    for l in listeners {
        l(&stats);
    }
}

fn dispatch(shared: &Rc<Shared>, events: &[ClientEvent]) {
    if events.is_empty() {
        return;
    }
    let mut callbacks = Vec::new();
    let (timeline, state_listeners, info) = {
        let mut inner = shared.inner.borrow_mut();
        for e in events {
            let lost = match e {
                ClientEvent::ConnectionLost { reason, .. } => Some(reason.as_str()),
                ClientEvent::StateChanged {
                    to: ConnectivityState::Shutdown,
                    ..
                } => Some("channel closed"),
                _ => None,
            };
            if let Some(reason) = lost {
                // Every call of the application in flight fails with UNAVAILABLE now.
                inner.last_loss = reason;
                for abort in inner.calls.values() {
                    match abort {
                        Abort::Signal(signal) => signal.notify(),
                        Abort::Callback(f) => callbacks.push(f.clone()),
                    }
                }
            }
        }
        (
            inner.listeners.timeline.clone(),
            inner.listeners.state.clone(),
            inner.state_info(),
        )
    };
    // JavaScript runs with no borrow held: it may call back into the channel.
    for f in callbacks {
        f();
    }
    let wall = time::wall_ms();
    for e in events {
        match e {
            ClientEvent::StateChanged { from, to } => {
                tracing::info!("connectivity {from} → {to}");
                for l in &state_listeners {
                    l(&info);
                }
            }
            ClientEvent::ConnectionLost { reason, retry_in } => {
                tracing::warn!(
                    "connection lost ({}); retry in {retry_in:?}",
                    reason.as_str()
                );
            }
            ClientEvent::Gap { from, missed, .. } => {
                tracing::warn!("gap: {missed} events from {from} are gone");
            }
            ClientEvent::TooManyPings { keepalive_time } => {
                tracing::warn!("server said too_many_pings; keepalive time now {keepalive_time:?}");
            }
            _ => tracing::debug!("{e:?}"),
        }
        for l in &timeline {
            l(wall, e);
        }
    }
}

fn execute(shared: &Rc<Shared>, action: ClientAction) {
    match action {
        ClientAction::OpenStream {
            stream,
            call,
            resume_after,
            resume_token,
            log_id,
        } => {
            let abort = Rc::new(Signal::default());
            let runner = {
                let mut inner = shared.inner.borrow_mut();
                inner.stream_calls.insert(stream, (call, abort.clone()));
                inner.runners.get(&stream).cloned()
            };
            let Some(runner) = runner else { return };
            let ctx = CallCtx {
                shared: Rc::downgrade(shared),
                stream,
                call,
            };
            let resume = ResumeRequest {
                session_id: String::new(),
                after_sequence: resume_after,
                resume_token: resume_token.unwrap_or_default(),
                log_id: log_id.unwrap_or_default(),
                // The same across this stream's reconnects: a newer call of it fences
                // an older one the server may still hold.
                stream_key: stream.0.to_string(),
            };
            wasm_bindgen_futures::spawn_local(async move {
                abortable(runner.run(ctx, resume), abort).await;
            });
        }
        ClientAction::AbortStream { stream, call } => {
            let mut inner = shared.inner.borrow_mut();
            if inner
                .stream_calls
                .get(&stream)
                .is_some_and(|(c, _)| *c == call)
                && let Some((_, abort)) = inner.stream_calls.remove(&stream)
            {
                abort.notify();
            }
        }
        ClientAction::SendHeartbeat { seq } => {
            let abort = Rc::new(Signal::default());
            shared
                .inner
                .borrow_mut()
                .heartbeats
                .insert(seq, abort.clone());
            let weak = Rc::downgrade(shared);
            wasm_bindgen_futures::spawn_local(async move {
                abortable(heartbeat(weak, seq), abort).await;
            });
        }
        ClientAction::AbortHeartbeat { seq } => {
            if let Some(abort) = shared.inner.borrow_mut().heartbeats.remove(&seq) {
                abort.notify();
            }
        }
    }
}
