//! Overhead: the same unary call (Heartbeat, 32 in flight) against our server and
//! `bench-server` — the same services behind a stock `tonic::transport::Server` (HTTP/1.1
//! accepted, tonic-web's layer), without the library's connection manager or frame
//! observer — over HTTP/2 and gRPC-web/HTTP/1.1, rounds alternating between the two
//! servers. The ratio of the median requests/s (target ≥ 0.9) and the p99s.
//!
//! Requests/s on a shared 2-core machine move with whatever else runs; instructions per
//! request (user space, valgrind's callgrind on the server) do not: each server is also
//! run under callgrind, its counters zeroed after start-up and dumped after the calls.
//! Without valgrind that table is skipped.

use super::children::{self, Server, log_file, unary_args};
use super::report::{Object, Section, fixed, median, met};
use super::{Ctx, Result};
use serde::Serialize;
use std::fmt::Write as _;
use std::path::Path;
use std::time::Duration;
use testkit::ServerProcess;

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
         | protocol | ours req/s (median) | stock req/s (median) | ratio | ours p99 / stock p99 (ms) | rounds | target ≥ 0.9 |\n\
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
            met(ratio >= 0.9)
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
             | protocol | ours | stock | stock / ours |\n|---|---|---|---|\n",
        );
        for (protocol, a, b) in rows {
            let _ = writeln!(md, "| {protocol} | {a:.0} | {b:.0} | {:.2} |", b / a);
            js = js.with(
                &format!("{protocol}_callgrind"),
                Instructions {
                    ours_instructions_per_request: a.round() as u64,
                    stock_instructions_per_request: b.round() as u64,
                },
            );
        }
    }
    Ok(Section::new(md, &js))
}

/// User-space instructions per unary call of `program` run under callgrind (counters
/// zeroed after start-up, dumped after the calls).
async fn instructions(ctx: &Ctx, which: &str, program: &Path, protocol: &str) -> Result<f64> {
    let name = format!("callgrind-{which}-{protocol}");
    let out = ctx.out.join(format!("{name}.out"));
    let log = ctx.out.join(format!("{name}.log"));
    let args = [
        "--tool=callgrind".to_string(),
        format!("--callgrind-out-file={}", out.display()),
        program.display().to_string(),
        "--listen".into(),
        "127.0.0.1:0".into(),
        "--max-ping-strikes".into(),
        "0".into(),
    ];
    let mut server = ServerProcess::builder()
        .program("valgrind")
        .args(&args)
        .echo(false)
        .log(log_file(&log)?)
        .startup_timeout(Duration::from_secs(60))
        .try_start()
        .await
        .map_err(|e| format!("{name}: {e}"))?;
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
    let mut total: Option<f64> = None;
    for path in &dumps {
        let text = std::fs::read_to_string(path).unwrap_or_default();
        let count = text.lines().find_map(|l| {
            l.strip_prefix("summary:")
                .or_else(|| l.strip_prefix("totals:"))
                .and_then(|v| v.split_whitespace().next()?.parse::<f64>().ok())
        });
        if let Some(c) = count {
            total = Some(total.map_or(c, |t| t.min(c)));
        }
        let _ = std::fs::remove_file(path);
    }
    match total {
        Some(t) if run.requests > 0 => Ok(t / run.requests as f64),
        _ => Err(format!(
            "no callgrind dump for {name} (log: {})",
            log.display()
        )),
    }
}
