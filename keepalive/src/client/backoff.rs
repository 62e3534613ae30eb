//! gRPC connection backoff (`connection-backoff.md`): 1 s, ×1.6, ±20%, at most 120 s, and
//! a minimum connect timeout of 20 s. The delay is reset once a connection is READY.

use crate::jitter::jittered;
use std::time::Duration;

/// The backoff knobs, with gRPC's defaults.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct BackoffConfig {
    /// First delay.
    pub initial: Duration,
    /// Growth per failed attempt.
    pub multiplier: f64,
    /// Random spread of each delay, as a fraction (0.2 = ±20%).
    pub jitter: f64,
    /// Largest delay before jitter.
    pub max: Duration,
    /// An attempt may take at least this long before it counts as failed.
    pub min_connect_timeout: Duration,
}

impl Default for BackoffConfig {
    fn default() -> Self {
        BackoffConfig {
            initial: Duration::from_secs(1),
            multiplier: 1.6,
            jitter: 0.2,
            max: Duration::from_secs(120),
            min_connect_timeout: Duration::from_secs(20),
        }
    }
}

impl BackoffConfig {
    /// The bounds of the `n`-th delay (0-based) after consecutive failures.
    pub fn bounds(&self, n: u32) -> (Duration, Duration) {
        let base = self.base(n);
        (
            base.mul_f64(1.0 - self.jitter),
            base.mul_f64(1.0 + self.jitter),
        )
    }

    fn base(&self, n: u32) -> Duration {
        let factor = self.multiplier.max(1.0).powi(n.min(1000) as i32);
        let secs = (self.initial.as_secs_f64() * factor).min(self.max.as_secs_f64());
        Duration::from_secs_f64(secs)
    }
}

/// Consecutive-failure backoff.
#[derive(Clone, Debug)]
pub struct Backoff {
    config: BackoffConfig,
    failures: u32,
}

impl Backoff {
    /// A fresh backoff.
    pub fn new(config: BackoffConfig) -> Self {
        Backoff {
            config,
            failures: 0,
        }
    }

    /// The configuration.
    pub fn config(&self) -> &BackoffConfig {
        &self.config
    }

    /// Failures since the last reset.
    pub fn failures(&self) -> u32 {
        self.failures
    }

    /// The delay before the next attempt, given a uniform `sample` in `[0, 1)`.
    pub fn next_delay(&mut self, sample: f64) -> Duration {
        let base = self.config.base(self.failures);
        self.failures = self.failures.saturating_add(1);
        jittered(base, self.config.jitter, sample)
    }

    /// Connected: the next failure starts from the initial delay again.
    pub fn reset(&mut self) {
        self.failures = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn grpc_sequence_without_jitter() {
        let mut b = Backoff::new(BackoffConfig {
            jitter: 0.0,
            ..BackoffConfig::default()
        });
        let ms: Vec<u128> = (0..14).map(|_| b.next_delay(0.5).as_millis()).collect();
        assert_eq!(
            ms,
            vec![
                1000, 1600, 2560, 4096, 6553, 10485, 16777, 26843, 42949, 68719, 109951, 120000,
                120000, 120000
            ]
        );
        b.reset();
        assert_eq!(b.next_delay(0.5), Duration::from_secs(1));
    }

    proptest! {
        #[test]
        fn every_delay_within_its_bounds(samples in proptest::collection::vec(0.0f64..1.0, 1..40)) {
            let cfg = BackoffConfig::default();
            let mut b = Backoff::new(cfg);
            for (n, s) in samples.iter().enumerate() {
                let d = b.next_delay(*s);
                let (lo, hi) = cfg.bounds(n as u32);
                prop_assert!(d >= lo && d <= hi, "delay {} = {:?} not in {:?}..{:?}", n, d, lo, hi);
            }
        }
    }
}
