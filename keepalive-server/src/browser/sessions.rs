//! The session table: the identity heartbeats are judged by and resume state is bound to.
//!
//! An HTTP/2 client is judged per connection, but a browser's calls may use several
//! HTTP/1.1 connections (up to six per origin) or share one with other tabs, so the
//! connection is the wrong unit. A session is: `OpenSession` gives a signed id
//! ([`tokens`](super::tokens): 128 random bits, an expiry, an HMAC), and every later call
//! names it. Each session has its own [`PingEnforcer`] with the same policy as HTTP/2
//! PINGs, so a browser and a native client meet one rule.
//!
//! The table holds what this replica knows of a session (its strikes, its open streams).
//! A valid id the table does not hold — opened by another replica, or before a restart —
//! is adopted: a new entry, judged from now on.
//!
//! The table is bounded (`--max-sessions`) and forgets sessions that have had no call and
//! no open stream for [`IDLE_TIMEOUT`]; the sweep is lazy (at most once a minute, on
//! `OpenSession`, and whenever the table is full).

use super::tokens::{SessionKeys, TokenError, unix_now};
use crate::clock::Clock;
use keepalive::{EnforcementPolicy, PingEnforcer, PingVerdict};
use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;
use tokio::sync::watch;

/// A session with no call and no open stream for this long is forgotten.
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(10 * 60);
/// At most this often the table is swept when it is not full.
const SWEEP_EVERY: Duration = Duration::from_secs(60);
/// How many characters of the session's key name it as an event source.
pub const SOURCE_PREFIX: usize = 8;

/// Why a session could not be opened or found.
#[derive(Debug)]
pub enum OpenError {
    /// `--max-sessions` are open and none is idle.
    Full,
    /// The CSPRNG failed.
    Random(getrandom::Error),
    /// The id is not valid (forged, altered, expired, signed with an unknown key).
    Token(TokenError),
}

/// One browser session.
#[derive(Debug)]
pub struct Session {
    /// The id: the signed token the client names it by.
    pub id: String,
    /// Its random part (32 hex digits): what names it in Redis and in logs.
    pub key: String,
    /// Unix seconds after which its id is refused.
    pub expires: u64,
    /// The resume token a Welcome hands out (fixed for the session, the same on every
    /// replica).
    pub resume_token: String,
    state: Mutex<SessionState>,
    /// The newest generation of each stream key (fencing on this replica).
    fences: Mutex<HashMap<String, watch::Sender<u64>>>,
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

    /// The event source name of this session: the first characters of its key.
    pub fn source(&self) -> String {
        self.key.chars().take(SOURCE_PREFIX).collect()
    }

    /// Judges a heartbeat received at `now`, as an HTTP/2 PING would be judged with the
    /// session's open streams as its active streams.
    pub fn heartbeat(&self, now: keepalive::Instant) -> PingVerdict {
        self.heartbeat_with(now, false)
    }

    /// [`heartbeat`](Self::heartbeat), counting a stream as active also when
    /// `elsewhere` (another replica holds one).
    pub fn heartbeat_with(&self, now: keepalive::Instant, elsewhere: bool) -> PingVerdict {
        let mut st = self.lock();
        st.last_seen = now;
        let stream_active = st.open_streams > 0 || elsewhere;
        st.enforcer.on_ping(now, stream_active)
    }

    /// Whether this replica holds an open stream of the session.
    pub fn has_open_stream(&self) -> bool {
        self.lock().open_streams > 0
    }

    /// A stream with `stream_key` attaches: it becomes the newest of its key here. Returns
    /// its generation and a watch that moves past it when a newer one attaches.
    pub fn fence(&self, stream_key: &str) -> (u64, watch::Receiver<u64>) {
        let mut fences = self.fences.lock().unwrap_or_else(|e| e.into_inner());
        let sender = fences
            .entry(stream_key.to_owned())
            .or_insert_with(|| watch::channel(0).0);
        let generation = *sender.borrow() + 1;
        sender.send_replace(generation);
        (generation, sender.subscribe())
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
    keys: Arc<SessionKeys>,
    ttl: Duration,
}

#[derive(Debug)]
struct Table {
    sessions: HashMap<String, Arc<Session>>,
    last_sweep: keepalive::Instant,
}

impl Sessions {
    /// At most `max` sessions, judged by `policy`, their ids signed with `keys` and
    /// valid for `ttl`.
    pub fn new(
        policy: EnforcementPolicy,
        max: usize,
        clock: Clock,
        keys: Arc<SessionKeys>,
        ttl: Duration,
    ) -> Self {
        Sessions {
            table: Mutex::new(Table {
                sessions: HashMap::new(),
                last_sweep: clock.now(),
            }),
            policy: Mutex::new(policy),
            max: max.max(1),
            clock,
            keys,
            ttl,
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
        let id = self
            .keys
            .mint(unix_now(), self.ttl)
            .map_err(OpenError::Random)?;
        self.insert(&id)
    }

    /// Puts the session of the valid id `id` into the table; how many idle sessions the
    /// sweep dropped.
    fn insert(&self, id: &str) -> Result<(Arc<Session>, usize), OpenError> {
        let claims = self.keys.verify(id, unix_now()).map_err(OpenError::Token)?;
        let now = self.clock.now();
        let mut t = self.lock();
        if let Some(session) = t.sessions.get(id) {
            return Ok((session.clone(), 0));
        }
        let mut expired = 0;
        if t.sessions.len() >= self.max || now - t.last_sweep >= SWEEP_EVERY {
            expired = sweep(&mut t, now);
        }
        if t.sessions.len() >= self.max {
            return Err(OpenError::Full);
        }
        let session = Arc::new(Session {
            id: id.to_owned(),
            resume_token: self.keys.resume_token(&claims),
            key: claims.key,
            expires: claims.expires,
            state: Mutex::new(SessionState {
                enforcer: PingEnforcer::new(self.policy()),
                open_streams: 0,
                last_seen: now,
            }),
            fences: Mutex::new(HashMap::new()),
        });
        t.sessions.insert(id.to_owned(), session.clone());
        Ok((session, expired))
    }

    /// The session `id` (adopted when its id is valid but the table does not hold it:
    /// opened by another replica, or before a restart); counts as activity.
    ///
    /// # Errors
    /// [`OpenError::Token`] for an id that is not valid (now), [`OpenError::Full`] when
    /// there is no room to adopt it.
    pub fn get(&self, id: &str) -> Result<Arc<Session>, OpenError> {
        let held = self.lock().sessions.get(id).cloned();
        let session = match held {
            Some(session) if unix_now() > session.expires => {
                return Err(OpenError::Token(TokenError::Expired));
            }
            Some(session) => session,
            None => self.insert(id)?.0,
        };
        session.touch(self.clock.now());
        Ok(session)
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

    fn sessions(max: usize) -> Sessions {
        Sessions::new(
            policy(),
            max,
            Clock::start(),
            Arc::new(SessionKeys::random().expect("rng")),
            Duration::from_secs(3600),
        )
    }

    fn policy() -> EnforcementPolicy {
        EnforcementPolicy {
            min_time: Duration::from_secs(5),
            permit_without_stream: false,
            max_ping_strikes: 2,
        }
    }

    #[test]
    fn bounded_and_looked_up_by_id() {
        let s = sessions(2);
        let (a, _) = s.open().expect("a");
        let (_b, _) = s.open().expect("b");
        assert!(matches!(s.open(), Err(OpenError::Full)));
        assert_eq!(s.get(&a.id).map(|x| x.id.clone()).ok(), Some(a.id.clone()));
        assert!(matches!(
            s.get("nope"),
            Err(OpenError::Token(TokenError::Malformed))
        ));
        assert_eq!(a.source().len(), SOURCE_PREFIX);
        assert_ne!(a.id, a.resume_token);
    }

    #[test]
    fn idle_sessions_are_swept_but_not_those_with_a_stream() {
        let s = sessions(10);
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
        let s = sessions(10);
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

    #[test]
    fn an_id_of_another_replica_is_adopted_and_a_forged_one_refused() {
        let shared = || {
            Arc::new(
                SessionKeys::from_secrets(&[("k1".into(), "0123456789abcdef-shared".into())])
                    .expect("keys"),
            )
        };
        let ttl = Duration::from_secs(60);
        let a = Sessions::new(policy(), 10, Clock::start(), shared(), ttl);
        let b = Sessions::new(policy(), 10, Clock::start(), shared(), ttl);
        let (opened, _) = a.open().expect("open on a");
        let adopted = b.get(&opened.id).expect("adopted on b");
        assert_eq!(adopted.key, opened.key);
        assert_eq!(adopted.resume_token, opened.resume_token);
        // Change the MAC's last digit to a different one (replacing it with a fixed
        // digit would leave the id genuine whenever it already ended in that digit).
        let (head, last) = opened.id.split_at(opened.id.len() - 1);
        let forged = format!("{head}{}", if last == "0" { "1" } else { "0" });
        assert!(matches!(b.get(&forged), Err(OpenError::Token(_))));
        let alone = sessions(10);
        assert!(matches!(
            alone.get(&opened.id),
            Err(OpenError::Token(TokenError::UnknownKey))
        ));
    }

    #[test]
    fn a_newer_stream_of_a_key_fences_the_older() {
        let s = sessions(10);
        let (a, _) = s.open().expect("a");
        let (first, mut older) = a.fence("k");
        let (second, _newer) = a.fence("k");
        assert_eq!((first, second), (1, 2));
        assert!(older.has_changed().expect("open"));
        assert_eq!(*older.borrow_and_update(), 2);
        let (other, _) = a.fence("other");
        assert_eq!(other, 1);
    }
}
