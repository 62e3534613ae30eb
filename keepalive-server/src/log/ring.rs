//! The replay window: the last N events, addressed by sequence.
//!
//! Replay must be bounded (memory) and exact (no hole, no repeat). A ring of consecutive
//! sequences gives both: the event with sequence `s` is at index `s - oldest`, and a
//! position older than the ring is reported as a gap of known size rather than skipped.

use super::{Batch, LogEvent};
use keepalive_proto::v1::Gap;
use std::collections::VecDeque;

/// The last `capacity` events, consecutive.
#[derive(Debug)]
pub struct Ring<E> {
    events: VecDeque<E>,
    capacity: usize,
    head: u64,
}

impl<E: LogEvent> Ring<E> {
    /// An empty ring holding at most `capacity` (at least 1) events.
    pub fn new(capacity: usize) -> Self {
        Ring {
            events: VecDeque::new(),
            capacity: capacity.max(1),
            head: 0,
        }
    }

    /// The highest sequence seen.
    pub fn head(&self) -> u64 {
        self.head
    }

    /// Events held.
    pub fn depth(&self) -> u64 {
        self.events.len() as u64
    }

    /// The oldest sequence held (`head + 1` when empty).
    pub fn oldest(&self) -> u64 {
        self.events
            .front()
            .map_or(self.head.saturating_add(1), |e| e.sequence())
    }

    /// Adds the next event; its sequence must be `head + 1` (a ring loaded from a file may
    /// start anywhere: the first push sets the head).
    pub fn push(&mut self, event: E) {
        debug_assert!(self.events.is_empty() || event.sequence() == self.head + 1);
        self.head = event.sequence();
        if self.events.len() == self.capacity {
            self.events.pop_front();
        }
        self.events.push_back(event);
    }

    /// Events after `after` (at most `max`), preceded by a gap if the ring no longer holds
    /// `after + 1`.
    pub fn read_after(&self, after: u64, max: usize) -> Batch<E> {
        let mut start = after.saturating_add(1);
        if start > self.head {
            return Batch::default();
        }
        let oldest = self.oldest();
        let gap = (start < oldest).then(|| Gap {
            from_sequence: start,
            missed: oldest - start,
        });
        start = start.max(oldest);
        let skip = usize::try_from(start - oldest).unwrap_or(usize::MAX);
        let events = self.events.iter().skip(skip).take(max).cloned().collect();
        Batch { gap, events }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Clone, Debug, PartialEq)]
    struct Event {
        sequence: u64,
    }
    keepalive_proto::sequenced!(Event);

    fn ev(sequence: u64) -> Event {
        Event { sequence }
    }

    fn seqs(b: &Batch<Event>) -> Vec<u64> {
        b.events.iter().map(|e| e.sequence).collect()
    }

    #[test]
    fn overflow_reports_the_exact_gap() {
        let mut r = Ring::new(5);
        for s in 1..=20 {
            r.push(ev(s));
        }
        assert_eq!((r.oldest(), r.head(), r.depth()), (16, 20, 5));
        let b = r.read_after(1, 64);
        assert_eq!(
            b.gap,
            Some(Gap {
                from_sequence: 2,
                missed: 14
            })
        );
        assert_eq!(seqs(&b), vec![16, 17, 18, 19, 20]);
        let b = r.read_after(0, 2);
        assert_eq!(
            b.gap,
            Some(Gap {
                from_sequence: 1,
                missed: 15
            })
        );
        assert_eq!(seqs(&b), vec![16, 17]);
    }

    #[test]
    fn reads_within_the_window_and_past_the_head() {
        let mut r = Ring::new(10);
        assert_eq!(r.read_after(0, 64), Batch::<Event>::default());
        for s in 1..=3 {
            r.push(ev(s));
        }
        let b = r.read_after(1, 64);
        assert_eq!((b.gap, seqs(&b)), (None, vec![2, 3]));
        assert_eq!(r.read_after(3, 64), Batch::default());
        assert_eq!(r.read_after(u64::MAX, 64), Batch::default());
    }

    #[test]
    fn a_ring_loaded_mid_sequence() {
        let mut r = Ring::new(3);
        r.push(ev(41));
        r.push(ev(42));
        assert_eq!(r.oldest(), 41);
        let b = r.read_after(0, 64);
        assert_eq!(
            b.gap,
            Some(Gap {
                from_sequence: 1,
                missed: 40
            })
        );
    }
}
