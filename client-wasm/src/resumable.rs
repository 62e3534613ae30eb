//! The typed resumable server stream: any message type that carries a sequence.
//!
//! A resumable stream speaks in five kinds of messages — the first is a welcome, then
//! events (each with a sequence), keepalive heartbeats, explicit gaps, and a go-away when
//! the server ends the stream on purpose. A message type says which kind each of its
//! messages is by implementing [`ResumableMessage`]; its events implement [`Sequenced`].
//! The driver then gives it reconnects, resume after the last delivered sequence, and
//! exactly-once delivery, whatever the message type.
//! `keepalive.v1.SubscribeResponse` is the implementation this crate ships.

use keepalive::client::Welcome;
use proto::v1::{SubscribeResponse, subscribe_response::Kind};
use std::time::Duration;

/// An event with a sequence number (strictly increasing along the stream).
pub trait Sequenced {
    /// The event's sequence number.
    fn sequence(&self) -> u64;
}

/// What one message of a resumable stream is.
#[derive(Debug)]
pub enum Frame<E> {
    /// The first message: where the stream starts, and how to resume it.
    Welcome(Welcome),
    /// An event.
    Event(E),
    /// Nothing to send, but alive.
    Heartbeat,
    /// Events the server no longer has.
    Gap {
        /// First missing sequence.
        from: u64,
        /// How many.
        missed: u64,
    },
    /// The server ends the stream on purpose: reopen at once with this token.
    GoAway {
        /// Why (for logs).
        reason: String,
        /// Token for the resume.
        resume_token: String,
    },
}

/// A message type of a resumable stream.
pub trait ResumableMessage: Sized + 'static {
    /// Its events.
    type Event: Sequenced + 'static;
    /// Which kind of message this is; `None` for one the client does not know (skipped).
    fn into_frame(self) -> Option<Frame<Self::Event>>;
}

impl Sequenced for proto::v1::Event {
    fn sequence(&self) -> u64 {
        self.sequence
    }
}

impl ResumableMessage for SubscribeResponse {
    type Event = proto::v1::Event;

    fn into_frame(self) -> Option<Frame<proto::v1::Event>> {
        Some(match self.kind? {
            Kind::Welcome(w) => Frame::Welcome(Welcome {
                next_sequence: w.next_sequence,
                stream_heartbeat_interval: Some(Duration::from_millis(
                    w.stream_heartbeat_interval_ms,
                )),
                resume_token: w.resume_token,
                log_id: w.log_id,
            }),
            Kind::Event(e) => Frame::Event(e),
            Kind::Heartbeat(_) => Frame::Heartbeat,
            Kind::Gap(g) => Frame::Gap {
                from: g.from_sequence,
                missed: g.missed,
            },
            Kind::GoAway(g) => Frame::GoAway {
                reason: g.reason,
                resume_token: g.resume_token,
            },
        })
    }
}
