//! Fault injection into the server's own connections: an optional hook for demos and tests.
//!
//! A client must survive what real networks do to it — a connection cut without a word, a
//! half-open socket that swallows everything, a server that refuses connections while it
//! restarts, a server that drains. Those failures are hard to cause from outside on
//! demand, so a server built with [`Builder::fault_injector`](crate::Builder::fault_injector)
//! can cause them to itself when asked (the demo's `Chaos` call does). A server built
//! without one carries none of this: its connections have no fault state to check.
//!
//! ```
//! use keepalive_server::FaultInjector;
//! use std::sync::Arc;
//! use std::time::Duration;
//!
//! let faults = Arc::new(FaultInjector::default());
//! let builder = keepalive_server::Server::builder().fault_injector(faults.clone());
//! // later, from a test or an admin call:
//! faults.stall(tokio::time::Instant::now(), Duration::from_secs(5)); // half-open for 5 s
//! # drop(builder);
//! ```
//!
//! This module only holds the state; the transport acts on it where it lives:
//! - drop and GOAWAY are one-shot events for the connections open *now*: a generation
//!   counter in a [`watch`] that every connection task selects on (a watch never lags or
//!   overflows, and a task that joins later does not see old events);
//! - stall and refuse are time windows, read where they apply (the socket wrappers, the
//!   accept loop). The stall window is kept in atomics because the socket wrappers check
//!   it on every read and write.

use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::Duration;
use tokio::sync::watch;
use tokio::time::Instant;

/// The fault state of one server.
#[derive(Debug)]
pub struct FaultInjector {
    /// Origin of the stall window's atomics.
    base: Instant,
    /// Stall window as nanoseconds since `base`; `end == 0` means never stalled.
    stall_start: AtomicU64,
    stall_end: AtomicU64,
    refuse_until: Mutex<Option<Instant>>,
    drop_tx: watch::Sender<u64>,
    goaway_tx: watch::Sender<u64>,
}

impl Default for FaultInjector {
    fn default() -> Self {
        FaultInjector {
            base: Instant::now(),
            stall_start: AtomicU64::new(0),
            stall_end: AtomicU64::new(0),
            refuse_until: Mutex::new(None),
            drop_tx: watch::channel(0).0,
            goaway_tx: watch::channel(0).0,
        }
    }
}

impl FaultInjector {
    /// Closes every open connection now, without GOAWAY.
    pub fn drop_connections(&self) {
        self.drop_tx.send_modify(|g| *g = g.wrapping_add(1));
    }

    /// Changes each time [`drop_connections`](Self::drop_connections) is called.
    pub fn subscribe_drop(&self) -> watch::Receiver<u64> {
        self.drop_tx.subscribe()
    }

    /// Drains every open connection (graceful GOAWAY with debug data `chaos`).
    pub fn goaway(&self) {
        self.goaway_tx.send_modify(|g| *g = g.wrapping_add(1));
    }

    /// Changes each time [`goaway`](Self::goaway) is called.
    pub fn subscribe_goaway(&self) -> watch::Receiver<u64> {
        self.goaway_tx.subscribe()
    }

    /// Every connection stops reading and writing from `start` for `duration` (a new
    /// stall replaces the previous window).
    pub fn stall(&self, start: Instant, duration: Duration) {
        let start = self.nanos(start);
        let end = start.saturating_add(nanos_of(duration)).max(1);
        // End first to zero, so a reader never sees the new start with the old end.
        self.stall_end.store(0, Relaxed);
        self.stall_start.store(start, Relaxed);
        self.stall_end.store(end, Relaxed);
    }

    /// When the stall in force now ends; `None` when not stalled. Reads the clock only
    /// when a stall is set (this is asked before every read and write of every socket).
    pub fn stalled_now(&self) -> Option<Instant> {
        if self.stall_end.load(Relaxed) == 0 {
            return None;
        }
        self.stalled_until(Instant::now())
    }

    /// When the stall in force at `now` ends; `None` when not stalled.
    pub fn stalled_until(&self, now: Instant) -> Option<Instant> {
        let end = self.stall_end.load(Relaxed);
        if end == 0 {
            return None;
        }
        let start = self.stall_start.load(Relaxed);
        let now = self.nanos(now);
        (start <= now && now < end).then(|| self.base + Duration::from_nanos(end))
    }

    /// New connections are reset for `duration` from now.
    pub fn refuse_connections(&self, duration: Duration) {
        *lock(&self.refuse_until) = Some(Instant::now() + duration);
    }

    /// Whether new connections are refused at `now`.
    pub fn refusing(&self, now: Instant) -> bool {
        lock(&self.refuse_until).is_some_and(|until| now < until)
    }

    fn nanos(&self, at: Instant) -> u64 {
        nanos_of(at.saturating_duration_since(self.base))
    }
}

fn nanos_of(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// Completes when `rx` changes; never, if its sender is gone or there is none.
pub async fn changed(rx: &mut Option<watch::Receiver<u64>>) {
    if let Some(rx) = rx
        && rx.changed().await.is_ok()
    {
        return;
    }
    std::future::pending::<()>().await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stall_window() {
        let f = FaultInjector::default();
        let now = Instant::now();
        assert_eq!(f.stalled_until(now), None);
        let start = now + Duration::from_millis(50);
        f.stall(start, Duration::from_secs(1));
        assert_eq!(f.stalled_until(now), None, "not before the start");
        let during = start + Duration::from_millis(10);
        let end = f.stalled_until(during).expect("stalled");
        assert!(end >= start + Duration::from_millis(999));
        assert_eq!(f.stalled_until(start + Duration::from_secs(2)), None);
    }

    #[test]
    fn windows_expire() {
        let f = FaultInjector::default();
        f.refuse_connections(Duration::from_millis(100));
        let now = Instant::now();
        assert!(f.refusing(now));
        assert!(!f.refusing(now + Duration::from_millis(200)));
    }

    #[tokio::test]
    async fn one_shot_events_reach_current_subscribers_only() {
        let f = FaultInjector::default();
        let mut rx = Some(f.subscribe_drop());
        f.drop_connections();
        tokio::time::timeout(Duration::from_secs(1), changed(&mut rx))
            .await
            .expect("changed");
        let late = f.subscribe_drop();
        assert!(!late.has_changed().unwrap_or(true));
    }
}
