//! Harness for the real `server` process.
//!
//! [`server_binary`] builds the binary once per test process; [`ServerProcess`] starts it on
//! an ephemeral port, captures every line it prints, and kills it when dropped, so no server
//! outlives a test, even one that panics. [`run_to_exit`] runs the binary synchronously, for
//! command-line tests (bad flags, `--help`).
//!
//! The harness assumes the server prints (on stdout or stderr, ANSI colours allowed) a line
//! containing `listening on <ip>:<port>` once it accepts connections.

use std::ffi::OsString;
use std::io::{BufRead, BufReader, Read};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// How often the async helpers poll the process and its captured output.
const POLL: Duration = Duration::from_millis(20);

/// Default time [`ServerProcess::start`] waits for the `listening on` line.
pub const STARTUP_TIMEOUT: Duration = Duration::from_secs(30);

/// Environment variable that, when set, names a prebuilt server binary to use instead of
/// building one with cargo.
pub const SERVER_BIN_ENV: &str = "KEEPALIVE_SERVER_BIN";

/// The text the server prints, followed by its bound address, once it is ready.
pub const LISTENING_MARKER: &str = "listening on ";

/// The workspace root (the parent of this crate's manifest directory).
pub fn workspace_root() -> PathBuf {
    let dir = Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/.."));
    dir.canonicalize().unwrap_or_else(|_| dir.to_path_buf())
}

/// The cargo target directory: `CARGO_TARGET_DIR` (or `CARGO_BUILD_TARGET_DIR`) if set,
/// resolved against the workspace root when relative, else `<workspace>/target`.
pub fn target_dir() -> PathBuf {
    let root = workspace_root();
    ["CARGO_TARGET_DIR", "CARGO_BUILD_TARGET_DIR"]
        .iter()
        .find_map(|var| std::env::var_os(var).filter(|v| !v.is_empty()))
        .map(|dir| root.join(dir))
        .unwrap_or_else(|| root.join("target"))
}

/// The cargo executable: `CARGO` at run time, else at compile time, else `cargo`.
fn cargo() -> OsString {
    std::env::var_os("CARGO")
        .or_else(|| option_env!("CARGO").map(OsString::from))
        .unwrap_or_else(|| OsString::from("cargo"))
}

/// Environment variable that names a prebuilt `prices-server` (the example) binary.
pub const PRICES_BIN_ENV: &str = "KEEPALIVE_PRICES_BIN";

/// Path of the example's `prices-server` binary, built once per test process (or
/// [`PRICES_BIN_ENV`]).
pub fn prices_server_binary() -> PathBuf {
    static BINARY: OnceLock<PathBuf> = OnceLock::new();
    BINARY
        .get_or_init(|| build_binary(PRICES_BIN_ENV, "prices-server"))
        .clone()
}

/// Path of the server binary, built once per test process.
///
/// The first call runs `$CARGO build -p server --bin server` in the workspace root and
/// returns `<target dir>/debug/server`; later calls (from any thread) return the same path
/// without building again. If [`SERVER_BIN_ENV`] is set, that path is used instead and
/// nothing is built.
///
/// # Panics
/// If the build fails (the panic message holds cargo's output) or the binary is missing
/// afterwards.
pub fn server_binary() -> PathBuf {
    static BINARY: OnceLock<PathBuf> = OnceLock::new();
    BINARY
        .get_or_init(|| build_binary(SERVER_BIN_ENV, "server"))
        .clone()
}

/// `env` if set, else `cargo build -p PACKAGE --bin PACKAGE` (both named `package`).
fn build_binary(env: &str, package: &str) -> PathBuf {
    if let Some(bin) = std::env::var_os(env).filter(|v| !v.is_empty()) {
        let bin = PathBuf::from(bin);
        assert!(bin.is_file(), "{env}={} is not a file", bin.display());
        return bin;
    }
    let root = workspace_root();
    let cargo = cargo();
    let output = Command::new(&cargo)
        .args(["build", "-p", package, "--bin", package])
        .current_dir(&root)
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("cannot run {cargo:?} build -p {package}: {e}"));
    if !output.status.success() {
        panic!(
            "`{} build -p {package} --bin {package}` failed ({}) in {}:\n{}{}",
            cargo.to_string_lossy(),
            output.status,
            root.display(),
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr),
        );
    }
    let bin = target_dir()
        .join("debug")
        .join(format!("{package}{}", std::env::consts::EXE_SUFFIX));
    assert!(
        bin.is_file(),
        "cargo built the server but {} does not exist",
        bin.display()
    );
    bin
}

/// Removes ANSI escape sequences (CSI such as colours, OSC, and two-byte escapes).
pub fn strip_ansi(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars().peekable();
    while let Some(c) = chars.next() {
        if c != '\x1b' {
            out.push(c);
            continue;
        }
        match chars.next() {
            // CSI: parameters and intermediates, then one final byte in '@'..='~'.
            Some('[') => {
                for c in chars.by_ref() {
                    if ('@'..='~').contains(&c) {
                        break;
                    }
                }
            }
            // OSC: until BEL or ST (ESC \).
            Some(']') => {
                while let Some(c) = chars.next() {
                    if c == '\x07' {
                        break;
                    }
                    if c == '\x1b' {
                        if chars.peek() == Some(&'\\') {
                            chars.next();
                        }
                        break;
                    }
                }
            }
            // Two-byte escape (or a lone ESC at the end): drop it.
            _ => {}
        }
    }
    out
}

/// Parses the address out of a line containing `listening on <addr>`.
///
/// Accepts an optional `http://` / `https://` scheme and trailing punctuation. Returns
/// `None` when there is no marker, the address does not parse, or its port is 0 (not yet
/// bound).
pub fn parse_listen_addr(line: &str) -> Option<SocketAddr> {
    let line = strip_ansi(line);
    let start = line.find(LISTENING_MARKER)? + LISTENING_MARKER.len();
    let rest = line[start..].trim_start();
    let rest = rest
        .strip_prefix("http://")
        .or_else(|| rest.strip_prefix("https://"))
        .unwrap_or(rest);
    let token: String = rest
        .chars()
        .take_while(|c| !c.is_whitespace() && !matches!(c, ',' | '"' | '\'' | '`' | ';'))
        .collect();
    let token = token.trim_end_matches(['.', ')', '/']);
    let addr: SocketAddr = token.parse().ok()?;
    (addr.port() != 0).then_some(addr)
}

fn lock(logs: &Mutex<Vec<String>>) -> MutexGuard<'_, Vec<String>> {
    logs.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

fn lock_pair(m: &Mutex<(Vec<u8>, bool)>) -> MutexGuard<'_, (Vec<u8>, bool)> {
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// `Command::spawn`, retried for up to 1 s on ETXTBSY: an executable written just before
/// (as a build or a test script may be) can be briefly "busy" while another thread forks.
fn spawn_retrying(cmd: &mut Command) -> std::io::Result<Child> {
    const ETXTBSY: i32 = 26;
    let deadline = Instant::now() + Duration::from_secs(1);
    loop {
        match cmd.spawn() {
            Err(e) if e.raw_os_error() == Some(ETXTBSY) && Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(10));
            }
            result => return result,
        }
    }
}

/// Spawns a thread that reads `pipe` line by line (lossy UTF-8, ANSI stripped) into `logs`,
/// optionally echoing each line to the test's stderr, and bumps `closed` at EOF.
fn spawn_reader(
    pipe: impl Read + Send + 'static,
    logs: Arc<Mutex<Vec<String>>>,
    closed: Arc<AtomicUsize>,
    echo: Option<String>,
) -> JoinHandle<()> {
    std::thread::spawn(move || {
        let mut reader = BufReader::new(pipe);
        let mut buf = Vec::new();
        loop {
            buf.clear();
            match reader.read_until(b'\n', &mut buf) {
                Ok(0) | Err(_) => break,
                Ok(_) => {
                    let raw = String::from_utf8_lossy(&buf);
                    let line = strip_ansi(raw.trim_end_matches(['\n', '\r']));
                    if let Some(prefix) = &echo {
                        eprintln!("{prefix} {line}");
                    }
                    lock(&logs).push(line);
                }
            }
        }
        closed.fetch_add(1, Ordering::SeqCst);
    })
}

/// Whether `args` already choose a listen address (`--listen X` or `--listen=X`).
fn has_listen_arg(args: &[String]) -> bool {
    args.iter()
        .any(|a| a == "--listen" || a.starts_with("--listen="))
}

/// Options for starting a [`ServerProcess`]; see [`ServerProcess::builder`].
#[derive(Debug, Clone)]
pub struct ServerBuilder {
    program: Option<PathBuf>,
    args: Vec<String>,
    env: Vec<(String, String)>,
    echo: bool,
    startup_timeout: Duration,
}

impl Default for ServerBuilder {
    fn default() -> Self {
        Self {
            program: None,
            args: Vec::new(),
            env: Vec::new(),
            echo: true,
            startup_timeout: STARTUP_TIMEOUT,
        }
    }
}

impl ServerBuilder {
    /// Appends one command-line argument.
    pub fn arg(mut self, arg: impl Into<String>) -> Self {
        self.args.push(arg.into());
        self
    }

    /// Appends command-line arguments.
    pub fn args<S: AsRef<str>>(mut self, args: &[S]) -> Self {
        self.args.extend(args.iter().map(|a| a.as_ref().to_owned()));
        self
    }

    /// Sets an environment variable for the server (overrides the `RUST_LOG=info` and
    /// `NO_COLOR=1` defaults when it names them).
    pub fn env(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.env.push((key.into(), value.into()));
        self
    }

    /// Whether to echo every server line to the test's stderr, prefixed with
    /// `[server <pid>]` (default `true`; libtest shows it only for failing tests).
    pub fn echo(mut self, echo: bool) -> Self {
        self.echo = echo;
        self
    }

    /// How long to wait for the `listening on` line (default [`STARTUP_TIMEOUT`]).
    pub fn startup_timeout(mut self, timeout: Duration) -> Self {
        self.startup_timeout = timeout;
        self
    }

    /// Runs this program instead of [`server_binary`] (for testing the harness itself).
    pub fn program(mut self, program: impl Into<PathBuf>) -> Self {
        self.program = Some(program.into());
        self
    }

    /// Spawns the server and waits until it prints its listen address.
    ///
    /// `--listen 127.0.0.1:0` is prepended unless the arguments contain `--listen`.
    ///
    /// # Panics
    /// If the process cannot be spawned, exits before printing the address, or does not
    /// print it within the startup timeout; the message holds all captured output.
    pub async fn start(self) -> ServerProcess {
        let program = self.program.clone().unwrap_or_else(server_binary);
        let mut args = Vec::new();
        if !has_listen_arg(&self.args) {
            args.push("--listen".to_owned());
            args.push("127.0.0.1:0".to_owned());
        }
        args.extend(self.args.iter().cloned());

        let mut cmd = Command::new(&program);
        cmd.args(&args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        if !self.env.iter().any(|(k, _)| k == "RUST_LOG") {
            cmd.env("RUST_LOG", "info");
        }
        if !self.env.iter().any(|(k, _)| k == "NO_COLOR") {
            cmd.env("NO_COLOR", "1");
        }
        cmd.envs(self.env.iter().map(|(k, v)| (k, v)));

        let mut child = spawn_retrying(&mut cmd)
            .unwrap_or_else(|e| panic!("cannot spawn {}: {e}", program.display()));
        let pid = child.id();
        let logs = Arc::new(Mutex::new(Vec::new()));
        let closed = Arc::new(AtomicUsize::new(0));
        let echo = self.echo.then(|| format!("[server {pid}]"));
        let mut readers = Vec::new();
        if let Some(out) = child.stdout.take() {
            readers.push(spawn_reader(
                out,
                logs.clone(),
                closed.clone(),
                echo.clone(),
            ));
        }
        if let Some(err) = child.stderr.take() {
            readers.push(spawn_reader(err, logs.clone(), closed.clone(), echo));
        }

        // Built before waiting, so a panic below still kills the child in Drop.
        let mut server = ServerProcess {
            child,
            pid,
            addr: SocketAddr::from(([127, 0, 0, 1], 0)),
            logs,
            closed,
            readers,
            status: None,
            args,
        };

        let deadline = Instant::now() + self.startup_timeout;
        loop {
            if let Some(addr) = server.listen_addr_from_logs() {
                server.addr = addr;
                return server;
            }
            if let Some(status) = server.try_status() {
                server.drain_readers(Duration::from_secs(2));
                if let Some(addr) = server.listen_addr_from_logs() {
                    panic!(
                        "server {} {:?} exited ({status}) right after listening on {addr}; output:\n{}",
                        program.display(),
                        server.args,
                        server.logs().join("\n")
                    );
                }
                panic!(
                    "server {} {:?} exited ({status}) before printing `{LISTENING_MARKER}<addr>`; output:\n{}",
                    program.display(),
                    server.args,
                    server.logs().join("\n")
                );
            }
            if Instant::now() >= deadline {
                panic!(
                    "server {} {:?} did not print `{LISTENING_MARKER}<addr>` within {:?}; output:\n{}",
                    program.display(),
                    server.args,
                    self.startup_timeout,
                    server.logs().join("\n")
                );
            }
            tokio::time::sleep(POLL).await;
        }
    }
}

/// A running server process, killed (SIGKILL) and reaped when dropped.
#[derive(Debug)]
pub struct ServerProcess {
    child: Child,
    pid: u32,
    addr: SocketAddr,
    logs: Arc<Mutex<Vec<String>>>,
    /// Number of output pipes (of 2) that reached EOF.
    closed: Arc<AtomicUsize>,
    readers: Vec<JoinHandle<()>>,
    status: Option<ExitStatus>,
    args: Vec<String>,
}

impl ServerProcess {
    /// Starts the server binary with `args` (after `--listen 127.0.0.1:0` unless `args`
    /// contain `--listen`), `RUST_LOG=info`, and waits up to 30 s for its listen address.
    ///
    /// # Panics
    /// See [`ServerBuilder::start`].
    pub async fn start(args: &[&str]) -> ServerProcess {
        Self::builder().args(args).start().await
    }

    /// Starts the example's `prices-server` (a server built with the library around a
    /// service that is not ours) with `args`, as [`start`](Self::start) does the server.
    pub async fn start_prices(args: &[&str]) -> ServerProcess {
        Self::builder()
            .program(prices_server_binary())
            .args(args)
            .start()
            .await
    }

    /// A builder for extra environment variables, a custom startup timeout, etc.
    pub fn builder() -> ServerBuilder {
        ServerBuilder::default()
    }

    /// The address the server listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://<addr>`, for tonic channels.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.pid
    }

    /// The arguments the server was started with (including a prepended `--listen`).
    pub fn args(&self) -> &[String] {
        &self.args
    }

    /// Every line printed so far (stdout and stderr interleaved in arrival order, ANSI
    /// codes stripped).
    pub fn logs(&self) -> Vec<String> {
        lock(&self.logs).clone()
    }

    /// All captured lines joined with newlines (for assertion messages).
    pub fn logs_text(&self) -> String {
        self.logs().join("\n")
    }

    /// Number of captured lines containing `needle`.
    pub fn log_count(&self, needle: &str) -> usize {
        lock(&self.logs)
            .iter()
            .filter(|l| l.contains(needle))
            .count()
    }

    /// Whether both output pipes are closed (the process exited; no more lines will come).
    pub fn output_closed(&self) -> bool {
        self.closed.load(Ordering::SeqCst) >= self.readers.len()
    }

    /// Waits until a captured line contains `needle` (checking lines printed before the
    /// call too) and returns the first such line; `None` after `timeout`, or as soon as
    /// the process's output is closed without a match.
    pub async fn wait_for_log(&self, needle: &str, timeout: Duration) -> Option<String> {
        self.wait_for_log_count(needle, 1, timeout).await
    }

    /// Waits until at least `count` captured lines contain `needle` and returns the
    /// `count`-th one; `None` on timeout or when the output is closed first.
    pub async fn wait_for_log_count(
        &self,
        needle: &str,
        count: usize,
        timeout: Duration,
    ) -> Option<String> {
        let deadline = Instant::now() + timeout;
        loop {
            // Read the flag before the lines: if it was set, every line is already in.
            let closed = self.output_closed();
            if let Some(line) = lock(&self.logs)
                .iter()
                .filter(|l| l.contains(needle))
                .nth(count.saturating_sub(1))
            {
                return Some(line.clone());
            }
            if closed || Instant::now() >= deadline {
                return None;
            }
            tokio::time::sleep(POLL).await;
        }
    }

    /// Sends a signal by name or number (`"TERM"`, `"INT"`, `"9"`) with `kill(1)`.
    ///
    /// # Panics
    /// If `kill` cannot be run. A failing `kill` (process already gone) is ignored.
    pub fn signal(&self, signal: &str) {
        let _status = Command::new("kill")
            .arg(format!("-{signal}"))
            .arg(self.pid.to_string())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .expect("run kill(1)");
    }

    /// Sends SIGTERM (graceful stop).
    pub fn signal_term(&self) {
        self.signal("TERM");
    }

    /// Sends SIGINT (graceful stop, as Ctrl-C).
    pub fn signal_int(&self) {
        self.signal("INT");
    }

    /// Kills the process (SIGKILL) and reaps it.
    pub fn kill(&mut self) {
        if self.try_status().is_none() {
            let _ = self.child.kill();
            if let Ok(status) = self.child.wait() {
                self.status = Some(status);
            }
        }
    }

    /// Whether the process is still running.
    pub fn is_running(&mut self) -> bool {
        self.try_status().is_none()
    }

    /// The exit status if the process has exited (non-blocking).
    pub fn try_status(&mut self) -> Option<ExitStatus> {
        if self.status.is_none() {
            self.status = self.child.try_wait().ok().flatten();
        }
        self.status
    }

    /// Waits up to `timeout` for the process to exit; then also waits (briefly) until its
    /// output is fully captured. `None` if it is still running at the timeout.
    pub async fn wait_exit(&mut self, timeout: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.try_status() {
                let drain_deadline = Instant::now() + Duration::from_secs(2);
                while !self.output_closed() && Instant::now() < drain_deadline {
                    tokio::time::sleep(POLL).await;
                }
                return Some(status);
            }
            if Instant::now() >= deadline {
                return None;
            }
            tokio::time::sleep(POLL).await;
        }
    }

    /// The address from the first `listening on` line captured so far.
    fn listen_addr_from_logs(&self) -> Option<SocketAddr> {
        lock(&self.logs)
            .iter()
            .find_map(|line| parse_listen_addr(line))
    }

    /// Blocks (up to `timeout`) until the reader threads have seen EOF on both pipes.
    fn drain_readers(&self, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        while !self.output_closed() && Instant::now() < deadline {
            std::thread::sleep(POLL);
        }
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        self.kill();
        for reader in self.readers.drain(..) {
            if reader.is_finished() {
                let _ = reader.join();
            }
        }
    }
}

/// Runs the server binary synchronously with exactly `args` (no `--listen` added, stdin
/// closed) and returns its exit code and its stderr (ANSI stripped).
///
/// The code is `None` if the process was killed by a signal or was still running after
/// `timeout` (it is then killed).
///
/// # Panics
/// If the binary cannot be built or spawned.
pub fn run_to_exit(args: &[&str], timeout: Duration) -> (Option<i32>, String) {
    let mut cmd = Command::new(server_binary());
    cmd.args(args);
    run_command_to_exit(cmd, timeout)
}

/// [`run_to_exit`] for any command: returns the exit code and stderr (ANSI stripped);
/// stdout is read and discarded. After the process ends, its stderr is awaited for at most
/// 2 s more (a grandchild may hold the pipe open).
///
/// # Panics
/// If the command cannot be spawned.
pub fn run_command_to_exit(mut cmd: Command, timeout: Duration) -> (Option<i32>, String) {
    cmd.stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child =
        spawn_retrying(&mut cmd).unwrap_or_else(|e| panic!("cannot spawn {cmd:?}: {e}"));
    // Read both pipes in threads (a full pipe would block the child). The stderr bytes are
    // shared incrementally, so output is kept even if a grandchild holds the pipe open.
    if let Some(mut out) = child.stdout.take() {
        std::thread::spawn(move || {
            let _ = std::io::copy(&mut out, &mut std::io::sink());
        });
    }
    let stderr = Arc::new(Mutex::new((Vec::<u8>::new(), false)));
    if let Some(mut err) = child.stderr.take() {
        let stderr = stderr.clone();
        std::thread::spawn(move || {
            let mut chunk = [0u8; 4096];
            loop {
                match err.read(&mut chunk) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => lock_pair(&stderr).0.extend_from_slice(&chunk[..n]),
                }
            }
            lock_pair(&stderr).1 = true;
        });
    } else {
        lock_pair(&stderr).1 = true;
    }

    let deadline = Instant::now() + timeout;
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break Some(status),
            Ok(None) if Instant::now() < deadline => std::thread::sleep(POLL),
            _ => {
                let _ = child.kill();
                let _ = child.wait();
                break None;
            }
        }
    };
    let drain_deadline = Instant::now() + Duration::from_secs(2);
    while !lock_pair(&stderr).1 && Instant::now() < drain_deadline {
        std::thread::sleep(POLL);
    }
    let stderr = strip_ansi(&String::from_utf8_lossy(&lock_pair(&stderr).0));
    (status.and_then(|s| s.code()), stderr)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strips_ansi_codes() {
        let line = "\x1b[2m2025-01-01T00:00:00Z\x1b[0m \x1b[32m INFO\x1b[0m \x1b[2mserver\x1b[0m\x1b[2m:\x1b[0m listening on 127.0.0.1:4242";
        assert_eq!(
            strip_ansi(line),
            "2025-01-01T00:00:00Z  INFO server: listening on 127.0.0.1:4242"
        );
        assert_eq!(strip_ansi("a\x1b]0;title\x07b\x1bMc\x1b"), "abc");
    }

    #[test]
    fn parses_listen_line() {
        let want: SocketAddr = "127.0.0.1:4242".parse().expect("addr");
        for line in [
            "INFO server: listening on 127.0.0.1:4242",
            "listening on http://127.0.0.1:4242/",
            "\x1b[32mINFO\x1b[0m listening on \x1b[1m127.0.0.1:4242\x1b[0m, tls=false",
            "listening on 127.0.0.1:4242.",
        ] {
            assert_eq!(parse_listen_addr(line), Some(want), "{line}");
        }
        assert_eq!(
            parse_listen_addr("listening on [::1]:80"),
            "[::1]:80".parse().ok()
        );
        assert_eq!(parse_listen_addr("listening on 127.0.0.1:0"), None);
        assert_eq!(parse_listen_addr("binding 127.0.0.1:4242"), None);
    }

    #[test]
    fn detects_listen_arg() {
        let args = |a: &[&str]| a.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert!(has_listen_arg(&args(&["--listen", "0.0.0.0:1"])));
        assert!(has_listen_arg(&args(&["-v", "--listen=0.0.0.0:1"])));
        assert!(!has_listen_arg(&args(&["--listen-foo", "x"])));
    }

    #[test]
    fn run_command_to_exit_reports_code_and_stderr() {
        let mut cmd = Command::new("sh");
        cmd.args(["-c", "echo out; echo 'bad flag' >&2; exit 3"]);
        let (code, stderr) = run_command_to_exit(cmd, Duration::from_secs(10));
        assert_eq!(code, Some(3));
        assert_eq!(stderr, "bad flag\n");

        let mut cmd = Command::new("sh");
        cmd.args(["-c", "echo partial >&2; sleep 30"]);
        let started = Instant::now();
        let (code, stderr) = run_command_to_exit(cmd, Duration::from_millis(300));
        assert_eq!(code, None);
        assert_eq!(stderr, "partial\n");
        assert!(started.elapsed() < Duration::from_secs(10));
    }

    /// Writes an executable shell script standing in for the server.
    fn fake_server(name: &str, body: &str) -> PathBuf {
        use std::os::unix::fs::PermissionsExt;
        let dir = std::env::temp_dir().join(format!("tests-harness-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("create temp dir");
        let path = dir.join(name);
        std::fs::write(&path, format!("#!/bin/sh\n{body}\n")).expect("write script");
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755))
            .expect("chmod script");
        path
    }

    #[tokio::test]
    async fn harness_with_fake_server() {
        let script = fake_server(
            "ok.sh",
            r#"echo "args: $*"
echo "rust_log=$RUST_LOG extra=$EXTRA"
printf '\033[32m INFO\033[0m listening on 127.0.0.1:4242\n' >&2
trap 'echo "got TERM" >&2; exit 0' TERM
while true; do sleep 0.05; done"#,
        );
        let mut server = ServerProcess::builder()
            .program(&script)
            .args(&["--flag", "1"])
            .env("EXTRA", "yes")
            .echo(false)
            .start()
            .await;
        assert_eq!(server.addr(), "127.0.0.1:4242".parse().expect("addr"));
        assert_eq!(server.url(), "http://127.0.0.1:4242");
        let args = server
            .wait_for_log("args:", Duration::from_secs(5))
            .await
            .expect("args line");
        assert_eq!(args, "args: --listen 127.0.0.1:0 --flag 1");
        assert!(
            server
                .wait_for_log("rust_log=info extra=yes", Duration::from_secs(5))
                .await
                .is_some(),
            "{:?}",
            server.logs()
        );
        assert!(
            server
                .logs()
                .contains(&" INFO listening on 127.0.0.1:4242".to_owned())
        );
        assert!(server.is_running());

        server.signal_term();
        let status = server
            .wait_exit(Duration::from_secs(10))
            .await
            .expect("exits on TERM");
        assert!(status.success());
        assert_eq!(server.log_count("got TERM"), 1);
        assert!(server.output_closed());
        assert!(
            server
                .wait_for_log("never printed", Duration::from_secs(5))
                .await
                .is_none()
        );
        let _ = std::fs::remove_file(&script);
    }

    #[tokio::test]
    async fn drop_kills_the_process() {
        let script = fake_server(
            "hang.sh",
            "echo 'listening on 127.0.0.1:4243' >&2\nexec sleep 60",
        );
        let server = ServerProcess::builder()
            .program(&script)
            .echo(false)
            .start()
            .await;
        let pid = server.pid();
        drop(server);
        let alive = Command::new("kill")
            .args(["-0", &pid.to_string()])
            .stderr(Stdio::null())
            .status()
            .expect("run kill -0");
        assert!(!alive.success(), "process {pid} survived drop");
        let _ = std::fs::remove_file(&script);
    }

    #[tokio::test]
    #[should_panic(expected = "exited")]
    async fn start_panics_when_process_exits_early() {
        let script = fake_server("fail.sh", "echo 'error: bad config' >&2; exit 2");
        let _server = ServerProcess::builder()
            .program(&script)
            .echo(false)
            .start()
            .await;
    }
}
