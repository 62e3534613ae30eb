//! The one process harness of the workspace: everything that starts a real process for a
//! test, a benchmark or the demo goes through here, so "listening on" is parsed once,
//! restarts retry a busy port once, and every process is killed once its owner is gone.
//!
//! - integration tests (`tests/`): [`ServerProcess`] — a server on a free port, its log,
//!   its counters ([`ServerProcess::metrics`]), signals, kill on drop; [`ChromeDriver`];
//!   a half-open [`Proxy`];
//! - the browser tests (`cargo xtask test`, `cargo xtask test-server`): the `testkit
//!   browser-server` binary — a [`Supervisor`] and its HTTP [`controller`];
//! - `cargo xtask demo`: `testkit supervise` — the server restarted when it asks;
//! - the bench (`loadgen`'s `bench`): [`ServerProcess`] for the servers it measures.
//!
//! # Layout
//! - [`process`]: [`ServerProcess`] and its [`ServerBuilder`]; [`run_to_exit`].
//! - [`supervisor`]: [`Supervisor`], restarts on the same port.
//! - [`controller`]: the HTTP API over a supervisor, for tests in a browser page.
//! - [`metrics`]: `GET /metrics` parsed ([`Metrics`]).
//! - [`binaries`]: where the workspace's server binaries are (never built from here).
//! - [`capture`]: a child's lines in memory, echoed, in a shared [`LogFile`].
//! - [`listen`], [`ansi`]: the `listening on` line; colours out of captured lines.
//! - [`chromedriver`]: a ChromeDriver on a free port with a fresh profile.
//! - [`proxy`]: a TCP proxy that can go half-open.
//! - [`redis`], [`nginx`], [`cluster`]: a real Redis (killed, restarted, wiped), a real
//!   nginx in front of replicas, and both with N replicas: what the replicas' tests and
//!   `cargo xtask demo --replicas` run.
//! - `src/bin/testkit.rs`: the `testkit` binary (`browser-server`, `supervise`).

#![warn(missing_docs)]

pub mod ansi;
pub mod binaries;
pub mod capture;
pub mod chromedriver;
pub mod cluster;
pub mod controller;
pub mod listen;
pub mod metrics;
pub mod nginx;
pub mod process;
pub mod proxy;
pub mod redis;
pub mod supervisor;

pub use binaries::{prices_server_binary, server_binary, target_dir, workspace_root};
pub use capture::LogFile;
pub use chromedriver::ChromeDriver;
pub use cluster::{Cluster, ClusterOptions};
pub use metrics::Metrics;
pub use nginx::Nginx;
pub use process::{ServerBuilder, ServerProcess, StartError, run_command_to_exit, run_to_exit};
pub use proxy::Proxy;
pub use redis::{Persistence, RedisServer};
pub use supervisor::{Status, Supervisor};

#[cfg(test)]
mod test_support {
    use std::path::PathBuf;
    use std::sync::atomic::{AtomicUsize, Ordering};

    /// Writes an executable shell script standing in for a server (a fresh file each
    /// call, so parallel tests never share one).
    pub fn fake_server(name: &str, body: &str) -> PathBuf {
        use std::os::unix::fs::PermissionsExt;
        static N: AtomicUsize = AtomicUsize::new(0);
        let dir = std::env::temp_dir().join(format!(
            "testkit-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::SeqCst)
        ));
        std::fs::create_dir_all(&dir).expect("create temp dir");
        let path = dir.join(name);
        std::fs::write(&path, format!("#!/bin/sh\n{body}\n")).expect("write script");
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755))
            .expect("chmod script");
        path
    }
}
