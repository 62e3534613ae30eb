//! `cargo xtask client`: the browser client as a package for plain JavaScript.
//!
//! Builds `client-wasm` for `wasm32-unknown-unknown` with the `wasm-release` profile (size first), runs `wasm-bindgen
//! --target web` (an ES module plus TypeScript declarations) into
//! `target/client-wasm/pkg/`, shrinks the wasm with `wasm-opt -Oz` (binaryen from npm;
//! Debian's 108 breaks the module), and prints the sizes, raw and gzip.

use crate::cmd::Cmd;
use crate::error::{Result, bail};
use crate::setup::{self, Setup};
use crate::workspace::Workspace;
use std::path::{Path, PathBuf};

/// Where the package goes, under the target directory.
pub const PKG_DIR: &str = "client-wasm/pkg";

/// Sizes of the built wasm.
#[derive(Debug, Clone, Copy)]
pub struct Sizes {
    /// After wasm-bindgen and wasm-opt.
    pub raw: u64,
    /// The same, gzip -9.
    pub gzip: u64,
}

/// Builds the package; returns its directory and the wasm sizes.
pub fn build(ws: &Workspace) -> Result<(PathBuf, Sizes)> {
    ws.cargo()
        .args([
            "build",
            "--profile",
            "wasm-release",
            "-p",
            "client-wasm",
            "--lib",
            "--target",
            "wasm32-unknown-unknown",
        ])
        .run()?;
    let target = ws.target_dir();
    let wasm = target.join("wasm32-unknown-unknown/wasm-release/client_wasm.wasm");
    let pkg = target.join(PKG_DIR);
    Cmd::new("wasm-bindgen")
        .arg("--target")
        .arg("web")
        .arg("--out-dir")
        .arg(&pkg)
        .arg(&wasm)
        .run()?;
    let bg = pkg.join("client_wasm_bg.wasm");
    let wasm_opt = ws.wasm_opt_bin_dir().join("wasm-opt");
    if !wasm_opt.is_file() {
        bail!(
            "{} is missing: run `cargo xtask setup --browser`",
            ws.rel(&wasm_opt)
        );
    }
    Cmd::new(&wasm_opt)
        .args([
            "-Oz",
            "--enable-bulk-memory",
            "--enable-nontrapping-float-to-int",
            "-o",
        ])
        .arg(&bg)
        .arg(&bg)
        .run()?;
    let sizes = Sizes {
        raw: file_len(&bg)?,
        gzip: gzip_len(&bg)?,
    };
    Ok((pkg, sizes))
}

/// `cargo xtask client`.
pub fn run(ws: &Workspace) -> Result<()> {
    setup::run(ws, Setup { browser: true })?;
    let (pkg, sizes) = build(ws)?;
    println!();
    println!("client package: {}", ws.rel(&pkg));
    println!("  client_wasm.js + client_wasm.d.ts + client_wasm_bg.wasm");
    println!("  wasm: {} bytes raw, {} bytes gzip", sizes.raw, sizes.gzip);
    Ok(())
}

fn file_len(path: &Path) -> Result<u64> {
    match std::fs::metadata(path) {
        Ok(m) => Ok(m.len()),
        Err(e) => bail!("cannot read {}: {e}", path.display()),
    }
}

/// Compressed size with `gzip -9` (xtask has no compression library: std only).
fn gzip_len(path: &Path) -> Result<u64> {
    let out = std::process::Command::new("gzip")
        .arg("-9")
        .arg("-c")
        .arg(path)
        .output();
    match out {
        Ok(o) if o.status.success() => Ok(o.stdout.len() as u64),
        Ok(o) => bail!("gzip failed: {}", String::from_utf8_lossy(&o.stderr)),
        Err(e) => bail!("cannot run gzip: {e}"),
    }
}
