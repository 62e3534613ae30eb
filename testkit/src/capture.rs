//! A child's output, line by line: kept in memory for the test to read, optionally echoed
//! (prefixed `[server PID]`) to our stderr — libtest shows it for failing tests only —
//! and optionally appended to a shared [`LogFile`] that outlives the process (a
//! supervisor's log across restarts).
//!
//! One reader thread per pipe: a child's pipe must be drained or it blocks on a full
//! buffer, and std's blocking reads work the same in and out of a tokio runtime.

use crate::ansi::strip_ansi;
use std::fs::File;
use std::io::{BufRead, BufReader, Read, Write};
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;

/// Lines kept in memory by a [`LogFile`] (the file keeps them all); past this the older
/// half goes.
const MAX_SHARED_LINES: usize = 100_000;

pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// The output of several processes, one after the other: every line `[server PID] …`, in
/// memory (bounded) and in a file.
#[derive(Debug, Clone, Default)]
pub struct LogFile {
    inner: Arc<Mutex<Shared>>,
}

#[derive(Debug, Default)]
struct Shared {
    lines: Vec<String>,
    file: Option<File>,
}

impl LogFile {
    /// In memory only.
    pub fn memory() -> Self {
        Self::default()
    }

    /// In memory and in `path` (created with its directory, truncated).
    ///
    /// # Errors
    /// If the file cannot be created.
    pub fn create(path: &Path) -> std::io::Result<Self> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        let file = File::create(path)?;
        Ok(LogFile {
            inner: Arc::new(Mutex::new(Shared {
                lines: Vec::new(),
                file: Some(file),
            })),
        })
    }

    fn push(&self, line: &str) {
        let mut shared = lock(&self.inner);
        if let Some(file) = &mut shared.file {
            let _ = writeln!(file, "{line}");
        }
        if shared.lines.len() >= MAX_SHARED_LINES {
            shared.lines.drain(..MAX_SHARED_LINES / 2);
        }
        shared.lines.push(line.to_owned());
    }

    /// Every line kept, joined, with a final newline.
    pub fn text(&self) -> String {
        let shared = lock(&self.inner);
        let mut text = shared.lines.join("\n");
        text.push('\n');
        text
    }

    /// The last `n` lines.
    pub fn tail(&self, n: usize) -> Vec<String> {
        let shared = lock(&self.inner);
        shared.lines[shared.lines.len().saturating_sub(n)..].to_vec()
    }
}

/// Where a process's lines go.
#[derive(Debug, Clone)]
pub(crate) struct Capture {
    lines: Arc<Mutex<Vec<String>>>,
    /// Pipes (of those read) that reached EOF.
    closed: Arc<AtomicUsize>,
    /// `[server PID]`: the prefix of echoed and shared lines.
    prefix: String,
    echo: bool,
    shared: Option<LogFile>,
}

impl Capture {
    pub(crate) fn new(pid: u32, echo: bool, shared: Option<LogFile>) -> Self {
        Capture {
            lines: Arc::default(),
            closed: Arc::default(),
            prefix: format!("[server {pid}]"),
            echo,
            shared,
        }
    }

    fn push(&self, line: String) {
        if self.echo {
            eprintln!("{} {line}", self.prefix);
        }
        if let Some(shared) = &self.shared {
            shared.push(&format!("{} {line}", self.prefix));
        }
        lock(&self.lines).push(line);
    }

    /// Every line so far.
    pub(crate) fn lines(&self) -> MutexGuard<'_, Vec<String>> {
        lock(&self.lines)
    }

    /// How many pipes reached EOF.
    pub(crate) fn closed(&self) -> usize {
        self.closed.load(Ordering::SeqCst)
    }

    /// A thread reading `pipe` line by line (lossy UTF-8, ANSI stripped) until EOF.
    pub(crate) fn read(&self, pipe: impl Read + Send + 'static) -> JoinHandle<()> {
        let capture = self.clone();
        std::thread::spawn(move || {
            let mut reader = BufReader::new(pipe);
            let mut buf = Vec::new();
            loop {
                buf.clear();
                match reader.read_until(b'\n', &mut buf) {
                    Ok(0) | Err(_) => break,
                    Ok(_) => {
                        let raw = String::from_utf8_lossy(&buf);
                        capture.push(strip_ansi(raw.trim_end_matches(['\n', '\r'])));
                    }
                }
            }
            capture.closed.fetch_add(1, Ordering::SeqCst);
        })
    }
}
