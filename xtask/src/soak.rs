//! `cargo xtask soak [--faults N] [--seed S]`: the full chaos soak in a real browser.
//!
//! The soak itself is a browser test (`keepalive-client/tests/soak.rs`): a headless Chromium
//! page with the wasm client subscribed and publishing while the server is dropped,
//! stalled, refused, GOAWAYed, killed and restarted at random, then checked for lost or
//! duplicated events, a client stuck outside READY, leftover connections and server
//! memory. `cargo xtask test` runs it with 10 faults; this runs only it, with
//! [`DEFAULT_FAULTS`], under the same browser step (server under the supervisor, test
//! controller), and shows the page's `FIGURE soak` lines.

use std::ffi::OsString;

use crate::browser;
use crate::error::Result;
use crate::workspace::Workspace;

/// Faults in the full soak.
pub const DEFAULT_FAULTS: u32 = 100;

/// Options of `cargo xtask soak`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SoakOptions {
    /// How many faults.
    pub faults: u32,
    /// The fault schedule's seed (random when `None`; the page prints the one used).
    pub seed: Option<u64>,
}

impl Default for SoakOptions {
    fn default() -> Self {
        SoakOptions {
            faults: DEFAULT_FAULTS,
            seed: None,
        }
    }
}

/// Runs `cargo xtask soak`: builds the debug server and testkit, then the soak test alone.
pub fn run(ws: &Workspace, opts: &SoakOptions) -> Result<()> {
    ws.cargo()
        .args(["build", "-p", "server", "--bin", "server"])
        .args(["-p", "testkit", "--bin", "testkit"])
        .run()?;
    let mut env = vec![("KEEPALIVE_SOAK_FAULTS", opts.faults.to_string())];
    if let Some(seed) = opts.seed {
        env.push(("KEEPALIVE_SOAK_SEED", seed.to_string()));
    }
    // About 3 s per fault; the runner's timeout is per test binary.
    let timeout = (120 + u64::from(opts.faults) * 10).to_string();
    let args: Vec<OsString> = ["--test", "soak", "--", "--nocapture"]
        .iter()
        .map(OsString::from)
        .collect();
    browser::run_with(ws, &args, &env, &timeout).map(|_wall| ())
}
