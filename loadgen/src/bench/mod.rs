//! The bench (`bench` binary, run by `cargo xtask bench`): measures capacity, overhead,
//! latency, detection, recovery, fan-out and sizes on this machine, prints markdown
//! tables and writes `bench.md` and `bench.json` into its output directory
//! (`target/bench`). A `bench.json` already there is the previous run's: read first, its
//! figures shown next to this run's under each table (see [`compare`]), and kept as
//! `bench.prev.json`.
//!
//! It runs each scenario with fresh processes of the release `server`, `loadgen` and
//! `bench-server` (built by `cargo xtask bench`, named by `--server`, `--loadgen`,
//! `--bench-server`; the latency scenario also grpc-go's health server, `--grpc-go`, and
//! Debian's h2load) on 127.0.0.1 (nothing else is ever a target). Servers are
//! [`testkit::ServerProcess`]es on a port of their own choosing; load generator runs are
//! children killed on drop; so every child is killed on the way out, also when the bench
//! fails or is interrupted. Nothing timed is asserted: the figures are reported next to
//! their targets. Logs of every process go to `*.log` in the output directory.
//!
//! Scenarios (issues 5, 12, 13), in this order:
//! - [`capacity`]: N sessions with a heartbeat every second (`--probe`) and a ticker at
//!   10 events/s, ours and the stock tonic server; RTT percentiles, errors, server CPU per
//!   delivered event (user / kernel) and per 1 000 heartbeats (`/proc/<pid>/stat` over
//!   the window), server RSS per session (`VmRSS` delta / N); a `perf` profile at 10 000;
//! - [`idle`]: the server's memory per idle connection (HTTP/2, HTTP/1.1 keep-alive),
//!   marginal between two sizes, ours and stock; a DHAT profile of ours by allocation site;
//! - [`overhead`]: the same unary call (Heartbeat) against our server and a stock
//!   `tonic::transport::Server` with the same service, over HTTP/2 and gRPC-web/HTTP/1.1,
//!   rounds alternating between the two; requests/s with `loadgen unary` on shared
//!   cores, and with h2load, each server pinned to core 0 and h2load to core 1 (the
//!   target's); user-space instructions per call under callgrind, by crate and by
//!   function;
//! - [`latency`]: h2load's unary Health/Check (50 connections × 10 streams) against our
//!   server, the stock tonic server and grpc-go's, the server pinned to core 0 and h2load
//!   to core 1, rounds alternating; requests/s and p50/p99/max; targets p99 ≤ grpc-go's
//!   and requests/s ≥ 1.2× grpc-go's;
//! - [`detection`]: chaos STALL with sessions connected; when each leaves READY;
//! - [`recovery`]: the server killed and started again on the same port with the same
//!   file-backed event log; READY again and the first resumed event, per session, and
//!   the reconnect storm per 100 ms;
//! - [`fanout`]: events/s delivered to 1 000 subscribers of a fast ticker;
//! - [`replicas`]: the event log on Redis Streams: 500 events/s with the memory log and
//!   with Redis (the per-event cost), 3 replicas behind nginx (publish → deliver lag,
//!   events/s as fast as it goes), a replica killed (resume on the others);
//! - [`sizes`]: files built by `cargo xtask bench` (`--artifact KEY PATH LABEL`): the
//!   client library's wasm for a Rust-only page (the example's) and with the JS bindings,
//!   the TypeScript page's bundle, the dashboard's wasm; raw and gzip.
//!
//! # Layout
//! - `mod.rs`: the options, the scenarios run in order, the report put together.
//! - [`capacity`], [`idle`], [`overhead`], [`latency`], [`detection`], [`recovery`],
//!   [`fanout`], [`replicas`], [`sizes`]: one module per scenario, each returning its
//!   markdown table and its JSON.
//! - [`children`]: the servers ([`testkit::ServerProcess`], restarted on the same port)
//!   and the load generator runs (its `READY`/`MEASURE`/`REPORT` lines, what the server
//!   used in the window).
//! - [`h2load`]: nghttp2's h2load on core 1 against a server pinned to core 0: one run,
//!   its summary and log parsed, answers checked by their size (overhead's pinned
//!   rounds, latency).
//! - [`profile`]: where the time or the memory goes where a target is missed: `perf`
//!   over a window, callgrind's dumps by function and crate, DHAT's heap by site.
//! - [`machine`]: `/proc`: CPU time and RSS of a process, the machine's busy CPU time,
//!   the load average, the machine's description; the open-file limit.
//! - [`report`]: table cells, JSON objects in a fixed key order, `bench.md` and
//!   `bench.json` (the previous one kept as `bench.prev.json`).
//! - [`compare`]: the previous run's figures next to this run's, under each table.
//! - `src/bin/bench.rs`: the command line.

pub mod capacity;
pub mod children;
pub mod compare;
pub mod detection;
pub mod fanout;
pub mod h2load;
pub mod idle;
pub mod latency;
pub mod machine;
pub mod overhead;
pub mod profile;
pub mod recovery;
pub mod replicas;
pub mod report;
pub mod sizes;

use report::{Object, Section};
use std::path::PathBuf;
use std::time::Instant;

/// What can go wrong: a message for a person (which process, which log).
pub type Result<T, E = String> = std::result::Result<T, E>;

/// Every scenario, in order.
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

/// The chaos token of the bench's servers (loopback only, thrown away after).
pub const CHAOS_TOKEN: &str = "bench";

/// The bench's command line.
#[derive(clap::Parser, Debug, Clone)]
#[command(
    name = "bench",
    about = "Capacity, overhead, latency, detection, recovery, fan-out and sizes on this machine \
             (loopback only); run by `cargo xtask bench`"
)]
pub struct Options {
    /// Small and short: a check that every scenario runs, not a measurement.
    #[arg(long)]
    pub quick: bool,
    /// Only these scenarios, comma-separated (default: all): capacity, idle, overhead,
    /// latency, detection, recovery, fanout, replicas, sizes.
    #[arg(long, value_delimiter = ',')]
    pub only: Vec<String>,
    /// The release `server` (default: next to this binary).
    #[arg(long)]
    pub server: Option<PathBuf>,
    /// The release `loadgen` (default: next to this binary).
    #[arg(long)]
    pub loadgen: Option<PathBuf>,
    /// The release `bench-server` (default: next to this binary).
    #[arg(long)]
    pub bench_server: Option<PathBuf>,
    /// grpc-go's health server, the latency scenario's reference (`cargo xtask bench`
    /// builds it from `loadgen/grpc-go-health`).
    #[arg(long)]
    pub grpc_go: Option<PathBuf>,
    /// Where `bench.md`, `bench.json` and the logs go.
    #[arg(long)]
    pub out: PathBuf,
    /// A built file for the sizes scenario, its key in `bench.json` and its row's label
    /// (repeated; rows in this order).
    #[arg(long, num_args = 3, value_names = ["KEY", "PATH", "LABEL"])]
    pub artifact: Vec<String>,
}

/// The programs the scenarios run.
#[derive(Debug, Clone)]
pub struct Bins {
    /// Our server.
    pub server: PathBuf,
    /// The load generator.
    pub loadgen: PathBuf,
    /// The stock tonic server of the overhead comparison.
    pub bench_server: PathBuf,
    /// grpc-go's health server (`--grpc-go`), for the latency scenario.
    pub grpc_go: Option<PathBuf>,
}

/// A file whose size the sizes scenario reports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Artifact {
    /// Its key in `bench.json`.
    pub key: String,
    /// The file.
    pub path: PathBuf,
    /// What it is, in the table.
    pub label: String,
}

/// What every scenario gets.
#[derive(Debug)]
pub struct Ctx {
    /// The programs.
    pub bins: Bins,
    /// Where the logs (and callgrind's dumps) go.
    pub out: PathBuf,
    /// `--quick`.
    pub quick: bool,
    /// Loadgen runtime threads: one, so that the server keeps the other core.
    pub threads: String,
    /// The files of the sizes scenario.
    pub artifacts: Vec<Artifact>,
}

impl Options {
    /// The scenarios to run, in order; an unknown name is an error.
    pub fn scenarios(&self) -> Result<Vec<&'static str>> {
        for s in &self.only {
            if !SCENARIOS.contains(&s.as_str()) {
                return Err(format!(
                    "unknown scenario `{s}` (one of {})",
                    SCENARIOS.join(", ")
                ));
            }
        }
        Ok(SCENARIOS
            .into_iter()
            .filter(|s| self.only.is_empty() || self.only.iter().any(|o| o == s))
            .collect())
    }

    /// The `--artifact` triples.
    pub fn artifacts(&self) -> Vec<Artifact> {
        self.artifact
            .chunks_exact(3)
            .map(|a| Artifact {
                key: a[0].clone(),
                path: PathBuf::from(&a[1]),
                label: a[2].clone(),
            })
            .collect()
    }

    fn bins(&self) -> Result<Bins> {
        let next_to_us = |name: &str| -> Result<PathBuf> {
            let exe = std::env::current_exe().map_err(|e| format!("where am I: {e}"))?;
            Ok(exe.with_file_name(name))
        };
        let pick = |given: &Option<PathBuf>, name: &str| -> Result<PathBuf> {
            let path = match given {
                Some(p) => p.clone(),
                None => next_to_us(name)?,
            };
            if !path.is_file() {
                return Err(format!(
                    "no {name} at {} (`cargo xtask bench` builds it)",
                    path.display()
                ));
            }
            Ok(path)
        };
        Ok(Bins {
            server: pick(&self.server, "server")?,
            loadgen: pick(&self.loadgen, "loadgen")?,
            bench_server: pick(&self.bench_server, "bench-server")?,
            grpc_go: self.grpc_go.clone(),
        })
    }
}

/// Runs the selected scenarios in order and writes the report.
pub async fn run(opts: &Options) -> Result<()> {
    let scenarios = opts.scenarios()?;
    if scenarios.contains(&"latency") && opts.grpc_go.is_none() {
        return Err(
            "the latency scenario needs grpc-go's health server (`--grpc-go PATH`; \
             `cargo xtask bench` builds and passes it)"
                .into(),
        );
    }
    if scenarios.contains(&"sizes") && opts.artifact.is_empty() {
        return Err(
            "the sizes scenario needs the built files (`--artifact KEY PATH LABEL`; \
             `cargo xtask bench` builds and passes them)"
                .into(),
        );
    }
    let started = Instant::now();
    std::fs::create_dir_all(&opts.out)
        .map_err(|e| format!("cannot create {}: {e}", opts.out.display()))?;
    let ctx = Ctx {
        bins: opts.bins()?,
        out: opts.out.clone(),
        quick: opts.quick,
        threads: "1".into(),
        artifacts: opts.artifacts(),
    };
    // Children inherit it: ten thousand sessions are twenty thousand sockets on each side.
    let nofile = machine::set_nofile(machine::NOFILE);
    let machine = machine::describe();
    let load_before = machine::loadavg();
    println!("\n{machine}; load before: {load_before}\n");

    // The previous run's figures, compared with this run's under each table.
    let previous = report::previous(&opts.out);
    let mut sections = Vec::new();
    for name in scenarios {
        println!("== {name} ==");
        let t = Instant::now();
        let mut section = match name {
            "capacity" => capacity::run(&ctx, nofile).await,
            "idle" => idle::run(&ctx, nofile).await,
            "overhead" => overhead::run(&ctx).await,
            "latency" => latency::run(&ctx).await,
            "detection" => detection::run(&ctx).await,
            "recovery" => recovery::run(&ctx).await,
            "fanout" => fanout::run(&ctx).await,
            "replicas" => replicas::run(&ctx).await,
            _ => sizes::run(&ctx).await,
        }?;
        if let Some(before) = previous.as_ref().and_then(|p| p.get(name)) {
            let now = compare::Json::parse(section.json.get())
                .map_err(|e| format!("{name}: its own JSON: {e}"))?;
            section
                .table
                .push_str(&compare::section(&compare::compare(before, &now)));
        }
        println!("{}", section.table);
        println!("({name}: {:.0} s)\n", t.elapsed().as_secs_f64());
        sections.push((name, section));
    }

    let load_after = machine::loadavg();
    let took = started.elapsed().as_secs_f64();
    let header = format!(
        "Machine: {machine}. Load average before: {load_before}; after: {load_after}. \
         Bench took {took:.0} s{}.\n",
        if opts.quick {
            " (--quick: not a measurement)"
        } else {
            ""
        }
    );
    let mut md = format!("# cargo xtask bench\n\n{header}\n");
    if let Some(p) = &previous {
        md.push_str(&report::previous_note(p, opts.quick));
    }
    let mut json = Object::new()
        .with("machine", &machine)
        .with("load_before", &load_before)
        .with("load_after", &load_after)
        .with("quick", opts.quick)
        .with("seconds", report::fixed(took, 1));
    for (name, Section { table, json: j }) in sections {
        md.push_str(&table);
        md.push('\n');
        json = json.with(name, j);
    }
    let (md_path, json_path) = report::write(&ctx.out, &md, &json)?;
    println!("{md}");
    println!(
        "written: {} and {}",
        report::shown(&md_path),
        report::shown(&json_path)
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[test]
    fn parses_the_command_line() {
        let opts = Options::try_parse_from([
            "bench",
            "--quick",
            "--only",
            "capacity,sizes",
            "--out",
            "target/bench",
            "--grpc-go",
            "target/grpc-go-health",
            "--artifact",
            "dashboard",
            "web/dist/web_bg.wasm",
            "dashboard wasm (`web/dist`)",
            "--artifact",
            "ts_page_bundle",
            "main.js",
            "TypeScript page bundle",
        ])
        .expect("parses");
        assert!(opts.quick);
        assert_eq!(opts.grpc_go, Some(PathBuf::from("target/grpc-go-health")));
        assert_eq!(opts.scenarios(), Ok(vec!["capacity", "sizes"]));
        let artifacts = opts.artifacts();
        assert_eq!(artifacts.len(), 2);
        assert_eq!(artifacts[0].key, "dashboard");
        assert_eq!(artifacts[0].path, PathBuf::from("web/dist/web_bg.wasm"));
        assert_eq!(artifacts[0].label, "dashboard wasm (`web/dist`)");
        assert_eq!(artifacts[1].key, "ts_page_bundle");

        let all = Options::try_parse_from(["bench", "--out", "x"]).expect("parses");
        assert_eq!(all.scenarios(), Ok(SCENARIOS.to_vec()));
        assert_eq!(all.grpc_go, None);
        let typo =
            Options::try_parse_from(["bench", "--out", "x", "--only", "capacty"]).expect("parses");
        assert!(typo.scenarios().is_err());
        assert!(Options::try_parse_from(["bench", "--out", "x", "--artifact", "k", "p"]).is_err());
        assert!(Options::try_parse_from(["bench"]).is_err());
    }
}
