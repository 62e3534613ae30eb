//! What the replicas' tests share: a cluster of demo servers (3 replicas, nginx, Redis —
//! `testkit::Cluster`), a fleet of browser-shaped sessions through nginx (loadgen's
//! driver: the keepalive core over gRPC-web/HTTP/1.1), a publisher that retries with the
//! same idempotency key until the event is in, and the checks every test makes of what
//! the sessions got.

#![allow(dead_code)] // Not every test uses every helper.

use demo_proto::v1::PublishRequest;
use demo_proto::v1::feed_client::FeedClient;
use keepalive::client::ClientConfig;
use keepalive_proto::v1::OpenSessionRequest;
use keepalive_proto::v1::session_client::SessionClient;
use loadgen::driver::{Clock, Session, SessionConfig, SessionRecord, Totals};
use loadgen::http::Target;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;
use std::time::Duration;
use testkit::redis::Persistence;
use testkit::{Cluster, ClusterOptions};
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tonic::transport::Channel;

/// One replicas test at a time: three servers, nginx, Redis and the sessions are what a
/// 2-core machine can run without measuring itself.
pub static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

pub fn secs(s: f64) -> Duration {
    Duration::from_secs_f64(s)
}

/// A cluster of `replicas` demo servers (`running` of them started) with `args`, nginx
/// cutting silent calls after `idle`.
pub async fn cluster(
    replicas: usize,
    running: usize,
    args: &[&str],
    idle: Duration,
    persistence: Persistence,
) -> Cluster {
    let mut all: Vec<&str> = Vec::new();
    for (flag, value) in [
        ("--stream-heartbeat-interval", "1s"),
        ("--min-ping-interval", "100ms"),
    ] {
        if !args.contains(&flag) {
            all.extend([flag, value]);
        }
    }
    all.extend_from_slice(args);
    Cluster::start(ClusterOptions {
        server: testkit::server_binary(),
        replicas,
        running,
        args: all.iter().map(|s| (*s).to_owned()).collect(),
        idle,
        persistence,
        echo: true,
        listen: (None, None),
    })
    .await
    .unwrap_or_else(|e| panic!("cluster: {e}"))
}

/// The client settings of the sessions: Time 1 s, Timeout 1 s, backoff from 300 ms.
pub fn client() -> ClientConfig {
    let mut c = ClientConfig {
        keepalive_time: secs(1.0),
        keepalive_timeout: secs(1.0),
        ..ClientConfig::default()
    };
    c.backoff.initial = secs(0.3);
    c
}

/// Sessions running against one address.
pub struct Fleet {
    stop: watch::Sender<bool>,
    tasks: Vec<JoinHandle<SessionRecord>>,
    /// What they count together.
    pub totals: Arc<Totals>,
    /// Their clock (records are in its seconds).
    pub clock: Clock,
    n: usize,
}

impl Fleet {
    /// `n` sessions to `addr` (nginx's HTTP/1.1 port), subscribed from the log's first
    /// event when `from_start`.
    pub fn start(addr: SocketAddr, n: usize, from_start: bool) -> Fleet {
        let clock = Clock::start();
        let totals = Arc::new(Totals::default());
        let (stop, stop_rx) = watch::channel(false);
        let tasks = (0..n)
            .map(|i| {
                let config = SessionConfig {
                    client: client(),
                    probe: false,
                    target: Target {
                        addr,
                        local_ip: None,
                    },
                    http2: false,
                    from_start,
                };
                let (totals, stop) = (totals.clone(), stop_rx.clone());
                tokio::spawn(async move {
                    tokio::time::sleep(Duration::from_millis(10 * i as u64)).await;
                    Session::run(config, clock, 7 + i as u64, totals, stop).await
                })
            })
            .collect();
        Fleet {
            stop,
            tasks,
            totals,
            clock,
            n,
        }
    }

    /// Waits until every session is READY.
    ///
    /// # Panics
    /// After `timeout`.
    pub async fn wait_ready(&self, timeout: Duration) {
        let deadline = tokio::time::Instant::now() + timeout;
        while (self.totals.ready.load(Relaxed) as usize) < self.n {
            assert!(
                tokio::time::Instant::now() < deadline,
                "{} of {} sessions READY after {timeout:?}",
                self.totals.ready.load(Relaxed),
                self.n
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Stops every session; what each recorded.
    pub async fn finish(self) -> Vec<SessionRecord> {
        let _ = self.stop.send(true);
        let mut records = Vec::new();
        for t in self.tasks {
            records.push(t.await.expect("session task"));
        }
        records
    }
}

/// A publisher through nginx's HTTP/2 port: one event at a time, `every` apart, each with
/// its own idempotency key, retried with that key until it is in (so a replica or Redis
/// going away in the middle never makes it twice or never).
pub struct Publisher {
    stop: watch::Sender<bool>,
    task: JoinHandle<Vec<u64>>,
    /// Publishes acknowledged so far.
    acked: Arc<std::sync::atomic::AtomicU64>,
}

/// A session on the cluster (through `addr`), for publishing.
async fn open_session(channel: &Channel) -> String {
    loop {
        match SessionClient::new(channel.clone())
            .open_session(OpenSessionRequest {})
            .await
        {
            Ok(r) => return r.into_inner().session_id,
            Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
        }
    }
}

impl Publisher {
    /// Starts publishing to `grpc` (nginx's HTTP/2 listener).
    pub fn start(grpc: SocketAddr, every: Duration) -> Publisher {
        let (stop, mut stop_rx) = watch::channel(false);
        let count = Arc::new(std::sync::atomic::AtomicU64::new(0));
        let acked_count = count.clone();
        let task = tokio::spawn(async move {
            let channel = Channel::from_shared(format!("http://{grpc}"))
                .expect("url")
                .connect_lazy();
            let mut session = open_session(&channel).await;
            let mut acked = Vec::new();
            for n in 1u64.. {
                if *stop_rx.borrow() {
                    break;
                }
                let key = format!("publisher-{n}");
                let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
                loop {
                    let request = PublishRequest {
                        session_id: session.clone(),
                        idempotency_key: key.clone(),
                        text: format!("event {n}"),
                    };
                    let mut client = FeedClient::new(channel.clone());
                    let call = client.publish(request);
                    match tokio::time::timeout(Duration::from_secs(3), call).await {
                        Ok(Ok(r)) => {
                            acked.push(r.into_inner().sequence);
                            acked_count.fetch_add(1, Relaxed);
                            break;
                        }
                        Ok(Err(s)) if s.code() == tonic::Code::Unauthenticated => {
                            session = open_session(&channel).await;
                        }
                        _ => {}
                    }
                    assert!(
                        tokio::time::Instant::now() < deadline,
                        "publish {n} not in after 60 s"
                    );
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
                tokio::select! {
                    () = tokio::time::sleep(every) => {}
                    _ = stop_rx.changed() => {}
                }
            }
            acked
        });
        Publisher {
            stop,
            task,
            acked: count,
        }
    }

    /// Waits until `n` publishes are acknowledged (at most `timeout`).
    pub async fn wait_for(&self, n: u64, timeout: Duration) {
        let deadline = tokio::time::Instant::now() + timeout;
        while self.acked.load(Relaxed) < n {
            assert!(
                tokio::time::Instant::now() < deadline,
                "only {} of {n} publishes acknowledged after {timeout:?}",
                self.acked.load(Relaxed)
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Stops; the sequence every publish got, in order.
    pub async fn finish(self) -> Vec<u64> {
        let _ = self.stop.send(true);
        self.task.await.expect("publisher")
    }
}

/// Checks that every publish got the next sequence (1, 2, 3…: none twice, none skipped,
/// whichever replica took it); returns how many.
pub fn assert_published_once(acked: &[u64]) -> u64 {
    let expected: Vec<u64> = (1..=acked.len() as u64).collect();
    assert_eq!(
        acked,
        expected.as_slice(),
        "a publish got a sequence twice or one was skipped"
    );
    acked.len() as u64
}

/// Checks that every session got exactly 1..=n: from 1, to n, n events (the core drops
/// replayed duplicates and reports gaps; none may be missing), no gap; returns the
/// duplicates the sessions dropped (replays that overlapped).
pub fn assert_exactly_once(records: &[SessionRecord], n: u64) -> u64 {
    let mut dropped = 0;
    for (i, r) in records.iter().enumerate() {
        let what = format!(
            "session {i}: first {:?}, last {}, delivered {}, gaps {}, losses {:?}",
            r.first, r.last, r.delivered, r.stats.gaps, r.losses
        );
        assert_eq!(r.first, Some(1), "{what}");
        assert_eq!(r.last, n, "{what}");
        assert_eq!(r.delivered, n, "{what}");
        assert_eq!(r.stats.gaps, 0, "{what}");
        dropped += r.stats.duplicates_dropped;
    }
    dropped
}

/// For every loss after `since` (s), the time from the loss to the first event after the
/// resume that followed it: (p50, p99, max) in ms, and how many.
pub fn resume_times(records: &[SessionRecord], since: f64) -> (f64, f64, f64, usize) {
    let mut times: Vec<f64> = Vec::new();
    for r in records {
        for loss in r.losses.iter().filter(|l| l.at >= since) {
            if let Some(first) = r
                .resumed
                .iter()
                .filter(|(at, _)| *at >= loss.at)
                .find_map(|(_, first)| *first)
            {
                times.push((first - loss.at) * 1000.0);
            }
        }
    }
    times.sort_by(f64::total_cmp);
    percentiles(&times)
}

/// Streams resumed since `since` (a drain's GOAWAY moves a stream without a loss) and
/// resumed → first event after, ms: (p50, p99, max, count).
pub fn moves(records: &[SessionRecord], since: f64) -> (f64, f64, f64, usize) {
    let mut times: Vec<f64> = records
        .iter()
        .flat_map(|r| r.resumed.iter())
        .filter(|(at, _)| *at >= since)
        .filter_map(|(at, first)| first.map(|f| (f - at) * 1000.0))
        .collect();
    times.sort_by(f64::total_cmp);
    percentiles(&times)
}

fn percentiles(times: &[f64]) -> (f64, f64, f64, usize) {
    let q = |p: f64| {
        times
            .get(((times.len() as f64 - 1.0) * p).round() as usize)
            .copied()
            .unwrap_or(0.0)
    };
    (
        q(0.5),
        q(0.99),
        times.last().copied().unwrap_or(0.0),
        times.len(),
    )
}

pub fn figure(what: &str, value: impl std::fmt::Display) {
    eprintln!("FIGURE {what}: {value}");
}
