//! The timeline's wording: what each event of the keepalive machinery says on the page.

use crate::fmt;
use keepalive::client::{ClientEvent, ConnectivityState};

/// How an entry is coloured (always with words too: colour is never the only cue).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tone {
    /// Back to normal (READY, resumed).
    Good,
    /// Worth knowing (connecting, a GoAway, an action of the user).
    Info,
    /// Unusual but handled (too_many_pings, a log reset).
    Warn,
    /// Something broke (connection lost, events lost).
    Bad,
}

impl Tone {
    /// The CSS class of the entry.
    pub fn class(self) -> &'static str {
        match self {
            Tone::Good => "good",
            Tone::Info => "info",
            Tone::Warn => "warn",
            Tone::Bad => "bad",
        }
    }
}

/// One line of the timeline.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// Its colour.
    pub tone: Tone,
    /// Its text.
    pub text: String,
}

impl Entry {
    /// An entry.
    pub fn new(tone: Tone, text: impl Into<String>) -> Self {
        Entry {
            tone,
            text: text.into(),
        }
    }
}

/// The tone of a connectivity state.
pub fn state_tone(state: ConnectivityState) -> Tone {
    match state {
        ConnectivityState::Ready => Tone::Good,
        ConnectivityState::TransientFailure => Tone::Bad,
        ConnectivityState::Connecting | ConnectivityState::Idle | ConnectivityState::Shutdown => {
            Tone::Info
        }
    }
}

/// The entry for `event`; `None` for heartbeat round trips (they go to the sparkline).
pub fn describe(event: &ClientEvent) -> Option<Entry> {
    Some(match event {
        ClientEvent::StateChanged { from, to } => {
            Entry::new(state_tone(*to), format!("{from} → {to}"))
        }
        ClientEvent::ConnectionLost { reason, retry_in } => Entry::new(
            Tone::Bad,
            format!(
                "connection lost ({}); next attempt in {}",
                reason.as_str(),
                fmt::elapsed_ms(retry_in.as_secs_f64() * 1000.0)
            ),
        ),
        ClientEvent::Gap { from, missed, .. } => Entry::new(
            Tone::Bad,
            format!("gap: {missed} event(s) from #{from} are gone for good"),
        ),
        ClientEvent::LogReset { .. } => Entry::new(
            Tone::Warn,
            "the server's event log was replaced: sequences start over",
        ),
        ClientEvent::Resumed { after, .. } => Entry::new(
            Tone::Good,
            match after {
                Some(seq) => format!("feed resumed after #{seq}"),
                None => "feed resumed (nothing delivered before)".to_owned(),
            },
        ),
        ClientEvent::GoAway { reason, .. } => Entry::new(
            Tone::Info,
            format!(
                "server GoAway ({}): resuming at once, no backoff",
                if reason.is_empty() {
                    "no reason given"
                } else {
                    reason
                }
            ),
        ),
        ClientEvent::StreamFinished { .. } => Entry::new(Tone::Info, "the server ended the feed"),
        ClientEvent::TooManyPings { keepalive_time } => Entry::new(
            Tone::Warn,
            format!(
                "server said too_many_pings: Time doubled to {}",
                fmt::setting(*keepalive_time)
            ),
        ),
        ClientEvent::HeartbeatRtt { .. } => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use keepalive::client::{LossReason, StreamId};
    use std::time::Duration;

    #[test]
    fn wording() {
        let e = describe(&ClientEvent::StateChanged {
            from: ConnectivityState::Ready,
            to: ConnectivityState::TransientFailure,
        })
        .expect("entry");
        assert_eq!(e, Entry::new(Tone::Bad, "READY → TRANSIENT_FAILURE"));
        let e = describe(&ClientEvent::ConnectionLost {
            reason: LossReason::HeartbeatTimeout,
            retry_in: Duration::from_millis(1200),
        })
        .expect("entry");
        assert_eq!(
            e.text,
            "connection lost (heartbeat timeout); next attempt in 1.2 s"
        );
        let e = describe(&ClientEvent::GoAway {
            stream: StreamId(0),
            reason: "max_stream_age".into(),
        })
        .expect("entry");
        assert_eq!(
            e.text,
            "server GoAway (max_stream_age): resuming at once, no backoff"
        );
        assert_eq!(
            describe(&ClientEvent::HeartbeatRtt {
                rtt: Duration::from_millis(3)
            }),
            None
        );
    }
}
