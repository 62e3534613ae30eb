//! The dashboard's built files (`--web-root DIR`), served on the gRPC port.
//!
//! The page is served by the server itself so that it calls gRPC-web on its own origin
//! (no CORS needed). It is the fallback of the demo's axum router ([`StaticFiles::router`]),
//! which the library's dispatch hands every request that is not gRPC: gRPC and gRPC-web
//! never reach it, and `/metrics` is a route of its own. Methods other than `GET` and
//! `HEAD` get `405`.
//!
//! - `/` is `index.html`; any other path names a file under the web root.
//! - Paths are percent-decoded, then refused (400) when a segment is `..`, `.`, hidden
//!   (`.git`), or holds a `\` or NUL; the file found must still be inside the web root
//!   once symlinks are resolved. A missing file is a 404.
//! - Content types by extension (`.wasm` is `application/wasm`, which
//!   `WebAssembly.instantiateStreaming` requires); `nosniff`; `no-cache` so a rebuilt page
//!   is picked up at once.
//! - When there is no web root, or it has no `index.html`, `/` answers a small HTML page
//!   that says what to run.
//!
//! Files are read from disk on each request (on the blocking pool): the page is small, and
//! a `trunk build` while the server runs is served without a restart.

use crate::settings::DEFAULT_WEB_ROOT;
use bytes::Bytes;
use http::{HeaderValue, Method, Response, StatusCode, header};
use http_body_util::Full;
use std::path::{Path, PathBuf};

/// The dashboard's files, or the lack of them.
#[derive(Debug, Clone)]
pub struct StaticFiles {
    /// The web root, canonical; `None` when not configured or not found.
    root: Option<PathBuf>,
    /// The web root as configured, for the "not built" page.
    configured: Option<PathBuf>,
}

/// Why a path was refused before touching the disk.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BadPath {
    /// Not valid percent-encoding or not UTF-8.
    Encoding,
    /// A `..`, `.`, hidden, or otherwise unsafe segment.
    Segment,
}

impl StaticFiles {
    /// Files under `root` (which need not exist yet: then `/` says what to run).
    pub fn new(root: Option<PathBuf>) -> Self {
        StaticFiles {
            root: root.as_deref().and_then(|r| r.canonicalize().ok()),
            configured: root,
        }
    }

    /// An axum router that answers every request with these files (as its fallback):
    /// merge your routes into it, or it into yours.
    pub fn router(self) -> axum::Router {
        axum::Router::new().fallback(move |req: axum::extract::Request| {
            let files = self.clone();
            async move {
                if req.method() == Method::GET || req.method() == Method::HEAD {
                    files.respond(req.method(), req.uri().path()).await
                } else {
                    let mut res = text(
                        StatusCode::METHOD_NOT_ALLOWED,
                        "method not allowed\n",
                        false,
                    );
                    res.headers_mut()
                        .insert(header::ALLOW, HeaderValue::from_static("GET, HEAD"));
                    res
                }
            }
        })
    }

    /// The response to a `GET` or `HEAD` of `path`.
    pub async fn respond(&self, method: &Method, path: &str) -> Response<tonic::body::Body> {
        let head = method == Method::HEAD;
        let relative = match safe_relative_path(path) {
            Ok(p) => p,
            Err(_) => return text(StatusCode::BAD_REQUEST, "bad path\n", head),
        };
        let is_index = relative == Path::new("index.html");
        let Some(root) = &self.root else {
            return if is_index {
                self.not_built(head)
            } else {
                text(StatusCode::NOT_FOUND, "not found\n", head)
            };
        };
        let file = root.join(&relative);
        let read = tokio::task::spawn_blocking({
            let root = root.clone();
            move || read_inside(&root, &file)
        })
        .await;
        match read {
            Ok(Some(bytes)) => file_response(&relative, bytes, head),
            _ if is_index => self.not_built(head),
            _ => text(StatusCode::NOT_FOUND, "not found\n", head),
        }
    }

    /// The page `/` shows when the dashboard has not been built.
    fn not_built(&self, head: bool) -> Response<tonic::body::Body> {
        let root = match &self.configured {
            Some(dir) => format!(
                "This server looks for it in <code>{}</code>, which has no <code>index.html</code>.",
                escape(&dir.display().to_string())
            ),
            None => format!(
                "This server was started without <code>--web-root</code> and there is no \
                 <code>{DEFAULT_WEB_ROOT}</code> in its working directory."
            ),
        };
        let html = format!(
            "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
             <title>keepalive: dashboard not built</title></head>\n<body style=\"font: 16px/1.5 \
             system-ui, sans-serif; max-width: 44rem; margin: 3rem auto; padding: 0 1rem\">\n\
             <h1>The dashboard is not built</h1>\n<p>{root}</p>\n\
             <p>To build it and start a server that serves it, run in the repository:</p>\n\
             <pre><code>cargo xtask demo</code></pre>\n\
             <p>Or build it by hand (<code>Trunk.toml</code> is at the repository root; the \
             page goes to <code>{DEFAULT_WEB_ROOT}</code>) and restart this server with \
             <code>--web-root {DEFAULT_WEB_ROOT}</code>:</p>\n\
             <pre><code>trunk build --release</code></pre>\n\
             <p>The gRPC and gRPC-web services on this port work either way.</p>\n</body></html>\n"
        );
        let mut res = response(
            StatusCode::NOT_FOUND,
            "text/html; charset=utf-8",
            html,
            head,
        );
        res.headers_mut()
            .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        res
    }
}

/// The file a URL path names, relative to the web root (`/` is `index.html`), or why it
/// is refused.
pub fn safe_relative_path(path: &str) -> Result<PathBuf, BadPath> {
    let decoded = percent_decode(path).ok_or(BadPath::Encoding)?;
    let mut out = PathBuf::new();
    for segment in decoded.split('/').filter(|s| !s.is_empty()) {
        // `.`, `..` and hidden files start with a dot; `\` is a separator elsewhere.
        if segment.starts_with('.') || segment.contains(['\\', '\0']) {
            return Err(BadPath::Segment);
        }
        out.push(segment);
    }
    if out.as_os_str().is_empty() || decoded.ends_with('/') {
        out.push("index.html");
    }
    Ok(out)
}

/// `%XX` decoding of a URL path; `None` for a bad escape or non-UTF-8 bytes.
fn percent_decode(s: &str) -> Option<String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = s.get(i + 1..i + 3)?;
            // from_str_radix would also take a sign ("%+1"): only two hex digits are valid.
            if !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
                return None;
            }
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

/// Reads `file` if it is a regular file inside `root` once symlinks are resolved.
fn read_inside(root: &Path, file: &Path) -> Option<Vec<u8>> {
    let real = file.canonicalize().ok()?;
    if !real.starts_with(root) || !real.is_file() {
        return None;
    }
    std::fs::read(real).ok()
}

/// The content type of a file, by extension.
pub fn content_type(path: &Path) -> &'static str {
    let ext = path
        .extension()
        .and_then(|e| e.to_str())
        .map(str::to_ascii_lowercase);
    match ext.as_deref() {
        Some("html" | "htm") => "text/html; charset=utf-8",
        Some("js" | "mjs") => "text/javascript; charset=utf-8",
        Some("wasm") => "application/wasm",
        Some("css") => "text/css; charset=utf-8",
        Some("json" | "map") => "application/json",
        Some("svg") => "image/svg+xml",
        Some("png") => "image/png",
        Some("ico") => "image/x-icon",
        Some("txt") => "text/plain; charset=utf-8",
        _ => "application/octet-stream",
    }
}

fn file_response(path: &Path, bytes: Vec<u8>, head: bool) -> Response<tonic::body::Body> {
    response(StatusCode::OK, content_type(path), bytes, head)
}

fn text(status: StatusCode, body: &'static str, head: bool) -> Response<tonic::body::Body> {
    response(status, "text/plain; charset=utf-8", body, head)
}

fn response(
    status: StatusCode,
    content_type: &'static str,
    body: impl Into<Bytes>,
    head: bool,
) -> Response<tonic::body::Body> {
    let body: Bytes = body.into();
    let len = body.len();
    let body = if head {
        tonic::body::Body::empty()
    } else {
        tonic::body::Body::new(Full::new(body))
    };
    let mut res = Response::new(body);
    *res.status_mut() = status;
    let headers = res.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    headers.insert(header::CONTENT_LENGTH, HeaderValue::from(len));
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    res
}

/// Minimal HTML escaping for text put into the "not built" page.
fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percent_decoding_takes_exactly_two_hex_digits() {
        assert_eq!(percent_decode("a%20b%2Fc").as_deref(), Some("a b/c"));
        assert_eq!(percent_decode("%+1"), None);
        assert_eq!(percent_decode("%-1"), None);
        assert_eq!(percent_decode("%2"), None);
        assert_eq!(percent_decode("%zz"), None);
        assert_eq!(percent_decode("%ff"), None, "not UTF-8");
    }

    #[test]
    fn paths_map_inside_the_root() {
        let ok = |p: &str| safe_relative_path(p).expect(p);
        assert_eq!(ok("/"), PathBuf::from("index.html"));
        assert_eq!(ok("/index.html"), PathBuf::from("index.html"));
        assert_eq!(ok("/web-1a2b.wasm"), PathBuf::from("web-1a2b.wasm"));
        assert_eq!(ok("/a//b/"), PathBuf::from("a/b/index.html"));
        assert_eq!(ok("/a%20b.js"), PathBuf::from("a b.js"));
    }

    #[test]
    fn traversal_and_tricks_are_refused() {
        for bad in [
            "/../Cargo.toml",
            "/a/../../x",
            "/%2e%2e/Cargo.toml",
            "/%2E%2E%2fCargo.toml",
            "/.git/config",
            "/./index.html",
            "/a%5c..%5cx",
            "/a%00.html",
        ] {
            assert_eq!(
                safe_relative_path(bad),
                Err(BadPath::Segment),
                "{bad} must be refused"
            );
        }
        assert_eq!(safe_relative_path("/%zz"), Err(BadPath::Encoding));
        assert_eq!(safe_relative_path("/%ff"), Err(BadPath::Encoding));
    }

    #[test]
    fn content_types() {
        assert_eq!(content_type(Path::new("a.wasm")), "application/wasm");
        assert_eq!(
            content_type(Path::new("index.HTML")),
            "text/html; charset=utf-8"
        );
        assert_eq!(
            content_type(Path::new("x.js")),
            "text/javascript; charset=utf-8"
        );
        assert_eq!(content_type(Path::new("s.css")), "text/css; charset=utf-8");
        assert_eq!(content_type(Path::new("blob")), "application/octet-stream");
    }
}
