//! Where things are: the workspace root, `.tools/`, the venv, cargo and the target dir.

use std::env;
use std::ffi::OsString;
use std::path::{Path, PathBuf};

use crate::cmd::Cmd;
use crate::error::{Result, bail};

/// Paths and programs every subcommand needs.
#[derive(Debug, Clone)]
pub struct Workspace {
    /// The workspace root (the parent of the xtask crate).
    pub root: PathBuf,
    /// The `cargo` to call: `$CARGO` (set by `cargo run`), else `cargo`.
    pub cargo: OsString,
}

impl Workspace {
    /// Finds the workspace from xtask's own manifest directory.
    pub fn locate() -> Result<Self> {
        let manifest_dir = env::var_os("CARGO_MANIFEST_DIR")
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")));
        let Some(root) = manifest_dir.parent() else {
            bail!(
                "cannot find the workspace: {} has no parent",
                manifest_dir.display()
            );
        };
        if !root.join("Cargo.toml").is_file() {
            bail!(
                "cannot find the workspace: no Cargo.toml in {}",
                root.display()
            );
        }
        let cargo = env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
        Ok(Self {
            root: root.to_owned(),
            cargo,
        })
    }

    /// A `cargo` command run in the workspace root.
    pub fn cargo(&self) -> Cmd {
        Cmd::new(&self.cargo).shown_as("cargo").dir(&self.root)
    }

    /// `.tools/`: project-local tools (venv, npm packages), ignored by git.
    pub fn tools_dir(&self) -> PathBuf {
        self.root.join(".tools")
    }

    /// The Python venv for the peer scripts.
    pub fn venv_dir(&self) -> PathBuf {
        self.tools_dir().join("venv")
    }

    /// The venv's Python interpreter (given to the tests as `KEEPALIVE_PYTHON`).
    pub fn venv_python(&self) -> PathBuf {
        self.venv_dir().join("bin").join("python")
    }

    /// `tests/python/`: the peer scripts and their pinned requirements.
    pub fn python_dir(&self) -> PathBuf {
        self.root.join("tests").join("python")
    }

    /// The pinned Python requirements.
    pub fn requirements(&self) -> PathBuf {
        self.python_dir().join("requirements.txt")
    }

    /// The gRPC core peer script (given to the tests as `KEEPALIVE_PEER`).
    pub fn peer_script(&self) -> PathBuf {
        self.python_dir().join("peer.py")
    }

    /// Where npm installs binaryen; its `node_modules/.bin` holds `wasm-opt`.
    pub fn binaryen_dir(&self) -> PathBuf {
        self.tools_dir().join("binaryen")
    }

    /// The directory to put first on `PATH` so `wasm-opt` is binaryen's, not Debian's.
    pub fn wasm_opt_bin_dir(&self) -> PathBuf {
        self.binaryen_dir().join("node_modules").join(".bin")
    }

    /// `Cargo.lock` at the root.
    pub fn cargo_lock(&self) -> PathBuf {
        self.root.join("Cargo.lock")
    }

    /// `.tools/js`: the TypeScript toolchain (`npm ci` of `xtask/js-tools`).
    pub fn js_tools_dir(&self) -> PathBuf {
        self.tools_dir().join("js")
    }

    /// Its `node_modules/.bin`: tsc, esbuild, buf, protoc-gen-es.
    pub fn js_bin_dir(&self) -> PathBuf {
        self.js_tools_dir().join("node_modules").join(".bin")
    }

    /// `xtask/js-tools`: the toolchain's pinned `package.json` and `package-lock.json`.
    pub fn js_tools_manifest_dir(&self) -> PathBuf {
        self.root.join("xtask").join("js-tools")
    }

    /// The root of the repository.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The cargo target directory, as `cargo metadata` reports it (honours
    /// `CARGO_TARGET_DIR` and config); falls back to `<root>/target`.
    pub fn target_dir(&self) -> PathBuf {
        self.cargo()
            .args([
                "metadata",
                "--format-version",
                "1",
                "--no-deps",
                "--offline",
            ])
            .probe()
            .and_then(|json| target_directory_from_metadata(&json))
            .unwrap_or_else(|| self.root.join("target"))
    }

    /// Shows `path` relative to the workspace root when it is inside it.
    pub fn rel<'a>(&self, path: &'a Path) -> std::borrow::Cow<'a, str> {
        match path.strip_prefix(&self.root) {
            Ok(rel) => rel.to_string_lossy(),
            Err(_) => path.to_string_lossy(),
        }
    }
}

/// Reads `"target_directory":"..."` out of `cargo metadata` JSON without a JSON
/// parser (xtask has no dependencies). Handles the escapes JSON uses in paths.
fn target_directory_from_metadata(json: &str) -> Option<PathBuf> {
    const KEY: &str = "\"target_directory\":\"";
    let start = json.find(KEY)? + KEY.len();
    let mut out = String::new();
    let mut chars = json[start..].chars();
    loop {
        match chars.next()? {
            '"' => return Some(PathBuf::from(out)),
            '\\' => match chars.next()? {
                'n' => out.push('\n'),
                't' => out.push('\t'),
                c @ ('"' | '\\' | '/') => out.push(c),
                // \uXXXX and the rest do not occur in sane paths; give up.
                _ => return None,
            },
            c => out.push(c),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_target_directory() {
        let json = r#"{"packages":[],"target_directory":"/w/x \"y\"\\z","version":1}"#;
        assert_eq!(
            target_directory_from_metadata(json),
            Some(PathBuf::from("/w/x \"y\"\\z"))
        );
        assert_eq!(target_directory_from_metadata("{}"), None);
    }

    #[test]
    fn locates_this_workspace() {
        let ws = Workspace::locate().expect("workspace");
        assert!(ws.root.join("xtask").join("Cargo.toml").is_file());
        assert!(ws.requirements().ends_with("tests/python/requirements.txt"));
    }
}
