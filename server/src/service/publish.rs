//! Publish: validation and the event's source.
//!
//! Publishing is a unary call a browser retries after a lost answer, so it is idempotent
//! by a client-chosen key, remembered by the log (see [`super::log::dedup`]). Keys are
//! global, not per session (a retry may come after the session expired): clients should
//! use random keys. A repeated key returns the first publish's sequence with
//! `duplicate = true`, whatever the text.

use super::log::NewEvent;
use super::sessions::Sessions;
use proto::v1::PublishRequest;
use tonic::Status;

/// Longest idempotency key, in bytes.
pub const MAX_KEY_BYTES: usize = 128;
/// Longest event text, in bytes.
pub const MAX_TEXT_BYTES: usize = 4096;
/// Source of events published without a known session.
pub const ANONYMOUS: &str = "anon";

/// Checks the request and turns it into an event: source = the session's id prefix, or
/// [`ANONYMOUS`] when the session is empty or unknown (publishing needs no session).
pub fn validate(req: PublishRequest, sessions: &Sessions) -> Result<NewEvent, Status> {
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
    let source = sessions
        .get(&req.session_id)
        .map_or_else(|| ANONYMOUS.to_string(), |session| session.source());
    Ok(NewEvent {
        source,
        text: req.text,
        idempotency_key: Some(req.idempotency_key),
    })
}
