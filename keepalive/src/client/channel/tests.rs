//! Virtual-clock tests of the browser channel: each rule alone, then a simulated server
//! under random fault schedules (kill, stall, restart, GoAway, offline) checking the
//! invariants over many minutes of simulated time.

use super::*;
use proptest::prelude::*;
use std::collections::BTreeMap;

const MS: Duration = Duration::from_millis(1);

fn ms(n: u64) -> Instant {
    Instant::from_millis(n)
}

fn config() -> ClientConfig {
    ClientConfig {
        keepalive_time: Duration::from_secs(2),
        keepalive_timeout: Duration::from_secs(1),
        stream_heartbeat_interval: Duration::from_secs(1),
        ..ClientConfig::default()
    }
}

fn drain(ch: &mut Channel) -> Vec<Action> {
    std::iter::from_fn(|| ch.poll_action()).collect()
}

fn events(ch: &mut Channel) -> Vec<Event> {
    std::iter::from_fn(|| ch.poll_event()).collect()
}

fn welcome(next: u64) -> Welcome {
    Welcome {
        next_sequence: next,
        stream_heartbeat_interval: Some(Duration::from_secs(1)),
        resume_token: "tok".into(),
        log_id: "log".into(),
    }
}

/// A channel with one stream, welcomed at t=10ms; returns its call.
fn ready_channel() -> (Channel, StreamId, CallId) {
    let mut ch = Channel::new(ms(0), config(), 1);
    let s = ch.add_stream(ms(0));
    let call = match drain(&mut ch).as_slice() {
        [
            Action::OpenStream {
                call,
                resume_after: None,
                ..
            },
        ] => *call,
        other => panic!("{other:?}"),
    };
    // A quiet stream: the server's stream heartbeat interval is 10 s.
    let w = Welcome {
        stream_heartbeat_interval: Some(Duration::from_secs(10)),
        ..welcome(1)
    };
    assert!(ch.on_welcome(ms(10), s, call, &w));
    assert_eq!(ch.state(), ConnectivityState::Ready);
    (ch, s, call)
}

#[test]
fn a_call_in_flight_is_an_active_stream_for_the_keepalive() {
    let mut ch = Channel::new(ms(0), config(), 1);
    // A call connects an IDLE channel (with a probe heartbeat: no stream to open).
    ch.call_started(ms(0));
    assert_eq!(ch.state(), ConnectivityState::Connecting);
    assert_eq!(drain(&mut ch), vec![Action::SendHeartbeat { seq: 1 }]);
    ch.on_call(ms(5), true);
    ch.on_heartbeat(ms(6), 1, HeartbeatOutcome::Answered);
    assert_eq!(ch.state(), ConnectivityState::Ready);
    // No stream, but a call in flight: heartbeats after Time of silence.
    assert_eq!(ch.poll_timeout(), Some(ms(2006)));
    ch.on_bytes(ms(1000));
    assert_eq!(
        ch.poll_timeout(),
        Some(ms(3000)),
        "bytes of the call are liveness"
    );
    ch.handle_timeout(ms(3000));
    assert_eq!(drain(&mut ch), vec![Action::SendHeartbeat { seq: 2 }]);
    ch.on_heartbeat(ms(3010), 2, HeartbeatOutcome::Answered);
    // Once it ended, and without PermitWithoutStream, the keepalive is dormant.
    ch.call_ended(ms(3020));
    assert_eq!(ch.active_calls(), 0);
    assert_eq!(ch.poll_timeout(), None);
}

#[test]
fn an_answer_in_transient_failure_ends_the_backoff() {
    let (mut ch, _s, _call) = ready_channel();
    ch.on_call(ms(100), false);
    assert_eq!(ch.state(), ConnectivityState::TransientFailure);
    drain(&mut ch);
    // A call (a retry) got through before the backoff ended: the server is back, so the
    // channel is READY at once and reopens its stream now.
    ch.on_call(ms(200), true);
    assert_eq!(ch.state(), ConnectivityState::Ready);
    assert_eq!(ch.retry_at(), None);
    assert!(matches!(
        drain(&mut ch).as_slice(),
        [Action::OpenStream {
            resume_after: None,
            ..
        }]
    ));
}

#[test]
fn a_finished_stream_is_not_a_lost_connection_and_not_reopened() {
    let (mut ch, s, call) = ready_channel();
    assert_eq!(ch.on_event(ms(20), s, call, 1), Delivery::Deliver);
    events(&mut ch);
    ch.on_stream_finished(ms(30), s, call);
    assert_eq!(ch.state(), ConnectivityState::Ready);
    assert_eq!(events(&mut ch), vec![Event::StreamFinished { stream: s }]);
    assert!(drain(&mut ch).is_empty(), "not reopened");
    assert_eq!(ch.open_call(s), None);
    // Nothing open, no call: no deadline (no silence check, keepalive dormant).
    assert_eq!(ch.poll_timeout(), None);
    // Not even after a reconnect.
    ch.offline(ms(40));
    ch.online(ms(50));
    assert!(
        !drain(&mut ch)
            .iter()
            .any(|a| matches!(a, Action::OpenStream { .. }))
    );
}

#[test]
fn a_stream_can_start_after_what_an_earlier_one_delivered() {
    let mut ch = Channel::new(ms(0), config(), 1);
    ch.add_stream_after(ms(0), Some(41), Some("log-a".into()));
    match drain(&mut ch).as_slice() {
        [
            Action::OpenStream {
                resume_after: Some(41),
                log_id: Some(log),
                ..
            },
        ] => {
            assert_eq!(log, "log-a")
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn heartbeat_after_time_of_silence_and_rtt_measured() {
    let (mut ch, _s, _call) = ready_channel();
    assert_eq!(ch.poll_timeout(), Some(ms(2010)));
    ch.handle_timeout(ms(2010));
    assert_eq!(drain(&mut ch), vec![Action::SendHeartbeat { seq: 1 }]);
    ch.on_heartbeat(ms(2040), 1, HeartbeatOutcome::Answered);
    assert_eq!(ch.stats().last_rtt, Some(30 * MS));
    // Time is measured from that answer (the last byte received).
    assert_eq!(ch.poll_timeout(), Some(ms(2040 + 2000)));
}

#[test]
fn unanswered_heartbeat_is_death_within_time_plus_timeout() {
    let (mut ch, _s, call) = ready_channel();
    let mut now = ms(10);
    while ch.state() == ConnectivityState::Ready {
        now = ch.poll_timeout().expect("deadline");
        ch.handle_timeout(now);
    }
    // Last byte at 10 ms; Time 2 s + Timeout 1 s.
    assert!(now <= ms(10 + 3000), "{now:?}");
    let actions = drain(&mut ch);
    assert!(actions.contains(&Action::AbortStream {
        stream: StreamId(0),
        call
    }));
    assert_eq!(ch.state(), ConnectivityState::TransientFailure);
    let retry = ch.retry_at().expect("retry") - now;
    assert!(retry >= 800 * MS && retry <= 1200 * MS, "{retry:?}");
}

#[test]
fn silent_stream_with_heartbeats_answered_is_still_caught() {
    let (mut ch, _s, _call) = ready_channel();
    // Heartbeats keep being answered, but the stream never speaks again.
    let mut now = ms(10);
    for _ in 0..20 {
        now = ch.poll_timeout().expect("deadline");
        ch.handle_timeout(now);
        for a in drain(&mut ch) {
            if let Action::SendHeartbeat { seq } = a {
                ch.on_heartbeat(now + 5 * MS, seq, HeartbeatOutcome::Answered);
            }
        }
        if ch.state() != ConnectivityState::Ready {
            break;
        }
    }
    assert_eq!(ch.state(), ConnectivityState::TransientFailure);
    // Stream silence limit: interval 10 s + timeout 1 s after the last stream message.
    assert!(now <= ms(10 + 11_000), "{now:?}");
    assert!(events(&mut ch).iter().any(|e| matches!(
        e,
        Event::ConnectionLost {
            reason: LossReason::StreamSilent,
            ..
        }
    )));
}

#[test]
fn late_timer_checks_first_and_never_declares_a_false_death() {
    let (mut ch, s, call) = ready_channel();
    // The tab slept for a minute: the timer fires 58 s late.
    ch.handle_timeout(ms(60_000));
    assert_eq!(
        ch.state(),
        ConnectivityState::Ready,
        "a late timer is not a death"
    );
    assert_eq!(drain(&mut ch), vec![Action::SendHeartbeat { seq: 1 }]);
    // The server is alive: answer and a stream message arrive promptly.
    ch.on_heartbeat(ms(60_050), 1, HeartbeatOutcome::Answered);
    ch.on_stream_message(ms(60_060), s, call);
    ch.handle_timeout(ms(60_100));
    assert_eq!(ch.state(), ConnectivityState::Ready);
    // But if nothing answers, the check fails after Timeout.
    let (mut ch, _s, _call) = ready_channel();
    ch.handle_timeout(ms(60_000));
    drain(&mut ch);
    let due = ch.poll_timeout().expect("deadline");
    assert_eq!(due, ms(61_000));
    ch.handle_timeout(due);
    assert_eq!(ch.state(), ConnectivityState::TransientFailure);
}

#[test]
fn too_many_pings_doubles_time() {
    let (mut ch, _s, _call) = ready_channel();
    ch.handle_timeout(ms(2010));
    drain(&mut ch);
    ch.on_heartbeat(ms(2020), 1, HeartbeatOutcome::TooManyPings);
    assert_eq!(ch.keepalive_time(), Duration::from_secs(4));
    assert_eq!(ch.state(), ConnectivityState::Ready);
    assert!(events(&mut ch).contains(&Event::TooManyPings {
        keepalive_time: Duration::from_secs(4)
    }));
}

#[test]
fn go_away_reopens_at_once_resuming_after_the_last_delivered() {
    let (mut ch, s, call) = ready_channel();
    assert_eq!(ch.on_event(ms(20), s, call, 1), Delivery::Deliver);
    assert_eq!(ch.on_event(ms(30), s, call, 2), Delivery::Deliver);
    ch.on_go_away(ms(40), s, call, "tok2", "max_stream_age");
    match drain(&mut ch).as_slice() {
        [
            Action::OpenStream {
                resume_after: Some(2),
                resume_token: Some(t),
                call: new,
                ..
            },
        ] => {
            assert_eq!(t, "tok2");
            assert_ne!(*new, call);
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(
        ch.state(),
        ConnectivityState::Ready,
        "no backoff, no failure"
    );
    // The old call's late messages are stale.
    assert_eq!(ch.on_event(ms(50), s, call, 3), Delivery::Stale);
}

#[test]
fn offline_fails_now_and_online_retries_now() {
    let (mut ch, _s, _call) = ready_channel();
    ch.offline(ms(100));
    assert_eq!(ch.state(), ConnectivityState::TransientFailure);
    drain(&mut ch);
    ch.online(ms(150));
    assert_eq!(ch.state(), ConnectivityState::Connecting);
    assert!(matches!(
        drain(&mut ch).as_slice(),
        [Action::OpenStream { .. }]
    ));
}

#[test]
fn visible_again_checks_a_ready_connection() {
    let (mut ch, _s, _call) = ready_channel();
    ch.visibility(ms(500), true);
    assert_eq!(drain(&mut ch), vec![Action::SendHeartbeat { seq: 1 }]);
}

#[test]
fn backoff_grows_while_failing_and_resets_once_ready() {
    let mut ch = Channel::new(ms(0), config(), 9);
    let s = ch.add_stream(ms(0));
    let mut now = ms(0);
    let mut delays = Vec::new();
    for _ in 0..6 {
        let call = drain(&mut ch)
            .into_iter()
            .find_map(|a| match a {
                Action::OpenStream { call, .. } => Some(call),
                _ => None,
            })
            .expect("open");
        ch.on_stream_end(now + 5 * MS, s, call); // connection refused
        let at = ch.retry_at().expect("retry");
        delays.push(at - (now + 5 * MS));
        now = at;
        ch.handle_timeout(now);
    }
    for (n, d) in delays.iter().enumerate() {
        let (lo, hi) = config().backoff.bounds(n as u32);
        assert!(*d >= lo && *d <= hi, "{n}: {d:?}");
    }
    let call = ch.open_call(s).expect("open");
    ch.on_welcome(now, s, call, &welcome(1));
    assert_eq!(ch.failures(), 0);
}

#[test]
fn no_stream_means_no_heartbeat_unless_permitted() {
    let mut ch = Channel::new(ms(0), config(), 1);
    ch.connect(ms(0));
    // With no stream the first attempt is a probe heartbeat.
    assert_eq!(drain(&mut ch), vec![Action::SendHeartbeat { seq: 1 }]);
    ch.on_heartbeat(ms(10), 1, HeartbeatOutcome::Answered);
    assert_eq!(ch.state(), ConnectivityState::Ready);
    assert_eq!(ch.poll_timeout(), None, "keepalive dormant without streams");
    let mut permitted = Channel::new(
        ms(0),
        ClientConfig {
            permit_without_stream: true,
            ..config()
        },
        1,
    );
    permitted.connect(ms(0));
    drain(&mut permitted);
    permitted.on_heartbeat(ms(10), 1, HeartbeatOutcome::Answered);
    assert_eq!(permitted.poll_timeout(), Some(ms(2010)));
}

// ---- the simulation -------------------------------------------------------------------

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Mode {
    Up,
    Down,
    Stalled,
}

#[derive(Clone, Copy, Debug)]
enum Fault {
    /// The server process dies; it is back after the duration (a restart).
    Kill(u64),
    /// The server stops answering without closing sockets, for the duration.
    Stall(u64),
    /// The server ends every stream with a GoAway.
    GoAway,
    /// The browser goes offline for the duration.
    Offline(u64),
}

fn fault() -> impl Strategy<Value = Fault> {
    prop_oneof![
        (100u64..20_000).prop_map(Fault::Kill),
        (100u64..10_000).prop_map(Fault::Stall),
        Just(Fault::GoAway),
        (100u64..5_000).prop_map(Fault::Offline),
    ]
}

struct OpenCall {
    stream: StreamId,
    at: Instant,
    /// Opened on a connection that is now broken (stall or kill): it never answers.
    broken: bool,
    welcomed: bool,
    cursor: u64,
    last_sent: Instant,
    resume_after: Option<u64>,
}

struct Sim {
    ch: Channel,
    now: Instant,
    mode: Mode,
    back_at: Option<Instant>,
    head: u64,
    calls: BTreeMap<CallId, OpenCall>,
    heartbeats: BTreeMap<u64, (Instant, bool)>,
    delivered: Vec<u64>,
    last_byte: Instant,
    failures_seen: u32,
    violations: Vec<String>,
}

const STEP: u64 = 10;
const LATENCY: u64 = 20;
const PUBLISH_EVERY: u64 = 300;

impl Sim {
    fn new(seed: u64) -> Self {
        let mut ch = Channel::new(ms(0), config(), seed);
        ch.add_stream(ms(0));
        Sim {
            ch,
            now: ms(0),
            mode: Mode::Up,
            back_at: None,
            head: 0,
            calls: BTreeMap::new(),
            heartbeats: BTreeMap::new(),
            delivered: Vec::new(),
            last_byte: ms(0),
            failures_seen: 0,
            violations: Vec::new(),
        }
    }

    fn apply(&mut self, f: Fault) {
        let now = self.now;
        match f {
            Fault::Kill(d) => {
                self.mode = Mode::Down;
                self.back_at = Some(now + Duration::from_millis(d));
                // Open calls see their connection reset.
                let ids: Vec<CallId> = self.calls.keys().copied().collect();
                for id in ids {
                    let stream = self.calls[&id].stream;
                    self.calls.remove(&id);
                    self.ch.on_stream_end(now, stream, id);
                }
                let hbs: Vec<u64> = self.heartbeats.keys().copied().collect();
                for seq in hbs {
                    self.heartbeats.remove(&seq);
                    self.ch.on_heartbeat(now, seq, HeartbeatOutcome::Failed);
                }
            }
            Fault::Stall(d) => {
                self.mode = Mode::Stalled;
                self.back_at = Some(now + Duration::from_millis(d));
                for c in self.calls.values_mut() {
                    c.broken = true;
                }
                for h in self.heartbeats.values_mut() {
                    h.1 = true;
                }
            }
            Fault::GoAway if self.mode == Mode::Up => {
                let ids: Vec<(CallId, StreamId)> = self
                    .calls
                    .iter()
                    .filter(|(_, c)| c.welcomed && !c.broken)
                    .map(|(id, c)| (*id, c.stream))
                    .collect();
                for (id, stream) in ids {
                    self.calls.remove(&id);
                    self.ch.on_go_away(now, stream, id, "tok", "chaos");
                    self.last_byte = now;
                }
            }
            Fault::GoAway => {}
            Fault::Offline(d) => {
                self.ch.offline(now);
                let back = now + Duration::from_millis(d);
                self.back_at = Some(self.back_at.map_or(back, |b| b.max(back)));
                if self.mode == Mode::Up {
                    self.mode = Mode::Down;
                }
            }
        }
        self.run_actions();
    }

    fn run_actions(&mut self) {
        while let Some(a) = self.ch.poll_action() {
            match a {
                Action::OpenStream {
                    stream,
                    call,
                    resume_after,
                    ..
                } => {
                    if self.calls.values().any(|c| c.stream == stream) {
                        self.violations
                            .push(format!("{:?}: two calls open for {stream:?}", self.now));
                    }
                    self.calls.insert(
                        call,
                        OpenCall {
                            stream,
                            at: self.now,
                            broken: self.mode != Mode::Up,
                            welcomed: false,
                            cursor: 0,
                            last_sent: self.now,
                            resume_after,
                        },
                    );
                }
                Action::AbortStream { call, .. } => {
                    self.calls.remove(&call);
                }
                Action::SendHeartbeat { seq } => {
                    self.heartbeats
                        .insert(seq, (self.now, self.mode != Mode::Up));
                }
                Action::AbortHeartbeat { seq } => {
                    self.heartbeats.remove(&seq);
                }
            }
        }
        while let Some(e) = self.ch.poll_event() {
            if let Event::ConnectionLost { retry_in, .. } = e {
                let n = self.ch.failures().saturating_sub(1);
                let (lo, hi) = config().backoff.bounds(n);
                if retry_in < lo || retry_in > hi {
                    self.violations
                        .push(format!("backoff {n}: {retry_in:?} not in {lo:?}..{hi:?}"));
                }
                self.failures_seen += 1;
            }
        }
    }

    /// One step of STEP ms: the server, the network, the client's timers.
    fn step(&mut self) {
        self.now += Duration::from_millis(STEP);
        let now = self.now;
        if self.back_at.is_some_and(|t| now >= t) {
            self.back_at = None;
            self.mode = Mode::Up;
            self.ch.online(now);
            self.run_actions();
        }
        if self.mode != Mode::Down
            && (now.since_origin().as_millis() as u64).is_multiple_of(PUBLISH_EVERY)
        {
            self.head += 1; // the log lives on through restarts (a file-backed log)
        }
        let latency = Duration::from_millis(LATENCY);
        // Heartbeats.
        let due: Vec<u64> = self
            .heartbeats
            .iter()
            .filter(|(_, (at, broken))| {
                now >= *at + latency && (!*broken || self.mode == Mode::Down)
            })
            .map(|(s, _)| *s)
            .collect();
        for seq in due {
            let outcome = match self.mode {
                Mode::Up => HeartbeatOutcome::Answered,
                Mode::Down => HeartbeatOutcome::Failed,
                Mode::Stalled => continue,
            };
            if self.heartbeats.get(&seq).is_some_and(|h| h.1) && self.mode != Mode::Down {
                continue;
            }
            self.heartbeats.remove(&seq);
            if outcome == HeartbeatOutcome::Answered {
                self.last_byte = now;
            }
            self.ch.on_heartbeat(now, seq, outcome);
            self.run_actions();
        }
        // Streams.
        let ids: Vec<CallId> = self.calls.keys().copied().collect();
        for id in ids {
            let Some(c) = self.calls.get(&id) else {
                continue;
            };
            if now < c.at + latency || c.broken && self.mode != Mode::Down {
                continue;
            }
            let stream = c.stream;
            if self.mode == Mode::Down {
                self.calls.remove(&id);
                self.ch.on_stream_end(now, stream, id);
                self.run_actions();
                continue;
            }
            if self.mode == Mode::Stalled {
                continue;
            }
            let c = self.calls.get_mut(&id).expect("call");
            if !c.welcomed {
                c.welcomed = true;
                // Replays overlap by two events (at-least-once): the client must drop them.
                c.cursor = c.resume_after.map_or(self.head, |r| r.saturating_sub(2));
                c.last_sent = now;
                let next = c.cursor + 1;
                self.last_byte = now;
                self.ch.on_welcome(now, stream, id, &welcome(next));
                self.run_actions();
                continue;
            }
            let mut sent = false;
            while c.cursor < self.head {
                c.cursor += 1;
                let seq = c.cursor;
                match self.ch.on_event(now, stream, id, seq) {
                    Delivery::Deliver => self.delivered.push(seq),
                    Delivery::DeliverAfterGap { from, missed } => {
                        self.violations
                            .push(format!("unexpected gap {from}+{missed}"));
                        self.delivered.push(seq);
                    }
                    Delivery::Duplicate | Delivery::Stale => {}
                }
                sent = true;
            }
            if !sent && now >= c.last_sent + Duration::from_secs(1) {
                self.ch.on_stream_message(now, stream, id);
                sent = true;
            }
            if sent {
                c.last_sent = now;
                self.last_byte = now;
            }
            self.run_actions();
        }
        // Client timers, fired on time.
        while self.ch.poll_timeout().is_some_and(|t| t <= now) {
            self.ch.handle_timeout(now);
            self.run_actions();
        }
        // Detection bound: READY with nothing received for Time + Timeout (+ one step).
        let bound =
            config().keepalive_time + config().keepalive_timeout + Duration::from_millis(STEP);
        if self.ch.state() == ConnectivityState::Ready && now > self.last_byte + bound {
            self.violations.push(format!(
                "{now:?}: still READY, last byte {:?}",
                self.last_byte
            ));
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, .. ProptestConfig::default() })]

    /// Random faults over up to ~10 minutes, then 4 quiet minutes: never two calls for one
    /// stream, every backoff within bounds, every broken connection found within
    /// Time + Timeout of the last byte, and the application sees 1, 2, 3, … with nothing
    /// delivered twice or skipped — and it catches up with the head in the end.
    #[test]
    fn invariants_under_random_faults(
        faults in proptest::collection::vec((0u64..600_000, fault()), 0..25),
        seed in any::<u64>(),
    ) {
        let mut faults = faults;
        faults.sort_by_key(|(t, _)| *t);
        let mut sim = Sim::new(seed);
        sim.run_actions();
        let mut next = faults.into_iter().peekable();
        let end = 600_000 + 240_000;
        while sim.now < ms(end) {
            sim.step();
            while let Some((t, f)) = next.peek().copied() {
                if ms(t) > sim.now { break; }
                next.next();
                sim.apply(f);
            }
        }
        prop_assert!(sim.violations.is_empty(), "{:?}", sim.violations);
        let first = sim.delivered.first().copied().unwrap_or(1);
        let expected: Vec<u64> = (first..first + sim.delivered.len() as u64).collect();
        prop_assert_eq!(&sim.delivered, &expected, "not 1, 2, 3, …");
        prop_assert_eq!(sim.ch.state(), ConnectivityState::Ready);
        prop_assert_eq!(sim.delivered.last().copied(), Some(sim.head), "did not catch up");
    }
}
