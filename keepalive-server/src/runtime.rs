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
//! the same tail — against grpc-go's 7.7 ms.
//!
//! Measured again (same load, one worker, AMD EPYC; alternating rounds of 4–5 s, p99
//! and requests/s per round): the global queue every 31st task 42–43 ms at 122–124k/s;
//! every 8th 16 ms; every 4th 8.8–10.2 ms at 117–124k/s; every 3rd 8.1–8.9 ms; every 2nd
//! 6.6–8.5 ms at 115–129k/s; every task 10–11 ms — grpc-go 7.1–8.5 ms at 112–126k/s in
//! the same rounds. Every 2nd task is the best tail, at 86–90k/s against 93k/s every
//! 4th on one busy connection (h2load's 1 connection × 32 streams). It was held back for
//! a while because with it the hostile tests' preface-then-garbage connections sometimes
//! closed before the client read h2's GOAWAY; that was the close (with the client's bytes
//! unread, a RST) and is fixed there (`conn`: the close lingers after every GOAWAY with
//! an error code). On a slower, noisier machine of the same kind, seven alternating
//! pairs of 5 s rounds: every 2nd task p99 18–37 ms (median 21.9) at 32–56k/s (median
//! 46k), every 4th 22–103 ms (median 32.2) at 23–58k/s (median 40k), lower in 6 of the 7
//! pairs. So every 2nd task.
//!
//! The workers are tokio's default, one per core. A second worker on one core used to
//! help the tail (before the connection task stopped waking on every stream) and no
//! longer does: with the global queue every 4th task (the setting then), two workers had
//! a p99 of 10.6–11.6 ms at 107–119k/s against one worker's 8.8–9.0 ms at 122–124k/s
//! (four alternating rounds), and with one connection × 32 streams the second worker
//! cost 15% of the requests/s (75k against 86k): the two threads take turns on the core,
//! and every stream task one of them steals wakes the other (a futex and an eventfd
//! write each).

/// How often (in tasks polled) a worker looks at the global queue.
pub const GLOBAL_QUEUE_INTERVAL: u32 = 2;

/// A multi-thread runtime builder (I/O and time enabled) with tokio's workers (one per
/// core; `TOKIO_WORKER_THREADS` decides when set) and [`GLOBAL_QUEUE_INTERVAL`]; see the
/// module docs for the measurements behind it.
///
/// ```
/// let runtime = keepalive_server::runtime::builder().build().expect("runtime");
/// runtime.block_on(async { /* Server::builder()…serve(addr).await */ });
/// ```
pub fn builder() -> tokio::runtime::Builder {
    let mut b = tokio::runtime::Builder::new_multi_thread();
    b.enable_all().global_queue_interval(GLOBAL_QUEUE_INTERVAL);
    b
}
