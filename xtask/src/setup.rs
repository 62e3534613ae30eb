//! `cargo xtask setup`: install what the build and the tests need, idempotently.
//!
//! Every step checks first and does nothing when the thing is already there at
//! the pinned version, and prints one `[setup] NAME: ok (...)` line either way,
//! so running setup again is cheap (well under a second when all is in place).
//!
//! Always:
//! - the `wasm32-unknown-unknown` target and the rustfmt/clippy components;
//! - a Python venv at `.tools/venv` with `tests/python/requirements.txt`
//!   installed (skipped when the stamp `.tools/venv/.requirements.installed`
//!   holds the same requirements and `grpc` imports).
//!
//! With `--browser` (see `shared/TOOLCHAIN.md` for why each pin):
//! - Debian's `chromium` and `chromium-driver` (`apt-get`);
//! - `wasm-bindgen-cli` at the `wasm-bindgen` version in `Cargo.lock`
//!   (`cargo install` without `--locked`: its lockfile wants a crate this
//!   registry lacks);
//! - `wasm-pack` and `trunk` (`cargo install --locked`);
//! - `wasm-opt` from npm's `binaryen` into `.tools/binaryen` (never Debian's);
//! - the TypeScript toolchain (tsc, esbuild, buf + protoc-gen-es, connect-es) into
//!   `.tools/js` with `npm ci` of `xtask/js-tools` (skipped when its stamp holds the same
//!   lock file).

use std::fs;
use std::path::Path;

use crate::cmd::Cmd;
use crate::error::{Error, Result, bail};
use crate::workspace::Workspace;

/// The wasm target the browser client is built for.
pub const WASM_TARGET: &str = "wasm32-unknown-unknown";
/// Debian packages for headless browser tests.
const APT_PACKAGES: &[&str] = &["chromium", "chromium-driver"];
/// What the replicas' tests and `cargo xtask demo --replicas` run: the shared store and
/// the load balancer (Debian's; started by the tests on their own ports, never as
/// services).
const APT_SERVERS: &[&str] = &["redis-server", "nginx"];
/// `wasm-bindgen-cli` when `Cargo.lock` has no `wasm-bindgen` yet.
const WASM_BINDGEN_FALLBACK: &str = "0.2.130";
/// `wasm-pack` version.
const WASM_PACK_VERSION: &str = "0.15.1";
/// `trunk` version (0.22 needs a newer Rust).
const TRUNK_VERSION: &str = "0.21.14";
/// npm `binaryen` version; Trunk.toml pins `wasm_opt = "version_132"`.
const BINARYEN_VERSION: &str = "132.0.0";
/// The stamp file in the venv recording which requirements are installed.
const VENV_STAMP: &str = ".requirements.installed";

/// What to set up.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Setup {
    /// Also install the browser toolchain (chromium, wasm-bindgen, wasm-pack,
    /// trunk, wasm-opt): several minutes on a fresh machine.
    pub browser: bool,
}

/// Runs the setup steps.
pub fn run(ws: &Workspace, setup: Setup) -> Result<()> {
    rust_target(ws)?;
    rust_components(ws)?;
    python_venv(ws)?;
    servers()?;
    if setup.browser {
        apt("chromium", APT_PACKAGES, || {
            first_line(Cmd::new("chromium").arg("--version"))
        })?;
        wasm_bindgen_cli(ws)?;
        wasm_pack(ws)?;
        trunk(ws)?;
        binaryen(ws)?;
        js_tools(ws)?;
    }
    Ok(())
}

/// What building the dashboard needs (`cargo xtask demo`): wasm-bindgen-cli, trunk and
/// wasm-opt, the `--browser` tools without Chromium and wasm-pack.
pub fn page_tools(ws: &Workspace) -> Result<()> {
    wasm_bindgen_cli(ws)?;
    trunk(ws)?;
    binaryen(ws)
}

/// What building the npm package needs (`cargo xtask client`): the page tools and the
/// TypeScript toolchain.
pub fn package_tools(ws: &Workspace) -> Result<()> {
    page_tools(ws)?;
    js_tools(ws)
}

/// Prints one progress line.
fn report(step: &str, what: impl std::fmt::Display) {
    println!("[setup] {step}: {what}");
}

/// The first line of `program --version` (or other probe arguments), if it runs.
fn first_line(cmd: Cmd) -> Option<String> {
    cmd.probe()
        .and_then(|out| out.lines().next().map(|l| l.trim().to_owned()))
}

// ------------------------------------------------------------------------- Rust

/// `rustup target add wasm32-unknown-unknown` unless it is installed.
fn rust_target(ws: &Workspace) -> Result<()> {
    const STEP: &str = "wasm32 target";
    let Some(installed) = Cmd::new("rustup")
        .args(["target", "list", "--installed"])
        .dir(&ws.root)
        .probe()
    else {
        report(
            STEP,
            "skipped (no rustup on PATH: install the target by hand)",
        );
        return Ok(());
    };
    if installed.lines().any(|l| l.trim() == WASM_TARGET) {
        report(STEP, "ok (already installed)");
        return Ok(());
    }
    report(STEP, "installing");
    Cmd::new("rustup")
        .args(["target", "add", WASM_TARGET])
        .dir(&ws.root)
        .run()?;
    report(STEP, "ok (installed)");
    Ok(())
}

/// Checks `cargo fmt` and `cargo clippy` run; `rustup component add` if not.
fn rust_components(ws: &Workspace) -> Result<()> {
    let tools = [("rustfmt", "fmt"), ("clippy", "clippy")];
    let version = |sub: &str| first_line(ws.cargo().args([sub, "--version"]));
    let missing: Vec<&str> = tools
        .iter()
        .filter_map(|&(component, sub)| match version(sub) {
            Some(v) => {
                report(component, format_args!("ok ({v})"));
                None
            }
            None => Some(component),
        })
        .collect();
    if missing.is_empty() {
        return Ok(());
    }
    Cmd::new("rustup")
        .args(["component", "add"])
        .args(&missing)
        .dir(&ws.root)
        .run()?;
    for (component, sub) in tools {
        if missing.contains(&component) {
            match version(sub) {
                Some(v) => report(component, format_args!("ok (installed: {v})")),
                None => bail!("`cargo {sub} --version` still fails after installing {component}"),
            }
        }
    }
    Ok(())
}

// ----------------------------------------------------------------------- Python

/// Creates `.tools/venv` and installs the pinned requirements into it, unless
/// the stamp says they are already installed and `grpc` imports.
fn python_venv(ws: &Workspace) -> Result<()> {
    const STEP: &str = "python venv";
    let venv = ws.venv_dir();
    let python = ws.venv_python();
    let requirements = fs::read_to_string(ws.requirements())
        .map_err(|e| Error::new(format!("cannot read {}: {e}", ws.requirements().display())))?;

    let python_works = || first_line(Cmd::new(&python).arg("--version")).is_some();
    if venv.exists() && !python_works() {
        report(
            STEP,
            format_args!("{} is broken: recreating it", ws.rel(&venv)),
        );
        fs::remove_dir_all(&venv)
            .map_err(|e| Error::new(format!("cannot remove {}: {e}", venv.display())))?;
    }
    if !venv.exists() {
        report(STEP, format_args!("creating {}", ws.rel(&venv)));
        fs::create_dir_all(ws.tools_dir())
            .map_err(|e| Error::new(format!("cannot create {}: {e}", ws.tools_dir().display())))?;
        Cmd::new("python3")
            .args(["-m", "venv"])
            .arg(&venv)
            .run()
            .map_err(|e| {
                Error::new(format!(
                    "{e}\nhint: python3 needs its venv module (Debian: `apt-get install python3-venv`)"
                ))
            })?;
    }

    let stamp = venv.join(VENV_STAMP);
    let stamped = fs::read_to_string(&stamp).is_ok_and(|s| s == requirements);
    let imports = || {
        Cmd::new(&python)
            .args(["-c", "import grpc, grpc_health.v1.health_pb2"])
            .probe()
            .is_some()
    };
    if stamped && imports() {
        report(
            STEP,
            format_args!("ok ({}, requirements unchanged)", ws.rel(&venv)),
        );
        return Ok(());
    }

    report(
        STEP,
        format_args!("installing {}", ws.rel(&ws.requirements())),
    );
    // A stale stamp must not survive a failed install.
    let _ = fs::remove_file(&stamp);
    Cmd::new(&python)
        .args([
            "-m",
            "pip",
            "install",
            "--no-input",
            "--disable-pip-version-check",
        ])
        // Wheels only: never spend 20 minutes compiling grpcio from source.
        .args(["--only-binary", ":all:", "-r"])
        .arg(ws.requirements())
        .run()?;
    if !imports() {
        bail!(
            "the venv's python cannot `import grpc` after installing {}",
            ws.requirements().display()
        );
    }
    fs::write(&stamp, &requirements)
        .map_err(|e| Error::new(format!("cannot write {}: {e}", stamp.display())))?;
    report(STEP, format_args!("ok ({}, installed)", ws.rel(&venv)));
    Ok(())
}

// ---------------------------------------------------------------------- browser

/// Whether `dpkg` reports the package as installed.
fn deb_installed(package: &str) -> bool {
    Cmd::new("dpkg-query")
        .args(["-W", "-f=${Status}", package])
        .probe()
        .is_some_and(|status| status.trim() == "install ok installed")
}

/// Redis and nginx (Debian's), for the replicas' tests, bench and demo.
pub fn servers() -> Result<()> {
    apt("redis + nginx", APT_SERVERS, || {
        first_line(Cmd::new("redis-server").arg("--version"))
    })
}

/// `apt-get install` of the `packages` that are missing (after one `apt-get update`),
/// with `sudo` when not root; `version` says what is there when nothing is missing.
pub fn apt(step: &str, packages: &[&str], version: impl Fn() -> Option<String>) -> Result<()> {
    let missing: Vec<&str> = packages
        .iter()
        .copied()
        .filter(|p| !deb_installed(p))
        .collect();
    if missing.is_empty() {
        let version = version().unwrap_or_else(|| "version unknown".into());
        report(step, format_args!("ok (already installed: {version})"));
        return Ok(());
    }
    report(step, format_args!("installing {}", missing.join(" ")));
    let root = first_line(Cmd::new("id").arg("-u")).as_deref() == Some("0");
    let apt = || {
        if root {
            Cmd::new("apt-get")
        } else {
            Cmd::new("sudo").arg("apt-get")
        }
        .env("DEBIAN_FRONTEND", "noninteractive")
    };
    apt().arg("update").run()?;
    apt().args(["install", "-y"]).args(&missing).run()?;
    for package in &missing {
        if !deb_installed(package) {
            bail!("`apt-get install {package}` finished but dpkg does not list it as installed");
        }
    }
    report(step, "ok (installed)");
    Ok(())
}

/// The version of `name` in a `Cargo.lock`, if the lock has exactly that package.
pub fn locked_version(lock: &str, name: &str) -> Option<String> {
    let wanted = format!("name = \"{name}\"");
    let mut lines = lock.lines().map(str::trim);
    while let Some(line) = lines.next() {
        if line == wanted {
            let version = lines.next()?;
            return version
                .strip_prefix("version = \"")?
                .strip_suffix('"')
                .map(str::to_owned);
        }
    }
    None
}

/// `cargo install` a crate unless `bin --version` already prints `version`.
fn cargo_install(
    ws: &Workspace,
    krate: &str,
    bin: &str,
    version: &str,
    locked: bool,
) -> Result<()> {
    let current = first_line(Cmd::new(bin).arg("--version"));
    // `wasm-bindgen 0.2.130`, `wasm-pack 0.15.1`, `trunk 0.21.14`
    let matches = |v: &str| v.split_whitespace().any(|word| word == version);
    if let Some(current) = current.as_deref().filter(|v| matches(v)) {
        report(bin, format_args!("ok (already installed: {current})"));
        return Ok(());
    }
    report(
        bin,
        format_args!(
            "installing {krate} {version} (was: {}; takes minutes)",
            current.as_deref().unwrap_or("not installed")
        ),
    );
    let mut cmd = ws
        .cargo()
        .args(["install", krate, "--version", version])
        // Build in cargo's own temporary directory, not the workspace target dir.
        .env_remove("CARGO_TARGET_DIR");
    if locked {
        cmd = cmd.arg("--locked");
    }
    cmd.run()?;
    match first_line(Cmd::new(bin).arg("--version")) {
        Some(v) if matches(&v) => report(bin, format_args!("ok (installed: {v})")),
        Some(v) => bail!(
            "installed {krate} {version} but `{bin} --version` prints `{v}`: is another {bin} first on PATH?"
        ),
        None => bail!(
            "installed {krate} {version} but `{bin}` does not run: is cargo's bin directory (~/.cargo/bin) on PATH?"
        ),
    }
    Ok(())
}

/// `wasm-bindgen-cli` at the version `Cargo.lock` locks `wasm-bindgen` to (the
/// CLI must match the library exactly).
fn wasm_bindgen_cli(ws: &Workspace) -> Result<()> {
    let lock = fs::read_to_string(ws.cargo_lock()).unwrap_or_default();
    let version = locked_version(&lock, "wasm-bindgen");
    if version.is_none() {
        report(
            "wasm-bindgen",
            format_args!("no wasm-bindgen in Cargo.lock: using {WASM_BINDGEN_FALLBACK}"),
        );
    }
    let version = version.as_deref().unwrap_or(WASM_BINDGEN_FALLBACK);
    // Without --locked: the CLI's lockfile wants a crate this registry lacks.
    cargo_install(ws, "wasm-bindgen-cli", "wasm-bindgen", version, false)?;
    // The browser tests run through the test runner the same crate installs.
    const RUNNER: &str = "wasm-bindgen-test-runner";
    match first_line(Cmd::new(RUNNER).arg("--version")) {
        Some(v) if v.split_whitespace().any(|w| w == version) => {
            report(RUNNER, format_args!("ok ({v})"));
            Ok(())
        }
        other => bail!(
            "`{RUNNER} --version` gives {other:?}, expected {version}: reinstall with \
             `cargo install wasm-bindgen-cli --version {version} --force`"
        ),
    }
}

/// `wasm-pack`, pinned.
fn wasm_pack(ws: &Workspace) -> Result<()> {
    cargo_install(ws, "wasm-pack", "wasm-pack", WASM_PACK_VERSION, true)
}

/// `trunk`, pinned.
fn trunk(ws: &Workspace) -> Result<()> {
    cargo_install(ws, "trunk", "trunk", TRUNK_VERSION, true)
}

/// `wasm-opt` from npm's `binaryen` into `.tools/binaryen`.
fn binaryen(ws: &Workspace) -> Result<()> {
    const STEP: &str = "wasm-opt";
    let dir = ws.binaryen_dir();
    let wasm_opt = ws.wasm_opt_bin_dir().join("wasm-opt");
    let major = BINARYEN_VERSION
        .split('.')
        .next()
        .unwrap_or(BINARYEN_VERSION);
    // `wasm-opt version 132 (version_132)`
    let version = || first_line(Cmd::new(&wasm_opt).arg("--version"));
    let matches = |v: &str| v.contains(&format!("version {major}"));
    if let Some(v) = version().filter(|v| matches(v)) {
        report(
            STEP,
            format_args!("ok (already installed: {v}, in {})", ws.rel(&wasm_opt)),
        );
        return Ok(());
    }
    report(
        STEP,
        format_args!(
            "installing binaryen@{BINARYEN_VERSION} into {}",
            ws.rel(&dir)
        ),
    );
    fs::create_dir_all(&dir)
        .map_err(|e| Error::new(format!("cannot create {}: {e}", dir.display())))?;
    write_if_missing(
        &dir.join("package.json"),
        "{ \"name\": \"xtask-tools\", \"private\": true }\n",
    )?;
    Cmd::new("npm")
        .args(["install", "--no-audit", "--no-fund", "--save-exact"])
        .arg(format!("binaryen@{BINARYEN_VERSION}"))
        .dir(&dir)
        .run()?;
    match version() {
        Some(v) if matches(&v) => report(STEP, format_args!("ok (installed: {v})")),
        other => bail!(
            "installed binaryen@{BINARYEN_VERSION} but `{} --version` gives {other:?}",
            wasm_opt.display()
        ),
    }
    Ok(())
}

/// The TypeScript toolchain: `npm ci` of `xtask/js-tools` into `.tools/js`.
fn js_tools(ws: &Workspace) -> Result<()> {
    const STEP: &str = "typescript tools";
    let src = ws.js_tools_manifest_dir();
    let dir = ws.js_tools_dir();
    let read = |p: &Path| {
        fs::read_to_string(p).map_err(|e| Error::new(format!("cannot read {}: {e}", p.display())))
    };
    let manifest = read(&src.join("package.json"))?;
    let lock = read(&src.join("package-lock.json"))?;
    let stamp = dir.join(".installed");
    let tsc = ws.js_bin_dir().join("tsc");
    if tsc.is_file() && fs::read_to_string(&stamp).is_ok_and(|s| s == lock) {
        report(
            STEP,
            format_args!("ok (already installed in {})", ws.rel(&dir)),
        );
        return Ok(());
    }
    report(
        STEP,
        format_args!("installing xtask/js-tools into {}", ws.rel(&dir)),
    );
    fs::create_dir_all(&dir)
        .map_err(|e| Error::new(format!("cannot create {}: {e}", dir.display())))?;
    let write = |p: &Path, text: &str| {
        fs::write(p, text).map_err(|e| Error::new(format!("cannot write {}: {e}", p.display())))
    };
    write(&dir.join("package.json"), &manifest)?;
    write(&dir.join("package-lock.json"), &lock)?;
    Cmd::new("npm")
        .args(["ci", "--no-audit", "--no-fund"])
        .dir(&dir)
        .run()?;
    if !tsc.is_file() {
        bail!("npm ci in {} did not install tsc", dir.display());
    }
    write(&stamp, &lock)?;
    report(STEP, "ok (installed)");
    Ok(())
}

fn write_if_missing(path: &Path, contents: &str) -> Result<()> {
    if path.exists() {
        return Ok(());
    }
    fs::write(path, contents)
        .map_err(|e| Error::new(format!("cannot write {}: {e}", path.display())))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_locked_version() {
        let lock = "[[package]]\nname = \"wasm-bindgen-macro\"\nversion = \"0.2.1\"\n\n\
                    [[package]]\nname = \"wasm-bindgen\"\nversion = \"0.2.130\"\nsource = \"x\"\n";
        assert_eq!(
            locked_version(lock, "wasm-bindgen").as_deref(),
            Some("0.2.130")
        );
        assert_eq!(locked_version(lock, "trunk"), None);
    }
}
