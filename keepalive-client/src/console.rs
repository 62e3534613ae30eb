//! `tracing` to the browser console: tracing-subscriber's formatter without timestamps
//! (`SystemTime::now` panics on wasm32-unknown-unknown) and without colours, one
//! `console.log`/`warn`/`error` call per event. In browser tests the runner shows the
//! console output of failing tests.

use std::io;

use tracing::{Level, Metadata};
use tracing_subscriber::fmt::MakeWriter;

/// Sends `tracing` events at `max_level` and above to the browser console.
///
/// Idempotent: a second call (another test in the same page) keeps the first subscriber.
pub fn init_logging(max_level: Level) {
    let _already_set = tracing_subscriber::fmt()
        .with_max_level(max_level)
        .with_writer(ConsoleWriter::default())
        .without_time()
        .with_ansi(false)
        .try_init();
}

/// One formatted event, written to the console when the formatter drops it.
#[derive(Debug, Default)]
struct ConsoleWriter {
    level: Option<Level>,
    buf: Vec<u8>,
}

impl io::Write for ConsoleWriter {
    fn write(&mut self, bytes: &[u8]) -> io::Result<usize> {
        self.buf.extend_from_slice(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl Drop for ConsoleWriter {
    fn drop(&mut self) {
        if self.buf.is_empty() {
            return;
        }
        let text = String::from_utf8_lossy(&self.buf);
        let line = wasm_bindgen::JsValue::from_str(text.trim_end());
        match self.level {
            Some(Level::ERROR) => web_sys::console::error_1(&line),
            Some(Level::WARN) => web_sys::console::warn_1(&line),
            _ => web_sys::console::log_1(&line),
        }
    }
}

impl<'a> MakeWriter<'a> for ConsoleWriter {
    type Writer = ConsoleWriter;

    fn make_writer(&'a self) -> Self::Writer {
        ConsoleWriter::default()
    }

    fn make_writer_for(&'a self, meta: &Metadata<'_>) -> Self::Writer {
        ConsoleWriter {
            level: Some(*meta.level()),
            buf: Vec::new(),
        }
    }
}
