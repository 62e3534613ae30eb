//! Counting open connections against `--max-connections`.
//!
//! A connection holds a [`ConnPermit`] from the moment it is accepted (before its first
//! bytes, so clients that connect and send nothing count too) until its task ends. When
//! none is left, new connections are refused ([`super::refuse`]) while the open ones go
//! on untouched. The count is taken at the listener, not per protocol, so the same limit
//! holds for plain TCP and, later, for TLS connections before their handshake.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

/// Default `--max-connections`.
pub const DEFAULT_MAX_CONNECTIONS: usize = 10_000;

/// A counting limit on things open at once.
#[derive(Clone, Debug)]
pub struct ConnLimit {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    open: AtomicUsize,
    max: usize,
    /// Whether the limit was reached and not left since (for one log line per episode).
    saturated: AtomicBool,
}

/// One unit of a [`ConnLimit`], given back when dropped.
#[derive(Debug)]
pub struct ConnPermit {
    inner: Arc<Inner>,
}

impl ConnLimit {
    /// At most `max` at once (at least 1).
    pub fn new(max: usize) -> Self {
        ConnLimit {
            inner: Arc::new(Inner {
                open: AtomicUsize::new(0),
                max: max.max(1),
                saturated: AtomicBool::new(false),
            }),
        }
    }

    /// A permit if fewer than the maximum are open.
    pub fn try_acquire(&self) -> Option<ConnPermit> {
        let inner = &self.inner;
        inner
            .open
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < inner.max).then_some(n + 1)
            })
            .ok()
            .map(|_| ConnPermit {
                inner: inner.clone(),
            })
    }

    /// How many are open.
    pub fn open(&self) -> usize {
        self.inner.open.load(Ordering::Acquire)
    }

    /// The maximum.
    pub fn max(&self) -> usize {
        self.inner.max
    }

    /// Records that the limit refused something; true the first time since it last had
    /// room (so a flood of refusals logs one warning, not one per connection).
    pub fn note_refusal(&self) -> bool {
        !self.inner.saturated.swap(true, Ordering::AcqRel)
    }
}

impl Drop for ConnPermit {
    fn drop(&mut self) {
        self.inner.open.fetch_sub(1, Ordering::AcqRel);
        self.inner.saturated.store(false, Ordering::Release);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn permits_come_back() {
        let limit = ConnLimit::new(2);
        let a = limit.try_acquire().expect("a");
        let _b = limit.try_acquire().expect("b");
        assert!(limit.try_acquire().is_none());
        assert!(limit.note_refusal());
        assert!(!limit.note_refusal(), "one warning per episode");
        drop(a);
        assert_eq!(limit.open(), 1);
        assert!(limit.try_acquire().is_some());
        assert!(limit.note_refusal(), "a new episode after room was made");
        assert_eq!(ConnLimit::new(0).max(), 1);
    }
}
