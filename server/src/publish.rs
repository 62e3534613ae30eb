//! Publish: validation and the event's source.
//!
//! Publishing is a unary call a browser retries after a lost answer, so it is idempotent
//! by a client-chosen key, remembered by the log (`keepalive_server::log::dedup`). Keys are
//! global, not per session (a retry may come after the session expired): clients should
//! use random keys. A repeated key returns the first publish's sequence with
//! `duplicate = true`, whatever the text.

use demo_proto::v1::{Event, PublishRequest};
use keepalive_server::browser::BrowserKeepalive;
use keepalive_server::log::now_ms;
use tonic::Status;

/// Longest idempotency key, in bytes.
pub const MAX_KEY_BYTES: usize = 128;
/// Longest event text, in bytes.
pub const MAX_TEXT_BYTES: usize = 4096;
/// Source of events published without a known session.
pub const ANONYMOUS: &str = "anon";

/// How many characters of the session id name it as an event source.
pub const SOURCE_PREFIX: usize = 8;

/// Checks the request and turns it into an event and its idempotency key: source = the
/// session's id prefix, or [`ANONYMOUS`] when the session is empty or unknown (publishing
/// needs no session).
pub fn validate(
    req: PublishRequest,
    browser: &BrowserKeepalive,
) -> Result<(Event, String), Status> {
    if req.idempotency_key.is_empty() || req.idempotency_key.len() > MAX_KEY_BYTES {
        return Err(Status::invalid_argument(format!(
            "idempotency_key is required, at most {MAX_KEY_BYTES} bytes"
        )));
    }
    if req.text.len() > MAX_TEXT_BYTES {
        return Err(Status::invalid_argument(format!(
            "text is longer than {MAX_TEXT_BYTES} bytes"
        )));
    }
    let source = browser
        .session_source(&req.session_id)
        .unwrap_or_else(|| ANONYMOUS.to_string());
    let event = Event {
        sequence: 0,
        published_at_ms: now_ms(),
        source,
        text: req.text,
    };
    Ok((event, req.idempotency_key))
}
