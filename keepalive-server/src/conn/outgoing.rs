//! The server-to-client half of the HTTP/2 frame observer.
//!
//! h2 writes its frames into [`Outgoing`]; the connection task may add frames of its own
//! ([`Outgoing::inject`]). Bytes leave for the socket only once their frame header has
//! been read, so that:
//! - frames of our own go in *between* h2's frames, never inside one;
//! - h2's graceful GOAWAYs get the debug data of the drain reason (`max_idle`, `max_age`,
//!   `graceful_stop`) — h2 has no way to set it;
//! - once a client PING (judged when it is read) was one too many, the GOAWAY
//!   `too_many_pings` goes right after the next PING ACK h2 writes, so it follows the ACK
//!   on the wire, as in grpc-go;
//! - HEADERS and DATA written reset the ping strikes.
//!
//! It is sans-IO: [`Outgoing::send`] is the only method that touches a socket, through
//! the [`Sink`] trait, and the policy is reached through [`Judge`].

use super::frame::{self, FrameHeader, HEADER_LEN};
use bytes::{Buf, BytesMut};
use std::io;

/// Most bytes buffered before h2 has to wait for the socket.
pub const CAP: usize = 256 * 1024;

/// What the observer tells the policy about frames the server writes.
pub trait Judge {
    /// HEADERS (including trailers) or DATA is being written.
    fn data_sent(&mut self);
    /// A PING ACK was written. `Some(last_stream_id)` when the client has PINGed too often:
    /// the observer appends GOAWAY ENHANCE_YOUR_CALM after the ACK and stops writing.
    fn ping_acked(&mut self) -> Option<u32>;
    /// A GOAWAY is being written (with the debug data it carries on the wire).
    fn goaway_sent(&mut self, fields: frame::GoAwayFields, debug: &[u8]);
}

/// Where bytes go (a non-blocking socket).
pub trait Sink {
    /// Writes some of `buf`; `WouldBlock` when the socket is full.
    fn try_write(&self, buf: &[u8]) -> io::Result<usize>;
}

impl Sink for tokio::net::TcpStream {
    fn try_write(&self, buf: &[u8]) -> io::Result<usize> {
        tokio::net::TcpStream::try_write(self, buf)
    }
}

/// Outgoing bytes of one HTTP/2 connection, scanned frame by frame.
#[derive(Debug, Default)]
pub struct Outgoing {
    buf: BytesMut,
    /// Bytes at the front of `buf` whose frames were looked at: only these may be sent.
    scanned: usize,
    /// Payload bytes of the current frame not yet in `buf`.
    skip: usize,
    judge_after_frame: bool,
    deferred: Vec<u8>,
    goaway_debug: Option<&'static str>,
    closing: bool,
}

impl Outgoing {
    /// Debug data to put into h2's NO_ERROR GOAWAYs from now on.
    pub fn set_goaway_debug(&mut self, debug: &'static str) {
        self.goaway_debug = Some(debug);
    }

    /// True once a GOAWAY `too_many_pings` was queued: the connection must be closed and
    /// further writes from h2 are dropped.
    pub fn closing(&self) -> bool {
        self.closing
    }

    /// Bytes ready to be sent.
    pub fn pending(&self) -> usize {
        self.scanned
    }

    /// Whether the buffer is full: h2 must wait until [`send`](Self::send) made room.
    pub fn is_full(&self) -> bool {
        self.buf.len() >= CAP
    }

    /// Takes bytes written by h2; returns how many were taken (0 when full). After
    /// [`closing`](Self::closing) everything is taken and dropped.
    pub fn accept(&mut self, data: &[u8], judge: &mut impl Judge) -> usize {
        if self.closing {
            return data.len();
        }
        let n = data.len().min(CAP.saturating_sub(self.buf.len()));
        self.buf.extend_from_slice(&data[..n]);
        self.scan(judge);
        n
    }

    /// Queues a frame of our own, to be written at the next frame boundary.
    pub fn inject(&mut self, frame: &[u8], judge: &mut impl Judge) {
        if self.closing {
            return;
        }
        self.deferred.extend_from_slice(frame);
        self.scan(judge);
    }

    /// Writes as much of the scanned bytes as the sink takes without blocking.
    pub fn send(&mut self, sink: &impl Sink) -> io::Result<()> {
        while self.scanned > 0 {
            match sink.try_write(&self.buf[..self.scanned]) {
                Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                Ok(n) => {
                    self.buf.advance(n);
                    self.scanned -= n;
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(()),
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }

    fn scan(&mut self, judge: &mut impl Judge) {
        loop {
            if self.skip > 0 {
                let n = self.skip.min(self.buf.len() - self.scanned);
                self.scanned += n;
                self.skip -= n;
                if self.skip > 0 {
                    return;
                }
            }
            // At a frame boundary.
            if std::mem::take(&mut self.judge_after_frame)
                && let Some(last_stream_id) = judge.ping_acked()
            {
                self.buf.truncate(self.scanned);
                let debug = keepalive::enforcement::TOO_MANY_PINGS.as_bytes();
                self.buf.extend_from_slice(&frame::goaway(
                    last_stream_id,
                    frame::ENHANCE_YOUR_CALM,
                    debug,
                ));
                self.scanned = self.buf.len();
                self.closing = true;
                self.deferred.clear();
                judge.goaway_sent(
                    frame::GoAwayFields {
                        last_stream_id,
                        error_code: frame::ENHANCE_YOUR_CALM,
                    },
                    debug,
                );
                return;
            }
            if !self.deferred.is_empty() {
                let tail = self.buf.split_off(self.scanned);
                self.buf.extend_from_slice(&self.deferred);
                self.scanned += self.deferred.len();
                self.buf.unsplit(tail);
                self.deferred.clear();
                continue;
            }
            let Some(header) = FrameHeader::parse(&self.buf[self.scanned..]) else {
                return;
            };
            match header.kind {
                frame::GOAWAY if header.frame_len() <= CAP => {
                    if self.buf.len() - self.scanned < header.frame_len() {
                        return; // wait for the whole frame
                    }
                    self.scan_goaway(header, judge);
                    continue;
                }
                frame::PING if header.flags & frame::FLAG_ACK != 0 => {
                    self.judge_after_frame = true;
                }
                frame::HEADERS | frame::DATA => judge.data_sent(),
                _ => {}
            }
            self.scanned += HEADER_LEN;
            self.skip = header.len as usize;
        }
    }

    /// A whole GOAWAY frame from h2 is at `scanned`: add the drain reason to a graceful
    /// one, report it, and step over it.
    fn scan_goaway(&mut self, header: FrameHeader, judge: &mut impl Judge) {
        let start = self.scanned;
        let payload = &self.buf[start + HEADER_LEN..start + header.frame_len()];
        let Some(fields) = frame::parse_goaway(payload) else {
            self.scanned += header.frame_len();
            return;
        };
        match self.goaway_debug {
            Some(debug) if fields.error_code == frame::NO_ERROR && header.len == 8 => {
                let rewritten =
                    frame::goaway(fields.last_stream_id, fields.error_code, debug.as_bytes());
                let tail = self.buf.split_off(start + header.frame_len());
                self.buf.truncate(start);
                self.buf.extend_from_slice(&rewritten);
                self.buf.unsplit(tail);
                self.scanned = start + rewritten.len();
                judge.goaway_sent(fields, debug.as_bytes());
            }
            _ => {
                judge.goaway_sent(fields, &payload[8..]);
                self.scanned += header.frame_len();
            }
        }
    }
}

#[cfg(test)]
mod tests;
