//! A raw HTTP/2 frame client (RFC 9113) for frame-level assertions.
//!
//! This is not an HTTP/2 implementation: [`RawH2`] writes exactly the frames it is told to
//! and hands back every frame it reads, so tests can check what the server puts on the wire
//! (PINGs, GOAWAYs with their debug data, the moment the connection closes) and can misbehave
//! on purpose (ping floods, never ACKing a PING). The only automatic behaviour is ACKing the
//! server's SETTINGS (on by default, as every peer must) and, if asked, ACKing its PINGs.
//!
//! Request headers are HPACK-encoded without a library, as literal fields without indexing
//! and without Huffman coding ([`encode_headers`]); responses are not decoded.
//!
//! # Layout
//! Everything is re-exported here, so callers use `h2raw::X` whatever file it lives in.
//! - `frame`: the frame codec: header and type/flag constants ([`PREFACE`],
//!   [`MAX_STREAM_ID`], ..), [`Frame`] encoding/decoding and payload views (PING data,
//!   SETTINGS pairs, RST_STREAM and WINDOW_UPDATE values), [`GoAway`], [`error_code`].
//! - `hpack`: the minimal HPACK encoder ([`encode_headers`], [`encode_hpack_int`]).
//! - `grpc`: gRPC request headers ([`grpc_request_headers`]) and the 5-byte message prefix
//!   ([`grpc_frame`], [`decode_grpc_frames`]).
//! - `client`: the connection, [`RawH2`] over TCP or any [`Transport`] (handshake, send
//!   methods, `read_frame`/`read_until`/`expect_closed`), and [`is_closed_error`].

mod client;
mod frame;
mod grpc;
mod hpack;

pub use client::{RawH2, Transport, is_closed_error};
pub use frame::{
    DEFAULT_MAX_FRAME_SIZE, FRAME_HEADER_LEN, Frame, GoAway, MAX_STREAM_ID, PREFACE, error_code,
};
pub use grpc::{decode_grpc_frames, grpc_frame, grpc_request_headers};
pub use hpack::{encode_headers, encode_hpack_int};
