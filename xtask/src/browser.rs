//! The browser test step of `cargo xtask test`: `client-wasm`'s tests in headless Chromium
//! against the real server.
//!
//! 1. Check the tools: `wasm-bindgen-test-runner` at the `wasm-bindgen` version in
//!    `Cargo.lock`, and a `chromedriver` matching `chromium` (`cargo xtask setup --browser`
//!    installs both).
//! 2. Start the debug server (built by the step before) under a [`Supervisor`] on
//!    `127.0.0.1:0` with [`SERVER_FLAGS`] (plus chaos with a random token when the server
//!    supports it), and the [`Controller`] (the test controller: kill/stop/start/restart
//!    over HTTP, see `controller.rs`).
//! 3. Build, then run, `cargo test --target wasm32-unknown-unknown -p client-wasm --tests
//!    --no-fail-fast`
//!    with `wasm-bindgen-test-runner` as the cargo runner and, at compile time,
//!    `KEEPALIVE_TEST_SERVER`, `KEEPALIVE_TEST_CONTROLLER`, `KEEPALIVE_TEST_CHAOS_TOKEN`.
//! 4. Always stop the server and the controller (guards' `Drop`, also on failure); on a
//!    failure print the tail of the server log. Print the build and run wall times.
//!
//! The server's output goes to `<target>/browser-tests/server.log`.

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use crate::cmd::Cmd;
use crate::controller::Controller;
use crate::error::{Error, Result, bail};
use crate::setup::{self, WASM_TARGET};
use crate::supervisor::{ServerSpec, Supervisor};
use crate::workspace::Workspace;

/// The browser client package whose tests run in the browser.
const PACKAGE: &str = "client-wasm";

/// Server flags for the browser tests (after `--listen`). The test page is served by
/// wasm-bindgen-test-runner on its own origin, so every call is cross-origin.
///
/// Add flags here when a test needs them (short keepalive values, ages, ...): every test
/// binary shares one server, restarted with the same flags by the controller.
pub const SERVER_FLAGS: &[&str] = &[
    "--cors-allow-origin",
    "*",
    // Short keepalive values so that the tests see everything within seconds.
    "--stream-heartbeat-interval",
    "1s",
    "--min-ping-interval",
    "100ms",
    // Every subscription gets a GoAway now and then: resume without backoff, always on.
    "--max-stream-age",
    "5s",
    // Traffic on the feed.
    "--tick-interval",
    "500ms",
];

/// Per-test-binary timeout of wasm-bindgen-test-runner (its default, 20 s, is too short
/// for tests that wait for keepalive timeouts).
const TEST_TIMEOUT_SECS: &str = "300";

/// Wall times of the step's two phases.
#[derive(Debug, Clone, Copy)]
pub struct Times {
    /// Building the wasm tests.
    pub build: Duration,
    /// Running them in the browser.
    pub run: Duration,
}

/// Kills the supervised server when dropped (the controller's threads may hold the
/// supervisor a moment longer; the process must not wait for them).
struct KillOnDrop(Arc<Mutex<Supervisor>>);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        self.0
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .kill();
    }
}

/// Runs the browser tests; see the module docs. `test_args` go to the wasm `cargo test`
/// (e.g. a test name filter).
pub fn run(ws: &Workspace, target_dir: &Path, test_args: &[OsString]) -> Result<Times> {
    run_with(ws, target_dir, test_args, &[], TEST_TIMEOUT_SECS)
}

/// [`run`] with extra compile-time variables for the tests (`cargo xtask soak` sets the
/// number of faults) and a per-test-binary timeout in seconds.
pub fn run_with(
    ws: &Workspace,
    target_dir: &Path,
    test_args: &[OsString],
    test_env: &[(&str, String)],
    timeout_secs: &str,
) -> Result<Times> {
    let runner_version = check_test_runner(ws)?;
    let chromedriver = check_chromedriver()?;

    let server_bin = target_dir
        .join("debug")
        .join(format!("server{}", std::env::consts::EXE_SUFFIX));
    if !server_bin.is_file() {
        bail!(
            "no server binary at {}: build it first (`cargo build -p server --bin server`)",
            server_bin.display()
        );
    }
    let token = random_token();
    let mut args: Vec<String> = SERVER_FLAGS.iter().map(|s| (*s).to_owned()).collect();
    let chaos = chaos_flags(&server_bin, &token);
    let chaos_token = (!chaos.is_empty()).then_some(token);
    args.extend(chaos);
    // A file-backed event log, fresh for each run: a restarted server keeps the sequence
    // space, so a resumed stream can be checked for "nothing lost, nothing twice".
    let event_log = target_dir.join("browser-tests").join("events.log");
    let _ = std::fs::remove_file(&event_log);
    args.extend(["--event-log".to_owned(), event_log.display().to_string()]);

    let log_file = target_dir.join("browser-tests").join("server.log");
    let supervisor = Supervisor::new(
        ServerSpec {
            program: server_bin,
            args,
            env: Vec::new(),
            dir: ws.root.clone(),
        },
        Some(&log_file),
    )?;
    let supervisor = Arc::new(Mutex::new(supervisor));
    // Declared before the controller: dropped after it, and always.
    let _kill_server = KillOnDrop(supervisor.clone());
    let server_url = {
        let mut sup = supervisor
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        sup.start()?;
        match sup.addr() {
            Some(addr) => format!("http://{addr}"),
            None => bail!("the server started but its address is unknown"),
        }
    };
    let controller = Controller::start(supervisor.clone())?;

    println!("server:          {server_url} (log: {})", ws.rel(&log_file));
    println!("test controller: {}", controller.url());
    println!(
        "test runner:     {runner_version}, {}",
        chromedriver.display()
    );
    match &chaos_token {
        Some(_) => println!("chaos:           on (token in KEEPALIVE_TEST_CHAOS_TOKEN)"),
        None => println!("chaos:           off (the server has no --chaos-token flag yet)"),
    }

    let webdriver_json = ws.root.join(PACKAGE).join("webdriver.json");
    let cargo_test = |no_run: bool| {
        let mut cmd = ws
            .cargo()
            .args(["test", "--target", WASM_TARGET, "-p", PACKAGE]);
        // Every test binary unless the arguments name one (`cargo xtask soak`).
        if !test_args.iter().any(|a| a == "--test") {
            cmd = cmd.arg("--tests");
        }
        cmd = cmd
            // Every test binary (one browser page each) runs, even after a failure.
            .arg("--no-fail-fast");
        if no_run {
            cmd = cmd.arg("--no-run");
        }
        cmd = cmd
            .args(test_args)
            .env("KEEPALIVE_TEST_SERVER", &server_url)
            .env("KEEPALIVE_TEST_CONTROLLER", controller.url());
        for (key, value) in test_env {
            cmd = cmd.env(key, value);
        }
        cmd = match &chaos_token {
            Some(token) => cmd.env("KEEPALIVE_TEST_CHAOS_TOKEN", token),
            None => cmd.env_remove("KEEPALIVE_TEST_CHAOS_TOKEN"),
        };
        cmd.env(
            "CARGO_TARGET_WASM32_UNKNOWN_UNKNOWN_RUNNER",
            "wasm-bindgen-test-runner",
        )
        .env("CHROMEDRIVER", &chromedriver)
        .env("WASM_BINDGEN_TEST_TIMEOUT", timeout_secs)
        .env("WASM_BINDGEN_TEST_WEBDRIVER_JSON", &webdriver_json)
        // The runner would pick these drivers before CHROMEDRIVER.
        .env_remove("GECKODRIVER")
        .env_remove("SAFARIDRIVER")
        .env_remove("GECKODRIVER_REMOTE")
        .env_remove("SAFARIDRIVER_REMOTE")
        .env_remove("CHROMEDRIVER_REMOTE")
        .env_remove("NO_HEADLESS")
    };

    let start = Instant::now();
    cargo_test(true).run()?;
    let build = start.elapsed();
    let start = Instant::now();
    let result = cargo_test(false).run();
    let run = start.elapsed();
    let times = Times { build, run };
    print_times(&times);

    if let Err(err) = result {
        let sup = supervisor
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        println!("\nlast lines of the server log ({}):", ws.rel(&log_file));
        for line in sup.log_tail(40) {
            println!("  {line}");
        }
        return Err(err);
    }
    Ok(times)
}

fn print_times(times: &Times) {
    println!(
        "browser tests: wasm build {:.1}s, run in headless Chromium {:.1}s (wall clock)",
        times.build.as_secs_f64(),
        times.run.as_secs_f64()
    );
}

/// `wasm-bindgen-test-runner --version` must name the `wasm-bindgen` of `Cargo.lock`.
fn check_test_runner(ws: &Workspace) -> Result<String> {
    let lock = std::fs::read_to_string(ws.cargo_lock())
        .map_err(|e| Error::new(format!("cannot read Cargo.lock: {e}")))?;
    let Some(locked) = setup::locked_version(&lock, "wasm-bindgen") else {
        bail!("Cargo.lock has no wasm-bindgen: is {PACKAGE} a workspace member?");
    };
    let Some(version) = Cmd::new("wasm-bindgen-test-runner")
        .arg("--version")
        .probe()
        .and_then(|out| out.lines().next().map(|l| l.trim().to_owned()))
    else {
        bail!(
            "`wasm-bindgen-test-runner` does not run: install the browser tools with \
             `cargo xtask setup --browser` (~/.cargo/bin must be on PATH)"
        );
    };
    if !version.split_whitespace().any(|w| w == locked) {
        bail!(
            "`wasm-bindgen-test-runner --version` prints `{version}` but Cargo.lock has \
             wasm-bindgen {locked}: they must match; run `cargo xtask setup --browser`"
        );
    }
    Ok(version)
}

/// The chromedriver to use (`$CHROMEDRIVER`, else `chromedriver` on PATH), checked to run
/// and to have chromium's major version.
fn check_chromedriver() -> Result<PathBuf> {
    let driver = std::env::var_os("CHROMEDRIVER")
        .map(PathBuf::from)
        .or_else(|| find_on_path("chromedriver"))
        .ok_or_else(|| {
            Error::new(
                "no chromedriver on PATH: install it with `cargo xtask setup --browser` \
                 (Debian's chromium-driver)",
            )
        })?;
    let version = |program: &Path| {
        Cmd::new(program)
            .arg("--version")
            .probe()
            .and_then(|out| out.lines().next().map(|l| l.trim().to_owned()))
    };
    let Some(driver_version) = version(&driver) else {
        bail!("`{} --version` fails", driver.display());
    };
    let Some(browser_version) = find_on_path("chromium").and_then(|chromium| version(&chromium))
    else {
        bail!("`chromium --version` fails: install it with `cargo xtask setup --browser`");
    };
    let major = |v: &str| {
        v.split_whitespace()
            .find(|w| w.chars().next().is_some_and(|c| c.is_ascii_digit()))
            .and_then(|w| w.split('.').next())
            .map(str::to_owned)
    };
    if major(&driver_version) != major(&browser_version) {
        bail!(
            "chromedriver and chromium differ: `{driver_version}` vs `{browser_version}`; \
             upgrade both (`apt-get install chromium chromium-driver`)"
        );
    }
    Ok(driver)
}

/// The first `name` in a `PATH` directory.
fn find_on_path(name: &str) -> Option<PathBuf> {
    std::env::split_paths(&std::env::var_os("PATH")?)
        .map(|dir| dir.join(name))
        .find(|path| path.is_file())
}

/// The chaos flags for this server: `--chaos` and `--chaos-token TOKEN` if its `--help`
/// lists them, else none (chaos is being added to the server).
fn chaos_flags(server: &Path, token: &str) -> Vec<String> {
    let help = Cmd::new(server).arg("--help").probe().unwrap_or_default();
    let mut flags = Vec::new();
    if has_flag(&help, "--chaos-token") {
        if has_flag(&help, "--chaos") {
            flags.push("--chaos".to_owned());
        }
        flags.push("--chaos-token".to_owned());
        flags.push(token.to_owned());
    }
    flags
}

/// Whether `help` lists `flag` itself (not merely a longer flag starting with it).
fn has_flag(help: &str, flag: &str) -> bool {
    help.match_indices(flag).any(|(i, _)| {
        help[i + flag.len()..]
            .chars()
            .next()
            .is_none_or(|c| !(c.is_ascii_alphanumeric() || c == '-' || c == '_'))
    })
}

/// 128 bits from std's randomly seeded hasher, as hex: a fresh chaos token per run.
pub fn random_token() -> String {
    use std::hash::{BuildHasher, RandomState};
    let seed = (
        std::process::id(),
        SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .unwrap_or_default(),
    );
    let a = RandomState::new().hash_one(seed);
    let b = RandomState::new().hash_one((seed, a));
    format!("{a:016x}{b:016x}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_flags_in_help() {
        let help = "  --chaos-token <TOKEN>\n          x\n  --chaos\n          y\n";
        assert!(has_flag(help, "--chaos-token"));
        assert!(has_flag(help, "--chaos"));
        let only_token = "  --chaos-token <TOKEN>\n";
        assert!(has_flag(only_token, "--chaos-token"));
        assert!(!has_flag(only_token, "--chaos"));
        assert!(!has_flag("--cors-allow-origin", "--chaos"));
    }

    #[test]
    fn tokens_differ() {
        let (a, b) = (random_token(), random_token());
        assert_eq!(a.len(), 32);
        assert_ne!(a, b);
    }
}
