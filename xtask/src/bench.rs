//! `cargo xtask bench`: builds what the bench runs, then runs it. The bench itself — the
//! scenarios, their processes, the tables and `bench.json` — is loadgen's `bench` binary
//! (`loadgen/src/bench/`); xtask only builds: the release `server`, `loadgen`,
//! `bench-server` and `bench`, and, for the sizes scenario, the files whose sizes it
//! reports (Trunk, wasm-bindgen, wasm-opt, esbuild: tools only xtask drives). The bench
//! writes `target/bench/bench.md`, `bench.json` and every process's log.

use crate::cmd::Cmd;
use crate::error::{Error, Result, bail};
use crate::workspace::Workspace;
use std::path::{Path, PathBuf};

/// Options of `cargo xtask bench`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BenchOptions {
    /// Small and short: a check that every scenario runs, not a measurement.
    pub quick: bool,
    /// Only these scenarios (empty: all).
    pub only: Vec<String>,
}

/// Every scenario, in order (the bench checks them too; here a typo fails before the
/// release build).
pub const SCENARIOS: [&str; 8] = [
    "capacity",
    "idle",
    "overhead",
    "detection",
    "recovery",
    "fanout",
    "replicas",
    "sizes",
];

/// Runs `cargo xtask bench`.
pub fn run(ws: &Workspace, opts: &BenchOptions) -> Result<()> {
    for s in &opts.only {
        if !SCENARIOS.contains(&s.as_str()) {
            bail!("unknown scenario `{s}` (one of {})", SCENARIOS.join(", "));
        }
    }
    if opts.only.is_empty() || opts.only.iter().any(|s| s == "replicas") {
        // Redis and nginx, from Debian, as `cargo xtask setup` installs them.
        crate::setup::servers()?;
    }
    let target = ws.target_dir();
    ws.cargo()
        .args([
            "build",
            "--release",
            "-p",
            "server",
            "-p",
            "loadgen",
            "--bins",
        ])
        .run()?;
    let release = target.join("release");
    let mut bench = Cmd::new(release.join("bench"))
        .arg("--server")
        .arg(release.join("server"))
        .arg("--loadgen")
        .arg(release.join("loadgen"))
        .arg("--bench-server")
        .arg(release.join("bench-server"))
        .arg("--out")
        .arg(target.join("bench"))
        .dir(ws.root());
    if opts.quick {
        bench = bench.arg("--quick");
    }
    if !opts.only.is_empty() {
        bench = bench.arg("--only").arg(opts.only.join(","));
    }
    if opts.only.is_empty() || opts.only.iter().any(|s| s == "sizes") {
        for (key, path, label) in artifacts(ws)? {
            bench = bench.arg("--artifact").arg(key).arg(path).arg(label);
        }
    }
    bench.run()
}

/// The files of the sizes scenario, built: the client library as its users get it (a
/// Rust-only page, the example's, with no JS layer; the npm package's wasm with the JS
/// bindings and the TypeScript page's bundle) and the dashboard's wasm.
fn artifacts(ws: &Workspace) -> Result<Vec<(&'static str, PathBuf, &'static str)>> {
    let pages = crate::example::build(ws)?;
    let dashboard = crate::page::build(ws)?;
    Ok(vec![
        (
            "client_rust_page",
            pages.dist.join("rust").join("prices-web_bg.wasm"),
            "Rust-only page: example prices-web (client library, tonic client, page code)",
        ),
        (
            "client_js_wasm",
            ws.target_dir()
                .join(crate::client::PKG_DIR)
                .join("keepalive_client_bg.wasm"),
            "client wasm with the JS bindings (`target/keepalive-client/pkg`)",
        ),
        (
            "ts_page_bundle",
            pages.dist.join("ts").join("main.js"),
            "TypeScript page bundle (example web-ts `main.js`, esbuild --minify)",
        ),
        (
            "dashboard",
            wasm_in(&dashboard)?,
            "dashboard wasm (`web/dist`)",
        ),
    ])
}

/// The `.wasm` Trunk wrote into `dist` (`web-<hash>_bg.wasm`).
fn wasm_in(dist: &Path) -> Result<PathBuf> {
    std::fs::read_dir(dist)
        .map_err(|e| Error::new(format!("cannot read {}: {e}", dist.display())))?
        .flatten()
        .map(|e| e.path())
        .find(|p| p.extension().is_some_and(|x| x == "wasm"))
        .ok_or_else(|| Error::new(format!("no .wasm in {}", dist.display())))
}
