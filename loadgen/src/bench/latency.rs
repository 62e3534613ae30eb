//! Latency: unary `grpc.health.v1.Health/Check` at a fixed load — h2load (nghttp2's),
//! 50 connections × 10 streams each, over HTTP/2 — against our server, the stock tonic
//! server (`bench-server`, tonic-health's service) and grpc-go's own health server
//! (`--grpc-go`, built from `loadgen/grpc-go-health` against Debian's grpc-go), in the
//! same run, rounds alternating (the order rotates each round). The server is pinned
//! to core 0 and h2load to core 1 (`taskset`), so each has a core of its own.
//!
//! h2load's `--log-file` gives every request's duration: p50/p99/max are computed here
//! over all rounds' requests, and the requests/s of each round from h2load's own count.
//! Targets (issue 13): our p99 no worse than grpc-go's, our requests/s ≥ 1.2× grpc-go's.
//! Each run's CPU is split into the server's, h2load's and everything else's on the two
//! cores: a run where others took more than a fifth of a core (another build) is
//! counted, and the table says so.
//!
//! h2load counts an HTTP 200 as a success whatever the `grpc-status`, so the answers are
//! checked: once per server with `nghttp -v` (the trailers say `grpc-status: 0`, the
//! DATA frame is the 7 bytes of a framed `HealthCheckResponse{status: SERVING}`), and in
//! every run the DATA bytes h2load received must be 7 per answered request (a gRPC error
//! is a trailers-only answer without DATA).

use super::children::Server;
use super::h2load::{self, LOAD_CPU, Load, SERVER_CPU, busy, output, tool_present};
use super::report::{Object, Section, fixed, median, met};
use super::{Ctx, Result};
use crate::histogram::{Summary, summarize_ms};
use serde::Serialize;
use std::fmt::Write as _;
use std::net::SocketAddr;
use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

/// h2load's connections.
pub const CONNECTIONS: u32 = 50;
/// Concurrent streams per connection.
pub const STREAMS: u32 = 10;
/// The method called.
pub const PATH: &str = "/grpc.health.v1.Health/Check";
/// A framed `HealthCheckRequest{service: ""}`: uncompressed, length 0, no bytes.
pub const REQUEST: [u8; 5] = [0; 5];
/// The DATA of a framed `HealthCheckResponse{status: SERVING}`: 5 + `08 01`.
pub const RESPONSE_BYTES: u64 = 7;
/// Other processes' CPU (share of one core) past which a run is said to be contended.
const CONTENDED: f64 = 0.2;

/// A server of the comparison, as the table and the JSON name it.
struct Candidate {
    key: &'static str,
    label: String,
    server: Server,
    rps: Vec<f64>,
    p99_ms: Vec<f64>,
    latencies_ms: Vec<f64>,
    requests: u64,
    errors: u64,
    cpu: Vec<Cpu>,
}

/// Where the two cores went during a run, as shares of one core over its wall time.
#[derive(Debug, Clone, Copy, Default)]
struct Cpu {
    /// The server process.
    server: f64,
    /// h2load.
    h2load: f64,
    /// Everything else on the two cores (another build, the bench itself): if it is not
    /// near 0, the run competed for the cores.
    others: f64,
}

/// A server's row in `bench.json`.
#[derive(Debug, Serialize)]
struct Row {
    server: &'static str,
    rps: Vec<f64>,
    p50_ms: f64,
    p99_ms: f64,
    max_ms: f64,
    round_p99_ms: Vec<f64>,
    requests: u64,
    errors: u64,
    server_cpu: f64,
    h2load_cpu: f64,
    others_cpu: f64,
}

/// Runs the latency scenario.
pub async fn run(ctx: &Ctx) -> Result<Section> {
    let grpc_go = ctx
        .bins
        .grpc_go
        .clone()
        .ok_or("the latency scenario needs --grpc-go")?;
    for (tool, arg) in [("h2load", "--version"), ("nghttp", "--version")] {
        tool_present(tool, arg).await?;
    }
    h2load::two_cores("latency")?;
    let body = ctx.out.join("latency-request.bin");
    std::fs::write(&body, REQUEST).map_err(|e| format!("cannot write {}: {e}", body.display()))?;

    let load = Load {
        http1: false,
        connections: CONNECTIONS,
        streams: STREAMS,
        path: PATH,
        headers: &["content-type: application/grpc", "te: trailers"],
        body: &body,
    };
    let grpc_go_version = deb_version("golang-google-grpc-dev").await;
    let specs = [
        ("ours", "ours (`server`)".to_string(), &ctx.bins.server),
        (
            "stock",
            "stock tonic (`bench-server`, tonic-health)".to_string(),
            &ctx.bins.bench_server,
        ),
        (
            "grpc_go",
            format!("grpc-go {grpc_go_version} (`grpc-go-health`)"),
            &grpc_go,
        ),
    ];
    let mut candidates = Vec::new();
    for (key, label, program) in specs {
        let args = h2load::pinned(program, &[]);
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let server =
            Server::start(ctx, &format!("latency-{key}"), Path::new("taskset"), &args).await?;
        check_answer(ctx, key, server.addr(), &body).await?;
        candidates.push(Candidate {
            key,
            label,
            server,
            rps: Vec::new(),
            p99_ms: Vec::new(),
            latencies_ms: Vec::new(),
            requests: 0,
            errors: 0,
            cpu: Vec::new(),
        });
    }

    let (rounds, secs, warmup) = if ctx.quick { (1, 2, 1) } else { (5, 5, 2) };
    for c in &candidates {
        // Not measured: the server's first connections, allocations and caches.
        let name = format!("latency-warmup-{}", c.key);
        let run = h2load::run(ctx, &name, c.server.addr(), &load, warmup).await?;
        println!("  {name}: {:.0} req/s", run.rps);
    }
    for round in 0..rounds {
        for i in 0..candidates.len() {
            let c = &mut candidates[(i + round) % 3];
            let name = format!("latency-{}-{round}", c.key);
            let cores = busy(SERVER_CPU) + busy(LOAD_CPU);
            let server_cpu = c.server.usage().cpu_s;
            let started = std::time::Instant::now();
            let mut run = h2load::run(ctx, &name, c.server.addr(), &load, secs).await?;
            let took = started.elapsed().as_secs_f64();
            let server = (c.server.usage().cpu_s - server_cpu) / took;
            let h2load = run.cpu_s / took;
            let cores = (busy(SERVER_CPU) + busy(LOAD_CPU) - cores) / took;
            c.cpu.push(Cpu {
                server,
                h2load,
                others: (cores - server - h2load).max(0.0),
            });
            let errors = run.errors(RESPONSE_BYTES);
            let s = summarize_ms(&mut run.latencies_ms.clone());
            println!(
                "  {name}: {:.0} req/s, p50 {:.2} ms, p99 {:.2} ms, max {:.1} ms{}",
                run.rps,
                s.p50_ms,
                s.p99_ms,
                s.max_ms,
                if errors > 0 {
                    format!(", {errors} errors")
                } else {
                    String::new()
                }
            );
            c.rps.push(fixed(run.rps, 1));
            c.p99_ms.push(fixed(s.p99_ms, 3));
            c.requests += run.requests;
            c.errors += errors;
            c.latencies_ms.append(&mut run.latencies_ms);
        }
    }

    let mut md = format!(
        "### Latency: unary Health/Check under h2load ({CONNECTIONS} connections × {STREAMS} \
         streams, HTTP/2), server on core {SERVER_CPU}, h2load on core {LOAD_CPU}\n\n\
         | server | req/s (median of {rounds} × {secs} s) | p50 / p99 / max (ms, all rounds) \
         | p99 per round (median, ms) | errors | CPU: server / h2load / others (median) |\n\
         |---|---|---|---|---|---|\n"
    );
    let mut rows = Vec::new();
    let mut summaries = Vec::new();
    for c in &mut candidates {
        let s = summarize_ms(&mut c.latencies_ms);
        let rps = median(&mut c.rps.clone());
        let cpu = |f: fn(&Cpu) -> f64| median(&mut c.cpu.iter().map(f).collect::<Vec<_>>());
        let (server_cpu, h2load_cpu, others_cpu) =
            (cpu(|u| u.server), cpu(|u| u.h2load), cpu(|u| u.others));
        let _ = writeln!(
            md,
            "| {} | {rps:.0} | {:.2} / {:.2} / {:.1} | {:.2} | {} | {:.0} % / {:.0} % / {:.0} % |",
            c.label,
            s.p50_ms,
            s.p99_ms,
            s.max_ms,
            median(&mut c.p99_ms.clone()),
            c.errors,
            server_cpu * 100.0,
            h2load_cpu * 100.0,
            others_cpu * 100.0,
        );
        rows.push(Row {
            server: c.key,
            rps: c.rps.clone(),
            p50_ms: fixed(s.p50_ms, 3),
            p99_ms: fixed(s.p99_ms, 3),
            max_ms: fixed(s.max_ms, 3),
            round_p99_ms: c.p99_ms.clone(),
            requests: c.requests,
            errors: c.errors,
            server_cpu: fixed(server_cpu, 3),
            h2load_cpu: fixed(h2load_cpu, 3),
            others_cpu: fixed(others_cpu, 3),
        });
        summaries.push((rps, s));
    }
    let runs: Vec<&Cpu> = candidates.iter().flat_map(|c| &c.cpu).collect();
    let contended = runs.iter().filter(|u| u.others > CONTENDED).count();
    if contended > 0 {
        let _ = writeln!(
            md,
            "\n**{contended} of {} runs had more than {:.0} % of a core taken by other processes \
             (the `others` CPU): the machine was not quiet, these figures are not clean.**",
            runs.len(),
            CONTENDED * 100.0
        );
    }
    let (ours, stock, go) = (&summaries[0], &summaries[1], &summaries[2]);
    let targets = Targets::new(ours, go);
    let _ = write!(
        md,
        "\nOurs vs grpc-go, same run: requests/s ratio {:.2} (stock tonic vs grpc-go: {:.2}).\n\n\
         | target | ours | grpc-go | |\n|---|---|---|---|\n\
         | p99 ≤ grpc-go's | {:.2} ms | {:.2} ms | {} |\n\
         | req/s ≥ 1.2× grpc-go's | {:.0} ({:.2}×) | {:.0} | {} |\n",
        targets.rps_ratio,
        stock.0 / go.0,
        ours.1.p99_ms,
        go.1.p99_ms,
        met(targets.p99_met),
        ours.0,
        targets.rps_ratio,
        go.0,
        met(targets.rps_met),
    );
    drop(candidates);
    let js = Object::new()
        .with("connections", CONNECTIONS)
        .with("streams", STREAMS)
        .with("rounds", rounds)
        .with("seconds", secs)
        .with("servers", &rows)
        .with("contended_runs", contended)
        .with("ours_vs_grpc_go_rps_ratio", fixed(targets.rps_ratio, 4))
        .with("stock_vs_grpc_go_rps_ratio", fixed(stock.0 / go.0, 4))
        .with("p99_target_met", targets.p99_met)
        .with("rps_target_met", targets.rps_met);
    Ok(Section::new(md, &js))
}

/// The two targets of issue 13.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Targets {
    /// Our median requests/s over grpc-go's.
    pub rps_ratio: f64,
    /// Our p99 ≤ grpc-go's.
    pub p99_met: bool,
    /// Our requests/s ≥ 1.2× grpc-go's.
    pub rps_met: bool,
}

impl Targets {
    /// From (median requests/s, latencies) of ours and grpc-go's.
    pub fn new(ours: &(f64, Summary), go: &(f64, Summary)) -> Targets {
        let rps_ratio = ours.0 / go.0;
        Targets {
            rps_ratio,
            p99_met: ours.1.p99_ms <= go.1.p99_ms,
            rps_met: rps_ratio >= 1.2,
        }
    }
}

/// The installed version of a Debian package (`?` if unknown).
async fn deb_version(package: &str) -> String {
    let out = tokio::process::Command::new("dpkg-query")
        .args(["-W", "-f=${Version}", package])
        .stdin(Stdio::null())
        .kill_on_drop(true)
        .output()
        .await;
    match out {
        Ok(o) if o.status.success() && !o.stdout.is_empty() => {
            let v = String::from_utf8_lossy(&o.stdout).into_owned();
            // `1.33.3-2` → `1.33.3`
            v.split('-').next().unwrap_or(&v).to_owned()
        }
        _ => "?".into(),
    }
}

/// The URL h2load and nghttp call.
fn url(addr: SocketAddr) -> String {
    format!("http://{addr}{PATH}")
}

/// One Health/Check with `nghttp -v`: the answer must be 200, one 7-byte DATA frame and
/// `grpc-status: 0` in the trailers.
async fn check_answer(ctx: &Ctx, key: &str, addr: SocketAddr, body: &Path) -> Result<()> {
    let log = ctx.out.join(format!("latency-check-{key}.nghttp.log"));
    let mut cmd = tokio::process::Command::new("nghttp");
    cmd.arg("-v")
        .arg("-d")
        .arg(body)
        .args(["-H", "content-type: application/grpc", "-H", "te: trailers"])
        .arg(url(addr));
    let (text, _) = output(cmd, &log, Duration::from_secs(10)).await?;
    check_nghttp(&text).map_err(|e| format!("{key}: {e} (log: {})", log.display()))
}

/// The checks of `check_answer` on nghttp's verbose output.
pub fn check_nghttp(text: &str) -> Result<()> {
    let has = |needle: &str| text.lines().any(|l| l.contains(needle));
    if !has(":status: 200") {
        return Err("Health/Check: no `:status: 200`".into());
    }
    if !has(&format!("recv DATA frame <length={RESPONSE_BYTES},")) {
        return Err(format!(
            "Health/Check: no {RESPONSE_BYTES}-byte DATA frame (a SERVING answer)"
        ));
    }
    if !has("grpc-status: 0") {
        return Err("Health/Check: no `grpc-status: 0` in the trailers".into());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checks_the_trailers() {
        let ok = "[  0.001] recv (stream_id=13) :status: 200\n\
                  [  0.001] recv DATA frame <length=7, flags=0x00, stream_id=13>\n\
                  [  0.001] recv (stream_id=13) grpc-status: 0\n";
        assert_eq!(check_nghttp(ok), Ok(()));
        assert!(check_nghttp(&ok.replace("grpc-status: 0", "grpc-status: 12")).is_err());
        assert!(check_nghttp(&ok.replace("length=7,", "length=0,")).is_err());
    }

    #[test]
    fn targets() {
        let s = |p99_ms| Summary {
            count: 1,
            p50_ms: 1.0,
            p99_ms,
            max_ms: 50.0,
        };
        let t = Targets::new(&(83_400.0, s(39.7)), &(69_400.0, s(15.3)));
        assert!(!t.p99_met);
        assert!(t.rps_met);
        assert!((t.rps_ratio - 1.2017).abs() < 1e-3);
        let t = Targets::new(&(80_000.0, s(15.3)), &(69_400.0, s(15.3)));
        assert!(t.p99_met);
        assert!(!t.rps_met);
    }
}
