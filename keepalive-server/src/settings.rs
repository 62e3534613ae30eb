//! [`Settings`]: every transport knob of a server in one struct, for binaries that take
//! them as flags and a TOML file ([`crate::cli`]) and hand them to the builder at once
//! ([`Builder::settings`](crate::Builder::settings)).

use crate::Limits;
use keepalive::settings::SettingsError;
use keepalive::{EnforcementPolicy, ServerParameters};
use std::path::PathBuf;
use std::time::Duration;

/// Default `--shutdown-grace`: how long in-flight streams may take to finish on shutdown.
pub const DEFAULT_SHUTDOWN_GRACE: Duration = Duration::from_secs(10);

/// The transport settings of a server: keepalive, enforcement, limits, graceful stop,
/// CORS and TLS.
///
/// ```
/// use keepalive_server::Settings;
/// let mut settings = Settings::default();
/// settings.keepalive.max_connection_age = Some(std::time::Duration::from_secs(300));
/// settings.cors_allow_origin = vec!["https://app.example".into()];
/// assert!(settings.validate().is_ok());
/// settings.tls_cert = Some("cert.pem".into());
/// assert_eq!(settings.validate().unwrap_err().0, "--tls-cert needs --tls-key");
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "cli", derive(clap::Args))]
pub struct Settings {
    /// grpc-go's `ServerParameters`.
    #[cfg_attr(feature = "cli", command(flatten))]
    pub keepalive: ServerParameters,
    /// grpc-go's `EnforcementPolicy`.
    #[cfg_attr(feature = "cli", command(flatten))]
    pub enforcement: EnforcementPolicy,
    /// Sizes, streams, connections and their timeouts.
    #[cfg_attr(feature = "cli", command(flatten))]
    pub limits: Limits,
    /// On SIGTERM/SIGINT, in-flight streams get this long to finish [default: 10s].
    #[cfg_attr(feature = "cli", arg(
        id = "shutdown_grace", long = "shutdown-grace", value_name = "DUR",
        value_parser = keepalive::settings::parse_duration, required = false
    ))]
    pub shutdown_grace: Duration,
    /// Allow browsers from this origin (repeatable; `*` for any). None: same-origin only.
    #[cfg_attr(
        feature = "cli",
        arg(
            id = "cors_allow_origin",
            long = "cors-allow-origin",
            value_name = "ORIGIN"
        )
    )]
    pub cors_allow_origin: Vec<String>,
    /// Serve TLS with this PEM certificate chain (needs --tls-key); ALPN h2 and http/1.1 [default: no TLS].
    #[cfg_attr(
        feature = "cli",
        arg(id = "tls_cert", long = "tls-cert", value_name = "FILE")
    )]
    pub tls_cert: Option<PathBuf>,
    /// The PEM private key of --tls-cert.
    #[cfg_attr(
        feature = "cli",
        arg(id = "tls_key", long = "tls-key", value_name = "FILE")
    )]
    pub tls_key: Option<PathBuf>,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            keepalive: ServerParameters::default(),
            enforcement: EnforcementPolicy::default(),
            limits: Limits::default(),
            shutdown_grace: DEFAULT_SHUTDOWN_GRACE,
            cors_allow_origin: Vec::new(),
            tls_cert: None,
            tls_key: None,
        }
    }
}

impl Settings {
    /// Checks every group; the first mistake, in one line naming the flag.
    pub fn validate(&self) -> Result<(), SettingsError> {
        self.keepalive.validate()?;
        self.limits.validate()?;
        for origin in &self.cors_allow_origin {
            crate::routes::validate_origin(origin).map_err(SettingsError)?;
        }
        match (&self.tls_cert, &self.tls_key) {
            (Some(_), None) => Err(SettingsError::new("--tls-cert needs --tls-key")),
            (None, Some(_)) => Err(SettingsError::new("--tls-key needs --tls-cert")),
            _ => Ok(()),
        }
    }
}
