//! [`RedisLog`]: an [`EventLog`] in a Redis stream, shared by every replica.
//!
//! - **Append** is one Lua script: it checks the idempotency key, numbers the event (the
//!   meta hash's `s` + 1), adds it to the stream with the ID `<seq>-0` and the log's
//!   epoch, trims the stream (`MAXLEN ~`), and remembers the key — atomically, so two
//!   replicas publishing at once get 1, 2 and never 1, 1, and a retried publish gets the
//!   sequence it got the first time, whichever replica it reaches.
//! - **Tail**: one task per log per replica reads the stream with `XREAD BLOCK` on a
//!   connection of its own and feeds a local ring, whose head is the log's
//!   [`watch_head`](EventLog::watch_head): every subscriber on this replica is served from
//!   memory, none holds a Redis connection.
//! - **Epoch**: the meta hash's `e`, set once (`HSETNX`) by whichever script finds it
//!   missing. It is this log's `log_id`. Every entry carries it; the tail checks it on
//!   every entry and re-reads the meta hash whenever it is idle or after an error, so a
//!   log whose data was lost (Redis restarted without persistence, a `FLUSHALL`) is
//!   noticed within a second: the ring is dropped, the head goes back, and the streams of
//!   this log end with a GoAway `log_reset` — their clients resume into the new epoch and
//!   are told of the reset, never a silent skip.
//! - **Replay** older than the ring reads the stream (`XRANGE`); what even the stream no
//!   longer holds (trimmed) is an explicit [`Gap`].
//! - **Redis away**: appends fail (the publisher retries with its key), the tail reconnects
//!   with backoff, the store says unreachable (health NOT_SERVING); nothing is skipped on
//!   the way back.

use super::{RedisStore, StoreError, random_epoch};
use crate::log::ring::Ring;
use crate::log::{Appended, Batch, EventLog, LogError, LogEvent, LogFuture};
use keepalive_proto::v1::Gap;
use redis::aio::{ConnectionManager, MultiplexedConnection};
use redis::streams::{StreamId, StreamRangeReply, StreamReadReply};
use std::fmt;
use std::marker::PhantomData;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;
use tokio::sync::watch;

/// How long one `XREAD` blocks (well under [`super::RESPONSE_TIMEOUT`]).
const BLOCK_MS: u64 = 1000;
/// Most entries one `XREAD` returns.
const TAIL_COUNT: usize = 512;

/// Numbers and appends one event. KEYS: stream, meta, idempotency key (`""`: none).
/// ARGV: payload, epoch candidate, MAXLEN, key TTL in seconds. Returns `{seq, epoch, dup}`.
const APPEND: &str = r"
local epoch = redis.call('HGET', KEYS[2], 'e')
if not epoch then
  epoch = ARGV[2]
  redis.call('DEL', KEYS[1])
  redis.call('HSET', KEYS[2], 'e', epoch, 's', 0)
end
if KEYS[3] ~= '' then
  local seen = redis.call('GET', KEYS[3])
  if seen then
    local e, s = string.match(seen, '^(.+):(%d+)$')
    if e == epoch then return {tonumber(s), epoch, 1} end
  end
end
local seq = redis.call('HINCRBY', KEYS[2], 's', 1)
redis.call('XADD', KEYS[1], 'MAXLEN', '~', ARGV[3], seq .. '-0', 'd', ARGV[1], 'e', epoch)
if KEYS[3] ~= '' then
  redis.call('SET', KEYS[3], epoch .. ':' .. seq, 'EX', ARGV[4])
end
return {seq, epoch, 0}
";

/// The log's epoch, created if missing (then whatever stream is there is not of it).
/// KEYS: stream, meta. ARGV: epoch candidate. Returns the epoch.
const EPOCH: &str = r"
local epoch = redis.call('HGET', KEYS[2], 'e')
if not epoch then
  epoch = ARGV[1]
  redis.call('DEL', KEYS[1])
  redis.call('HSET', KEYS[2], 'e', epoch, 's', 0)
end
return epoch
";

/// Settings of a [`RedisLog`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RedisLogOptions {
    /// Events each replica keeps in memory for its subscribers.
    pub ring_capacity: usize,
    /// Events the stream keeps (`MAXLEN ~`, so a little more): what a resume can still
    /// replay; older is a Gap.
    pub retention: usize,
    /// How long an idempotency key is remembered (at least twice the clients' retry
    /// window).
    pub idempotency_ttl: Duration,
}

impl Default for RedisLogOptions {
    fn default() -> Self {
        RedisLogOptions {
            ring_capacity: 10_000,
            retention: 100_000,
            idempotency_ttl: Duration::from_secs(600),
        }
    }
}

struct Keys {
    stream: String,
    meta: String,
    idempotency_prefix: String,
}

impl Keys {
    fn new(name: &str) -> Self {
        let tag = format!("{{ka:log:{name}}}");
        Keys {
            stream: format!("{tag}:s"),
            meta: format!("{tag}:m"),
            idempotency_prefix: format!("{tag}:i:"),
        }
    }
}

/// What this replica knows of the log.
struct State<E> {
    epoch: Arc<str>,
    ring: Ring<E>,
}

/// An event log in Redis, shared by every replica that opens the same name on the same
/// Redis; see the module docs. `E` is stored protobuf-encoded.
pub struct RedisLog<E> {
    name: Arc<str>,
    store: RedisStore,
    keys: Arc<Keys>,
    options: RedisLogOptions,
    conn: ConnectionManager,
    state: Arc<Mutex<State<E>>>,
    head: Arc<watch::Sender<u64>>,
    append_script: redis::Script,
    tail: tokio::task::JoinHandle<()>,
    event: PhantomData<fn() -> E>,
}

impl<E> fmt::Debug for RedisLog<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisLog")
            .field("name", &self.name)
            .field("store", &self.store)
            .field("options", &self.options)
            .finish_non_exhaustive()
    }
}

impl<E> Drop for RedisLog<E> {
    fn drop(&mut self) {
        self.tail.abort();
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

fn log_error(e: impl fmt::Display) -> LogError {
    LogError(format!("event log in Redis: {e}"))
}

/// The sequence of an entry ID `<seq>-0`.
fn sequence_of(id: &str) -> Option<u64> {
    id.split_once('-').and_then(|(s, _)| s.parse().ok())
}

fn field<'a>(entry: &'a StreamId, name: &str) -> Option<&'a [u8]> {
    match entry.map.get(name)? {
        redis::Value::BulkString(b) => Some(b),
        _ => None,
    }
}

/// Decodes an entry of epoch `epoch`: `None` when it is of another epoch (or not ours).
fn decode<E: LogEvent + prost::Message + Default>(entry: &StreamId, epoch: &str) -> Option<E> {
    let seq = sequence_of(&entry.id)?;
    if field(entry, "e")? != epoch.as_bytes() {
        return None;
    }
    let mut event = E::decode(field(entry, "d")?).ok()?;
    event.set_sequence(seq);
    Some(event)
}

impl<E: LogEvent + prost::Message + Default> RedisLog<E> {
    /// Opens the log `name` on `store` (created if new), loads its last events into this
    /// replica's ring, and starts tailing it.
    ///
    /// # Errors
    /// If Redis cannot be reached now.
    pub async fn open(
        store: &RedisStore,
        name: &str,
        options: RedisLogOptions,
    ) -> Result<Arc<Self>, LogError> {
        let keys = Arc::new(Keys::new(name));
        let mut conn = store.manager().await.map_err(|e| LogError(e.0))?;
        let epoch = ensure_epoch(&mut conn, &keys).await.map_err(log_error)?;
        let mut ring = Ring::new(options.ring_capacity);
        let recent: StreamRangeReply = redis::cmd("XREVRANGE")
            .arg(&keys.stream)
            .arg("+")
            .arg("-")
            .arg("COUNT")
            .arg(options.ring_capacity)
            .query_async(&mut conn)
            .await
            .map_err(log_error)?;
        let mut last_id = "0-0".to_owned();
        for entry in recent.ids.iter().rev() {
            if let Some(event) = decode::<E>(entry, &epoch) {
                ring.push(event);
                last_id.clone_from(&entry.id);
            }
        }
        let head = Arc::new(watch::channel(ring.head()).0);
        let state = Arc::new(Mutex::new(State {
            epoch: epoch.into(),
            ring,
        }));
        let tail = tokio::spawn(tail::<E>(
            store.clone(),
            keys.clone(),
            state.clone(),
            head.clone(),
            last_id,
            options.ring_capacity,
        ));
        tracing::info!(log = name, redis = store.url(), epoch = %lock(&state).epoch, head = *head.borrow(), "event log in Redis opened");
        Ok(Arc::new(RedisLog {
            name: name.into(),
            store: store.clone(),
            keys,
            options,
            conn,
            state,
            head,
            append_script: redis::Script::new(APPEND),
            tail,
            event: PhantomData,
        }))
    }

    async fn append_now(&self, event: E, key: Option<String>) -> Result<Appended, LogError> {
        let payload = event.encode_to_vec();
        let idempotency_key = key
            .map(|k| format!("{}{k}", self.keys.idempotency_prefix))
            .unwrap_or_default();
        let mut conn = self.conn.clone();
        let result: redis::RedisResult<(u64, String, u8)> = self
            .append_script
            .key(&self.keys.stream)
            .key(&self.keys.meta)
            .key(&idempotency_key)
            .arg(payload)
            .arg(random_epoch())
            .arg(self.options.retention)
            .arg(self.options.idempotency_ttl.as_secs().max(1))
            .invoke_async(&mut conn)
            .await;
        self.store.note(&result);
        let (sequence, _epoch, duplicate) = result.map_err(log_error)?;
        Ok(Appended {
            sequence,
            duplicate: duplicate == 1,
        })
    }

    async fn read_now(&self, after: u64, max: usize) -> Result<Batch<E>, LogError> {
        let (epoch, from_ring) = {
            let st = lock(&self.state);
            let start = after.saturating_add(1);
            let from_ring = (start >= st.ring.oldest()).then(|| st.ring.read_after(after, max));
            (st.epoch.clone(), from_ring)
        };
        if let Some(batch) = from_ring {
            return Ok(batch);
        }
        // Older than this replica's ring: the stream itself.
        let mut conn = self.conn.clone();
        let result: redis::RedisResult<StreamRangeReply> = redis::cmd("XRANGE")
            .arg(&self.keys.stream)
            .arg(format!("{}-0", after.saturating_add(1)))
            .arg("+")
            .arg("COUNT")
            .arg(max)
            .query_async(&mut conn)
            .await;
        self.store.note(&result);
        let reply = result.map_err(log_error)?;
        let mut events = Vec::with_capacity(reply.ids.len());
        for entry in &reply.ids {
            match decode::<E>(entry, &epoch) {
                Some(event) => events.push(event),
                // Another epoch: the log was reset under us; the tail will notice, and the
                // stream reading this ends when the log_id changes.
                None => return Ok(Batch::default()),
            }
        }
        let start = after.saturating_add(1);
        let first = events.first().map(Sequenced::sequence).unwrap_or_else(|| {
            // Nothing at or after `start` in the stream: what this replica holds begins
            // at its ring.
            lock(&self.state).ring.oldest()
        });
        let gap = (first > start).then(|| Gap {
            from_sequence: start,
            missed: first - start,
        });
        Ok(Batch { gap, events })
    }
}

use keepalive_proto::resume::Sequenced;

/// The log's epoch, created if missing.
async fn ensure_epoch(
    conn: &mut impl redis::aio::ConnectionLike,
    keys: &Keys,
) -> redis::RedisResult<String> {
    redis::Script::new(EPOCH)
        .key(&keys.stream)
        .key(&keys.meta)
        .arg(random_epoch())
        .invoke_async(conn)
        .await
}

/// The tail: this replica's view of the log follows the stream (see the module docs).
async fn tail<E: LogEvent + prost::Message + Default>(
    store: RedisStore,
    keys: Arc<Keys>,
    state: Arc<Mutex<State<E>>>,
    head: Arc<watch::Sender<u64>>,
    mut last_id: String,
    capacity: usize,
) {
    let mut backoff = Duration::from_millis(100);
    let mut conn: Option<MultiplexedConnection> = None;
    loop {
        let c = match &mut conn {
            Some(c) => c,
            None => match store.dedicated().await {
                Ok(c) => conn.insert(c),
                Err(StoreError(e)) => {
                    tracing::warn!(error = %e, "event log tail: Redis unreachable; retrying");
                    // ±20% so that the replicas do not all come back in the same instant.
                    tokio::time::sleep(backoff.mul_f64(0.8 + 0.4 * fastrand::f64())).await;
                    backoff = (backoff * 2).min(Duration::from_secs(2));
                    continue;
                }
            },
        };
        match tail_once::<E>(c, &keys, &state, &head, &mut last_id, capacity).await {
            Ok(()) => {
                store.note::<(), ()>(&Ok(()));
                backoff = Duration::from_millis(100);
            }
            Err(e) => {
                store.note::<(), _>(&Err(()));
                tracing::warn!(error = %e, "event log tail: Redis failed; reconnecting");
                conn = None;
                // ±20% so that the replicas do not all come back in the same instant.
                tokio::time::sleep(backoff.mul_f64(0.8 + 0.4 * fastrand::f64())).await;
                backoff = (backoff * 2).min(Duration::from_secs(2));
            }
        }
    }
}

/// One round: the epoch checked, then one blocking read applied.
async fn tail_once<E: LogEvent + prost::Message + Default>(
    conn: &mut MultiplexedConnection,
    keys: &Keys,
    state: &Mutex<State<E>>,
    head: &watch::Sender<u64>,
    last_id: &mut String,
    capacity: usize,
) -> redis::RedisResult<()> {
    let epoch = ensure_epoch(conn, keys).await?;
    if *lock(state).epoch != *epoch {
        reset(state, head, &epoch, capacity);
        "0-0".clone_into(last_id);
    }
    let reply: Option<StreamReadReply> = redis::cmd("XREAD")
        .arg("BLOCK")
        .arg(BLOCK_MS)
        .arg("COUNT")
        .arg(TAIL_COUNT)
        .arg("STREAMS")
        .arg(&keys.stream)
        .arg(&*last_id)
        .query_async(conn)
        .await?;
    let Some(reply) = reply else {
        return Ok(());
    };
    let mut st = lock(state);
    for entry in reply.keys.iter().flat_map(|k| &k.ids) {
        let Some(seq) = sequence_of(&entry.id) else {
            continue;
        };
        let Some(event) = decode::<E>(entry, &st.epoch) else {
            // Another epoch: the next round's check resets.
            break;
        };
        last_id.clone_from(&entry.id);
        let ring_head = st.ring.head();
        if seq <= ring_head && st.ring.depth() > 0 {
            continue;
        }
        if st.ring.depth() > 0 && seq != ring_head + 1 {
            // Trimmed past what this replica read: start the ring again at what is there.
            st.ring = Ring::new(capacity);
        }
        st.ring.push(event);
        head.send_replace(seq);
    }
    Ok(())
}

/// The log's data was lost: the new epoch, an empty ring, the head back at 0.
fn reset<E: LogEvent>(
    state: &Mutex<State<E>>,
    head: &watch::Sender<u64>,
    epoch: &str,
    capacity: usize,
) {
    let mut st = lock(state);
    tracing::warn!(old = %st.epoch, new = epoch, "event log in Redis was reset (its data was lost): a new epoch");
    st.epoch = epoch.into();
    st.ring = Ring::new(capacity);
    head.send_replace(0);
}

impl<E: LogEvent + prost::Message + Default> EventLog<E> for RedisLog<E> {
    fn log_id(&self) -> Arc<str> {
        lock(&self.state).epoch.clone()
    }

    fn is_log(&self, log_id: &str) -> bool {
        *lock(&self.state).epoch == *log_id
    }

    fn head(&self) -> u64 {
        lock(&self.state).ring.head()
    }

    fn depth(&self) -> u64 {
        lock(&self.state).ring.depth()
    }

    fn watch_head(&self) -> watch::Receiver<u64> {
        self.head.subscribe()
    }

    fn append(&self, event: E, idempotency_key: Option<String>) -> LogFuture<'_, Appended> {
        Box::pin(self.append_now(event, idempotency_key))
    }

    fn read_after(&self, after: u64, max: usize) -> LogFuture<'_, Batch<E>> {
        Box::pin(self.read_now(after, max))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entry_ids_are_sequences() {
        assert_eq!(sequence_of("42-0"), Some(42));
        assert_eq!(sequence_of("1700000000000-3"), Some(1_700_000_000_000));
        assert_eq!(sequence_of("x"), None);
    }

    #[test]
    fn keys_share_one_hash_tag() {
        let k = Keys::new("feed");
        assert_eq!(k.stream, "{ka:log:feed}:s");
        assert_eq!(k.meta, "{ka:log:feed}:m");
        assert!(k.idempotency_prefix.starts_with("{ka:log:feed}"));
    }
}
