//! Chaos STALL at the socket: a connection that stops reading and writing without closing.
//!
//! That is what a half-open connection looks like from the client (a NAT entry dropped, a
//! peer gone without a FIN): writes vanish, nothing comes back, the socket stays open.
//! Only the client's own keepalive can tell. To produce it on demand, every socket the
//! server reads and writes through asks a [`StallGate`] first; during the stall window of
//! [`FaultInjector`] the gate answers `Pending` and arms a timer for the window's end, so the
//! connection resumes by itself afterwards.
//!
//! HTTP/2 sockets get their gates inside [`super::io::ObservedIo`]; HTTP/1.1 sockets are
//! wrapped in [`StallIo`]. The connection's timers (keepalive, idle, age) keep running: a
//! long stall may well end with the server's own keepalive closing the connection.

use crate::faults::FaultInjector;
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::Sleep;

/// One direction's check against the stall window.
#[derive(Debug)]
pub struct StallGate {
    faults: Option<Arc<FaultInjector>>,
    timer: Option<Pin<Box<Sleep>>>,
}

impl StallGate {
    /// A gate over `faults`' stall window; always open without a fault injector.
    pub fn new(faults: Option<Arc<FaultInjector>>) -> Self {
        StallGate {
            faults,
            timer: None,
        }
    }

    /// `Ready` when I/O may go on; `Pending` (woken at the window's end) during a stall.
    #[inline]
    pub fn poll_open(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        // Without a fault injector (a server without chaos) there is nothing to check.
        let Some(faults) = &self.faults else {
            return Poll::Ready(());
        };
        let Some(end) = faults.stalled_now() else {
            self.timer = None;
            return Poll::Ready(());
        };
        let timer = self
            .timer
            .get_or_insert_with(|| Box::pin(tokio::time::sleep_until(end)));
        if timer.deadline() != end {
            timer.as_mut().reset(end);
        }
        ready!(timer.as_mut().poll(cx));
        self.timer = None;
        Poll::Ready(())
    }
}

/// A socket (HTTP/1.1) that honours the stall window.
#[derive(Debug)]
pub struct StallIo<T> {
    inner: T,
    read: StallGate,
    write: StallGate,
}

impl<T> StallIo<T> {
    /// Wraps `inner`.
    pub fn new(inner: T, faults: Option<Arc<FaultInjector>>) -> Self {
        StallIo {
            inner,
            read: StallGate::new(faults.clone()),
            write: StallGate::new(faults),
        }
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for StallIo<T> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        ready!(this.read.poll_open(cx));
        Pin::new(&mut this.inner).poll_read(cx, buf)
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for StallIo<T> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        ready!(this.write.poll_open(cx));
        Pin::new(&mut this.inner).poll_write(cx, data)
    }

    // Vectored writes pass through, so hyper writes a response's head and body with one
    // `writev` instead of first copying both into one buffer.
    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        ready!(this.write.poll_open(cx));
        Pin::new(&mut this.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        ready!(this.write.poll_open(cx));
        Pin::new(&mut this.inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        ready!(this.write.poll_open(cx));
        Pin::new(&mut this.inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::time::Instant;

    #[tokio::test]
    async fn a_stalled_socket_holds_bytes_until_the_window_ends() {
        let faults = Arc::new(FaultInjector::default());
        let (a, mut b) = tokio::io::duplex(64);
        let mut a = StallIo::new(a, Some(faults.clone()));
        faults.stall(Instant::now(), Duration::from_millis(200));
        b.write_all(b"hi").await.expect("write");
        let t = Instant::now();
        let mut buf = [0u8; 2];
        a.read_exact(&mut buf).await.expect("read");
        assert_eq!(&buf, b"hi");
        assert!(
            t.elapsed() >= Duration::from_millis(150),
            "{:?}",
            t.elapsed()
        );
        // After the window: no delay.
        let t = Instant::now();
        a.write_all(b"ok").await.expect("write");
        b.read_exact(&mut buf).await.expect("read");
        assert!(t.elapsed() < Duration::from_millis(100));
    }
}
