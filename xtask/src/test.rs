//! `cargo xtask test`: the project's one test command (also what CI runs).
//!
//! Steps, in order, each announced with `==> ...` and timed; the first failure
//! stops the run with a non-zero exit and a message naming the step:
//!
//! 1. setup, with the browser toolchain (the browser tests are part of the run);
//! 2. `cargo fmt --all -- --check`,
//!    `cargo clippy --workspace --all-targets -- -D warnings` and the same for the
//!    browser crates on `wasm32-unknown-unknown` (`keepalive-client` with its `js`
//!    feature) (skipped with `--no-lint`); then `cargo doc --no-deps` of every crate
//!    (the browser ones for wasm32) with `RUSTDOCFLAGS=-D warnings`;
//! 3. `cargo build` of the `server` and `prices-server` binaries, so integration tests can
//!    start them, and of `testkit` (the harness's binary: the browser tests' server);
//! 4. with the browser tests: `trunk build --release` of the dashboard
//!    ([`crate::page`]), which `tests/tests/dashboard_e2e.rs` opens in headless
//!    Chromium (it gets `KEEPALIVE_DASHBOARD_E2E=require` and `KEEPALIVE_WEB_DIST`), and
//!    the example's two pages ([`crate::example`]) for `tests/tests/example_pages.rs`
//!    (`KEEPALIVE_PAGES_E2E=require`, `KEEPALIVE_PAGES_DIST`);
//! 5. `cargo test --workspace` (plus any arguments given after `--`), with the
//!    environment in [`test_env`];
//! 6. the browser tests ([`crate::browser`]): `wasm-pack test --headless --chrome
//!    keepalive-client` against the real server (skipped with `--no-browser`).
//!
//! `--browser-only` runs setup, the server build and the browser tests only.
//! A summary of the steps and their times closes the run.

use std::ffi::OsString;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use crate::browser;
use crate::error::{Error, Result, bail};
use crate::example;
use crate::page;
use crate::setup::{self, Setup};
use crate::workspace::Workspace;

/// Options of `cargo xtask test`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TestOptions {
    /// Skip `cargo fmt --check` and `cargo clippy`.
    pub no_lint: bool,
    /// Skip the browser toolchain setup and the browser tests.
    pub no_browser: bool,
    /// Only the browser tests (with setup and the server build they need).
    pub browser_only: bool,
    /// Extra arguments for `cargo test --workspace` (after `--`).
    pub cargo_test_args: Vec<OsString>,
}

/// Environment variables the integration tests get:
/// - `KEEPALIVE_PYTHON`: the venv's python, with grpcio installed;
/// - `KEEPALIVE_PEER`: `tests/python/peer.py`, the gRPC core peer;
/// - `KEEPALIVE_SERVER_BIN`: the debug `server` binary built by the step before;
/// - `KEEPALIVE_PRICES_BIN`: the example's debug `prices-server`, built with it.
/// - `KEEPALIVE_REPLICAS=require`: the replicas' tests (Redis, nginx) must run.
pub fn test_env(ws: &Workspace, target_dir: &std::path::Path) -> Vec<(&'static str, PathBuf)> {
    let bin = |name: &str| {
        target_dir
            .join("debug")
            .join(format!("{name}{}", std::env::consts::EXE_SUFFIX))
    };
    vec![
        // The replicas' tests need Redis and nginx, which setup installs: fail rather
        // than skip when they are missing.
        ("KEEPALIVE_REPLICAS", PathBuf::from("require")),
        ("KEEPALIVE_PYTHON", ws.venv_python()),
        ("KEEPALIVE_PEER", ws.peer_script()),
        ("KEEPALIVE_SERVER_BIN", bin("server")),
        ("KEEPALIVE_PRICES_BIN", bin("prices-server")),
    ]
}

/// One step of the run and how it went.
#[derive(Debug)]
struct StepResult {
    name: String,
    outcome: Outcome,
}

#[derive(Debug)]
enum Outcome {
    Ok(Duration),
    Failed(Duration),
    Skipped(&'static str),
}

/// Runs the steps, times them, and prints the summary.
#[derive(Debug, Default)]
struct Runner {
    results: Vec<StepResult>,
}

impl Runner {
    /// Runs one step under a `==> name` header; records its time.
    fn step(&mut self, name: impl Into<String>, f: impl FnOnce() -> Result<()>) -> Result<()> {
        let name = name.into();
        println!("\n==> {name}");
        let start = Instant::now();
        let result = f();
        let elapsed = start.elapsed();
        match &result {
            Ok(()) => println!("<== {name}: ok in {}", fmt_duration(elapsed)),
            Err(_) => println!("<== {name}: FAILED after {}", fmt_duration(elapsed)),
        }
        self.results.push(StepResult {
            outcome: if result.is_ok() {
                Outcome::Ok(elapsed)
            } else {
                Outcome::Failed(elapsed)
            },
            name: name.clone(),
        });
        result.map_err(|e| {
            let message = e.to_string();
            if message.contains(&name) {
                e
            } else {
                Error::new(format!("step `{name}` failed: {message}"))
            }
        })
    }

    /// Records a step that was not run.
    fn skip(&mut self, name: impl Into<String>, why: &'static str) {
        self.results.push(StepResult {
            name: name.into(),
            outcome: Outcome::Skipped(why),
        });
    }

    /// Prints every step with its outcome and time, and the total.
    fn summary(&self, total: Duration) {
        println!("\nxtask test summary:");
        for StepResult { name, outcome } in &self.results {
            match outcome {
                Outcome::Ok(d) => println!("  {:<8} {:>9}  {name}", "ok", fmt_duration(*d)),
                Outcome::Failed(d) => {
                    println!("  {:<8} {:>9}  {name}", "FAILED", fmt_duration(*d));
                }
                Outcome::Skipped(why) => println!("  {:<8} {:>9}  {name} ({why})", "skipped", "-"),
            }
        }
        println!("  {:<8} {:>9}", "total", fmt_duration(total));
    }
}

/// `12.3s`, or `2m05.1s` past a minute.
fn fmt_duration(d: Duration) -> String {
    let secs = d.as_secs_f64();
    if secs < 60.0 {
        format!("{secs:.1}s")
    } else {
        let minutes = (secs / 60.0).floor();
        format!("{}m{:04.1}s", minutes as u64, secs - minutes * 60.0)
    }
}

/// Runs `cargo xtask test`.
pub fn run(ws: &Workspace, opts: &TestOptions) -> Result<()> {
    let start = Instant::now();
    let mut runner = Runner::default();
    let result = run_steps(ws, opts, &mut runner);
    runner.summary(start.elapsed());
    if result.is_ok() {
        println!("\nxtask test: all steps passed");
    }
    result
}

fn run_steps(ws: &Workspace, opts: &TestOptions, runner: &mut Runner) -> Result<()> {
    if opts.no_browser && opts.browser_only {
        bail!("`--no-browser` and `--browser-only` exclude each other");
    }
    let browser = !opts.no_browser;
    let setup = Setup { browser };
    let setup_name = if browser { "setup --browser" } else { "setup" };
    runner.step(setup_name, || setup::run(ws, setup))?;

    let fmt = ws.cargo().args(["fmt", "--all", "--", "--check"]);
    let clippy = ws.cargo().args([
        "clippy",
        "--workspace",
        "--all-targets",
        "--",
        "-D",
        "warnings",
    ]);
    // The browser client, the dashboard and the example's Rust page are mostly wasm-only
    // code: lint them as the browser builds them, the client with its JS bindings.
    let clippy_wasm = ws.cargo().args([
        "clippy",
        "-p",
        "keepalive-client",
        "--features",
        "keepalive-client/js",
        "-p",
        "web",
        "-p",
        "prices-web",
        "--target",
        setup::WASM_TARGET,
        "--all-targets",
        "--",
        "-D",
        "warnings",
    ]);
    // Rustdoc of every crate without a warning (broken links, unclosed tags), the browser
    // crates for the target they are written for; the doctests themselves run in
    // `cargo test --workspace`.
    let doc = ws
        .cargo()
        .args(["doc", "--workspace", "--no-deps"])
        .args([
            "--exclude",
            "xtask",
            "--exclude",
            "keepalive-client",
            "--exclude",
            "web",
            "--exclude",
            "prices-web",
        ])
        .env("RUSTDOCFLAGS", "-D warnings");
    let doc_wasm = ws
        .cargo()
        .args(["doc", "--no-deps", "-p", "keepalive-client", "-p", "web"])
        .args(["--features", "keepalive-client/js"])
        .args(["--target", setup::WASM_TARGET])
        .env("RUSTDOCFLAGS", "-D warnings");
    for lint in [fmt, clippy, clippy_wasm, doc, doc_wasm] {
        if opts.no_lint {
            runner.skip(lint.to_string(), "--no-lint");
        } else if opts.browser_only {
            runner.skip(lint.to_string(), "--browser-only");
        } else {
            runner.step(lint.to_string(), || lint.run())?;
        }
    }

    // The demo server and the example server, which the integration tests start, and the
    // harness's binary, which runs the browser tests' server.
    let build = ws.cargo().args([
        "build",
        "-p",
        "server",
        "--bin",
        "server",
        "-p",
        "prices-server",
        "--bin",
        "prices-server",
        "-p",
        "testkit",
        "--bin",
        "testkit",
    ]);
    runner.step(build.to_string(), || build.run())?;

    let target_dir = ws.target_dir();
    // The dashboard's browser test (in `cargo test --workspace`) opens the built page.
    const PAGE_STEP: &str = "trunk build --release (the dashboard, web/)";
    let page_dist = if browser && !opts.browser_only {
        let mut dist = None;
        runner.step(PAGE_STEP, || {
            let built = page::build(ws)?;
            let sizes = page::wasm_sizes(&built)?;
            println!(
                "dashboard: {} (wasm {} bytes, {} gzip)",
                ws.rel(&built),
                sizes.raw,
                sizes.gzip
            );
            dist = Some(built);
            Ok(())
        })?;
        dist
    } else {
        runner.skip(
            PAGE_STEP,
            if browser {
                "--browser-only"
            } else {
                "--no-browser"
            },
        );
        None
    };
    // The example's pages, for tests/tests/example_pages.rs.
    const EXAMPLE_STEP: &str = "the example's pages (examples/prices/web-rust, web-ts)";
    let example_dist = if browser && !opts.browser_only {
        let mut dist = None;
        runner.step(EXAMPLE_STEP, || {
            let pages = example::build(ws)?;
            println!(
                "example pages: {} (Rust page wasm {} bytes, {} gzip; TypeScript page wasm {} \
                 bytes, {} gzip, main.js {} bytes, {} gzip)",
                ws.rel(&pages.dist),
                pages.rust_wasm.raw,
                pages.rust_wasm.gzip,
                pages.ts_wasm.raw,
                pages.ts_wasm.gzip,
                pages.ts_bundle.raw,
                pages.ts_bundle.gzip
            );
            dist = Some(pages.dist);
            Ok(())
        })?;
        dist
    } else {
        runner.skip(
            EXAMPLE_STEP,
            if browser {
                "--browser-only"
            } else {
                "--no-browser"
            },
        );
        None
    };
    // The header names the command without the long environment; `run` echoes it in full.
    let name = format!(
        "cargo test --workspace{}",
        opts.cargo_test_args
            .iter()
            .map(|a| format!(" {}", a.to_string_lossy()))
            .collect::<String>()
    );
    if opts.browser_only {
        runner.skip(name, "--browser-only");
    } else {
        let mut test = ws
            .cargo()
            .args(["test", "--workspace"])
            .args(&opts.cargo_test_args);
        for (key, value) in test_env(ws, &target_dir) {
            test = test.env(key, value);
        }
        if let Some(dist) = &page_dist {
            test = test
                .env("KEEPALIVE_DASHBOARD_E2E", "require")
                .env("KEEPALIVE_WEB_DIST", dist);
        }
        if let Some(dist) = &example_dist {
            test = test
                .env("KEEPALIVE_PAGES_E2E", "require")
                .env("KEEPALIVE_PAGES_DIST", dist);
        }
        runner.step(name, || test.run())?;
    }

    const BROWSER_STEP: &str =
        "browser tests (wasm-pack test --headless --chrome keepalive-client)";
    if browser {
        // With --browser-only the arguments after `--` go to the wasm `cargo test`.
        let browser_args: &[OsString] = if opts.browser_only {
            &opts.cargo_test_args
        } else {
            &[]
        };
        runner.step(BROWSER_STEP, || {
            browser::run(ws, browser_args).map(|_wall| ())
        })?;
    } else {
        runner.skip(BROWSER_STEP, "--no-browser");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_durations() {
        assert_eq!(fmt_duration(Duration::from_millis(1234)), "1.2s");
        assert_eq!(fmt_duration(Duration::from_millis(125_100)), "2m05.1s");
    }
}
