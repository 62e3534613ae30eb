//! Settings as people write them: one-line errors, and the text forms of durations.
//!
//! Every settings struct of the project (here [`ServerParameters`](crate::ServerParameters)
//! and [`EnforcementPolicy`](crate::EnforcementPolicy); in the server library its limits
//! and browser options) is written once: a struct with grpc-go's defaults in `Default`, a
//! `validate()` that returns a [`SettingsError`], and — with the `cli` feature — clap
//! attributes from which the command line *and* the TOML file of a binary are derived
//! (the server library's `cli` module turns a file's keys into the same flags). The
//! messages name the flag, because that is how a person set the value.

use std::fmt;
#[cfg(feature = "cli")]
use std::time::Duration;

/// A settings mistake, as one line (for example `--keepalive-timeout must be more than 0`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SettingsError(pub String);

impl SettingsError {
    /// An error with this message.
    pub fn new(message: impl Into<String>) -> Self {
        SettingsError(message.into())
    }
}

impl fmt::Display for SettingsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for SettingsError {}

/// Parses a duration in the humantime form: `500ms`, `10s`, `5m`, `2h`, `1h30m`.
///
/// ```
/// use std::time::Duration;
/// assert_eq!(keepalive::settings::parse_duration("1m30s"), Ok(Duration::from_secs(90)));
/// assert!(keepalive::settings::parse_duration("soon").is_err());
/// ```
#[cfg(feature = "cli")]
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    humantime::parse_duration(s.trim())
        .map_err(|e| format!("invalid duration {s:?} ({e}); use e.g. 500ms, 10s, 5m, 2h"))
}

/// Parses a duration that may be turned off: `off` is `None`, anything else
/// [`parse_duration`].
///
/// ```
/// use std::time::Duration;
/// use keepalive::settings::parse_knob;
/// assert_eq!(parse_knob("off"), Ok(None));
/// assert_eq!(parse_knob("5m"), Ok(Some(Duration::from_secs(300))));
/// ```
#[cfg(feature = "cli")]
pub fn parse_knob(s: &str) -> Result<Option<Duration>, String> {
    if s.trim().eq_ignore_ascii_case("off") {
        Ok(None)
    } else {
        parse_duration(s).map(Some)
    }
}
