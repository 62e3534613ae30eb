//! A real Redis for a test (Debian's `redis-server`): on a free port of 127.0.0.1, its
//! files in a fresh directory, killed and the directory removed when dropped. It can be
//! killed (`kill -9`), restarted on the same port with the same files, and wiped — what a
//! shared event log must survive.

use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// How a Redis keeps its data across a restart.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Persistence {
    /// Nothing on disk: a restart loses everything (the epoch check's case).
    None,
    /// An append-only file, fsync'd on every write: a `kill -9` loses nothing.
    AppendFsyncAlways,
}

/// A running `redis-server`.
#[derive(Debug)]
pub struct RedisServer {
    addr: SocketAddr,
    dir: PathBuf,
    persistence: Persistence,
    child: Option<Child>,
}

/// A free port of 127.0.0.1 (bound and released: another process may take it first,
/// which a start then reports).
pub fn free_port() -> std::io::Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

/// A fresh directory under the temp dir.
pub fn fresh_dir(tag: &str) -> std::io::Result<PathBuf> {
    use std::sync::atomic::{AtomicUsize, Ordering};
    static N: AtomicUsize = AtomicUsize::new(0);
    let dir = std::env::temp_dir().join(format!(
        "testkit-{tag}-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::SeqCst)
    ));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir)?;
    Ok(dir)
}

impl RedisServer {
    /// Starts `redis-server` with `persistence` and waits until it answers PING.
    ///
    /// # Errors
    /// If it is not installed (`cargo xtask setup` installs it), does not start, or does
    /// not answer within 10 s.
    pub fn start(persistence: Persistence) -> std::io::Result<Self> {
        let addr = SocketAddr::from(([127, 0, 0, 1], free_port()?));
        let mut redis = RedisServer {
            addr,
            dir: fresh_dir("redis")?,
            persistence,
            child: None,
        };
        redis.spawn()?;
        Ok(redis)
    }

    fn spawn(&mut self) -> std::io::Result<()> {
        let mut cmd = Command::new("redis-server");
        cmd.args(["--bind", "127.0.0.1", "--port"])
            .arg(self.addr.port().to_string())
            .arg("--dir")
            .arg(&self.dir)
            .args(["--save", "", "--protected-mode", "no", "--daemonize", "no"])
            .arg("--logfile")
            .arg(self.dir.join("redis.log"));
        match self.persistence {
            Persistence::None => cmd.args(["--appendonly", "no"]),
            Persistence::AppendFsyncAlways => {
                cmd.args(["--appendonly", "yes", "--appendfsync", "always"])
            }
        };
        let child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| {
                std::io::Error::new(
                    e.kind(),
                    format!("cannot run redis-server ({e}): `cargo xtask setup` installs it"),
                )
            })?;
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if self.command(&["PING"]).is_ok_and(|r| r == "+PONG") {
                return Ok(());
            }
            if let Some(child) = &mut self.child
                && let Ok(Some(status)) = child.try_wait()
            {
                return Err(std::io::Error::other(format!(
                    "redis-server exited ({status}); its log:\n{}",
                    std::fs::read_to_string(self.dir.join("redis.log")).unwrap_or_default()
                )));
            }
            if Instant::now() >= deadline {
                return Err(std::io::Error::other(
                    "redis-server did not answer PING in 10 s",
                ));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// `redis://127.0.0.1:PORT/0`.
    pub fn url(&self) -> String {
        format!("redis://{}/0", self.addr)
    }

    /// Its address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Where its files are.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// SIGKILL: no chance to write anything more.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts it again on the same port with the same files (killed first if it runs).
    ///
    /// # Errors
    /// See [`start`](Self::start).
    pub fn restart(&mut self) -> std::io::Result<()> {
        self.kill();
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            match self.spawn() {
                Ok(()) => return Ok(()),
                // The old socket may hold the port a moment.
                Err(_) if Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(100))
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// Its process id, while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// Every key of every database gone (`FLUSHALL`): a Redis whose data was lost.
    ///
    /// # Errors
    /// If it does not answer.
    pub fn wipe(&self) -> std::io::Result<()> {
        self.command(&["FLUSHALL"]).map(|_| ())
    }

    /// Sends one command (RESP) and returns the first line of the answer (`+OK`, `:3`,
    /// `$5` …).
    ///
    /// # Errors
    /// If it cannot connect or read.
    pub fn command(&self, args: &[&str]) -> std::io::Result<String> {
        let mut sock = TcpStream::connect_timeout(&self.addr, Duration::from_secs(1))?;
        sock.set_read_timeout(Some(Duration::from_secs(5)))?;
        let mut request = format!("*{}\r\n", args.len());
        for a in args {
            request.push_str(&format!("${}\r\n{a}\r\n", a.len()));
        }
        sock.write_all(request.as_bytes())?;
        let mut line = String::new();
        BufReader::new(&mut sock).read_line(&mut line)?;
        Ok(line.trim_end().to_owned())
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.kill();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn installed() -> bool {
        Command::new("redis-server")
            .arg("--version")
            .stdout(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    }

    #[test]
    fn keeps_its_data_across_a_kill_with_the_append_only_file_only() {
        if !installed() {
            eprintln!("redis-server is not installed: skipped (cargo xtask setup installs it)");
            return;
        }
        let mut durable = RedisServer::start(Persistence::AppendFsyncAlways).expect("start");
        assert_eq!(durable.command(&["SET", "k", "v"]).expect("set"), "+OK");
        durable.kill();
        durable.restart().expect("restart");
        assert_eq!(durable.command(&["GET", "k"]).expect("get"), "$1");
        durable.wipe().expect("wipe");
        assert_eq!(durable.command(&["GET", "k"]).expect("get"), "$-1");

        let mut volatile = RedisServer::start(Persistence::None).expect("start");
        volatile.command(&["SET", "k", "v"]).expect("set");
        volatile.restart().expect("restart");
        assert_eq!(volatile.command(&["GET", "k"]).expect("get"), "$-1");
    }
}
