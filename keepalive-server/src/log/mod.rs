//! Event logs: numbered events, replayable after any sequence — what a resumable stream
//! reads.
//!
//! Why a log and not a broadcast channel: a subscriber that reconnects must get exactly
//! the events it missed, in order, once each, and a subscriber that cannot be served
//! (it is further behind than the log holds) must be told so explicitly, with a `Gap`.
//! A broadcast channel drops messages for slow receivers and cannot replay. So each
//! subscription *reads* the log by sequence number (`read_after`) and sleeps on a
//! [`watch`] of the head between reads: a watch never lags, it only says "the head moved".
//!
//! Sequences start at 1 and have no holes; `log_id` names the sequence space. A client's
//! position is meaningful only together with the `log_id` it came from: when the log is
//! lost (a restart of a memory log), the new log gets a new id. One log is one channel:
//! a service with several (one per symbol, per room) keeps one log for each, so every
//! stream's sequence has no holes.
//!
//! The log is generic over your event type `E` ([`LogEvent`]: it has a sequence field the
//! log fills in, see [`keepalive_proto::sequenced!`]).
//!
//! # Implementations
//! - [`MemoryLog`]: a ring of the last N events; a random `log_id` per process.
//! - [`FileLog`]: the same ring, plus an append-only file that holds the `log_id` and
//!   every event (protobuf-encoded: `E: prost::Message`), so a restarted server continues
//!   the sequence.
//!
//! Both are a [`local::LocalLog`] over a different [`local::Journal`].
//!
//! # A shared store for several replicas
//! The trait is shaped for it: `append` and `read_after` are asynchronous and fallible
//! (a network store), and de-duplication by idempotency key is the log's job, so that it
//! is atomic with the append wherever the log lives. A replicated implementation would
//! append through the store (one sequence counter for all replicas, e.g. a Redis stream or
//! a Postgres sequence + table with a unique key on the idempotency key), keep a local
//! ring as a read cache, and move its head [`watch`] from the store's change feed
//! (XREAD BLOCK, LISTEN/NOTIFY). `head()` must then never run ahead of what `read_after`
//! can return on the same replica.

pub mod dedup;
pub mod file;
pub mod local;
pub mod memory;
pub mod ring;

pub use file::FileLog;
pub use memory::MemoryLog;

use keepalive_proto::resume::Sequenced;
use keepalive_proto::v1::Gap;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use tokio::sync::watch;

/// Most events one `read_after` of a resumable stream asks for.
pub const READ_BATCH: usize = 64;
/// How many idempotency keys a local log remembers (oldest forgotten first).
pub const DEDUP_CAPACITY: usize = 100_000;

/// A boxed future of a log operation.
pub type LogFuture<'a, T> = Pin<Box<dyn Future<Output = Result<T, LogError>> + Send + 'a>>;

/// What an event log's events must be: sequence-numbered, cheap enough to clone for each
/// subscriber, shareable between tasks, and printable in logs (prost messages are all
/// of these once they have a sequence).
pub trait LogEvent: Sequenced + Clone + fmt::Debug + Send + Sync + 'static {}

impl<E: Sequenced + Clone + fmt::Debug + Send + Sync + 'static> LogEvent for E {}

/// The result of an append.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Appended {
    /// The event's sequence.
    pub sequence: u64,
    /// True when the key was seen before: nothing was appended.
    pub duplicate: bool,
}

/// What `read_after` found.
#[derive(Clone, Debug, PartialEq)]
pub struct Batch<E> {
    /// Events the log no longer holds, right after the requested position; the events
    /// follow the gap without a hole.
    pub gap: Option<Gap>,
    /// Events in sequence order, without holes.
    pub events: Vec<E>,
}

impl<E> Default for Batch<E> {
    fn default() -> Self {
        Batch {
            gap: None,
            events: Vec::new(),
        }
    }
}

/// A log operation failed (a write to the event file, a store's network call).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LogError(pub String);

impl fmt::Display for LogError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for LogError {}

/// A sequence-numbered, replayable log of events of type `E`.
///
/// ```
/// use keepalive_server::log::{EventLog, MemoryLog};
/// # #[derive(Clone, Default, Debug)] struct Tick { sequence: u64, price: u32 }
/// # keepalive_proto::sequenced!(Tick);
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// let log = MemoryLog::<Tick>::new(1_000);
/// let first = log.append(Tick { price: 10, ..Tick::default() }, Some("k1".into())).await.unwrap();
/// let again = log.append(Tick { price: 10, ..Tick::default() }, Some("k1".into())).await.unwrap();
/// assert_eq!((first.sequence, again.sequence, again.duplicate), (1, 1, true));
/// let batch = log.read_after(0, 64).await.unwrap();
/// assert_eq!(batch.events[0].sequence, 1);
/// # }
/// ```
pub trait EventLog<E>: Send + Sync + fmt::Debug + 'static {
    /// The id of this log's sequence space: it changes when the log's data is lost, so a
    /// client's old position is never taken for a position in the new log.
    fn log_id(&self) -> Arc<str>;

    /// Whether `log_id` is this log's id now. Every stream asks it on every wake (has
    /// the log been reset under it?): a log can answer without cloning its id, which
    /// costs two atomic operations on a line every stream shares.
    fn is_log(&self, log_id: &str) -> bool {
        *self.log_id() == *log_id
    }

    /// The highest sequence appended (0 when empty).
    fn head(&self) -> u64;

    /// How many events the log holds for replay now.
    fn depth(&self) -> u64;

    /// A watch of [`head`](Self::head): changes after every append. It never shows a head
    /// that [`read_after`](Self::read_after) on the same process cannot return yet.
    fn watch_head(&self) -> watch::Receiver<u64>;

    /// Appends `event` (the log sets its sequence), or — when `idempotency_key` was seen
    /// before — returns the sequence that key got, with `duplicate = true`.
    fn append(&self, event: E, idempotency_key: Option<String>) -> LogFuture<'_, Appended>;

    /// Events with sequence greater than `after`, at most `max`, oldest first. When the
    /// log no longer holds `after + 1`, the batch starts with a [`Gap`] from `after + 1`
    /// up to the oldest event held.
    fn read_after(&self, after: u64, max: usize) -> LogFuture<'_, Batch<E>>;
}

impl<E, L: EventLog<E> + ?Sized> EventLog<E> for Arc<L> {
    fn log_id(&self) -> Arc<str> {
        (**self).log_id()
    }
    fn is_log(&self, log_id: &str) -> bool {
        (**self).is_log(log_id)
    }
    fn head(&self) -> u64 {
        (**self).head()
    }
    fn depth(&self) -> u64 {
        (**self).depth()
    }
    fn watch_head(&self) -> watch::Receiver<u64> {
        (**self).watch_head()
    }
    fn append(&self, event: E, idempotency_key: Option<String>) -> LogFuture<'_, Appended> {
        (**self).append(event, idempotency_key)
    }
    fn read_after(&self, after: u64, max: usize) -> LogFuture<'_, Batch<E>> {
        (**self).read_after(after, max)
    }
}

/// Wall clock, milliseconds since the Unix epoch.
pub fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}
