//! The event log behind the feed: numbered events, replayable after any sequence.
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
//! lost (a restart of a memory log), the new log gets a new id.
//!
//! # Implementations
//! - [`memory::MemoryLog`]: a ring of the last `--replay-capacity` events; a random
//!   `log_id` per process.
//! - [`file::FileLog`] (`--event-log FILE`): the same ring, plus an append-only file that
//!   holds the `log_id` and every event, so a restarted server continues the sequence.
//!
//! Both are a [`local::LocalLog`] over a different [`local::Journal`].
//!
//! # A shared store for several replicas (later)
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

use proto::v1::{Event, Gap};
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use tokio::sync::watch;

/// Most events one `read_after` returns.
pub const READ_BATCH: usize = 64;
/// How many idempotency keys are remembered (oldest forgotten first).
pub const DEDUP_CAPACITY: usize = 100_000;

/// A boxed future of a log operation.
pub type LogFuture<'a, T> = Pin<Box<dyn Future<Output = Result<T, LogError>> + Send + 'a>>;

/// An event to append.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NewEvent {
    /// Who published it ("ticker", a session id prefix, "anon").
    pub source: String,
    /// The text.
    pub text: String,
    /// Retries with the same key get the first append's sequence. `None`: never
    /// de-duplicated (the ticker).
    pub idempotency_key: Option<String>,
}

/// The result of an append.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Appended {
    /// The event's sequence.
    pub sequence: u64,
    /// True when the key was seen before: nothing was appended.
    pub duplicate: bool,
}

/// What `read_after` found.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Batch {
    /// Events the log no longer holds, right after the requested position; the events
    /// follow the gap without a hole.
    pub gap: Option<Gap>,
    /// Events in sequence order, without holes.
    pub events: Vec<Event>,
}

/// A log operation failed (a write to the event file, later a store's network call).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LogError(pub String);

impl fmt::Display for LogError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for LogError {}

/// A sequence-numbered, replayable event log.
pub trait EventLog: Send + Sync + fmt::Debug + 'static {
    /// The id of this sequence space.
    fn log_id(&self) -> &str;

    /// The highest sequence appended (0 when empty).
    fn head(&self) -> u64;

    /// How many events the log holds for replay now.
    fn depth(&self) -> u64;

    /// A watch of [`head`](Self::head): changes after every append.
    fn watch_head(&self) -> watch::Receiver<u64>;

    /// Appends an event (or finds the one with the same idempotency key).
    fn append(&self, event: NewEvent) -> LogFuture<'_, Appended>;

    /// Events with sequence greater than `after`, at most `max`, oldest first. When the
    /// log no longer holds `after + 1`, the batch starts with a [`Gap`] from `after + 1`
    /// up to the oldest event held.
    fn read_after(&self, after: u64, max: usize) -> LogFuture<'_, Batch>;
}

/// Wall clock, milliseconds since the Unix epoch.
pub fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}
