//! grpc-go's keepalive `EnforcementPolicy`: how often a client may PING.
//!
//! A server must protect itself from clients that PING too often (each PING costs a
//! write and a wake-up). grpc-go's `handlePing` is the reference, and this module follows
//! it step by step:
//!
//! 1. every PING is ACKed first (the driver does that), then judged here;
//! 2. if the server *sent* HEADERS, DATA or trailers since the previous PING, the strikes
//!    reset to zero and this PING is not judged (a busy connection may PING as it likes:
//!    grpc-go's BDP estimator does exactly that);
//! 3. otherwise the PING is a strike when it comes sooner than `min_time` after the
//!    previous one — or sooner than 2 hours when no stream is active and
//!    `permit_without_stream` is false;
//! 4. past `max_ping_strikes` strikes the server sends GOAWAY `ENHANCE_YOUR_CALM` with
//!    debug data `too_many_pings` and closes.
//!
//! The time of the previous PING is updated on every PING, judged or not. The very first
//! PING of a connection is never a strike.
//!
//! The same type judges browser heartbeats per session (a heartbeat call is a PING that
//! crossed HTTP/1.1), so HTTP/2 clients and browsers meet one policy.

use crate::time::Instant;
use std::time::Duration;

/// grpc-go `EnforcementPolicy.MinTime` default.
pub const DEFAULT_MIN_TIME: Duration = Duration::from_secs(5 * 60);
/// With no active stream (and `permit_without_stream` false) PINGs must be this far apart
/// (grpc-go `defaultPingTimeout`).
pub const NO_STREAM_MIN_TIME: Duration = Duration::from_secs(2 * 60 * 60);
/// grpc-go `maxPingStrikes`; gRPC core `grpc.http2.max_ping_strikes`.
pub const DEFAULT_MAX_PING_STRIKES: u32 = 2;
/// The debug data of the GOAWAY, and the message of the heartbeat error, past the strikes.
pub const TOO_MANY_PINGS: &str = "too_many_pings";

/// How often a client may PING (grpc-go `keepalive.EnforcementPolicy`).
///
/// ```
/// use std::time::Duration;
/// use keepalive::EnforcementPolicy;
///
/// // A browser-friendly policy: heartbeats every 10 s are fine, even without a stream.
/// let policy = EnforcementPolicy {
///     min_time: Duration::from_secs(10),
///     permit_without_stream: true,
///     ..Default::default()
/// };
/// assert_eq!(policy.max_ping_strikes, 2);
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "cli", derive(clap::Args))]
pub struct EnforcementPolicy {
    /// A client PING sooner than this after the previous one is a strike (EnforcementPolicy.MinTime) [default: 5m].
    #[cfg_attr(feature = "cli", arg(
        id = "min_ping_interval", long = "min-ping-interval", value_name = "DUR",
        value_parser = crate::settings::parse_duration, required = false
    ))]
    pub min_time: Duration,
    /// Judge PINGs with no active stream by --min-ping-interval instead of 2h (EnforcementPolicy.PermitWithoutStream).
    #[cfg_attr(feature = "cli", arg(
        id = "permit_keepalive_without_stream", long = "permit-keepalive-without-stream",
        value_name = "BOOL", num_args = 0..=1, default_missing_value = "true",
        action = clap::ArgAction::Set, required = false
    ))]
    pub permit_without_stream: bool,
    /// Strikes tolerated before GOAWAY too_many_pings; 0 = unlimited [default: 2].
    #[cfg_attr(
        feature = "cli",
        arg(
            id = "max_ping_strikes",
            long = "max-ping-strikes",
            value_name = "N",
            required = false
        )
    )]
    pub max_ping_strikes: u32,
}

impl Default for EnforcementPolicy {
    fn default() -> Self {
        EnforcementPolicy {
            min_time: DEFAULT_MIN_TIME,
            permit_without_stream: false,
            max_ping_strikes: DEFAULT_MAX_PING_STRIKES,
        }
    }
}

/// The judgement of one PING.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PingVerdict {
    /// Within the policy, or not judged (data was sent since the previous PING).
    Accepted,
    /// Too soon: a strike, `strikes` so far.
    Strike {
        /// Strikes counted on this connection (or session) so far.
        strikes: u32,
    },
    /// Too soon, and past the maximum: send GOAWAY `too_many_pings` and close.
    TooManyPings {
        /// Strikes counted, one more than the maximum.
        strikes: u32,
    },
}

/// Judges the PINGs of one connection (or the heartbeats of one browser session).
#[derive(Clone, Debug)]
pub struct PingEnforcer {
    policy: EnforcementPolicy,
    last_ping_at: Option<Instant>,
    strikes: u32,
    data_sent_since_ping: bool,
}

impl PingEnforcer {
    /// A fresh enforcer: no PING seen, no strikes.
    pub fn new(policy: EnforcementPolicy) -> Self {
        PingEnforcer {
            policy,
            last_ping_at: None,
            strikes: 0,
            data_sent_since_ping: false,
        }
    }

    /// The policy in force.
    pub fn policy(&self) -> &EnforcementPolicy {
        &self.policy
    }

    /// Strikes counted so far.
    pub fn strikes(&self) -> u32 {
        self.strikes
    }

    /// The server sent HEADERS, DATA or trailers: the next PING resets the strikes.
    pub fn on_data_sent(&mut self) {
        self.data_sent_since_ping = true;
    }

    /// Judges a PING received at `now` (after it was ACKed). `stream_active` tells whether
    /// the connection has at least one open stream.
    pub fn on_ping(&mut self, now: Instant, stream_active: bool) -> PingVerdict {
        let previous = self.last_ping_at.replace(now);
        if std::mem::take(&mut self.data_sent_since_ping) {
            self.strikes = 0;
            return PingVerdict::Accepted;
        }
        let min_interval = if stream_active || self.policy.permit_without_stream {
            self.policy.min_time
        } else {
            NO_STREAM_MIN_TIME
        };
        let too_soon = previous.is_some_and(|prev| now < prev + min_interval);
        if !too_soon {
            return PingVerdict::Accepted;
        }
        self.strikes = self.strikes.saturating_add(1);
        let max = self.policy.max_ping_strikes;
        if max != 0 && self.strikes > max {
            PingVerdict::TooManyPings {
                strikes: self.strikes,
            }
        } else {
            PingVerdict::Strike {
                strikes: self.strikes,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: u64) -> Instant {
        Instant::from_millis(s * 1000)
    }

    fn policy(min_s: u64, permit: bool, max: u32) -> EnforcementPolicy {
        EnforcementPolicy {
            min_time: Duration::from_secs(min_s),
            permit_without_stream: permit,
            max_ping_strikes: max,
        }
    }

    #[test]
    fn first_ping_is_never_a_strike() {
        let mut e = PingEnforcer::new(EnforcementPolicy::default());
        assert_eq!(e.on_ping(at(0), false), PingVerdict::Accepted);
    }

    #[test]
    fn third_strike_past_default_max_is_too_many_pings() {
        let mut e = PingEnforcer::new(policy(300, false, 2));
        assert_eq!(e.on_ping(at(0), true), PingVerdict::Accepted);
        assert_eq!(e.on_ping(at(1), true), PingVerdict::Strike { strikes: 1 });
        assert_eq!(e.on_ping(at(2), true), PingVerdict::Strike { strikes: 2 });
        assert_eq!(
            e.on_ping(at(3), true),
            PingVerdict::TooManyPings { strikes: 3 }
        );
    }

    #[test]
    fn pings_at_min_time_are_fine_forever() {
        let mut e = PingEnforcer::new(policy(300, false, 2));
        for i in 0..1000 {
            assert_eq!(e.on_ping(at(i * 300), true), PingVerdict::Accepted);
        }
        assert_eq!(e.strikes(), 0);
    }

    #[test]
    fn interval_is_measured_from_every_ping_not_only_accepted_ones() {
        let mut e = PingEnforcer::new(policy(10, false, 5));
        e.on_ping(at(0), true);
        assert_eq!(e.on_ping(at(5), true), PingVerdict::Strike { strikes: 1 });
        // 10 s after the first but only 5 s after the previous one: still a strike.
        assert_eq!(e.on_ping(at(10), true), PingVerdict::Strike { strikes: 2 });
        assert_eq!(e.on_ping(at(20), true), PingVerdict::Accepted);
    }

    #[test]
    fn data_sent_resets_strikes_and_skips_judgement() {
        let mut e = PingEnforcer::new(policy(300, false, 2));
        e.on_ping(at(0), true);
        e.on_ping(at(1), true);
        e.on_ping(at(2), true);
        assert_eq!(e.strikes(), 2);
        e.on_data_sent();
        assert_eq!(e.on_ping(at(3), true), PingVerdict::Accepted);
        assert_eq!(e.strikes(), 0);
        // The reset is used up: the next quick PING is judged again.
        assert_eq!(e.on_ping(at(4), true), PingVerdict::Strike { strikes: 1 });
    }

    #[test]
    fn no_stream_means_two_hour_rule_unless_permitted() {
        let mut e = PingEnforcer::new(policy(1, false, 2));
        e.on_ping(at(0), false);
        assert_eq!(
            e.on_ping(at(3600), false),
            PingVerdict::Strike { strikes: 1 }
        );
        assert_eq!(e.on_ping(at(3600 + 7200), false), PingVerdict::Accepted);

        let mut permitted = PingEnforcer::new(policy(1, true, 2));
        permitted.on_ping(at(0), false);
        assert_eq!(permitted.on_ping(at(2), false), PingVerdict::Accepted);
    }

    #[test]
    fn zero_max_strikes_is_unlimited() {
        let mut e = PingEnforcer::new(policy(300, true, 0));
        for i in 0..100 {
            assert!(!matches!(
                e.on_ping(at(i), true),
                PingVerdict::TooManyPings { .. }
            ));
        }
        assert_eq!(e.strikes(), 99);
    }
}
