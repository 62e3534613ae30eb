//! `cargo xtask bench`: builds what the bench runs, then runs it. The bench itself — the
//! scenarios, their processes, the tables and `bench.json` — is loadgen's `bench` binary
//! (`loadgen/src/bench/`); xtask only builds: the release `server`, `loadgen`,
//! `bench-server` and `bench`, and, for the sizes scenario, the files whose sizes it
//! reports (Trunk, wasm-bindgen, wasm-opt, esbuild: tools only xtask drives). For the
//! overhead and latency scenarios it installs Debian's h2load and nghttp
//! (`nghttp2-client`), for the latency scenario also Go and
//! grpc-go (`golang-go`, `golang-google-grpc-dev`) and builds `loadgen/grpc-go-health`
//! offline into `target/grpc-go-health`. The bench writes `target/bench/bench.md`,
//! `bench.json` (the previous one kept as `bench.prev.json`) and every process's log.

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
pub const SCENARIOS: [&str; 9] = [
    "capacity",
    "idle",
    "overhead",
    "latency",
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
    let runs = |name: &str| opts.only.is_empty() || opts.only.iter().any(|s| s == name);
    if runs("replicas") {
        // Redis and nginx, from Debian, as `cargo xtask setup` installs them.
        crate::setup::servers()?;
    }
    if runs("capacity") || runs("idle") || runs("overhead") {
        // The profiles of the targets that are missed: perf, callgrind, DHAT.
        crate::setup::apt("perf, valgrind", PROFILE_PACKAGES, || None)?;
    }
    if runs("overhead") {
        // Its pinned rounds: h2load against each server.
        crate::setup::apt("h2load", &LATENCY_PACKAGES[..1], || None)?;
    }
    let target = ws.target_dir();
    let grpc_go = if runs("latency") {
        crate::setup::apt("h2load, go, grpc-go", LATENCY_PACKAGES, || None)?;
        Some(build_grpc_go(ws, &target)?)
    } else {
        None
    };
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
    if let Some(grpc_go) = grpc_go {
        bench = bench.arg("--grpc-go").arg(grpc_go);
    }
    if opts.quick {
        bench = bench.arg("--quick");
    }
    if !opts.only.is_empty() {
        bench = bench.arg("--only").arg(opts.only.join(","));
    }
    if runs("sizes") {
        for (key, path, label) in artifacts(ws)? {
            bench = bench.arg("--artifact").arg(key).arg(path).arg(label);
        }
    }
    bench.run()
}

/// What the latency scenario runs, from Debian: h2load and nghttp, Go and grpc-go 1.33's
/// sources (built offline, GOPATH mode). `nghttp2-client` first: the overhead
/// scenario's pinned rounds need only h2load.
const LATENCY_PACKAGES: &[&str] = &["nghttp2-client", "golang-go", "golang-google-grpc-dev"];

/// What the profiles run, from Debian: `perf` (capacity), valgrind's callgrind (overhead)
/// and DHAT (idle).
const PROFILE_PACKAGES: &[&str] = &["linux-perf", "valgrind"];

/// Where Debian's Go packages keep their sources (a GOPATH).
const DEBIAN_GOPATH: &str = "/usr/share/gocode";

/// `go build` of `loadgen/grpc-go-health` into `target/grpc-go-health`, offline: GOPATH
/// mode over Debian's sources, no module proxy, the build cache inside `target`.
fn build_grpc_go(ws: &Workspace, target: &Path) -> Result<PathBuf> {
    let out = target.join("grpc-go-health");
    Cmd::new("go")
        .arg("build")
        .arg("-o")
        .arg(&out)
        .arg("./loadgen/grpc-go-health")
        .env("GO111MODULE", "off")
        .env("GOPATH", DEBIAN_GOPATH)
        .env("GOPROXY", "off")
        .env("GOFLAGS", "")
        .env("CGO_ENABLED", "0")
        .env("GOCACHE", target.join("go-cache"))
        .dir(ws.root())
        .run()?;
    Ok(out)
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
