//! Replicas: the event log on Redis Streams (issue 12). Browser-shaped sessions
//! (gRPC-web over HTTP/1.1) subscribe while every server publishes ticks; each event goes
//! through one Lua `APPEND` into the Redis stream, one `XREAD BLOCK` tail per replica,
//! and that replica's local fan-out.
//!
//! Rows of the first table (100 subscribers; 30 for the last row, where the log's rate
//! and not the fan-out is measured):
//! - `memory, 1 server`: the embedded log, ticks every 2 ms (500 events/s): the baseline;
//! - `redis, 1 server`: the same server and rate with `--redis` (its own Redis): the
//!   per-event cost of the shared log, in server CPU per 1 000 events and in Redis CPU;
//! - `redis, 3 replicas + nginx`: three replicas ticking every 6 ms each (500 events/s
//!   in one log), subscribers spread by nginx (`least_conn`), publish→deliver lag from
//!   the publishing replica's stamp to the browser-shaped client;
//! - `3 × 1 000 events/s`: the same with 1 ms ticks (as fast as a ticker goes: tokio's
//!   timer has 1 ms steps): events/s through Redis.
//!
//! The second table: replica 1 killed (SIGKILL) one second into the window and started
//! again, client Time 1 s + Timeout 1 s; the sessions it held reconnect through nginx to
//! the others and resume from the shared log: loss → first resumed event, gaps,
//! duplicates.

use super::children::{self, During, Measured, Server, metric, sessions_args, timing};
use super::machine::{self, Usage};
use super::report::{Section, fixed, ms3};
use super::{Ctx, Result};
use crate::scenario::sessions::SessionsReport;
use serde::Serialize;
use serde_json::Value;
use std::fmt::Write as _;
use std::net::SocketAddr;
use std::time::Duration;
use testkit::{Cluster, ClusterOptions, Metrics, Persistence, RedisServer};

/// Replicas and the Redis they share, measured together.
struct Replicas {
    cluster: Cluster,
    pids: Vec<Option<u32>>,
}

impl Replicas {
    /// Redis, `n` replicas with `flags` and nginx in front.
    async fn start(ctx: &Ctx, n: usize, flags: &[&str]) -> Result<Replicas> {
        let mut cluster = Cluster::start(ClusterOptions {
            server: ctx.bins.server.clone(),
            replicas: n,
            running: n,
            args: flags.iter().map(|f| f.to_string()).collect(),
            idle: Duration::from_secs(60),
            persistence: Persistence::None,
            echo: false,
            listen: (None, None),
        })
        .await
        .map_err(|e| format!("replicas: {e}"))?;
        let pids = (0..n).map(|i| cluster.replica(i).status().pid).collect();
        Ok(Replicas { cluster, pids })
    }

    /// Where the browser-shaped clients go: nginx's HTTP/1.1 listener.
    fn web_addr(&self) -> SocketAddr {
        self.cluster.nginx.web_addr()
    }

    /// Every replica's lines into `NAME.log` (the bench keeps logs of every process).
    fn save_logs(&self, ctx: &Ctx, name: &str) {
        let _ = std::fs::write(ctx.out.join(format!("{name}.log")), self.cluster.logs());
    }
}

impl Measured for Replicas {
    fn usage(&self) -> Usage {
        sum_usage(self.pids.iter().flatten().copied())
    }
    fn shared_usage(&self) -> Usage {
        sum_usage(self.cluster.redis.pid())
    }
    async fn metrics(&self) -> Metrics {
        let mut parts = Vec::new();
        for addr in self.cluster.addrs() {
            parts.push(testkit::metrics::scrape(*addr).await.unwrap_or_default());
        }
        Metrics::sum(&parts)
    }
    async fn restart(&mut self) -> Result<()> {
        let replica = self.cluster.replica(0);
        replica
            .restart(false)
            .await
            .map_err(|e| format!("replica-1 restart: {e}"))?;
        self.pids[0] = replica.status().pid;
        Ok(())
    }
}

/// One server with its own Redis (the per-event cost row).
struct WithRedis {
    server: Server,
    redis: RedisServer,
}

impl Measured for WithRedis {
    fn usage(&self) -> Usage {
        self.server.usage()
    }
    fn shared_usage(&self) -> Usage {
        sum_usage(self.redis.pid())
    }
    async fn metrics(&self) -> Metrics {
        self.server.metrics().await
    }
    async fn restart(&mut self) -> Result<()> {
        self.server.restart().await
    }
}

fn sum_usage(pids: impl IntoIterator<Item = u32>) -> Usage {
    pids.into_iter()
        .filter_map(machine::usage)
        .fold(Usage::default(), |a, u| Usage {
            cpu_s: a.cpu_s + u.cpu_s,
            user_s: a.user_s + u.user_s,
            sys_s: a.sys_s + u.sys_s,
            rss_kib: a.rss_kib + u.rss_kib,
        })
}

/// One row of the throughput table, in `bench.json`.
#[derive(Debug, Serialize)]
struct Row {
    setup: String,
    subscribers: usize,
    published_per_s: f64,
    delivered_per_s: f64,
    per_subscriber_per_s: f64,
    server_cpu_ms_per_1000_events: f64,
    redis_cpu_ms_per_1000_events: f64,
    loadgen: Value,
}

/// The scenario's `bench.json`.
#[derive(Debug, Serialize)]
struct Json {
    rows: Vec<Row>,
    kill: Value,
}

/// The subscribers' flags: Time 1 s + Timeout 1 s (as the recovery scenario), stream
/// heartbeats so nothing is idle.
fn client_flags(quick: bool) -> [&'static str; 10] {
    timing("1s", "1s", if quick { "3s" } else { "10s" })
}

/// The servers' flags for ticks every `tick`.
fn server_flags(tick: &str) -> [&str; 6] {
    [
        "--tick-interval",
        tick,
        "--replay-capacity",
        "100000",
        "--stream-heartbeat-interval",
        "1s",
    ]
}

/// Runs the replicas scenario.
pub async fn run(ctx: &Ctx) -> Result<Section> {
    // Enough subscribers to fan out to, few enough that two cores are not saturated by
    // the fan-out itself (the fanout scenario measures that): the lag is then the log's.
    let n = if ctx.quick { 30 } else { 100 };
    // As fast as it goes: few subscribers, so the log is what is measured.
    let few = if ctx.quick { 6 } else { 30 };
    let flags = client_flags(ctx.quick);
    let mut rows = Vec::new();
    let mut md = String::from(
        "### Replicas: the event log on Redis Streams, browser-shaped subscribers (gRPC-web/HTTP/1.1)\n\n\
         | setup | subscribers | published/s | delivered/s (clients) | per subscriber/s | publish → deliver p50 / p99 / max (ms) | gaps / duplicates | errors | server CPU ms per 1 000 events | Redis CPU ms per 1 000 events | CPU servers / Redis / loadgen / machine (cores) |\n\
         |---|---|---|---|---|---|---|---|---|---|---|\n",
    );

    // The embedded log: the baseline.
    let mut server = Server::start(
        ctx,
        "replicas-memory",
        &ctx.bins.server,
        &server_flags("2ms"),
    )
    .await?;
    let args = sessions_args(server.addr(), n, &flags);
    let run = children::sessions::<SessionsReport>(
        ctx,
        "replicas-memory",
        &mut server,
        &args,
        During::Nothing,
        Duration::from_secs(90),
    )
    .await?;
    rows.push(row(&mut md, "memory, 1 server, 500 events/s", n, run));
    drop(server);

    // The same server on Redis.
    let redis = RedisServer::start(Persistence::None).map_err(|e| format!("redis: {e}"))?;
    let url = redis.url();
    let mut with_redis_flags = server_flags("2ms").to_vec();
    with_redis_flags.extend(["--redis", &url]);
    let server = Server::start(ctx, "replicas-redis", &ctx.bins.server, &with_redis_flags).await?;
    let mut one = WithRedis { server, redis };
    let args = sessions_args(one.server.addr(), n, &flags);
    let run = children::sessions::<SessionsReport>(
        ctx,
        "replicas-redis",
        &mut one,
        &args,
        During::Nothing,
        Duration::from_secs(90),
    )
    .await?;
    rows.push(row(&mut md, "redis, 1 server, 500 events/s", n, run));
    drop(one);

    // Three replicas behind nginx, 500 events/s in all, then as fast as they go.
    for (name, tick, label, subscribers) in [
        (
            "replicas-3",
            "6ms",
            "redis, 3 replicas + nginx, 3 × 167 events/s",
            n,
        ),
        (
            "replicas-3-max",
            "1ms",
            "redis, 3 replicas + nginx, 3 × 1 000 events/s (the tickers' 1 ms limit)",
            few,
        ),
    ] {
        let mut replicas = Replicas::start(ctx, 3, &server_flags(tick)).await?;
        let args = sessions_args(replicas.web_addr(), subscribers, &flags);
        let run = children::sessions::<SessionsReport>(
            ctx,
            name,
            &mut replicas,
            &args,
            During::Nothing,
            Duration::from_secs(90),
        )
        .await;
        replicas.save_logs(ctx, name);
        rows.push(row(&mut md, label, subscribers, run?));
    }

    // A replica killed.
    let mut replicas = Replicas::start(ctx, 3, &server_flags("6ms")).await?;
    let args = sessions_args(replicas.web_addr(), n, &flags);
    let run = children::sessions::<SessionsReport>(
        ctx,
        "replicas-kill",
        &mut replicas,
        &args,
        During::RestartAfter(Duration::from_secs(1)),
        Duration::from_secs(90),
    )
    .await;
    replicas.save_logs(ctx, "replicas-kill");
    let run = run?;
    let r = &run.report;
    let d = r.recovery.clone().unwrap_or_default();
    md.push_str(
        "\n### Replicas: replica 1 of 3 killed (SIGKILL) and started again, sessions resume on the others through nginx (Time 1 s + Timeout 1 s)\n\n\
         | sessions | sessions lost | READY again | with a resumed event | loss → READY p50 / p99 / max (ms) | loss → first resumed event p50 / p99 / max (ms) | gaps | duplicates | errors |\n\
         |---|---|---|---|---|---|---|---|---|\n",
    );
    let _ = writeln!(
        md,
        "| {n} | {} | {} | {} | {} | {} | {} | {} | {} |",
        d.lost,
        d.recovered,
        d.resumed_with_event,
        ms3(&d.loss_to_ready),
        ms3(&d.loss_to_first_event),
        r.gaps,
        r.duplicates,
        r.errors - r.losses,
    );
    let json = Json {
        rows,
        kill: run.raw,
    };
    Ok(Section::new(md, &json))
}

/// Writes one row of the throughput table and returns it for `bench.json`.
fn row(md: &mut String, setup: &str, n: usize, run: children::Run<SessionsReport>) -> Row {
    let r = &run.report;
    let window = r.window_s;
    let published = metric(&run.metrics.1, "keepalive_events_published_total")
        - metric(&run.metrics.0, "keepalive_events_published_total");
    let cpu = run.usage.1.cpu_s - run.usage.0.cpu_s;
    let redis_cpu = run.shared.1.cpu_s - run.shared.0.cpu_s;
    let per_1000 = |cpu_s: f64| {
        if published > 0.0 {
            cpu_s * 1e6 / published
        } else {
            f64::NAN
        }
    };
    let _ = writeln!(
        md,
        "| {setup} | {n} | {:.0} | {:.0} | {:.0} | {} | {} / {} | {} | {:.1} | {:.1} | {:.2} / {:.2} / {:.2} / {:.2} |",
        published / window,
        r.events_per_s,
        r.events_per_s / n as f64,
        ms3(&r.event_lag),
        r.gaps,
        r.duplicates,
        r.errors,
        per_1000(cpu),
        per_1000(redis_cpu),
        cpu / window,
        redis_cpu / window,
        run.loadgen_cpu_s / window,
        run.machine_cpu_s / window,
    );
    Row {
        setup: setup.to_owned(),
        subscribers: n,
        published_per_s: fixed(published / window, 1),
        delivered_per_s: fixed(r.events_per_s, 1),
        per_subscriber_per_s: fixed(r.events_per_s / n as f64, 1),
        server_cpu_ms_per_1000_events: fixed(per_1000(cpu), 2),
        redis_cpu_ms_per_1000_events: fixed(per_1000(redis_cpu), 2),
        loadgen: run.raw,
    }
}
