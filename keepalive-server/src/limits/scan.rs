//! Finding the length prefixes in a gRPC body (sans-IO).
//!
//! A gRPC body is a sequence of messages, each a 5-byte prefix (a compression flag and a
//! big-endian u32 length) and that many bytes. [`MessageScanner`] is fed the body in
//! whatever chunks the transport delivers and stops at the first prefix whose length is
//! over the limit — before any byte of that message is buffered. It never looks inside a
//! message and never allocates, so a hostile body costs a few comparisons per chunk.

/// Length of the prefix before every message: flag (1) + length (4).
pub const PREFIX_LEN: usize = 5;

/// A message prefix announced more bytes than the limit.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TooLarge {
    /// The length the prefix announced.
    pub len: u64,
    /// The limit it is over.
    pub limit: usize,
    /// Offset of the prefix's first byte in the body.
    pub start: u64,
}

/// Scans one body's message prefixes against a length limit.
#[derive(Clone, Debug)]
pub struct MessageScanner {
    limit: usize,
    /// Bytes fed so far.
    offset: u64,
    /// Prefix bytes collected for the message being started (0..=4 between calls).
    prefix: [u8; PREFIX_LEN],
    have: usize,
    /// Payload bytes of the current message still to come.
    body_left: u64,
    /// Set once a prefix over the limit was seen: nothing more is scanned.
    failed: Option<TooLarge>,
}

impl MessageScanner {
    /// A scanner for messages of at most `limit` bytes.
    pub fn new(limit: usize) -> Self {
        MessageScanner {
            limit,
            offset: 0,
            prefix: [0; PREFIX_LEN],
            have: 0,
            body_left: 0,
            failed: None,
        }
    }

    /// Bytes fed so far.
    pub fn offset(&self) -> u64 {
        self.offset
    }

    /// The body offset up to which every byte belongs to a message whose prefix was
    /// checked: the bytes after it are the start of a prefix not yet complete. A relay
    /// may pass bytes on up to here and must hold the rest.
    pub fn checked_up_to(&self) -> u64 {
        self.offset - self.have as u64
    }

    /// Looks at the next bytes of the body. Returns the first message over the limit
    /// (again on every later call: a body over the limit stays over it).
    pub fn feed(&mut self, mut data: &[u8]) -> Result<(), TooLarge> {
        if let Some(e) = self.failed {
            return Err(e);
        }
        while !data.is_empty() {
            if self.body_left > 0 {
                let n = usize::try_from(self.body_left)
                    .unwrap_or(usize::MAX)
                    .min(data.len());
                data = &data[n..];
                self.body_left -= n as u64;
                self.offset += n as u64;
                continue;
            }
            let n = (PREFIX_LEN - self.have).min(data.len());
            self.prefix[self.have..self.have + n].copy_from_slice(&data[..n]);
            self.have += n;
            self.offset += n as u64;
            data = &data[n..];
            if self.have < PREFIX_LEN {
                break;
            }
            self.have = 0;
            let [_, a, b, c, d] = self.prefix;
            let len = u64::from(u32::from_be_bytes([a, b, c, d]));
            if len > self.limit as u64 {
                let e = TooLarge {
                    len,
                    limit: self.limit,
                    start: self.offset - PREFIX_LEN as u64,
                };
                self.failed = Some(e);
                return Err(e);
            }
            self.body_left = len;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn message(len: usize) -> Vec<u8> {
        let mut m = vec![0];
        m.extend_from_slice(&(len as u32).to_be_bytes());
        m.extend(std::iter::repeat_n(7u8, len));
        m
    }

    #[test]
    fn messages_at_the_limit_pass_one_over_fails_at_its_prefix() {
        let mut body = message(10);
        body.extend(message(0));
        body.extend(message(10));
        let at = body.len() as u64;
        body.extend(message(11));
        let mut s = MessageScanner::new(10);
        let e = s.feed(&body).expect_err("over");
        assert_eq!(
            e,
            TooLarge {
                len: 11,
                limit: 10,
                start: at
            }
        );
        assert_eq!(s.feed(b"more"), Err(e), "stays failed");
    }

    #[test]
    fn checked_up_to_holds_back_a_partial_prefix() {
        let mut s = MessageScanner::new(100);
        s.feed(&message(3)).expect("ok");
        assert_eq!(s.checked_up_to(), 8);
        s.feed(&[0, 0]).expect("ok");
        assert_eq!((s.offset(), s.checked_up_to()), (10, 8));
        s.feed(&[0, 0, 1]).expect("ok");
        assert_eq!(s.checked_up_to(), 13);
    }

    proptest! {
        /// However the body is cut, the verdict and the position are the same as for the
        /// body in one piece, and a relay never passes on an unchecked prefix byte.
        #[test]
        fn chunking_does_not_matter(
            lens in proptest::collection::vec(0usize..40, 0..12),
            limit in 0usize..40,
            cuts in proptest::collection::vec(1usize..17, 1..20),
        ) {
            let body: Vec<u8> = lens.iter().flat_map(|&l| message(l)).collect();
            let whole = MessageScanner::new(limit).feed(&body);
            let mut s = MessageScanner::new(limit);
            let mut rest = &body[..];
            let mut cuts = cuts.iter().copied().cycle();
            let mut got = Ok(());
            while !rest.is_empty() && got.is_ok() {
                let n = cuts.next().unwrap_or(1).min(rest.len());
                got = s.feed(&rest[..n]);
                rest = &rest[n..];
                if got.is_ok() {
                    prop_assert!(s.checked_up_to() <= s.offset());
                    prop_assert!(s.offset() - s.checked_up_to() < PREFIX_LEN as u64);
                }
            }
            prop_assert_eq!(got, whole);
            let expect_fail = lens.iter().position(|&l| l > limit);
            prop_assert_eq!(whole.is_err(), expect_fail.is_some());
            if let (Err(e), Some(i)) = (whole, expect_fail) {
                let start: usize = lens[..i].iter().map(|l| l + PREFIX_LEN).sum();
                prop_assert_eq!(e.start, start as u64);
            }
        }

        /// Arbitrary bytes never panic, whatever the limit.
        #[test]
        fn arbitrary_bytes(data in proptest::collection::vec(any::<u8>(), 0..256), limit in any::<usize>()) {
            let mut s = MessageScanner::new(limit);
            let _ = s.feed(&data);
            prop_assert!(s.offset() <= data.len() as u64);
        }
    }
}
