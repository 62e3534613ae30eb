//! The frames of a resumable stream, and how a message type maps onto them.
//!
//! A resumable stream speaks in five kinds of messages: a [`Welcome`] first, then events
//! (each with a sequence number), [`StreamHeartbeat`]s when it has nothing to say, explicit
//! [`Gap`]s for events that are gone, and a [`GoAway`] when the server ends the stream on
//! purpose. The protocol does not fix the message type: your method answers with *your*
//! message, whose `oneof` holds the four `keepalive.v1` frames next to your own event
//! type. [`ResumableMessage`] converts between that message and a [`Frame`], in both
//! directions — the server library builds messages from frames, the browser client reads
//! frames out of messages — and [`Sequenced`] gives the sequence of your event.
//!
//! Both are one macro call for a message laid out the usual way:
//!
//! ```
//! # mod generated {
//! #     #[derive(Clone, PartialEq, prost::Message)]
//! #     pub struct PriceTick {
//! #         #[prost(uint64, tag = "1")] pub sequence: u64,
//! #         #[prost(string, tag = "2")] pub symbol: String,
//! #     }
//! #     #[derive(Clone, PartialEq, prost::Message)]
//! #     pub struct WatchResponse {
//! #         #[prost(oneof = "watch_response::Kind", tags = "1, 2, 3, 4, 5")]
//! #         pub kind: Option<watch_response::Kind>,
//! #     }
//! #     pub mod watch_response {
//! #         #[derive(Clone, PartialEq, prost::Oneof)]
//! #         pub enum Kind {
//! #             #[prost(message, tag = "1")] Welcome(keepalive_proto::v1::Welcome),
//! #             #[prost(message, tag = "2")] Event(super::PriceTick),
//! #             #[prost(message, tag = "3")] Heartbeat(keepalive_proto::v1::StreamHeartbeat),
//! #             #[prost(message, tag = "4")] Gap(keepalive_proto::v1::Gap),
//! #             #[prost(message, tag = "5")] GoAway(keepalive_proto::v1::GoAway),
//! #         }
//! #     }
//! # }
//! use generated::{PriceTick, WatchResponse, watch_response};
//! use keepalive_proto::resume::{Frame, ResumableMessage, Sequenced};
//!
//! // `message WatchResponse { oneof kind { Welcome welcome = 1; PriceTick event = 2;
//! //  StreamHeartbeat heartbeat = 3; Gap gap = 4; GoAway go_away = 5; } }`
//! keepalive_proto::resumable_message!(WatchResponse, watch_response::Kind, PriceTick);
//! // `PriceTick` has a `uint64 sequence` field.
//! keepalive_proto::sequenced!(PriceTick);
//!
//! let tick = PriceTick { sequence: 7, symbol: "ACME".into() };
//! let message = WatchResponse::from_frame(Frame::Event(tick.clone()));
//! assert!(matches!(message.into_frame(), Some(Frame::Event(t)) if t.sequence() == 7));
//! ```

pub use crate::v1::{Gap, GoAway, ResumeRequest, StreamHeartbeat, Welcome};

/// One message of a resumable stream, by kind.
#[derive(Clone, Debug, PartialEq)]
pub enum Frame<E> {
    /// The first message: where the stream starts, and how to resume it.
    Welcome(Welcome),
    /// An event.
    Event(E),
    /// Nothing to send, but alive.
    Heartbeat(StreamHeartbeat),
    /// Events the server no longer holds.
    Gap(Gap),
    /// The server ends the stream on purpose: reopen at once and resume.
    GoAway(GoAway),
}

/// An event with a sequence number: strictly increasing along a log, starting at 1.
///
/// The log assigns it when the event is appended ([`set_sequence`](Self::set_sequence));
/// the client drops what it already delivered by it. Implement it with [`sequenced!`](crate::sequenced!)
/// for a message with a `uint64 sequence` field.
pub trait Sequenced {
    /// The event's sequence number (0 before it is appended).
    fn sequence(&self) -> u64;
    /// Sets the sequence number (the log does this on append).
    fn set_sequence(&mut self, sequence: u64);
}

/// A message type of a resumable stream: converts to and from [`Frame`]s.
///
/// Implement it with [`resumable_message!`](crate::resumable_message!).
pub trait ResumableMessage: Sized + Send + 'static {
    /// The stream's event type.
    type Event: Sequenced + Send + 'static;
    /// The message carrying `frame` (the server side).
    fn from_frame(frame: Frame<Self::Event>) -> Self;
    /// Which kind of message this is (the client side); `None` for a message this
    /// version does not know (an empty `oneof`), which a client skips.
    fn into_frame(self) -> Option<Frame<Self::Event>>;
}

/// Implements [`Sequenced`] for a generated message with a `uint64` sequence field
/// (named `sequence` unless given).
///
/// ```
/// #[derive(Clone, PartialEq, prost::Message)]
/// pub struct Tick {
///     #[prost(uint64, tag = "1")]
///     pub seq: u64,
/// }
/// keepalive_proto::sequenced!(Tick, seq);
///
/// use keepalive_proto::resume::Sequenced;
/// let mut t = Tick::default();
/// t.set_sequence(3);
/// assert_eq!(t.sequence(), 3);
/// ```
#[macro_export]
macro_rules! sequenced {
    ($event:ty) => {
        $crate::sequenced!($event, sequence);
    };
    ($event:ty, $field:ident) => {
        impl $crate::resume::Sequenced for $event {
            fn sequence(&self) -> u64 {
                self.$field
            }
            fn set_sequence(&mut self, sequence: u64) {
                self.$field = sequence;
            }
        }
    };
}

/// Implements [`ResumableMessage`] for a generated message whose `oneof` carries the
/// frames.
///
/// The short form expects `oneof kind` with the fields `welcome`, `event`, `heartbeat`,
/// `gap` and `go_away` (so the variants `Welcome`, `Event`, `Heartbeat`, `Gap`, `GoAway`);
/// the long form names the `oneof` field and each variant:
///
/// ```ignore
/// keepalive_proto::resumable_message!(WatchResponse, watch_response::Kind, PriceTick);
/// keepalive_proto::resumable_message!(WatchResponse {
///     oneof: body, kind: watch_response::Body, event: PriceTick,
///     welcome: Hello, event_variant: Tick, heartbeat: Beat, gap: Gap, go_away: Bye,
/// });
/// ```
#[macro_export]
macro_rules! resumable_message {
    ($message:ty, $kind:ty, $event:ty) => {
        $crate::resumable_message!($message {
            oneof: kind,
            kind: $kind,
            event: $event,
            welcome: Welcome,
            event_variant: Event,
            heartbeat: Heartbeat,
            gap: Gap,
            go_away: GoAway,
        });
    };
    ($message:ty {
        oneof: $field:ident,
        kind: $kind:ty,
        event: $event:ty,
        welcome: $welcome:ident,
        event_variant: $ev:ident,
        heartbeat: $heartbeat:ident,
        gap: $gap:ident,
        go_away: $go_away:ident $(,)?
    }) => {
        impl $crate::resume::ResumableMessage for $message {
            type Event = $event;

            // The message may have fields besides the `oneof`, or not.
            #[allow(clippy::needless_update)]
            fn from_frame(frame: $crate::resume::Frame<$event>) -> Self {
                type Kind = $kind;
                let kind = match frame {
                    $crate::resume::Frame::Welcome(w) => Kind::$welcome(w),
                    $crate::resume::Frame::Event(e) => Kind::$ev(e),
                    $crate::resume::Frame::Heartbeat(h) => Kind::$heartbeat(h),
                    $crate::resume::Frame::Gap(g) => Kind::$gap(g),
                    $crate::resume::Frame::GoAway(g) => Kind::$go_away(g),
                };
                Self {
                    $field: Some(kind),
                    ..Default::default()
                }
            }

            fn into_frame(self) -> Option<$crate::resume::Frame<$event>> {
                type Kind = $kind;
                Some(match self.$field? {
                    Kind::$welcome(w) => $crate::resume::Frame::Welcome(w),
                    Kind::$ev(e) => $crate::resume::Frame::Event(e),
                    Kind::$heartbeat(h) => $crate::resume::Frame::Heartbeat(h),
                    Kind::$gap(g) => $crate::resume::Frame::Gap(g),
                    Kind::$go_away(g) => $crate::resume::Frame::GoAway(g),
                })
            }
        }
    };
}
