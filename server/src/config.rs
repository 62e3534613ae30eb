//! The binary's flags and TOML file: the library's settings structs plus the demo's,
//! flattened into one command line ([`keepalive_server::cli`] derives the file from it).
//!
//! Every flag can also be set in the file given by `--config FILE`, under its name in
//! snake_case (`--max-connection-idle` → `max_connection_idle = "5m"`); a flag given on
//! the command line wins over the file. Durations use the humantime form (`500ms`, `10s`,
//! `2h`); the knobs that can be disabled take `off`. Any mistake is one line, exit code 2.

use crate::settings::DemoSettings;
use clap::Parser;
use keepalive_server::Settings;
use keepalive_server::browser::BrowserOptions;
use keepalive_server::browser::replica::ReplicaSettings;
pub use keepalive_server::cli::CliOutcome;
use std::net::SocketAddr;
use std::path::PathBuf;

/// Default listen address.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:8080";

/// The server's flags.
#[derive(Parser, Debug, Clone, PartialEq, Eq)]
#[command(
    name = "server",
    version,
    about = "One-port gRPC + gRPC-web server with grpc-go's keepalive and enforcement on the wire"
)]
pub struct Config {
    /// TOML file with any of these settings (snake_case names); flags win.
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Address to listen on [default: 127.0.0.1:8080].
    #[arg(long, value_name = "ADDR", value_parser = parse_listen, required = false)]
    pub listen: SocketAddr,
    /// The transport: keepalive, enforcement, limits, shutdown, CORS, TLS.
    #[command(flatten)]
    pub server: Settings,
    /// Browser sessions and resumable streams.
    #[command(flatten)]
    pub browser: BrowserOptions,
    /// Replicas: their names, the session secret, the shared Redis (which then also holds
    /// the feed's log).
    #[command(flatten)]
    pub replica: ReplicaSettings,
    /// The demo feed and its page.
    #[command(flatten)]
    pub demo: DemoSettings,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            config: None,
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            server: Settings::default(),
            browser: BrowserOptions::default(),
            replica: ReplicaSettings::default(),
            demo: DemoSettings::default(),
        }
    }
}

fn parse_listen(s: &str) -> Result<SocketAddr, String> {
    s.trim()
        .parse()
        .map_err(|_| format!("invalid listen address {s:?}; use e.g. {DEFAULT_LISTEN}"))
}

impl Config {
    /// Parses the command line (and the file it names) and checks every setting.
    ///
    /// # Errors
    /// Help and version to print, or one line saying what is wrong.
    pub fn from_args<I, A>(args: I) -> Result<Self, CliOutcome>
    where
        I: IntoIterator<Item = A>,
        A: Into<std::ffi::OsString> + Clone,
    {
        let config: Config = keepalive_server::cli::parse(args)?;
        let check = |r: Result<(), keepalive::settings::SettingsError>| {
            r.map_err(|e| CliOutcome::Error(e.0))
        };
        check(config.server.validate())?;
        check(config.browser.validate())?;
        check(config.replica.validate())?;
        check(config.demo.validate())?;
        if config.replica.redis.is_some() && config.demo.event_log.is_some() {
            return Err(CliOutcome::Error(
                "--event-log and --redis exclude each other: with --redis the feed's log is in Redis"
                    .into(),
            ));
        }
        Ok(config)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use keepalive::{EnforcementPolicy, ServerParameters};
    use keepalive_server::Limits;
    use std::time::Duration;

    fn parse(args: &[&str]) -> Result<Config, String> {
        let argv = std::iter::once("server").chain(args.iter().copied());
        Config::from_args(argv).map_err(|e| match e {
            CliOutcome::Print(s) | CliOutcome::Error(s) => s,
        })
    }

    fn tmp_file(name: &str, text: &str) -> String {
        let dir = std::env::temp_dir().join(format!("server-config-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("tmp");
        let path = dir.join(name);
        std::fs::write(&path, text).expect("write");
        path.to_string_lossy().into_owned()
    }

    #[test]
    fn defaults_are_grpc_gos() {
        let c = parse(&[]).expect("defaults");
        assert_eq!(c.listen.to_string(), DEFAULT_LISTEN);
        assert_eq!(c.server.keepalive, ServerParameters::default());
        assert_eq!(c.server.enforcement, EnforcementPolicy::default());
        assert_eq!(c.server.shutdown_grace, Duration::from_secs(10));
        assert_eq!(c.server.limits, Limits::default());
        assert_eq!(c.browser, BrowserOptions::default());
        assert_eq!(c.demo, DemoSettings::default());
    }

    #[test]
    fn demo_flags() {
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
        assert_eq!(
            c.browser.stream_heartbeat_interval,
            Duration::from_millis(300)
        );
        assert_eq!(c.browser.max_stream_age, Some(Duration::from_secs(60)));
        assert_eq!(c.browser.max_sessions, 5);
        assert_eq!(c.demo.replay_capacity, 7);
        assert_eq!(c.demo.event_log, Some(PathBuf::from("/tmp/x.log")));
        assert_eq!(c.demo.tick_interval, None);
        assert!(c.demo.chaos);
        assert!(
            !format!("{c:?}").contains("\"t\""),
            "token must not be printed"
        );
    }

    #[test]
    fn file_then_flags_win() {
        let p = tmp_file(
            "c.toml",
            "keepalive_time = \"30s\"\nmax_connection_idle = \"off\"\nmax_ping_strikes = 5\n\
             tick_interval = \"2s\"\nchaos = true\nchaos_token = \"tok\"\nreplay_capacity = 3\n\
             listen = \"127.0.0.1:9\"\nweb_root = \"page/dist\"\n",
        );
        let c = parse(&["--config", &p, "--max-ping-strikes", "7"]).expect("valid");
        assert_eq!(c.server.keepalive.time, Duration::from_secs(30));
        assert_eq!(c.server.enforcement.max_ping_strikes, 7);
        assert_eq!(c.demo.tick_interval, Some(Duration::from_secs(2)));
        assert_eq!(c.demo.replay_capacity, 3);
        assert!(c.demo.chaos);
        assert_eq!(c.listen.to_string(), "127.0.0.1:9");
        assert_eq!(c.demo.web_root, Some(PathBuf::from("page/dist")));
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
            (&["--max-recv-message-size", "4 MB"], "invalid size"),
            (&["--max-recv-message-size", "0"], "at least 1 byte"),
            (&["--max-send-message-size", "4GiB"], "at most 4GiB - 1"),
            (
                &["--max-recv-message-size", "8MiB"],
                "--max-request-body-size must hold one message",
            ),
            (&["--max-connections", "0"], "at least 1"),
            (&["--first-bytes-timeout", "0s"], "more than 0"),
            (&["--tls-cert", "c.pem"], "--tls-cert needs --tls-key"),
            (&["--tls-key", "k.pem"], "--tls-key needs --tls-cert"),
        ] {
            let e = parse(args).expect_err("must fail");
            assert!(e.contains(needle), "{args:?}: {e}");
            assert!(!e.contains('\n'), "{e:?}");
        }
        let p = tmp_file("bad.toml", "keepalive_time = \"30s\"\nbogus = 1\n");
        let e = parse(&["--config", &p]).expect_err("unknown key");
        assert!(
            e.contains("bogus") && e.contains("line 2") && !e.contains('\n'),
            "{e}"
        );
    }

    #[test]
    fn keepalive_time_below_the_floor_is_accepted() {
        // The server raises it to 1 s and says so when it starts (as grpc-go does).
        let c = parse(&["--keepalive-time", "10ms"]).expect("valid");
        assert_eq!(c.server.keepalive.effective_time(), Duration::from_secs(1));
    }
}
