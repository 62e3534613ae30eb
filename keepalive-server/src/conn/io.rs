//! [`ObservedIo`]: the socket as h2 sees it, with the frame observer in both directions.
//!
//! The socket is shared (`Arc<S>`, a [`Socket`]: TCP, or the plaintext side of a TLS
//! connection) with the connection task, which writes its own
//! frames (keepalive PINGs) while h2 is idle and does the final lingering close. All
//! writes, h2's and ours, go through the one [`Outgoing`](super::outgoing::Outgoing)
//! buffer under the connection lock, so frames never interleave.
//!
//! With a fault injector, every read, write and flush first asks a [`StallGate`] (a
//! stall: the socket goes quiet in both directions without closing).

use super::incoming::Incoming;
use super::shared::ConnShared;
use super::sock::{self, Socket};
use super::stall::StallGate;
use crate::faults::FaultInjector;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;

/// The most read from the socket at once.
const READ_CHUNK: usize = 16 * 1024;
/// What a connection's first reads ask for: a client's first flight (the preface,
/// SETTINGS, WINDOW_UPDATE, a request or two) fits. Each read that fills it doubles it,
/// up to [`READ_CHUNK`]. Starting at [`READ_CHUNK`] cost ~3 KiB of resident memory per
/// idle connection: the first read's buffer, freed once the connection idles, leaves
/// touched pages behind in the allocator between every connection's long-lived buffers.
const FIRST_READ_CHUNK: usize = 1024;

/// An HTTP/2 connection's socket with the frame observer.
#[derive(Debug)]
pub struct ObservedIo<S = TcpStream> {
    sock: Arc<S>,
    shared: Arc<ConnShared>,
    incoming: Incoming,
    /// How much the next read asks for (see [`FIRST_READ_CHUNK`]).
    read_chunk: usize,
    read_gate: StallGate,
    write_gate: StallGate,
}

impl<S: Socket> ObservedIo<S> {
    /// Wraps `sock`; `faults` holds the stall window, if the server injects faults.
    pub fn new(sock: Arc<S>, shared: Arc<ConnShared>, faults: Option<Arc<FaultInjector>>) -> Self {
        ObservedIo {
            sock,
            shared,
            incoming: Incoming::default(),
            read_chunk: FIRST_READ_CHUNK,
            read_gate: StallGate::new(faults.clone()),
            write_gate: StallGate::new(faults),
        }
    }

    /// Hands `prefix` (bytes the protocol sniffing already took off the socket: a piece
    /// of the preface) to h2 before anything read from the socket.
    pub fn with_prefix(mut self, prefix: &[u8]) -> Self {
        if !prefix.is_empty() {
            self.incoming
                .read_buf(prefix.len())
                .extend_from_slice(prefix);
            self.incoming.scan(&mut &*self.shared);
        }
        self
    }
}

impl<S: Socket> AsyncRead for ObservedIo<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        out: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        ready!(this.read_gate.poll_open(cx));
        loop {
            if this.incoming.has_ready() {
                this.incoming.take(out);
                return Poll::Ready(Ok(()));
            }
            if this.incoming.eof() {
                return Poll::Ready(Ok(()));
            }
            match this.sock.poll_read_ready(cx) {
                Poll::Ready(r) => r?,
                Poll::Pending => {
                    // Waiting for a client with no stream open: an idle connection holds
                    // no read buffer. (With streams open, more comes soon: freeing and
                    // allocating it on every wait cost 1.5k instructions per call.)
                    if this.incoming.holds_empty_buffer()
                        && this.shared.lock().core.active_streams() == 0
                    {
                        this.incoming.release_buffer();
                    }
                    return Poll::Pending;
                }
            }
            let buf = this.incoming.read_buf(this.read_chunk);
            let room = buf.capacity() - buf.len();
            match this.sock.try_read_buf(buf) {
                Ok(0) => this.incoming.set_eof(),
                Ok(n) => {
                    if n >= room {
                        this.read_chunk = (this.read_chunk * 2).min(READ_CHUNK);
                    }
                    let now = this.shared.clock.now();
                    this.shared.lock().core.on_read(now);
                    this.incoming.scan(&mut &*this.shared);
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                Err(e) => return Poll::Ready(Err(e)),
            }
        }
    }
}

impl<S: Socket> AsyncWrite for ObservedIo<S> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        ready!(this.write_gate.poll_open(cx));
        loop {
            {
                let mut guard = this.shared.lock();
                let st = &mut *guard;
                if st.out.is_full() {
                    st.out.send(&*this.sock)?;
                }
                let n = st.out.accept(data, &mut this.shared.judge(&mut st.core));
                if n > 0 {
                    if st.out.is_full() {
                        st.out.send(&*this.sock)?;
                    }
                    return Poll::Ready(Ok(n));
                }
            }
            ready!(this.sock.poll_write_ready(cx))?;
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        ready!(this.write_gate.poll_open(cx));
        loop {
            {
                let mut st = this.shared.lock();
                st.out.send(&*this.sock)?;
                if st.out.pending() == 0 {
                    return Poll::Ready(Ok(()));
                }
            }
            ready!(this.sock.poll_write_ready(cx))?;
        }
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        ready!(self.as_mut().poll_flush(cx))?;
        Poll::Ready(self.sock.shutdown_write())
    }
}

/// Writes out everything queued (by h2 or by us), waiting for the socket as needed.
pub async fn flush<S: Socket>(sock: &S, shared: &ConnShared) -> io::Result<()> {
    loop {
        {
            let mut st = shared.lock();
            st.out.send(sock)?;
            if st.out.pending() == 0 {
                return Ok(());
            }
        }
        sock::writable(sock).await?;
    }
}
