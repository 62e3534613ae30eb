//! A clock-free point in time.
//!
//! `std::time::Instant` panics on `wasm32-unknown-unknown` and cannot be moved by a test.
//! [`Instant`] is only a duration since an origin chosen by the driver: the server uses
//! its start time, the browser `performance.now()`, tests zero.

use std::ops::{Add, AddAssign, Sub};
use std::time::Duration;

/// A point in time, as a duration since the driver's origin.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Instant(Duration);

impl Instant {
    /// The origin.
    pub const ZERO: Instant = Instant(Duration::ZERO);

    /// The instant `d` after the origin.
    pub const fn from_origin(d: Duration) -> Self {
        Instant(d)
    }

    /// The instant `ms` milliseconds after the origin.
    pub const fn from_millis(ms: u64) -> Self {
        Instant(Duration::from_millis(ms))
    }

    /// The instant `ms` (fractional) milliseconds after the origin, as a browser's
    /// `performance.now()` gives it. Negative or non-finite values map to the origin.
    pub fn from_millis_f64(ms: f64) -> Self {
        if ms.is_finite() && ms > 0.0 {
            Instant(Duration::from_secs_f64(ms / 1000.0))
        } else {
            Instant::ZERO
        }
    }

    /// Time since the origin.
    pub const fn since_origin(self) -> Duration {
        self.0
    }

    /// Time from `earlier` to `self`, zero if `earlier` is later.
    pub fn saturating_duration_since(self, earlier: Instant) -> Duration {
        self.0.saturating_sub(earlier.0)
    }
}

impl Add<Duration> for Instant {
    type Output = Instant;
    fn add(self, rhs: Duration) -> Instant {
        Instant(self.0.saturating_add(rhs))
    }
}

impl AddAssign<Duration> for Instant {
    fn add_assign(&mut self, rhs: Duration) {
        *self = *self + rhs;
    }
}

impl Sub<Instant> for Instant {
    type Output = Duration;
    /// Saturating: never panics when `rhs` is later.
    fn sub(self, rhs: Instant) -> Duration {
        self.saturating_duration_since(rhs)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arithmetic_saturates() {
        let a = Instant::from_millis(10);
        let b = a + Duration::from_millis(5);
        assert_eq!(b - a, Duration::from_millis(5));
        assert_eq!(a - b, Duration::ZERO);
        assert_eq!(Instant::from_millis_f64(-3.0), Instant::ZERO);
        assert_eq!(Instant::from_millis_f64(f64::NAN), Instant::ZERO);
        assert_eq!(
            Instant::from_millis_f64(1.5).since_origin(),
            Duration::from_micros(1500)
        );
    }
}
