//! `cargo xtask demo`: build the release server and run it with demo keepalive values.
//!
//! The values are short enough to watch every mechanism happen by hand (a
//! keepalive PING every 10 s, idle GOAWAY after a minute, age GOAWAY after five).
//! On Unix xtask *becomes* the server (`exec`), so Ctrl-C reaches the server
//! directly, it drains gracefully, and its exit code is the command's.

use std::ffi::OsString;

use crate::cmd::Cmd;
use crate::error::Result;
use crate::setup::{self, Setup};
use crate::workspace::Workspace;

/// The address the demo listens on unless `--listen` says otherwise.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:8080";

/// The server flags of the demo, after `--listen ADDR`.
const DEMO_FLAGS: &[&str] = &[
    "--keepalive-time",
    "10s",
    "--keepalive-timeout",
    "5s",
    "--max-connection-idle",
    "60s",
    "--max-connection-age",
    "5m",
    "--max-connection-age-grace",
    "30s",
    "--min-ping-interval",
    "5s",
    "--permit-keepalive-without-stream",
];

/// Options of `cargo xtask demo`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DemoOptions {
    /// `--listen ADDR` for the server.
    pub listen: String,
    /// Extra server arguments (after `--`), appended last so they win.
    pub server_args: Vec<OsString>,
}

impl Default for DemoOptions {
    fn default() -> Self {
        Self {
            listen: DEFAULT_LISTEN.to_owned(),
            server_args: Vec::new(),
        }
    }
}

/// The address a browser or grpcurl on this machine should use for `listen`:
/// a wildcard listen address is reached through loopback.
fn connect_address(listen: &str) -> String {
    if let Some(port) = listen.strip_prefix("0.0.0.0:") {
        format!("127.0.0.1:{port}")
    } else if let Some(port) = listen.strip_prefix("[::]:") {
        format!("[::1]:{port}")
    } else {
        listen.to_owned()
    }
}

/// Runs `cargo xtask demo`. Returns only on failure (on Unix the server
/// replaces this process; elsewhere the process exits with the server's code).
pub fn run(ws: &Workspace, opts: &DemoOptions) -> Result<()> {
    setup::run(ws, Setup { browser: false })?;
    ws.cargo()
        .args(["build", "--release", "-p", "server", "--bin", "server"])
        .run()?;
    let server = ws
        .target_dir()
        .join("release")
        .join(format!("server{}", std::env::consts::EXE_SUFFIX));

    let addr = connect_address(&opts.listen);
    println!();
    println!("Demo server (Ctrl-C stops it gracefully):");
    println!("  page:    http://{addr}/");
    println!("  health:  grpcurl -plaintext {addr} grpc.health.v1.Health/Check");
    println!(
        "  peer:    {} {} health --target {addr}",
        ws.rel(&ws.venv_python()),
        ws.rel(&ws.peer_script())
    );
    println!();

    let err = Cmd::new(&server)
        .dir(&ws.root)
        .args(["--listen", &opts.listen])
        .args(DEMO_FLAGS)
        .args(&opts.server_args)
        .exec();
    Err(err)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wildcard_listen_is_reached_through_loopback() {
        assert_eq!(connect_address("0.0.0.0:8080"), "127.0.0.1:8080");
        assert_eq!(connect_address("[::]:9"), "[::1]:9");
        assert_eq!(connect_address("127.0.0.1:8080"), "127.0.0.1:8080");
    }
}
