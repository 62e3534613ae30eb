//! Random spreading of deadlines.
//!
//! The core owns no random source (it must stay deterministic under test); drivers pass a
//! uniform sample in `[0, 1)` — `fastrand` on the server, `Math.random()` in the browser,
//! a seeded generator in tests.

use std::time::Duration;

/// gRPC's jitter for max-connection-age (and, in gRPC core and here, max-idle): ±10%.
pub const CONNECTION_JITTER: f64 = 0.1;

/// `base` moved by up to `±fraction` of itself, according to `sample` in `[0, 1)`:
/// `sample = 0` gives `base * (1 - fraction)`, `sample → 1` gives `base * (1 + fraction)`.
/// Out-of-range samples are clamped, so the result always stays within the bounds.
pub fn jittered(base: Duration, fraction: f64, sample: f64) -> Duration {
    let sample = if sample.is_finite() {
        sample.clamp(0.0, 1.0)
    } else {
        0.5
    };
    let fraction = if fraction.is_finite() {
        fraction.clamp(0.0, 1.0)
    } else {
        0.0
    };
    let factor = 1.0 + fraction * (2.0 * sample - 1.0);
    base.mul_f64(factor)
}

/// A small deterministic random source (SplitMix64) for machines that need many samples
/// (client backoff). Drivers seed it from a real random source; tests from a constant.
#[derive(Clone, Debug)]
pub struct Rng(u64);

impl Rng {
    /// A generator seeded with `seed`.
    pub fn new(seed: u64) -> Self {
        Rng(seed)
    }

    /// The next uniform sample in `[0, 1)`.
    pub fn sample(&mut self) -> f64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^= z >> 31;
        (z >> 11) as f64 / (1u64 << 53) as f64
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn ends_and_middle() {
        let base = Duration::from_secs(100);
        assert_eq!(jittered(base, 0.1, 0.0), Duration::from_secs(90));
        assert_eq!(jittered(base, 0.1, 0.5), Duration::from_secs(100));
        assert_eq!(jittered(base, 0.1, 1.0), Duration::from_secs(110));
        assert_eq!(jittered(base, 0.1, f64::NAN), Duration::from_secs(100));
    }

    #[test]
    fn rng_samples_are_uniform_enough() {
        let mut rng = super::Rng::new(7);
        let samples: Vec<f64> = (0..10_000).map(|_| rng.sample()).collect();
        assert!(samples.iter().all(|s| (0.0..1.0).contains(s)));
        let mean = samples.iter().sum::<f64>() / samples.len() as f64;
        assert!((mean - 0.5).abs() < 0.02, "{mean}");
    }

    proptest! {
        #[test]
        fn always_within_bounds(ms in 0u64..10_000_000, sample in -1.0f64..2.0) {
            let base = Duration::from_millis(ms);
            let j = jittered(base, CONNECTION_JITTER, sample);
            prop_assert!(j >= base.mul_f64(0.9) && j <= base.mul_f64(1.1));
        }
    }
}
