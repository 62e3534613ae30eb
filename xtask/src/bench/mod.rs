//! `cargo xtask bench`: measures capacity, overhead, detection, recovery, fan-out and
//! sizes on this machine, prints markdown tables and writes `target/bench/bench.json`.
//!
//! It builds the release `server`, `loadgen` and `bench-server`, then runs each scenario
//! with fresh processes on free ports of 127.0.0.1 (nothing else is ever a target), and
//! kills every child on the way out, also on failure. Nothing timed is asserted: the
//! figures are reported next to their targets. Logs of every process go to
//! `target/bench/*.log`.
//!
//! Scenarios (issue 5):
//! - capacity: N sessions with a heartbeat every second (`--probe`) and a ticker at
//!   10 events/s; RTT percentiles, errors, server CPU per 1 000 heartbeats
//!   (`/proc/<pid>/stat` over the window), server RSS per session (`VmRSS` delta / N);
//! - overhead: the same unary call (Heartbeat) against our server and a stock
//!   `tonic::transport::Server` with the same service, over HTTP/2 and gRPC-web/HTTP/1.1,
//!   rounds alternating between the two; requests/s ratio of medians;
//! - detection: chaos STALL with sessions connected; when each leaves READY;
//! - recovery: the server killed and started again on the same port with the same
//!   file-backed event log; READY again and the first resumed event, per session, and
//!   the reconnect storm per 100 ms;
//! - fan-out: events/s delivered to 1 000 subscribers of a fast ticker;
//! - sizes: the client library's wasm for a Rust-only page (the example's) and with the JS
//!   bindings (`cargo xtask client`), the TypeScript page's bundle, the dashboard's wasm;
//!   raw and gzip.
//!
//! # Layout
//! - `mod.rs`: options, the scenarios, the tables and the JSON file.
//! - [`process`]: children killed on drop, free ports, `/proc` usage, `/metrics` scrapes.
//! - [`json`]: reading the load generator's JSON report.

pub mod json;
pub mod process;

use crate::error::{Error, Result, bail};
use crate::workspace::Workspace;
use json::Json;
use process::{Child, Usage};
use std::collections::HashMap;
use std::fmt::Write as _;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// Options of `cargo xtask bench`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BenchOptions {
    /// Small and short: a check that every scenario runs, not a measurement.
    pub quick: bool,
    /// Only these scenarios (empty: all).
    pub only: Vec<String>,
}

/// Every scenario, in order.
pub const SCENARIOS: [&str; 6] = [
    "capacity",
    "overhead",
    "detection",
    "recovery",
    "fanout",
    "sizes",
];

/// The chaos token of the bench's servers (loopback only, thrown away after).
const CHAOS_TOKEN: &str = "bench";

struct Bins {
    server: PathBuf,
    loadgen: PathBuf,
    bench_server: PathBuf,
}

struct Ctx {
    ws: Workspace,
    bins: Bins,
    out: PathBuf,
    quick: bool,
    /// Loadgen runtime threads: one, so that the server keeps the other core.
    threads: String,
}

/// Runs `cargo xtask bench`.
pub fn run(ws: &Workspace, opts: &BenchOptions) -> Result<()> {
    for s in &opts.only {
        if !SCENARIOS.contains(&s.as_str()) {
            bail!("unknown scenario `{s}` (one of {})", SCENARIOS.join(", "));
        }
    }
    let wanted = |s: &str| opts.only.is_empty() || opts.only.iter().any(|o| o == s);
    let started = Instant::now();
    let target = ws.target_dir();
    let out = target.join("bench");
    std::fs::create_dir_all(&out)
        .map_err(|e| Error::new(format!("cannot create {}: {e}", out.display())))?;
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
    let ctx = Ctx {
        ws: ws.clone(),
        bins: Bins {
            server: release.join("server"),
            loadgen: release.join("loadgen"),
            bench_server: release.join("bench-server"),
        },
        out,
        quick: opts.quick,
        threads: "1".into(),
    };
    let machine = machine();
    let load_before = loadavg();
    println!("\n{machine}; load before: {load_before}\n");

    let mut md = String::new();
    let mut js: Vec<(String, String)> = Vec::new();
    let mut section = |name: &str, f: &dyn Fn(&Ctx) -> Result<(String, String)>| -> Result<()> {
        if !wanted(name) {
            return Ok(());
        }
        println!("== {name} ==");
        let t = Instant::now();
        let (table, json) = f(&ctx)?;
        println!("{table}");
        println!("({name}: {:.0} s)\n", t.elapsed().as_secs_f64());
        md.push_str(&table);
        md.push('\n');
        js.push((name.to_string(), json));
        Ok(())
    };
    section("capacity", &capacity)?;
    section("overhead", &overhead)?;
    section("detection", &detection)?;
    section("recovery", &recovery)?;
    section("fanout", &fanout)?;
    section("sizes", &sizes)?;

    let load_after = loadavg();
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
    let report = format!("# cargo xtask bench\n\n{header}\n{md}");
    let md_path = ctx.out.join("bench.md");
    let json_path = ctx.out.join("bench.json");
    let json = format!(
        "{{\"machine\":{},\"load_before\":{},\"load_after\":{},\"quick\":{},\"seconds\":{took:.1},{}}}\n",
        quote(&machine),
        quote(&load_before),
        quote(&load_after),
        opts.quick,
        js.iter()
            .map(|(k, v)| format!("{}:{v}", quote(k)))
            .collect::<Vec<_>>()
            .join(",")
    );
    write(&md_path, &report)?;
    write(&json_path, &json)?;
    println!("{report}");
    println!("written: {} and {}", ws.rel(&md_path), ws.rel(&json_path));
    Ok(())
}

fn write(path: &Path, text: &str) -> Result<()> {
    std::fs::write(path, text)
        .map_err(|e| Error::new(format!("cannot write {}: {e}", path.display())))
}

/// A JSON string literal.
fn quote(s: &str) -> String {
    let mut out = String::from("\"");
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if (c as u32) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// CPU model, cores, memory, kernel.
fn machine() -> String {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let model = cpuinfo
        .lines()
        .find_map(|l| l.strip_prefix("model name"))
        .and_then(|l| l.split_once(':'))
        .map(|(_, m)| m.trim().to_string())
        .unwrap_or_else(|| "unknown CPU".into());
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    let mem_gib = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|m| {
            m.lines()
                .find_map(|l| l.strip_prefix("MemTotal:"))
                .and_then(|v| v.split_whitespace().next()?.parse::<f64>().ok())
        })
        .map_or(0.0, |kib| kib / 1024.0 / 1024.0);
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    format!(
        "{cores} cores ({model}), {mem_gib:.0} GiB, Linux {}",
        kernel.trim()
    )
}

/// The 1, 5 and 15 minute load averages.
fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "unknown".into())
}

/// A server on a free port, killed on drop.
struct Server {
    child: Child,
    addr: SocketAddr,
    program: PathBuf,
    args: Vec<String>,
    name: String,
}

impl Server {
    fn start(ctx: &Ctx, name: &str, program: &Path, flags: &[&str]) -> Result<Server> {
        let port = process::free_port()?;
        let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
        let mut args = vec!["--listen".to_string(), addr.to_string()];
        args.extend(flags.iter().map(|s| s.to_string()));
        let log = ctx.out.join(format!("{name}.log"));
        let _ = std::fs::remove_file(&log);
        let mut child = Child::spawn(name, program, &args, &log, false)?;
        process::wait_listening(addr, &mut child, Duration::from_secs(30))?;
        Ok(Server {
            child,
            addr,
            program: program.to_path_buf(),
            args,
            name: name.to_string(),
        })
    }

    /// Kills it and starts it again with the same flags on the same port.
    fn restart(&mut self) -> Result<()> {
        self.child.kill();
        let log = self.child.log.clone();
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            self.child = Child::spawn(&self.name, &self.program, &self.args, &log, false)?;
            match process::wait_listening(self.addr, &mut self.child, Duration::from_secs(30)) {
                Ok(()) => return Ok(()),
                // The old socket may linger a moment: try again.
                Err(_) if Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(20))
                }
                Err(e) => return Err(e),
            }
        }
    }

    fn usage(&self) -> Usage {
        process::usage(self.child.pid()).unwrap_or_default()
    }

    fn metrics(&self) -> HashMap<String, f64> {
        process::scrape(self.addr).unwrap_or_default()
    }
}

/// What happened around a load generator run.
struct Run {
    report: Json,
    /// Server usage at `MEASURE start` and `MEASURE end`.
    usage: (Usage, Usage),
    /// The load generator's CPU seconds in the window.
    loadgen_cpu_s: f64,
    /// The whole machine's busy CPU seconds in the window (all processes).
    machine_cpu_s: f64,
    /// Server counters at `MEASURE start` and `MEASURE end`.
    metrics: (HashMap<String, f64>, HashMap<String, f64>),
    /// Server usage before the load generator started.
    idle: Usage,
}

fn metric(m: &HashMap<String, f64>, key: &str) -> f64 {
    m.get(key).copied().unwrap_or(f64::NAN)
}

/// Runs `loadgen ARGS` against `server`; `during` is called once the window has begun.
fn loadgen(
    ctx: &Ctx,
    name: &str,
    server: &mut Server,
    args: &[String],
    mut during: impl FnMut(&mut Server) -> Result<()>,
    timeout: Duration,
) -> Result<Run> {
    let idle = server.usage();
    let log = ctx.out.join(format!("{name}.loadgen.log"));
    let _ = std::fs::remove_file(&log);
    let mut full = vec!["--threads".to_string(), ctx.threads.clone()];
    full.extend(args.iter().cloned());
    let mut child = Child::spawn("loadgen", &ctx.bins.loadgen, &full, &log, true)?;
    let lines = child.lines();
    let deadline = Instant::now() + timeout;
    let mut usage = (Usage::default(), Usage::default());
    let mut metrics = (HashMap::new(), HashMap::new());
    let (mut loadgen_cpu_s, mut machine_cpu_s) = (0.0, 0.0);
    let loadgen_cpu = |child: &Child| process::usage(child.pid()).unwrap_or_default().cpu_s;
    loop {
        let line = child.next_line(&lines, deadline)?;
        if line.starts_with("READY") {
            println!("  {name}: {line}");
        } else if line == "MEASURE start" {
            usage.0 = server.usage();
            loadgen_cpu_s = -loadgen_cpu(&child);
            machine_cpu_s = -process::machine_busy_s().unwrap_or(f64::NAN);
            metrics.0 = server.metrics();
            during(server)?;
        } else if line == "MEASURE end" {
            usage.1 = server.usage();
            loadgen_cpu_s += loadgen_cpu(&child);
            machine_cpu_s += process::machine_busy_s().unwrap_or(f64::NAN);
            metrics.1 = server.metrics();
        } else if let Some(j) = line.strip_prefix("REPORT ") {
            let report = json::parse(j).map_err(|e| Error::new(format!("loadgen report: {e}")))?;
            return Ok(Run {
                report,
                usage,
                loadgen_cpu_s,
                machine_cpu_s,
                metrics,
                idle,
            });
        }
    }
}

fn s(v: impl ToString) -> String {
    v.to_string()
}

fn ms3(r: &Json, path: &str) -> String {
    format!(
        "{:.1} / {:.1} / {:.1}",
        r.num(&format!("{path}.p50_ms")),
        r.num(&format!("{path}.p99_ms")),
        r.num(&format!("{path}.max_ms"))
    )
}

fn met(ok: bool) -> &'static str {
    if ok { "met" } else { "**missed**" }
}

fn sessions_args(addr: SocketAddr, n: usize, extra: &[&str]) -> Vec<String> {
    let mut a = vec![
        s("sessions"),
        s("--addr"),
        addr.to_string(),
        s("--sessions"),
        n.to_string(),
        s("--source-ips"),
        s("8"),
    ];
    a.extend(extra.iter().map(|x| x.to_string()));
    a
}

/// The hard open-file limit the bench's children get (after trying to raise it).
fn nofile_limit() -> Option<u64> {
    let script = format!("ulimit -Hn {} 2>/dev/null; ulimit -Hn", process::NOFILE);
    let out = std::process::Command::new("sh")
        .arg("-c")
        .arg(script)
        .output()
        .ok()?;
    String::from_utf8(out.stdout).ok()?.trim().parse().ok()
}

/// One capacity run: how many sessions, with the ticker or not, over HTTP/2 or HTTP/1.1.
#[derive(Clone, Copy)]
struct Row {
    n: usize,
    ticker: bool,
    http2: bool,
}

fn capacity(ctx: &Ctx) -> Result<(String, String)> {
    // A browser over http holds two HTTP/1.1 connections per session (the stream's and
    // the heartbeats'), so N sessions are 2N sockets in the server and in the load
    // generator. Where the open-file limit cannot hold 20 000 of them, 10 000 sessions
    // run over HTTP/2 (a browser over https: one connection each) and HTTP/1.1 runs at
    // the largest round size that fits. The row without the ticker shows what heartbeats
    // alone cost at the largest size.
    let limit = nofile_limit().unwrap_or(u64::MAX);
    let h1_max = ((limit.saturating_sub(1_000) / 2 / 1_000) * 1_000) as usize;
    let row = |n, ticker, http2| Row { n, ticker, http2 };
    let rows: Vec<Row> = if ctx.quick {
        vec![
            row(20, true, false),
            row(100, true, false),
            row(100, true, true),
            row(100, false, true),
        ]
    } else if h1_max >= 10_000 {
        vec![
            row(100, true, false),
            row(1_000, true, false),
            row(10_000, true, false),
            row(10_000, true, true),
            row(10_000, false, false),
        ]
    } else {
        vec![
            row(100, true, false),
            row(1_000, true, false),
            row(h1_max, true, false),
            row(10_000, true, true),
            row(10_000, false, true),
        ]
    };
    let mut md = format!(
        "### Capacity: sessions with 1 s heartbeats and a 10 events/s ticker\n\n\
         gRPC-web over HTTP/1.1 (a browser over http: 2 connections per session) or HTTP/2 \
         (a browser over https: 1 connection). Open-file hard limit of the processes: {}. \
         CPU columns are cores busy over the window (1.00 = one core): the server, the load \
         generator, and the whole machine (other processes included).\n\n\
         | sessions | protocol | READY | heartbeats | RTT p50 / p99 / max (ms) | errors | events/s delivered | CPU server / loadgen / machine | server CPU s per 1 000 heartbeats | server RSS per session | target (10 000: p99 ≤ 20 ms, 0 errors) |\n\
         |---|---|---|---|---|---|---|---|---|---|---|\n",
        if limit == u64::MAX {
            "unknown".to_string()
        } else {
            limit.to_string()
        }
    );
    let mut js = Vec::new();
    for Row { n, ticker, http2 } in rows {
        let name = format!(
            "capacity-{n}-{}{}",
            if http2 { "h2" } else { "http1" },
            if ticker { "" } else { "-no-ticker" }
        );
        let mut flags = vec!["--max-connections", "60000", "--max-sessions", "100000"];
        if ticker {
            flags.extend(["--tick-interval", "100ms"]);
        } else {
            // With no event sent between two heartbeats, a heartbeat every second is a
            // strike under the default MinTime (5 min): allow it, as an operator who
            // wants 1 s heartbeats would.
            flags.extend(["--min-ping-interval", "500ms"]);
        }
        let mut server = Server::start(ctx, &name, &ctx.bins.server, &flags)?;
        let ramp = if ctx.quick { 1 } else { (n / 1000).max(1) };
        let window = if ctx.quick { 3 } else { 10 };
        let mut args = sessions_args(
            server.addr,
            n,
            &[
                "--probe",
                "--time",
                "1s",
                "--timeout",
                "2s",
                "--ramp",
                &format!("{ramp}s"),
                "--settle",
                "2s",
                "--duration",
                &format!("{window}s"),
            ],
        );
        if http2 {
            args.push("--http2".into());
        }
        let run = loadgen(
            ctx,
            &name,
            &mut server,
            &args,
            |_| Ok(()),
            Duration::from_secs(120 + ramp as u64 * 3),
        )?;
        let r = &run.report;
        let cpu = run.usage.1.cpu_s - run.usage.0.cpu_s;
        let server_heartbeats = metric(&run.metrics.1, "keepalive_heartbeats_total")
            - metric(&run.metrics.0, "keepalive_heartbeats_total");
        let heartbeats = if server_heartbeats.is_finite() && server_heartbeats > 0.0 {
            server_heartbeats
        } else {
            r.num("heartbeats")
        };
        let cpu_per_k = cpu / (heartbeats / 1000.0);
        let rss_kib = run.usage.1.rss_kib.saturating_sub(run.idle.rss_kib) as f64 / n as f64;
        let window_s = r.num("window_s");
        let target = if n == 10_000 && ticker && (http2 || h1_max >= 10_000) {
            met(r.num("heartbeat_rtt.p99_ms") <= 20.0 && r.num("errors") == 0.0).to_string()
        } else {
            String::new()
        };
        let _ = writeln!(
            md,
            "| {n}{} | {} | {} | {} | {} | {} | {:.0} | {:.2} / {:.2} / {:.2} | {cpu_per_k:.3} | {rss_kib:.1} KiB | {target} |",
            if ticker { "" } else { " (no ticker)" },
            if http2 { "HTTP/2" } else { "HTTP/1.1" },
            r.num("ready_at_start"),
            r.num("heartbeats"),
            ms3(r, "heartbeat_rtt"),
            r.num("errors"),
            r.num("events_per_s"),
            cpu / window_s,
            run.loadgen_cpu_s / window_s,
            run.machine_cpu_s / window_s,
        );
        js.push(format!(
            "{{\"sessions\":{n},\"ticker\":{ticker},\"http2\":{http2},\"loadgen_cpu_s\":{:.3},\"machine_cpu_s\":{:.3},\"server_cpu_s\":{cpu:.3},\"server_heartbeats\":{heartbeats},\"cpu_s_per_1000_heartbeats\":{cpu_per_k:.4},\"rss_kib_idle\":{},\"rss_kib_end\":{},\"rss_kib_per_session\":{rss_kib:.2},\"loadgen\":{}}}",
            run.loadgen_cpu_s,
            run.machine_cpu_s,
            run.idle.rss_kib,
            run.usage.1.rss_kib,
            raw(r)
        ));
    }
    Ok((md, format!("[{}]", js.join(","))))
}

/// The report back as JSON text (numbers and structure kept).
fn raw(v: &Json) -> String {
    match v {
        Json::Null => "null".into(),
        Json::Bool(b) => b.to_string(),
        Json::Num(n) if n.is_finite() => n.to_string(),
        Json::Num(_) => "null".into(),
        Json::Str(s) => quote(s),
        Json::Arr(a) => format!("[{}]", a.iter().map(raw).collect::<Vec<_>>().join(",")),
        Json::Obj(m) => format!(
            "{{{}}}",
            m.iter()
                .map(|(k, v)| format!("{}:{}", quote(k), raw(v)))
                .collect::<Vec<_>>()
                .join(",")
        ),
    }
}

fn median(v: &mut [f64]) -> f64 {
    if v.is_empty() {
        return f64::NAN;
    }
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn overhead(ctx: &Ctx) -> Result<(String, String)> {
    let flags = ["--max-ping-strikes", "0"];
    let mut ours = Server::start(ctx, "overhead-ours", &ctx.bins.server, &flags)?;
    let mut stock = Server::start(ctx, "overhead-stock", &ctx.bins.bench_server, &flags)?;
    let rounds = if ctx.quick { 1 } else { 5 };
    let secs = if ctx.quick { "1s" } else { "3s" };
    let mut md = String::from(
        "### Overhead: the same unary call (Heartbeat, 32 in flight), our server vs a stock `tonic::transport::Server`\n\n\
         | protocol | ours req/s (median) | stock req/s (median) | ratio | ours p99 / stock p99 (ms) | rounds | target ≥ 0.9 |\n\
         |---|---|---|---|---|---|---|\n",
    );
    let mut js = Vec::new();
    for protocol in ["h2", "http1"] {
        let mut rps = (Vec::new(), Vec::new());
        let mut p99 = (Vec::new(), Vec::new());
        for round in 0..rounds {
            for (which, server) in [(0, &mut ours), (1, &mut stock)] {
                let name = format!("overhead-{protocol}-{}-{round}", ["ours", "stock"][which]);
                let args: Vec<String> = [
                    "unary",
                    "--addr",
                    &server.addr.to_string(),
                    "--protocol",
                    protocol,
                    "--concurrency",
                    "32",
                    "--warmup",
                    "1s",
                    "--duration",
                    secs,
                ]
                .iter()
                .map(|x| x.to_string())
                .collect();
                let run = unary(ctx, &name, &args)?;
                let (r, p) = if which == 0 {
                    (&mut rps.0, &mut p99.0)
                } else {
                    (&mut rps.1, &mut p99.1)
                };
                r.push(run.num("requests_per_s"));
                p.push(run.num("latency.p99_ms"));
                if run.num("errors") > 0.0 {
                    println!("  {name}: {} errors", run.num("errors"));
                }
            }
        }
        let (a, b) = (median(&mut rps.0), median(&mut rps.1));
        let ratio = a / b;
        let _ = writeln!(
            md,
            "| {} | {a:.0} | {b:.0} | {ratio:.2} | {:.1} / {:.1} | {rounds} | {} |",
            if protocol == "h2" {
                "gRPC, HTTP/2"
            } else {
                "gRPC-web, HTTP/1.1"
            },
            median(&mut p99.0),
            median(&mut p99.1),
            met(ratio >= 0.9)
        );
        js.push(format!(
            "{}:{{\"ours_rps\":{:?},\"stock_rps\":{:?},\"ratio\":{ratio:.4}}}",
            quote(protocol),
            rps.0,
            rps.1
        ));
    }
    drop((ours, stock));
    // requests/s on a shared 2-core machine move with whatever else runs; instructions
    // per request (user space, callgrind) do not.
    let mut rows = Vec::new();
    for protocol in ["h2", "http1"] {
        let a = instructions(ctx, "ours", &ctx.bins.server, protocol);
        let b = instructions(ctx, "stock", &ctx.bins.bench_server, protocol);
        match (a, b) {
            (Ok(a), Ok(b)) => rows.push((protocol, a, b)),
            (Err(e), _) | (_, Err(e)) => {
                println!("  callgrind skipped: {e}");
                break;
            }
        }
    }
    if !rows.is_empty() {
        md.push_str(
            "\nUser-space instructions per request (valgrind callgrind on the server, the same \
             calls; independent of machine load):\n\n\
             | protocol | ours | stock | stock / ours |\n|---|---|---|---|\n",
        );
        for (protocol, a, b) in rows {
            let _ = writeln!(md, "| {protocol} | {a:.0} | {b:.0} | {:.2} |", b / a);
            js.push(format!(
                "{}:{{\"ours_instructions_per_request\":{a:.0},\"stock_instructions_per_request\":{b:.0}}}",
                quote(&format!("{protocol}_callgrind"))
            ));
        }
    }
    Ok((md, format!("{{{}}}", js.join(","))))
}

/// User-space instructions per unary call of a server run under callgrind (counters
/// zeroed after start-up, dumped after the calls).
fn instructions(ctx: &Ctx, which: &str, program: &Path, protocol: &str) -> Result<f64> {
    let port = process::free_port()?;
    let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    let name = format!("callgrind-{which}-{protocol}");
    let out = ctx.out.join(format!("{name}.out"));
    let log = ctx.out.join(format!("{name}.log"));
    let _ = std::fs::remove_file(&log);
    let valgrind = Path::new("valgrind");
    let args: Vec<String> = vec![
        "--tool=callgrind".into(),
        format!("--callgrind-out-file={}", out.display()),
        program.display().to_string(),
        "--listen".into(),
        addr.to_string(),
        "--max-ping-strikes".into(),
        "0".into(),
    ];
    let mut child = Child::spawn(&name, valgrind, &args, &log, false)?;
    process::wait_listening(addr, &mut child, Duration::from_secs(60))?;
    let control = |cmd: &str| {
        std::process::Command::new("callgrind_control")
            .arg(cmd)
            .arg(child.pid().to_string())
            .output()
            .map_err(|e| Error::new(format!("callgrind_control: {e}")))
    };
    control("-z")?;
    let args: Vec<String> = [
        "unary",
        "--addr",
        &addr.to_string(),
        "--protocol",
        protocol,
        "--concurrency",
        "32",
        "--warmup",
        "0s",
        "--duration",
        if ctx.quick { "1s" } else { "3s" },
    ]
    .iter()
    .map(|x| x.to_string())
    .collect();
    let run = unary(ctx, &name, &args)?;
    control("-d")?;
    child.kill();
    // The dump after the zeroing is the file with the highest part number.
    let dumps = std::fs::read_dir(&ctx.out)
        .map_err(|e| Error::new(e.to_string()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            p.file_name()
                .is_some_and(|f| f.to_string_lossy().starts_with(&format!("{name}.out")))
        })
        .collect::<Vec<_>>();
    let mut total = None;
    for path in &dumps {
        let text = std::fs::read_to_string(path).unwrap_or_default();
        let count = text.lines().find_map(|l| {
            l.strip_prefix("summary:")
                .or_else(|| l.strip_prefix("totals:"))
                .and_then(|v| v.split_whitespace().next()?.parse::<f64>().ok())
        });
        // The zeroed-then-dumped part has the fewest instructions (start-up excluded).
        if let Some(c) = count {
            total = Some(total.map_or(c, |t: f64| t.min(c)));
        }
        let _ = std::fs::remove_file(path);
    }
    let requests = run.num("requests");
    match total {
        Some(t) if requests > 0.0 => Ok(t / requests),
        _ => bail!("no callgrind dump for {name} (log: {})", log.display()),
    }
}

fn unary(ctx: &Ctx, name: &str, args: &[String]) -> Result<Json> {
    let log = ctx.out.join(format!("{name}.loadgen.log"));
    let _ = std::fs::remove_file(&log);
    let mut full = vec!["--threads".to_string(), ctx.threads.clone()];
    full.extend(args.iter().cloned());
    let mut child = Child::spawn("loadgen", &ctx.bins.loadgen, &full, &log, true)?;
    let lines = child.lines();
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let line = child.next_line(&lines, deadline)?;
        if let Some(j) = line.strip_prefix("REPORT ") {
            return json::parse(j).map_err(|e| Error::new(format!("loadgen report: {e}")));
        }
    }
}

fn detection(ctx: &Ctx) -> Result<(String, String)> {
    let n = if ctx.quick { 50 } else { 1_000 };
    let mut server = Server::start(
        ctx,
        "detection",
        &ctx.bins.server,
        &[
            "--tick-interval",
            "100ms",
            "--stream-heartbeat-interval",
            "1s",
            "--chaos",
            "--chaos-token",
            CHAOS_TOKEN,
        ],
    )?;
    let args = sessions_args(
        server.addr,
        n,
        &[
            "--time",
            "1s",
            "--timeout",
            "1s",
            "--ramp",
            "2s",
            "--settle",
            "2s",
            "--duration",
            "7s",
            "--stall-after",
            "2s",
            "--stall-for",
            "4s",
            "--chaos-token",
            CHAOS_TOKEN,
        ],
    );
    let run = loadgen(
        ctx,
        "detection",
        &mut server,
        &args,
        |_| Ok(()),
        Duration::from_secs(90),
    )?;
    let r = &run.report;
    let d = "detection";
    let over_max = r.num(&format!("{d}.overshoot.max_ms"));
    let all = r.num(&format!("{d}.detected")) == r.num(&format!("{d}.sessions"));
    let mut md = String::from(
        "### Detection: chaos STALL (sockets open, nothing answers), client Time 1 s + Timeout 1 s\n\n\
         | sessions READY at the stall | left READY | last byte → not READY p50 / p99 / max (ms) | beyond Time + Timeout p50 / p99 / max (ms) | stall call → not READY p50 / max (ms) | reasons | target: every session ≤ +100 ms |\n\
         |---|---|---|---|---|---|---|\n",
    );
    let reasons = match r.at(&format!("{d}.reasons")) {
        Some(Json::Obj(m)) => m
            .iter()
            .map(|(k, v)| format!("{k}: {}", raw(v)))
            .collect::<Vec<_>>()
            .join(", "),
        _ => String::new(),
    };
    let _ = writeln!(
        md,
        "| {} | {} | {} | {} | {:.0} / {:.0} | {reasons} | {} |",
        r.num(&format!("{d}.sessions")),
        r.num(&format!("{d}.detected")),
        ms3(r, &format!("{d}.since_last_rx")),
        ms3(r, &format!("{d}.overshoot")),
        r.num(&format!("{d}.since_stall.p50_ms")),
        r.num(&format!("{d}.since_stall.max_ms")),
        met(all && over_max <= 100.0)
    );
    Ok((md, raw(r)))
}

fn recovery(ctx: &Ctx) -> Result<(String, String)> {
    let n = if ctx.quick { 50 } else { 1_000 };
    let events = ctx.out.join("recovery-events.log");
    let _ = std::fs::remove_file(&events);
    let events = events.display().to_string();
    let mut server = Server::start(
        ctx,
        "recovery",
        &ctx.bins.server,
        &[
            "--tick-interval",
            "100ms",
            "--stream-heartbeat-interval",
            "1s",
            "--event-log",
            &events,
        ],
    )?;
    let args = sessions_args(
        server.addr,
        n,
        &[
            "--time",
            "1s",
            "--timeout",
            "1s",
            "--ramp",
            "2s",
            "--settle",
            "2s",
            "--duration",
            "7s",
        ],
    );
    let run = loadgen(
        ctx,
        "recovery",
        &mut server,
        &args,
        |server| {
            std::thread::sleep(Duration::from_secs(1));
            server.restart()
        },
        Duration::from_secs(90),
    )?;
    let r = &run.report;
    let d = "recovery";
    let storm = r.nums(&format!("{d}.ready_per_100ms"));
    let first = storm.iter().position(|&x| x > 0.0).unwrap_or(0);
    let last = storm.iter().rposition(|&x| x > 0.0).unwrap_or(0);
    let shape = storm
        .get(first..=last)
        .unwrap_or_default()
        .iter()
        .map(|x| format!("{x:.0}"))
        .collect::<Vec<_>>()
        .join(" ");
    let mut md = String::from(
        "### Recovery: server killed and started again on the same port (file event log), Time 1 s + Timeout 1 s, backoff 1 s ± 20%\n\n\
         | sessions lost | READY again | with a resumed event | loss → READY p50 / p99 / max (ms) | end of backoff slot → READY p50 / p99 / max (ms) | READY → first resumed event p50 / p99 / max (ms) | attempts p50 / max | READY per 100 ms from the first loss |\n\
         |---|---|---|---|---|---|---|---|\n",
    );
    let _ = writeln!(
        md,
        "| {} | {} | {} | {} | {} | {} | {:.0} / {:.0} | from {:.1} s: {shape} |",
        r.num(&format!("{d}.lost")),
        r.num(&format!("{d}.recovered")),
        r.num(&format!("{d}.resumed_with_event")),
        ms3(r, &format!("{d}.loss_to_ready")),
        ms3(r, &format!("{d}.slot_to_ready")),
        ms3(r, &format!("{d}.ready_to_first_event")),
        r.num(&format!("{d}.attempts.p50_ms")),
        r.num(&format!("{d}.attempts.max_ms")),
        first as f64 / 10.0,
    );
    Ok((md, raw(r)))
}

fn fanout(ctx: &Ctx) -> Result<(String, String)> {
    let n = if ctx.quick { 50 } else { 1_000 };
    let mut server = Server::start(
        ctx,
        "fanout",
        &ctx.bins.server,
        &[
            "--tick-interval",
            "1ms",
            "--replay-capacity",
            "200000",
            "--stream-heartbeat-interval",
            "5s",
        ],
    )?;
    let args = sessions_args(
        server.addr,
        n,
        &[
            "--time",
            "5s",
            "--timeout",
            "5s",
            "--ramp",
            "2s",
            "--settle",
            "2s",
            "--duration",
            "10s",
        ],
    );
    let run = loadgen(
        ctx,
        "fanout",
        &mut server,
        &args,
        |_| Ok(()),
        Duration::from_secs(90),
    )?;
    let r = &run.report;
    let window = r.num("window_s");
    let published = (metric(&run.metrics.1, "keepalive_events_published_total")
        - metric(&run.metrics.0, "keepalive_events_published_total"))
        / window;
    let delivered_server = (metric(&run.metrics.1, "keepalive_events_delivered_total")
        - metric(&run.metrics.0, "keepalive_events_delivered_total"))
        / window;
    let cpu = run.usage.1.cpu_s - run.usage.0.cpu_s;
    let mut md = String::from(
        "### Fan-out: a ticker as fast as it goes (1 ms interval) to every subscriber\n\n\
         | subscribers | published/s | delivered/s (clients) | delivered/s (server) | per subscriber/s | lag p50 / p99 / max (ms) | gaps | errors | CPU server / loadgen / machine (cores) |\n\
         |---|---|---|---|---|---|---|---|---|\n",
    );
    let _ = writeln!(
        md,
        "| {n} | {published:.0} | {:.0} | {delivered_server:.0} | {:.0} | {} | {} | {} | {:.2} / {:.2} / {:.2} |",
        r.num("events_per_s"),
        r.num("events_per_s") / n as f64,
        ms3(r, "event_lag"),
        r.num("gaps"),
        r.num("errors"),
        cpu / window,
        run.loadgen_cpu_s / window,
        run.machine_cpu_s / window,
    );
    Ok((
        md,
        format!(
            "{{\"published_per_s\":{published:.1},\"server_delivered_per_s\":{delivered_server:.1},\"server_cpu_s\":{cpu:.3},\"loadgen\":{}}}",
            raw(r)
        ),
    ))
}

fn sizes(ctx: &Ctx) -> Result<(String, String)> {
    let mut md = String::from(
        "### Sizes (after wasm-bindgen and wasm-opt -Oz)\n\n| artifact | raw | gzip -9 |\n|---|---|---|\n",
    );
    let mut js = Vec::new();
    let kb = |b: u64| format!("{:.1} KB", b as f64 / 1000.0);
    let mut row = |key: &str, what: &str, sizes: crate::page::Sizes| {
        let _ = writeln!(md, "| {what} | {} | {} |", kb(sizes.raw), kb(sizes.gzip));
        js.push(format!(
            "\"{key}\":{{\"raw\":{},\"gzip\":{}}}",
            sizes.raw, sizes.gzip
        ));
    };
    // The client library as its users get it: a Rust-only page (the example's, no JS
    // layer), and the npm package's wasm with the JS bindings plus the TypeScript page's
    // bundle (connect-es, protobuf-es, generated code, the package's transport).
    let pages = crate::example::build(&ctx.ws)?;
    row(
        "client_rust_page",
        "Rust-only page: example prices-web (client library, tonic client, page code)",
        pages.rust_wasm,
    );
    row(
        "client_js_wasm",
        "client wasm with the JS bindings (`target/keepalive-client/pkg`)",
        pages.ts_wasm,
    );
    row(
        "ts_page_bundle",
        "TypeScript page bundle (example web-ts `main.js`, esbuild --minify)",
        pages.ts_bundle,
    );
    let dashboard = crate::page::build(&ctx.ws)?;
    row(
        "dashboard",
        "dashboard wasm (`web/dist`)",
        crate::page::wasm_sizes(&dashboard)?,
    );
    Ok((md, format!("{{{}}}", js.join(","))))
}
