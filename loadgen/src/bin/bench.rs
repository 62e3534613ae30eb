//! `bench`: the measurements of `cargo xtask bench` (capacity, overhead, detection,
//! recovery, fan-out, sizes; see `loadgen::bench`), which builds the release binaries and
//! the size artifacts, then runs this.
//!
//! ```sh
//! bench --out target/bench [--quick] [--only capacity,overhead] \
//!     [--server PATH] [--loadgen PATH] [--bench-server PATH] [--artifact KEY PATH LABEL]...
//! ```
//!
//! Progress and the tables go to stdout, `bench.md`, `bench.json` and every process's log
//! into `--out`. Ctrl-C (or any failure) kills every child first.

use clap::Parser;
use loadgen::bench::{self, Options};
use std::process::ExitCode;

fn main() -> ExitCode {
    let opts = Options::parse();
    // The bench only waits on its children: one thread leaves the cores to them.
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async {
        tokio::select! {
            result = bench::run(&opts) => result,
            _ = tokio::signal::ctrl_c() => Err("interrupted".to_string()),
        }
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("\nerror: {e}");
            ExitCode::FAILURE
        }
    }
}
