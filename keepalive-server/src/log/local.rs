//! A log that lives in this process: ring + idempotency memory + a journal.
//!
//! The memory log and the file log differ only in where an event goes *before* it becomes
//! visible: nowhere, or to the end of a file. [`LocalLog`] does the rest once, in one
//! critical section per append — check the key, number the event, journal it, add it to
//! the ring, move the head — so that sequences are assigned in the order events become
//! readable, and a subscriber woken by the head always finds the event in the ring.
//!
//! The journal write happens under the lock, synchronously: it is one small `write` to
//! the page cache (no fsync), cheaper than handing it to another thread and keeping the
//! order right.

use super::dedup::Dedup;
use super::ring::Ring;
use super::{Appended, Batch, EventLog, LogError, LogEvent, LogFuture};
use std::fmt;
use std::io;
use std::sync::{Arc, Mutex, MutexGuard};
use tokio::sync::watch;

/// Where an event is recorded before it is visible.
pub trait Journal<E>: Send + fmt::Debug + 'static {
    /// Records `event` (with its idempotency key). An error means it was not recorded
    /// and must not become visible.
    fn record(&mut self, event: &E, idempotency_key: Option<&str>) -> io::Result<()>;
}

/// A log in this process over the journal `J`.
#[derive(Debug)]
pub struct LocalLog<E, J> {
    log_id: Arc<str>,
    state: Mutex<State<E, J>>,
    head: watch::Sender<u64>,
}

#[derive(Debug)]
struct State<E, J> {
    ring: Ring<E>,
    dedup: Dedup,
    journal: J,
}

impl<E: LogEvent, J: Journal<E>> LocalLog<E, J> {
    /// A log with id `log_id` and the given content (a ring and keys loaded from a file,
    /// or empty ones).
    pub fn from_parts(log_id: String, ring: Ring<E>, dedup: Dedup, journal: J) -> Self {
        let head = watch::channel(ring.head()).0;
        LocalLog {
            log_id: log_id.into(),
            state: Mutex::new(State {
                ring,
                dedup,
                journal,
            }),
            head,
        }
    }

    fn lock(&self) -> MutexGuard<'_, State<E, J>> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn append_now(&self, mut event: E, key: Option<String>) -> Result<Appended, LogError> {
        let mut st = self.lock();
        if let Some(key) = &key
            && let Some(sequence) = st.dedup.get(key)
        {
            return Ok(Appended {
                sequence,
                duplicate: true,
            });
        }
        let sequence = st.ring.head().saturating_add(1);
        event.set_sequence(sequence);
        st.journal
            .record(&event, key.as_deref())
            .map_err(|e| LogError(format!("cannot record the event: {e}")))?;
        if let Some(key) = key {
            st.dedup.insert(&key, sequence);
        }
        st.ring.push(event);
        // Under the lock, so the head never moves backwards.
        self.head.send_replace(sequence);
        Ok(Appended {
            sequence,
            duplicate: false,
        })
    }
}

impl<E: LogEvent, J: Journal<E>> EventLog<E> for LocalLog<E, J> {
    fn log_id(&self) -> Arc<str> {
        self.log_id.clone()
    }

    fn is_log(&self, log_id: &str) -> bool {
        *self.log_id == *log_id
    }

    fn head(&self) -> u64 {
        self.lock().ring.head()
    }

    fn depth(&self) -> u64 {
        self.lock().ring.depth()
    }

    fn watch_head(&self) -> watch::Receiver<u64> {
        self.head.subscribe()
    }

    fn append(&self, event: E, idempotency_key: Option<String>) -> LogFuture<'_, Appended> {
        let result = self.append_now(event, idempotency_key);
        Box::pin(async move { result })
    }

    fn read_after(&self, after: u64, max: usize) -> LogFuture<'_, Batch<E>> {
        let batch = self.lock().ring.read_after(after, max);
        Box::pin(async move { Ok(batch) })
    }
}
