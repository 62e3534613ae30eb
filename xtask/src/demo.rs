//! `cargo xtask demo`: build the dashboard and the release server, run the server with demo
//! settings under a supervisor, and print the page's URL.
//!
//! 1. Setup: the usual steps plus what the page needs (wasm-bindgen-cli, trunk, wasm-opt;
//!    not Chromium).
//! 2. Build the page (`trunk build --release` into `web/dist`, see [`crate::page`]) and the
//!    release server.
//! 3. Serve: the server runs with [`DEMO_FLAGS`] — short keepalive values so that every
//!    mechanism shows within seconds — a ticker, the page (`--web-root web/dist`), a
//!    file-backed event log in `target/demo/` (fresh for each demo, kept across restarts
//!    so the feed resumes with nothing lost), and chaos on with a fresh random token.
//!    The token goes into `target/demo/chaos.toml` (mode 0600, read with `--config`, so it
//!    is not on the server's command line) and into the URL printed here, in the fragment
//!    (`/#chaos=TOKEN`), which browsers never send to a server: only whoever opens that URL
//!    can break things.
//! 4. Supervise: xtask becomes (`exec`) `testkit supervise`, the harness's supervisor:
//!    when the server exits with code 75 (the page's "Restart server", chaos RESTART: a
//!    graceful stop), it is started again on the same port; any other exit ends the demo
//!    with that code.
//!
//! Ctrl-C: the terminal sends SIGINT to the whole process group. The server drains
//! gracefully on it (GoAway to every subscription, GOAWAY to every connection) and exits 0,
//! and `testkit` (which handles SIGINT rather than dying of it) exits with it.

use std::ffi::OsString;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use crate::browser::random_token;
use crate::cmd::Cmd;
use crate::error::{Error, Result, bail};
use crate::page;
use crate::setup::{self, Setup};
use crate::workspace::Workspace;

/// The address the demo listens on unless `--listen` says otherwise.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:8080";

/// The server flags of the demo (after `--listen ADDR`). The page's client defaults are
/// Time 2 s, Timeout 2 s: a dead connection shows within 4 s.
///
/// The ticker (2.5 s) is slower than the client's Time (2 s) on purpose: a heartbeat goes
/// out between two ticks, so the RTT sparkline fills (a client that keeps receiving never
/// needs to send one). The stream heartbeat (5 s) only speaks when the ticker does not.
const DEMO_FLAGS: &[&str] = &[
    "--keepalive-time",
    "10s",
    "--keepalive-timeout",
    "5s",
    "--max-connection-idle",
    "60s",
    "--max-connection-age",
    "5m",
    "--max-connection-age-grace",
    "30s",
    "--min-ping-interval",
    "1s",
    "--permit-keepalive-without-stream",
    "--stream-heartbeat-interval",
    "5s",
    "--tick-interval",
    "2500ms",
    "--max-stream-age",
    "60s",
    "--shutdown-grace",
    "3s",
];

/// The server's exit code when it stops to be restarted (`server::RESTART_EXIT_CODE`).
const RESTART_EXIT_CODE: &str = "75";

/// Options of `cargo xtask demo`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DemoOptions {
    /// `--listen ADDR` for the server.
    pub listen: String,
    /// Extra server arguments (after `--`), appended last so they win.
    pub server_args: Vec<OsString>,
    /// `--tls`: serve https with a self-signed certificate made for the demo.
    pub tls: bool,
    /// `--replicas N`: N replicas behind nginx, sharing a Redis.
    pub replicas: Option<usize>,
}

impl Default for DemoOptions {
    fn default() -> Self {
        Self {
            listen: DEFAULT_LISTEN.to_owned(),
            server_args: Vec::new(),
            tls: false,
            replicas: None,
        }
    }
}

/// The address a browser or grpcurl on this machine should use for `listen`:
/// a wildcard listen address is reached through loopback.
fn connect_address(listen: &str) -> String {
    if let Some(port) = listen.strip_prefix("0.0.0.0:") {
        format!("127.0.0.1:{port}")
    } else if let Some(port) = listen.strip_prefix("[::]:") {
        format!("[::1]:{port}")
    } else {
        listen.to_owned()
    }
}

/// The page's URL, with the chaos token in the fragment.
fn page_url(addr: &str, token: &str, tls: bool) -> String {
    let scheme = if tls { "https" } else { "http" };
    format!("{scheme}://{addr}/#chaos={token}")
}

/// `--tls`: a fresh self-signed certificate (P-256, 30 days) for `localhost`,
/// `127.0.0.1` and `::1` in `dir`, made with the `openssl` command (xtask has no
/// dependencies; Debian and most systems have it). Returns the certificate and key paths.
fn self_signed_certificate(dir: &Path) -> Result<(PathBuf, PathBuf)> {
    let (cert, key) = (dir.join("tls-cert.pem"), dir.join("tls-key.pem"));
    let _ = std::fs::remove_file(&key);
    let status = std::process::Command::new("openssl")
        .args([
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-days",
            "30",
            "-subj",
            "/CN=localhost",
            "-addext",
            "subjectAltName=DNS:localhost,IP:127.0.0.1,IP:::1",
            "-keyout",
        ])
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .map_err(|e| {
            Error::new(format!(
                "`cargo xtask demo --tls` makes its certificate with the `openssl` command, \
                 which did not run ({e}): install it (Debian: apt-get install openssl)"
            ))
        })?;
    if !status.success() {
        bail!("openssl could not make the demo certificate ({status})");
    }
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o600))
        .map_err(|e| Error::new(format!("cannot protect {}: {e}", key.display())))?;
    Ok((cert, key))
}

/// Runs `cargo xtask demo`: builds, then serves until Ctrl-C.
pub fn run(ws: &Workspace, opts: &DemoOptions) -> Result<()> {
    setup::run(ws, Setup { browser: false })?;
    setup::page_tools(ws)?;
    let dist = page::build(ws)?;
    let sizes = page::wasm_sizes(&dist)?;
    ws.cargo()
        .args(["build", "--release", "-p", "server", "--bin", "server"])
        .run()?;
    ws.cargo()
        .args(["build", "-p", "testkit", "--bin", "testkit"])
        .run()?;
    println!(
        "\ndashboard: {} (wasm {}, {} gzip)",
        ws.rel(&dist),
        page::kb(sizes.raw),
        page::kb(sizes.gzip)
    );
    Err(serve(ws, opts)?.exec())
}

/// Prints where the demo will be, and returns the `testkit supervise` command that runs
/// the server with the demo's settings.
fn serve(ws: &Workspace, opts: &DemoOptions) -> Result<Cmd> {
    let target = ws.target_dir();
    let exe = |profile: &str, name: &str| {
        target
            .join(profile)
            .join(format!("{name}{}", std::env::consts::EXE_SUFFIX))
    };
    let (server, testkit) = (exe("release", "server"), exe("debug", "testkit"));
    let dir = target.join("demo");
    std::fs::create_dir_all(&dir)
        .map_err(|e| Error::new(format!("cannot create {}: {e}", dir.display())))?;
    let events = dir.join("events.log");
    let _ = std::fs::remove_file(&events);
    let token = random_token();
    let chaos_config = dir.join("chaos.toml");
    write_private(
        &chaos_config,
        &format!("chaos = true\nchaos_token = \"{token}\"\n"),
    )?;
    let path = |p: &Path| p.display().to_string();
    let mut args: Vec<String> = DEMO_FLAGS.iter().map(|s| (*s).to_owned()).collect();
    args.extend([
        "--config".to_owned(),
        path(&chaos_config),
        "--web-root".to_owned(),
        path(&page::dist_dir(ws)),
    ]);
    if opts.replicas.is_none() {
        // With replicas the log is in their Redis.
        args.extend(["--event-log".to_owned(), path(&events)]);
    }
    if opts.tls {
        let (cert, key) = self_signed_certificate(&dir)?;
        args.extend([
            "--tls-cert".to_owned(),
            path(&cert),
            "--tls-key".to_owned(),
            path(&key),
        ]);
    }
    args.extend(
        opts.server_args
            .iter()
            .map(|a| a.to_string_lossy().into_owned()),
    );
    let log = dir.join("server.log");
    let addr = connect_address(&opts.listen);
    let mut announce = String::new();
    let _ = writeln!(announce, "\nDemo starting (Ctrl-C stops it):");
    let _ = writeln!(
        announce,
        "  dashboard: {}",
        page_url(&addr, &token, opts.tls)
    );
    let _ = writeln!(
        announce,
        "             (the part after # is the chaos token: it stays in your browser)"
    );
    if opts.replicas.is_none() {
        let _ = writeln!(announce, "  server log: {}", ws.rel(&log));
    } else {
        let _ = writeln!(
            announce,
            "  server log: below, each line marked with its replica's process id"
        );
    }
    if opts.tls {
        let _ = writeln!(
            announce,
            "             (https with a self-signed certificate made now, {}: \
             the browser asks once; then the page runs over HTTP/2)",
            ws.rel(&dir.join("tls-cert.pem"))
        );
        let _ = writeln!(
            announce,
            "  health:    grpcurl -insecure {addr} grpc.health.v1.Health/Check"
        );
    } else {
        let _ = writeln!(
            announce,
            "  health:    grpcurl -plaintext {addr} grpc.health.v1.Health/Check"
        );
        let _ = writeln!(
            announce,
            "  peer:      {} {} health --target {addr}",
            ws.rel(&ws.venv_python()),
            ws.rel(&ws.peer_script())
        );
    }
    if let Some(n) = opts.replicas {
        let _ = writeln!(
            announce,
            "  replicas:  {n} behind nginx (the page's origin), one Redis; the page shows which replica serves it"
        );
        print!("{announce}");
        return Ok(Cmd::new(testkit)
            .arg("cluster")
            .arg("--server")
            .arg(server)
            .args(["--replicas", &n.to_string(), "--listen", &opts.listen])
            .arg("--")
            .args(&args)
            .dir(&ws.root));
    }
    print!("{announce}");
    Ok(Cmd::new(testkit)
        .arg("supervise")
        .arg("--server")
        .arg(server)
        .args([
            "--listen",
            &opts.listen,
            "--restart-exit-code",
            RESTART_EXIT_CODE,
        ])
        .arg("--log")
        .arg(&log)
        .arg("--")
        .args(&args)
        .dir(&ws.root))
}

/// Writes `text` to `path`, readable by its owner only.
fn write_private(path: &Path, text: &str) -> Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let _ = std::fs::remove_file(path);
    std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .and_then(|mut f| f.write_all(text.as_bytes()))
        .map_err(|e| Error::new(format!("cannot write {}: {e}", path.display())))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wildcard_listen_is_reached_through_loopback() {
        assert_eq!(connect_address("0.0.0.0:8080"), "127.0.0.1:8080");
        assert_eq!(connect_address("[::]:9"), "[::1]:9");
        assert_eq!(connect_address("127.0.0.1:8080"), "127.0.0.1:8080");
    }

    #[test]
    fn the_token_travels_in_the_fragment() {
        assert_eq!(
            page_url("127.0.0.1:8080", "abc", false),
            "http://127.0.0.1:8080/#chaos=abc"
        );
    }

    #[test]
    fn tls_page_url_is_https() {
        assert_eq!(
            page_url("127.0.0.1:8080", "abc", true),
            "https://127.0.0.1:8080/#chaos=abc"
        );
    }

    #[test]
    fn self_signed_certificate_is_made_with_openssl() {
        if std::process::Command::new("openssl")
            .arg("version")
            .output()
            .is_err()
        {
            return; // no openssl here: `--tls` says what to install
        }
        let dir = std::env::temp_dir().join(format!("xtask-demo-tls-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("dir");
        let (cert, key) = self_signed_certificate(&dir).expect("certificate");
        let cert = std::fs::read_to_string(cert).expect("cert");
        assert!(cert.starts_with("-----BEGIN CERTIFICATE-----"), "{cert}");
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&key).expect("key").permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn private_files_are_owner_only() {
        use std::os::unix::fs::PermissionsExt;
        let path = std::env::temp_dir().join(format!("xtask-demo-private-{}", std::process::id()));
        write_private(&path, "x").expect("write");
        write_private(&path, "chaos = true\n").expect("overwrite");
        let meta = std::fs::metadata(&path).expect("metadata");
        assert_eq!(meta.permissions().mode() & 0o777, 0o600);
        assert_eq!(
            std::fs::read_to_string(&path).expect("read"),
            "chaos = true\n"
        );
        let _ = std::fs::remove_file(&path);
    }
}
