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
//! | GOAWAY | every subscription ends with GoAway{reason: "chaos"}; every connection gets the graceful GOAWAY with debug data `chaos` |
//! | RESTART | ~50 ms after the answer, the server stops as on SIGTERM (GoAway, graceful GOAWAY, drain) and exits with [`crate::RESTART_EXIT_CODE`]; `cargo xtask demo` starts it again |
//!
//! The 50 ms delay lets the Chaos answer itself leave before its own connection is hit.

use super::ids;
use super::settings::Secret;
use crate::faults::Faults;
use proto::v1::{ChaosAction, ChaosRequest};
use std::sync::Arc;
use std::time::Duration;
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

/// Carries out the action; returns what it did, in words.
pub fn apply(faults: &Arc<Faults>, req: &ChaosRequest) -> Result<String, Status> {
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
            faults.reject_heartbeats(d);
            format!("rejecting heartbeats for {d:?}")
        }
        ChaosAction::Goaway => {
            faults.goaway();
            "sending GoAway to every subscription and connection".to_string()
        }
        ChaosAction::Restart => {
            let faults = faults.clone();
            tokio::spawn(async move {
                tokio::time::sleep(START_DELAY).await;
                faults.request_restart();
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
        let faults = Arc::new(Faults::default());
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
            let e = apply(&faults, &bad).expect_err("invalid");
            assert_eq!(e.code(), tonic::Code::InvalidArgument);
        }
        apply(&faults, &req(ChaosAction::RejectHeartbeats, 1000)).expect("ok");
        assert!(faults.rejecting_heartbeats(tokio::time::Instant::now()));
    }
}
