//! Overhead: the same unary call (Heartbeat, 32 in flight) against our server and
//! `bench-server` — the same services behind a stock `tonic::transport::Server` (HTTP/1.1
//! accepted, tonic-web's layer), without the library's connection manager or frame
//! observer — over HTTP/2 and gRPC-web/HTTP/1.1, rounds alternating between the two
//! servers. The ratio of the median requests/s and the p99s; the target (issue 13) is ≥ 0.95
//! of stock's, in requests/s and in instructions per call.
//!
//! Requests/s are measured twice. First with `loadgen unary` (a hyper client, the
//! browser-shaped calls), the server and the load generator sharing both cores: the
//! client costs about as much per call as the server, so these rates are as much the
//! client's and the scheduler's as the server's. Then with each server pinned to core 0
//! and h2load (C, nghttp2: a fraction of a server's cost per call) pinned to core 1
//! ([`h2load`]), in the same shape (HTTP/2: one connection, 32 streams; HTTP/1.1: 32
//! connections, one call each): the server saturates its core, so its requests/s is one
//! over its cost per call, kernel included — the rates the target is judged on. This
//! machine's speed drifts by ±10% over tens of seconds, so these are many short rounds,
//! the two servers' order swapped each round, and the ratio is the median of the rounds'
//! ratios (each compares two runs seconds apart). Every h2load answer is checked by its size (the bytes of a good answer, measured with one
//! decoded call first: a gRPC error is an answer of another size).
//!
//! Requests/s on a shared 2-core machine move with whatever else runs; instructions per
//! request (user space, valgrind's callgrind on the server) do not: each server is also
//! run under callgrind, its counters zeroed after start-up and dumped after the calls.
//! Without valgrind that table is skipped. The dumps are also read by function
//! ([`profile::callgrind_functions`]): instructions per call by crate, ours next to
//! stock's, and the functions where ours spends the most beyond stock's — what the gap
//! is made of (issue 13).

use super::children::{self, Server, unary_args};
use super::h2load::{self, Load};
use super::profile;
use super::report::{Object, Section, fixed, median, met};
use super::{Ctx, Result};
use crate::driver::path;
use crate::grpc;
use crate::histogram::summarize_ms;
use crate::http::{self, Sender, Target};
use keepalive_proto::v1::{
    HeartbeatRequest, HeartbeatResponse, OpenSessionRequest, OpenSessionResponse,
};
use serde::Serialize;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

/// Ours against stock, in requests/s and in instructions per call (issue 13).
const TARGET: f64 = 0.95;
/// Calls in flight, as `loadgen unary --concurrency` and h2load run them.
const IN_FLIGHT: u32 = 32;

/// A protocol's requests/s, per round.
#[derive(Debug, Serialize)]
struct Rates {
    ours_rps: Vec<f64>,
    stock_rps: Vec<f64>,
    ratio: f64,
}

/// A protocol's instructions per request.
#[derive(Debug, Serialize)]
struct Instructions {
    ours_instructions_per_request: u64,
    stock_instructions_per_request: u64,
    /// By crate: `(crate, ours, stock)` instructions per request.
    by_crate: Vec<(String, u64, u64)>,
}

/// A server's instructions per call: in all, and by function.
struct PerCall {
    total: f64,
    functions: Vec<(String, f64)>,
}

/// Runs the overhead scenario.
pub async fn run(ctx: &Ctx) -> Result<Section> {
    let flags = ["--max-ping-strikes", "0"];
    let ours = Server::start(ctx, "overhead-ours", &ctx.bins.server, &flags).await?;
    let stock = Server::start(ctx, "overhead-stock", &ctx.bins.bench_server, &flags).await?;
    let rounds = if ctx.quick { 1 } else { 5 };
    let secs = if ctx.quick { "1s" } else { "3s" };
    let mut md = String::from(
        "### Overhead: the same unary call (Heartbeat, 32 in flight), our server vs a stock `tonic::transport::Server`\n\n\
         `loadgen unary` (a hyper client) and the server sharing both cores (the client's cost and the \
         scheduler weigh in as much as the server's):\n\n\
         | protocol | ours req/s (median) | stock req/s (median) | ratio | ours p99 / stock p99 (ms) | rounds | target ≥ 0.95 |\n\
         |---|---|---|---|---|---|---|\n",
    );
    let mut js = Object::new();
    for protocol in ["h2", "http1"] {
        let mut rps = (Vec::new(), Vec::new());
        let mut p99 = (Vec::new(), Vec::new());
        for round in 0..rounds {
            for (which, server) in [(0, &ours), (1, &stock)] {
                let name = format!("overhead-{protocol}-{}-{round}", ["ours", "stock"][which]);
                let args = unary_args(server.addr(), protocol, "1s", secs);
                let run = children::unary(ctx, &name, &args).await?;
                let (r, p) = if which == 0 {
                    (&mut rps.0, &mut p99.0)
                } else {
                    (&mut rps.1, &mut p99.1)
                };
                r.push(run.requests_per_s);
                p.push(run.latency.p99_ms);
                if run.errors > 0 {
                    println!("  {name}: {} errors", run.errors);
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
            met(ratio >= TARGET)
        );
        js = js.with(
            protocol,
            Rates {
                ours_rps: rps.0,
                stock_rps: rps.1,
                ratio: fixed(ratio, 4),
            },
        );
    }
    drop((ours, stock));
    match pinned(ctx).await {
        Ok((text, pinned_js)) => {
            md.push_str(&text);
            js = js.with("pinned", pinned_js);
        }
        Err(e) => println!("  overhead, pinned h2load rounds skipped: {e}"),
    }
    let mut rows = Vec::new();
    for protocol in ["h2", "http1"] {
        let a = instructions(ctx, "ours", &ctx.bins.server, protocol).await;
        let b = instructions(ctx, "stock", &ctx.bins.bench_server, protocol).await;
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
             | protocol | ours | stock | stock / ours | target ≥ 0.95 |\n|---|---|---|---|---|\n",
        );
        for (protocol, a, b) in &rows {
            let _ = writeln!(
                md,
                "| {protocol} | {:.0} | {:.0} | {:.2} | {} |",
                a.total,
                b.total,
                b.total / a.total,
                met(b.total / a.total >= TARGET)
            );
        }
        for (protocol, a, b) in rows {
            let crates = side_by_side(&a, &b);
            md.push_str(&gap_md(protocol, &crates, &a, &b));
            js = js.with(
                &format!("{protocol}_callgrind"),
                Instructions {
                    ours_instructions_per_request: a.total.round() as u64,
                    stock_instructions_per_request: b.total.round() as u64,
                    by_crate: crates
                        .into_iter()
                        .map(|(c, x, y)| (c, x.round() as u64, y.round() as u64))
                        .collect(),
                },
            );
        }
    }
    Ok(Section::new(md, &js))
}

/// One protocol of the pinned rounds: what h2load sends, and each server's figures.
struct PinnedRates {
    protocol: &'static str,
    label: &'static str,
    rps: [Vec<f64>; 2],
    p99_ms: [Vec<f64>; 2],
    cpu: [Vec<f64>; 2],
    errors: [u64; 2],
}

/// A protocol's pinned rounds in `bench.json`.
#[derive(Debug, Serialize)]
struct PinnedJson {
    ours_rps: Vec<f64>,
    stock_rps: Vec<f64>,
    ratio: f64,
    ours_p99_ms: f64,
    stock_p99_ms: f64,
    ours_server_cpu: f64,
    stock_server_cpu: f64,
    errors: [u64; 2],
}

/// The Heartbeat h2load sends to `server` (a session opened on it), and the bytes of a
/// good answer over HTTP/2 and over gRPC-web/HTTP/1.1 (one call of each, decoded).
async fn heartbeat_body(ctx: &Ctx, key: &str, server: &Server) -> Result<(PathBuf, [u64; 2])> {
    let target = Target {
        addr: server.addr(),
        local_ip: None,
    };
    let authority = target.authority();
    let fail = |e: grpc::CallError| format!("overhead, {key}: {e}");
    let mut h2 = http::open_h2(&target).await.map_err(fail)?;
    let session: OpenSessionResponse = http::unary(
        &mut Sender::H2(&mut h2),
        &authority,
        path::OPEN_SESSION,
        &OpenSessionRequest {},
    )
    .await
    .map_err(fail)?;
    let req = HeartbeatRequest {
        session_id: session.session_id,
        sequence: 1,
        client_send_time_ms: 1.0,
    };
    let mut h1 = http::open_h1(&target).await.map_err(fail)?;
    let mut bytes = [0; 2];
    for (i, mut sender) in [Sender::H2(&mut h2), Sender::H1(&mut h1)]
        .into_iter()
        .enumerate()
    {
        let (_, n) =
            http::unary_sized::<HeartbeatResponse>(&mut sender, &authority, path::HEARTBEAT, &req)
                .await
                .map_err(fail)?;
        bytes[i] = n;
    }
    let body = ctx.out.join(format!("overhead-{key}-heartbeat.bin"));
    std::fs::write(&body, grpc::encode(&req))
        .map_err(|e| format!("cannot write {}: {e}", body.display()))?;
    Ok((body, bytes))
}

/// The rounds with each server pinned to core 0 and h2load to core 1: the markdown
/// table and its JSON.
async fn pinned(ctx: &Ctx) -> Result<(String, Object)> {
    h2load::tool_present("h2load", "--version").await?;
    h2load::two_cores("overhead")?;
    let flags = ["--max-ping-strikes", "0"];
    let mut servers = Vec::new();
    for (key, program) in [
        ("ours", &ctx.bins.server),
        ("stock", &ctx.bins.bench_server),
    ] {
        let args = h2load::pinned(program, &flags);
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let name = format!("overhead-pinned-{key}");
        let server = Server::start(ctx, &name, Path::new("taskset"), &args).await?;
        let (body, bytes) = heartbeat_body(ctx, key, &server).await?;
        servers.push((key, server, body, bytes));
    }
    // Short rounds, many of them, the order swapped every round: this machine's speed
    // drifts by ±10% over tens of seconds, so each round's two runs (seconds apart) are
    // compared with each other, and the ratio is the median of the rounds' ratios.
    let (rounds, secs, warmup) = if ctx.quick { (1, 1, 1) } else { (9, 2, 1) };
    let mut table = Vec::new();
    for (i, (protocol, label)) in [("h2", "gRPC, HTTP/2"), ("http1", "gRPC-web, HTTP/1.1")]
        .into_iter()
        .enumerate()
    {
        let http1 = protocol == "http1";
        let headers: &[&str] = if http1 {
            &[
                "content-type: application/grpc-web+proto",
                "accept: application/grpc-web+proto",
                "x-grpc-web: 1",
            ]
        } else {
            &["content-type: application/grpc", "te: trailers"]
        };
        let mut rates = PinnedRates {
            protocol,
            label,
            rps: Default::default(),
            p99_ms: Default::default(),
            cpu: Default::default(),
            errors: [0; 2],
        };
        for round in 0..=rounds {
            for which in [round % 2, 1 - round % 2] {
                let (key, server, body, bytes) = &servers[which];
                let load = Load {
                    http1,
                    connections: if http1 { IN_FLIGHT } else { 1 },
                    streams: if http1 { 1 } else { IN_FLIGHT },
                    path: path::HEARTBEAT,
                    headers,
                    body,
                };
                // Round 0 warms each server up (its first connections, allocations and
                // caches) and is not counted.
                let name = match round {
                    0 => format!("overhead-pinned-{protocol}-{key}-warmup"),
                    r => format!("overhead-pinned-{protocol}-{key}-{}", r - 1),
                };
                let cpu0 = server.usage().cpu_s;
                let started = std::time::Instant::now();
                let secs = if round == 0 { warmup } else { secs };
                let mut run = h2load::run(ctx, &name, server.addr(), &load, secs).await?;
                let cpu = (server.usage().cpu_s - cpu0) / started.elapsed().as_secs_f64();
                let errors = run.errors(bytes[i]);
                let p99 = summarize_ms(&mut run.latencies_ms).p99_ms;
                println!(
                    "  {name}: {:.0} req/s, p99 {p99:.2} ms, server CPU {:.0} %{}",
                    run.rps,
                    cpu * 100.0,
                    if errors > 0 {
                        format!(", {errors} errors")
                    } else {
                        String::new()
                    }
                );
                if round > 0 {
                    rates.rps[which].push(fixed(run.rps, 1));
                    rates.p99_ms[which].push(fixed(p99, 3));
                    rates.cpu[which].push(fixed(cpu, 3));
                    rates.errors[which] += errors;
                }
            }
        }
        table.push(rates);
    }
    drop(servers);
    let mut md = format!(
        "\nThe same calls from h2load, each server pinned to core {} and h2load to core {} \
         (HTTP/2: 1 connection × {IN_FLIGHT} streams; HTTP/1.1: {IN_FLIGHT} connections): the \
         server saturates its core, so its requests/s is one over its cost per call (kernel \
         included); the target is judged on these. Rounds of {secs} s, the order swapped each \
         round; the ratio is the median of the rounds' ratios (the machine's speed drifts \
         between rounds):\n\n\
         | protocol | ours req/s (median) | stock req/s (median) | ratio (median of rounds) | ours p99 / stock \
         p99 (ms, median) | server CPU ours / stock | errors ours / stock | rounds | target ≥ \
         0.95 |\n|---|---|---|---|---|---|---|---|---|\n",
        h2load::SERVER_CPU,
        h2load::LOAD_CPU,
    );
    let mut js = Object::new();
    for r in table {
        let m = |v: &[f64]| median(&mut v.to_vec());
        let (a, b) = (m(&r.rps[0]), m(&r.rps[1]));
        let mut ratios: Vec<f64> = r.rps[0].iter().zip(&r.rps[1]).map(|(x, y)| x / y).collect();
        let ratio = median(&mut ratios);
        let (pa, pb) = (m(&r.p99_ms[0]), m(&r.p99_ms[1]));
        let (ca, cb) = (m(&r.cpu[0]), m(&r.cpu[1]));
        let _ = writeln!(
            md,
            "| {} | {a:.0} | {b:.0} | {ratio:.2} | {pa:.2} / {pb:.2} | {:.0} % / {:.0} % | {} / {} | {rounds} | {} |",
            r.label,
            ca * 100.0,
            cb * 100.0,
            r.errors[0],
            r.errors[1],
            met(ratio >= TARGET && r.errors == [0, 0])
        );
        let [ours_rps, stock_rps] = r.rps;
        js = js.with(
            r.protocol,
            PinnedJson {
                ours_rps,
                stock_rps,
                ratio: fixed(ratio, 4),
                ours_p99_ms: pa,
                stock_p99_ms: pb,
                ours_server_cpu: ca,
                stock_server_cpu: cb,
                errors: r.errors,
            },
        );
    }
    Ok((md, js))
}

/// Instructions per call by crate, ours and stock, largest of ours first.
fn side_by_side(a: &PerCall, b: &PerCall) -> Vec<(String, f64, f64)> {
    let crates =
        |p: &PerCall| profile::by_crate(p.functions.iter().map(|(f, x)| (f.as_str(), false, *x)));
    let (ca, cb) = (crates(a), crates(b));
    let mut v: Vec<(String, f64, f64)> = ca
        .iter()
        .map(|(c, x)| {
            let y = cb.iter().find(|(k, _)| k == c).map_or(0.0, |(_, y)| *y);
            (c.clone(), *x, y)
        })
        .collect();
    for (c, y) in &cb {
        if !ca.iter().any(|(k, _)| k == c) {
            v.push((c.clone(), 0.0, *y));
        }
    }
    v
}

/// The gap of one protocol: by crate, then the functions ours spends most on beyond
/// stock's.
fn gap_md(protocol: &str, crates: &[(String, f64, f64)], a: &PerCall, b: &PerCall) -> String {
    let mut md = format!(
        "\nWhere the instructions of a call go, {protocol} (callgrind self cost by crate, per \
         call; ours − stock is the gap):\n\n| crate | ours | stock | ours − stock |\n|---|---|---|---|\n"
    );
    for (c, x, y) in crates.iter().filter(|(_, x, y)| x.max(*y) >= 200.0) {
        let _ = writeln!(md, "| {c} | {x:.0} | {y:.0} | {:+.0} |", x - y);
    }
    let mut diff: Vec<(&str, f64)> = a
        .functions
        .iter()
        .map(|(f, x)| {
            let y = b
                .functions
                .iter()
                .find(|(g, _)| g == f)
                .map_or(0.0, |(_, y)| *y);
            (f.as_str(), x - y)
        })
        .collect();
    diff.sort_by(|p, q| q.1.total_cmp(&p.1));
    let _ = write!(
        md,
        "\nOurs beyond stock, {protocol}, by function (per call):"
    );
    for (f, d) in diff.iter().take(12).filter(|(_, d)| *d >= 50.0) {
        let _ = write!(md, " +{d:.0} `{}`;", profile::short(f, 70));
    }
    md.push('\n');
    md
}

/// User-space instructions per unary call of `program` run under callgrind (counters
/// zeroed after start-up, dumped after the calls).
async fn instructions(ctx: &Ctx, which: &str, program: &Path, protocol: &str) -> Result<PerCall> {
    let name = format!("callgrind-{which}-{protocol}");
    let out = ctx.out.join(format!("{name}.out"));
    let tool = [
        "--tool=callgrind".to_string(),
        format!("--callgrind-out-file={}", out.display()),
    ];
    let mut server =
        profile::under_valgrind(ctx, &name, &tool, program, &["--max-ping-strikes", "0"]).await?;
    let pid = server.pid().to_string();
    let control = |cmd: &'static str| {
        let pid = pid.clone();
        async move {
            tokio::process::Command::new("callgrind_control")
                .arg(cmd)
                .arg(pid)
                .output()
                .await
                .map_err(|e| format!("callgrind_control: {e}"))
        }
    };
    control("-z").await?;
    let quick = if ctx.quick { "1s" } else { "3s" };
    let args = unary_args(server.addr(), protocol, "0s", quick);
    let run = children::unary(ctx, &name, &args).await?;
    control("-d").await?;
    server.kill();
    // The dump after the zeroing is the part with the fewest instructions (start-up
    // excluded); every part is removed.
    let prefix = format!("{name}.out");
    let dumps = std::fs::read_dir(&ctx.out)
        .map_err(|e| e.to_string())?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            p.file_name()
                .is_some_and(|f| f.to_string_lossy().starts_with(&prefix))
        })
        .collect::<Vec<_>>();
    let mut total: Option<(f64, &Path)> = None;
    for path in &dumps {
        let text = std::fs::read_to_string(path).unwrap_or_default();
        let count = text.lines().find_map(|l| {
            l.strip_prefix("summary:")
                .or_else(|| l.strip_prefix("totals:"))
                .and_then(|v| v.split_whitespace().next()?.parse::<f64>().ok())
        });
        if let Some(c) = count
            && total.is_none_or(|(t, _)| c < t)
        {
            total = Some((c, path));
        }
    }
    let functions = match total {
        Some((_, path)) => profile::callgrind_functions(path)
            .await
            .unwrap_or_else(|e| {
                println!("  {name}: no profile by function: {e}");
                Vec::new()
            }),
        None => Vec::new(),
    };
    for path in &dumps {
        let _ = std::fs::remove_file(path);
    }
    let calls = run.requests as f64;
    match total {
        Some((t, _)) if run.requests > 0 => Ok(PerCall {
            total: t / calls,
            functions: functions.into_iter().map(|(f, x)| (f, x / calls)).collect(),
        }),
        _ => Err(format!(
            "no callgrind dump for {name} (log: {})",
            ctx.out.join(format!("{name}.log")).display()
        )),
    }
}
