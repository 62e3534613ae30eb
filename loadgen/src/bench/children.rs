//! The bench's children. Servers are [`testkit::ServerProcess`]es (a port of their own
//! choosing, read from their `listening on` line; their log in `NAME.log`; killed on
//! drop), restarted on the same port for the recovery scenario. The load generator runs
//! to completion: its stdout says `READY …`, `MEASURE start`, `MEASURE end` and, last,
//! `REPORT {json}`; its stderr goes to `NAME.loadgen.log`; it is killed on drop too, so
//! no child outlives a failing bench. Around the window the server's CPU, memory and
//! counters are read.

use super::machine::{self, Usage};
use super::profile;
use super::{Ctx, Result};
use crate::scenario::unary::UnaryReport;
use serde::de::DeserializeOwned;
use serde_json::Value;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;
use testkit::{LogFile, Metrics, ServerBuilder, ServerProcess, StartError};
use tokio::io::{AsyncBufReadExt, BufReader, Lines};
use tokio::process::{Child, ChildStdout};
use tokio::time::Instant;

/// A server under measurement.
#[derive(Debug)]
pub struct Server {
    process: ServerProcess,
    /// How it was started (for a restart).
    builder: ServerBuilder,
    name: String,
}

impl Server {
    /// Starts `program flags` on a free port of 127.0.0.1, its log in `NAME.log`.
    pub async fn start(ctx: &Ctx, name: &str, program: &Path, flags: &[&str]) -> Result<Server> {
        let builder = ServerProcess::builder()
            .program(program)
            .args(flags)
            .echo(false)
            .log(log_file(&ctx.out.join(format!("{name}.log")))?);
        let process = builder
            .clone()
            .try_start()
            .await
            .map_err(|e| format!("{name}: {e}"))?;
        Ok(Server {
            process,
            builder,
            name: name.to_owned(),
        })
    }

    /// Its address.
    pub fn addr(&self) -> SocketAddr {
        self.process.addr()
    }

    /// Its process id.
    pub fn pid(&self) -> u32 {
        self.process.pid()
    }

    /// Kills it (SIGKILL) and starts it again with the same flags on the same port (its
    /// log goes on in the same file).
    pub async fn restart(&mut self) -> Result<()> {
        self.process.kill();
        let addr = self.addr();
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            match self
                .builder
                .clone()
                .listen(addr.to_string())
                .try_start()
                .await
            {
                Ok(process) => {
                    self.process = process;
                    return Ok(());
                }
                // The old socket may linger a moment: try again.
                Err(StartError::AddrInUse(_)) if Instant::now() < deadline => {
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
                Err(e) => return Err(format!("{} restart: {e}", self.name)),
            }
        }
    }

    /// Its CPU time and memory now (zero if unreadable).
    pub fn usage(&self) -> Usage {
        machine::usage(self.pid()).unwrap_or_default()
    }

    /// Its counters now (none if the scrape fails).
    pub async fn metrics(&self) -> Metrics {
        testkit::metrics::scrape(self.addr())
            .await
            .unwrap_or_default()
    }
}

/// What a load generator run is measured around: one [`Server`], or replicas and the
/// Redis they share (the replicas scenario).
pub trait Measured {
    /// CPU time and memory of the servers now (summed over replicas).
    fn usage(&self) -> Usage;
    /// CPU time and memory of what the servers share (Redis) now; nothing by default.
    fn shared_usage(&self) -> Usage {
        Usage::default()
    }
    /// The servers' counters now (summed over replicas).
    fn metrics(&self) -> impl Future<Output = Metrics>;
    /// [`During::RestartAfter`]: kills (SIGKILL) a server and starts it again.
    fn restart(&mut self) -> impl Future<Output = Result<()>>;
}

impl Measured for Server {
    fn usage(&self) -> Usage {
        Server::usage(self)
    }
    async fn metrics(&self) -> Metrics {
        Server::metrics(self).await
    }
    async fn restart(&mut self) -> Result<()> {
        Server::restart(self).await
    }
}

/// A log file for a child (truncated).
pub fn log_file(path: &Path) -> Result<LogFile> {
    LogFile::create(path).map_err(|e| format!("cannot create {}: {e}", path.display()))
}

/// `sample` in `m`, or NaN.
pub fn metric(m: &Metrics, sample: &str) -> f64 {
    m.get(sample).unwrap_or(f64::NAN)
}

/// What happened around a `loadgen sessions` run.
#[derive(Debug)]
pub struct Run<T> {
    /// The report, typed.
    pub report: T,
    /// The report as the load generator printed it (for `bench.json`).
    pub raw: Value,
    /// Server usage at `MEASURE start` and `MEASURE end`.
    pub usage: (Usage, Usage),
    /// The shared parts' usage (Redis) at `MEASURE start` and `MEASURE end`.
    pub shared: (Usage, Usage),
    /// The load generator's CPU seconds in the window.
    pub loadgen_cpu_s: f64,
    /// The whole machine's busy CPU seconds in the window (all processes).
    pub machine_cpu_s: f64,
    /// Server counters at `MEASURE start` and `MEASURE end`.
    pub metrics: (Metrics, Metrics),
    /// Server usage before the load generator started.
    pub idle: Usage,
    /// [`During::Profile`]: the `perf record` data of the window, or why there is none.
    pub profile: Option<Result<PathBuf>>,
}

/// What to do to the server once the window has begun.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum During {
    /// Nothing.
    Nothing,
    /// Kill it and start it again on the same port, this long into the window.
    RestartAfter(Duration),
    /// Sample this process with `perf record` over the window (`NAME.perf.data`).
    Profile(u32),
}

/// A running load generator, killed on drop.
struct Loadgen {
    child: Child,
    lines: Lines<BufReader<ChildStdout>>,
    log: PathBuf,
    deadline: Instant,
}

impl Loadgen {
    /// `loadgen --threads N ARGS`, stdout read here, stderr into `NAME.loadgen.log`.
    fn spawn(ctx: &Ctx, name: &str, args: &[String], timeout: Duration) -> Result<Loadgen> {
        let log = ctx.out.join(format!("{name}.loadgen.log"));
        let file = std::fs::File::create(&log)
            .map_err(|e| format!("cannot create {}: {e}", log.display()))?;
        let mut child = tokio::process::Command::new(&ctx.bins.loadgen)
            .arg("--threads")
            .arg(&ctx.threads)
            .args(args)
            .env("NO_COLOR", "1")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(file)
            .kill_on_drop(true)
            .spawn()
            .map_err(|e| format!("cannot start {}: {e}", ctx.bins.loadgen.display()))?;
        let stdout = child
            .stdout
            .take()
            .ok_or_else(|| "loadgen: no stdout".to_string())?;
        Ok(Loadgen {
            child,
            lines: BufReader::new(stdout).lines(),
            log,
            deadline: Instant::now() + timeout,
        })
    }

    /// The next line of its stdout, by the deadline.
    async fn next_line(&mut self) -> Result<String> {
        let log = self.log.display();
        match tokio::time::timeout_at(self.deadline, self.lines.next_line()).await {
            Ok(Ok(Some(line))) => Ok(line),
            Ok(Ok(None) | Err(_)) => Err(format!("loadgen ended early (log: {log})")),
            Err(_) => Err(format!("loadgen gave no answer in time (log: {log})")),
        }
    }

    /// Its CPU seconds so far.
    fn cpu_s(&self) -> f64 {
        self.child
            .id()
            .and_then(machine::usage)
            .unwrap_or_default()
            .cpu_s
    }

    /// Its report: the `REPORT` line, typed and as printed.
    fn report<T: DeserializeOwned>(&self, json: &str) -> Result<(T, Value)> {
        let bad =
            |e: serde_json::Error| format!("loadgen report: {e} (log: {})", self.log.display());
        let raw: Value = serde_json::from_str(json).map_err(bad)?;
        let report = T::deserialize(&raw).map_err(bad)?;
        Ok((report, raw))
    }

    /// Waits for it to exit (it prints its report last), killing it after 5 s.
    async fn end(mut self) {
        if tokio::time::timeout(Duration::from_secs(5), self.child.wait())
            .await
            .is_err()
        {
            let _ = self.child.kill().await;
        }
    }
}

/// Runs `loadgen sessions …` (`args`) against `server`, reading the server's usage and
/// counters at the window's start and end.
pub async fn sessions<T: DeserializeOwned>(
    ctx: &Ctx,
    name: &str,
    server: &mut impl Measured,
    args: &[String],
    during: During,
    timeout: Duration,
) -> Result<Run<T>> {
    let idle = server.usage();
    let mut loadgen = Loadgen::spawn(ctx, name, args, timeout)?;
    let mut usage = (Usage::default(), Usage::default());
    let mut shared = (Usage::default(), Usage::default());
    let mut metrics = (Metrics::default(), Metrics::default());
    let (mut loadgen_cpu_s, mut machine_cpu_s) = (0.0, 0.0);
    let mut recording = None;
    let mut profile = None;
    loop {
        let line = loadgen.next_line().await?;
        if line.starts_with("READY") {
            println!("  {name}: {line}");
        } else if line == "MEASURE start" {
            usage.0 = server.usage();
            shared.0 = server.shared_usage();
            loadgen_cpu_s = -loadgen.cpu_s();
            machine_cpu_s = -machine::machine_busy_s().unwrap_or(f64::NAN);
            metrics.0 = server.metrics().await;
            match during {
                During::Nothing => {}
                During::RestartAfter(after) => {
                    tokio::time::sleep(after).await;
                    server.restart().await?;
                }
                During::Profile(pid) => {
                    let data = ctx.out.join(format!("{name}.perf.data"));
                    match profile::Recording::start(pid, &data) {
                        Ok(r) => recording = Some(r),
                        Err(e) => profile = Some(Err(e)),
                    }
                }
            }
        } else if line == "MEASURE end" {
            usage.1 = server.usage();
            shared.1 = server.shared_usage();
            loadgen_cpu_s += loadgen.cpu_s();
            machine_cpu_s += machine::machine_busy_s().unwrap_or(f64::NAN);
            metrics.1 = server.metrics().await;
            if let Some(r) = recording.take() {
                profile = Some(r.stop().await);
            }
        } else if let Some(json) = line.strip_prefix("REPORT ") {
            let (report, raw) = loadgen.report(json)?;
            loadgen.end().await;
            return Ok(Run {
                report,
                raw,
                usage,
                shared,
                loadgen_cpu_s,
                machine_cpu_s,
                metrics,
                idle,
                profile,
            });
        }
    }
}

/// Runs `loadgen unary …` (`args`) and returns its report.
pub async fn unary(ctx: &Ctx, name: &str, args: &[String]) -> Result<UnaryReport> {
    let mut loadgen = Loadgen::spawn(ctx, name, args, Duration::from_secs(60))?;
    loop {
        let line = loadgen.next_line().await?;
        if let Some(json) = line.strip_prefix("REPORT ") {
            let (report, _) = loadgen.report(json)?;
            loadgen.end().await;
            return Ok(report);
        }
    }
}

/// The sessions' client keepalive `time` and `timeout`, a 2 s ramp and a 2 s settle, and
/// the measured window: what every sessions scenario but capacity passes.
pub fn timing<'a>(time: &'a str, timeout: &'a str, window: &'a str) -> [&'a str; 10] {
    [
        "--time",
        time,
        "--timeout",
        timeout,
        "--ramp",
        "2s",
        "--settle",
        "2s",
        "--duration",
        window,
    ]
}

/// `sessions --addr ADDR --sessions N --source-ips 8 EXTRA…`.
pub fn sessions_args(addr: SocketAddr, n: usize, extra: &[&str]) -> Vec<String> {
    let mut a: Vec<String> = ["sessions", "--addr", &addr.to_string(), "--sessions"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    a.extend([n.to_string(), "--source-ips".into(), "8".into()]);
    a.extend(extra.iter().map(|x| x.to_string()));
    a
}

/// `unary --addr ADDR --protocol P --concurrency 32 --warmup W --duration D`.
pub fn unary_args(addr: SocketAddr, protocol: &str, warmup: &str, duration: &str) -> Vec<String> {
    [
        "unary",
        "--addr",
        &addr.to_string(),
        "--protocol",
        protocol,
        "--concurrency",
        "32",
        "--warmup",
        warmup,
        "--duration",
        duration,
    ]
    .iter()
    .map(|x| x.to_string())
    .collect()
}
