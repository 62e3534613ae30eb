//! `cargo xtask client`: the browser client as an npm package for TypeScript and
//! JavaScript (connect-es).
//!
//! Builds `keepalive-client` with its `js` feature for `wasm32-unknown-unknown` with the
//! `wasm-release` profile (size first), runs `wasm-bindgen --target web` (an ES module plus
//! TypeScript declarations) into `target/keepalive-client/pkg/`, shrinks the wasm with
//! `wasm-opt -Oz` (binaryen from npm; Debian's 108 breaks the module), compiles the
//! package's TypeScript (`keepalive-client/js/index.ts`: `keepaliveTransport`,
//! `keepOpen`) with tsc next to it, and prints the sizes, raw and gzip.

use crate::cmd::Cmd;
use crate::error::{Result, bail};
use crate::page::{self, Sizes};
use crate::setup::{self, Setup};
use crate::workspace::Workspace;
use std::path::{Path, PathBuf};

/// Where the package goes, under the target directory.
pub const PKG_DIR: &str = "keepalive-client/pkg";

/// Builds the package; returns its directory and the wasm sizes.
pub fn build(ws: &Workspace) -> Result<(PathBuf, Sizes)> {
    ws.cargo()
        .args([
            "build",
            "--profile",
            "wasm-release",
            "-p",
            "keepalive-client",
            "--features",
            "js",
            "--lib",
            "--target",
            "wasm32-unknown-unknown",
        ])
        .run()?;
    let target = ws.target_dir();
    let wasm = target.join("wasm32-unknown-unknown/wasm-release/keepalive_client.wasm");
    let pkg = target.join(PKG_DIR);
    Cmd::new("wasm-bindgen")
        .arg("--target")
        .arg("web")
        .arg("--out-dir")
        .arg(&pkg)
        .arg(&wasm)
        .run()?;
    let bg = pkg.join("keepalive_client_bg.wasm");
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
    let sizes = page::file_sizes(&bg)?;
    typescript(ws, &pkg)?;
    Ok((pkg, sizes))
}

/// Compiles `keepalive-client/js/index.ts` into `pkg` (index.js, index.d.ts) against the
/// wasm-bindgen output there, with the package's `package.json`; `pkg/node_modules` links
/// to the toolchain's, so the package resolves its peer dependencies when bundled here.
fn typescript(ws: &Workspace, pkg: &Path) -> Result<()> {
    let src = ws.root().join("keepalive-client").join("js");
    for file in ["index.ts", "package.json", "tsconfig.json"] {
        copy(&src.join(file), &pkg.join(file))?;
    }
    link_node_modules(ws, pkg)?;
    Cmd::new(ws.js_bin_dir().join("tsc"))
        .arg("-p")
        .arg(pkg.join("tsconfig.json"))
        .run()?;
    for file in ["index.ts", "tsconfig.json"] {
        let _ = std::fs::remove_file(pkg.join(file));
    }
    Ok(())
}

/// `dir/node_modules` → the toolchain's (`.tools/js/node_modules`), so that TypeScript
/// and esbuild resolve `@connectrpc/connect` and `@bufbuild/protobuf` from `dir`.
pub fn link_node_modules(ws: &Workspace, dir: &Path) -> Result<()> {
    let modules = dir.join("node_modules");
    if std::fs::symlink_metadata(&modules).is_ok() {
        return Ok(());
    }
    match std::os::unix::fs::symlink(ws.js_tools_dir().join("node_modules"), &modules) {
        Ok(()) => Ok(()),
        Err(e) => bail!("cannot link {}: {e}", modules.display()),
    }
}

/// Copies one file.
pub fn copy(from: &Path, to: &Path) -> Result<()> {
    match std::fs::copy(from, to) {
        Ok(_) => Ok(()),
        Err(e) => bail!("cannot copy {} to {}: {e}", from.display(), to.display()),
    }
}

/// `cargo xtask client`.
pub fn run(ws: &Workspace) -> Result<()> {
    setup::run(ws, Setup { browser: false })?;
    setup::package_tools(ws)?;
    let (pkg, sizes) = build(ws)?;
    println!();
    println!("client package: {}", ws.rel(&pkg));
    println!("  package.json, index.js + index.d.ts (keepaliveTransport, keepOpen),");
    println!("  keepalive_client.js + keepalive_client.d.ts + keepalive_client_bg.wasm");
    println!("  wasm: {} bytes raw, {} bytes gzip", sizes.raw, sizes.gzip);
    Ok(())
}
