//! Where the workspace's binaries are. The harness never builds them (a test that shells
//! out to `cargo build` holds cargo's lock, hides compile errors in a panic and rebuilds
//! with other flags than the caller): `cargo xtask test` builds them first and names
//! them in `KEEPALIVE_SERVER_BIN` and `KEEPALIVE_PRICES_BIN`; without those, the debug
//! build in the target directory is used if it is there.

use std::path::{Path, PathBuf};

/// Names a prebuilt demo `server` binary.
pub const SERVER_BIN_ENV: &str = "KEEPALIVE_SERVER_BIN";

/// Names a prebuilt `prices-server` (the example) binary.
pub const PRICES_BIN_ENV: &str = "KEEPALIVE_PRICES_BIN";

/// The workspace root (the parent of this crate's manifest directory).
pub fn workspace_root() -> PathBuf {
    let dir = Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/.."));
    dir.canonicalize().unwrap_or_else(|_| dir.to_path_buf())
}

/// The cargo target directory: `CARGO_TARGET_DIR` (or `CARGO_BUILD_TARGET_DIR`) if set,
/// resolved against the workspace root when relative, else `<workspace>/target`.
pub fn target_dir() -> PathBuf {
    let root = workspace_root();
    ["CARGO_TARGET_DIR", "CARGO_BUILD_TARGET_DIR"]
        .iter()
        .find_map(|var| std::env::var_os(var).filter(|v| !v.is_empty()))
        .map(|dir| root.join(dir))
        .unwrap_or_else(|| root.join("target"))
}

/// The demo server (`KEEPALIVE_SERVER_BIN`, else `target/debug/server`).
///
/// # Panics
/// If neither exists: the message says how to build it.
pub fn server_binary() -> PathBuf {
    binary(SERVER_BIN_ENV, "server", "server")
}

/// The example's server (`KEEPALIVE_PRICES_BIN`, else `target/debug/prices-server`).
///
/// # Panics
/// If neither exists.
pub fn prices_server_binary() -> PathBuf {
    binary(PRICES_BIN_ENV, "prices-server", "prices-server")
}

/// `env` if set (it must be a file), else `<target>/debug/NAME`.
///
/// # Panics
/// If that file does not exist.
pub fn binary(env: &str, package: &str, name: &str) -> PathBuf {
    if let Some(bin) = std::env::var_os(env).filter(|v| !v.is_empty()) {
        let bin = PathBuf::from(bin);
        assert!(bin.is_file(), "{env}={} is not a file", bin.display());
        return bin;
    }
    let bin = target_dir()
        .join("debug")
        .join(format!("{name}{}", std::env::consts::EXE_SUFFIX));
    assert!(
        bin.is_file(),
        "no {} (and {env} is not set): build it with `cargo build -p {package} --bin {name}` \
         (`cargo xtask test` does)",
        bin.display()
    );
    bin
}
