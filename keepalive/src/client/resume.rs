//! Exactly-once delivery across reconnects: the resume cursor of one server stream.
//!
//! Every event carries a sequence number. The cursor remembers the last one delivered to
//! the application; a resumed stream asks the server for what comes after it. Whatever
//! the network does (a duplicate after a reconnect, a replay that overlaps), an event is
//! delivered at most once, and a hole in the sequence is reported as a gap — from the
//! server's explicit Gap message, or by the cursor itself if the server skipped numbers —
//! never silently.

/// What to do with an event that arrived.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Delivery {
    /// Hand it to the application.
    Deliver,
    /// Already delivered: drop it.
    Duplicate,
    /// Hand it to the application, but events before it are missing (reported).
    DeliverAfterGap {
        /// First missing sequence.
        from: u64,
        /// How many are missing.
        missed: u64,
    },
    /// It belongs to a stream call that is no longer current: drop it.
    Stale,
}

/// A range of events that will never be delivered.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Gap {
    /// First missing sequence.
    pub from: u64,
    /// How many.
    pub missed: u64,
}

/// The resume state of one stream.
#[derive(Clone, Debug, Default)]
pub struct ResumeCursor {
    delivered: Option<u64>,
    expected: Option<u64>,
    token: Option<String>,
    log_id: Option<String>,
}

impl ResumeCursor {
    /// A cursor that resumes after `after` in the log `log_id` (`None`: from the head).
    pub fn starting_after(after: Option<u64>, log_id: Option<String>) -> Self {
        ResumeCursor {
            delivered: after,
            expected: None,
            token: None,
            log_id: log_id.filter(|l| !l.is_empty()),
        }
    }

    /// The last sequence delivered, to resume after.
    pub fn resume_after(&self) -> Option<u64> {
        self.delivered
    }

    /// The resume token from the last Welcome or GoAway.
    pub fn token(&self) -> Option<&str> {
        self.token.as_deref()
    }

    /// The log the sequence numbers belong to.
    pub fn log_id(&self) -> Option<&str> {
        self.log_id.as_deref()
    }

    /// Sets the resume token (from a Welcome or GoAway).
    pub fn set_token(&mut self, token: &str) {
        if !token.is_empty() {
            self.token = Some(token.to_owned());
        }
    }

    /// A stream was (re)opened and the server welcomed it. Returns `true` when the
    /// server's event log is not the one our sequence numbers refer to (it was lost): the
    /// cursor starts over and the caller reports it.
    pub fn on_welcome(&mut self, next_sequence: u64, log_id: &str, token: &str) -> bool {
        self.set_token(token);
        let reset = matches!(&self.log_id, Some(known) if !log_id.is_empty() && known != log_id);
        if !log_id.is_empty() {
            self.log_id = Some(log_id.to_owned());
        }
        if reset {
            self.delivered = None;
        }
        self.expected = Some(match self.delivered {
            Some(d) => d + 1,
            None => next_sequence,
        });
        reset
    }

    /// An event with sequence `seq` arrived.
    pub fn on_event(&mut self, seq: u64) -> Delivery {
        if self.delivered.is_some_and(|d| seq <= d) {
            return Delivery::Duplicate;
        }
        let expected = self.expected.unwrap_or(seq);
        self.delivered = Some(seq);
        self.expected = Some(seq + 1);
        if seq > expected {
            Delivery::DeliverAfterGap {
                from: expected,
                missed: seq - expected,
            }
        } else {
            Delivery::Deliver
        }
    }

    /// The server says events `from .. from + missed` are gone. Returns the gap to report,
    /// or `None` if it covers nothing new.
    pub fn on_gap(&mut self, from: u64, missed: u64) -> Option<Gap> {
        let end = from.saturating_add(missed); // first sequence after the gap
        let already = self.delivered.map_or(0, |d| d + 1);
        let start = from.max(already);
        if end <= start {
            return None;
        }
        self.delivered = Some(end - 1);
        self.expected = Some(end);
        Some(Gap {
            from: start,
            missed: end - start,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn duplicates_are_dropped_and_skips_reported() {
        let mut c = ResumeCursor::default();
        assert!(!c.on_welcome(5, "log-a", "t1"));
        assert_eq!(c.on_event(5), Delivery::Deliver);
        assert_eq!(c.on_event(6), Delivery::Deliver);
        assert_eq!(c.on_event(6), Delivery::Duplicate);
        assert_eq!(c.on_event(4), Delivery::Duplicate);
        assert_eq!(
            c.on_event(9),
            Delivery::DeliverAfterGap { from: 7, missed: 2 }
        );
        assert_eq!(c.resume_after(), Some(9));
    }

    #[test]
    fn resume_continues_after_the_last_delivered() {
        let mut c = ResumeCursor::default();
        c.on_welcome(1, "log-a", "t1");
        c.on_event(1);
        c.on_event(2);
        // Reconnect: the server replays from 2 (overlap) — 2 is dropped.
        c.on_welcome(2, "log-a", "t2");
        assert_eq!(c.token(), Some("t2"));
        assert_eq!(c.on_event(2), Delivery::Duplicate);
        assert_eq!(c.on_event(3), Delivery::Deliver);
    }

    #[test]
    fn explicit_gap_moves_the_cursor() {
        let mut c = ResumeCursor::default();
        c.on_welcome(1, "log-a", "");
        c.on_event(1);
        assert_eq!(
            c.on_gap(2, 14),
            Some(Gap {
                from: 2,
                missed: 14
            })
        );
        assert_eq!(c.on_event(16), Delivery::Deliver);
        assert_eq!(c.on_gap(3, 2), None, "nothing new");
    }

    #[test]
    fn a_lost_log_starts_over() {
        let mut c = ResumeCursor::default();
        c.on_welcome(1, "log-a", "");
        c.on_event(1);
        assert!(c.on_welcome(1, "log-b", ""));
        assert_eq!(c.resume_after(), None);
        assert_eq!(c.on_event(1), Delivery::Deliver);
    }
}
