//! Virtual-clock tests of [`ServerConnection`]: each rule, jitter bounds, grace, and a
//! long randomized run that checks the invariants over hours of simulated time.

use super::*;
use proptest::prelude::*;

const S: Duration = Duration::from_secs(1);

/// Drives a connection on a virtual clock and records `(time, action)`.
struct Sim {
    conn: ServerConnection,
    now: Instant,
    log: Vec<(Duration, Action)>,
}

impl Sim {
    /// A connection with `params`; `time: NO_PINGS` makes it one without PINGs.
    fn new(params: ServerParameters, sample: f64) -> Self {
        let conn =
            ServerConnection::new(Instant::ZERO, params, EnforcementPolicy::default(), || {
                sample
            });
        Sim {
            conn: if params.time == NO_PINGS {
                conn.without_pings()
            } else {
                conn
            },
            now: Instant::ZERO,
            log: Vec::new(),
        }
    }

    /// Moves the clock to `t`, waking the machine at each deadline it asks for.
    fn run_until(&mut self, t: Duration) {
        let target = Instant::from_origin(t);
        while let Some(deadline) = self.conn.poll_timeout() {
            if deadline > target {
                break;
            }
            self.now = self.now.max(deadline);
            self.conn.handle_timeout(self.now);
            while let Some(a) = self.conn.poll_action() {
                self.log.push((self.now.since_origin(), a));
            }
        }
        self.now = target;
    }

    fn at(&self) -> Instant {
        self.now
    }
}

/// In [`Sim::new`]: no PINGs (a real `time` of 0 would be raised to the 1 s floor).
const NO_PINGS: Duration = Duration::ZERO;

fn params() -> ServerParameters {
    ServerParameters {
        time: NO_PINGS,
        ..ServerParameters::default()
    }
}

#[test]
fn ping_after_time_without_reads_then_close_after_timeout() {
    let mut sim = Sim::new(
        ServerParameters {
            time: 10 * S,
            timeout: 3 * S,
            ..params()
        },
        0.5,
    );
    sim.run_until(20 * S);
    assert_eq!(
        sim.log,
        vec![
            (10 * S, Action::SendPing),
            (13 * S, Action::Close(CloseReason::KeepaliveTimeout)),
        ]
    );
    assert_eq!(sim.conn.closed(), Some(CloseReason::KeepaliveTimeout));
    assert_eq!(sim.conn.poll_timeout(), None);
}

#[test]
fn any_read_answers_the_ping_and_restarts_the_clock() {
    let mut sim = Sim::new(
        ServerParameters {
            time: 10 * S,
            timeout: 3 * S,
            ..params()
        },
        0.5,
    );
    sim.run_until(11 * S);
    let now = sim.at();
    sim.conn.on_read(now); // e.g. the PING ACK, or any other frame
    sim.run_until(20 * S);
    assert_eq!(sim.log, vec![(10 * S, Action::SendPing)]);
    sim.run_until(21 * S);
    assert_eq!(sim.log.last(), Some(&(21 * S, Action::SendPing)));
}

#[test]
fn reads_keep_the_connection_from_pinging_at_all() {
    let mut sim = Sim::new(
        ServerParameters {
            time: 10 * S,
            ..params()
        },
        0.5,
    );
    for i in 1..=100 {
        sim.run_until(i * 5 * S);
        let now = sim.at();
        sim.conn.on_read(now);
    }
    assert!(sim.log.is_empty(), "{:?}", sim.log);
}

#[test]
fn idle_drain_only_without_streams_and_clock_restarts_when_last_stream_closes() {
    let mut sim = Sim::new(
        ServerParameters {
            max_connection_idle: Some(10 * S),
            ..params()
        },
        0.5,
    );
    sim.run_until(5 * S);
    let now = sim.at();
    sim.conn.on_stream_opened(now);
    sim.conn.on_stream_opened(now);
    sim.run_until(100 * S);
    assert!(sim.log.is_empty());
    let now = sim.at();
    sim.conn.on_stream_closed(now);
    sim.run_until(105 * S);
    assert!(sim.log.is_empty(), "one stream still open");
    let now = sim.at();
    sim.conn.on_stream_closed(now);
    sim.run_until(200 * S);
    assert_eq!(
        sim.log,
        vec![(115 * S, Action::Drain(DrainReason::MaxIdle))]
    );
    assert_eq!(sim.conn.draining(), Some(DrainReason::MaxIdle));
}

#[test]
fn age_drains_then_closes_after_grace() {
    let mut sim = Sim::new(
        ServerParameters {
            max_connection_age: Some(60 * S),
            max_connection_age_grace: Some(5 * S),
            ..params()
        },
        0.5,
    );
    let now = sim.at();
    sim.conn.on_stream_opened(now);
    sim.run_until(120 * S);
    assert_eq!(
        sim.log,
        vec![
            (60 * S, Action::Drain(DrainReason::MaxAge)),
            (65 * S, Action::Close(CloseReason::AgeGraceExpired)),
        ]
    );
}

#[test]
fn age_without_grace_waits_for_streams_forever() {
    let mut sim = Sim::new(
        ServerParameters {
            max_connection_age: Some(60 * S),
            ..params()
        },
        0.5,
    );
    let now = sim.at();
    sim.conn.on_stream_opened(now);
    sim.run_until(100_000 * S);
    assert_eq!(sim.log, vec![(60 * S, Action::Drain(DrainReason::MaxAge))]);
    assert_eq!(sim.conn.poll_timeout(), None);
}

#[test]
fn shutdown_during_age_grace_only_moves_the_deadline_earlier() {
    let mut sim = Sim::new(
        ServerParameters {
            max_connection_age: Some(60 * S),
            max_connection_age_grace: Some(30 * S),
            ..params()
        },
        0.5,
    );
    sim.run_until(61 * S);
    let now = sim.at();
    sim.conn.drain(now, DrainReason::Shutdown, Some(5 * S));
    // A later, longer grace does not postpone it.
    sim.conn.drain(now, DrainReason::Shutdown, Some(50 * S));
    sim.run_until(200 * S);
    assert_eq!(
        sim.log,
        vec![
            (60 * S, Action::Drain(DrainReason::MaxAge)),
            (66 * S, Action::Close(CloseReason::ShutdownGraceExpired)),
        ]
    );
}

#[test]
fn jitter_spreads_age_and_idle_within_ten_percent() {
    for (sample, expect) in [(0.0, 90), (0.5, 100), (0.999_999, 109)] {
        let conn = ServerConnection::new(
            Instant::ZERO,
            ServerParameters {
                max_connection_idle: Some(100 * S),
                max_connection_age: Some(100 * S),
                ..params()
            },
            EnforcementPolicy::default(),
            || sample,
        );
        assert_eq!(conn.idle_limit().map(|d| d.as_secs()), Some(expect));
        assert_eq!(
            conn.age_deadline().map(|d| d.since_origin().as_secs()),
            Some(expect)
        );
    }
}

#[test]
fn too_many_pings_closes_and_silences_the_machine() {
    let mut conn = ServerConnection::new(
        Instant::ZERO,
        ServerParameters::default(),
        EnforcementPolicy::default(),
        || 0.5,
    );
    conn.on_stream_opened(Instant::ZERO);
    let verdicts: Vec<_> = (0..4)
        .map(|i| conn.on_ping(Instant::from_millis(i)))
        .collect();
    assert_eq!(
        verdicts,
        vec![
            PingVerdict::Accepted,
            PingVerdict::Strike { strikes: 1 },
            PingVerdict::Strike { strikes: 2 },
            PingVerdict::TooManyPings { strikes: 3 },
        ]
    );
    assert_eq!(conn.closed(), Some(CloseReason::TooManyPings));
    assert_eq!(conn.poll_timeout(), None);
    assert_eq!(conn.poll_action(), None);
}

#[derive(Clone, Debug)]
enum Input {
    Wait(u64),
    Read,
    Open,
    Close,
}

fn input() -> impl Strategy<Value = Input> {
    prop_oneof![
        (1u64..120_000).prop_map(Input::Wait),
        Just(Input::Read),
        Just(Input::Open),
        Just(Input::Close),
    ]
}

proptest! {
    /// Hours of random traffic: a PING is always followed by a read or a close within
    /// the timeout, the connection drains at most once, nothing happens after close, and
    /// drains never come earlier than the (jittered) lower bounds allow.
    #[test]
    fn invariants_hold_over_random_schedules(
        inputs in proptest::collection::vec(input(), 1..300),
        sample in 0.0f64..1.0,
    ) {
        let params = ServerParameters {
            time: 10 * S,
            timeout: 2 * S,
            max_connection_idle: Some(30 * S),
            max_connection_age: Some(3600 * S),
            max_connection_age_grace: Some(10 * S),
        };
        let mut sim = Sim::new(params, sample);
        let mut open = 0u32;
        let mut elapsed = Duration::ZERO;
        for i in &inputs {
            let now = sim.at();
            match i {
                Input::Wait(ms) => {
                    elapsed += Duration::from_millis(*ms);
                    sim.run_until(elapsed);
                }
                Input::Read => sim.conn.on_read(now),
                Input::Open => { open += 1; sim.conn.on_stream_opened(now) }
                Input::Close if open > 0 => { open -= 1; sim.conn.on_stream_closed(now) }
                Input::Close => {}
            }
            prop_assert_eq!(sim.conn.active_streams(), open);
        }
        let drains = sim.log.iter().filter(|(_, a)| matches!(a, Action::Drain(_))).count();
        prop_assert!(drains <= 1);
        let closes: Vec<_> = sim.log.iter().filter(|(_, a)| matches!(a, Action::Close(_))).collect();
        prop_assert!(closes.len() <= 1);
        if let Some((t, _)) = closes.first() {
            prop_assert!(sim.log.iter().all(|(u, _)| u <= t));
        }
        for (t, a) in &sim.log {
            if let Action::Drain(DrainReason::MaxAge) = a {
                prop_assert!(*t >= Duration::from_secs(3240) && *t <= Duration::from_secs(3960));
            }
            if let Action::Drain(DrainReason::MaxIdle) = a {
                prop_assert!(*t >= Duration::from_secs(27));
            }
        }
    }
}
