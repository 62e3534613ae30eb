//! The example's two pages (`examples/prices/web-rust`, `examples/prices/web-ts`), built
//! for `cargo xtask test` (tests/tests/example_pages.rs opens them in headless Chromium)
//! and for `cargo xtask example`, which runs `prices-server --pages target/prices-pages`:
//! the pages at `/rust/` and `/ts/`.
//!
//! - Rust: `trunk build --release` in `web-rust/` (its `Trunk.toml` writes
//!   `target/prices-pages/rust/`): the client library without its JS layer.
//! - TypeScript: the client package ([`crate::client`]), connect-es code generated from
//!   the example's proto and the keepalive protos it imports (`buf generate` with
//!   protoc-gen-es into `web-ts/gen/`), type-checked with `tsc`, bundled with esbuild
//!   into `target/prices-pages/ts/main.js` next to `index.html` and the client's wasm.

use std::ffi::OsString;
use std::path::{Path, PathBuf};

use crate::client;
use crate::cmd::Cmd;
use crate::error::{Result, bail};
use crate::page::{self, Sizes};
use crate::setup::{self, Setup};
use crate::workspace::Workspace;

/// Where the pages go, under the target directory.
pub const DIST_DIR: &str = "prices-pages";

/// Where `cargo xtask example` serves them.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:8090";

/// What was built.
#[derive(Debug)]
pub struct Pages {
    /// `target/prices-pages`, with `rust/` and `ts/`.
    pub dist: PathBuf,
    /// The Rust page's wasm.
    pub rust_wasm: Sizes,
    /// The TypeScript page's wasm (the client with its JS bindings).
    pub ts_wasm: Sizes,
    /// The TypeScript page's bundle (connect-es, the generated code, the package's JS).
    pub ts_bundle: Sizes,
}

/// Builds both pages.
pub fn build(ws: &Workspace) -> Result<Pages> {
    let root = ws.root().join("examples").join("prices");
    let dist = ws.target_dir().join(DIST_DIR);

    // Into the target directory cargo uses (`CARGO_TARGET_DIR` too), not the one
    // Trunk.toml names relative to the repository.
    page::trunk_build(ws, &root.join("web-rust"), Some(&dist.join("rust")))?;
    let rust_wasm = page::file_sizes(&dist.join("rust").join("prices-web_bg.wasm"))?;

    let (pkg, ts_wasm) = client::build(ws)?;
    let web_ts = root.join("web-ts");
    generate(ws, &web_ts, &dist.join("proto"))?;
    client::link_node_modules(ws, &web_ts)?;
    let tsconfig = ts_project(&web_ts, &pkg, &dist)?;
    let bin = ws.js_bin_dir();
    Cmd::new(bin.join("tsc")).arg("-p").arg(&tsconfig).run()?;
    let out = dist.join("ts");
    std::fs::create_dir_all(&out)
        .map_err(|e| crate::error::Error::new(format!("cannot create {}: {e}", out.display())))?;
    let mut outfile = OsString::from("--outfile=");
    outfile.push(out.join("main.js"));
    let mut tsconfig_arg = OsString::from("--tsconfig=");
    tsconfig_arg.push(&tsconfig);
    Cmd::new(bin.join("esbuild"))
        .arg(web_ts.join("main.ts"))
        .args(["--bundle", "--minify", "--format=esm", "--target=es2022"])
        .arg(tsconfig_arg)
        .arg(outfile)
        .dir(&web_ts)
        .run()?;
    client::copy(&web_ts.join("index.html"), &out.join("index.html"))?;
    let wasm = "keepalive_client_bg.wasm";
    client::copy(&pkg.join(wasm), &out.join(wasm))?;
    let ts_bundle = page::file_sizes(&out.join("main.js"))?;
    Ok(Pages {
        dist,
        rust_wasm,
        ts_wasm,
        ts_bundle,
    })
}

/// A `tsconfig.json` in `dist` that extends the page's and points `keepalive-client` at
/// the package built in `pkg` (the page's own names `target/keepalive-client/pkg`, which
/// is wrong when `CARGO_TARGET_DIR` is elsewhere).
fn ts_project(web_ts: &Path, pkg: &Path, dist: &Path) -> Result<PathBuf> {
    let path = dist.join("tsconfig.json");
    let quote = |p: &Path| format!("{:?}", p.display().to_string());
    let text = format!(
        "{{\n  \"extends\": {},\n  \"compilerOptions\": {{ \"paths\": {{ \"keepalive-client\": [{}] }} }},\n  \"files\": [{}]\n}}\n",
        quote(&web_ts.join("tsconfig.json")),
        quote(&pkg.join("index")),
        quote(&web_ts.join("main.ts")),
    );
    std::fs::create_dir_all(dist)
        .and_then(|()| std::fs::write(&path, text))
        .map_err(|e| crate::error::Error::new(format!("cannot write {}: {e}", path.display())))?;
    Ok(path)
}

/// `buf generate` of the example's proto and the keepalive protos it imports (copied into
/// one tree at `staging`), with `web-ts/buf.gen.yaml` (protoc-gen-es), into `web-ts/gen`.
fn generate(ws: &Workspace, web_ts: &Path, staging: &Path) -> Result<()> {
    let _ = std::fs::remove_dir_all(staging);
    let _ = std::fs::remove_dir_all(web_ts.join("gen"));
    let trees = [
        ws.root().join("proto").join("proto"),
        ws.root().join("examples/prices/proto/proto"),
    ];
    for tree in &trees {
        copy_protos(tree, tree, staging)?;
    }
    let mut path = OsString::from(ws.js_bin_dir());
    if let Some(rest) = std::env::var_os("PATH") {
        path.push(":");
        path.push(rest);
    }
    Cmd::new(ws.js_bin_dir().join("buf"))
        .arg("generate")
        .arg(staging)
        .args(["--template", "buf.gen.yaml"])
        .dir(web_ts)
        .env("PATH", path)
        .run()?;
    if !web_ts.join("gen/prices/v1/prices_pb.ts").is_file() {
        bail!("buf generate wrote no gen/prices/v1/prices_pb.ts");
    }
    Ok(())
}

/// Copies every `.proto` under `dir` (relative to `root`) into `to`.
fn copy_protos(root: &Path, dir: &Path, to: &Path) -> Result<()> {
    let entries = std::fs::read_dir(dir)
        .map_err(|e| crate::error::Error::new(format!("cannot read {}: {e}", dir.display())))?;
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            copy_protos(root, &path, to)?;
        } else if path.extension().is_some_and(|x| x == "proto") {
            let rel = path.strip_prefix(root).unwrap_or(&path);
            let dest = to.join(rel);
            if let Some(parent) = dest.parent() {
                std::fs::create_dir_all(parent).map_err(|e| {
                    crate::error::Error::new(format!("cannot create {}: {e}", parent.display()))
                })?;
            }
            client::copy(&path, &dest)?;
        }
    }
    Ok(())
}

/// `cargo xtask example`: builds the pages and serves them with the example server until
/// Ctrl-C (which reaches the server too: it drains and exits).
pub fn run(ws: &Workspace, listen: &str) -> Result<()> {
    setup::run(ws, Setup { browser: true })?;
    let pages = build(ws)?;
    println!();
    println!(
        "Rust page wasm: {} ({} gzip); TypeScript page: wasm {} ({} gzip), main.js {} ({} gzip)",
        page::kb(pages.rust_wasm.raw),
        page::kb(pages.rust_wasm.gzip),
        page::kb(pages.ts_wasm.raw),
        page::kb(pages.ts_wasm.gzip),
        page::kb(pages.ts_bundle.raw),
        page::kb(pages.ts_bundle.gzip),
    );
    println!("The example's pages, once it listens (Ctrl-C stops it):");
    println!("    http://{listen}/rust/   (Rust: its tonic client over keepalive_client::Channel)");
    println!(
        "    http://{listen}/ts/     (TypeScript: its connect-es client over keepaliveTransport)"
    );
    println!();
    let data = ws.target_dir().join("prices-example");
    ws.cargo()
        .args(["run", "-p", "prices-server", "--bin", "prices-server", "--"])
        .args(["--listen", listen, "--pages"])
        .arg(&pages.dist)
        .arg("--data-dir")
        .arg(&data)
        .run()
}
