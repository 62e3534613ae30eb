//! State one connection shares between its task, its socket wrapper and its streams.

use super::frame::GoAwayFields;
use super::incoming::Watcher;
use super::outgoing::{Judge, Outgoing};
use crate::clock::Clock;
use crate::stats::TransportStats as Stats;
use keepalive::{PingVerdict, ServerConnection};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex, MutexGuard};
use tokio::sync::Notify;

/// The wire protocol of a connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Proto {
    /// HTTP/2 with prior knowledge (gRPC, or gRPC-web from a native client).
    H2,
    /// HTTP/1.1 (browsers over plain http).
    H1,
}

impl Proto {
    /// `h2` or `h1`.
    pub fn as_str(self) -> &'static str {
        match self {
            Proto::H2 => "h2",
            Proto::H1 => "h1",
        }
    }
}

/// The mutable part, behind one lock: the keepalive core and the outgoing frames, so that
/// a PING ACK is judged in the same step that writes it.
#[derive(Debug)]
pub struct ConnState {
    /// The sans-IO keepalive state machine.
    pub core: ServerConnection,
    /// Outgoing bytes (HTTP/2 only).
    pub out: Outgoing,
    /// The deadline the connection task's timer is set for, if any: a stream that ends
    /// wakes the task only when it brings the core's next deadline before this one.
    pub armed: Option<keepalive::Instant>,
}

impl ConnState {
    /// The core's next deadline, if it comes before the one the connection task's timer
    /// is set for (or that timer is not set): the timer must be moved to it.
    pub fn earlier_deadline(&self) -> Option<keepalive::Instant> {
        let armed = self.armed;
        self.core
            .poll_timeout()
            .filter(|d| armed.is_none_or(|a| *d < a))
    }
}

/// Shared by the connection task, [`super::io::ObservedIo`] and every stream guard.
#[derive(Debug)]
pub struct ConnShared {
    /// Connection number, for logs.
    pub id: u64,
    /// The client's address.
    pub peer: SocketAddr,
    /// The protocol.
    pub proto: Proto,
    /// The server's clock.
    pub clock: Clock,
    /// Server-wide counters.
    pub stats: Arc<Stats>,
    state: Mutex<ConnState>,
    /// Wakes the connection task when the state changed outside it in a way it must act
    /// on: a GOAWAY `too_many_pings` was queued, or the last stream ended and the idle
    /// deadline comes before the one the task sleeps until.
    pub notify: Notify,
    max_client_stream: AtomicU32,
    /// Client PINGs read, PING ACKs written, and which PING (by count) was one too many:
    /// the GOAWAY `too_many_pings` goes right after that PING's ACK.
    pings_read: AtomicU64,
    acks_written: AtomicU64,
    too_many_pings_at: AtomicU64,
    /// A GOAWAY with an error code went out (h2's for a protocol error, or ours for
    /// `too_many_pings`): the close that follows lingers.
    error_goaway: AtomicBool,
}

impl ConnShared {
    /// Shared state of a new connection.
    pub fn new(
        id: u64,
        peer: SocketAddr,
        proto: Proto,
        clock: Clock,
        stats: Arc<Stats>,
        core: ServerConnection,
    ) -> Self {
        ConnShared {
            id,
            peer,
            proto,
            clock,
            stats,
            state: Mutex::new(ConnState {
                core,
                out: Outgoing::default(),
                armed: None,
            }),
            notify: Notify::new(),
            max_client_stream: AtomicU32::new(0),
            pings_read: AtomicU64::new(0),
            acks_written: AtomicU64::new(0),
            too_many_pings_at: AtomicU64::new(0),
            error_goaway: AtomicBool::new(false),
        }
    }

    /// Locks the state. A poisoned lock (a panic elsewhere) is taken over: the state is
    /// plain data and stays usable.
    pub fn lock(&self) -> MutexGuard<'_, ConnState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The highest stream id the client opened.
    pub fn last_client_stream(&self) -> u32 {
        self.max_client_stream.load(Relaxed)
    }

    /// Whether a GOAWAY with an error code was queued on this connection.
    pub fn sent_error_goaway(&self) -> bool {
        self.error_goaway.load(Relaxed)
    }

    /// A judge for frames written now, over the locked state's core.
    pub fn judge<'a>(&'a self, core: &'a mut ServerConnection) -> WireJudge<'a> {
        WireJudge { shared: self, core }
    }
}

/// Connects the outgoing-frame observer to the keepalive core, the counters and the logs.
#[derive(Debug)]
pub struct WireJudge<'a> {
    shared: &'a ConnShared,
    core: &'a mut ServerConnection,
}

impl Judge for WireJudge<'_> {
    fn data_sent(&mut self) {
        self.core.on_data_sent();
    }

    /// The PING was judged when it was read (see [`Watcher::ping`]); once the client is
    /// past the strikes, the GOAWAY goes right after the next ACK h2 writes.
    fn ping_acked(&mut self) -> Option<u32> {
        let s = self.shared;
        // h2 ACKs the client's PINGs in the order it read them.
        let written = s.acks_written.fetch_add(1, Relaxed) + 1;
        let condemned = s.too_many_pings_at.load(Relaxed);
        (condemned != 0 && written >= condemned).then(|| s.last_client_stream())
    }

    fn goaway_sent(&mut self, fields: GoAwayFields, debug_data: &[u8]) {
        let s = self.shared;
        if fields.error_code != 0 {
            s.error_goaway.store(true, Relaxed);
        }
        tracing::info!(
            conn = s.id,
            peer = %s.peer,
            last_stream_id = fields.last_stream_id,
            error_code = fields.error_code,
            debug = %String::from_utf8_lossy(debug_data),
            "GOAWAY sent"
        );
    }
}

impl Watcher for &ConnShared {
    fn headers(&mut self, stream_id: u32) {
        self.max_client_stream.fetch_max(stream_id, Relaxed);
    }

    /// A client PING was read. It is judged now, as grpc-go's `handlePing` does (the ACK
    /// is h2's and goes out next): "data sent since the previous PING" is then measured
    /// between PINGs as the client sent them, whatever order h2 writes its ACKs and the
    /// responses in.
    fn ping(&mut self) {
        Stats::inc(&self.stats.pings_received);
        let read = self.pings_read.fetch_add(1, Relaxed) + 1;
        let now = self.clock.now();
        let verdict = {
            let mut st = self.lock();
            if st.core.closed().is_some() {
                return; // already condemned: the GOAWAY is on its way
            }
            st.core.on_ping(now)
        };
        match verdict {
            PingVerdict::Accepted => {}
            PingVerdict::Strike { strikes } => {
                Stats::inc(&self.stats.ping_strikes);
                tracing::info!(conn = self.id, peer = %self.peer, strikes, "ping strike");
            }
            PingVerdict::TooManyPings { strikes } => {
                Stats::inc(&self.stats.ping_strikes);
                Stats::inc(&self.stats.goaway_too_many_pings);
                tracing::warn!(conn = self.id, peer = %self.peer, strikes, "ping strike: too many pings");
                self.too_many_pings_at.store(read, Relaxed);
                self.notify.notify_one();
            }
        }
    }

    fn keepalive_ack(&mut self) {
        tracing::debug!(conn = self.id, "keepalive PING acknowledged");
    }
}
