//! Building the dashboard (`web/`) with Trunk, for `cargo xtask demo` and `cargo xtask
//! test`.
//!
//! `trunk build --release` at the workspace root (`Trunk.toml` there): the `web` binary
//! with the `wasm-release` profile (size first), wasm-bindgen, wasm-opt `-Oz`, into
//! `web/dist/`. Trunk runs offline (`offline = true`): the tools it uses are the ones
//! `cargo xtask setup` installed — `wasm-bindgen` in `~/.cargo/bin`, and binaryen's
//! `wasm-opt` from npm, put first on `PATH` here so that Debian's (which breaks the
//! module) is never picked — and the crates come from `cargo fetch`.

use std::ffi::OsString;
use std::path::{Path, PathBuf};

use crate::cmd::Cmd;
use crate::error::{Error, Result, bail};
use crate::workspace::Workspace;

/// Sizes of the page's wasm.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Sizes {
    /// As served.
    pub raw: u64,
    /// `gzip -9` of it.
    pub gzip: u64,
}

/// Where Trunk puts the page (`Trunk.toml`'s `dist`).
pub fn dist_dir(ws: &Workspace) -> PathBuf {
    ws.root.join("web").join("dist")
}

/// Builds the page (release: what the demo serves and the browser test opens); returns
/// its directory.
pub fn build(ws: &Workspace) -> Result<PathBuf> {
    trunk_build(ws, &ws.root, None)?;
    let dist = dist_dir(ws);
    if !dist.join("index.html").is_file() {
        bail!("trunk finished but {} has no index.html", ws.rel(&dist));
    }
    Ok(dist)
}

/// `trunk build --release` in `dir` (its `Trunk.toml` says what, and where unless `dist`
/// is given), offline, with binaryen's `wasm-opt` first on `PATH`.
pub fn trunk_build(ws: &Workspace, dir: &Path, dist: Option<&Path>) -> Result<()> {
    // Trunk runs cargo offline: make sure every crate (the wasm32-only ones too) is here.
    ws.cargo().arg("fetch").run()?;
    let wasm_opt_dir = ws.wasm_opt_bin_dir();
    if !wasm_opt_dir.join("wasm-opt").is_file() {
        bail!(
            "{} is missing: run `cargo xtask setup --browser`",
            ws.rel(&wasm_opt_dir.join("wasm-opt"))
        );
    }
    let mut path = OsString::from(&wasm_opt_dir);
    if let Some(rest) = std::env::var_os("PATH") {
        path.push(":");
        path.push(rest);
    }
    let mut trunk = Cmd::new("trunk").args(["build", "--release"]);
    if let Some(dist) = dist {
        trunk = trunk.arg("--dist").arg(dist);
    }
    trunk
        .dir(dir)
        .env("PATH", path)
        .env("TRUNK_SKIP_VERSION_CHECK", "true")
        .env("NO_COLOR", "true")
        .run()
}

/// The sizes of the `.wasm` in `dist` (Trunk names it `web-<hash>_bg.wasm`).
pub fn wasm_sizes(dist: &Path) -> Result<Sizes> {
    let entries = std::fs::read_dir(dist)
        .map_err(|e| Error::new(format!("cannot read {}: {e}", dist.display())))?;
    let wasm = entries
        .flatten()
        .map(|e| e.path())
        .find(|p| p.extension().is_some_and(|x| x == "wasm"))
        .ok_or_else(|| Error::new(format!("no .wasm in {}", dist.display())))?;
    file_sizes(&wasm)
}

/// The size of a file, raw and `gzip -9` (xtask has no compression library: std only).
pub fn file_sizes(file: &Path) -> Result<Sizes> {
    let raw = std::fs::metadata(file)
        .map_err(|e| Error::new(format!("cannot read {}: {e}", file.display())))?
        .len();
    let gzip = match std::process::Command::new("gzip")
        .args(["-9", "-c"])
        .arg(file)
        .output()
    {
        Ok(out) if out.status.success() => out.stdout.len() as u64,
        Ok(out) => bail!("gzip failed: {}", String::from_utf8_lossy(&out.stderr)),
        Err(e) => bail!("cannot run gzip on {}: {e}", file.display()),
    };
    Ok(Sizes { raw, gzip })
}

/// `331 KB`: sizes as people read them.
pub fn kb(bytes: u64) -> String {
    format!("{} KB", (bytes + 512) / 1024)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kilobytes() {
        assert_eq!(kb(0), "0 KB");
        assert_eq!(kb(1536), "2 KB");
        assert_eq!(kb(432_277), "422 KB");
    }
}
