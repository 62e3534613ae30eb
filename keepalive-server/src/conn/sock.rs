//! [`Socket`]: what the HTTP/2 frame observer needs from the byte stream under it.
//!
//! The observer ([`super::io::ObservedIo`]) and the connection task share one socket:
//! h2 reads and writes through the observer while the task writes its own frames
//! (keepalive PINGs) and does the final lingering close. That sharing works because a
//! socket can be read and written through `&self` without blocking (`try_read`,
//! `try_write`, readiness). A TLS stream cannot, so a TLS connection's plaintext is
//! handed to the observer through a local socket pair ([`super::tls`]); both kinds of
//! socket implement this trait, and the plain TCP path stays exactly what it was
//! (the generic code is compiled once per socket type, no dynamic dispatch).

use super::outgoing::Sink;
use bytes::BytesMut;
use std::future::poll_fn;
use std::io;
use std::task::{Context, Poll};
use tokio::io::Interest;
use tokio::net::{TcpStream, UnixStream};

/// A non-blocking stream socket shared between the observer and the connection task.
pub trait Socket: Sink + Send + Sync + 'static {
    /// Ready when a read may succeed.
    fn poll_read_ready(&self, cx: &mut Context<'_>) -> Poll<io::Result<()>>;
    /// Ready when a write may succeed.
    fn poll_write_ready(&self, cx: &mut Context<'_>) -> Poll<io::Result<()>>;
    /// Reads what is there into `buf`'s spare capacity; `WouldBlock` when nothing is.
    fn try_read_buf(&self, buf: &mut BytesMut) -> io::Result<usize>;
    /// Reads what is there into `buf`; `WouldBlock` when nothing is.
    fn try_read(&self, buf: &mut [u8]) -> io::Result<usize>;
    /// Sends FIN: no more bytes from us, the peer may still send.
    fn shutdown_write(&self) -> io::Result<()>;
}

/// Completes when `sock` may be read.
pub async fn readable<S: Socket>(sock: &S) -> io::Result<()> {
    poll_fn(|cx| sock.poll_read_ready(cx)).await
}

/// Completes when `sock` may be written.
pub async fn writable<S: Socket>(sock: &S) -> io::Result<()> {
    poll_fn(|cx| sock.poll_write_ready(cx)).await
}

/// Reads what is there into `buf` with `read` (the socket's `try_read_buf`) inside the
/// socket's `try_io`. A short read — fewer bytes than there was room for — means the
/// socket is drained, so its readiness is cleared, as tokio's own `poll_read` does: the
/// next read waits for epoll instead of costing a `recv` that only says EAGAIN (one
/// syscall in five while streaming events). Readiness that arrived during the read is
/// kept: tokio clears only the readiness it had seen before.
fn read_clearing(
    buf: &mut BytesMut,
    try_io: impl FnOnce(&mut dyn FnMut() -> io::Result<usize>) -> io::Result<usize>,
    read: impl Fn(&mut BytesMut) -> io::Result<usize>,
) -> io::Result<usize> {
    let room = buf.capacity() - buf.len();
    let mut got = 0;
    let result = try_io(&mut || {
        got = read(buf)?;
        if got > 0 && got < room {
            Err(io::ErrorKind::WouldBlock.into())
        } else {
            Ok(got)
        }
    });
    match result {
        Err(e) if e.kind() == io::ErrorKind::WouldBlock && got > 0 => Ok(got),
        r => r,
    }
}

/// `shutdown(SHUT_WR)` that treats a peer already gone as done.
fn shutdown_write_fd(sock: socket2::SockRef<'_>) -> io::Result<()> {
    match sock.shutdown(std::net::Shutdown::Write) {
        Err(e) if e.kind() == io::ErrorKind::NotConnected => Ok(()),
        r => r,
    }
}

impl Socket for TcpStream {
    fn poll_read_ready(&self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        TcpStream::poll_read_ready(self, cx)
    }
    fn poll_write_ready(&self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        TcpStream::poll_write_ready(self, cx)
    }
    fn try_read_buf(&self, buf: &mut BytesMut) -> io::Result<usize> {
        read_clearing(
            buf,
            |f| self.try_io(Interest::READABLE, f),
            |b| TcpStream::try_read_buf(self, b),
        )
    }
    fn try_read(&self, buf: &mut [u8]) -> io::Result<usize> {
        TcpStream::try_read(self, buf)
    }
    fn shutdown_write(&self) -> io::Result<()> {
        shutdown_write_fd(socket2::SockRef::from(self))
    }
}

impl Sink for UnixStream {
    fn try_write(&self, buf: &[u8]) -> io::Result<usize> {
        UnixStream::try_write(self, buf)
    }
}

impl Socket for UnixStream {
    fn poll_read_ready(&self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        UnixStream::poll_read_ready(self, cx)
    }
    fn poll_write_ready(&self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        UnixStream::poll_write_ready(self, cx)
    }
    fn try_read_buf(&self, buf: &mut BytesMut) -> io::Result<usize> {
        read_clearing(
            buf,
            |f| self.try_io(Interest::READABLE, f),
            |b| UnixStream::try_read_buf(self, b),
        )
    }
    fn try_read(&self, buf: &mut [u8]) -> io::Result<usize> {
        UnixStream::try_read(self, buf)
    }
    fn shutdown_write(&self) -> io::Result<()> {
        shutdown_write_fd(socket2::SockRef::from(self))
    }
}
