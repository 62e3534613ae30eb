//! The dashboard's files served by the real server (`--web-root`): index at `/`, content
//! types, HEAD, 404, refused traversal (`..`, encoded, symlinks out of the root), the "not
//! built" page, and gRPC / gRPC-web still answered on the same port.

mod common;

use std::path::{Path, PathBuf};
use std::time::Duration;
use testkit::ServerProcess;
use tests::http1::{Http1, Response};

const TIMEOUT: Duration = Duration::from_secs(10);

/// A web root with a few files, and a secret file next to it (outside the root).
struct Site {
    dir: PathBuf,
}

impl Site {
    fn new(name: &str) -> Site {
        let dir = std::env::temp_dir().join(format!("static-files-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let root = dir.join("dist");
        std::fs::create_dir_all(root.join("assets")).expect("mkdir");
        let write = |p: &Path, s: &str| std::fs::write(p, s).expect("write");
        write(
            &root.join("index.html"),
            "<!doctype html><title>dash</title>INDEX-END",
        );
        write(&root.join("web-1234.js"), "export const x = 1; // JS-END");
        write(&root.join("web-1234_bg.wasm"), "\0asm-WASM-END");
        write(
            &root.join("assets/style.css"),
            "body { } /* style */ CSS-END",
        );
        write(&dir.join("secret.txt"), "SECRET");
        std::os::unix::fs::symlink(dir.join("secret.txt"), root.join("link.txt")).expect("symlink");
        Site { dir }
    }

    fn root(&self) -> String {
        self.dir.join("dist").display().to_string()
    }
}

impl Drop for Site {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// `GET path` on a new connection: the head and the body up to `until`.
async fn get(srv: &ServerProcess, path: &str, until: &str) -> (Response, String) {
    let mut c = Http1::connect(srv.addr()).await.expect("connect");
    c.send("GET", path, &[], b"").await.expect("send");
    let head = c.read_head(TIMEOUT).await.expect("head");
    let body = c
        .read_until(until.as_bytes(), TIMEOUT)
        .await
        .unwrap_or_else(|e| panic!("GET {path}: no {until:?} in the body: {e}"));
    (head, String::from_utf8_lossy(&body).into_owned())
}

/// `GET path` (raw request line, sent as is): the head only.
async fn status_of(srv: &ServerProcess, path: &str) -> Response {
    let mut c = Http1::connect(srv.addr()).await.expect("connect");
    c.send("GET", path, &[], b"").await.expect("send");
    c.read_head(TIMEOUT).await.expect("head")
}

#[tokio::test]
async fn serves_the_page_with_content_types() {
    let site = Site::new("serve");
    let srv = ServerProcess::start(&["--web-root", &site.root()]).await;

    for path in ["/", "/index.html"] {
        let (head, body) = get(&srv, path, "INDEX-END").await;
        assert_eq!(head.status, 200, "{path}");
        assert_eq!(
            head.header("content-type"),
            Some("text/html; charset=utf-8")
        );
        assert_eq!(head.header("x-content-type-options"), Some("nosniff"));
        assert!(body.contains("<title>dash</title>"), "{body}");
    }
    for (path, end, ct) in [
        ("/web-1234.js", "JS-END", "text/javascript; charset=utf-8"),
        ("/web-1234_bg.wasm", "WASM-END", "application/wasm"),
        ("/assets/style.css", "CSS-END", "text/css; charset=utf-8"),
    ] {
        let (head, body) = get(&srv, path, end).await;
        assert_eq!(head.status, 200, "{path}");
        assert_eq!(head.header("content-type"), Some(ct), "{path}");
        assert_eq!(
            head.header("content-length"),
            Some(body.len().to_string().as_str()),
            "{path}"
        );
    }

    // HEAD: the same head, no body: the next response on the connection follows at once.
    let mut c = Http1::connect(srv.addr()).await.expect("connect");
    c.send("HEAD", "/web-1234_bg.wasm", &[], b"")
        .await
        .expect("send");
    let head = c.read_head(TIMEOUT).await.expect("head");
    assert_eq!(head.status, 200);
    assert_eq!(head.header("content-type"), Some("application/wasm"));
    assert_eq!(head.header("content-length"), Some("13"));
    c.send("GET", "/missing.js", &[], b"").await.expect("send");
    let next = c.read_head(TIMEOUT).await.expect("second head");
    assert_eq!(next.status, 404);
}

#[tokio::test]
async fn missing_files_and_traversal() {
    let site = Site::new("traversal");
    let srv = ServerProcess::start(&["--web-root", &site.root()]).await;

    for missing in ["/nope.js", "/assets/", "/assets/nope.css"] {
        assert_eq!(status_of(&srv, missing).await.status, 404, "{missing}");
    }
    for bad in [
        "/../secret.txt",
        "/assets/../../secret.txt",
        "/%2e%2e/secret.txt",
        "/%2E%2E%2Fsecret.txt",
        "/..%5csecret.txt",
        "/.hidden",
    ] {
        let head = status_of(&srv, bad).await;
        assert_eq!(head.status, 400, "{bad} must be refused");
    }
    // A symlink pointing out of the root is not followed.
    assert_eq!(status_of(&srv, "/link.txt").await.status, 404);
}

#[tokio::test]
async fn says_what_to_run_when_the_page_is_not_built() {
    let site = Site::new("unbuilt");
    let empty = site.dir.join("empty");
    std::fs::create_dir_all(&empty).expect("mkdir");
    let empty = empty.display().to_string();
    for args in [vec!["--web-root", empty.as_str()], vec![]] {
        // Without --web-root the server looks for web/dist in its working directory
        // (the tests crate's, which has none).
        let srv = ServerProcess::start(&args).await;
        let (head, body) = get(&srv, "/", "</html>").await;
        assert_eq!(head.status, 404, "{args:?}");
        assert_eq!(
            head.header("content-type"),
            Some("text/html; charset=utf-8")
        );
        assert!(body.contains("cargo xtask demo"), "{body}");
        assert!(body.contains("trunk build --release"), "{body}");
        assert_eq!(status_of(&srv, "/web.js").await.status, 404);
    }
}

#[tokio::test]
async fn grpc_and_grpc_web_still_work_next_to_the_page() {
    let site = Site::new("grpc");
    let srv = ServerProcess::start(&["--web-root", &site.root()]).await;

    // Native gRPC over HTTP/2.
    let mut c = common::client(&srv).await;
    let stats = c
        .stats(common::pb::StatsRequest {})
        .await
        .expect("Stats")
        .into_inner();
    assert!(stats.gauges.contains_key("sessions"), "{stats:?}");

    // gRPC-web over HTTP/1.1, same origin: a POST is never taken for a file.
    let mut web = Http1::connect(srv.addr()).await.expect("connect");
    web.send(
        "POST",
        "/grpc.health.v1.Health/Check",
        &[
            ("content-type", "application/grpc-web+proto"),
            ("x-grpc-web", "1"),
        ],
        &[0, 0, 0, 0, 0],
    )
    .await
    .expect("send");
    let head = web.read_head(TIMEOUT).await.expect("head");
    assert_eq!(head.status, 200);
    assert!(
        head.header("content-type")
            .is_some_and(|ct| ct.starts_with("application/grpc-web")),
        "{head:?}"
    );
    web.read_until(b"grpc-status:0", TIMEOUT)
        .await
        .expect("grpc-status 0");
}
