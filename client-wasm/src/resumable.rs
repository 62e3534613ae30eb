//! The typed resumable stream: any message type that carries the resume frames.
//!
//! A resumable stream speaks in five kinds of messages — the first is a welcome, then
//! events (each with a sequence), keepalive heartbeats, explicit gaps, and a go-away when
//! the server ends the stream on purpose. A message type says which kind each of its
//! messages is by implementing [`ResumableMessage`] (from `keepalive-proto`, usually with
//! its `resumable_message!` macro); its events implement [`Sequenced`]. The driver then
//! gives it reconnects, resume after the last delivered sequence, and exactly-once
//! delivery, whatever the message type.

pub use keepalive_proto::resume::{Frame, ResumableMessage, Sequenced};

/// The core's view of a Welcome.
pub fn welcome(w: keepalive_proto::v1::Welcome) -> keepalive::client::Welcome {
    keepalive::client::Welcome {
        next_sequence: w.next_sequence,
        stream_heartbeat_interval: Some(std::time::Duration::from_millis(
            w.stream_heartbeat_interval_ms,
        )),
        resume_token: w.resume_token,
        log_id: w.log_id,
    }
}
