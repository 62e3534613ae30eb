//! [`FileLog`]: the log kept in an append-only file, so a restart loses nothing.
//!
//! A restarted server must continue the same sequence space: a client resuming after 41
//! must get 42 next, not a new 1. So the file holds the `log_id` and every event with its
//! sequence and idempotency key; at start the server reads it all, keeps the last
//! `--replay-capacity` events in its ring and the last keys in its idempotency memory,
//! and appends from there.
//!
//! # Format
//! `kalog\0\x01\n` (8 bytes), then records, each a protobuf [`Record`] preceded by its
//! length as a varint (prost's length-delimited encoding). The first record carries only
//! the `log_id`; every later one an event (your message `E`, encoded), sequences 1, 2,
//! 3… without holes.
//!
//! # Crashes
//! A record is written with one `write` and becomes visible (ring, head, Publish answer)
//! only after it. A crash in the middle leaves a torn last record that nobody has seen:
//! at start it is cut off with a warning. Anything else that does not parse (bad magic,
//! a complete record that does not decode, a hole in the sequences) is an error: the
//! server does not start (exit 2) rather than guess. There is no fsync: a machine crash
//! (not a process crash) may lose the last events, and then their sequences are reused.
//!
//! The file grows without bound (compaction is future work); loading reads it whole once.

use super::dedup::Dedup;
use super::local::{Journal, LocalLog};
use super::ring::Ring;
use super::{DEDUP_CAPACITY, LogError, LogEvent};
use crate::browser::ids;
use std::fs::{File, OpenOptions};
use std::io::{self, BufReader, Read, Write};
use std::path::Path;

/// The first bytes of an event log file.
pub const MAGIC: &[u8; 8] = b"kalog\0\x01\n";
/// A record longer than this is corruption (events are at most a few KiB).
const MAX_RECORD: u64 = 1 << 20;

/// One record of the file.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Record {
    /// Set in the first record only.
    #[prost(string, tag = "1")]
    pub log_id: String,
    /// Set in every record but the first: the event, encoded.
    #[prost(bytes = "vec", optional, tag = "2")]
    pub event: Option<Vec<u8>>,
    /// The event's idempotency key (empty: none).
    #[prost(string, tag = "3")]
    pub idempotency_key: String,
}

/// Appends records to the file.
#[derive(Debug)]
pub struct FileJournal {
    file: File,
    len: u64,
    broken: bool,
}

impl<E: prost::Message> Journal<E> for FileJournal {
    fn record(&mut self, event: &E, key: Option<&str>) -> io::Result<()> {
        if self.broken {
            return Err(io::Error::other(
                "the event log file is in an unknown state",
            ));
        }
        let bytes = prost::Message::encode_length_delimited_to_vec(&Record {
            log_id: String::new(),
            event: Some(event.encode_to_vec()),
            idempotency_key: key.unwrap_or_default().to_string(),
        });
        match self.file.write_all(&bytes) {
            Ok(()) => {
                self.len += bytes.len() as u64;
                Ok(())
            }
            Err(e) => {
                // Cut off whatever part was written, or refuse further writes.
                if self.file.set_len(self.len).is_err() {
                    self.broken = true;
                }
                Err(e)
            }
        }
    }
}

/// The file-backed log of events `E` (a protobuf message with a sequence).
pub type FileLog<E> = LocalLog<E, FileJournal>;

impl<E: LogEvent + prost::Message + Default> LocalLog<E, FileJournal> {
    /// Opens (or creates) the event log at `path`, keeping the last `capacity` events in
    /// memory for replay. A file that is not an event log, or is corrupt before its last
    /// record, is an error naming the file.
    pub fn open(path: &Path, capacity: usize) -> Result<Self, LogError> {
        open(path, capacity)
    }
}

fn open<E: LogEvent + prost::Message + Default>(
    path: &Path,
    capacity: usize,
) -> Result<FileLog<E>, LogError> {
    let shown = path.display();
    let err = |what: &str| LogError(format!("event log {shown}: {what}"));
    let mut file = OpenOptions::new()
        .read(true)
        .append(true)
        .create(true)
        .open(path)
        .map_err(|e| err(&format!("cannot open: {e}")))?;
    let loaded = load(&file, capacity).map_err(|e| err(&e))?;
    let file_len = file
        .metadata()
        .map_err(|e| err(&format!("cannot stat: {e}")))?
        .len();
    let (log_id, ring, dedup, len) = match loaded {
        Some(l) => {
            if l.good_len < file_len {
                tracing::warn!(
                    file = %shown,
                    cut_bytes = file_len - l.good_len,
                    "event log: torn last record (a crash mid-write?) ignored"
                );
                file.set_len(l.good_len)
                    .map_err(|e| err(&format!("cannot cut the torn record: {e}")))?;
            }
            tracing::info!(
                file = %shown,
                log_id = %l.log_id,
                head = l.ring.head(),
                held = l.ring.depth(),
                "event log loaded"
            );
            (l.log_id, l.ring, l.dedup, l.good_len)
        }
        None => {
            let log_id = ids::unique_hex128();
            let mut bytes = MAGIC.to_vec();
            bytes.extend(prost::Message::encode_length_delimited_to_vec(&Record {
                log_id: log_id.clone(),
                ..Record::default()
            }));
            file.set_len(0)
                .and_then(|()| file.write_all(&bytes))
                .map_err(|e| err(&format!("cannot write: {e}")))?;
            tracing::info!(file = %shown, %log_id, "event log created");
            let len = bytes.len() as u64;
            (log_id, Ring::new(capacity), Dedup::new(DEDUP_CAPACITY), len)
        }
    };
    let journal = FileJournal {
        file,
        len,
        broken: false,
    };
    Ok(LocalLog::from_parts(log_id, ring, dedup, journal))
}

/// What a file held.
struct Loaded<E> {
    log_id: String,
    ring: Ring<E>,
    dedup: Dedup,
    /// Length of the file up to the last complete record.
    good_len: u64,
}

/// Reads the file; `None` when it has no header yet (new, or torn while being created).
fn load<E: LogEvent + prost::Message + Default>(
    file: &File,
    capacity: usize,
) -> Result<Option<Loaded<E>>, String> {
    let mut r = BufReader::new(file);
    let mut magic = [0u8; MAGIC.len()];
    let got = read_up_to(&mut r, &mut magic).map_err(|e| format!("cannot read: {e}"))?;
    if got < MAGIC.len() {
        return if MAGIC.starts_with(&magic[..got]) {
            Ok(None)
        } else {
            Err("not an event log (bad magic)".into())
        };
    }
    if &magic != MAGIC {
        return Err("not an event log (bad magic)".into());
    }
    let mut offset = MAGIC.len() as u64;
    let header = match next_record(&mut r, offset)? {
        Next::Record(rec, n) if !rec.log_id.is_empty() && rec.event.is_none() => {
            offset += n;
            rec.log_id
        }
        Next::Record(..) => return Err("the first record is not a header".into()),
        Next::End | Next::Torn => return Ok(None),
    };
    let mut ring = Ring::new(capacity);
    let mut dedup = Dedup::new(DEDUP_CAPACITY);
    // Up to the end, or a torn last record.
    while let Next::Record(rec, n) = next_record(&mut r, offset)? {
        let Some(bytes) = rec.event else {
            return Err(format!("record at byte {offset} has no event"));
        };
        let event = E::decode(bytes.as_slice())
            .map_err(|e| format!("the event at byte {offset} does not decode: {e}"))?;
        let expected = ring.head().saturating_add(1);
        if event.sequence() != expected {
            return Err(format!(
                "record at byte {offset} has sequence {}, expected {expected}",
                event.sequence()
            ));
        }
        if !rec.idempotency_key.is_empty() {
            dedup.insert(&rec.idempotency_key, expected);
        }
        ring.push(event);
        offset += n;
    }
    Ok(Some(Loaded {
        log_id: header,
        ring,
        dedup,
        good_len: offset,
    }))
}

enum Next {
    /// A record and its encoded length (prefix included).
    Record(Record, u64),
    /// The file ends at a record boundary.
    End,
    /// The file ends inside a record.
    Torn,
}

fn next_record(r: &mut impl Read, offset: u64) -> Result<Next, String> {
    let io = |e: io::Error| format!("cannot read: {e}");
    let mut len = 0u64;
    let mut prefix = 0u64;
    loop {
        let mut byte = [0u8; 1];
        if read_up_to(r, &mut byte).map_err(io)? == 0 {
            return Ok(if prefix == 0 { Next::End } else { Next::Torn });
        }
        let [b] = byte;
        len |= u64::from(b & 0x7f) << (7 * prefix);
        prefix += 1;
        if b & 0x80 == 0 {
            break;
        }
        if prefix == 10 {
            return Err(format!("record at byte {offset} has a bad length"));
        }
    }
    if len > MAX_RECORD {
        return Err(format!("record at byte {offset} is too long ({len} bytes)"));
    }
    let mut body = vec![0u8; usize::try_from(len).map_err(|e| e.to_string())?];
    if read_up_to(r, &mut body).map_err(io)? < body.len() {
        return Ok(Next::Torn);
    }
    let rec: Record = prost::Message::decode(body.as_slice())
        .map_err(|e| format!("record at byte {offset} does not decode: {e}"))?;
    Ok(Next::Record(rec, prefix + len))
}

/// Fills `buf` as far as the reader goes; returns how many bytes were read.
fn read_up_to(r: &mut impl Read, buf: &mut [u8]) -> io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match r.read(&mut buf[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(n)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::log::EventLog;
    use std::path::PathBuf;

    #[derive(Clone, PartialEq, prost::Message)]
    struct Ev {
        #[prost(uint64, tag = "1")]
        sequence: u64,
        #[prost(string, tag = "4")]
        text: String,
    }
    keepalive_proto::sequenced!(Ev);

    fn tmp(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("server-filelog-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("tmp");
        let p = dir.join(name);
        let _ = std::fs::remove_file(&p);
        p
    }

    fn ev(text: &str) -> Ev {
        Ev {
            sequence: 0,
            text: text.into(),
        }
    }

    fn key(k: &str) -> Option<String> {
        Some(k.into())
    }

    #[tokio::test]
    async fn survives_a_restart_with_the_same_log_id_and_keys() {
        let p = tmp("restart.log");
        let id = {
            let log = FileLog::<Ev>::open(&p, 2).expect("open");
            for i in 1..=3 {
                log.append(ev(&format!("e{i}")), key(&format!("k{i}")))
                    .await
                    .expect("append");
            }
            log.log_id()
        };
        let log = FileLog::<Ev>::open(&p, 2).expect("reopen");
        assert_eq!(log.log_id(), id);
        assert_eq!((log.head(), log.depth()), (3, 2));
        let dup = log.append(ev("x"), key("k1")).await.expect("append");
        assert_eq!((dup.sequence, dup.duplicate), (1, true));
        let next = log.append(ev("e4"), key("k4")).await.expect("append");
        assert_eq!(next.sequence, 4);
        let b = log.read_after(2, 64).await.expect("read");
        let texts: Vec<_> = b.events.iter().map(|e| e.text.as_str()).collect();
        assert_eq!(texts, ["e3", "e4"]);
        assert_eq!(b.events[1].sequence, 4);
    }

    #[tokio::test]
    async fn a_torn_last_record_is_cut_off() {
        let p = tmp("torn.log");
        {
            let log = FileLog::<Ev>::open(&p, 10).expect("open");
            log.append(ev("a"), key("ka")).await.expect("append");
            log.append(ev("b"), key("kb")).await.expect("append");
        }
        let full = std::fs::read(&p).expect("read");
        std::fs::write(&p, &full[..full.len() - 3]).expect("tear");
        let log = FileLog::<Ev>::open(&p, 10).expect("reopen");
        assert_eq!(log.head(), 1);
        let b = log.append(ev("b2"), key("kb2")).await.expect("append");
        assert_eq!(b.sequence, 2);
        drop(log);
        let log = FileLog::<Ev>::open(&p, 10).expect("reopen again");
        let texts: Vec<_> = log
            .read_after(0, 64)
            .await
            .expect("read")
            .events
            .into_iter()
            .map(|e| e.text)
            .collect();
        assert_eq!(texts, ["a", "b2"]);
    }

    #[test]
    fn garbage_is_an_error() {
        let p = tmp("garbage.log");
        std::fs::write(&p, b"hello, this is not a log").expect("write");
        let e = FileLog::<Ev>::open(&p, 10).expect_err("bad magic");
        assert!(e.0.contains("bad magic"), "{e}");
    }
}
