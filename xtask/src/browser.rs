//! The browser test step of `cargo xtask test`, and `cargo xtask test-server`:
//! `keepalive-client`'s tests in headless Chromium against the real server.
//!
//! 1. Check the tools: `wasm-pack`, `wasm-bindgen-test-runner` at the `wasm-bindgen`
//!    version in `Cargo.lock`, and a `chromedriver` matching `chromium` (`cargo xtask setup
//!    --browser` installs them).
//! 2. Start a [`TestServer`]: `testkit browser-server` (the workspace's harness) runs
//!    the debug server (built by the step before) with [`SERVER_FLAGS`] and chaos under
//!    its supervisor, and its controller (kill, stop, start, restart over HTTP) — on free
//!    ports for `cargo xtask test`, on [`DEFAULT_SERVER`] and [`DEFAULT_CONTROLLER`] for
//!    `cargo xtask test-server`, where the tests look when nothing else is set.
//! 3. `wasm-pack test --headless --chrome --mode no-install keepalive-client`: the
//!    command its users know (`--mode no-install`: the tools setup installed, nothing
//!    downloaded), with `KEEPALIVE_TEST_SERVER`, `KEEPALIVE_TEST_CONTROLLER` and
//!    `KEEPALIVE_TEST_CHAOS_TOKEN` for the compile, and `WASM_BINDGEN_TEST_TIMEOUT`.
//! 4. Always stop testkit and with it the server (`Drop` closes its stdin, also on
//!    failure); on a failure print the tail of the server log. Print the wall time.
//!
//! The server's output goes to `<target>/browser-tests/server.log`.

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime};

use crate::cmd::Cmd;
use crate::error::{Error, Result, bail};
use crate::setup;
use crate::workspace::Workspace;

/// The browser client package whose tests run in the browser.
const PACKAGE: &str = "keepalive-client";

/// Where `cargo xtask test-server` listens, and where the tests look by default
/// (`keepalive-client/tests/support/mod.rs` has the same three values).
pub const DEFAULT_SERVER: &str = "127.0.0.1:18350";
/// The test controller of `cargo xtask test-server`.
pub const DEFAULT_CONTROLLER: &str = "127.0.0.1:18351";
/// The chaos token of `cargo xtask test-server` (it listens on 127.0.0.1 only).
pub const DEFAULT_CHAOS_TOKEN: &str = "keepalive-test-server";

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
    "--chaos",
];

/// Per-test-binary timeout of wasm-bindgen-test-runner (its default, 20 s, is too short
/// for tests that wait for keepalive timeouts).
const TEST_TIMEOUT_SECS: &str = "300";

/// The browser tests' server and its controller: a `testkit browser-server` process (the
/// harness's supervisor and controller), stopped when this is dropped — its stdin is a
/// pipe from us, and it stops the server and exits when that closes, also when xtask
/// dies.
pub struct TestServer {
    child: std::process::Child,
    /// `http://ADDR` of the server.
    pub server_url: String,
    /// `http://ADDR` of the controller.
    pub controller_url: String,
    /// Its `--chaos-token`.
    pub chaos_token: String,
    /// Where the server's output goes.
    pub log_file: PathBuf,
}

impl TestServer {
    /// Starts the debug server (with [`SERVER_FLAGS`], chaos with `chaos_token`, a fresh
    /// file-backed event log) on `listen`, and the controller on `controller`, through
    /// the debug `testkit` binary (both built by the step before).
    pub fn start(
        ws: &Workspace,
        listen: &str,
        controller: &str,
        chaos_token: &str,
    ) -> Result<Self> {
        use std::io::BufRead;
        let target_dir = ws.target_dir();
        let bin = |name: &str| {
            target_dir
                .join("debug")
                .join(format!("{name}{}", std::env::consts::EXE_SUFFIX))
        };
        let (server_bin, testkit) = (bin("server"), bin("testkit"));
        for (path, package) in [(&server_bin, "server"), (&testkit, "testkit")] {
            if !path.is_file() {
                bail!(
                    "no {} binary at {}: build it first (`cargo build -p {package} --bin {package}`)",
                    package,
                    path.display()
                );
            }
        }
        // A file-backed event log, fresh for each run: a restarted server keeps the
        // sequence space, so a resumed stream can be checked for "nothing lost, nothing
        // twice".
        let event_log = target_dir.join("browser-tests").join("events.log");
        let _ = std::fs::remove_file(&event_log);
        let log_file = target_dir.join("browser-tests").join("server.log");
        let mut cmd = std::process::Command::new(&testkit);
        cmd.arg("browser-server")
            .arg("--server")
            .arg(&server_bin)
            .args(["--listen", listen, "--controller", controller])
            .arg("--log")
            .arg(&log_file)
            .arg("--")
            .args(SERVER_FLAGS)
            .args(["--chaos-token", chaos_token])
            .arg("--event-log")
            .arg(&event_log)
            .current_dir(&ws.root)
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped());
        let mut child = cmd
            .spawn()
            .map_err(|e| Error::new(format!("cannot start {}: {e}", testkit.display())))?;
        let mut line = String::new();
        let read = child
            .stdout
            .take()
            .map(|out| std::io::BufReader::new(out).read_line(&mut line));
        // `testkit: server http://A controller http://B`
        let mut words = line.split_whitespace();
        let (
            Some("testkit:"),
            Some("server"),
            Some(server_url),
            Some("controller"),
            Some(controller_url),
        ) = (
            words.next(),
            words.next(),
            words.next(),
            words.next(),
            words.next(),
        )
        else {
            let _ = child.kill();
            let _ = child.wait();
            bail!(
                "`testkit browser-server` did not start the server ({read:?}, {line:?}); its log: {}",
                ws.rel(&log_file)
            );
        };
        Ok(TestServer {
            server_url: server_url.to_owned(),
            controller_url: controller_url.to_owned(),
            child,
            chaos_token: chaos_token.to_owned(),
            log_file,
        })
    }

    /// Prints where the server, its log and the controller are, and the test runner.
    fn describe(&self, ws: &Workspace, tools: &str) {
        println!(
            "test server:     {} (log: {})",
            self.server_url,
            ws.rel(&self.log_file)
        );
        println!("test controller: {}", self.controller_url);
        println!("test runner:     {tools}");
    }

    /// The last `n` lines the server wrote.
    pub fn log_tail(&self, n: usize) -> Vec<String> {
        let text = std::fs::read_to_string(&self.log_file).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(n)..]
            .iter()
            .map(|l| (*l).to_owned())
            .collect()
    }

    /// Until it exits by itself (`cargo xtask test-server`: Ctrl-C).
    pub fn wait(mut self) -> Result<()> {
        match self.child.wait() {
            Ok(_) => Ok(()),
            Err(e) => bail!("cannot wait for testkit: {e}"),
        }
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        // Closing its stdin stops it (and the server); killed if it does not go.
        drop(self.child.stdin.take());
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Runs the browser tests; see the module docs. `test_args` go to the wasm `cargo test`
/// (e.g. a test name filter). Returns the wall time.
pub fn run(ws: &Workspace, test_args: &[OsString]) -> Result<Duration> {
    run_with(ws, test_args, &[], TEST_TIMEOUT_SECS)
}

/// [`run`] with extra compile-time variables for the tests (`cargo xtask soak` sets the
/// number of faults) and a per-test-binary timeout in seconds.
pub fn run_with(
    ws: &Workspace,
    test_args: &[OsString],
    test_env: &[(&str, String)],
    timeout_secs: &str,
) -> Result<Duration> {
    let (tools, chromedriver) = check_tools(ws)?;
    let server = TestServer::start(ws, "127.0.0.1:0", "127.0.0.1:0", &random_token())?;
    server.describe(ws, &tools);

    let mut cmd = wasm_pack_test(&chromedriver, test_args)
        .env("KEEPALIVE_TEST_SERVER", &server.server_url)
        .env("KEEPALIVE_TEST_CONTROLLER", &server.controller_url)
        .env("KEEPALIVE_TEST_CHAOS_TOKEN", &server.chaos_token)
        .env("WASM_BINDGEN_TEST_TIMEOUT", timeout_secs)
        .dir(&ws.root);
    for (key, value) in test_env {
        cmd = cmd.env(key, value);
    }
    let start = Instant::now();
    let result = cmd.run();
    let wall = start.elapsed();
    println!(
        "browser tests: wasm build + run in headless Chromium {:.1}s (wall clock)",
        wall.as_secs_f64()
    );
    if let Err(err) = result {
        println!(
            "\nlast lines of the server log ({}):",
            ws.rel(&server.log_file)
        );
        for line in server.log_tail(40) {
            println!("  {line}");
        }
        return Err(err);
    }
    Ok(wall)
}

/// `wasm-pack test --headless --chrome --mode no-install keepalive-client ARGS`
/// (wasm-pack builds with `--tests` itself), with the environment cleared of what would pick another browser.
fn wasm_pack_test(chromedriver: &Path, test_args: &[OsString]) -> Cmd {
    let cmd = Cmd::new("wasm-pack")
        .args(["test", "--headless", "--chrome", "--chromedriver"])
        .arg(chromedriver)
        .args(["--mode", "no-install", PACKAGE]);
    // wasm-pack hands the arguments to `cargo build --tests` as well as to `cargo test`:
    // only what both take (no `--no-fail-fast`).
    cmd.args(test_args)
        // The runner would pick these drivers before chromedriver.
        .env_remove("GECKODRIVER")
        .env_remove("SAFARIDRIVER")
        .env_remove("GECKODRIVER_REMOTE")
        .env_remove("SAFARIDRIVER_REMOTE")
        .env_remove("CHROMEDRIVER_REMOTE")
        .env_remove("NO_HEADLESS")
}

/// `cargo xtask test-server`: the browser tests' server and controller on their default
/// addresses until Ctrl-C, for `wasm-pack test --headless --chrome keepalive-client` by
/// hand.
pub fn serve(ws: &Workspace) -> Result<()> {
    setup::run(ws, setup::Setup { browser: true })?;
    ws.cargo()
        .args(["build", "-p", "server", "--bin", "server"])
        .run()?;
    let (tools, _) = check_tools(ws)?;
    let server = TestServer::start(ws, DEFAULT_SERVER, DEFAULT_CONTROLLER, DEFAULT_CHAOS_TOKEN)?;
    println!();
    server.describe(ws, &tools);
    println!();
    println!("In another terminal, the browser tests (Ctrl-C here stops the server):");
    println!(
        "    WASM_BINDGEN_TEST_TIMEOUT={TEST_TIMEOUT_SECS} wasm-pack test --headless --chrome keepalive-client"
    );
    println!("or one test file, one test:");
    println!("    wasm-pack test --headless --chrome keepalive-client --test keepalive -- stalled");
    // Ctrl-C reaches testkit and the server too (one process group): they stop.
    server.wait()
}

/// Checks wasm-pack, the test runner and chromedriver; describes them, and returns the
/// chromedriver.
fn check_tools(ws: &Workspace) -> Result<(String, PathBuf)> {
    let Some(wasm_pack) = Cmd::new("wasm-pack")
        .arg("--version")
        .probe()
        .map(|v| v.trim().to_owned())
    else {
        bail!("`wasm-pack` does not run: install it with `cargo xtask setup --browser`");
    };
    let runner = check_test_runner(ws)?;
    let chromedriver = check_chromedriver()?;
    let description = format!("{wasm_pack}, {runner}, {}", chromedriver.display());
    Ok((description, chromedriver))
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
    fn tokens_differ() {
        let (a, b) = (random_token(), random_token());
        assert_eq!(a.len(), 32);
        assert_ne!(a, b);
    }
}
