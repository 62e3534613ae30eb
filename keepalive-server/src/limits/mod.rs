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
//! [`Limits`] also holds the connection limits the transport enforces (streams per
//! connection, connections, first-bytes and header-read timeouts).
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

pub use layer::{Limit, LimitLayer};

use crate::conn::{self, limit};
use keepalive::settings::SettingsError;
use std::time::Duration;

/// Default `--max-recv-message-size`: grpc-go's `MaxRecvMsgSize` default.
pub const DEFAULT_MAX_RECV_MESSAGE_SIZE: usize = 4 * 1024 * 1024;
/// Default `--max-send-message-size` (grpc-go's is 2 GiB; a service that sends messages
/// near 4 MiB to browsers should raise it on purpose).
pub const DEFAULT_MAX_SEND_MESSAGE_SIZE: usize = 4 * 1024 * 1024;
/// Default `--max-request-body-size`: two messages of the default size.
pub const DEFAULT_MAX_REQUEST_BODY_SIZE: u64 = 8 * 1024 * 1024;

/// What one client may cost the server: message and body sizes, streams per connection,
/// connections, and how long a connection may take to say something.
///
/// ```
/// use keepalive_server::Limits;
/// let limits = Limits { max_recv_message_size: 64 << 10, ..Limits::default() };
/// assert!(limits.validate().is_ok());
/// assert!(Limits { max_connections: 0, ..limits }.validate().is_err());
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "cli", derive(clap::Args))]
pub struct Limits {
    /// Largest request message; larger → RESOURCE_EXHAUSTED naming the limit [default: 4MiB].
    #[cfg_attr(feature = "cli", arg(
        id = "max_recv_message_size", long = "max-recv-message-size", value_name = "BYTES",
        value_parser = parse_message_size, required = false
    ))]
    pub max_recv_message_size: usize,
    /// Largest response message; larger → not sent, RESOURCE_EXHAUSTED [default: 4MiB].
    #[cfg_attr(feature = "cli", arg(
        id = "max_send_message_size", long = "max-send-message-size", value_name = "BYTES",
        value_parser = parse_message_size, required = false
    ))]
    pub max_send_message_size: usize,
    /// Largest request body of one call, all its messages together [default: 8MiB].
    #[cfg_attr(feature = "cli", arg(
        id = "max_request_body_size", long = "max-request-body-size", value_name = "BYTES",
        value_parser = parse_size, required = false
    ))]
    pub max_request_body_size: u64,
    /// Most streams one HTTP/2 connection may have open; more → RST_STREAM REFUSED_STREAM [default: 200].
    #[cfg_attr(
        feature = "cli",
        arg(
            id = "max_concurrent_streams",
            long = "max-concurrent-streams",
            value_name = "N",
            required = false
        )
    )]
    pub max_concurrent_streams: u32,
    /// Most connections open at once; more → HTTP/1.1 503 / HTTP/2 GOAWAY REFUSED_STREAM [default: 10000].
    #[cfg_attr(
        feature = "cli",
        arg(
            id = "max_connections",
            long = "max-connections",
            value_name = "N",
            required = false
        )
    )]
    pub max_connections: usize,
    /// A new connection that sends nothing for this long is closed [default: 10s].
    #[cfg_attr(feature = "cli", arg(
        id = "first_bytes_timeout", long = "first-bytes-timeout", value_name = "DUR",
        value_parser = keepalive::settings::parse_duration, required = false
    ))]
    pub first_bytes_timeout: Duration,
    /// An HTTP/1.1 request head must arrive within this (slowloris; also the keep-alive idle) [default: 30s].
    #[cfg_attr(feature = "cli", arg(
        id = "http1_header_read_timeout", long = "http1-header-read-timeout", value_name = "DUR",
        value_parser = keepalive::settings::parse_duration, required = false
    ))]
    pub http1_header_read_timeout: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_recv_message_size: DEFAULT_MAX_RECV_MESSAGE_SIZE,
            max_send_message_size: DEFAULT_MAX_SEND_MESSAGE_SIZE,
            max_request_body_size: DEFAULT_MAX_REQUEST_BODY_SIZE,
            max_concurrent_streams: conn::DEFAULT_MAX_CONCURRENT_STREAMS,
            max_connections: limit::DEFAULT_MAX_CONNECTIONS,
            first_bytes_timeout: conn::DEFAULT_FIRST_BYTES_TIMEOUT,
            http1_header_read_timeout: conn::DEFAULT_HTTP1_HEADER_READ_TIMEOUT,
        }
    }
}

impl Limits {
    /// Checks the limits; the error names the flag, in one line.
    pub fn validate(&self) -> Result<(), SettingsError> {
        for (name, n) in [
            ("--max-recv-message-size", self.max_recv_message_size as u64),
            ("--max-send-message-size", self.max_send_message_size as u64),
            ("--max-request-body-size", self.max_request_body_size),
        ] {
            if n == 0 {
                return Err(SettingsError(format!("{name} must be at least 1 byte")));
            }
        }
        for (name, n) in [
            ("--max-recv-message-size", self.max_recv_message_size),
            ("--max-send-message-size", self.max_send_message_size),
        ] {
            // A message's length prefix is 32 bits.
            if n > u32::MAX as usize {
                return Err(SettingsError(format!("{name} must be at most 4GiB - 1")));
            }
        }
        if self.max_request_body_size < self.max_recv_message_size as u64 + 5 {
            return Err(SettingsError::new(
                "--max-request-body-size must hold one message of --max-recv-message-size \
                 and its 5-byte prefix",
            ));
        }
        for (name, n) in [
            (
                "--max-concurrent-streams",
                self.max_concurrent_streams as usize,
            ),
            ("--max-connections", self.max_connections),
        ] {
            if n == 0 {
                return Err(SettingsError(format!("{name} must be at least 1")));
            }
        }
        for (name, d) in [
            ("--first-bytes-timeout", self.first_bytes_timeout),
            (
                "--http1-header-read-timeout",
                self.http1_header_read_timeout,
            ),
        ] {
            if d.is_zero() {
                return Err(SettingsError(format!("{name} must be more than 0")));
            }
        }
        Ok(())
    }
}

/// [`parse_size`] for a message size (a `usize`).
pub fn parse_message_size(s: &str) -> Result<usize, String> {
    let n = parse_size(s)?;
    usize::try_from(n).map_err(|_| format!("size {s:?} is too large for this machine"))
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
    fn validation_names_the_flag() {
        assert!(Limits::default().validate().is_ok());
        for (limits, needle) in [
            (
                Limits {
                    max_recv_message_size: 0,
                    ..Limits::default()
                },
                "at least 1 byte",
            ),
            (
                Limits {
                    max_send_message_size: 1 << 32,
                    ..Limits::default()
                },
                "at most 4GiB - 1",
            ),
            (
                Limits {
                    max_recv_message_size: 8 << 20,
                    ..Limits::default()
                },
                "--max-request-body-size must hold one message",
            ),
            (
                Limits {
                    max_concurrent_streams: 0,
                    ..Limits::default()
                },
                "at least 1",
            ),
            (
                Limits {
                    first_bytes_timeout: Duration::ZERO,
                    ..Limits::default()
                },
                "more than 0",
            ),
        ] {
            let e = limits.validate().expect_err(needle).0;
            assert!(e.contains(needle) && !e.contains('\n'), "{e}");
        }
    }

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
