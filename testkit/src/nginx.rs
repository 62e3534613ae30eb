//! A real load balancer for a test (Debian's `nginx`): in front of the given upstreams,
//! with a generated config in a fresh directory, on free ports of 127.0.0.1, stopped when
//! dropped.
//!
//! Two listeners, as a deployment would have them:
//! - `grpc`: HTTP/2 (prior knowledge), `grpc_pass` — native gRPC clients;
//! - `web`: HTTP/1.1, `proxy_pass` without buffering — gRPC-web from browsers over http.
//!
//! Both spread calls over the upstreams with `least_conn` (a stream is a connection to
//! nginx's upstream, so the least loaded replica gets the next one), skip an upstream that
//! refused a connection (`max_fails=1 fail_timeout=2s`, `proxy_next_upstream`), and cut a
//! call silent for `idle` (`grpc_read_timeout` / `proxy_read_timeout`): the cut that
//! stream heartbeats must prevent. nginx answers HTTP/2 PINGs itself; they never reach a
//! replica. One process (`master_process off`), so a kill stops everything.

use crate::redis::{free_port, fresh_dir};
use std::net::{SocketAddr, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A running nginx.
#[derive(Debug)]
pub struct Nginx {
    grpc: SocketAddr,
    web: SocketAddr,
    dir: PathBuf,
    child: Child,
}

/// The config for `upstreams`, listening on `grpc` and `web`, cutting silent calls after
/// `idle`, with its files in `dir`.
pub fn config(
    upstreams: &[SocketAddr],
    grpc: SocketAddr,
    web: SocketAddr,
    idle: Duration,
    dir: &std::path::Path,
) -> String {
    let d = dir.display();
    let idle = format!("{}ms", idle.as_millis());
    let servers: String = upstreams
        .iter()
        .map(|u| format!("    server {u} max_fails=1 fail_timeout=2s;\n"))
        .collect();
    format!(
        "daemon off;
master_process off;
worker_processes 1;
pid {d}/nginx.pid;
error_log {d}/error.log warn;
events {{ worker_connections 8192; }}
http {{
  access_log off;
  client_body_temp_path {d}/body;
  proxy_temp_path {d}/proxy;
  fastcgi_temp_path {d}/fastcgi;
  uwsgi_temp_path {d}/uwsgi;
  scgi_temp_path {d}/scgi;
  upstream replicas {{
    zone replicas 64k;
    least_conn;
{servers}  }}
  server {{
    listen {grpc} http2;
    location / {{
      grpc_pass grpc://replicas;
      grpc_read_timeout {idle};
      grpc_send_timeout {idle};
      grpc_next_upstream error timeout;
    }}
  }}
  server {{
    listen {web};
    location / {{
      proxy_pass http://replicas;
      proxy_http_version 1.1;
      proxy_set_header Connection \"\";
      proxy_set_header Host $host;
      proxy_buffering off;
      proxy_request_buffering off;
      proxy_read_timeout {idle};
      proxy_send_timeout {idle};
      proxy_next_upstream error timeout;
    }}
  }}
}}
"
    )
}

impl Nginx {
    /// Starts nginx in front of `upstreams`, cutting calls silent for `idle`; returns once
    /// both listeners accept.
    ///
    /// # Errors
    /// If nginx is not installed (`cargo xtask setup` installs it), refuses the config, or
    /// does not listen within 10 s.
    pub fn start(upstreams: &[SocketAddr], idle: Duration) -> std::io::Result<Self> {
        Self::start_on(upstreams, idle, None, None)
    }

    /// [`start`](Self::start) on the given listen addresses (`None`: a free port).
    ///
    /// # Errors
    /// See [`start`](Self::start).
    pub fn start_on(
        upstreams: &[SocketAddr],
        idle: Duration,
        grpc: Option<SocketAddr>,
        web: Option<SocketAddr>,
    ) -> std::io::Result<Self> {
        let dir = fresh_dir("nginx")?;
        let free = || -> std::io::Result<SocketAddr> {
            Ok(SocketAddr::from(([127, 0, 0, 1], free_port()?)))
        };
        let grpc = match grpc {
            Some(a) => a,
            None => free()?,
        };
        let web = match web {
            Some(a) => a,
            None => free()?,
        };
        let conf = dir.join("nginx.conf");
        std::fs::write(&conf, config(upstreams, grpc, web, idle, &dir))?;
        let child = Command::new("nginx")
            .arg("-p")
            .arg(&dir)
            .arg("-c")
            .arg(&conf)
            .arg("-e")
            .arg(dir.join("error.log"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| {
                std::io::Error::new(
                    e.kind(),
                    format!("cannot run nginx ({e}): `cargo xtask setup` installs it"),
                )
            })?;
        let mut nginx = Nginx {
            grpc,
            web,
            dir,
            child,
        };
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let up =
                |a: &SocketAddr| TcpStream::connect_timeout(a, Duration::from_millis(200)).is_ok();
            if up(&nginx.grpc) && up(&nginx.web) {
                return Ok(nginx);
            }
            if let Ok(Some(status)) = nginx.child.try_wait() {
                let mut err = String::new();
                if let Some(mut e) = nginx.child.stderr.take() {
                    let _ = std::io::Read::read_to_string(&mut e, &mut err);
                }
                let log = std::fs::read_to_string(nginx.dir.join("error.log")).unwrap_or_default();
                return Err(std::io::Error::other(format!(
                    "nginx exited ({status}): {err}{log}"
                )));
            }
            if Instant::now() >= deadline {
                return Err(std::io::Error::other("nginx did not listen within 10 s"));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// The HTTP/2 listener (`grpc_pass`).
    pub fn grpc_addr(&self) -> SocketAddr {
        self.grpc
    }

    /// The HTTP/1.1 listener (`proxy_pass`, gRPC-web).
    pub fn web_addr(&self) -> SocketAddr {
        self.web
    }

    /// nginx's error log so far.
    pub fn error_log(&self) -> String {
        std::fs::read_to_string(self.dir.join("error.log")).unwrap_or_default()
    }
}

impl Drop for Nginx {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_config_names_every_upstream_and_the_idle_cut() {
        let up: Vec<SocketAddr> = ["127.0.0.1:1", "127.0.0.1:2"]
            .iter()
            .map(|a| a.parse().expect("addr"))
            .collect();
        let c = config(
            &up,
            "127.0.0.1:3".parse().expect("addr"),
            "127.0.0.1:4".parse().expect("addr"),
            Duration::from_secs(5),
            std::path::Path::new("/tmp/x"),
        );
        assert!(c.contains("server 127.0.0.1:1 max_fails=1"));
        assert!(c.contains("server 127.0.0.1:2 max_fails=1"));
        assert!(c.contains("listen 127.0.0.1:3 http2;"));
        assert!(c.contains("proxy_read_timeout 5000ms;"));
        assert!(c.contains("grpc_read_timeout 5000ms;"));
        assert!(c.contains("proxy_buffering off;"));
    }
}
