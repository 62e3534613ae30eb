//! The example's built pages (`--pages DIR`), served by axum at `/`: the Rust page under
//! `/rust/`, the TypeScript page under `/ts/`. Same origin as the gRPC-web calls, so no
//! CORS. A few lines, because the pages only need `GET` of files.

use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use std::path::{Component, Path, PathBuf};

/// A router answering `GET` of the files under `dir` (`…/` is `…/index.html`).
pub fn router(dir: PathBuf) -> axum::Router {
    axum::Router::new().fallback(move |uri: axum::http::Uri| {
        let dir = dir.clone();
        async move { file(&dir, uri.path()).await }
    })
}

async fn file(dir: &Path, path: &str) -> Response {
    let mut relative = PathBuf::from(path.trim_start_matches('/'));
    if path.ends_with('/') || relative.as_os_str().is_empty() {
        relative.push("index.html");
    }
    if relative
        .components()
        .any(|c| !matches!(c, Component::Normal(_)))
    {
        return StatusCode::BAD_REQUEST.into_response();
    }
    let full = dir.join(&relative);
    match tokio::fs::read(&full).await {
        Ok(bytes) => (
            [
                (header::CONTENT_TYPE, content_type(&full)),
                (header::CACHE_CONTROL, "no-cache"),
            ],
            bytes,
        )
            .into_response(),
        Err(_) => StatusCode::NOT_FOUND.into_response(),
    }
}

fn content_type(path: &Path) -> &'static str {
    match path.extension().and_then(|e| e.to_str()) {
        Some("html") => "text/html; charset=utf-8",
        Some("js") => "text/javascript; charset=utf-8",
        Some("wasm") => "application/wasm",
        Some("css") => "text/css; charset=utf-8",
        _ => "application/octet-stream",
    }
}
