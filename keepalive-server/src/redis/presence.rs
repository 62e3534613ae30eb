//! What replicas must know of each other's streams: whether a session has a stream open
//! somewhere, and which stream of a session is the newest.
//!
//! **Presence.** Heartbeats are judged like HTTP/2 PINGs: with a stream open, one per
//! `min_time`; without, the 2-hour rule (or none, without `permit_without_stream`). A
//! load balancer spreads a browser's HTTP/1.1 calls over its upstreams, so the heartbeats
//! of a session may reach replica B while its stream is open on A: judged by B's view
//! alone, they would be strikes and end in `too_many_pings`. So every stream writes a
//! field into its session's hash — `st:<replica>:<stream>` = the time it expires, renewed
//! every second while the stream lives, deleted when it ends — and a replica with no
//! stream of its own for a session asks whether another one has. A replica that dies
//! leaves fields that expire by their time, not by anyone's cleanup (socket.io's
//! session-recovery bug was a write from the dying node's close handler).
//!
//! **Fencing.** A stream names itself with the `stream_key` of its resume request (the
//! client's stream, stable across its reconnects). Attaching increments `gen:<key>` in the
//! session's hash; a stream whose generation is no longer the newest ends (ABORTED
//! `superseded`): the client has resumed it elsewhere, so the old one — typically on a
//! connection the client gave up on, maybe on another replica — stops holding resources
//! and presence. It checks once a second, with its presence renewal.

use super::{RedisStore, StoreError};
use redis::aio::ConnectionManager;
use std::sync::Arc;
use std::time::Duration;

/// How often a stream renews its presence and checks its generation.
pub const RENEW_EVERY: Duration = Duration::from_secs(1);
/// How long a presence field lives without a renewal.
const PRESENCE_TTL: Duration = Duration::from_secs(5);
/// How long a session's hash lives after its last write.
const SESSION_TTL: Duration = Duration::from_secs(3600);

/// Shared session state in Redis for this replica. Cheap to clone.
#[derive(Clone)]
pub struct SharedSessions {
    store: RedisStore,
    conn: ConnectionManager,
    replica: Arc<str>,
}

impl std::fmt::Debug for SharedSessions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SharedSessions")
            .field("store", &self.store)
            .field("replica", &self.replica)
            .finish()
    }
}

fn session_key(session: &str) -> String {
    format!("{{ka:sess:{session}}}")
}

fn now_ms() -> u64 {
    crate::log::now_ms()
}

impl SharedSessions {
    /// Shared sessions on `store`, this replica named `replica` (unique among replicas).
    ///
    /// # Errors
    /// If Redis cannot be reached now.
    pub async fn new(store: &RedisStore, replica: &str) -> Result<Self, StoreError> {
        Ok(SharedSessions {
            store: store.clone(),
            conn: store.manager().await?,
            replica: replica.into(),
        })
    }

    /// This replica's name.
    pub fn replica(&self) -> &str {
        &self.replica
    }

    /// Attaches stream `stream` (this replica's id for it) of `session` with the client's
    /// `stream_key` (empty: not fenced): records its presence and, with a key, makes it the
    /// newest of that key. Returns its generation (0 without a key).
    ///
    /// # Errors
    /// A Redis failure.
    pub async fn attach(
        &self,
        session: &str,
        stream: u64,
        stream_key: &str,
    ) -> Result<u64, StoreError> {
        self.present(session, stream, stream_key, true).await
    }

    /// Renews the presence of `stream` and returns the newest generation of
    /// `stream_key` (0 without a key).
    ///
    /// # Errors
    /// A Redis failure.
    pub async fn renew(
        &self,
        session: &str,
        stream: u64,
        stream_key: &str,
    ) -> Result<u64, StoreError> {
        self.present(session, stream, stream_key, false).await
    }

    /// One atomic round: the presence of `stream` written (expiring in [`PRESENCE_TTL`]),
    /// the session's expiry pushed back, and the generation of `stream_key` bumped
    /// (`attach`) or read (`renew`).
    async fn present(
        &self,
        session: &str,
        stream: u64,
        stream_key: &str,
        bump: bool,
    ) -> Result<u64, StoreError> {
        let key = session_key(session);
        let mut pipe = redis::pipe();
        pipe.atomic()
            .hset(
                &key,
                self.presence_field(stream),
                now_ms() + PRESENCE_TTL.as_millis() as u64,
            )
            .ignore()
            .pexpire(&key, SESSION_TTL.as_millis() as i64)
            .ignore();
        if !stream_key.is_empty() {
            let field = format!("gen:{stream_key}");
            if bump {
                pipe.hincr(&key, field, 1);
            } else {
                pipe.hget(&key, field);
            }
        }
        let mut conn = self.conn.clone();
        let result: redis::RedisResult<Vec<Option<u64>>> = pipe.query_async(&mut conn).await;
        self.store.note(&result);
        let gens = result.map_err(|e| StoreError(format!("Redis: {e}")))?;
        Ok(gens.first().copied().flatten().unwrap_or(0))
    }

    /// `stream` of `session` ended.
    pub async fn detach(&self, session: &str, stream: u64) {
        let mut conn = self.conn.clone();
        let result: redis::RedisResult<()> = redis::cmd("HDEL")
            .arg(session_key(session))
            .arg(self.presence_field(stream))
            .query_async(&mut conn)
            .await;
        self.store.note(&result);
    }

    /// Whether a replica other than this one holds a live stream of `session`.
    ///
    /// # Errors
    /// A Redis failure.
    pub async fn streams_elsewhere(&self, session: &str) -> Result<bool, StoreError> {
        let mut conn = self.conn.clone();
        let result: redis::RedisResult<Vec<(String, String)>> = redis::cmd("HGETALL")
            .arg(session_key(session))
            .query_async(&mut conn)
            .await;
        self.store.note(&result);
        let fields = result.map_err(|e| StoreError(format!("Redis: {e}")))?;
        let mine = format!("st:{}:", self.replica);
        let now = now_ms();
        Ok(fields.iter().any(|(field, until)| {
            field.starts_with("st:")
                && !field.starts_with(&mine)
                && until.parse::<u64>().is_ok_and(|until| until > now)
        }))
    }

    fn presence_field(&self, stream: u64) -> String {
        format!("st:{}:{stream}", self.replica)
    }
}
