//! Command-line flags and a TOML file, both derived from the settings structs.
//!
//! Every settings struct of the project ([`keepalive::ServerParameters`],
//! [`keepalive::EnforcementPolicy`], [`crate::Limits`], [`crate::Settings`],
//! [`crate::browser::BrowserOptions`], and a binary's own) derives clap's `Args` with
//! `required = false` on each field, and `Default`. A binary flattens them into one
//! `Parser` with a `config` argument, and [`parse`] does the rest:
//!
//! 1. the command line is parsed (help and version are [`CliOutcome::Print`]);
//! 2. the TOML file it names (`--config FILE`) is turned into the *same flags* — each key
//!    is a flag's id (`max_connection_idle = "5m"` is `--max-connection-idle=5m`), so the
//!    file takes exactly what the flags take, with the same parsers and messages, and a key
//!    that is no flag is an error naming its line;
//! 3. the result starts from `Default`, takes the file's values, then the command line's:
//!    a flag given on the command line wins over the file.
//!
//! Nothing is listed twice: adding a field to a settings struct adds its flag, its TOML
//! key and its help text.
//!
//! ```
//! use clap::Parser;
//!
//! #[derive(Parser, Debug, Default)]
//! struct Cli {
//!     /// TOML file with any of these settings (snake_case names); flags win.
//!     #[arg(long, value_name = "FILE")]
//!     config: Option<std::path::PathBuf>,
//!     #[command(flatten)]
//!     server: keepalive_server::Settings,
//! }
//!
//! let cli: Cli = keepalive_server::cli::parse(["prices", "--keepalive-time", "30s"]).unwrap();
//! assert_eq!(cli.server.keepalive.time, std::time::Duration::from_secs(30));
//! ```

pub use crate::limits::{parse_message_size, parse_size};
use clap::{ArgMatches, CommandFactory, FromArgMatches};
pub use keepalive::settings::{parse_duration, parse_knob};
use std::ffi::OsString;
use std::path::{Path, PathBuf};

/// The id of the argument that names the TOML file.
pub const CONFIG_ARG: &str = "config";

/// What parsing led to, when it is not a value.
#[derive(Debug)]
pub enum CliOutcome {
    /// `--help` or `--version`: print this and exit 0.
    Print(String),
    /// A mistake, in one line: print it and exit 2.
    Error(String),
}

/// Parses `args` (the program name first) and the TOML file they name into `T`.
///
/// # Errors
/// [`CliOutcome::Print`] for help and version; [`CliOutcome::Error`] with one line for
/// any mistake on the command line or in the file.
pub fn parse<T, I, A>(args: I) -> Result<T, CliOutcome>
where
    T: CommandFactory + FromArgMatches + Default,
    I: IntoIterator<Item = A>,
    A: Into<OsString> + Clone,
{
    let command = T::command();
    let name = command.get_name().to_string();
    let flags = command.clone().try_get_matches_from(args).map_err(|e| {
        use clap::error::ErrorKind::{DisplayHelp, DisplayVersion};
        match e.kind() {
            DisplayHelp | DisplayVersion => CliOutcome::Print(e.to_string()),
            _ => CliOutcome::Error(first_line(&e.to_string())),
        }
    })?;
    let mut value = T::default();
    if let Ok(Some(path)) = flags.try_get_one::<PathBuf>(CONFIG_ARG) {
        let file = file_matches(&command, &name, path).map_err(CliOutcome::Error)?;
        value
            .update_from_arg_matches(&file)
            .map_err(|e| CliOutcome::Error(first_line(&e.to_string())))?;
    }
    value
        .update_from_arg_matches(&flags)
        .map_err(|e| CliOutcome::Error(first_line(&e.to_string())))?;
    Ok(value)
}

/// The TOML file at `path`, parsed as the flags its keys name.
fn file_matches(command: &clap::Command, name: &str, path: &Path) -> Result<ArgMatches, String> {
    let shown = path.display();
    let text =
        std::fs::read_to_string(path).map_err(|e| format!("cannot read config {shown}: {e}"))?;
    let table: toml::Table = toml::from_str(&text).map_err(|e| {
        let at = e
            .span()
            .map(|s| line_of(&text, s.start))
            .map(|l| format!(" (line {l})"))
            .unwrap_or_default();
        format!("config {shown}{at}: {}", e.message().trim())
    })?;
    let at = |key: &str| {
        key_line(&text, key)
            .map(|l| format!(" (line {l})"))
            .unwrap_or_default()
    };
    let mut argv = vec![OsString::from(name)];
    for (key, value) in &table {
        let arg = command
            .get_arguments()
            .find(|a| a.get_id() == key.as_str() && key != CONFIG_ARG)
            .and_then(|a| a.get_long())
            .ok_or_else(|| format!("config {shown}{}: unknown setting `{key}`", at(key)))?;
        let values = match value {
            toml::Value::Array(items) => items.iter().collect(),
            other => vec![other],
        };
        for v in values {
            let text = match v {
                toml::Value::String(s) => s.clone(),
                toml::Value::Integer(n) => n.to_string(),
                toml::Value::Float(x) => x.to_string(),
                toml::Value::Boolean(b) => b.to_string(),
                _ => {
                    return Err(format!(
                        "config {shown}{}: {key}: expected a string, a number or a boolean",
                        at(key)
                    ));
                }
            };
            argv.push(format!("--{arg}={text}").into());
        }
    }
    command.clone().try_get_matches_from(argv).map_err(|e| {
        // The message names the flag (`--max-send-message-size <BYTES>`): say the key.
        let key = e
            .get(clap::error::ContextKind::InvalidArg)
            .map(|a| a.to_string())
            .and_then(|flag| {
                table
                    .keys()
                    .find(|k| flag.starts_with(&format!("--{}", k.replace('_', "-"))))
                    .cloned()
            });
        match key {
            Some(key) => format!(
                "config {shown}{}: {key}: {}",
                at(&key),
                first_line(&e.to_string())
            ),
            None => format!("config {shown}: {}", first_line(&e.to_string())),
        }
    })
}

/// The line (from 1) of byte `offset` in `text`.
fn line_of(text: &str, offset: usize) -> usize {
    text.get(..offset).unwrap_or(text).lines().count().max(1)
}

/// The line (from 1) where `key` is set.
fn key_line(text: &str, key: &str) -> Option<usize> {
    text.lines()
        .position(|l| {
            l.trim_start()
                .strip_prefix(key)
                .is_some_and(|rest| rest.trim_start().starts_with('='))
        })
        .map(|i| i + 1)
}

/// The first line of a clap message, without its `error: ` prefix.
fn first_line(s: &str) -> String {
    s.lines()
        .find(|l| !l.trim().is_empty())
        .unwrap_or(s)
        .trim()
        .trim_start_matches("error: ")
        .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;
    use std::time::Duration;

    #[derive(Parser, Debug, Default)]
    #[command(name = "t")]
    struct Cli {
        #[arg(long, value_name = "FILE")]
        config: Option<PathBuf>,
        #[command(flatten)]
        server: crate::Settings,
    }

    fn parse_args(args: &[&str]) -> Result<Cli, String> {
        parse(std::iter::once("t").chain(args.iter().copied())).map_err(|e| match e {
            CliOutcome::Print(s) | CliOutcome::Error(s) => s,
        })
    }

    fn file(name: &str, text: &str) -> String {
        let dir = std::env::temp_dir().join(format!("keepalive-cli-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("tmp");
        let path = dir.join(name);
        std::fs::write(&path, text).expect("write");
        path.to_string_lossy().into_owned()
    }

    #[test]
    fn defaults_flags_and_off() {
        let c = parse_args(&[]).expect("defaults");
        assert_eq!(c.server, crate::Settings::default());
        let c = parse_args(&[
            "--keepalive-time",
            "10s",
            "--max-connection-age",
            "1m",
            "--max-connection-idle",
            "off",
            "--permit-keepalive-without-stream",
            "--max-ping-strikes",
            "0",
        ])
        .expect("valid");
        assert_eq!(c.server.keepalive.time, Duration::from_secs(10));
        assert_eq!(
            c.server.keepalive.max_connection_age,
            Some(Duration::from_secs(60))
        );
        assert_eq!(c.server.keepalive.max_connection_idle, None);
        assert!(c.server.enforcement.permit_without_stream);
        assert_eq!(c.server.enforcement.max_ping_strikes, 0);
    }

    #[test]
    fn the_file_is_the_same_flags_and_flags_win() {
        let p = file(
            "a.toml",
            "keepalive_time = \"30s\"\nmax_ping_strikes = 5\nmax_send_message_size = 2048\n\
             permit_keepalive_without_stream = true\ncors_allow_origin = [\"http://a.example\"]\n",
        );
        let c = parse_args(&["--config", &p, "--max-ping-strikes", "7"]).expect("valid");
        assert_eq!(c.server.keepalive.time, Duration::from_secs(30));
        assert_eq!(c.server.enforcement.max_ping_strikes, 7);
        assert_eq!(c.server.limits.max_send_message_size, 2048);
        assert!(c.server.enforcement.permit_without_stream);
        assert_eq!(c.server.cors_allow_origin, ["http://a.example"]);
        let c = parse_args(&["--config", &p, "--cors-allow-origin", "*"]).expect("valid");
        assert_eq!(
            c.server.cors_allow_origin,
            ["*"],
            "a list on the command line wins whole"
        );
    }

    #[test]
    fn mistakes_are_one_line_and_name_the_key() {
        let p = file("b.toml", "keepalive_time = \"30s\"\nbogus = 1\n");
        let e = parse_args(&["--config", &p]).expect_err("unknown key");
        assert!(
            e.contains("bogus") && e.contains("line 2") && !e.contains('\n'),
            "{e}"
        );
        let p = file("c.toml", "\nmax_send_message_size = \"lots\"\n");
        let e = parse_args(&["--config", &p]).expect_err("bad size");
        assert!(
            e.contains("max_send_message_size")
                && e.contains("invalid size")
                && e.contains("line 2"),
            "{e}"
        );
        assert!(!e.contains('\n'), "{e:?}");
        let p = file("d.toml", "keepalive_time = \n");
        let e = parse_args(&["--config", &p]).expect_err("syntax");
        assert!(e.contains("line 1") && !e.contains('\n'), "{e}");
        let e = parse_args(&["--bogus"]).expect_err("flag");
        assert!(e.contains("--bogus") && !e.contains('\n'), "{e}");
        let e = parse_args(&["--keepalive-time", "soon"]).expect_err("duration");
        assert!(e.contains("invalid duration") && !e.contains('\n'), "{e}");
        let e = parse_args(&["--config", "/nonexistent/x.toml"]).expect_err("missing");
        assert!(e.contains("cannot read config"), "{e}");
    }

    #[test]
    fn help_is_printed() {
        match parse::<Cli, _, _>(["t", "--help"]) {
            Err(CliOutcome::Print(text)) => {
                assert!(text.contains("--keepalive-time") && text.contains("--max-connections"))
            }
            other => panic!("{other:?}"),
        }
    }
}
