//! A well-behaved client that watches the server while a test misbehaves at it.
//!
//! The hostile-input tests must show two things: that the bad client gets a
//! protocol-correct answer, and that nobody else notices. [`Probe`] is the "nobody else":
//! a real tonic client on its own HTTP/2 connection doing `grpc.health.v1.Health/Check`
//! calls back to back (one every [`INTERVAL`]), each latency recorded. It runs on its own
//! OS thread with its own runtime, so a test that floods the server from its own runtime
//! cannot make the probe's numbers worse than the server's behaviour does.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// Pause between two probe calls.
pub const INTERVAL: Duration = Duration::from_millis(20);
/// A probe call taking longer than this counts as an error.
pub const CALL_TIMEOUT: Duration = Duration::from_secs(5);
/// The latency bound the hostile tests assert for the well-behaved client: on the 2-core
/// machine this project runs on, with other builds possibly running, a health check takes
/// 1–5 ms; the bound leaves room for scheduling noise, not for a server that stalls.
pub const LATENCY_BOUND: Duration = Duration::from_millis(250);

/// What the probe saw.
#[derive(Debug, Clone)]
pub struct ProbeReport {
    /// Calls completed (successfully or not).
    pub calls: usize,
    /// Calls that failed, with the error.
    pub errors: Vec<String>,
    /// Latencies of successful calls, sorted.
    pub latencies: Vec<Duration>,
}

impl ProbeReport {
    /// The worst latency.
    pub fn max(&self) -> Duration {
        self.latencies.last().copied().unwrap_or_default()
    }

    /// The latency at quantile `q` (0.0–1.0).
    pub fn quantile(&self, q: f64) -> Duration {
        if self.latencies.is_empty() {
            return Duration::ZERO;
        }
        let i = ((self.latencies.len() - 1) as f64 * q).round() as usize;
        self.latencies[i.min(self.latencies.len() - 1)]
    }

    /// One line for logs and reports: calls, errors, p50, p99, max.
    pub fn summary(&self) -> String {
        format!(
            "{} calls, {} errors, p50 {:?}, p99 {:?}, max {:?}",
            self.calls,
            self.errors.len(),
            self.quantile(0.5),
            self.quantile(0.99),
            self.max()
        )
    }

    /// Asserts no call failed, at least `min_calls` were made, and none took longer than
    /// `bound`. Prints a `PROBE` line (shown with `--nocapture`) for the report table.
    ///
    /// # Panics
    /// When any of that does not hold.
    pub fn assert_healthy(&self, what: &str, bound: Duration, min_calls: usize) {
        eprintln!("PROBE {what}: {}", self.summary());
        assert!(
            self.errors.is_empty(),
            "{what}: the well-behaved client saw errors: {:?}",
            self.errors
        );
        assert!(
            self.calls >= min_calls,
            "{what}: only {} probe calls (want {min_calls})",
            self.calls
        );
        assert!(
            self.max() <= bound,
            "{what}: the well-behaved client waited {:?} (bound {bound:?}); {}",
            self.max(),
            self.summary()
        );
    }
}

/// A running probe; [`finish`](Probe::finish) stops it and returns its report.
#[derive(Debug)]
pub struct Probe {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<ProbeReport>>,
}

impl Probe {
    /// Connects to `addr` and makes one call (so the connection is up before the test
    /// misbehaves), then keeps calling in the background.
    ///
    /// # Panics
    /// If the first call fails within 10 s.
    pub fn start(addr: SocketAddr) -> Probe {
        let stop = Arc::new(AtomicBool::new(false));
        let (ready_tx, ready_rx) = std::sync::mpsc::channel();
        let thread = {
            let stop = stop.clone();
            std::thread::spawn(move || {
                let rt = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .expect("probe runtime");
                rt.block_on(run(addr, stop, ready_tx))
            })
        };
        match ready_rx.recv_timeout(Duration::from_secs(10)) {
            Ok(Ok(())) => {}
            Ok(Err(e)) => panic!("probe could not make its first call: {e}"),
            Err(_) => panic!("probe not ready within 10 s"),
        }
        Probe {
            stop,
            thread: Some(thread),
        }
    }

    /// Stops the probe and returns what it saw.
    ///
    /// # Panics
    /// If the probe thread panicked.
    pub fn finish(mut self) -> ProbeReport {
        self.stop.store(true, Ordering::SeqCst);
        self.thread
            .take()
            .map(|t| t.join().expect("probe thread"))
            .unwrap_or(ProbeReport {
                calls: 0,
                errors: Vec::new(),
                latencies: Vec::new(),
            })
    }
}

impl Drop for Probe {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
    }
}

async fn run(
    addr: SocketAddr,
    stop: Arc<AtomicBool>,
    ready: std::sync::mpsc::Sender<Result<(), String>>,
) -> ProbeReport {
    use tonic_health::pb::HealthCheckRequest;
    use tonic_health::pb::health_client::HealthClient;

    let mut report = ProbeReport {
        calls: 0,
        errors: Vec::new(),
        latencies: Vec::new(),
    };
    let connect = async {
        let channel = tonic::transport::Endpoint::from_shared(format!("http://{addr}"))
            .map_err(|e| e.to_string())?
            .connect()
            .await
            .map_err(|e| e.to_string())?;
        let mut client = HealthClient::new(channel);
        client
            .check(HealthCheckRequest::default())
            .await
            .map_err(|e| e.to_string())?;
        Ok::<_, String>(client)
    };
    let mut client = match tokio::time::timeout(Duration::from_secs(10), connect).await {
        Ok(Ok(c)) => c,
        Ok(Err(e)) => {
            let _ = ready.send(Err(e));
            return report;
        }
        Err(_) => {
            let _ = ready.send(Err("timed out".into()));
            return report;
        }
    };
    let _ = ready.send(Ok(()));
    while !stop.load(Ordering::SeqCst) {
        let t = Instant::now();
        let result =
            tokio::time::timeout(CALL_TIMEOUT, client.check(HealthCheckRequest::default())).await;
        let took = t.elapsed();
        report.calls += 1;
        match result {
            Ok(Ok(_)) => report.latencies.push(took),
            Ok(Err(status)) => report.errors.push(format!("{status:?} after {took:?}")),
            Err(_) => report
                .errors
                .push(format!("no answer within {CALL_TIMEOUT:?}")),
        }
        tokio::time::sleep(INTERVAL).await;
    }
    report.latencies.sort();
    report
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantiles() {
        let r = ProbeReport {
            calls: 4,
            errors: Vec::new(),
            latencies: [1, 2, 3, 10].map(Duration::from_millis).to_vec(),
        };
        assert_eq!(r.max(), Duration::from_millis(10));
        assert_eq!(r.quantile(0.5), Duration::from_millis(3));
        assert_eq!(r.quantile(0.0), Duration::from_millis(1));
        r.assert_healthy("unit", Duration::from_millis(10), 4);
    }
}
