//! Message and request-body size limits for every gRPC call, with errors that name the
//! limit.
//!
//! tonic has per-service knobs (`max_decoding_message_size`, `max_encoding_message_size`),
//! but a limit hit there answers `OUT_OF_RANGE`, while grpc-go (and the gRPC status code
//! guide) answer `RESOURCE_EXHAUSTED`, which is what clients and dashboards look for. And
//! the knobs are per service: a service added later without them would have none. So the
//! limits are enforced once, as a layer between gRPC-web and the routes ([`layer`]), for
//! every service behind it, by reading the 5-byte message prefixes as the bytes pass
//! ([`scan`]):
//!
//! - a request message over `--max-recv-message-size` ends the call with
//!   `RESOURCE_EXHAUSTED` "request message of N bytes is larger than the server's limit of
//!   M bytes (max-recv-message-size)" before the message is buffered;
//! - a request body over `--max-request-body-size` in total (a client streaming many
//!   small messages on one call) ends it the same way;
//! - a response message over `--max-send-message-size` is not sent: the response ends with
//!   trailers `RESOURCE_EXHAUSTED` instead.
//!
//! The layer sits inside tonic-web, so gRPC-web requests are measured after base64
//! decoding and its errors reach browsers as gRPC-web trailers. tonic's own decoding limit
//! is set to the same value on every service as a second line; it is never reached first,
//! because the layer sees the prefix before tonic's decoder does.

pub mod layer;
pub mod scan;

pub use layer::LimitLayer;

/// Default `--max-recv-message-size`: grpc-go's `MaxRecvMsgSize` default.
pub const DEFAULT_MAX_RECV_MESSAGE_SIZE: usize = 4 * 1024 * 1024;
/// Default `--max-send-message-size` (grpc-go's is 2 GiB; no message of this server
/// comes near 4 MiB, so anything larger is a bug to stop, not to send).
pub const DEFAULT_MAX_SEND_MESSAGE_SIZE: usize = 4 * 1024 * 1024;
/// Default `--max-request-body-size`: two messages of the default size.
pub const DEFAULT_MAX_REQUEST_BODY_SIZE: u64 = 8 * 1024 * 1024;

/// The size limits of gRPC calls.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Largest request message, in bytes.
    pub max_recv_message_size: usize,
    /// Largest response message, in bytes.
    pub max_send_message_size: usize,
    /// Largest request body (all messages of a call with their prefixes), in bytes.
    pub max_request_body_size: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_recv_message_size: DEFAULT_MAX_RECV_MESSAGE_SIZE,
            max_send_message_size: DEFAULT_MAX_SEND_MESSAGE_SIZE,
            max_request_body_size: DEFAULT_MAX_REQUEST_BODY_SIZE,
        }
    }
}

/// Parses a byte size: a plain number of bytes, or a number with `KiB`, `MiB` or `GiB`
/// (also `K`, `M`, `G`; any case; binary multiples).
pub fn parse_size(s: &str) -> Result<u64, String> {
    let t = s.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (digits, unit) = t.split_at(split);
    let bad = || format!("invalid size {s:?}; use bytes or e.g. 64KiB, 4MiB, 1GiB");
    let n: u64 = digits.parse().map_err(|_| bad())?;
    let shift = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 0,
        "k" | "kib" => 10,
        "m" | "mib" => 20,
        "g" | "gib" => 30,
        _ => return Err(bad()),
    };
    n.checked_mul(1 << shift).ok_or_else(bad)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes() {
        assert_eq!(parse_size("1234"), Ok(1234));
        assert_eq!(parse_size("4MiB"), Ok(4 << 20));
        assert_eq!(parse_size(" 64 kib "), Ok(64 << 10));
        assert_eq!(parse_size("1G"), Ok(1 << 30));
        for bad in ["", "MiB", "4 MB", "-1", "1.5MiB", "99999999999999999999GiB"] {
            assert!(parse_size(bad).is_err(), "{bad}");
        }
    }
}
