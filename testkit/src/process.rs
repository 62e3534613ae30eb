//! One server process: started on a free port of 127.0.0.1 (or the address given), its
//! output captured line by line, its address read from its `listening on` line, killed
//! (SIGKILL) and reaped when dropped — so no server outlives a test, even one that panics.
//!
//! [`ServerProcess::start`] panics with the captured output when the server does not come
//! up (what a test wants); [`ServerBuilder::try_start`] returns a [`StartError`] instead
//! (what the [`Supervisor`](crate::Supervisor) wants, to retry a port still in use).
//! [`run_to_exit`] runs a binary to its end, for command-line tests (bad flags, `--help`).

use crate::binaries;
use crate::capture::{Capture, LogFile};
use crate::listen::{LISTENING_MARKER, has_listen_arg, parse_listen_addr};
use crate::metrics::{self, Metrics};
use std::io::Read;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// How often the async helpers poll the process and its captured output.
const POLL: Duration = Duration::from_millis(20);

/// Default time a start waits for the `listening on` line.
pub const STARTUP_TIMEOUT: Duration = Duration::from_secs(30);

/// Why a server did not come up.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StartError {
    /// It exited saying its address is in use (a restart on the same port may retry).
    AddrInUse(String),
    /// Anything else; the message holds the command and its output.
    Failed(String),
}

impl std::fmt::Display for StartError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            StartError::AddrInUse(m) | StartError::Failed(m) => f.write_str(m),
        }
    }
}

impl std::error::Error for StartError {}

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

/// Options for starting a [`ServerProcess`]; see [`ServerProcess::builder`].
#[derive(Debug, Clone)]
pub struct ServerBuilder {
    program: Option<PathBuf>,
    args: Vec<String>,
    env: Vec<(String, String)>,
    dir: Option<PathBuf>,
    listen: Option<String>,
    echo: bool,
    log: Option<LogFile>,
    startup_timeout: Duration,
}

impl Default for ServerBuilder {
    fn default() -> Self {
        Self {
            program: None,
            args: Vec::new(),
            env: Vec::new(),
            dir: None,
            listen: None,
            echo: true,
            log: None,
            startup_timeout: STARTUP_TIMEOUT,
        }
    }
}

impl ServerBuilder {
    /// Runs this program (default: the demo [`server`](binaries::server_binary)).
    pub fn program(mut self, program: impl Into<PathBuf>) -> Self {
        self.program = Some(program.into());
        self
    }

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

    /// Runs it in `dir`.
    pub fn dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.dir = Some(dir.into());
        self
    }

    /// `--listen ADDR` first (default `127.0.0.1:0`, unless the arguments have `--listen`).
    pub fn listen(mut self, addr: impl Into<String>) -> Self {
        self.listen = Some(addr.into());
        self
    }

    /// Whether to echo every line to our stderr as `[server PID] …` (default `true`;
    /// libtest shows it only for failing tests).
    pub fn echo(mut self, echo: bool) -> Self {
        self.echo = echo;
        self
    }

    /// Also append every line, `[server PID] …`, to `log` (shared across restarts).
    pub fn log(mut self, log: LogFile) -> Self {
        self.log = Some(log);
        self
    }

    /// How long to wait for the `listening on` line (default [`STARTUP_TIMEOUT`]).
    pub fn startup_timeout(mut self, timeout: Duration) -> Self {
        self.startup_timeout = timeout;
        self
    }

    /// The full argument list the server gets.
    fn full_args(&self) -> Vec<String> {
        let mut args = Vec::new();
        if let Some(listen) = &self.listen {
            args.extend(["--listen".to_owned(), listen.clone()]);
        } else if !has_listen_arg(&self.args) {
            args.extend(["--listen".to_owned(), "127.0.0.1:0".to_owned()]);
        }
        args.extend(self.args.iter().cloned());
        args
    }

    /// Spawns the server and waits until it prints its listen address.
    ///
    /// # Panics
    /// If it does not come up; the message holds all captured output.
    pub async fn start(self) -> ServerProcess {
        match self.try_start().await {
            Ok(server) => server,
            Err(e) => panic!("{e}"),
        }
    }

    /// Spawns the server and waits until it prints its listen address.
    ///
    /// # Errors
    /// If it cannot be spawned, exits first ([`StartError::AddrInUse`] when its output
    /// says the address is in use), or is silent past the startup timeout (it is killed).
    pub async fn try_start(self) -> Result<ServerProcess, StartError> {
        let program = self.program.clone().unwrap_or_else(binaries::server_binary);
        let args = self.full_args();
        let mut cmd = Command::new(&program);
        cmd.args(&args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        if let Some(dir) = &self.dir {
            cmd.current_dir(dir);
        }
        if !self.env.iter().any(|(k, _)| k == "RUST_LOG") {
            cmd.env("RUST_LOG", "info");
        }
        if !self.env.iter().any(|(k, _)| k == "NO_COLOR") {
            cmd.env("NO_COLOR", "1");
        }
        cmd.envs(self.env.iter().map(|(k, v)| (k, v)));
        let what = format!("server `{} {}`", program.display(), args.join(" "));

        let mut child = spawn_retrying(&mut cmd)
            .map_err(|e| StartError::Failed(format!("cannot spawn {what}: {e}")))?;
        let pid = child.id();
        let capture = Capture::new(pid, self.echo, self.log.clone());
        let mut readers = Vec::new();
        if let Some(out) = child.stdout.take() {
            readers.push(capture.read(out));
        }
        if let Some(err) = child.stderr.take() {
            readers.push(capture.read(err));
        }
        // Built before waiting, so that an early return still kills the child in Drop.
        let mut server = ServerProcess {
            child,
            pid,
            addr: SocketAddr::from(([127, 0, 0, 1], 0)),
            capture,
            readers,
            status: None,
            args,
        };
        let deadline = Instant::now() + self.startup_timeout;
        loop {
            if let Some(addr) = server.listen_addr_from_logs() {
                server.addr = addr;
                return Ok(server);
            }
            if let Some(status) = server.try_status() {
                server.drain_readers(Duration::from_secs(2)).await;
                let output = server.logs_text();
                let message = match server.listen_addr_from_logs() {
                    Some(addr) => format!(
                        "{what} exited ({status}) right after listening on {addr}; output:\n{output}"
                    ),
                    None => format!(
                        "{what} exited ({status}) before printing `{LISTENING_MARKER}<addr>`; output:\n{output}"
                    ),
                };
                return Err(if output.to_ascii_lowercase().contains("in use") {
                    StartError::AddrInUse(message)
                } else {
                    StartError::Failed(message)
                });
            }
            if Instant::now() >= deadline {
                return Err(StartError::Failed(format!(
                    "{what} did not print `{LISTENING_MARKER}<addr>` within {:?}; output:\n{}",
                    self.startup_timeout,
                    server.logs_text()
                )));
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
    capture: Capture,
    readers: Vec<JoinHandle<()>>,
    status: Option<ExitStatus>,
    args: Vec<String>,
}

impl ServerProcess {
    /// Starts the demo server with `args` (after `--listen 127.0.0.1:0` unless `args`
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
            .program(binaries::prices_server_binary())
            .args(args)
            .start()
            .await
    }

    /// A builder for another program, extra environment variables, a log file, etc.
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
        self.capture.lines().clone()
    }

    /// All captured lines joined with newlines (for assertion messages).
    pub fn logs_text(&self) -> String {
        self.logs().join("\n")
    }

    /// Number of captured lines containing `needle`.
    pub fn log_count(&self, needle: &str) -> usize {
        self.capture
            .lines()
            .iter()
            .filter(|l| l.contains(needle))
            .count()
    }

    /// Whether both output pipes are closed (the process exited; no more lines will come).
    pub fn output_closed(&self) -> bool {
        self.capture.closed() >= self.readers.len()
    }

    /// Waits until a captured line contains `needle` (lines printed before the call
    /// count) and returns the first such line; `None` after `timeout`, or as soon as the
    /// output is closed without a match. For what only the log says (a panic, a startup
    /// message); what the server counts is read with [`metrics`](Self::metrics).
    pub async fn wait_for_log(&self, needle: &str, timeout: Duration) -> Option<String> {
        let deadline = Instant::now() + timeout;
        loop {
            // Read the flag before the lines: if it was set, every line is already in.
            let closed = self.output_closed();
            if let Some(line) = self.capture.lines().iter().find(|l| l.contains(needle)) {
                return Some(line.clone());
            }
            if closed || Instant::now() >= deadline {
                return None;
            }
            tokio::time::sleep(POLL).await;
        }
    }

    /// The server's `/metrics` now (plain HTTP/1.1 on a connection of its own).
    ///
    /// # Panics
    /// If it cannot be read.
    pub async fn metrics(&self) -> Metrics {
        metrics::scrape(self.addr)
            .await
            .unwrap_or_else(|e| panic!("/metrics of {}: {e}", self.addr))
    }

    /// One sample of `/metrics` (`name` or `name{labels}`, exactly as printed).
    ///
    /// # Panics
    /// If `/metrics` cannot be read or has no such sample.
    pub async fn metric(&self, sample: &str) -> f64 {
        let metrics = self.metrics().await;
        metrics
            .get(sample)
            .unwrap_or_else(|| panic!("no {sample} in /metrics:\n{}", metrics.text()))
    }

    /// Polls `/metrics` until `sample` satisfies `ok`; its value then, or `None` (with
    /// the last value seen, if any) after `timeout`.
    pub async fn wait_for_metric(
        &self,
        sample: &str,
        ok: impl Fn(f64) -> bool,
        timeout: Duration,
    ) -> Result<f64, Option<f64>> {
        let deadline = Instant::now() + timeout;
        let mut last = None;
        loop {
            if let Ok(m) = metrics::scrape(self.addr).await {
                last = m.get(sample);
                if let Some(v) = last.filter(|v| ok(*v)) {
                    return Ok(v);
                }
            }
            if Instant::now() >= deadline {
                return Err(last);
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Waits (up to 2 s) until `sample` reaches `want`, then checks it is exactly `want`
    /// (a counter past it fails too).
    ///
    /// # Panics
    /// If it does not get there, or goes past; the message has the server's log.
    pub async fn assert_metric(&self, sample: &str, want: f64) {
        let got = self
            .wait_for_metric(sample, |v| v >= want, Duration::from_secs(2))
            .await;
        assert_eq!(got, Ok(want), "{sample}\n{}", self.logs_text());
    }

    /// Sends a signal by name or number (`"TERM"`, `"INT"`, `"9"`) with `kill(1)`; a
    /// failing `kill` (the process is already gone) is ignored.
    pub fn signal(&self, signal: &str) {
        let _status = Command::new("kill")
            .arg(format!("-{signal}"))
            .arg(self.pid.to_string())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
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

    /// SIGTERM, then waits up to `timeout` for the exit (the server drains); SIGKILL if
    /// it is still running then. Returns how it ended.
    pub async fn stop(&mut self, timeout: Duration) -> Option<ExitStatus> {
        self.signal_term();
        match self.wait_exit(timeout).await {
            Some(status) => Some(status),
            None => {
                self.kill();
                self.status
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
                self.drain_readers(Duration::from_secs(2)).await;
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
        self.capture
            .lines()
            .iter()
            .find_map(|line| parse_listen_addr(line))
    }

    /// Waits (up to `timeout`) until the reader threads have seen EOF on both pipes.
    async fn drain_readers(&self, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        while !self.output_closed() && Instant::now() < deadline {
            tokio::time::sleep(POLL).await;
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

/// Runs the demo server synchronously with exactly `args` (no `--listen` added, stdin
/// closed) and returns its exit code and its stderr (ANSI stripped).
///
/// The code is `None` if the process was killed by a signal or was still running after
/// `timeout` (it is then killed).
///
/// # Panics
/// If the binary is missing or cannot be spawned.
pub fn run_to_exit(args: &[&str], timeout: Duration) -> (Option<i32>, String) {
    let mut cmd = Command::new(binaries::server_binary());
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
    if let Some(mut out) = child.stdout.take() {
        std::thread::spawn(move || {
            let _ = std::io::copy(&mut out, &mut std::io::sink());
        });
    }
    // The stderr bytes are shared incrementally, so output is kept even if a grandchild
    // holds the pipe open.
    let stderr = Arc::new(Mutex::new((Vec::<u8>::new(), false)));
    if let Some(mut err) = child.stderr.take() {
        let stderr = stderr.clone();
        std::thread::spawn(move || {
            let mut chunk = [0u8; 4096];
            loop {
                match err.read(&mut chunk) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => crate::capture::lock(&stderr)
                        .0
                        .extend_from_slice(&chunk[..n]),
                }
            }
            crate::capture::lock(&stderr).1 = true;
        });
    } else {
        crate::capture::lock(&stderr).1 = true;
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
    while !crate::capture::lock(&stderr).1 && Instant::now() < drain_deadline {
        std::thread::sleep(POLL);
    }
    let stderr =
        crate::ansi::strip_ansi(&String::from_utf8_lossy(&crate::capture::lock(&stderr).0));
    (status.and_then(|s| s.code()), stderr)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::fake_server;

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
        let log = LogFile::memory();
        let mut server = ServerProcess::builder()
            .program(&script)
            .args(&["--flag", "1"])
            .env("EXTRA", "yes")
            .echo(false)
            .log(log.clone())
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

        let status = server
            .stop(Duration::from_secs(10))
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
        let pid = server.pid();
        assert!(
            log.text().contains(&format!("[server {pid}] got TERM")),
            "{}",
            log.text()
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
    async fn an_early_exit_is_an_error_and_addr_in_use_is_told_apart() {
        let script = fake_server("fail.sh", "echo 'error: bad config' >&2; exit 2");
        let err = ServerProcess::builder()
            .program(&script)
            .echo(false)
            .try_start()
            .await
            .expect_err("exits");
        assert!(
            matches!(&err, StartError::Failed(m) if m.contains("bad config")),
            "{err}"
        );
        let script = fake_server(
            "busy.sh",
            "echo 'error: Address already in use' >&2; exit 1",
        );
        let err = ServerProcess::builder()
            .program(&script)
            .echo(false)
            .try_start()
            .await
            .expect_err("exits");
        assert!(matches!(err, StartError::AddrInUse(_)), "{err}");
    }
}
