//! gRPC's five connectivity states (`connectivity-semantics-and-api.md`).

use std::fmt;

/// The state of a channel, as gRPC names it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ConnectivityState {
    /// Not connected and not trying: nothing asked for a connection yet.
    Idle,
    /// Trying to connect: streams opened, waiting for the server's first answer.
    Connecting,
    /// Connected: the server answered and keeps answering.
    Ready,
    /// The connection failed or died; the next attempt waits for the backoff.
    TransientFailure,
    /// Closed by the application; nothing more happens.
    Shutdown,
}

impl ConnectivityState {
    /// The gRPC name: `IDLE`, `CONNECTING`, `READY`, `TRANSIENT_FAILURE`, `SHUTDOWN`.
    pub fn as_str(self) -> &'static str {
        match self {
            ConnectivityState::Idle => "IDLE",
            ConnectivityState::Connecting => "CONNECTING",
            ConnectivityState::Ready => "READY",
            ConnectivityState::TransientFailure => "TRANSIENT_FAILURE",
            ConnectivityState::Shutdown => "SHUTDOWN",
        }
    }
}

impl fmt::Display for ConnectivityState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}
