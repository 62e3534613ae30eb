//! Telling a dead connection from a server that answered with an error.
//!
//! Browsers word network errors differently ("Failed to fetch", "Load failed",
//! "NetworkError when attempting to fetch resource."), so the text is never read. What
//! counts is where the status came from: tonic-web-wasm-client turns a failed `fetch` (or
//! an unreadable response) into its own `Error`, which tonic wraps as the status's
//! source; a status the server sent has no such source. A server (or a proxy in front of
//! it) answering UNAVAILABLE, and DEADLINE_EXCEEDED, count as failures too.

use tonic::{Code, Status};

/// How a call ended, for the keepalive core.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CallError {
    /// The server answered with this status (it is alive).
    Answered(Code),
    /// No usable answer: network error, UNAVAILABLE, deadline.
    Failed,
}

/// Classifies a failed call's status.
pub fn classify(status: &Status) -> CallError {
    if is_transport_error(status) {
        return CallError::Failed;
    }
    match status.code() {
        Code::Unavailable | Code::DeadlineExceeded => CallError::Failed,
        code => CallError::Answered(code),
    }
}

/// Whether the status came from the transport (fetch) rather than from the server.
pub fn is_transport_error(status: &Status) -> bool {
    let mut source = std::error::Error::source(status);
    while let Some(err) = source {
        if err.is::<tonic_web_wasm_client::Error>() {
            return true;
        }
        source = err.source();
    }
    false
}
