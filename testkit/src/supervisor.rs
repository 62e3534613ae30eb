//! A server that can go away and come back on the same address: what a client under test
//! must survive. [`Supervisor`] starts the server (on a free port the first time), then
//! kills, stops (SIGTERM, a graceful drain) and starts it again with the same flags on
//! that same port, retrying a while when the old socket still holds it. Every process's
//! lines go to one [`LogFile`]. The browser tests drive it through the
//! [controller](crate::controller); `cargo xtask demo` through `testkit supervise`
//! (restart when the server exits asking for it).

use crate::capture::LogFile;
use crate::process::{ServerBuilder, ServerProcess, StartError};
use serde::Serialize;
use std::net::SocketAddr;
use std::process::ExitStatus;
use std::time::{Duration, Instant};

/// How long a start on the same port retries while the old socket still holds it.
const ADDR_IN_USE_RETRY: Duration = Duration::from_secs(10);
/// How long [`Supervisor::stop`] waits after SIGTERM before SIGKILL.
const STOP_TIMEOUT: Duration = Duration::from_secs(30);

/// A snapshot of the supervised server (the controller's `GET /status`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Status {
    /// Whether a process is running.
    pub running: bool,
    /// Its pid while running.
    pub pid: Option<u32>,
    /// The bound address (kept across restarts); `None` before the first start.
    pub addr: Option<SocketAddr>,
    /// `http://` + `addr`.
    pub url: Option<String>,
    /// How many processes were started.
    pub starts: u32,
    /// How the previous process ended (`signal: 9 (SIGKILL)`, `exit status: 0`).
    pub last_exit: Option<String>,
}

/// Owns the server process; see the module docs. Dropping it kills the process.
#[derive(Debug)]
pub struct Supervisor {
    template: ServerBuilder,
    /// `127.0.0.1:0` until the first start, then the bound address.
    listen: String,
    addr: Option<SocketAddr>,
    running: Option<ServerProcess>,
    starts: u32,
    last_exit: Option<String>,
    log: LogFile,
}

impl Supervisor {
    /// A supervisor for the server `template` describes (program, flags after
    /// `--listen`, environment), not started yet; every line goes to `log`.
    pub fn new(template: ServerBuilder, log: LogFile) -> Self {
        Supervisor {
            template,
            listen: "127.0.0.1:0".to_owned(),
            addr: None,
            running: None,
            starts: 0,
            last_exit: None,
            log,
        }
    }

    /// Listens on `addr` instead of a free port of 127.0.0.1 (before the first start).
    pub fn listen_on(mut self, addr: &str) -> Self {
        addr.clone_into(&mut self.listen);
        self
    }

    /// The bound address, once started.
    pub fn addr(&self) -> Option<SocketAddr> {
        self.addr
    }

    /// Every line of every process so far.
    pub fn log(&self) -> &LogFile {
        &self.log
    }

    /// The running process, if any.
    pub fn process(&mut self) -> Option<&mut ServerProcess> {
        self.reap();
        self.running.as_mut()
    }

    /// The current state (notices a process that died on its own).
    pub fn status(&mut self) -> Status {
        self.reap();
        Status {
            running: self.running.is_some(),
            pid: self.running.as_ref().map(ServerProcess::pid),
            addr: self.addr,
            url: self.addr.map(|a| format!("http://{a}")),
            starts: self.starts,
            last_exit: self.last_exit.clone(),
        }
    }

    /// Starts the server unless it is running, and waits until it listens. After the
    /// first start the address is fixed: later starts use the same port.
    ///
    /// # Errors
    /// If the server does not come up (after retrying a port still in use for 10 s).
    pub async fn start(&mut self) -> Result<(), StartError> {
        self.reap();
        if self.running.is_some() {
            return Ok(());
        }
        let retry_until = Instant::now() + ADDR_IN_USE_RETRY;
        loop {
            let attempt = self
                .template
                .clone()
                .listen(self.listen.clone())
                .log(self.log.clone())
                .try_start()
                .await;
            match attempt {
                Ok(process) => {
                    let addr = process.addr();
                    self.addr = Some(addr);
                    self.listen = addr.to_string();
                    self.starts += 1;
                    self.running = Some(process);
                    return Ok(());
                }
                Err(StartError::AddrInUse(_))
                    if self.addr.is_some() && Instant::now() < retry_until =>
                {
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                Err(e) => {
                    self.last_exit = Some(format!("did not start: {e}"));
                    return Err(e);
                }
            }
        }
    }

    /// SIGKILL (no drain) and reap. Does nothing when not running.
    pub fn kill(&mut self) {
        if let Some(mut process) = self.running.take() {
            process.kill();
            self.last_exit = process.try_status().map(|s| s.to_string());
        }
    }

    /// SIGTERM (graceful drain) and wait for the exit; SIGKILL after 30 s.
    pub async fn stop(&mut self) {
        if let Some(mut process) = self.running.take() {
            let status = process.stop(STOP_TIMEOUT).await;
            self.last_exit = status.map(|s| s.to_string());
        }
    }

    /// Kills (or, `graceful`, stops) the server and starts it again on the same port.
    ///
    /// # Errors
    /// See [`start`](Self::start).
    pub async fn restart(&mut self, graceful: bool) -> Result<(), StartError> {
        if graceful {
            self.stop().await;
        } else {
            self.kill();
        }
        self.start().await
    }

    /// Waits until the running process exits by itself; how it ended (`None` when none
    /// runs).
    pub async fn wait_exit(&mut self) -> Option<ExitStatus> {
        let process = self.running.as_mut()?;
        loop {
            if let Some(status) = process.wait_exit(Duration::from_secs(3600)).await {
                self.last_exit = Some(status.to_string());
                self.running = None;
                return Some(status);
            }
        }
    }

    /// Notices a process that exited by itself.
    fn reap(&mut self) {
        if let Some(process) = &mut self.running
            && let Some(status) = process.try_status()
        {
            self.last_exit = Some(status.to_string());
            self.running = None;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::fake_server;

    /// A stand-in server: listens (says so) on the address it was given, port 4242 for
    /// `127.0.0.1:0`, and sleeps until killed.
    fn fake() -> ServerBuilder {
        let script = fake_server(
            "supervised.sh",
            r#"addr="$2"; [ "$addr" = "127.0.0.1:0" ] && addr=127.0.0.1:4242
echo "INFO server: listening on $addr" >&2
trap 'echo draining >&2; exit 0' TERM
while true; do sleep 0.05; done"#,
        );
        ServerProcess::builder().program(script).echo(false)
    }

    #[tokio::test]
    async fn restarts_on_the_same_port_and_keeps_the_log() {
        let mut sup = Supervisor::new(fake(), LogFile::memory());
        assert_eq!(sup.status().starts, 0);
        sup.start().await.expect("start");
        let first = sup.status();
        assert!(first.running);
        assert_eq!(first.addr, "127.0.0.1:4242".parse().ok());
        assert_eq!(first.url.as_deref(), Some("http://127.0.0.1:4242"));

        sup.restart(false).await.expect("restart");
        let second = sup.status();
        assert_eq!(second.starts, 2);
        assert_eq!(second.addr, first.addr);
        assert_ne!(second.pid, first.pid);
        assert!(
            second
                .last_exit
                .as_deref()
                .is_some_and(|e| e.contains("signal")),
            "{second:?}"
        );

        sup.stop().await;
        let stopped = sup.status();
        assert!(!stopped.running);
        assert!(
            stopped
                .last_exit
                .as_deref()
                .is_some_and(|e| e.contains("exit status: 0")),
            "{stopped:?}"
        );
        let log = sup.log().text();
        assert_eq!(
            log.matches("listening on 127.0.0.1:4242").count(),
            2,
            "{log}"
        );
        assert!(log.contains("draining"), "{log}");
        // Stopped, it starts again on demand.
        sup.start().await.expect("start again");
        assert_eq!(sup.status().starts, 3);
    }

    #[tokio::test]
    async fn a_server_that_cannot_start_is_an_error_with_its_output() {
        let script = fake_server("broken.sh", "echo 'error: no such flag' >&2; exit 2");
        let mut sup = Supervisor::new(
            ServerProcess::builder().program(script).echo(false),
            LogFile::memory(),
        );
        let err = sup.start().await.expect_err("fails");
        assert!(err.to_string().contains("no such flag"), "{err}");
        assert!(!sup.status().running);
    }
}
