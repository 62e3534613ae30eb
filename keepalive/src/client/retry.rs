//! Unary retry, gRPC proposal A6: only methods declared retryable, only on declared status
//! codes (UNAVAILABLE by default), at most 5 attempts, never once response headers have
//! arrived, and a server's `grpc-retry-pushback-ms` is obeyed.
//!
//! The delay before attempt `n + 1` is `min(initial * multiplier^(n-1), max) *
//! random(0.8, 1.2)` (shared/KEEPALIVE.md §3).

use crate::jitter::jittered;
use std::time::Duration;

/// gRPC status code UNAVAILABLE.
pub const UNAVAILABLE: i32 = 14;
/// A6 caps `maxAttempts` at 5.
pub const MAX_ATTEMPTS_CAP: u32 = 5;

/// The retry policy of one method.
#[derive(Clone, Debug, PartialEq)]
pub struct RetryPolicy {
    /// Attempts in all, the first included (2 to 5; larger values are capped at 5).
    pub max_attempts: u32,
    /// Delay before the first retry.
    pub initial_backoff: Duration,
    /// Largest delay.
    pub max_backoff: Duration,
    /// Growth per retry.
    pub backoff_multiplier: f64,
    /// Status codes worth retrying.
    pub retryable_codes: Vec<i32>,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            max_attempts: MAX_ATTEMPTS_CAP,
            initial_backoff: Duration::from_millis(100),
            max_backoff: Duration::from_secs(5),
            backoff_multiplier: 2.0,
            retryable_codes: vec![UNAVAILABLE],
        }
    }
}

/// How a failed attempt ended, as far as retrying is concerned.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Failure {
    /// The gRPC status code.
    pub code: i32,
    /// Whether response headers had arrived (then the call was committed: no retry).
    pub headers_received: bool,
    /// The server's `grpc-retry-pushback-ms`: `Some(Some(ms))` to wait exactly that long,
    /// `Some(None)` for a negative or unparsable value (do not retry), `None` if absent.
    pub pushback_ms: Option<Option<u64>>,
}

/// What to do after a failed attempt.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RetryDecision {
    /// Try again after this delay.
    Retry(Duration),
    /// Give up and report the failure.
    GiveUp,
}

/// The retry state of one call.
#[derive(Clone, Debug)]
pub struct RetryState {
    policy: RetryPolicy,
    attempts: u32,
}

impl RetryState {
    /// A call about to make its first attempt.
    pub fn new(policy: RetryPolicy) -> Self {
        RetryState {
            policy,
            attempts: 1,
        }
    }

    /// Attempts made so far (the first counts).
    pub fn attempts(&self) -> u32 {
        self.attempts
    }

    /// An attempt failed: retry or give up. `sample` is uniform in `[0, 1)`.
    pub fn on_failure(&mut self, failure: Failure, sample: f64) -> RetryDecision {
        let max = self.policy.max_attempts.clamp(1, MAX_ATTEMPTS_CAP);
        if failure.headers_received
            || self.attempts >= max
            || !self.policy.retryable_codes.contains(&failure.code)
        {
            return RetryDecision::GiveUp;
        }
        let delay = match failure.pushback_ms {
            Some(None) => return RetryDecision::GiveUp,
            Some(Some(ms)) => Duration::from_millis(ms),
            None => {
                let n = self.attempts - 1;
                let factor = self.policy.backoff_multiplier.max(1.0).powi(n as i32);
                let base = self
                    .policy
                    .initial_backoff
                    .mul_f64(factor)
                    .min(self.policy.max_backoff);
                jittered(base, 0.2, sample)
            }
        };
        self.attempts += 1;
        RetryDecision::Retry(delay)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn unavailable() -> Failure {
        Failure {
            code: UNAVAILABLE,
            headers_received: false,
            pushback_ms: None,
        }
    }

    #[test]
    fn at_most_five_attempts_with_growing_delays() {
        let mut r = RetryState::new(RetryPolicy {
            max_attempts: 9,
            ..RetryPolicy::default()
        });
        let delays: Vec<_> = std::iter::from_fn(|| match r.on_failure(unavailable(), 0.5) {
            RetryDecision::Retry(d) => Some(d.as_millis()),
            RetryDecision::GiveUp => None,
        })
        .collect();
        assert_eq!(delays, vec![100, 200, 400, 800]);
        assert_eq!(r.attempts(), 5);
    }

    #[test]
    fn jitter_is_plus_minus_twenty_percent() {
        let mut lo = RetryState::new(RetryPolicy::default());
        let mut hi = RetryState::new(RetryPolicy::default());
        assert_eq!(
            lo.on_failure(unavailable(), 0.0),
            RetryDecision::Retry(Duration::from_millis(80))
        );
        assert_eq!(
            hi.on_failure(unavailable(), 1.0),
            RetryDecision::Retry(Duration::from_millis(120))
        );
    }

    #[test]
    fn never_after_headers_nor_on_other_codes() {
        let mut r = RetryState::new(RetryPolicy::default());
        let committed = Failure {
            headers_received: true,
            ..unavailable()
        };
        assert_eq!(r.on_failure(committed, 0.5), RetryDecision::GiveUp);
        let internal = Failure {
            code: 13,
            ..unavailable()
        };
        assert_eq!(
            RetryState::new(RetryPolicy::default()).on_failure(internal, 0.5),
            RetryDecision::GiveUp
        );
    }

    #[test]
    fn pushback_is_obeyed() {
        let mut r = RetryState::new(RetryPolicy::default());
        let wait = Failure {
            pushback_ms: Some(Some(1234)),
            ..unavailable()
        };
        assert_eq!(
            r.on_failure(wait, 0.0),
            RetryDecision::Retry(Duration::from_millis(1234))
        );
        let stop = Failure {
            pushback_ms: Some(None),
            ..unavailable()
        };
        assert_eq!(r.on_failure(stop, 0.0), RetryDecision::GiveUp);
    }
}
