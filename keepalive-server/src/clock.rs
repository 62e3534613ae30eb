//! The bridge between tokio's clock and the sans-IO core's [`keepalive::Instant`].

use std::time::Duration;

/// Converts between tokio instants and core instants, measured from the server's start.
#[derive(Clone, Copy, Debug)]
pub struct Clock {
    origin: tokio::time::Instant,
}

impl Clock {
    /// A clock whose origin is now.
    pub fn start() -> Self {
        Clock {
            origin: tokio::time::Instant::now(),
        }
    }

    /// The current time for the core.
    pub fn now(&self) -> keepalive::Instant {
        keepalive::Instant::from_origin(self.origin.elapsed())
    }

    /// A core instant as a tokio instant, for timers.
    pub fn to_tokio(&self, at: keepalive::Instant) -> tokio::time::Instant {
        self.origin + at.since_origin()
    }

    /// How long ago `at` was.
    pub fn since(&self, at: keepalive::Instant) -> Duration {
        self.now() - at
    }
}
