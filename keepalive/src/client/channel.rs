//! The browser channel: keepalive emulation, broken-stream detection, reconnect with
//! backoff and stream resume, as one sans-IO state machine (shared/KEEPALIVE.md §2–§3).
//!
//! A page cannot see HTTP/2 PINGs, so liveness is emulated with messages while the knobs
//! keep grpc-go's meaning:
//!
//! - **Time**: nothing received for `keepalive_time` → send a heartbeat call. Measured
//!   from the last byte received (any stream message or call answer), not from the last
//!   heartbeat sent.
//! - **Timeout**: a heartbeat unanswered for `keepalive_timeout`, or a stream silent for
//!   (the server's stream heartbeat interval + `keepalive_timeout`), means the connection
//!   is dead: abort everything in flight, go TRANSIENT_FAILURE, reconnect with backoff.
//!   So a broken connection is found at most `Time + Timeout` after the last byte.
//! - **PermitWithoutStream**: without an open stream, no heartbeats (unless permitted).
//! - **too_many_pings**: the server refused a heartbeat: double `Time`.
//! - **GoAway** (max stream age, shutdown): reopen that stream at once, without backoff,
//!   resuming after the last delivered event.
//!
//! And what browsers add:
//!
//! - a timer that fires late (a throttled hidden tab, a laptop waking up) must not be
//!   taken as a dead connection: every "dead" deadline is pushed to `now + Timeout` and a
//!   heartbeat checks the connection first;
//! - `offline` → TRANSIENT_FAILURE now; `online`, or the tab becoming visible → retry now.
//!
//! The driver feeds inputs (`on_*`, `online`, `handle_timeout`…) and carries out
//! [`Action`]s; the application reads [`Event`]s and [`ClientStats`]. Each stream call has
//! a [`CallId`]: answers from an aborted call are recognised as stale and ignored.

use super::backoff::Backoff;
use super::connectivity::ConnectivityState;
use super::resume::{Delivery, ResumeCursor};
pub use super::types::{
    Action, CallId, ClientConfig, ClientStats, Event, HeartbeatOutcome, LossReason, StreamId,
    Welcome,
};
use crate::jitter::Rng;
use crate::time::Instant;
use std::collections::VecDeque;
use std::time::Duration;

#[derive(Clone, Debug)]
struct Slot {
    id: StreamId,
    wanted: bool,
    open: Option<CallId>,
    welcomed: bool,
    resuming: bool,
    last_message: Instant,
    cursor: ResumeCursor,
}

#[derive(Clone, Copy, Debug)]
struct Outstanding {
    seq: u64,
    sent_at: Instant,
}

/// The channel state machine.
#[derive(Clone, Debug)]
pub struct Channel {
    config: ClientConfig,
    keepalive_time: Duration,
    stream_heartbeat_interval: Duration,
    state: ConnectivityState,
    state_since: Instant,
    backoff: Backoff,
    rng: Rng,
    retry_at: Option<Instant>,
    connect_deadline: Option<Instant>,
    last_received: Instant,
    heartbeat: Option<Outstanding>,
    /// Calls of the application in flight (unary or streaming, not the channel's own):
    /// they are active streams for the keepalive, as in grpc-go.
    active_calls: u32,
    next_heartbeat: u64,
    next_call: u64,
    slots: Vec<Slot>,
    ever_ready: bool,
    actions: VecDeque<Action>,
    events: VecDeque<Event>,
    stats: ClientStats,
}

impl Channel {
    /// A new channel in IDLE. `seed` seeds the backoff jitter.
    pub fn new(now: Instant, config: ClientConfig, seed: u64) -> Self {
        Channel {
            config,
            keepalive_time: config.keepalive_time,
            stream_heartbeat_interval: config.stream_heartbeat_interval,
            state: ConnectivityState::Idle,
            state_since: now,
            backoff: Backoff::new(config.backoff),
            rng: Rng::new(seed),
            retry_at: None,
            connect_deadline: None,
            last_received: now,
            heartbeat: None,
            active_calls: 0,
            next_heartbeat: 1,
            next_call: 1,
            slots: Vec::new(),
            ever_ready: false,
            actions: VecDeque::new(),
            events: VecDeque::new(),
            stats: ClientStats::default(),
        }
    }

    // ---- observers ------------------------------------------------------------------

    /// The connectivity state.
    pub fn state(&self) -> ConnectivityState {
        self.state
    }

    /// When the current state began.
    pub fn state_since(&self) -> Instant {
        self.state_since
    }

    /// The configuration.
    pub fn config(&self) -> &ClientConfig {
        &self.config
    }

    /// The keepalive time in force (doubled by each `too_many_pings`).
    pub fn keepalive_time(&self) -> Duration {
        self.keepalive_time
    }

    /// The stream heartbeat interval in force (from the server, if it said).
    pub fn stream_heartbeat_interval(&self) -> Duration {
        self.stream_heartbeat_interval
    }

    /// In TRANSIENT_FAILURE: when the next attempt starts.
    pub fn retry_at(&self) -> Option<Instant> {
        self.retry_at
    }

    /// Consecutive failed attempts (the attempt number of the next one, minus one).
    pub fn failures(&self) -> u32 {
        self.backoff.failures()
    }

    /// Counters.
    pub fn stats(&self) -> ClientStats {
        self.stats
    }

    /// The last sequence delivered on `stream`.
    pub fn delivered(&self, stream: StreamId) -> Option<u64> {
        self.slot(stream).and_then(|s| s.cursor.resume_after())
    }

    /// The log `stream`'s sequences belong to (from its last Welcome).
    pub fn log_id(&self, stream: StreamId) -> Option<&str> {
        self.slot(stream).and_then(|s| s.cursor.log_id())
    }

    /// Whether the channel keeps `stream` open (it was not removed, nor finished).
    pub fn wants(&self, stream: StreamId) -> bool {
        self.slot(stream).is_some_and(|s| s.wanted)
    }

    /// The current call of `stream`, if it is open.
    pub fn open_call(&self, stream: StreamId) -> Option<CallId> {
        self.slot(stream).and_then(|s| s.open)
    }

    /// The heartbeat in flight, if any.
    pub fn heartbeat_in_flight(&self) -> Option<u64> {
        self.heartbeat.map(|h| h.seq)
    }

    /// The next thing to do.
    pub fn poll_action(&mut self) -> Option<Action> {
        self.actions.pop_front()
    }

    /// The next event for the application.
    pub fn poll_event(&mut self) -> Option<Event> {
        self.events.pop_front()
    }

    // ---- application inputs -----------------------------------------------------------

    /// Starts connecting if IDLE.
    pub fn connect(&mut self, now: Instant) {
        if self.state == ConnectivityState::Idle {
            self.start_attempt(now);
        }
    }

    /// Adds a stream the channel keeps open (and resumes) until removed.
    pub fn add_stream(&mut self, now: Instant) -> StreamId {
        self.add_stream_after(now, None, None)
    }

    /// Adds a stream that starts after `after` in the log `log_id` (what an earlier
    /// stream of the same events delivered last), instead of "from now on".
    pub fn add_stream_after(
        &mut self,
        now: Instant,
        after: Option<u64>,
        log_id: Option<String>,
    ) -> StreamId {
        let id = StreamId(self.slots.len() as u32);
        self.slots.push(Slot {
            id,
            wanted: true,
            open: None,
            welcomed: false,
            resuming: false,
            last_message: now,
            cursor: ResumeCursor::starting_after(after, log_id),
        });
        match self.state {
            ConnectivityState::Idle => self.start_attempt(now),
            ConnectivityState::Connecting | ConnectivityState::Ready => self.open(now, id),
            ConnectivityState::TransientFailure | ConnectivityState::Shutdown => {}
        }
        id
    }

    /// Stops keeping `stream` open.
    pub fn remove_stream(&mut self, stream: StreamId) {
        let Some(i) = self.index(stream) else { return };
        self.slots[i].wanted = false;
        if let Some(call) = self.slots[i].open.take() {
            self.actions.push_back(Action::AbortStream { stream, call });
        }
    }

    /// Closes the channel: everything in flight is aborted, nothing more happens.
    pub fn close(&mut self, now: Instant) {
        if self.state == ConnectivityState::Shutdown {
            return;
        }
        self.abort_all();
        for s in &mut self.slots {
            s.wanted = false;
        }
        self.retry_at = None;
        self.connect_deadline = None;
        self.set_state(now, ConnectivityState::Shutdown);
    }

    /// The browser went offline: the connection is lost now.
    pub fn offline(&mut self, now: Instant) {
        self.fail(now, LossReason::Offline);
    }

    /// The browser is back online: retry now, skipping the rest of the backoff.
    pub fn online(&mut self, now: Instant) {
        if self.state == ConnectivityState::TransientFailure {
            self.start_attempt(now);
        }
    }

    /// The tab became visible (or hidden). Visible: retry now if failed, or check the
    /// connection at once if it looks READY (timers may have been throttled).
    pub fn visibility(&mut self, now: Instant, visible: bool) {
        if !visible {
            return;
        }
        match self.state {
            ConnectivityState::TransientFailure => self.start_attempt(now),
            ConnectivityState::Ready => self.recheck(now),
            _ => {}
        }
    }

    // ---- network inputs ---------------------------------------------------------------

    fn current(&self, stream: StreamId, call: CallId) -> Option<usize> {
        let i = self.index(stream)?;
        (self.slots[i].open == Some(call)).then_some(i)
    }

    fn received(&mut self, now: Instant, slot: Option<usize>) {
        self.last_received = self.last_received.max(now);
        if let Some(i) = slot {
            self.slots[i].last_message = self.slots[i].last_message.max(now);
        }
    }

    fn connected(&mut self, now: Instant) {
        if self.state == ConnectivityState::Connecting {
            self.backoff.reset();
            self.connect_deadline = None;
            self.ever_ready = true;
            self.set_state(now, ConnectivityState::Ready);
        }
    }

    /// A stream's first message. Returns `false` if the call is stale.
    pub fn on_welcome(
        &mut self,
        now: Instant,
        stream: StreamId,
        call: CallId,
        w: &Welcome,
    ) -> bool {
        let Some(i) = self.current(stream, call) else {
            return false;
        };
        self.received(now, Some(i));
        if let Some(interval) = w.stream_heartbeat_interval.filter(|d| !d.is_zero()) {
            self.stream_heartbeat_interval = interval;
        }
        let slot = &mut self.slots[i];
        slot.welcomed = true;
        if slot
            .cursor
            .on_welcome(w.next_sequence, &w.log_id, &w.resume_token)
        {
            self.events.push_back(Event::LogReset { stream });
        }
        if std::mem::take(&mut slot.resuming) {
            let after = slot.cursor.resume_after();
            self.stats.resumes += 1;
            self.events.push_back(Event::Resumed { stream, after });
        }
        self.connected(now);
        true
    }

    /// An event with sequence `seq` arrived on a stream: deliver it or not.
    pub fn on_event(&mut self, now: Instant, stream: StreamId, call: CallId, seq: u64) -> Delivery {
        let Some(i) = self.current(stream, call) else {
            return Delivery::Stale;
        };
        self.received(now, Some(i));
        let d = self.slots[i].cursor.on_event(seq);
        match d {
            Delivery::Deliver => self.stats.events_delivered += 1,
            Delivery::Duplicate => self.stats.duplicates_dropped += 1,
            Delivery::DeliverAfterGap { from, missed } => {
                self.stats.events_delivered += 1;
                self.report_gap(stream, from, missed);
            }
            Delivery::Stale => {}
        }
        d
    }

    /// The server says events `from .. from + missed` are gone.
    pub fn on_gap(&mut self, now: Instant, stream: StreamId, call: CallId, from: u64, missed: u64) {
        let Some(i) = self.current(stream, call) else {
            return;
        };
        self.received(now, Some(i));
        if let Some(gap) = self.slots[i].cursor.on_gap(from, missed) {
            self.report_gap(stream, gap.from, gap.missed);
        }
    }

    fn report_gap(&mut self, stream: StreamId, from: u64, missed: u64) {
        self.stats.gaps += 1;
        self.stats.events_missed += missed;
        self.events.push_back(Event::Gap {
            stream,
            from,
            missed,
        });
    }

    /// Any other message on a stream (a stream heartbeat).
    pub fn on_stream_message(&mut self, now: Instant, stream: StreamId, call: CallId) {
        if let Some(i) = self.current(stream, call) {
            self.received(now, Some(i));
        }
    }

    /// The server ended the stream on purpose: reopen it at once, resuming.
    pub fn on_go_away(
        &mut self,
        now: Instant,
        stream: StreamId,
        call: CallId,
        resume_token: &str,
        reason: &str,
    ) {
        let Some(i) = self.current(stream, call) else {
            return;
        };
        self.received(now, Some(i));
        self.slots[i].cursor.set_token(resume_token);
        self.slots[i].open = None;
        self.events.push_back(Event::GoAway {
            stream,
            reason: reason.to_owned(),
        });
        if matches!(
            self.state,
            ConnectivityState::Ready | ConnectivityState::Connecting
        ) {
            self.open(now, stream);
        }
    }

    /// The server ended the stream for good: it completed normally (status OK without a
    /// GoAway: a finite stream), or refused it with an application error. The server
    /// answered, so the connection is fine; the stream is not reopened.
    pub fn on_stream_finished(&mut self, now: Instant, stream: StreamId, call: CallId) {
        let Some(i) = self.current(stream, call) else {
            return;
        };
        self.received(now, Some(i));
        self.slots[i].open = None;
        self.slots[i].wanted = false;
        self.events.push_back(Event::StreamFinished { stream });
        self.connected(now);
    }

    /// A stream call failed (a network error, or the body ended without the server's
    /// status): the connection is lost.
    pub fn on_stream_end(&mut self, now: Instant, stream: StreamId, call: CallId) {
        let Some(i) = self.current(stream, call) else {
            return;
        };
        self.slots[i].open = None;
        self.fail(now, LossReason::StreamFailed);
    }

    /// A heartbeat call ended.
    pub fn on_heartbeat(&mut self, now: Instant, seq: u64, outcome: HeartbeatOutcome) {
        let Some(h) = self.heartbeat.filter(|h| h.seq == seq) else {
            return;
        };
        self.heartbeat = None;
        match outcome {
            HeartbeatOutcome::Answered => {
                self.received(now, None);
                let rtt = now - h.sent_at;
                self.stats.heartbeats_answered += 1;
                self.stats.last_rtt = Some(rtt);
                self.events.push_back(Event::HeartbeatRtt { rtt });
                self.connected(now);
            }
            HeartbeatOutcome::TooManyPings => {
                self.received(now, None);
                self.keepalive_time = self.keepalive_time.saturating_mul(2);
                self.stats.too_many_pings += 1;
                self.events.push_back(Event::TooManyPings {
                    keepalive_time: self.keepalive_time,
                });
                self.connected(now);
            }
            HeartbeatOutcome::Rejected => {
                self.received(now, None);
                self.connected(now);
            }
            HeartbeatOutcome::Failed => {
                self.stats.heartbeats_missed += 1;
                self.fail(now, LossReason::HeartbeatFailed);
            }
        }
    }

    /// A call of the application got its answer: `answered` if the server answered (with
    /// any status), `false` on a network error. An answer while in TRANSIENT_FAILURE means
    /// the server is back: the channel tries again now instead of waiting out the backoff.
    pub fn on_call(&mut self, now: Instant, answered: bool) {
        if answered {
            self.received(now, None);
            if self.state == ConnectivityState::TransientFailure {
                self.start_attempt(now);
            }
            self.connected(now);
        } else {
            self.fail(now, LossReason::CallFailed);
        }
    }

    /// Bytes of any call arrived: the connection is alive.
    pub fn on_bytes(&mut self, now: Instant) {
        self.received(now, None);
    }

    /// A call of the application started: with it in flight the keepalive is active (as
    /// an active stream in grpc-go), and it connects an IDLE channel.
    pub fn call_started(&mut self, now: Instant) {
        self.active_calls = self.active_calls.saturating_add(1);
        if self.state == ConnectivityState::Idle {
            self.start_attempt(now);
        }
    }

    /// A call of the application ended (its response finished or was dropped).
    pub fn call_ended(&mut self, _now: Instant) {
        self.active_calls = self.active_calls.saturating_sub(1);
    }

    /// Calls of the application in flight.
    pub fn active_calls(&self) -> u32 {
        self.active_calls
    }

    // ---- timers -----------------------------------------------------------------------

    fn keepalive_active(&self) -> bool {
        self.state == ConnectivityState::Ready
            && (self.config.permit_without_stream
                || self.active_calls > 0
                || self.slots.iter().any(|s| s.open.is_some()))
    }

    fn silence_limit(&self) -> Duration {
        self.stream_heartbeat_interval + self.config.keepalive_timeout
    }

    /// The next moment [`handle_timeout`](Self::handle_timeout) has something to do.
    pub fn poll_timeout(&self) -> Option<Instant> {
        let mut next: Option<Instant> = None;
        let mut consider = |t: Instant| next = Some(next.map_or(t, |n| n.min(t)));
        match self.state {
            ConnectivityState::TransientFailure => {
                if let Some(t) = self.retry_at {
                    consider(t);
                }
            }
            ConnectivityState::Connecting => {
                if let Some(t) = self.connect_deadline {
                    consider(t);
                }
            }
            ConnectivityState::Ready => {
                if let Some(h) = self.heartbeat {
                    consider(h.sent_at + self.config.keepalive_timeout);
                } else if self.keepalive_active() {
                    consider(self.last_received + self.keepalive_time);
                }
                let limit = self.silence_limit();
                // Every open stream, welcomed or not: one reopened after a GoAway that never
                // gets its Welcome must not leave the channel READY forever.
                for s in self.slots.iter().filter(|s| s.open.is_some()) {
                    consider(s.last_message + limit);
                }
            }
            ConnectivityState::Idle | ConnectivityState::Shutdown => {}
        }
        next
    }

    /// Advance to `now`. If the deadline was missed by more than the late-timer threshold
    /// (the page was asleep), nothing is declared dead: the connection is checked first.
    pub fn handle_timeout(&mut self, now: Instant) {
        let Some(due) = self.poll_timeout() else {
            return;
        };
        if now < due {
            return;
        }
        if now - due > self.config.late_timer_threshold {
            match self.state {
                ConnectivityState::Ready => return self.recheck(now),
                ConnectivityState::Connecting => {
                    self.connect_deadline = Some(now + self.config.keepalive_timeout);
                    return;
                }
                _ => {}
            }
        }
        match self.state {
            ConnectivityState::TransientFailure => {
                if self.retry_at.is_some_and(|t| now >= t) {
                    self.start_attempt(now);
                }
            }
            ConnectivityState::Connecting => {
                if self.connect_deadline.is_some_and(|t| now >= t) {
                    self.fail(now, LossReason::ConnectTimeout);
                }
            }
            ConnectivityState::Ready => {
                if let Some(h) = self.heartbeat {
                    if now >= h.sent_at + self.config.keepalive_timeout {
                        self.stats.heartbeats_missed += 1;
                        return self.fail(now, LossReason::HeartbeatTimeout);
                    }
                } else if self.keepalive_active() && now >= self.last_received + self.keepalive_time
                {
                    self.send_heartbeat(now);
                }
                let limit = self.silence_limit();
                if self
                    .slots
                    .iter()
                    .any(|s| s.open.is_some() && now >= s.last_message + limit)
                {
                    self.fail(now, LossReason::StreamSilent);
                }
            }
            ConnectivityState::Idle | ConnectivityState::Shutdown => {}
        }
    }

    /// Checks the connection now instead of trusting old deadlines: every "dead" deadline
    /// moves to `now + Timeout`, and a heartbeat goes out if none is in flight.
    fn recheck(&mut self, now: Instant) {
        let timeout = self.config.keepalive_timeout;
        let floor = now + timeout;
        let limit = self.silence_limit();
        for s in &mut self.slots {
            // last_message + limit >= now + timeout
            let min_last = Instant::from_origin((floor.since_origin()).saturating_sub(limit));
            s.last_message = s.last_message.max(min_last);
        }
        match &mut self.heartbeat {
            Some(h) => h.sent_at = h.sent_at.max(now),
            None => self.send_heartbeat(now),
        }
    }

    // ---- internals --------------------------------------------------------------------

    fn send_heartbeat(&mut self, now: Instant) {
        let seq = self.next_heartbeat;
        self.next_heartbeat += 1;
        self.heartbeat = Some(Outstanding { seq, sent_at: now });
        self.stats.heartbeats_sent += 1;
        self.actions.push_back(Action::SendHeartbeat { seq });
    }

    fn index(&self, stream: StreamId) -> Option<usize> {
        let i = stream.0 as usize;
        (i < self.slots.len()).then_some(i)
    }

    fn slot(&self, stream: StreamId) -> Option<&Slot> {
        self.slots.get(stream.0 as usize)
    }

    fn set_state(&mut self, now: Instant, to: ConnectivityState) {
        if self.state != to {
            let from = self.state;
            self.state = to;
            self.state_since = now;
            self.events.push_back(Event::StateChanged { from, to });
        }
    }

    fn open(&mut self, now: Instant, stream: StreamId) {
        let Some(i) = self.index(stream) else { return };
        let call = CallId(self.next_call);
        self.next_call += 1;
        let slot = &mut self.slots[i];
        debug_assert!(slot.open.is_none(), "two calls for one stream");
        slot.open = Some(call);
        slot.welcomed = false;
        slot.last_message = now;
        slot.resuming = slot.cursor.resume_after().is_some();
        self.actions.push_back(Action::OpenStream {
            stream,
            call,
            resume_after: slot.cursor.resume_after(),
            resume_token: slot.cursor.token().map(str::to_owned),
            log_id: slot.cursor.log_id().map(str::to_owned),
        });
    }

    fn start_attempt(&mut self, now: Instant) {
        if self.ever_ready && self.state == ConnectivityState::TransientFailure {
            self.stats.reconnects += 1;
        }
        self.retry_at = None;
        self.connect_deadline = Some(now + self.config.backoff.min_connect_timeout);
        self.set_state(now, ConnectivityState::Connecting);
        let wanted: Vec<StreamId> = self
            .slots
            .iter()
            .filter(|s| s.wanted && s.open.is_none())
            .map(|s| s.id)
            .collect();
        if wanted.is_empty() {
            // Nothing to subscribe to: probe the server with a heartbeat.
            if self.heartbeat.is_none() {
                self.send_heartbeat(now);
            }
        }
        for id in wanted {
            self.open(now, id);
        }
    }

    fn abort_all(&mut self) {
        for s in &mut self.slots {
            if let Some(call) = s.open.take() {
                self.actions
                    .push_back(Action::AbortStream { stream: s.id, call });
            }
        }
        if let Some(h) = self.heartbeat.take() {
            self.actions
                .push_back(Action::AbortHeartbeat { seq: h.seq });
        }
    }

    fn fail(&mut self, now: Instant, reason: LossReason) {
        if !matches!(
            self.state,
            ConnectivityState::Ready | ConnectivityState::Connecting
        ) {
            return;
        }
        self.abort_all();
        let delay = self.backoff.next_delay(self.rng.sample());
        self.retry_at = Some(now + delay);
        self.connect_deadline = None;
        self.set_state(now, ConnectivityState::TransientFailure);
        self.events.push_back(Event::ConnectionLost {
            reason,
            retry_in: delay,
        });
    }
}

#[cfg(test)]
mod tests;
