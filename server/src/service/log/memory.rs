//! The default log: memory only, lost with the process.
//!
//! Its `log_id` is random per process, so a client resuming after a restart sees a new
//! sequence space (Welcome.log_id) instead of silently mixing two of them.

use super::dedup::Dedup;
use super::local::{Journal, LocalLog};
use super::ring::Ring;
use super::{DEDUP_CAPACITY, LogError};
use crate::service::ids;
use proto::v1::Event;

/// Records nothing.
#[derive(Debug, Default)]
pub struct Volatile;

impl Journal for Volatile {
    fn record(&mut self, _: &Event, _: Option<&str>) -> std::io::Result<()> {
        Ok(())
    }
}

/// The in-memory log: a ring of `--replay-capacity` events.
pub type MemoryLog = LocalLog<Volatile>;

/// A new, empty memory log holding the last `capacity` events.
pub fn open(capacity: usize) -> Result<MemoryLog, LogError> {
    let log_id = ids::random_hex128().map_err(|e| LogError(format!("no randomness: {e}")))?;
    Ok(LocalLog::from_parts(
        log_id,
        Ring::new(capacity),
        Dedup::new(DEDUP_CAPACITY),
        Volatile,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::service::log::{EventLog, NewEvent};

    fn new(text: &str, key: Option<&str>) -> NewEvent {
        NewEvent {
            source: "t".into(),
            text: text.into(),
            idempotency_key: key.map(Into::into),
        }
    }

    #[tokio::test]
    async fn append_dedup_read_and_watch() {
        let log = open(5).expect("log");
        let mut head = log.watch_head();
        let a = log.append(new("a", Some("k1"))).await.expect("append");
        assert_eq!((a.sequence, a.duplicate), (1, false));
        assert!(head.has_changed().unwrap_or(false));
        assert_eq!(*head.borrow_and_update(), 1);
        let again = log.append(new("other", Some("k1"))).await.expect("append");
        assert_eq!((again.sequence, again.duplicate), (1, true));
        assert!(!head.has_changed().unwrap_or(true));
        let b = log.append(new("b", None)).await.expect("append");
        assert_eq!(b.sequence, 2);
        let batch = log.read_after(0, 64).await.expect("read");
        let texts: Vec<_> = batch.events.iter().map(|e| e.text.as_str()).collect();
        assert_eq!(texts, ["a", "b"]);
        assert!(batch.events.iter().all(|e| e.published_at_ms > 0));
        assert_eq!((log.head(), log.depth()), (2, 2));
        assert_ne!(log.log_id(), open(5).expect("log").log_id());
    }
}
