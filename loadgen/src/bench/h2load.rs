//! h2load (nghttp2's load generator, Debian's `nghttp2-client`) as the bench runs it:
//! pinned to core [`LOAD_CPU`] while the server under test is pinned to core
//! [`SERVER_CPU`] (`taskset`), so that each has a core of its own and the server's
//! requests/s is bounded by the server's cost per call rather than by the machine's
//! scheduling or by the load generator. h2load is written in C on nghttp2 and costs far
//! less per call than any server here, so the server is the one that saturates.
//!
//! [`run`] starts one h2load run ([`Load`]: HTTP/2 or HTTP/1.1, connections × streams,
//! the path, the headers, the body file) and parses its summary and its `--log-file`
//! ([`parse`]) into an [`H2load`]. h2load counts an HTTP 200 as a success whatever the
//! `grpc-status`, so the caller says how many DATA bytes a good answer has
//! ([`H2load::errors`]).

use super::machine;
use super::{Ctx, Result};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

/// The core the server under test runs on.
pub const SERVER_CPU: usize = 0;
/// The core h2load runs on.
pub const LOAD_CPU: usize = 1;

/// `taskset` arguments that run `program` with `flags` on core [`SERVER_CPU`], on a free
/// port of 127.0.0.1 (`--listen` given here: the process runner would put its own before
/// `taskset`'s arguments).
pub fn pinned(program: &Path, flags: &[&str]) -> Vec<String> {
    let mut args = vec![
        "-c".to_string(),
        SERVER_CPU.to_string(),
        program.display().to_string(),
        "--listen".to_string(),
        "127.0.0.1:0".to_string(),
    ];
    args.extend(flags.iter().map(|f| f.to_string()));
    args
}

/// Fails unless this machine has the two cores the pinning needs.
pub fn two_cores(scenario: &str) -> Result<()> {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    if cores <= LOAD_CPU {
        return Err(format!(
            "the {scenario} scenario pins the server and h2load to cores {SERVER_CPU} and \
             {LOAD_CPU}; this machine has {cores}"
        ));
    }
    Ok(())
}

/// What one h2load run sends.
#[derive(Debug, Clone)]
pub struct Load<'a> {
    /// HTTP/1.1 (`--h1`) instead of HTTP/2.
    pub http1: bool,
    /// Connections.
    pub connections: u32,
    /// Requests in flight per connection (HTTP/2 streams; over HTTP/1.1 more than 1
    /// would be pipelining).
    pub streams: u32,
    /// The method's path.
    pub path: &'a str,
    /// Request headers beyond h2load's own, `name: value`.
    pub headers: &'a [&'a str],
    /// The file holding every request's body.
    pub body: &'a Path,
}

/// One h2load run, from its summary and its log.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct H2load {
    /// Requests h2load counted in the measured window.
    pub requests: u64,
    /// Of which succeeded (HTTP 2xx).
    pub succeeded: u64,
    /// Failed, errored or timed out.
    pub failed: u64,
    /// DATA bytes received.
    pub data_bytes: u64,
    /// Requests per second (h2load's).
    pub rps: f64,
    /// Durations of the answered requests (status 200 in the log), ms.
    pub latencies_ms: Vec<f64>,
    /// h2load's own CPU seconds (its last `/proc` reading before it ended).
    pub cpu_s: f64,
}

impl H2load {
    /// Requests that failed or whose answer was not the one expected, `answer_bytes` of
    /// DATA each (h2load counts an HTTP 200 as a success whatever the `grpc-status`; a
    /// gRPC error is an answer of another size): failures, plus answers short of
    /// `answer_bytes` each — all of them when the bytes are not a multiple of it.
    pub fn errors(&self, answer_bytes: u64) -> u64 {
        let whole = self.data_bytes / answer_bytes;
        let wrong = if !self.data_bytes.is_multiple_of(answer_bytes) {
            self.succeeded.max(1)
        } else {
            self.succeeded.saturating_sub(whole)
        };
        self.failed + wrong
    }
}

/// The numbers `N word` of a line like `requests: 10 total, 9 started, …`.
fn counts(line: &str) -> Vec<(String, u64)> {
    let rest = line.split_once(':').map_or(line, |(_, r)| r);
    rest.split(',')
        .filter_map(|part| {
            let mut words = part.split_whitespace();
            let n = words.next()?.parse().ok()?;
            Some((words.next()?.to_owned(), n))
        })
        .collect()
}

/// Parses h2load's summary (stdout) and its `--log-file` (start µs, status, duration µs).
pub fn parse(stdout: &str, log: &str) -> Result<H2load> {
    let mut run = H2load::default();
    let (mut seen_requests, mut seen_rps, mut seen_data) = (false, false, false);
    for line in stdout.lines() {
        if let Some(rest) = line.strip_prefix("finished in ") {
            // `finished in 3.01s, 16747.50 req/s, 670.66KB/s`
            run.rps = rest
                .split(", ")
                .find_map(|p| p.strip_suffix(" req/s"))
                .and_then(|x| x.trim().parse().ok())
                .ok_or_else(|| format!("h2load: no req/s in `{line}`"))?;
            seen_rps = true;
        } else if line.starts_with("requests: ") {
            seen_requests = true;
            for (word, n) in counts(line) {
                match word.as_str() {
                    "total" => run.requests = n,
                    "succeeded" => run.succeeded = n,
                    "failed" | "errored" | "timeout" => run.failed += n,
                    _ => {}
                }
            }
        } else if line.starts_with("traffic: ") {
            // `traffic: 1.31MB (1373520) total, 91.44KB (93634) headers (…), 317.99KB (325619) data`
            run.data_bytes = line
                .split(", ")
                .find(|p| p.ends_with(" data"))
                .and_then(|p| p.split_once('(')?.1.split_once(')')?.0.parse().ok())
                .ok_or_else(|| format!("h2load: no data bytes in `{line}`"))?;
            seen_data = true;
        }
    }
    if !(seen_requests && seen_rps && seen_data) {
        return Err(format!(
            "h2load printed no summary:\n{}",
            stdout.lines().rev().take(5).collect::<Vec<_>>().join("\n")
        ));
    }
    for line in log.lines() {
        let mut cols = line.split('\t');
        let (_, status, us) = (cols.next(), cols.next(), cols.next());
        if status == Some("200")
            && let Some(us) = us.and_then(|u| u.trim().parse::<f64>().ok())
        {
            run.latencies_ms.push(us / 1000.0);
        }
    }
    Ok(run)
}

/// `taskset -c 1 h2load [--h1] -c C -m M -t 1 -D SECS -d BODY -H … --log-file …` against
/// `addr`; its summary and log parsed (the log removed after: a few MB a run).
pub async fn run(
    ctx: &Ctx,
    name: &str,
    addr: SocketAddr,
    load: &Load<'_>,
    secs: u64,
) -> Result<H2load> {
    let log: PathBuf = ctx.out.join(format!("{name}.h2load.tsv"));
    let mut cmd = tokio::process::Command::new("taskset");
    cmd.arg("-c").arg(LOAD_CPU.to_string()).arg("h2load");
    if load.http1 {
        cmd.arg("--h1");
    }
    cmd.args(["-c", &load.connections.to_string()])
        .args(["-m", &load.streams.to_string()])
        .args(["-t", "1", "-D", &secs.to_string()])
        .arg("-d")
        .arg(load.body);
    for h in load.headers {
        cmd.args(["-H", h]);
    }
    cmd.arg("--log-file")
        .arg(&log)
        .arg(format!("http://{addr}{}", load.path));
    let (stdout, cpu_s) = output(
        cmd,
        &ctx.out.join(format!("{name}.h2load.log")),
        Duration::from_secs(secs + 30),
    )
    .await?;
    let tsv = std::fs::read_to_string(&log)
        .map_err(|e| format!("{name}: cannot read {}: {e}", log.display()))?;
    let _ = std::fs::remove_file(&log);
    let run = parse(&stdout, &tsv).map_err(|e| format!("{name}: {e}"))?;
    Ok(H2load { cpu_s, ..run })
}

/// Core `cpu`'s busy seconds since boot (NaN if unreadable).
pub fn busy(cpu: usize) -> f64 {
    machine::cpu_busy_s(cpu).unwrap_or(f64::NAN)
}

/// Fails unless `tool arg` runs.
pub async fn tool_present(tool: &str, arg: &str) -> Result<()> {
    match tokio::process::Command::new(tool)
        .arg(arg)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .status()
        .await
    {
        Ok(_) => Ok(()),
        Err(e) => Err(format!(
            "{tool}: {e} (Debian's nghttp2-client; `cargo xtask bench` installs it)"
        )),
    }
}

/// Runs a child to its end within `timeout` (killed on drop, so also on a timeout):
/// stdout and stderr, both written to `log`, and its CPU seconds (read from `/proc`
/// every 50 ms while it runs: the last reading).
pub async fn output(
    mut cmd: tokio::process::Command,
    log: &Path,
    timeout: Duration,
) -> Result<(String, f64)> {
    cmd.stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    let shown = format!("{:?}", cmd.as_std());
    let child = cmd.spawn().map_err(|e| format!("{shown}: {e}"))?;
    let pid = child.id();
    let cpu_s = std::cell::Cell::new(0.0);
    let sample = async {
        loop {
            if let Some(u) = pid.and_then(machine::usage) {
                cpu_s.set(u.cpu_s);
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    };
    let out = tokio::select! {
        out = tokio::time::timeout(timeout, child.wait_with_output()) => out,
        () = sample => unreachable!("the sampling loop does not end"),
    }
    .map_err(|_| format!("{shown}: no end in {timeout:?}"))?
    .map_err(|e| format!("{shown}: {e}"))?;
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    std::fs::write(log, &text).map_err(|e| format!("cannot write {}: {e}", log.display()))?;
    if !out.status.success() {
        return Err(format!("{shown}: {} (log: {})", out.status, log.display()));
    }
    Ok((text, cpu_s.get()))
}

#[cfg(test)]
mod tests {
    use super::*;

    const SUMMARY: &str = "\
starting benchmark...
finished in 2.00s, 16747.50 req/s, 670.66KB/s
requests: 4 total, 4 started, 4 done, 3 succeeded, 1 failed, 0 errored, 0 timeout
status codes: 3 2xx, 0 3xx, 0 4xx, 0 5xx
traffic: 1.31MB (1373520) total, 91.44KB (93634) headers (space savings 94.70%), 21B (21) data
";

    #[test]
    fn parses_h2load() {
        let log = "1796181665092086\t200\t30051\n1796181665092076\t200\t1500\n\
                   1796181665092077\t-1\t9\n1796181665092078\t200\t700\n";
        let run = parse(SUMMARY, log).expect("parses");
        assert_eq!(run.requests, 4);
        assert_eq!(run.succeeded, 3);
        assert_eq!(run.failed, 1);
        assert_eq!(run.data_bytes, 21);
        assert_eq!(run.rps, 16747.5);
        assert_eq!(run.latencies_ms, vec![30.051, 1.5, 0.7]);
        // The failed one; the three answers are 7 bytes each.
        assert_eq!(run.errors(7), 1);
        let short = H2load {
            data_bytes: 14,
            ..run.clone()
        };
        assert_eq!(short.errors(7), 2);
        let torn = H2load {
            data_bytes: 20,
            ..run
        };
        assert_eq!(torn.errors(7), 4);
        assert!(parse("nothing", "").is_err());
    }
}
