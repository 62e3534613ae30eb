//! The browser tests' test controller: a tiny HTTP/1.1 server on `127.0.0.1` (std only)
//! through which a test in the browser controls the server process that xtask owns.
//!
//! | request | effect | answer |
//! |---|---|---|
//! | `GET /status` | | status JSON |
//! | `POST /kill` | SIGKILL, no drain | status JSON once it is gone |
//! | `POST /stop` | SIGTERM, graceful drain | status JSON once it exited |
//! | `POST /start` | start it if not running, same port and flags | status JSON once it listens |
//! | `POST /restart` | kill, then start on the same port (`?graceful=1`: stop instead of kill) | status JSON once it listens |
//! | `GET /log` | | every line the server processes printed, `[server PID] ...` |
//! | `GET /rss` | | `{"pid":123,"rss_kb":4567}`: the running server's resident memory (`VmRSS` in `/proc/PID/status`), for the soak test |
//!
//! Status JSON: `{"running":true,"pid":123,"addr":"127.0.0.1:PORT",
//! "url":"http://127.0.0.1:PORT","starts":1,"last_exit":null}` (`pid` is `null` while not
//! running; `last_exit` says how the previous process ended, e.g. `"signal: 9 (SIGKILL)"`).
//!
//! Every answer carries `Access-Control-Allow-Origin: *` (the test page is on the runner's
//! origin) and `Connection: close`; `OPTIONS` answers any preflight. Errors are a status
//! 500 (or 404/405) with a plain-text message.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::{self, JoinHandle};
use std::time::Duration;

use crate::error::{Error, Result};
use crate::supervisor::Supervisor;

/// Longest request head accepted.
const MAX_HEAD: usize = 16 * 1024;
/// Longest request body read (and ignored).
const MAX_BODY: u64 = 64 * 1024;

/// The running controller; stops its thread when dropped.
#[derive(Debug)]
pub struct Controller {
    addr: SocketAddr,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Controller {
    /// Listens on `listen` (`127.0.0.1:0`: a free port) and serves requests for
    /// `supervisor`, one thread each.
    pub fn start(supervisor: Arc<Mutex<Supervisor>>, listen: &str) -> Result<Self> {
        let listener = TcpListener::bind(listen)
            .map_err(|e| Error::new(format!("test controller: cannot listen on {listen}: {e}")))?;
        let addr = listener
            .local_addr()
            .map_err(|e| Error::new(format!("test controller: {e}")))?;
        let stop = Arc::new(AtomicBool::new(false));
        let thread = {
            let stop = stop.clone();
            thread::spawn(move || {
                for stream in listener.incoming() {
                    if stop.load(Ordering::SeqCst) {
                        break;
                    }
                    if let Ok(stream) = stream {
                        let supervisor = supervisor.clone();
                        thread::spawn(move || serve(stream, &supervisor));
                    }
                }
            })
        };
        Ok(Self {
            addr,
            stop,
            thread: Some(thread),
        })
    }

    /// `http://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }
}

impl Drop for Controller {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // Wake the blocking accept.
        let _ = TcpStream::connect_timeout(&self.addr, Duration::from_secs(1));
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// An answer: status code, content type, body.
#[derive(Debug, PartialEq, Eq)]
struct Answer {
    code: u16,
    content_type: &'static str,
    body: String,
}

impl Answer {
    fn json(body: String) -> Self {
        Self {
            code: 200,
            content_type: "application/json",
            body,
        }
    }

    fn text(code: u16, body: impl Into<String>) -> Self {
        Self {
            code,
            content_type: "text/plain; charset=utf-8",
            body: body.into(),
        }
    }
}

fn lock(m: &Mutex<Supervisor>) -> MutexGuard<'_, Supervisor> {
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// What a request does. `target` is the request target (path and query).
fn route(method: &str, target: &str, supervisor: &Mutex<Supervisor>) -> Answer {
    let (path, query) = target.split_once('?').unwrap_or((target, ""));
    let flag = |name: &str| {
        query.split('&').any(|kv| {
            let (k, v) = kv.split_once('=').unwrap_or((kv, "1"));
            k == name && matches!(v, "1" | "true" | "")
        })
    };
    let status = |sup: &mut Supervisor| Answer::json(sup.status().to_json());
    let fail = |e: Error| Answer::text(500, e.to_string());
    match (method, path) {
        ("OPTIONS", _) => Answer::text(204, ""),
        ("GET", "/status") => status(&mut lock(supervisor)),
        ("GET", "/log") => Answer::text(200, lock(supervisor).log_text()),
        ("GET", "/rss") => {
            let pid = lock(supervisor).status().pid;
            match pid.and_then(|pid| rss_kb(pid).map(|kb| (pid, kb))) {
                Some((pid, kb)) => Answer::json(format!("{{\"pid\":{pid},\"rss_kb\":{kb}}}")),
                None => Answer::text(500, "the server is not running (no /proc/PID/status)"),
            }
        }
        ("POST", "/kill") => {
            let mut sup = lock(supervisor);
            sup.kill();
            status(&mut sup)
        }
        ("POST", "/stop") => {
            let mut sup = lock(supervisor);
            match sup.stop() {
                Ok(()) => status(&mut sup),
                Err(e) => fail(e),
            }
        }
        ("POST", "/start") => {
            let mut sup = lock(supervisor);
            match sup.start() {
                Ok(()) => status(&mut sup),
                Err(e) => fail(e),
            }
        }
        ("POST", "/restart") => {
            let mut sup = lock(supervisor);
            match sup.restart(flag("graceful")) {
                Ok(()) => status(&mut sup),
                Err(e) => fail(e),
            }
        }
        (_, "/status" | "/log" | "/rss" | "/kill" | "/stop" | "/start" | "/restart") => {
            Answer::text(405, format!("{method} not allowed on {path}"))
        }
        _ => Answer::text(
            404,
            format!(
                "no {path} here; try GET /status, GET /log, GET /rss, POST /kill, /stop, /start, /restart"
            ),
        ),
    }
}

/// `VmRSS` of process `pid` in KiB, from `/proc/PID/status`.
fn rss_kb(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    parse_vm_rss(&status)
}

/// The `VmRSS:` line of a `/proc/PID/status` text, in KiB.
fn parse_vm_rss(status: &str) -> Option<u64> {
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
}

/// Reads one request from `stream`, answers it, closes the connection.
fn serve(stream: TcpStream, supervisor: &Mutex<Supervisor>) {
    let _ = stream.set_read_timeout(Some(Duration::from_secs(10)));
    let Ok(write_half) = stream.try_clone() else {
        return;
    };
    let mut reader = BufReader::new(stream);
    let answer = match read_head(&mut reader) {
        Ok((method, target, content_length)) => {
            // Drain a body, if any, so the client sees a clean close.
            let _ = std::io::copy(
                &mut reader.by_ref().take(content_length.min(MAX_BODY)),
                &mut std::io::sink(),
            );
            route(&method, &target, supervisor)
        }
        Err(message) => Answer::text(400, message),
    };
    let _ = write_answer(write_half, &answer);
}

/// Parses the request line and headers: method, target, `Content-Length`.
fn read_head(reader: &mut impl BufRead) -> std::result::Result<(String, String, u64), String> {
    let mut line = String::new();
    let mut total = 0;
    let mut next_line = |line: &mut String| -> std::result::Result<(), String> {
        line.clear();
        let n = (&mut *reader)
            .take((MAX_HEAD - total) as u64)
            .read_line(line)
            .map_err(|e| format!("cannot read the request: {e}"))?;
        total += n;
        if n == 0 || total >= MAX_HEAD {
            return Err("incomplete or oversized request head".to_owned());
        }
        Ok(())
    };
    next_line(&mut line)?;
    let mut words = line.split_whitespace();
    let (Some(method), Some(target)) = (words.next(), words.next()) else {
        return Err(format!("bad request line {:?}", line.trim_end()));
    };
    let (method, target) = (method.to_owned(), target.to_owned());
    let mut content_length = 0;
    loop {
        next_line(&mut line)?;
        let header = line.trim_end();
        if header.is_empty() {
            return Ok((method, target, content_length));
        }
        if let Some((name, value)) = header.split_once(':')
            && name.trim().eq_ignore_ascii_case("content-length")
        {
            content_length = value.trim().parse().unwrap_or(0);
        }
    }
}

fn reason(code: u16) -> &'static str {
    match code {
        200 => "OK",
        204 => "No Content",
        400 => "Bad Request",
        404 => "Not Found",
        405 => "Method Not Allowed",
        _ => "Internal Server Error",
    }
}

fn write_answer(mut stream: TcpStream, answer: &Answer) -> std::io::Result<()> {
    let head = format!(
        "HTTP/1.1 {} {}\r\n\
         Content-Type: {}\r\n\
         Content-Length: {}\r\n\
         Access-Control-Allow-Origin: *\r\n\
         Access-Control-Allow-Methods: GET, POST, OPTIONS\r\n\
         Access-Control-Allow-Headers: *\r\n\
         Access-Control-Allow-Private-Network: true\r\n\
         Access-Control-Max-Age: 600\r\n\
         Cross-Origin-Resource-Policy: cross-origin\r\n\
         Cache-Control: no-store\r\n\
         Connection: close\r\n\r\n",
        answer.code,
        reason(answer.code),
        answer.content_type,
        answer.body.len()
    );
    stream.write_all(head.as_bytes())?;
    stream.write_all(answer.body.as_bytes())?;
    stream.flush()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::supervisor::tests::fake_spec;

    #[test]
    fn vm_rss_is_read_in_kib() {
        let status = "Name:\tserver\nVmPeak:\t  9000 kB\nVmRSS:\t    4567 kB\nThreads:\t3\n";
        assert_eq!(parse_vm_rss(status), Some(4567));
        assert_eq!(parse_vm_rss("Name:\tx\n"), None);
        assert!(rss_kb(std::process::id()).is_some_and(|kb| kb > 0));
    }

    /// Sends a raw request and returns the whole response.
    fn request(controller: &Controller, method: &str, path: &str) -> String {
        let mut stream = TcpStream::connect(controller.addr).expect("connect");
        write!(
            stream,
            "{method} {path} HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\n{{}}"
        )
        .expect("send");
        let mut response = String::new();
        stream.read_to_string(&mut response).expect("read");
        response
    }

    fn body(response: &str) -> &str {
        response.split_once("\r\n\r\n").map_or("", |(_, b)| b)
    }

    #[test]
    fn controls_the_server_over_http() {
        let supervisor = Arc::new(Mutex::new(
            Supervisor::new(fake_spec("ctl.sh"), None).expect("supervisor"),
        ));
        lock(&supervisor).start().expect("start");
        let controller = Controller::start(supervisor.clone(), "127.0.0.1:0").expect("controller");
        assert!(controller.url().starts_with("http://127.0.0.1:"));

        let status = request(&controller, "GET", "/status");
        assert!(status.starts_with("HTTP/1.1 200 OK\r\n"), "{status}");
        assert!(status.contains("Access-Control-Allow-Origin: *\r\n"));
        assert!(
            body(&status).starts_with(r#"{"running":true,"pid":"#),
            "{status}"
        );
        assert!(body(&status).contains(r#""addr":"127.0.0.1:4242""#));

        let preflight = request(&controller, "OPTIONS", "/restart");
        assert!(preflight.starts_with("HTTP/1.1 204 "), "{preflight}");

        let restarted = request(&controller, "POST", "/restart");
        assert!(body(&restarted).contains(r#""starts":2"#), "{restarted}");
        assert!(body(&restarted).contains(r#""last_exit":"signal: 9"#));

        let killed = request(&controller, "POST", "/kill");
        assert!(
            body(&killed).starts_with(r#"{"running":false,"pid":null,"#),
            "{killed}"
        );
        let started = request(&controller, "POST", "/start");
        assert!(body(&started).contains(r#""running":true"#), "{started}");
        let graceful = request(&controller, "POST", "/restart?graceful=1");
        assert!(body(&graceful).contains(r#""starts":4"#), "{graceful}");

        let log = request(&controller, "GET", "/log");
        assert!(
            body(&log).contains("] args: --listen 127.0.0.1:4242"),
            "{log}"
        );
        assert!(request(&controller, "GET", "/nope").starts_with("HTTP/1.1 404 "));
        assert!(request(&controller, "GET", "/kill").starts_with("HTTP/1.1 405 "));
        drop(controller);
        lock(&supervisor).kill();
    }
}
