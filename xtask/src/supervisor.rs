//! The server process of the browser tests, owned by xtask.
//!
//! [`Supervisor`] starts the server binary on `127.0.0.1:0`, reads the bound address from
//! its `listening on ADDR` line, and from then on restarts it on that same address with the
//! same flags, so a browser test can kill the server and see its client reconnect to the
//! "same" server. Every line the processes print is kept (prefixed `[server PID]`) and
//! appended to a log file. Dropping the supervisor kills the process.
//!
//! `cargo xtask demo` uses it too, on the demo's address ([`Supervisor::listen_on`]),
//! printing the server's lines as they come ([`Supervisor::echo`]), and starts the server
//! again when it exits for a restart ([`Supervisor::poll_exit`]).

use std::fs::File;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc::{self, RecvTimeoutError, Sender};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread;
use std::time::{Duration, Instant};

use crate::error::{Error, Result};

/// How long a start waits for the `listening on` line.
const STARTUP_TIMEOUT: Duration = Duration::from_secs(30);
/// How long a restart retries while the old port is still in use.
const ADDR_IN_USE_RETRY: Duration = Duration::from_secs(10);
/// How long [`Supervisor::stop`] waits after SIGTERM before SIGKILL.
const STOP_TIMEOUT: Duration = Duration::from_secs(30);
/// The text before the bound address in the server's log.
const LISTENING_MARKER: &str = "listening on ";

/// What to run: the program, its flags (after `--listen ADDR`), extra environment.
#[derive(Debug, Clone)]
pub struct ServerSpec {
    /// The server binary.
    pub program: PathBuf,
    /// Flags after `--listen ADDR`, the same at every (re)start.
    pub args: Vec<String>,
    /// Extra environment (`RUST_LOG=info` and `NO_COLOR=1` are the defaults).
    pub env: Vec<(String, String)>,
    /// Working directory.
    pub dir: PathBuf,
}

/// Lines kept in memory (the file keeps them all); past this the older half goes.
const MAX_LINES: usize = 100_000;

/// The captured output of every process, in memory and in a file.
#[derive(Debug, Default)]
struct LogSink {
    lines: Vec<String>,
    file: Option<File>,
    /// Also print each line on our stderr (`cargo xtask demo`).
    echo: bool,
}

impl LogSink {
    fn push(&mut self, line: String) {
        if let Some(file) = &mut self.file {
            let _ = writeln!(file, "{line}");
        }
        if self.echo {
            eprintln!("{line}");
        }
        if self.lines.len() >= MAX_LINES {
            self.lines.drain(..MAX_LINES / 2);
        }
        self.lines.push(line);
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// The running process.
#[derive(Debug)]
struct Running {
    child: Child,
    pid: u32,
}

/// A snapshot of the supervised server, for `GET /status`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Status {
    /// Whether a process is running.
    pub running: bool,
    /// Its pid while running.
    pub pid: Option<u32>,
    /// The bound address (kept across restarts); `None` before the first start.
    pub addr: Option<SocketAddr>,
    /// How many processes were started.
    pub starts: u32,
    /// How the previous process ended.
    pub last_exit: Option<String>,
}

impl Status {
    /// `{"running":true,"pid":1,"addr":"127.0.0.1:9","url":"http://127.0.0.1:9",...}`.
    pub fn to_json(&self) -> String {
        let string = |s: Option<String>| s.map_or_else(|| "null".to_owned(), |s| json_string(&s));
        format!(
            "{{\"running\":{},\"pid\":{},\"addr\":{},\"url\":{},\"starts\":{},\"last_exit\":{}}}",
            self.running,
            self.pid
                .map_or_else(|| "null".to_owned(), |p| p.to_string()),
            string(self.addr.map(|a| a.to_string())),
            string(self.addr.map(|a| format!("http://{a}"))),
            self.starts,
            string(self.last_exit.clone()),
        )
    }
}

/// A JSON string literal.
pub fn json_string(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// Owns the server process; see the module docs.
#[derive(Debug)]
pub struct Supervisor {
    spec: ServerSpec,
    /// `127.0.0.1:0` until the first start, then the bound address.
    listen: String,
    addr: Option<SocketAddr>,
    running: Option<Running>,
    starts: u32,
    last_exit: Option<String>,
    log: Arc<Mutex<LogSink>>,
}

/// Why one start attempt failed.
enum StartError {
    /// The process exited saying its address is in use (a restart may retry).
    AddrInUse(Error),
    Other(Error),
}

impl Supervisor {
    /// A supervisor for `spec`, not started yet. The output of every process goes to
    /// `log_file` too (created, truncated), when given.
    pub fn new(spec: ServerSpec, log_file: Option<&Path>) -> Result<Self> {
        let file = match log_file {
            Some(path) => {
                if let Some(dir) = path.parent() {
                    std::fs::create_dir_all(dir)
                        .map_err(|e| Error::new(format!("cannot create {}: {e}", dir.display())))?;
                }
                Some(
                    File::create(path).map_err(|e| {
                        Error::new(format!("cannot create {}: {e}", path.display()))
                    })?,
                )
            }
            None => None,
        };
        Ok(Self {
            spec,
            listen: "127.0.0.1:0".to_owned(),
            addr: None,
            running: None,
            starts: 0,
            last_exit: None,
            log: Arc::new(Mutex::new(LogSink {
                lines: Vec::new(),
                file,
                echo: false,
            })),
        })
    }

    /// Listens on `addr` instead of a free port of 127.0.0.1 (before the first start).
    pub fn listen_on(mut self, addr: &str) -> Self {
        addr.clone_into(&mut self.listen);
        self
    }

    /// Also prints every line of the server on our stderr.
    pub fn echo(self, echo: bool) -> Self {
        lock(&self.log).echo = echo;
        self
    }

    /// How the process ended, once it has (`None` while it runs, or when none was
    /// started). Reaps it: a later [`start`](Self::start) starts a new one.
    pub fn poll_exit(&mut self) -> Option<ExitStatus> {
        let running = self.running.as_mut()?;
        let status = running.child.try_wait().ok().flatten()?;
        self.last_exit = Some(status.to_string());
        self.running = None;
        Some(status)
    }

    /// The bound address, once started.
    pub fn addr(&self) -> Option<SocketAddr> {
        self.addr
    }

    /// The current state (notices a process that died on its own).
    pub fn status(&mut self) -> Status {
        self.reap();
        Status {
            running: self.running.is_some(),
            pid: self.running.as_ref().map(|r| r.pid),
            addr: self.addr,
            starts: self.starts,
            last_exit: self.last_exit.clone(),
        }
    }

    /// Every captured line, `[server PID] ...`, of all processes so far.
    pub fn log_text(&self) -> String {
        let sink = lock(&self.log);
        let mut text = sink.lines.join("\n");
        text.push('\n');
        text
    }

    /// The last `n` captured lines.
    pub fn log_tail(&self, n: usize) -> Vec<String> {
        let sink = lock(&self.log);
        sink.lines[sink.lines.len().saturating_sub(n)..].to_vec()
    }

    /// Starts the server unless it is running, and waits until it listens. After the
    /// first start the address is fixed: later starts use the same port (retrying for a
    /// while if the old socket still holds it).
    pub fn start(&mut self) -> Result<()> {
        self.reap();
        if self.running.is_some() {
            return Ok(());
        }
        let retry_until = Instant::now() + ADDR_IN_USE_RETRY;
        loop {
            match self.start_once() {
                Ok(()) => return Ok(()),
                Err(StartError::AddrInUse(_))
                    if self.addr.is_some() && Instant::now() < retry_until =>
                {
                    thread::sleep(Duration::from_millis(100));
                }
                Err(StartError::AddrInUse(e) | StartError::Other(e)) => return Err(e),
            }
        }
    }

    fn start_once(&mut self) -> Result<(), StartError> {
        let mut cmd = Command::new(&self.spec.program);
        cmd.arg("--listen")
            .arg(&self.listen)
            .args(&self.spec.args)
            .current_dir(&self.spec.dir)
            .env("RUST_LOG", "info")
            .env("NO_COLOR", "1")
            .envs(self.spec.env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = cmd.spawn().map_err(|e| {
            StartError::Other(Error::new(format!(
                "cannot start the server {}: {e}",
                self.spec.program.display()
            )))
        })?;
        let pid = child.id();
        let (tx, rx) = mpsc::channel();
        if let Some(out) = child.stdout.take() {
            spawn_reader(out, pid, self.log.clone(), tx.clone());
        }
        if let Some(err) = child.stderr.take() {
            spawn_reader(err, pid, self.log.clone(), tx.clone());
        }
        drop(tx);

        let what = || {
            format!(
                "the server `{} --listen {} {}`",
                self.spec.program.display(),
                self.listen,
                self.spec.args.join(" ")
            )
        };
        let deadline = Instant::now() + STARTUP_TIMEOUT;
        let mut exited: Option<ExitStatus> = None;
        loop {
            match rx.recv_timeout(Duration::from_millis(50)) {
                Ok(addr) => {
                    self.addr = Some(addr);
                    self.listen = addr.to_string();
                    self.starts += 1;
                    self.running = Some(Running { child, pid });
                    return Ok(());
                }
                // Both pipes closed: the process is gone (or closed them); judge below.
                Err(RecvTimeoutError::Disconnected) if exited.is_some() => break,
                Err(RecvTimeoutError::Disconnected) => thread::sleep(Duration::from_millis(50)),
                Err(RecvTimeoutError::Timeout) => {}
            }
            if exited.is_none() {
                exited = child.try_wait().ok().flatten();
                if exited.is_some() {
                    // Give the readers a moment to collect the last lines.
                    let drain = Instant::now() + Duration::from_secs(2);
                    while Instant::now() < drain {
                        match rx.recv_timeout(Duration::from_millis(50)) {
                            Err(RecvTimeoutError::Disconnected) => break,
                            _ => continue,
                        }
                    }
                    break;
                }
            }
            if Instant::now() >= deadline {
                let _ = child.kill();
                let _ = child.wait();
                return Err(StartError::Other(Error::new(format!(
                    "{} did not print `{LISTENING_MARKER}ADDR` within {}s; its output:\n{}",
                    what(),
                    STARTUP_TIMEOUT.as_secs(),
                    self.lines_of(pid).join("\n")
                ))));
            }
        }
        let status = match exited {
            Some(status) => status,
            None => child.wait().map_err(|e| {
                StartError::Other(Error::new(format!("cannot wait for the server: {e}")))
            })?,
        };
        self.last_exit = Some(status.to_string());
        let lines = self.lines_of(pid);
        let error = Error::new(format!(
            "{} exited ({status}) before listening; its output:\n{}",
            what(),
            lines.join("\n")
        ));
        if lines
            .iter()
            .any(|l| l.to_ascii_lowercase().contains("in use"))
        {
            Err(StartError::AddrInUse(error))
        } else {
            Err(StartError::Other(error))
        }
    }

    /// The captured lines of process `pid`.
    fn lines_of(&self, pid: u32) -> Vec<String> {
        let prefix = format!("[server {pid}] ");
        lock(&self.log)
            .lines
            .iter()
            .filter(|l| l.starts_with(&prefix))
            .cloned()
            .collect()
    }

    /// Notices a process that exited by itself.
    fn reap(&mut self) {
        if let Some(running) = &mut self.running
            && let Ok(Some(status)) = running.child.try_wait()
        {
            self.last_exit = Some(status.to_string());
            self.running = None;
        }
    }

    /// SIGKILL (no drain) and reap. Does nothing when not running.
    pub fn kill(&mut self) {
        if let Some(mut running) = self.running.take() {
            let _ = running.child.kill();
            if let Ok(status) = running.child.wait() {
                self.last_exit = Some(status.to_string());
            }
        }
    }

    /// SIGTERM (graceful drain) and wait for the exit; SIGKILL after 30 s.
    pub fn stop(&mut self) -> Result<()> {
        let Some(mut running) = self.running.take() else {
            return Ok(());
        };
        let sent = Command::new("kill")
            .args(["-TERM", &running.pid.to_string()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        let deadline = Instant::now() + STOP_TIMEOUT;
        let status = loop {
            match running.child.try_wait() {
                Ok(Some(status)) => break Some(status),
                Ok(None) if sent && Instant::now() < deadline => {
                    thread::sleep(Duration::from_millis(20));
                }
                _ => {
                    let _ = running.child.kill();
                    break running.child.wait().ok();
                }
            }
        };
        self.last_exit = status.map(|s| s.to_string());
        if sent {
            Ok(())
        } else {
            Err(Error::new(format!(
                "could not send SIGTERM to the server (pid {}): killed it",
                running.pid
            )))
        }
    }

    /// Kills (or, `graceful`, stops) the server and starts it again on the same port.
    pub fn restart(&mut self, graceful: bool) -> Result<()> {
        if graceful {
            self.stop()?;
        } else {
            self.kill();
        }
        self.start()
    }
}

impl Drop for Supervisor {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Reads `pipe` line by line into `log` as `[server PID] line`; sends the address of the
/// first `listening on ADDR` line on `tx`.
fn spawn_reader(
    pipe: impl Read + Send + 'static,
    pid: u32,
    log: Arc<Mutex<LogSink>>,
    tx: Sender<SocketAddr>,
) {
    thread::spawn(move || {
        let mut reader = BufReader::new(pipe);
        let mut buf = Vec::new();
        let mut sent = false;
        loop {
            buf.clear();
            match reader.read_until(b'\n', &mut buf) {
                Ok(0) | Err(_) => break,
                Ok(_) => {
                    let line = String::from_utf8_lossy(&buf);
                    let line = strip_ansi(line.trim_end_matches(['\n', '\r']));
                    let addr = parse_listen_addr(&line);
                    // Logged before the address is announced: whoever waits for the
                    // address finds the line in the log.
                    lock(&log).push(format!("[server {pid}] {line}"));
                    if !sent && let Some(addr) = addr {
                        sent = tx.send(addr).is_ok();
                    }
                }
            }
        }
    });
}

/// Removes ANSI CSI sequences (colours), in case `NO_COLOR` is ignored.
fn strip_ansi(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        if c == '\x1b' {
            if chars.next() == Some('[') {
                for c in chars.by_ref() {
                    if ('@'..='~').contains(&c) {
                        break;
                    }
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// The address in a `... listening on 127.0.0.1:PORT ...` line (port 0 does not count).
pub fn parse_listen_addr(line: &str) -> Option<SocketAddr> {
    let start = line.find(LISTENING_MARKER)? + LISTENING_MARKER.len();
    let rest = line[start..].trim_start();
    let rest = rest.strip_prefix("http://").unwrap_or(rest);
    let token: String = rest
        .chars()
        .take_while(|c| !c.is_whitespace() && !matches!(c, ',' | '"' | '\'' | '`' | ';'))
        .collect();
    let addr: SocketAddr = token.trim_end_matches(['.', ')', '/']).parse().ok()?;
    (addr.port() != 0).then_some(addr)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A shell script standing in for the server: prints `listening on` with port 4242
    /// for `--listen 127.0.0.1:0` (else the address it was given) and sleeps.
    pub(crate) fn fake_server(name: &str) -> PathBuf {
        use std::os::unix::fs::PermissionsExt;
        let dir = std::env::temp_dir().join(format!("xtask-supervisor-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("create temp dir");
        let path = dir.join(name);
        let script = r#"#!/bin/sh
addr="$2"
[ "$addr" = "127.0.0.1:0" ] && addr=127.0.0.1:4242
echo "args: $*"
echo "INFO server: listening on $addr" >&2
exec sleep 60
"#;
        std::fs::write(&path, script).expect("write script");
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755))
            .expect("chmod script");
        path
    }

    pub(crate) fn fake_spec(name: &str) -> ServerSpec {
        ServerSpec {
            program: fake_server(name),
            args: vec!["--cors-allow-origin".into(), "*".into()],
            env: vec![],
            dir: std::env::temp_dir(),
        }
    }

    #[test]
    fn parses_listen_lines() {
        let want: SocketAddr = "127.0.0.1:4242".parse().expect("addr");
        for line in [
            "2026-01-01T00:00:00Z  INFO server: listening on 127.0.0.1:4242",
            "listening on http://127.0.0.1:4242/",
            "listening on 127.0.0.1:4242, tls=false",
        ] {
            assert_eq!(parse_listen_addr(line), Some(want), "{line}");
        }
        assert_eq!(parse_listen_addr("listening on 127.0.0.1:0"), None);
        assert_eq!(parse_listen_addr("bound 127.0.0.1:4242"), None);
        assert_eq!(strip_ansi("\x1b[32m INFO\x1b[0m x"), " INFO x");
    }

    #[test]
    fn json_of_status() {
        let status = Status {
            running: true,
            pid: Some(7),
            addr: "127.0.0.1:9".parse().ok(),
            starts: 2,
            last_exit: Some("signal: 9 (SIGKILL)".into()),
        };
        assert_eq!(
            status.to_json(),
            r#"{"running":true,"pid":7,"addr":"127.0.0.1:9","url":"http://127.0.0.1:9","starts":2,"last_exit":"signal: 9 (SIGKILL)"}"#
        );
        assert_eq!(json_string("a\"b\\\n\u{1}"), r#""a\"b\\\n\u0001""#);
    }

    #[test]
    fn start_kill_restart_stop() {
        let mut sup = Supervisor::new(fake_spec("sup.sh"), None).expect("supervisor");
        sup.start().expect("start");
        let first = sup.status();
        assert!(first.running);
        assert_eq!(first.addr, "127.0.0.1:4242".parse().ok());
        assert_eq!(first.starts, 1);
        let pid = first.pid.expect("pid");

        sup.restart(false).expect("restart");
        let second = sup.status();
        assert!(second.running);
        assert_eq!(second.addr, first.addr);
        assert_ne!(second.pid, Some(pid));
        assert_eq!(second.starts, 2);
        assert!(
            second
                .last_exit
                .as_deref()
                .is_some_and(|e| e.contains("signal")),
            "{second:?}"
        );
        // The restart passed the bound address, not port 0 (the line comes on stdout,
        // read by another thread than the `listening on` line: wait for it).
        let expected = "args: --listen 127.0.0.1:4242 --cors-allow-origin *";
        let deadline = Instant::now() + Duration::from_secs(5);
        while !sup.log_text().contains(expected) && Instant::now() < deadline {
            thread::sleep(Duration::from_millis(10));
        }
        assert!(sup.log_text().contains(expected), "{}", sup.log_text());

        sup.kill();
        assert!(!sup.status().running);
        sup.start().expect("start again");
        assert!(sup.status().running);
        sup.stop().expect("stop");
        let stopped = sup.status();
        assert!(!stopped.running);
        assert_eq!(stopped.pid, None);
        assert_eq!(stopped.starts, 3);
    }

    #[test]
    fn fixed_address_and_exit_status() {
        use std::os::unix::fs::PermissionsExt;
        let dir = std::env::temp_dir().join(format!("xtask-supervisor-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("create temp dir");
        let path = dir.join("restart.sh");
        std::fs::write(
            &path,
            "#!/bin/sh\necho \"listening on $2\" >&2\nsleep 0.2\nexit 75\n",
        )
        .expect("write script");
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755))
            .expect("chmod script");
        let spec = ServerSpec {
            program: path,
            args: vec![],
            env: vec![],
            dir: std::env::temp_dir(),
        };
        let mut sup = Supervisor::new(spec, None)
            .expect("supervisor")
            .listen_on("127.0.0.1:4343");
        assert_eq!(sup.poll_exit(), None, "nothing started yet");
        for round in 1..=2 {
            sup.start().expect("start");
            assert_eq!(sup.addr(), "127.0.0.1:4343".parse().ok());
            let deadline = Instant::now() + Duration::from_secs(10);
            let status = loop {
                if let Some(status) = sup.poll_exit() {
                    break status;
                }
                assert!(Instant::now() < deadline, "the script did not exit");
                thread::sleep(Duration::from_millis(20));
            };
            assert_eq!(status.code(), Some(75));
            assert_eq!(sup.status().starts, round);
            assert!(!sup.status().running);
        }
    }

    #[test]
    fn start_failure_shows_output() {
        use std::os::unix::fs::PermissionsExt;
        let dir = std::env::temp_dir().join(format!("xtask-supervisor-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("create temp dir");
        let path = dir.join("fail.sh");
        std::fs::write(
            &path,
            "#!/bin/sh\necho 'error: bad flag --nope' >&2\nexit 2\n",
        )
        .expect("write script");
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755))
            .expect("chmod script");
        let mut sup = Supervisor::new(
            ServerSpec {
                program: path,
                args: vec![],
                env: vec![],
                dir: std::env::temp_dir(),
            },
            None,
        )
        .expect("supervisor");
        let err = sup.start().expect_err("must fail").to_string();
        assert!(err.contains("exited"), "{err}");
        assert!(err.contains("bad flag --nope"), "{err}");
        assert!(!sup.status().running);
    }
}
