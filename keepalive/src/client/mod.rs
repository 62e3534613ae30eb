//! The browser client's side of the core: connectivity, backoff, retry, resume, and the
//! channel state machine that ties them together.
//!
//! # Layout
//! - [`connectivity`]: gRPC's five connectivity states.
//! - [`backoff`]: gRPC connection backoff.
//! - [`retry`]: unary retry per proposal A6.
//! - [`resume`]: exactly-once delivery across reconnects (sequence cursor, gaps).
//! - [`types`]: what the channel takes and gives: knobs, ids, actions, events, counters.
//! - [`channel`]: the state machine (keepalive emulation, broken-stream detection,
//!   reconnect, resume) that the wasm driver runs.

pub mod backoff;
pub mod channel;
pub mod connectivity;
pub mod resume;
pub mod retry;
pub mod types;

pub use backoff::{Backoff, BackoffConfig};
pub use channel::{
    Action as ClientAction, CallId, Channel, ClientConfig, ClientStats, Event as ClientEvent,
    HeartbeatOutcome, LossReason, StreamId, Welcome,
};
pub use connectivity::ConnectivityState;
pub use resume::{Delivery, ResumeCursor};
pub use retry::{Failure, RetryDecision, RetryPolicy, RetryState};
