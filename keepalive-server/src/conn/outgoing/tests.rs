use super::*;
use proptest::prelude::*;
use std::cell::RefCell;

/// Records what the observer reported; says "too many pings" at the n-th ACK.
#[derive(Default)]
struct Recorder {
    data_sent: usize,
    acks: usize,
    too_many_at: Option<usize>,
    goaways: Vec<(frame::GoAwayFields, Vec<u8>)>,
}

impl Judge for Recorder {
    fn data_sent(&mut self) {
        self.data_sent += 1;
    }
    fn ping_acked(&mut self) -> Option<u32> {
        self.acks += 1;
        (Some(self.acks) == self.too_many_at).then_some(5)
    }
    fn goaway_sent(&mut self, fields: frame::GoAwayFields, debug: &[u8]) {
        self.goaways.push((fields, debug.to_vec()));
    }
}

/// A socket that takes at most `chunk` bytes per write.
struct Wire {
    out: RefCell<Vec<u8>>,
    chunk: usize,
}

impl Sink for Wire {
    fn try_write(&self, buf: &[u8]) -> io::Result<usize> {
        let n = buf.len().min(self.chunk);
        self.out.borrow_mut().extend_from_slice(&buf[..n]);
        Ok(n)
    }
}

/// Splits a byte stream into frames (test-side parser).
fn frames(mut b: &[u8]) -> Vec<(FrameHeader, Vec<u8>)> {
    let mut v = Vec::new();
    while let Some(h) = FrameHeader::parse(b) {
        v.push((h, b[HEADER_LEN..h.frame_len()].to_vec()));
        b = &b[h.frame_len()..];
    }
    assert!(b.is_empty(), "trailing partial frame");
    v
}

fn run(
    input: &[u8],
    cuts: &[usize],
    wire_chunk: usize,
    judge: &mut Recorder,
    out: &mut Outgoing,
) -> Vec<u8> {
    let wire = Wire {
        out: RefCell::new(Vec::new()),
        chunk: wire_chunk,
    };
    let mut rest = input;
    let mut cuts = cuts.iter().copied().cycle();
    while !rest.is_empty() {
        let want = cuts.next().unwrap_or(rest.len()).clamp(1, rest.len());
        let n = out.accept(&rest[..want], judge);
        rest = &rest[n..];
        out.send(&wire).expect("send");
    }
    while out.pending() > 0 {
        out.send(&wire).expect("send");
    }
    wire.out.into_inner()
}

fn sample_stream() -> Vec<u8> {
    let mut s = Vec::new();
    s.extend(frame::frame(4, 0, 0, &[0; 6])); // SETTINGS
    s.extend(frame::frame(frame::HEADERS, 4, 1, b"hpack..."));
    s.extend(frame::frame(frame::DATA, 0, 1, &[7; 100]));
    s.extend(frame::frame(frame::PING, frame::FLAG_ACK, 0, &[1; 8]));
    s.extend(frame::frame(frame::DATA, 1, 1, &[9; 3000]));
    s.extend(frame::goaway(1, frame::NO_ERROR, b""));
    s
}

#[test]
fn passes_frames_through_unchanged_without_a_drain() {
    let input = sample_stream();
    let mut judge = Recorder::default();
    let out = run(&input, &[1000], 700, &mut judge, &mut Outgoing::default());
    assert_eq!(out, input);
    assert_eq!(judge.data_sent, 3);
    assert_eq!(judge.acks, 1);
    assert_eq!(judge.goaways.len(), 1);
}

#[test]
fn graceful_goaway_gets_the_drain_reason() {
    let input = sample_stream();
    let mut o = Outgoing::default();
    o.set_goaway_debug("max_idle");
    let mut judge = Recorder::default();
    let out = run(&input, &[5], 3, &mut judge, &mut o);
    let f = frames(&out);
    let (h, p) = f.last().expect("frames");
    assert_eq!(h.kind, frame::GOAWAY);
    assert_eq!(&p[8..], b"max_idle");
    assert_eq!(judge.goaways[0].1, b"max_idle");
    assert_eq!(frames(&out).len(), frames(&input).len());
}

#[test]
fn too_many_pings_goaway_follows_the_ack_and_nothing_after() {
    let input = sample_stream();
    let mut o = Outgoing::default();
    let mut judge = Recorder {
        too_many_at: Some(1),
        ..Recorder::default()
    };
    let out = run(&input, &[64], 1 << 20, &mut judge, &mut o);
    let f = frames(&out);
    let kinds: Vec<u8> = f.iter().map(|(h, _)| h.kind).collect();
    assert_eq!(
        kinds,
        vec![4, frame::HEADERS, frame::DATA, frame::PING, frame::GOAWAY]
    );
    let (_, p) = &f[4];
    let g = frame::parse_goaway(p).expect("goaway");
    assert_eq!(
        (g.last_stream_id, g.error_code),
        (5, frame::ENHANCE_YOUR_CALM)
    );
    assert_eq!(&p[8..], b"too_many_pings");
    assert!(o.closing());
}

#[test]
fn injected_frames_wait_for_a_boundary() {
    let mut o = Outgoing::default();
    let mut judge = Recorder::default();
    let data = frame::frame(frame::DATA, 0, 1, &[3; 50]);
    // h2 has written half a frame when we inject.
    assert_eq!(o.accept(&data[..20], &mut judge), 20);
    let ping = frame::ping(false, frame::KEEPALIVE_PING);
    o.inject(&ping, &mut judge);
    o.accept(&data[20..], &mut judge);
    let wire = Wire {
        out: RefCell::new(Vec::new()),
        chunk: usize::MAX,
    };
    o.send(&wire).expect("send");
    let f = frames(&wire.out.borrow());
    assert_eq!(
        f.iter().map(|(h, _)| h.kind).collect::<Vec<_>>(),
        vec![frame::DATA, frame::PING]
    );
}

proptest! {
    /// However h2's writes and the socket's partial writes are cut, and wherever our
    /// frames are injected, the wire carries whole frames: h2's in order, ours between them.
    #[test]
    fn any_chunking_keeps_frames_whole(
        cuts in proptest::collection::vec(1usize..200, 1..20),
        chunk in 1usize..500,
        inject_after in 0usize..6,
    ) {
        let input = sample_stream();
        let mut o = Outgoing::default();
        o.set_goaway_debug("max_age");
        let mut judge = Recorder::default();
        let wire = Wire { out: RefCell::new(Vec::new()), chunk };
        let mut rest = &input[..];
        let mut cut = cuts.iter().copied().cycle();
        let mut writes = 0;
        if inject_after == 0 {
            o.inject(&frame::ping(false, frame::KEEPALIVE_PING), &mut judge);
        }
        while !rest.is_empty() {
            let want = cut.next().unwrap_or(1).clamp(1, rest.len());
            let n = o.accept(&rest[..want], &mut judge);
            rest = &rest[n..];
            writes += 1;
            if writes == inject_after {
                o.inject(&frame::ping(false, frame::KEEPALIVE_PING), &mut judge);
            }
            o.send(&wire).expect("send");
        }
        if writes < inject_after && inject_after > 0 {
            o.inject(&frame::ping(false, frame::KEEPALIVE_PING), &mut judge);
        }
        while o.pending() > 0 { o.send(&wire).expect("send"); }
        let got = frames(&wire.out.borrow());
        let ours: Vec<_> = got.iter().filter(|(h, p)| h.kind == frame::PING && p[..] == frame::KEEPALIVE_PING).collect();
        prop_assert_eq!(ours.len(), 1);
        let theirs: Vec<_> = got.iter().filter(|(h, p)| !(h.kind == frame::PING && p[..] == frame::KEEPALIVE_PING)).map(|(h, _)| h.kind).collect();
        prop_assert_eq!(theirs, frames(&input).iter().map(|(h, _)| h.kind).collect::<Vec<_>>());
    }
}
