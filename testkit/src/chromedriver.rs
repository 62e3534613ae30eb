//! A ChromeDriver process for browser tests: on a free port of loopback, with a fresh
//! Chromium profile directory, killed on drop together with the browsers it started.
//!
//! Debian's `chromedriver` and `chromium` (`cargo xtask setup --browser` installs both).
//! [`ChromeDriver::chrome_args`] gives the flags headless Chromium needs on this kind of
//! machine (no sandbox as root, no GPU, no background network traffic: the network is
//! closed). Chromium processes outlive a killed ChromeDriver, so dropping a
//! [`ChromeDriver`] also kills every process started with its profile directory — a path
//! unique to it, so nothing else is touched.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant, SystemTime};

/// How long [`ChromeDriver::start`] waits for `/status` to say ready.
const STARTUP_TIMEOUT: Duration = Duration::from_secs(20);

/// A running ChromeDriver.
#[derive(Debug)]
pub struct ChromeDriver {
    child: Child,
    addr: SocketAddr,
    profile: PathBuf,
}

/// `$CHROMEDRIVER`, else the first `chromedriver` on `PATH`.
pub fn find_chromedriver() -> Option<PathBuf> {
    std::env::var_os("CHROMEDRIVER")
        .map(PathBuf::from)
        .filter(|p| p.is_file())
        .or_else(|| find_on_path("chromedriver"))
}

/// `$CHROMIUM`, else the first `chromium` on `PATH`.
pub fn find_chromium() -> Option<PathBuf> {
    std::env::var_os("CHROMIUM")
        .map(PathBuf::from)
        .filter(|p| p.is_file())
        .or_else(|| find_on_path("chromium"))
}

fn find_on_path(name: &str) -> Option<PathBuf> {
    std::env::split_paths(&std::env::var_os("PATH")?)
        .map(|dir| dir.join(name))
        .find(|p| p.is_file())
}

impl ChromeDriver {
    /// Starts `program` on a free port and waits until it is ready. ChromeDriver also
    /// binds the port on `::1` and exits when that is taken, so a port that turns out to
    /// be busy is replaced by another, a few times.
    ///
    /// # Errors
    /// If it cannot be spawned, exits every time, or is not ready within 20 s.
    pub fn start(program: &Path) -> std::io::Result<ChromeDriver> {
        let mut last = None;
        for _ in 0..5 {
            match Self::start_once(program) {
                Ok(driver) => return Ok(driver),
                Err(e) => last = Some(e),
            }
        }
        Err(last.unwrap_or_else(|| std::io::Error::other("chromedriver did not start")))
    }

    fn start_once(program: &Path) -> std::io::Result<ChromeDriver> {
        let port = free_port()?;
        let nanos = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .unwrap_or_default()
            .as_nanos();
        let profile =
            std::env::temp_dir().join(format!("keepalive-chromium-{}-{nanos}", std::process::id()));
        std::fs::create_dir_all(&profile)?;
        let child = Command::new(program)
            // Without --allowed-ips ChromeDriver listens on the loopback addresses only.
            .arg(format!("--port={port}"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()?;
        let mut driver = ChromeDriver {
            child,
            addr: SocketAddr::from(([127, 0, 0, 1], port)),
            profile,
        };
        let deadline = Instant::now() + STARTUP_TIMEOUT;
        loop {
            if driver.ready() {
                return Ok(driver);
            }
            if let Ok(Some(status)) = driver.child.try_wait() {
                return Err(std::io::Error::other(format!(
                    "{} exited at startup ({status})",
                    program.display()
                )));
            }
            if Instant::now() >= deadline {
                return Err(std::io::Error::other(format!(
                    "{} was not ready on port {port} within {STARTUP_TIMEOUT:?}",
                    program.display()
                )));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// The WebDriver endpoint, `http://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The Chromium flags for a headless browser on this machine, with this driver's
    /// profile directory and a `width`×`height` window.
    pub fn chrome_args(&self, width: u32, height: u32) -> Vec<String> {
        [
            "--headless=new",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-dev-shm-usage",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--disable-extensions",
            "--hide-scrollbars",
        ]
        .into_iter()
        .map(str::to_owned)
        .chain([
            format!("--user-data-dir={}", self.profile.display()),
            format!("--window-size={width},{height}"),
        ])
        .collect()
    }

    /// `GET /status` answers `"ready":true`.
    fn ready(&self) -> bool {
        let Ok(mut s) = TcpStream::connect_timeout(&self.addr, Duration::from_millis(200)) else {
            return false;
        };
        let _ = s.set_read_timeout(Some(Duration::from_secs(2)));
        let request = format!(
            "GET /status HTTP/1.1\r\nhost: {}\r\nconnection: close\r\n\r\n",
            self.addr
        );
        if s.write_all(request.as_bytes()).is_err() {
            return false;
        }
        let mut body = String::new();
        let _ = s.read_to_string(&mut body);
        body.replace(' ', "").contains("\"ready\":true")
    }
}

impl Drop for ChromeDriver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        kill_processes_mentioning(&self.profile.display().to_string());
        let _ = std::fs::remove_dir_all(&self.profile);
    }
}

/// A port free on 127.0.0.1 and, where IPv6 is there, on ::1 (ChromeDriver binds both).
fn free_port() -> std::io::Result<u16> {
    for _ in 0..20 {
        let port = TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
        match TcpListener::bind(("::1", port)) {
            Ok(_) => return Ok(port),
            Err(e) if e.kind() == std::io::ErrorKind::AddrInUse => continue,
            // No IPv6 loopback: ChromeDriver will not use it either.
            Err(_) => return Ok(port),
        }
    }
    Err(std::io::Error::other(
        "no port free on both 127.0.0.1 and ::1",
    ))
}

/// SIGKILLs every process whose command line contains `marker` (Chromium and its helpers,
/// which all carry the profile directory).
fn kill_processes_mentioning(marker: &str) {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return;
    };
    let me = std::process::id().to_string();
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(pid) = name
            .to_str()
            .filter(|n| n.bytes().all(|b| b.is_ascii_digit()))
        else {
            continue;
        };
        if pid == me {
            continue;
        }
        let Ok(cmdline) = std::fs::read(entry.path().join("cmdline")) else {
            continue;
        };
        if String::from_utf8_lossy(&cmdline).contains(marker) {
            let _ = Command::new("kill")
                .args(["-KILL", pid])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status();
        }
    }
}
