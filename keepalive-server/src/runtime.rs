//! [`builder`]: a tokio runtime for a server holding many connections, and why it is not
//! tokio's default.
//!
//! With one worker thread (what tokio's default gives a process limited to one core: a
//! container with one CPU, or `taskset`), hundreds of requests in flight are hundreds of
//! tasks (hyper spawns one per HTTP/2 stream). The worker's local run queue holds 256;
//! the rest overflow into the global queue, which the worker looks at only every 31st
//! task by default, so what landed there waits for many rounds of the others. Measured
//! with h2load (50 connections × 10 streams, unary Health/Check, server pinned to one
//! core): p99 36.6 ms at p50 2.7 ms with tokio's defaults — the stock tonic server shows
//! the same tail — against grpc-go's 7.7 ms. Looking at the global queue every 4th task
//! and keeping a second worker (which takes over queued tasks while the first is busy)
//! brings our p99 to 7.8 ms at the same throughput (122k requests/s); the global queue
//! at 2 alone reached 7.4 ms but lost 6% of the throughput, two workers alone 9.5 ms.

/// How often (in tasks polled) a worker looks at the global queue.
pub const GLOBAL_QUEUE_INTERVAL: u32 = 4;

/// The fewest worker threads, whatever the number of cores.
pub const MIN_WORKERS: usize = 2;

/// A multi-thread runtime builder (I/O and time enabled) with at least [`MIN_WORKERS`]
/// workers (one per core otherwise; `TOKIO_WORKER_THREADS` still decides when set) and
/// [`GLOBAL_QUEUE_INTERVAL`]; see the module docs for the measurements behind both.
///
/// ```
/// let runtime = keepalive_server::runtime::builder().build().expect("runtime");
/// runtime.block_on(async { /* Server::builder()…serve(addr).await */ });
/// ```
pub fn builder() -> tokio::runtime::Builder {
    let mut b = tokio::runtime::Builder::new_multi_thread();
    b.enable_all().global_queue_interval(GLOBAL_QUEUE_INTERVAL);
    if std::env::var_os("TOKIO_WORKER_THREADS").is_none() {
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        b.worker_threads(cores.max(MIN_WORKERS));
    }
    b
}
