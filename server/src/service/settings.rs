//! The service's knobs, as [`crate::config`] fills them from flags and the TOML file.

use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

/// Default `--stream-heartbeat-interval` (SignalR's keepalive interval; below common
/// proxies' 30–60 s idle cut).
pub const DEFAULT_STREAM_HEARTBEAT_INTERVAL: Duration = Duration::from_secs(15);
/// Default `--max-sessions`.
pub const DEFAULT_MAX_SESSIONS: usize = 100_000;
/// Default `--replay-capacity`.
pub const DEFAULT_REPLAY_CAPACITY: usize = 10_000;

/// Settings of the `keepalive.v1.Keepalive` service.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServiceSettings {
    /// A Subscribe stream with nothing to send for this long sends a StreamHeartbeat.
    pub stream_heartbeat_interval: Duration,
    /// A Subscribe stream older than this (±10%) ends with GoAway `max_stream_age`.
    pub max_stream_age: Option<Duration>,
    /// Most sessions open at once.
    pub max_sessions: usize,
    /// Events the log holds for replay.
    pub replay_capacity: usize,
    /// The event log file; `None`: memory only.
    pub event_log: Option<PathBuf>,
    /// The ticker publishes "tick N" this often; `None`: no ticker.
    pub tick_interval: Option<Duration>,
    /// Whether the Chaos call is enabled.
    pub chaos: bool,
    /// The token the Chaos call must present (required when `chaos`).
    pub chaos_token: Option<Secret>,
}

impl Default for ServiceSettings {
    fn default() -> Self {
        ServiceSettings {
            stream_heartbeat_interval: DEFAULT_STREAM_HEARTBEAT_INTERVAL,
            max_stream_age: None,
            max_sessions: DEFAULT_MAX_SESSIONS,
            replay_capacity: DEFAULT_REPLAY_CAPACITY,
            event_log: None,
            tick_interval: None,
            chaos: false,
            chaos_token: None,
        }
    }
}

/// A secret that never shows in `Debug` output (logs, panics).
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(pub String);

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(..)")
    }
}
