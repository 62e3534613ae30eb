//! Redis as the state replicas share (feature `redis`): the event logs
//! ([`RedisLog`]), and what a browser session needs to move between replicas — which
//! replicas hold a stream of it ([`presence`]) and which stream of it is the newest
//! ([`fencing`](presence)).
//!
//! Why Redis Streams: a stream is an append-only log with replay by ID (`XRANGE`), a
//! blocking tail (`XREAD BLOCK`), bounded retention (`MAXLEN`) and Lua scripts for the
//! atomic parts; Debian ships 7.0; the research is in `shared/SCALE-OUT.md`.
//!
//! What the anchors got wrong, and what this does instead:
//! - a Redis restart without persistence resets the data, and a reader that tracks only
//!   a cursor skips events while its sequence still looks unbroken (SignalR lost 225
//!   messages silently): every log has an **epoch**, kept in the data, written by the same
//!   script that numbers the events, and checked on every entry read; a lost log gets a new
//!   epoch, which is its `log_id`, so every replica and every client sees a reset as a
//!   reset;
//! - a replica that dies takes nothing with it: the session's identity is a signed token
//!   (any replica verifies it), the events are in Redis, and presence entries expire;
//! - the tail is one dedicated connection per log per replica (an `XREAD BLOCK` must not
//!   sit in front of other commands on a multiplexed connection), with a response timeout
//!   above the block time (redis-rs's default of 500 ms breaks `BLOCK 1000`).
//!
//! # Keys
//! Every key of one log or one session shares a hash tag, so a Redis Cluster keeps them in
//! one slot (scripts need that): `{ka:log:NAME}:s` (the stream: entry ID `<seq>-0`,
//! fields `d` the event and `e` the epoch), `{ka:log:NAME}:m` (hash: `e` epoch, `s` the
//! last sequence), `{ka:log:NAME}:i:KEY` (an idempotency key: `epoch:seq`, with a TTL),
//! `{ka:sess:ID}` (hash: open streams per replica, newest stream per stream key).
//!
//! # Layout
//! - this file: [`RedisStore`], the connection settings every part shares, and whether
//!   Redis is reachable;
//! - [`log`]: [`RedisLog`], the event log on a Redis stream;
//! - [`presence`]: [`SharedSessions`], stream presence and fencing across replicas.

pub mod log;
pub mod presence;

pub use log::{RedisLog, RedisLogOptions};
pub use presence::SharedSessions;

use redis::aio::{ConnectionManager, ConnectionManagerConfig, MultiplexedConnection};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;

/// How long a command may take before it counts as failed (above every `BLOCK`).
pub const RESPONSE_TIMEOUT: Duration = Duration::from_secs(3);
/// How long connecting may take.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);

/// A Redis server the replicas share: its address, and whether it answers. Cheap to
/// clone.
#[derive(Clone)]
pub struct RedisStore {
    client: redis::Client,
    url: Arc<str>,
    reachable: Arc<watch::Sender<bool>>,
}

impl std::fmt::Debug for RedisStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisStore")
            .field("url", &self.url)
            .field("reachable", &*self.reachable.borrow())
            .finish()
    }
}

/// Redis could not be used.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoreError(pub String);

impl std::fmt::Display for StoreError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for StoreError {}

impl RedisStore {
    /// The store at `url` (`redis://HOST:PORT/DB`); nothing is connected yet.
    ///
    /// # Errors
    /// A URL redis-rs does not accept.
    pub fn new(url: &str) -> Result<Self, StoreError> {
        let client = redis::Client::open(url)
            .map_err(|e| StoreError(format!("bad Redis URL {url:?}: {e}")))?;
        Ok(RedisStore {
            client,
            url: url.into(),
            reachable: Arc::new(watch::channel(false).0),
        })
    }

    /// The URL.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// Whether the last command to Redis succeeded: `false` from the first failure until
    /// the next success (the health service says NOT_SERVING meanwhile).
    pub fn reachable(&self) -> watch::Receiver<bool> {
        self.reachable.subscribe()
    }

    /// Records how a command went.
    pub(crate) fn note<T, E>(&self, result: &Result<T, E>) {
        let ok = result.is_ok();
        self.reachable
            .send_if_modified(|r| std::mem::replace(r, ok) != ok);
    }

    /// A connection for commands that do not block, reconnecting by itself (with backoff)
    /// after a failure; commands time out after [`RESPONSE_TIMEOUT`].
    ///
    /// # Errors
    /// If Redis cannot be reached now.
    pub async fn manager(&self) -> Result<ConnectionManager, StoreError> {
        let config = ConnectionManagerConfig::new()
            .set_response_timeout(Some(RESPONSE_TIMEOUT))
            .set_connection_timeout(Some(CONNECT_TIMEOUT))
            .set_max_delay(Duration::from_secs(2))
            .set_number_of_retries(3);
        let result = self.client.get_connection_manager_with_config(config).await;
        self.note(&result);
        result.map_err(|e| StoreError(format!("cannot reach Redis at {}: {e}", self.url)))
    }

    /// A connection of its own (for a blocking read), commands timing out after
    /// [`RESPONSE_TIMEOUT`].
    ///
    /// # Errors
    /// If Redis cannot be reached now.
    pub async fn dedicated(&self) -> Result<MultiplexedConnection, StoreError> {
        let config = redis::AsyncConnectionConfig::new()
            .set_response_timeout(Some(RESPONSE_TIMEOUT))
            .set_connection_timeout(Some(CONNECT_TIMEOUT));
        let result = self
            .client
            .get_multiplexed_async_connection_with_config(&config)
            .await;
        self.note(&result);
        result.map_err(|e| StoreError(format!("cannot reach Redis at {}: {e}", self.url)))
    }
}

/// 128 random bits as hex: epochs.
pub(crate) fn random_epoch() -> String {
    crate::browser::ids::unique_hex128()
}
