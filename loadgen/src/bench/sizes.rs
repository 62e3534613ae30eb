//! Sizes: the files `cargo xtask bench` built (Trunk, wasm-bindgen, wasm-opt `-Oz`,
//! esbuild; only xtask has those tools) and named with `--artifact KEY PATH LABEL`, raw
//! and `gzip -9`: what a page's user downloads. The client library as its users get it —
//! a Rust-only page (the example's: no JS layer), the npm package's wasm with the JS
//! bindings, and the TypeScript page's bundle (connect-es, protobuf-es, generated code,
//! the package's transport) — and the dashboard's wasm.

use super::report::{Object, Section};
use super::{Ctx, Result};
use serde::Serialize;
use std::fmt::Write as _;
use std::path::Path;
use std::process::Stdio;

/// A file's sizes, bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Sizes {
    /// As served.
    pub raw: u64,
    /// `gzip -9` of it.
    pub gzip: u64,
}

/// Runs the sizes scenario.
pub async fn run(ctx: &Ctx) -> Result<Section> {
    let mut md = String::from(
        "### Sizes (after wasm-bindgen and wasm-opt -Oz)\n\n| artifact | raw | gzip -9 |\n|---|---|---|\n",
    );
    let mut js = Object::new();
    for a in &ctx.artifacts {
        let sizes = measure(&a.path).await?;
        let _ = writeln!(
            md,
            "| {} | {} | {} |",
            a.label,
            kb(sizes.raw),
            kb(sizes.gzip)
        );
        js = js.with(&a.key, sizes);
    }
    Ok(Section::new(md, &js))
}

/// `12.3 KB` (1 KB = 1 000 bytes).
fn kb(bytes: u64) -> String {
    format!("{:.1} KB", bytes as f64 / 1000.0)
}

/// The size of `file`, raw and `gzip -9 -c` of it.
pub async fn measure(file: &Path) -> Result<Sizes> {
    let raw = std::fs::metadata(file)
        .map_err(|e| format!("cannot read {}: {e}", file.display()))?
        .len();
    let out = tokio::process::Command::new("gzip")
        .args(["-9", "-c"])
        .arg(file)
        .stdin(Stdio::null())
        .kill_on_drop(true)
        .output()
        .await
        .map_err(|e| format!("cannot run gzip on {}: {e}", file.display()))?;
    if !out.status.success() {
        return Err(format!(
            "gzip -9 {} failed: {}",
            file.display(),
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    Ok(Sizes {
        raw,
        gzip: out.stdout.len() as u64,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn measures_a_file() {
        let path = std::env::temp_dir().join(format!("bench-sizes-{}.txt", std::process::id()));
        std::fs::write(&path, "keepalive ".repeat(1000)).expect("write");
        let sizes = measure(&path).await.expect("gzip");
        assert_eq!(sizes.raw, 10_000);
        assert!(sizes.gzip > 0 && sizes.gzip < 1_000, "{sizes:?}");
        let _ = std::fs::remove_file(&path);
        assert!(measure(&path).await.is_err());
        assert_eq!(kb(116_300), "116.3 KB");
    }
}
