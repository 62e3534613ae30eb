//! The session table: the identity heartbeats are judged by and resume state is bound to.
//!
//! An HTTP/2 client is judged per connection, but a browser's calls may use several
//! HTTP/1.1 connections (up to six per origin) or share one with other tabs, so the
//! connection is the wrong unit. A session is: `OpenSession` gives 128 random bits, and
//! every later call names them. Each session has its own [`PingEnforcer`] with the same
//! policy as HTTP/2 PINGs, so a browser and a native client meet one rule.
//!
//! The table is bounded (`--max-sessions`) and forgets sessions that have had no call and
//! no open stream for [`IDLE_TIMEOUT`]; the sweep is lazy (at most once a minute, on
//! `OpenSession`, and whenever the table is full).

use super::ids;
use crate::clock::Clock;
use keepalive::{EnforcementPolicy, PingEnforcer, PingVerdict};
use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

/// A session with no call and no open stream for this long is forgotten.
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(10 * 60);
/// At most this often the table is swept when it is not full.
const SWEEP_EVERY: Duration = Duration::from_secs(60);
/// How many characters of the session id name it as an event source.
pub const SOURCE_PREFIX: usize = 8;

/// Why a session could not be opened.
#[derive(Debug)]
pub enum OpenError {
    /// `--max-sessions` are open and none is idle.
    Full,
    /// The CSPRNG failed.
    Random(getrandom::Error),
}

/// One browser session.
#[derive(Debug)]
pub struct Session {
    /// The id (32 hex digits).
    pub id: String,
    /// The resume token a Welcome hands out (32 hex digits, fixed for the session).
    pub resume_token: String,
    state: Mutex<SessionState>,
}

#[derive(Debug)]
struct SessionState {
    enforcer: PingEnforcer,
    open_streams: u32,
    last_seen: keepalive::Instant,
}

impl Session {
    fn lock(&self) -> MutexGuard<'_, SessionState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The event source name of this session: the first characters of its id.
    pub fn source(&self) -> String {
        self.id.chars().take(SOURCE_PREFIX).collect()
    }

    /// Judges a heartbeat received at `now`, as an HTTP/2 PING would be judged with the
    /// session's open streams as its active streams.
    pub fn heartbeat(&self, now: keepalive::Instant) -> PingVerdict {
        let mut st = self.lock();
        st.last_seen = now;
        let stream_active = st.open_streams > 0;
        st.enforcer.on_ping(now, stream_active)
    }

    /// A stream of this session sent a message: the next heartbeat resets the strikes, as
    /// DATA sent resets PING strikes.
    pub fn data_sent(&self) {
        self.lock().enforcer.on_data_sent();
    }

    /// A stream of this session opened.
    pub fn stream_opened(&self, now: keepalive::Instant) {
        let mut st = self.lock();
        st.open_streams = st.open_streams.saturating_add(1);
        st.last_seen = now;
    }

    /// A stream of this session ended.
    pub fn stream_closed(&self, now: keepalive::Instant) {
        let mut st = self.lock();
        st.open_streams = st.open_streams.saturating_sub(1);
        st.last_seen = now;
    }

    fn touch(&self, now: keepalive::Instant) {
        self.lock().last_seen = now;
    }

    fn idle_since(&self, now: keepalive::Instant) -> Option<Duration> {
        let st = self.lock();
        (st.open_streams == 0).then(|| now - st.last_seen)
    }
}

/// The session table.
#[derive(Debug)]
pub struct Sessions {
    table: Mutex<Table>,
    policy: Mutex<EnforcementPolicy>,
    max: usize,
    clock: Clock,
}

#[derive(Debug)]
struct Table {
    sessions: HashMap<String, Arc<Session>>,
    last_sweep: keepalive::Instant,
}

impl Sessions {
    /// At most `max` sessions, judged by `policy`.
    pub fn new(policy: EnforcementPolicy, max: usize, clock: Clock) -> Self {
        Sessions {
            table: Mutex::new(Table {
                sessions: HashMap::new(),
                last_sweep: clock.now(),
            }),
            policy: Mutex::new(policy),
            max: max.max(1),
            clock,
        }
    }

    fn lock(&self) -> MutexGuard<'_, Table> {
        self.table.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The policy sessions opened from now on are judged by.
    pub fn policy(&self) -> EnforcementPolicy {
        *self.policy.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Judges sessions opened from now on by `policy` (the server's, once it is mounted).
    pub fn set_policy(&self, policy: EnforcementPolicy) {
        *self.policy.lock().unwrap_or_else(|e| e.into_inner()) = policy;
    }

    /// Opens a session. Returns it and how many idle sessions the sweep dropped.
    pub fn open(&self) -> Result<(Arc<Session>, usize), OpenError> {
        let now = self.clock.now();
        let id = ids::random_hex128().map_err(OpenError::Random)?;
        let resume_token = ids::random_hex128().map_err(OpenError::Random)?;
        let mut t = self.lock();
        let mut expired = 0;
        if t.sessions.len() >= self.max || now - t.last_sweep >= SWEEP_EVERY {
            expired = sweep(&mut t, now);
        }
        if t.sessions.len() >= self.max {
            return Err(OpenError::Full);
        }
        let session = Arc::new(Session {
            id: id.clone(),
            resume_token,
            state: Mutex::new(SessionState {
                enforcer: PingEnforcer::new(self.policy()),
                open_streams: 0,
                last_seen: now,
            }),
        });
        t.sessions.insert(id, session.clone());
        Ok((session, expired))
    }

    /// The session `id`, if known; counts as activity.
    pub fn get(&self, id: &str) -> Option<Arc<Session>> {
        let session = self.lock().sessions.get(id).cloned()?;
        session.touch(self.clock.now());
        Some(session)
    }

    /// Sessions in the table.
    pub fn len(&self) -> usize {
        self.lock().sessions.len()
    }

    /// Whether the table is empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Drops sessions idle for [`IDLE_TIMEOUT`]; returns how many.
fn sweep(t: &mut Table, now: keepalive::Instant) -> usize {
    let before = t.sessions.len();
    t.sessions
        .retain(|_, s| s.idle_since(now).is_none_or(|idle| idle < IDLE_TIMEOUT));
    t.last_sweep = now;
    before - t.sessions.len()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy() -> EnforcementPolicy {
        EnforcementPolicy {
            min_time: Duration::from_secs(5),
            permit_without_stream: false,
            max_ping_strikes: 2,
        }
    }

    #[test]
    fn bounded_and_looked_up_by_id() {
        let s = Sessions::new(policy(), 2, Clock::start());
        let (a, _) = s.open().expect("a");
        let (_b, _) = s.open().expect("b");
        assert!(matches!(s.open(), Err(OpenError::Full)));
        assert_eq!(s.get(&a.id).map(|x| x.id.clone()), Some(a.id.clone()));
        assert!(s.get("nope").is_none());
        assert_eq!(a.source().len(), SOURCE_PREFIX);
        assert_ne!(a.id, a.resume_token);
    }

    #[test]
    fn idle_sessions_are_swept_but_not_those_with_a_stream() {
        let s = Sessions::new(policy(), 10, Clock::start());
        let (a, _) = s.open().expect("a");
        let (b, _) = s.open().expect("b");
        b.stream_opened(keepalive::Instant::ZERO);
        let later = keepalive::Instant::ZERO + IDLE_TIMEOUT + Duration::from_secs(1);
        let mut t = s.lock();
        assert_eq!(sweep(&mut t, later), 1);
        assert!(!t.sessions.contains_key(&a.id));
        assert!(t.sessions.contains_key(&b.id));
    }

    #[test]
    fn heartbeats_are_judged_like_pings_and_data_resets_strikes() {
        let s = Sessions::new(policy(), 10, Clock::start());
        let (a, _) = s.open().expect("a");
        let at = |ms| keepalive::Instant::from_millis(ms);
        a.stream_opened(at(0));
        assert_eq!(a.heartbeat(at(0)), PingVerdict::Accepted);
        assert_eq!(a.heartbeat(at(100)), PingVerdict::Strike { strikes: 1 });
        assert_eq!(a.heartbeat(at(200)), PingVerdict::Strike { strikes: 2 });
        a.data_sent();
        assert_eq!(a.heartbeat(at(300)), PingVerdict::Accepted);
        assert_eq!(a.heartbeat(at(400)), PingVerdict::Strike { strikes: 1 });
        assert_eq!(a.heartbeat(at(500)), PingVerdict::Strike { strikes: 2 });
        assert_eq!(
            a.heartbeat(at(600)),
            PingVerdict::TooManyPings { strikes: 3 }
        );
        assert_eq!(
            a.heartbeat(at(700)),
            PingVerdict::TooManyPings { strikes: 4 }
        );
    }
}
