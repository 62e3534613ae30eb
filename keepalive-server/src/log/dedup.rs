//! Idempotency keys → sequences, bounded.
//!
//! A publish retried after a lost answer must not append twice. The log remembers the
//! sequence each key got; the memory is bounded (the oldest key is forgotten first), so a
//! retry is recognised as long as fewer than `capacity` newer keys came after it.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;

/// The last `capacity` idempotency keys and their sequences.
#[derive(Debug)]
pub struct Dedup {
    seen: HashMap<Arc<str>, u64>,
    order: VecDeque<Arc<str>>,
    capacity: usize,
}

impl Dedup {
    /// Remembers at most `capacity` (at least 1) keys.
    pub fn new(capacity: usize) -> Self {
        Dedup {
            seen: HashMap::new(),
            order: VecDeque::new(),
            capacity: capacity.max(1),
        }
    }

    /// The sequence `key` got, if it is remembered.
    pub fn get(&self, key: &str) -> Option<u64> {
        self.seen.get(key).copied()
    }

    /// Remembers that `key` got `sequence` (forgetting the oldest key when full).
    pub fn insert(&mut self, key: &str, sequence: u64) {
        if self.seen.contains_key(key) {
            return;
        }
        if self.order.len() == self.capacity
            && let Some(oldest) = self.order.pop_front()
        {
            self.seen.remove(&oldest);
        }
        let key: Arc<str> = Arc::from(key);
        self.seen.insert(key.clone(), sequence);
        self.order.push_back(key);
    }

    /// Keys remembered.
    pub fn len(&self) -> usize {
        self.order.len()
    }

    /// Whether no key is remembered.
    pub fn is_empty(&self) -> bool {
        self.order.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bounded_oldest_first() {
        let mut d = Dedup::new(2);
        d.insert("a", 1);
        d.insert("b", 2);
        d.insert("a", 9); // already known: unchanged, not refreshed
        assert_eq!(d.get("a"), Some(1));
        d.insert("c", 3);
        assert_eq!(
            (d.get("a"), d.get("b"), d.get("c")),
            (None, Some(2), Some(3))
        );
        assert_eq!(d.len(), 2);
    }
}
