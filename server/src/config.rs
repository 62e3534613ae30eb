//! Command-line flags and the optional TOML file, merged into one [`Config`].
//!
//! Every flag can also be set in the file given by `--config FILE`, under the same name
//! in snake_case (`--max-connection-idle` → `max_connection_idle = "5m"`); a flag given
//! on the command line wins over the file. Durations use the humantime form (`500ms`,
//! `10s`, `2h`); the knobs that can be disabled take `off`. Any mistake is a
//! [`ConfigError`]: one line, exit code 2.

use crate::conn::{self, ConnSettings};
use crate::limits::{self, Limits, parse_size};
use crate::service::ServiceSettings;
use crate::service::settings::{
    DEFAULT_MAX_SESSIONS, DEFAULT_REPLAY_CAPACITY, DEFAULT_STREAM_HEARTBEAT_INTERVAL, Secret,
};
use clap::Parser;
use keepalive::enforcement::{DEFAULT_MAX_PING_STRIKES, DEFAULT_MIN_TIME};
use keepalive::server::{DEFAULT_KEEPALIVE_TIME, DEFAULT_KEEPALIVE_TIMEOUT, MIN_KEEPALIVE_TIME};
use keepalive::{EnforcementPolicy, ServerParams};
use serde::Deserialize;
use std::fmt;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

/// Default listen address.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:8080";
/// Default bound on the graceful stop.
pub const DEFAULT_SHUTDOWN_GRACE: Duration = Duration::from_secs(10);

/// A configuration mistake, reported as one line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError(pub String);

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for ConfigError {}

/// A duration that may be `off`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Knob(pub Option<Duration>);

fn parse_duration(s: &str) -> Result<Duration, String> {
    humantime::parse_duration(s.trim())
        .map_err(|e| format!("invalid duration {s:?} ({e}); use e.g. 500ms, 10s, 5m, 2h"))
}

fn parse_knob(s: &str) -> Result<Knob, String> {
    if s.trim().eq_ignore_ascii_case("off") {
        Ok(Knob(None))
    } else {
        parse_duration(s).map(|d| Knob(Some(d)))
    }
}

/// The server's flags.
#[derive(Parser, Debug, Default)]
#[command(
    name = "server",
    version,
    about = "One-port gRPC + gRPC-web server with grpc-go's keepalive and enforcement on the wire"
)]
pub struct Cli {
    /// TOML file with any of these settings (snake_case names); flags win.
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Address to listen on [default: 127.0.0.1:8080].
    #[arg(long, value_name = "ADDR")]
    pub listen: Option<String>,
    /// No frame read for this long: send a PING (ServerParameters.Time) [default: 2h, floor 1s].
    #[arg(long, value_name = "DUR", value_parser = parse_duration)]
    pub keepalive_time: Option<Duration>,
    /// After that PING, nothing read for this long: close (ServerParameters.Timeout) [default: 20s].
    #[arg(long, value_name = "DUR", value_parser = parse_duration)]
    pub keepalive_timeout: Option<Duration>,
    /// No active stream for this long (±10%): GOAWAY max_idle [default: off].
    #[arg(long, value_name = "DUR|off", value_parser = parse_knob)]
    pub max_connection_idle: Option<Knob>,
    /// Connection older than this (±10%): GOAWAY max_age [default: off].
    #[arg(long, value_name = "DUR|off", value_parser = parse_knob)]
    pub max_connection_age: Option<Knob>,
    /// After the age GOAWAY, open streams get this long, then close [default: off = forever].
    #[arg(long, value_name = "DUR|off", value_parser = parse_knob)]
    pub max_connection_age_grace: Option<Knob>,
    /// A client PING sooner than this after the previous one is a strike (EnforcementPolicy.MinTime) [default: 5m].
    #[arg(long, value_name = "DUR", value_parser = parse_duration)]
    pub min_ping_interval: Option<Duration>,
    /// Judge PINGs with no active stream by --min-ping-interval instead of 2h (EnforcementPolicy.PermitWithoutStream).
    #[arg(long, value_name = "BOOL", num_args = 0..=1, default_missing_value = "true")]
    pub permit_keepalive_without_stream: Option<bool>,
    /// Strikes tolerated before GOAWAY too_many_pings; 0 = unlimited [default: 2].
    #[arg(long, value_name = "N")]
    pub max_ping_strikes: Option<u32>,
    /// On SIGTERM/SIGINT, in-flight streams get this long to finish [default: 10s].
    #[arg(long, value_name = "DUR", value_parser = parse_duration)]
    pub shutdown_grace: Option<Duration>,
    /// Allow browsers from this origin (repeatable; `*` for any). None: same-origin only.
    #[arg(long, value_name = "ORIGIN")]
    pub cors_allow_origin: Vec<String>,
    /// A quiet Subscribe stream gets a StreamHeartbeat this often [default: 15s].
    #[arg(long, value_name = "DUR", value_parser = parse_duration)]
    pub stream_heartbeat_interval: Option<Duration>,
    /// Subscribe streams older than this (±10%) end with GoAway max_stream_age [default: off].
    #[arg(long, value_name = "DUR|off", value_parser = parse_knob)]
    pub max_stream_age: Option<Knob>,
    /// Most sessions open at once [default: 100000].
    #[arg(long, value_name = "N")]
    pub max_sessions: Option<usize>,
    /// Events kept for replay to resuming subscribers [default: 10000].
    #[arg(long, value_name = "N")]
    pub replay_capacity: Option<usize>,
    /// Keep the event log in this file (append-only) so restarts continue it [default: memory only].
    #[arg(long, value_name = "FILE")]
    pub event_log: Option<PathBuf>,
    /// Publish a "tick N" event this often [default: off].
    #[arg(long, value_name = "DUR|off", value_parser = parse_knob)]
    pub tick_interval: Option<Knob>,
    /// Enable the Chaos call (fault injection); needs --chaos-token [default: false].
    #[arg(long, value_name = "BOOL", num_args = 0..=1, default_missing_value = "true")]
    pub chaos: Option<bool>,
    /// The token Chaos calls must present.
    #[arg(long, value_name = "TOKEN")]
    pub chaos_token: Option<String>,
    /// Serve the dashboard's built files from this directory at `/` [default: web/dist if it exists].
    #[arg(long, value_name = "DIR")]
    pub web_root: Option<PathBuf>,
    /// Largest request message; larger → RESOURCE_EXHAUSTED naming the limit [default: 4MiB].
    #[arg(long, value_name = "BYTES", value_parser = parse_size)]
    pub max_recv_message_size: Option<u64>,
    /// Largest response message; larger → not sent, RESOURCE_EXHAUSTED [default: 4MiB].
    #[arg(long, value_name = "BYTES", value_parser = parse_size)]
    pub max_send_message_size: Option<u64>,
    /// Largest request body of one call, all its messages together [default: 8MiB].
    #[arg(long, value_name = "BYTES", value_parser = parse_size)]
    pub max_request_body_size: Option<u64>,
    /// Most streams one HTTP/2 connection may have open; more → RST_STREAM REFUSED_STREAM [default: 200].
    #[arg(long, value_name = "N")]
    pub max_concurrent_streams: Option<u32>,
    /// Most connections open at once; more → HTTP/1.1 503 / HTTP/2 GOAWAY REFUSED_STREAM [default: 10000].
    #[arg(long, value_name = "N")]
    pub max_connections: Option<usize>,
    /// A new connection that sends nothing for this long is closed [default: 10s].
    #[arg(long, value_name = "DUR", value_parser = parse_duration)]
    pub first_bytes_timeout: Option<Duration>,
    /// An HTTP/1.1 request head must arrive within this (slowloris; also the keep-alive idle) [default: 30s].
    #[arg(long, value_name = "DUR", value_parser = parse_duration)]
    pub http1_header_read_timeout: Option<Duration>,
    /// Serve TLS with this PEM certificate chain (needs --tls-key); ALPN h2 and http/1.1 [default: no TLS].
    #[arg(long, value_name = "FILE")]
    pub tls_cert: Option<PathBuf>,
    /// The PEM private key of --tls-cert.
    #[arg(long, value_name = "FILE")]
    pub tls_key: Option<PathBuf>,
}

/// A byte size in the TOML file: a number of bytes, or a string such as `"4MiB"`.
#[derive(Deserialize, Debug, Clone)]
#[serde(untagged)]
enum FileSize {
    Bytes(u64),
    Text(String),
}

fn size_from_file(name: &str, v: &Option<FileSize>) -> Result<Option<u64>, ConfigError> {
    match v {
        None => Ok(None),
        Some(FileSize::Bytes(n)) => Ok(Some(*n)),
        Some(FileSize::Text(s)) => parse_size(s)
            .map(Some)
            .map_err(|e| ConfigError(format!("config {name}: {e}"))),
    }
}

/// The TOML file: the same settings, as strings where the flag takes a duration.
#[derive(Deserialize, Debug, Default)]
#[serde(deny_unknown_fields)]
struct FileConfig {
    listen: Option<String>,
    keepalive_time: Option<String>,
    keepalive_timeout: Option<String>,
    max_connection_idle: Option<String>,
    max_connection_age: Option<String>,
    max_connection_age_grace: Option<String>,
    min_ping_interval: Option<String>,
    permit_keepalive_without_stream: Option<bool>,
    max_ping_strikes: Option<u32>,
    shutdown_grace: Option<String>,
    cors_allow_origin: Option<Vec<String>>,
    stream_heartbeat_interval: Option<String>,
    max_stream_age: Option<String>,
    max_sessions: Option<usize>,
    replay_capacity: Option<usize>,
    event_log: Option<PathBuf>,
    tick_interval: Option<String>,
    chaos: Option<bool>,
    chaos_token: Option<String>,
    web_root: Option<PathBuf>,
    max_recv_message_size: Option<FileSize>,
    max_send_message_size: Option<FileSize>,
    max_request_body_size: Option<FileSize>,
    max_concurrent_streams: Option<u32>,
    max_connections: Option<usize>,
    first_bytes_timeout: Option<String>,
    http1_header_read_timeout: Option<String>,
    tls_cert: Option<PathBuf>,
    tls_key: Option<PathBuf>,
}

/// The effective configuration.
#[derive(Debug, Clone)]
pub struct Config {
    /// Where to listen.
    pub listen: SocketAddr,
    /// Keepalive settings of every connection.
    pub conn: ConnSettings,
    /// Allowed CORS origins.
    pub cors_allow_origin: Vec<String>,
    /// Settings of the keepalive.v1 service.
    pub service: ServiceSettings,
    /// Where the dashboard's built files are (served at `/`); `None`: not served.
    pub web_root: Option<PathBuf>,
    /// Things worth a warning once logging is up (e.g. a keepalive time raised to 1s).
    pub warnings: Vec<String>,
    /// Message and request-body size limits of every call.
    pub limits: Limits,
    /// Most connections open at once.
    pub max_connections: usize,
    /// TLS certificate and key files; `None`: plain TCP.
    pub tls: Option<TlsFiles>,
}

/// `--tls-cert` and `--tls-key` (read and checked when the server binds).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsFiles {
    /// PEM certificate chain, leaf first.
    pub cert: PathBuf,
    /// PEM private key.
    pub key: PathBuf,
}

impl Config {
    /// Parses the command line (and the file it names).
    pub fn from_args(
        args: impl IntoIterator<Item = std::ffi::OsString>,
    ) -> Result<Self, CliOutcome> {
        let cli = Cli::try_parse_from(args).map_err(|e| match e.kind() {
            clap::error::ErrorKind::DisplayHelp | clap::error::ErrorKind::DisplayVersion => {
                CliOutcome::Print(e.to_string())
            }
            _ => CliOutcome::Error(ConfigError(first_line(&e.to_string()))),
        })?;
        Config::from_cli(cli).map_err(CliOutcome::Error)
    }

    /// Merges parsed flags with their file.
    pub fn from_cli(cli: Cli) -> Result<Self, ConfigError> {
        let file = match &cli.config {
            Some(path) => read_file(path)?,
            None => FileConfig::default(),
        };
        let from_file = |name: &str, v: &Option<String>| -> Result<Option<Duration>, ConfigError> {
            v.as_deref()
                .map(|s| parse_duration(s).map_err(|e| ConfigError(format!("config {name}: {e}"))))
                .transpose()
        };
        let knob_from_file =
            |name: &str, v: &Option<String>| -> Result<Option<Knob>, ConfigError> {
                v.as_deref()
                    .map(|s| parse_knob(s).map_err(|e| ConfigError(format!("config {name}: {e}"))))
                    .transpose()
            };

        let listen_str = cli
            .listen
            .or(file.listen)
            .unwrap_or_else(|| DEFAULT_LISTEN.to_string());
        let listen: SocketAddr = listen_str.parse().map_err(|_| {
            ConfigError(format!(
                "invalid listen address {listen_str:?}; use e.g. 127.0.0.1:8080"
            ))
        })?;

        let mut warnings = Vec::new();
        let mut keepalive_time = cli
            .keepalive_time
            .or(from_file("keepalive_time", &file.keepalive_time)?)
            .unwrap_or(DEFAULT_KEEPALIVE_TIME);
        if keepalive_time < MIN_KEEPALIVE_TIME {
            warnings.push(format!(
                "keepalive time {keepalive_time:?} is below the 1s floor; using 1s (as grpc-go does)"
            ));
            keepalive_time = MIN_KEEPALIVE_TIME;
        }
        let keepalive_timeout = cli
            .keepalive_timeout
            .or(from_file("keepalive_timeout", &file.keepalive_timeout)?)
            .unwrap_or(DEFAULT_KEEPALIVE_TIMEOUT);
        if keepalive_timeout.is_zero() {
            return Err(ConfigError(
                "--keepalive-timeout must be more than 0".into(),
            ));
        }
        let idle = cli
            .max_connection_idle
            .or(knob_from_file(
                "max_connection_idle",
                &file.max_connection_idle,
            )?)
            .and_then(|k| k.0);
        let age = cli
            .max_connection_age
            .or(knob_from_file(
                "max_connection_age",
                &file.max_connection_age,
            )?)
            .and_then(|k| k.0);
        let grace = cli
            .max_connection_age_grace
            .or(knob_from_file(
                "max_connection_age_grace",
                &file.max_connection_age_grace,
            )?)
            .and_then(|k| k.0);
        if grace.is_some() && age.is_none() {
            return Err(ConfigError(
                "--max-connection-age-grace needs --max-connection-age".into(),
            ));
        }
        for (name, d) in [
            ("--max-connection-idle", idle),
            ("--max-connection-age", age),
        ] {
            if d.is_some_and(|d| d.is_zero()) {
                return Err(ConfigError(format!("{name} must be more than 0 (or off)")));
            }
        }
        let min_time = cli
            .min_ping_interval
            .or(from_file("min_ping_interval", &file.min_ping_interval)?)
            .unwrap_or(DEFAULT_MIN_TIME);
        let permit_without_stream = cli
            .permit_keepalive_without_stream
            .or(file.permit_keepalive_without_stream)
            .unwrap_or(false);
        let max_ping_strikes = cli
            .max_ping_strikes
            .or(file.max_ping_strikes)
            .unwrap_or(DEFAULT_MAX_PING_STRIKES);
        let shutdown_grace = cli
            .shutdown_grace
            .or(from_file("shutdown_grace", &file.shutdown_grace)?)
            .unwrap_or(DEFAULT_SHUTDOWN_GRACE);
        let cors_allow_origin = if cli.cors_allow_origin.is_empty() {
            file.cors_allow_origin.unwrap_or_default()
        } else {
            cli.cors_allow_origin
        };
        for origin in &cors_allow_origin {
            validate_origin(origin)?;
        }

        let service = ServiceSettings {
            stream_heartbeat_interval: cli
                .stream_heartbeat_interval
                .or(from_file(
                    "stream_heartbeat_interval",
                    &file.stream_heartbeat_interval,
                )?)
                .unwrap_or(DEFAULT_STREAM_HEARTBEAT_INTERVAL),
            max_stream_age: cli
                .max_stream_age
                .or(knob_from_file("max_stream_age", &file.max_stream_age)?)
                .and_then(|k| k.0),
            max_sessions: cli
                .max_sessions
                .or(file.max_sessions)
                .unwrap_or(DEFAULT_MAX_SESSIONS),
            replay_capacity: cli
                .replay_capacity
                .or(file.replay_capacity)
                .unwrap_or(DEFAULT_REPLAY_CAPACITY),
            event_log: cli.event_log.or(file.event_log),
            tick_interval: cli
                .tick_interval
                .or(knob_from_file("tick_interval", &file.tick_interval)?)
                .and_then(|k| k.0),
            chaos: cli.chaos.or(file.chaos).unwrap_or(false),
            chaos_token: cli.chaos_token.or(file.chaos_token).map(Secret),
        };
        validate_service(&service)?;
        let web_root = cli.web_root.or(file.web_root).or_else(|| {
            let default = PathBuf::from(crate::static_files::DEFAULT_WEB_ROOT);
            default.is_dir().then_some(default)
        });

        let size = |name: &str, flag: Option<u64>, file: &Option<FileSize>, default: u64| {
            let n = flag.or(size_from_file(name, file)?).unwrap_or(default);
            if n == 0 {
                return Err(ConfigError(format!(
                    "--{} must be at least 1 byte",
                    name.replace('_', "-")
                )));
            }
            Ok(n)
        };
        let message_size = |name: &str, flag, file: &Option<FileSize>, default: usize| {
            let n = size(name, flag, file, default as u64)?;
            // A message's length prefix is 32 bits.
            usize::try_from(n)
                .ok()
                .filter(|&n| n <= u32::MAX as usize)
                .ok_or_else(|| {
                    ConfigError(format!(
                        "--{} must be at most 4GiB - 1",
                        name.replace('_', "-")
                    ))
                })
        };
        let limits = Limits {
            max_recv_message_size: message_size(
                "max_recv_message_size",
                cli.max_recv_message_size,
                &file.max_recv_message_size,
                limits::DEFAULT_MAX_RECV_MESSAGE_SIZE,
            )?,
            max_send_message_size: message_size(
                "max_send_message_size",
                cli.max_send_message_size,
                &file.max_send_message_size,
                limits::DEFAULT_MAX_SEND_MESSAGE_SIZE,
            )?,
            max_request_body_size: size(
                "max_request_body_size",
                cli.max_request_body_size,
                &file.max_request_body_size,
                limits::DEFAULT_MAX_REQUEST_BODY_SIZE,
            )?,
        };
        if limits.max_request_body_size < limits.max_recv_message_size as u64 + 5 {
            return Err(ConfigError(
                "--max-request-body-size must hold one message of --max-recv-message-size \
                 and its 5-byte prefix"
                    .into(),
            ));
        }
        let max_concurrent_streams = cli
            .max_concurrent_streams
            .or(file.max_concurrent_streams)
            .unwrap_or(conn::DEFAULT_MAX_CONCURRENT_STREAMS);
        let max_connections = cli
            .max_connections
            .or(file.max_connections)
            .unwrap_or(conn::limit::DEFAULT_MAX_CONNECTIONS);
        let first_bytes_timeout = cli
            .first_bytes_timeout
            .or(from_file("first_bytes_timeout", &file.first_bytes_timeout)?)
            .unwrap_or(conn::DEFAULT_FIRST_BYTES_TIMEOUT);
        let http1_header_read_timeout = cli
            .http1_header_read_timeout
            .or(from_file(
                "http1_header_read_timeout",
                &file.http1_header_read_timeout,
            )?)
            .unwrap_or(conn::DEFAULT_HTTP1_HEADER_READ_TIMEOUT);
        for (name, n) in [
            ("--max-concurrent-streams", max_concurrent_streams as usize),
            ("--max-connections", max_connections),
        ] {
            if n == 0 {
                return Err(ConfigError(format!("{name} must be at least 1")));
            }
        }
        for (name, d) in [
            ("--first-bytes-timeout", first_bytes_timeout),
            ("--http1-header-read-timeout", http1_header_read_timeout),
        ] {
            if d.is_zero() {
                return Err(ConfigError(format!("{name} must be more than 0")));
            }
        }
        let tls = match (cli.tls_cert.or(file.tls_cert), cli.tls_key.or(file.tls_key)) {
            (Some(cert), Some(key)) => Some(TlsFiles { cert, key }),
            (None, None) => None,
            (Some(_), None) => return Err(ConfigError("--tls-cert needs --tls-key".into())),
            (None, Some(_)) => return Err(ConfigError("--tls-key needs --tls-cert".into())),
        };

        Ok(Config {
            listen,
            conn: ConnSettings {
                params: ServerParams {
                    keepalive_time: Some(keepalive_time),
                    keepalive_timeout,
                    max_connection_idle: idle,
                    max_connection_age: age,
                    max_connection_age_grace: grace,
                },
                policy: EnforcementPolicy {
                    min_time,
                    permit_without_stream,
                    max_ping_strikes,
                },
                shutdown_grace,
                first_bytes_timeout,
                http1_header_read_timeout,
                max_concurrent_streams,
            },
            cors_allow_origin,
            service,
            web_root,
            warnings,
            limits,
            max_connections,
            tls,
        })
    }
}

fn validate_service(s: &ServiceSettings) -> Result<(), ConfigError> {
    for (name, d) in [
        (
            "--stream-heartbeat-interval",
            Some(s.stream_heartbeat_interval),
        ),
        ("--max-stream-age", s.max_stream_age),
        ("--tick-interval", s.tick_interval),
    ] {
        if d.is_some_and(|d| d.is_zero()) {
            return Err(ConfigError(format!("{name} must be more than 0")));
        }
    }
    for (name, n) in [
        ("--max-sessions", s.max_sessions),
        ("--replay-capacity", s.replay_capacity),
    ] {
        if n == 0 {
            return Err(ConfigError(format!("{name} must be at least 1")));
        }
    }
    if s.chaos && s.chaos_token.as_ref().is_none_or(|t| t.0.is_empty()) {
        return Err(ConfigError("--chaos needs --chaos-token".into()));
    }
    Ok(())
}

/// What parsing the command line led to, when it is not a configuration.
#[derive(Debug)]
pub enum CliOutcome {
    /// `--help` or `--version`: print this and exit 0.
    Print(String),
    /// A mistake: print it and exit 2.
    Error(ConfigError),
}

fn first_line(s: &str) -> String {
    s.lines()
        .find(|l| !l.trim().is_empty())
        .unwrap_or(s)
        .trim()
        .trim_start_matches("error: ")
        .to_string()
}

fn read_file(path: &PathBuf) -> Result<FileConfig, ConfigError> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| ConfigError(format!("cannot read config {}: {e}", path.display())))?;
    toml::from_str(&text).map_err(|e| {
        // serde's "unknown field" errors point at the whole table: find the key's line.
        let unknown_key = e
            .message()
            .split('`')
            .nth(1)
            .filter(|_| e.message().starts_with("unknown field"));
        let line = match unknown_key {
            Some(key) => text
                .lines()
                .position(|l| l.trim_start().starts_with(key))
                .map(|i| i + 1),
            None => e
                .span()
                .map(|s| text.get(..s.start).unwrap_or(&text).lines().count().max(1)),
        };
        let at = line.map(|l| format!(" (line {l})")).unwrap_or_default();
        ConfigError(format!(
            "config {}{at}: {}",
            path.display(),
            e.message().trim()
        ))
    })
}

fn validate_origin(origin: &str) -> Result<(), ConfigError> {
    let ok = origin == "*"
        || ((origin.starts_with("http://") || origin.starts_with("https://"))
            && !origin.ends_with('/')
            && http::HeaderValue::from_str(origin).is_ok()
            && origin.split("://").nth(1).is_some_and(|h| !h.is_empty()));
    if ok {
        Ok(())
    } else {
        Err(ConfigError(format!(
            "invalid CORS origin {origin:?}; use e.g. http://localhost:3000 or *"
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Result<Config, String> {
        let argv = std::iter::once("server")
            .chain(args.iter().copied())
            .map(Into::into);
        Config::from_args(argv).map_err(|e| match e {
            CliOutcome::Print(s) => s,
            CliOutcome::Error(e) => e.0,
        })
    }

    #[test]
    fn defaults_are_grpc_gos() {
        let c = parse(&[]).expect("defaults");
        assert_eq!(c.listen.to_string(), DEFAULT_LISTEN);
        assert_eq!(c.conn.params, ServerParams::default());
        assert_eq!(c.conn.policy, EnforcementPolicy::default());
        assert_eq!(c.conn.shutdown_grace, Duration::from_secs(10));
    }

    #[test]
    fn flags_and_off() {
        let c = parse(&[
            "--keepalive-time",
            "10s",
            "--max-connection-idle",
            "off",
            "--max-connection-age",
            "1m",
            "--max-connection-age-grace",
            "5s",
            "--permit-keepalive-without-stream",
            "--max-ping-strikes",
            "0",
            "--cors-allow-origin",
            "http://localhost:3000",
        ])
        .expect("valid");
        assert_eq!(c.conn.params.keepalive_time, Some(Duration::from_secs(10)));
        assert_eq!(c.conn.params.max_connection_idle, None);
        assert_eq!(
            c.conn.params.max_connection_age,
            Some(Duration::from_secs(60))
        );
        assert!(c.conn.policy.permit_without_stream);
        assert_eq!(c.conn.policy.max_ping_strikes, 0);
    }

    #[test]
    fn service_flags() {
        let c = parse(&[]).expect("defaults");
        assert_eq!(c.service, ServiceSettings::default());
        let c = parse(&[
            "--stream-heartbeat-interval",
            "300ms",
            "--max-stream-age",
            "1m",
            "--max-sessions",
            "5",
            "--replay-capacity",
            "7",
            "--event-log",
            "/tmp/x.log",
            "--tick-interval",
            "off",
            "--chaos",
            "--chaos-token",
            "t",
        ])
        .expect("valid");
        let s = c.service;
        assert_eq!(s.stream_heartbeat_interval, Duration::from_millis(300));
        assert_eq!(s.max_stream_age, Some(Duration::from_secs(60)));
        assert_eq!((s.max_sessions, s.replay_capacity), (5, 7));
        assert_eq!(s.event_log, Some(PathBuf::from("/tmp/x.log")));
        assert_eq!(s.tick_interval, None);
        assert!(s.chaos);
        assert!(
            !format!("{s:?}").contains("\"t\""),
            "token must not be printed"
        );
    }

    #[test]
    fn limit_flags_file_and_defaults() {
        let c = parse(&[]).expect("defaults");
        assert_eq!(c.limits, Limits::default());
        assert_eq!(c.max_connections, conn::limit::DEFAULT_MAX_CONNECTIONS);
        assert_eq!(c.conn.max_concurrent_streams, 200);
        assert_eq!(c.conn.first_bytes_timeout, Duration::from_secs(10));
        assert_eq!(c.conn.http1_header_read_timeout, Duration::from_secs(30));
        let c = parse(&[
            "--max-recv-message-size",
            "64KiB",
            "--max-send-message-size",
            "1000",
            "--max-request-body-size",
            "1MiB",
            "--max-concurrent-streams",
            "3",
            "--max-connections",
            "50",
            "--first-bytes-timeout",
            "2s",
            "--http1-header-read-timeout",
            "1500ms",
        ])
        .expect("valid");
        assert_eq!(
            c.limits,
            Limits {
                max_recv_message_size: 64 << 10,
                max_send_message_size: 1000,
                max_request_body_size: 1 << 20,
            }
        );
        assert_eq!(c.max_connections, 50);
        assert_eq!(c.conn.max_concurrent_streams, 3);
        assert_eq!(c.conn.first_bytes_timeout, Duration::from_secs(2));
        assert_eq!(
            c.conn.http1_header_read_timeout,
            Duration::from_millis(1500)
        );

        let dir = std::env::temp_dir().join(format!("server-limits-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("tmp");
        let path = dir.join("c.toml");
        std::fs::write(
            &path,
            "max_recv_message_size = \"1MiB\"\nmax_send_message_size = 2048\n\
             max_connections = 7\nhttp1_header_read_timeout = \"5s\"\n",
        )
        .expect("write");
        let c = parse(&["--config", path.to_str().expect("utf8")]).expect("valid");
        assert_eq!(c.limits.max_recv_message_size, 1 << 20);
        assert_eq!(c.limits.max_send_message_size, 2048);
        assert_eq!(c.max_connections, 7);
        assert_eq!(c.conn.http1_header_read_timeout, Duration::from_secs(5));
        std::fs::write(&path, "max_send_message_size = \"lots\"\n").expect("write");
        let e = parse(&["--config", path.to_str().expect("utf8")]).expect_err("bad size");
        assert!(
            e.contains("max_send_message_size") && e.contains("invalid size"),
            "{e}"
        );
        let _ = std::fs::remove_dir_all(&dir);

        for (args, needle) in [
            (&["--max-recv-message-size", "4 MB"][..], "invalid size"),
            (&["--max-recv-message-size", "0"], "at least 1 byte"),
            (&["--max-send-message-size", "4GiB"], "at most 4GiB - 1"),
            (
                &["--max-recv-message-size", "8MiB"],
                "--max-request-body-size must hold one message",
            ),
            (&["--max-connections", "0"], "at least 1"),
            (&["--max-concurrent-streams", "0"], "at least 1"),
            (&["--first-bytes-timeout", "0s"], "more than 0"),
        ] {
            let e = parse(args).expect_err("must fail");
            assert!(e.contains(needle), "{args:?}: {e}");
            assert!(!e.contains('\n'), "{e:?}");
        }
    }

    #[test]
    fn keepalive_time_floor() {
        let c = parse(&["--keepalive-time", "10ms"]).expect("valid");
        assert_eq!(c.conn.params.keepalive_time, Some(Duration::from_secs(1)));
        assert_eq!(c.warnings.len(), 1);
    }

    #[test]
    fn mistakes_are_one_line() {
        for (args, needle) in [
            (&["--bogus"][..], "--bogus"),
            (&["--keepalive-time", "soon"], "invalid duration"),
            (
                &["--max-connection-age-grace", "5s"],
                "needs --max-connection-age",
            ),
            (&["--listen", "nowhere"], "invalid listen address"),
            (&["--cors-allow-origin", "localhost"], "invalid CORS origin"),
            (&["--chaos"], "--chaos needs --chaos-token"),
            (&["--replay-capacity", "0"], "at least 1"),
            (&["--stream-heartbeat-interval", "0s"], "more than 0"),
        ] {
            let e = parse(args).expect_err("must fail");
            assert!(e.contains(needle), "{e}");
            assert!(!e.contains('\n'), "{e:?}");
        }
    }

    #[test]
    fn tls_needs_both_files() {
        let c = parse(&["--tls-cert", "c.pem", "--tls-key", "k.pem"]).expect("valid");
        let files = c.tls.expect("tls");
        assert_eq!(
            (files.cert, files.key),
            (PathBuf::from("c.pem"), PathBuf::from("k.pem"))
        );
        assert!(parse(&[]).expect("valid").tls.is_none());
        let e = parse(&["--tls-cert", "c.pem"]).expect_err("no key");
        assert!(e.contains("--tls-cert needs --tls-key"), "{e}");
        let e = parse(&["--tls-key", "k.pem"]).expect_err("no cert");
        assert!(e.contains("--tls-key needs --tls-cert"), "{e}");
        let dir = std::env::temp_dir().join(format!("server-tls-cfg-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("tmp");
        let path = dir.join("c.toml");
        std::fs::write(&path, "tls_cert = \"a.pem\"\ntls_key = \"b.pem\"\n").expect("write");
        let c = parse(&["--config", path.to_str().expect("utf8")]).expect("valid");
        assert_eq!(c.tls.expect("tls").key, PathBuf::from("b.pem"));
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn web_root_from_flag_or_file() {
        let c = parse(&["--web-root", "/srv/page"]).expect("valid");
        assert_eq!(c.web_root, Some(PathBuf::from("/srv/page")));
        let dir = std::env::temp_dir().join(format!("server-web-root-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("tmp");
        let path = dir.join("c.toml");
        std::fs::write(&path, "web_root = \"page/dist\"\n").expect("write");
        let p = path.to_str().expect("utf8");
        let c = parse(&["--config", p]).expect("valid");
        assert_eq!(c.web_root, Some(PathBuf::from("page/dist")));
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn file_then_flags_win() {
        let dir = std::env::temp_dir().join(format!("server-config-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("tmp");
        let path = dir.join("c.toml");
        std::fs::write(
            &path,
            "keepalive_time = \"30s\"\nmax_connection_idle = \"off\"\nmax_ping_strikes = 5\n\
             tick_interval = \"2s\"\nchaos = true\nchaos_token = \"tok\"\nreplay_capacity = 3\n",
        )
        .expect("write");
        let p = path.to_str().expect("utf8");
        let c = parse(&["--config", p, "--max-ping-strikes", "7"]).expect("valid");
        assert_eq!(c.conn.params.keepalive_time, Some(Duration::from_secs(30)));
        assert_eq!(c.conn.policy.max_ping_strikes, 7);
        assert_eq!(c.service.tick_interval, Some(Duration::from_secs(2)));
        assert_eq!(c.service.replay_capacity, 3);
        assert!(c.service.chaos);

        std::fs::write(&path, "keepalive_time = \"30s\"\nbogus = 1\n").expect("write");
        let e = parse(&["--config", p]).expect_err("unknown key");
        assert!(
            e.contains("bogus") && e.contains("line 2") && !e.contains('\n'),
            "{e}"
        );
        let _ = std::fs::remove_dir_all(&dir);
    }
}
