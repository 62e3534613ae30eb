//! The demo's own knobs: the feed's log, the ticker, chaos, the dashboard's files.

use keepalive::settings::SettingsError;
use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;
use std::time::Duration;

/// Default `--replay-capacity`.
pub const DEFAULT_REPLAY_CAPACITY: usize = 10_000;

/// The web root used when `--web-root` is not given, if it exists (relative to the
/// working directory): where `trunk build` puts the dashboard.
pub const DEFAULT_WEB_ROOT: &str = "web/dist";

/// Settings of the demo feed and its page.
#[derive(Clone, Debug, PartialEq, Eq, clap::Args)]
pub struct DemoSettings {
    /// Events kept for replay to resuming subscribers (with --redis: in the stream, and in
    /// each replica's memory) [default: 10000].
    #[arg(
        id = "replay_capacity",
        long = "replay-capacity",
        value_name = "N",
        required = false
    )]
    pub replay_capacity: usize,
    /// Keep the event log in this file (append-only) so restarts continue it [default: memory only].
    #[arg(id = "event_log", long = "event-log", value_name = "FILE")]
    pub event_log: Option<PathBuf>,
    /// Publish a "tick N" event this often [default: off].
    #[arg(
        id = "tick_interval", long = "tick-interval", value_name = "DUR|off",
        value_parser = keepalive::settings::parse_knob, required = false
    )]
    pub tick_interval: std::option::Option<Duration>,
    /// Enable the Chaos call (fault injection); needs --chaos-token [default: false].
    #[arg(
        id = "chaos", long = "chaos", value_name = "BOOL", num_args = 0..=1,
        default_missing_value = "true", action = clap::ArgAction::Set, required = false
    )]
    pub chaos: bool,
    /// The token Chaos calls must present.
    #[arg(id = "chaos_token", long = "chaos-token", value_name = "TOKEN")]
    pub chaos_token: Option<Secret>,
    /// Serve the dashboard's built files from this directory at `/` [default: web/dist if it exists].
    #[arg(id = "web_root", long = "web-root", value_name = "DIR")]
    pub web_root: Option<PathBuf>,
}

impl Default for DemoSettings {
    fn default() -> Self {
        DemoSettings {
            replay_capacity: DEFAULT_REPLAY_CAPACITY,
            event_log: None,
            tick_interval: None,
            chaos: false,
            chaos_token: None,
            web_root: None,
        }
    }
}

impl DemoSettings {
    /// Checks the settings; the error names the flag, in one line.
    pub fn validate(&self) -> Result<(), SettingsError> {
        if self.tick_interval.is_some_and(|d| d.is_zero()) {
            return Err(SettingsError::new("--tick-interval must be more than 0"));
        }
        if self.replay_capacity == 0 {
            return Err(SettingsError::new("--replay-capacity must be at least 1"));
        }
        if self.chaos && self.chaos_token.as_ref().is_none_or(|t| t.0.is_empty()) {
            return Err(SettingsError::new("--chaos needs --chaos-token"));
        }
        Ok(())
    }

    /// The web root: `--web-root`, else [`DEFAULT_WEB_ROOT`] if that directory exists.
    pub fn web_root(&self) -> Option<PathBuf> {
        self.web_root.clone().or_else(|| {
            let default = PathBuf::from(DEFAULT_WEB_ROOT);
            default.is_dir().then_some(default)
        })
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

impl FromStr for Secret {
    type Err = std::convert::Infallible;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(Secret(s.to_string()))
    }
}
