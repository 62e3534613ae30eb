//! The bench's child processes (servers, load generator) and what it reads about them:
//! CPU time and RSS from `/proc`, counters from `GET /metrics`. Every child is killed when
//! its [`Child`] handle is dropped, also when the bench fails midway.

use crate::error::{Error, Result, bail};
use std::collections::HashMap;
use std::fs::File;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::thread;
use std::time::{Duration, Instant};

/// Open files asked for by the bench's children: ten thousand sessions are twenty
/// thousand sockets on each side.
pub const NOFILE: u32 = 65_536;

/// A running child, killed on drop.
#[derive(Debug)]
pub struct Child {
    name: String,
    child: std::process::Child,
    /// Where its stderr (and stdout unless piped) goes.
    pub log: PathBuf,
}

impl Child {
    /// Starts `program args` with its output appended to `log`; with a raised open-file
    /// limit (through `sh -c 'ulimit -n …; exec …'`, which needs the privilege to raise
    /// the hard limit; without it the child keeps the limit it inherits).
    pub fn spawn(
        name: &str,
        program: &Path,
        args: &[String],
        log: &Path,
        pipe_stdout: bool,
    ) -> Result<Child> {
        let file = File::options()
            .create(true)
            .append(true)
            .open(log)
            .map_err(|e| Error::new(format!("cannot open {}: {e}", log.display())))?;
        let err = file
            .try_clone()
            .map_err(|e| Error::new(format!("cannot open {}: {e}", log.display())))?;
        let script = format!(
            "ulimit -Hn {NOFILE} 2>/dev/null; ulimit -Sn {NOFILE} 2>/dev/null; exec \"$0\" \"$@\""
        );
        let mut cmd = Command::new("sh");
        cmd.arg("-c")
            .arg(script)
            .arg(program)
            .args(args)
            .env("NO_COLOR", "1")
            .stdin(Stdio::null())
            .stderr(err);
        if pipe_stdout {
            cmd.stdout(Stdio::piped());
        } else {
            cmd.stdout(file);
        }
        let child = cmd
            .spawn()
            .map_err(|e| Error::new(format!("cannot start {}: {e}", program.display())))?;
        Ok(Child {
            name: name.to_string(),
            child,
            log: log.to_path_buf(),
        })
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Kills it (SIGKILL) and waits for it.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Whether it has exited.
    pub fn exited(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(Some(_)))
    }

    /// Its stdout as lines arriving on a channel (when spawned with `pipe_stdout`).
    pub fn lines(&mut self) -> Receiver<String> {
        let (tx, rx) = mpsc::channel();
        if let Some(out) = self.child.stdout.take() {
            thread::spawn(move || {
                for line in BufReader::new(out).lines() {
                    let Ok(line) = line else { break };
                    if tx.send(line).is_err() {
                        break;
                    }
                }
            });
        }
        rx
    }

    /// Waits for the next line until `deadline`; an error names the process and its log.
    pub fn next_line(&mut self, rx: &Receiver<String>, deadline: Instant) -> Result<String> {
        let left = deadline.saturating_duration_since(Instant::now());
        match rx.recv_timeout(left) {
            Ok(line) => Ok(line),
            Err(RecvTimeoutError::Timeout) => bail!(
                "{} gave no answer in time (log: {})",
                self.name,
                self.log.display()
            ),
            Err(RecvTimeoutError::Disconnected) => {
                let _ = self.child.wait();
                bail!("{} ended early (log: {})", self.name, self.log.display())
            }
        }
    }
}

impl Drop for Child {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A free port on 127.0.0.1 (bound, then released).
pub fn free_port() -> Result<u16> {
    TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .map_err(|e| Error::new(format!("no free port on 127.0.0.1: {e}")))
}

/// Waits until `addr` accepts connections.
pub fn wait_listening(addr: SocketAddr, child: &mut Child, timeout: Duration) -> Result<()> {
    let deadline = Instant::now() + timeout;
    loop {
        if TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok() {
            return Ok(());
        }
        if child.exited() {
            bail!(
                "{} exited before listening on {addr} (log: {})",
                child.name,
                child.log.display()
            );
        }
        if Instant::now() >= deadline {
            bail!(
                "{} is not listening on {addr} after {timeout:?}",
                child.name
            );
        }
        thread::sleep(Duration::from_millis(20));
    }
}

/// CPU time and resident memory of a process.
#[derive(Debug, Clone, Copy, Default)]
pub struct Usage {
    /// user + system CPU seconds.
    pub cpu_s: f64,
    /// Resident set, KiB.
    pub rss_kib: u64,
}

/// Reads `/proc/<pid>/stat` (utime + stime) and `/proc/<pid>/status` (VmRSS).
pub fn usage(pid: u32) -> Option<Usage> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the command name (which may hold spaces) start at the state, field 3.
    let rest = &stat[stat.rfind(')')? + 2..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks: f64 = fields.get(11)?.parse::<f64>().ok()? + fields.get(12)?.parse::<f64>().ok()?;
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let rss_kib = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())?;
    Some(Usage {
        cpu_s: ticks / clock_ticks(),
        rss_kib,
    })
}

/// CPU seconds the whole machine spent busy (not idle, not waiting for I/O) since boot,
/// from the first line of `/proc/stat`.
pub fn machine_busy_s() -> Option<f64> {
    let stat = std::fs::read_to_string("/proc/stat").ok()?;
    let line = stat.lines().next()?.strip_prefix("cpu ")?;
    let v: Vec<f64> = line
        .split_whitespace()
        .filter_map(|x| x.parse().ok())
        .collect();
    // user nice system idle iowait irq softirq steal …
    let busy: f64 = v.iter().take(8).sum::<f64>() - v.get(3)? - v.get(4)?;
    Some(busy / clock_ticks())
}

/// `sysconf(_SC_CLK_TCK)` without libc: `getconf CLK_TCK`, else Linux's 100.
fn clock_ticks() -> f64 {
    Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(100.0)
}

/// `GET /metrics` of the server at `addr`: sample (`name{labels}`) → value.
pub fn scrape(addr: SocketAddr) -> Option<HashMap<String, f64>> {
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(2)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    write!(
        s,
        "GET /metrics HTTP/1.1\r\nhost: {addr}\r\nconnection: close\r\n\r\n"
    )
    .ok()?;
    let mut text = String::new();
    s.read_to_string(&mut text).ok()?;
    let body = text.split_once("\r\n\r\n")?.1;
    Some(
        body.lines()
            .filter(|l| !l.starts_with('#'))
            .filter_map(|l| {
                let (k, v) = l.rsplit_once(' ')?;
                Some((k.to_string(), v.parse().ok()?))
            })
            .collect(),
    )
}
