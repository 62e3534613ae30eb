//! The default log: memory only, lost with the process.
//!
//! Its `log_id` is random per process, so a client resuming after a restart sees a new
//! sequence space (its Welcome's `log_id`) instead of silently mixing two of them.

use super::dedup::Dedup;
use super::local::{Journal, LocalLog};
use super::ring::Ring;
use super::{DEDUP_CAPACITY, LogEvent};
use crate::browser::ids;

/// Records nothing.
#[derive(Debug, Default)]
pub struct Volatile;

impl<E> Journal<E> for Volatile {
    fn record(&mut self, _: &E, _: Option<&str>) -> std::io::Result<()> {
        Ok(())
    }
}

/// The in-memory log: a ring of the last `capacity` events of type `E`.
pub type MemoryLog<E> = LocalLog<E, Volatile>;

impl<E: LogEvent> LocalLog<E, Volatile> {
    /// A new, empty memory log holding the last `capacity` events (at least 1), with a
    /// fresh random `log_id`.
    pub fn new(capacity: usize) -> Self {
        LocalLog::from_parts(
            ids::unique_hex128(),
            Ring::new(capacity),
            Dedup::new(DEDUP_CAPACITY),
            Volatile,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::log::EventLog;

    #[derive(Clone, Debug, Default, PartialEq)]
    struct Ev {
        sequence: u64,
        text: String,
    }
    keepalive_proto::sequenced!(Ev);

    fn ev(text: &str) -> Ev {
        Ev {
            sequence: 0,
            text: text.into(),
        }
    }

    #[tokio::test]
    async fn append_dedup_read_and_watch() {
        let log = MemoryLog::new(5);
        let mut head = log.watch_head();
        let a = log
            .append(ev("a"), Some("k1".into()))
            .await
            .expect("append");
        assert_eq!((a.sequence, a.duplicate), (1, false));
        assert!(head.has_changed().unwrap_or(false));
        assert_eq!(*head.borrow_and_update(), 1);
        let again = log
            .append(ev("other"), Some("k1".into()))
            .await
            .expect("append");
        assert_eq!((again.sequence, again.duplicate), (1, true));
        assert!(!head.has_changed().unwrap_or(true));
        let b = log.append(ev("b"), None).await.expect("append");
        assert_eq!(b.sequence, 2);
        let batch = log.read_after(0, 64).await.expect("read");
        let got: Vec<_> = batch
            .events
            .iter()
            .map(|e| (e.sequence, e.text.as_str()))
            .collect();
        assert_eq!(got, [(1, "a"), (2, "b")]);
        assert_eq!((log.head(), log.depth()), (2, 2));
        assert_ne!(log.log_id(), MemoryLog::<Ev>::new(5).log_id());
    }
}
