//! The client-to-server half of the HTTP/2 frame observer.
//!
//! Bytes read from the socket land in [`Incoming`], which steps over the preface and the
//! frames, tells the connection what it saw (client PINGs, new streams), and hands the
//! bytes on to h2 — all but the ACKs of the server's own keepalive PINGs, which h2 did not
//! send and would complain about. A frame that might be one of those is held back until
//! its 17 bytes are in.

use super::frame::{self, FrameHeader, HEADER_LEN};
use bytes::{Buf, BytesMut};
use tokio::io::ReadBuf;

/// What the observer reports about frames the client sends.
pub trait Watcher {
    /// A HEADERS frame on `stream_id` (the highest one is the last processed stream).
    fn headers(&mut self, stream_id: u32);
    /// A PING from the client (not an ACK).
    fn ping(&mut self);
    /// The ACK of one of our keepalive PINGs.
    fn keepalive_ack(&mut self);
}

/// Incoming bytes of one HTTP/2 connection.
#[derive(Debug)]
pub struct Incoming {
    buf: BytesMut,
    /// Bytes at the front of `buf` that h2 may have.
    ready: usize,
    preface_left: usize,
    skip: usize,
    eof: bool,
}

impl Default for Incoming {
    fn default() -> Self {
        Incoming {
            buf: BytesMut::new(),
            ready: 0,
            preface_left: frame::PREFACE.len(),
            skip: 0,
            eof: false,
        }
    }
}

impl Incoming {
    /// The buffer to read into (append only), reserving room for `additional` bytes.
    pub fn read_buf(&mut self, additional: usize) -> &mut BytesMut {
        self.buf.reserve(additional);
        &mut self.buf
    }

    /// New bytes were appended to the read buffer: look at them.
    pub fn scan(&mut self, watcher: &mut impl Watcher) {
        loop {
            let available = self.buf.len() - self.ready;
            if self.preface_left > 0 {
                let n = self.preface_left.min(available);
                self.ready += n;
                self.preface_left -= n;
                if self.preface_left > 0 {
                    return;
                }
                continue;
            }
            if self.skip > 0 {
                let n = self.skip.min(available);
                self.ready += n;
                self.skip -= n;
                if self.skip > 0 {
                    return;
                }
                continue;
            }
            let Some(header) = FrameHeader::parse(&self.buf[self.ready..]) else {
                return;
            };
            match header.kind {
                frame::PING if header.len == 8 => {
                    if available < header.frame_len() {
                        return; // hold until we know whose ACK it is
                    }
                    let start = self.ready;
                    let is_ack = header.flags & frame::FLAG_ACK != 0;
                    if is_ack && self.buf[start + HEADER_LEN..start + 17] == frame::KEEPALIVE_PING {
                        let tail = self.buf.split_off(start + header.frame_len());
                        self.buf.truncate(start);
                        self.buf.unsplit(tail);
                        watcher.keepalive_ack();
                        continue;
                    }
                    if !is_ack {
                        watcher.ping();
                    }
                }
                frame::HEADERS => watcher.headers(header.stream_id),
                _ => {}
            }
            self.ready += HEADER_LEN;
            self.skip = header.len as usize;
        }
    }

    /// The socket reached end of stream: whatever is held goes to h2 as it is.
    pub fn set_eof(&mut self) {
        self.eof = true;
        self.ready = self.buf.len();
    }

    /// Whether the socket reached end of stream.
    pub fn eof(&self) -> bool {
        self.eof
    }

    /// Moves as many ready bytes as fit into `dst` (appended: only the bytes copied are
    /// written, the rest of h2's buffer is not zeroed first); returns how many.
    pub fn take(&mut self, dst: &mut ReadBuf<'_>) -> usize {
        let n = self.ready.min(dst.remaining());
        dst.put_slice(&self.buf[..n]);
        self.buf.advance(n);
        self.ready -= n;
        n
    }

    /// Whether the read buffer is allocated but holds nothing.
    pub fn holds_empty_buffer(&self) -> bool {
        self.buf.is_empty() && self.buf.capacity() > 0
    }

    /// Frees the read buffer (the next read allocates one again): a connection waiting
    /// for its client should not keep [`READ_CHUNK`]-sized memory (with thousands of
    /// idle connections, that was the largest part of each). Call it only when
    /// [`holds_empty_buffer`](Self::holds_empty_buffer).
    ///
    /// [`READ_CHUNK`]: super::io
    pub fn release_buffer(&mut self) {
        debug_assert!(self.buf.is_empty());
        self.buf = BytesMut::new();
    }

    /// Whether there are bytes for h2.
    pub fn has_ready(&self) -> bool {
        self.ready > 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[derive(Default)]
    struct Seen {
        headers: Vec<u32>,
        pings: usize,
        acks: usize,
    }

    impl Watcher for Seen {
        fn headers(&mut self, stream_id: u32) {
            self.headers.push(stream_id);
        }
        fn ping(&mut self) {
            self.pings += 1;
        }
        fn keepalive_ack(&mut self) {
            self.acks += 1;
        }
    }

    fn client_stream() -> (Vec<u8>, Vec<u8>) {
        let mut with_ours = frame::PREFACE.to_vec();
        let mut expected = frame::PREFACE.to_vec();
        let parts = [
            frame::frame(4, 0, 0, &[]),
            frame::frame(frame::HEADERS, 4, 1, b"abc"),
            frame::frame(frame::PING, 0, 0, &[2; 8]),
            frame::frame(frame::PING, frame::FLAG_ACK, 0, &frame::KEEPALIVE_PING),
            frame::frame(frame::DATA, 1, 1, &[0; 40]),
            frame::frame(frame::PING, frame::FLAG_ACK, 0, &[9; 8]),
            frame::frame(frame::HEADERS, 5, 3, b"x"),
        ];
        for (i, p) in parts.iter().enumerate() {
            with_ours.extend_from_slice(p);
            if i != 3 {
                expected.extend_from_slice(p);
            }
        }
        (with_ours, expected)
    }

    proptest! {
        /// Whatever the read sizes, h2 gets the client's bytes minus our PING ACKs, and
        /// every frame is reported once.
        #[test]
        fn filters_only_our_acks(reads in proptest::collection::vec(1usize..40, 1..30), take in 1usize..64) {
            let (input, expected) = client_stream();
            let mut inc = Incoming::default();
            let mut seen = Seen::default();
            let mut out = Vec::new();
            let mut rest = &input[..];
            let mut sizes = reads.iter().copied().cycle();
            while !rest.is_empty() {
                let n = sizes.next().unwrap_or(1).min(rest.len());
                inc.read_buf(n).extend_from_slice(&rest[..n]);
                rest = &rest[n..];
                inc.scan(&mut seen);
                let mut dst = vec![0u8; take];
                loop {
                    let mut buf = ReadBuf::new(&mut dst);
                    let got = inc.take(&mut buf);
                    if got == 0 { break; }
                    out.extend_from_slice(buf.filled());
                }
            }
            prop_assert_eq!(out, expected);
            prop_assert_eq!(seen.headers, vec![1, 3]);
            prop_assert_eq!(seen.pings, 1);
            prop_assert_eq!(seen.acks, 1);
        }
    }
}
