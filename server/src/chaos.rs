//! The Chaos call: who may inject faults, and what each action does.
//!
//! Off unless the server runs with `--chaos`; then every call must present
//! `--chaos-token` (compared in constant time). Each action is logged at WARN, because a
//! server that misbehaves on purpose should say so in its log.
//!
//! | action | effect |
//! |---|---|
//! | DROP_CONNECTIONS | ~50 ms after the answer, every open connection is closed without GOAWAY |
//! | STALL{duration} | ~50 ms after the answer, every connection (open or new, h1 and h2) stops reading and writing for the duration, sockets stay open |
//! | REFUSE_CONNECTIONS{duration} | new connections are accepted and reset at once (SO_LINGER 0) |
//! | REJECT_HEARTBEATS{duration} | Heartbeat answers UNAVAILABLE `heartbeats rejected (chaos)` |
//! | GOAWAY | every resumable stream ends with GoAway{reason: "chaos"}; every connection gets the graceful GOAWAY with debug data `chaos` |
//! | RESTART | ~50 ms after the answer, the server stops as on SIGTERM (GoAway, graceful GOAWAY, drain) and exits with [`crate::RESTART_EXIT_CODE`]; `cargo xtask demo` starts it again |
//!
//! The 50 ms delay lets the Chaos answer itself leave before its own connection is hit.
//!
//! The transport's faults are the library's optional [`FaultInjector`], plugged into the
//! demo's server only; heartbeats are refused through the browser keepalive's heartbeat
//! gate; the restart is the demo's own signal, which the binary waits for.

use crate::counters::DemoStats;
use crate::settings::Secret;
use demo_proto::v1::{ChaosAction, ChaosRequest};
use keepalive_server::FaultInjector;
use keepalive_server::browser::{BrowserKeepalive, ids};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::watch;
use tokio::time::Instant;
use tonic::Status;

/// Delay between the answer and a fault that would also hit the answer's connection.
pub const START_DELAY: Duration = Duration::from_millis(50);
/// Longest fault window accepted.
pub const MAX_DURATION: Duration = Duration::from_secs(60 * 60);

/// Checks that chaos is enabled and the token matches.
pub fn authorize(enabled: bool, token: Option<&Secret>, given: &str) -> Result<(), Status> {
    if !enabled {
        return Err(Status::permission_denied("chaos is disabled"));
    }
    match token {
        Some(Secret(token)) if ids::ct_eq(token, given) => Ok(()),
        _ => Err(Status::permission_denied("wrong chaos token")),
    }
}

/// GoAway reason (and GOAWAY debug data) of chaos GOAWAY.
pub const REASON: &str = "chaos";

/// What chaos can break: the transport, the browser streams, the heartbeats, the process.
#[derive(Debug)]
pub struct Chaos {
    faults: Arc<FaultInjector>,
    browser: BrowserKeepalive,
    reject_heartbeats_until: Mutex<Option<Instant>>,
    restart: watch::Sender<bool>,
}

impl Chaos {
    /// Chaos over `faults` (give the same injector to the server's builder) and
    /// `browser`, whose heartbeats it may refuse (counted in `stats`).
    pub fn new(
        faults: Arc<FaultInjector>,
        browser: BrowserKeepalive,
        stats: Arc<DemoStats>,
    ) -> Arc<Self> {
        let chaos = Arc::new(Chaos {
            faults,
            browser: browser.clone(),
            reject_heartbeats_until: Mutex::new(None),
            restart: watch::channel(false).0,
        });
        let gate = Arc::downgrade(&chaos);
        browser.intercept_heartbeats(move || match gate.upgrade() {
            Some(chaos) if chaos.rejecting_heartbeats(Instant::now()) => {
                DemoStats::inc(&stats.heartbeats_rejected_chaos);
                Err(Status::unavailable("heartbeats rejected (chaos)"))
            }
            _ => Ok(()),
        });
        chaos
    }

    /// Heartbeats are answered UNAVAILABLE for `duration` from now.
    pub fn reject_heartbeats(&self, duration: Duration) {
        *lock(&self.reject_heartbeats_until) = Some(Instant::now() + duration);
    }

    /// Whether heartbeats are rejected at `now`.
    pub fn rejecting_heartbeats(&self, now: Instant) -> bool {
        lock(&self.reject_heartbeats_until).is_some_and(|until| now < until)
    }

    /// Completes once a restart was requested (chaos RESTART).
    pub async fn restart_requested(&self) {
        let mut rx = self.restart.subscribe();
        if rx.wait_for(|requested| *requested).await.is_err() {
            std::future::pending::<()>().await;
        }
    }

    /// Carries out the action; returns what it did, in words.
    pub fn apply(self: &Arc<Self>, req: &ChaosRequest) -> Result<String, Status> {
        apply(self, req)
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

fn apply(chaos: &Arc<Chaos>, req: &ChaosRequest) -> Result<String, Status> {
    let faults = &chaos.faults;
    let action = ChaosAction::try_from(req.action)
        .map_err(|_| Status::invalid_argument(format!("unknown chaos action {}", req.action)))?;
    let window = || -> Result<Duration, Status> {
        let d = Duration::from_millis(req.duration_ms);
        if d.is_zero() || d > MAX_DURATION {
            Err(Status::invalid_argument(format!(
                "{} needs duration_ms between 1 and {}",
                action.as_str_name(),
                MAX_DURATION.as_millis()
            )))
        } else {
            Ok(d)
        }
    };
    let done = match action {
        ChaosAction::Unspecified => {
            return Err(Status::invalid_argument("chaos action is required"));
        }
        ChaosAction::DropConnections => {
            let faults = faults.clone();
            tokio::spawn(async move {
                tokio::time::sleep(START_DELAY).await;
                faults.drop_connections();
            });
            "dropping every connection".to_string()
        }
        ChaosAction::Stall => {
            let d = window()?;
            faults.stall(tokio::time::Instant::now() + START_DELAY, d);
            format!("stalling every connection for {d:?}")
        }
        ChaosAction::RefuseConnections => {
            let d = window()?;
            faults.refuse_connections(d);
            format!("refusing new connections for {d:?}")
        }
        ChaosAction::RejectHeartbeats => {
            let d = window()?;
            chaos.reject_heartbeats(d);
            format!("rejecting heartbeats for {d:?}")
        }
        ChaosAction::Goaway => {
            chaos.browser.go_away_all(REASON);
            faults.goaway();
            "sending GoAway to every subscription and connection".to_string()
        }
        ChaosAction::Restart => {
            let chaos = chaos.clone();
            tokio::spawn(async move {
                tokio::time::sleep(START_DELAY).await;
                chaos.restart.send_replace(true);
            });
            format!(
                "restarting: stopping gracefully, then exit code {}",
                crate::RESTART_EXIT_CODE
            )
        }
    };
    tracing::warn!(action = action.as_str_name(), "chaos: {done}");
    Ok(done)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn authorization() {
        let token = Secret("s3cret".into());
        let denied = |r: Result<(), Status>| r.expect_err("denied").message().to_string();
        assert_eq!(
            denied(authorize(false, Some(&token), "s3cret")),
            "chaos is disabled"
        );
        assert_eq!(
            denied(authorize(true, Some(&token), "nope")),
            "wrong chaos token"
        );
        assert_eq!(denied(authorize(true, None, "")), "wrong chaos token");
        assert!(authorize(true, Some(&token), "s3cret").is_ok());
    }

    #[tokio::test]
    async fn durations_are_checked() {
        use keepalive_server::browser::BrowserOptions;
        let chaos = Chaos::new(
            Arc::new(FaultInjector::default()),
            BrowserKeepalive::new(BrowserOptions::default()),
            Arc::new(DemoStats::default()),
        );
        let req = |action: ChaosAction, duration_ms| ChaosRequest {
            token: String::new(),
            action: action as i32,
            duration_ms,
        };
        for bad in [
            req(ChaosAction::Stall, 0),
            req(ChaosAction::RejectHeartbeats, 4_000_000),
            req(ChaosAction::Unspecified, 10),
            ChaosRequest {
                action: 99,
                ..req(ChaosAction::Stall, 10)
            },
        ] {
            let e = chaos.apply(&bad).expect_err("invalid");
            assert_eq!(e.code(), tonic::Code::InvalidArgument);
        }
        chaos
            .apply(&req(ChaosAction::RejectHeartbeats, 1000))
            .expect("ok");
        assert!(chaos.rejecting_heartbeats(Instant::now()));
    }
}
