//! A lock-free log-linear histogram of durations (microseconds), shared by every session.
//!
//! Values below 128 µs are exact; above, each power of two is split into 64 buckets, so a
//! percentile is off by at most 1/64 (1.6%). Recording is one relaxed atomic increment, so
//! ten thousand sessions can record into one histogram without a lock.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::Duration;

const LINEAR: u64 = 128;
const SUB_BITS: u32 = 6;
const SUB: u64 = 1 << SUB_BITS;
/// Buckets: the linear part plus 64 per power of two from 2^7 to 2^63.
const BUCKETS: usize = LINEAR as usize + (64 - 7) * SUB as usize;

/// A histogram of microsecond values.
#[derive(Debug)]
pub struct Histogram {
    counts: Vec<AtomicU64>,
    max: AtomicU64,
}

impl Default for Histogram {
    fn default() -> Self {
        Histogram {
            counts: (0..BUCKETS).map(|_| AtomicU64::new(0)).collect(),
            max: AtomicU64::new(0),
        }
    }
}

fn index(v: u64) -> usize {
    if v < LINEAR {
        return v as usize;
    }
    let exp = 63 - v.leading_zeros(); // >= 7
    let sub = (v >> (exp - SUB_BITS)) & (SUB - 1);
    (LINEAR + u64::from(exp - 7) * SUB + sub) as usize
}

/// The lowest value of bucket `i` plus half its width: the value a percentile reports.
fn value(i: usize) -> u64 {
    let i = i as u64;
    if i < LINEAR {
        return i;
    }
    let exp = (i - LINEAR) / SUB + 7;
    let sub = (i - LINEAR) % SUB;
    let width = 1u64 << (exp - u64::from(SUB_BITS));
    (1u64 << exp) + sub * width + width / 2
}

impl Histogram {
    /// Records one value.
    pub fn record_us(&self, us: u64) {
        self.counts[index(us)].fetch_add(1, Relaxed);
        self.max.fetch_max(us, Relaxed);
    }

    /// Records a duration.
    pub fn record(&self, d: Duration) {
        self.record_us(u64::try_from(d.as_micros()).unwrap_or(u64::MAX));
    }

    /// Forgets everything recorded.
    pub fn reset(&self) {
        for c in &self.counts {
            c.store(0, Relaxed);
        }
        self.max.store(0, Relaxed);
    }

    /// How many values were recorded.
    pub fn count(&self) -> u64 {
        self.counts.iter().map(|c| c.load(Relaxed)).sum()
    }

    /// The largest value recorded (exact).
    pub fn max_us(&self) -> u64 {
        self.max.load(Relaxed)
    }

    /// The `q` quantile (0..=1), in microseconds; 0 when empty.
    pub fn quantile_us(&self, q: f64) -> u64 {
        let counts: Vec<u64> = self.counts.iter().map(|c| c.load(Relaxed)).collect();
        let total: u64 = counts.iter().sum();
        if total == 0 {
            return 0;
        }
        let rank = ((q.clamp(0.0, 1.0) * total as f64).ceil() as u64).max(1);
        let mut seen = 0;
        for (i, c) in counts.iter().enumerate() {
            seen += c;
            if seen >= rank {
                return value(i).min(self.max_us());
            }
        }
        self.max_us()
    }

    /// p50, p99 and max in milliseconds, with the count.
    pub fn summary(&self) -> Summary {
        Summary {
            count: self.count(),
            p50_ms: self.quantile_us(0.50) as f64 / 1000.0,
            p99_ms: self.quantile_us(0.99) as f64 / 1000.0,
            max_ms: self.max_us() as f64 / 1000.0,
        }
    }
}

/// A distribution in a report.
#[derive(Clone, Copy, Debug, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Summary {
    /// Values recorded.
    pub count: u64,
    /// Median, ms.
    pub p50_ms: f64,
    /// 99th percentile, ms.
    pub p99_ms: f64,
    /// Largest, ms.
    pub max_ms: f64,
}

/// p50, p99 and max of a list of millisecond values (exact).
pub fn summarize_ms(values: &mut [f64]) -> Summary {
    if values.is_empty() {
        return Summary::default();
    }
    values.sort_by(f64::total_cmp);
    let at = |q: f64| {
        let rank = ((q * values.len() as f64).ceil() as usize).clamp(1, values.len());
        values[rank - 1]
    };
    Summary {
        count: values.len() as u64,
        p50_ms: at(0.5),
        p99_ms: at(0.99),
        max_ms: values[values.len() - 1],
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_are_monotonic_and_tight() {
        let mut last = 0;
        for v in (0..2_000_000u64).step_by(997) {
            let i = index(v);
            assert!(i >= last);
            last = i;
            let mid = value(i);
            assert!(
                mid.abs_diff(v) as f64 <= (v as f64 / 64.0).max(0.0) + 1.0,
                "{v} {mid}"
            );
        }
        assert!(index(u64::MAX) < BUCKETS);
    }

    #[test]
    fn quantiles() {
        let h = Histogram::default();
        for us in 1..=1000 {
            h.record_us(us * 10);
        }
        assert_eq!(h.count(), 1000);
        let p50 = h.quantile_us(0.5) as f64;
        assert!((p50 - 5000.0).abs() / 5000.0 < 0.02, "{p50}");
        assert_eq!(h.max_us(), 10_000);
        let p99 = h.quantile_us(0.99) as f64;
        assert!((p99 - 9900.0).abs() / 9900.0 < 0.02, "{p99}");
        let mut v = vec![3.0, 1.0, 2.0];
        assert_eq!(summarize_ms(&mut v).p50_ms, 2.0);
    }
}
