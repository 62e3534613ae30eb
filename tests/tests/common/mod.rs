//! Helpers shared by the `service` and `chaos` tests: a native tonic client of
//! `keepalive.v1.Keepalive` against the real server process, and short-hands for its calls.

#![allow(dead_code)] // each test file uses a different subset

pub mod web;

use proto::v1::keepalive_client::KeepaliveClient;
use proto::v1::subscribe_response::Kind;
use proto::v1::{
    HeartbeatRequest, OpenSessionRequest, OpenSessionResponse, PublishRequest, PublishResponse,
    SubscribeRequest, SubscribeResponse,
};
use std::time::Duration;
use tests::server::ServerProcess;
use tonic::Streaming;
use tonic::transport::Channel;

/// The generated client over a tonic channel.
pub type Client = KeepaliveClient<Channel>;

/// `s` seconds.
pub fn secs(s: f64) -> Duration {
    Duration::from_secs_f64(s)
}

/// A client on a new connection to `srv`.
pub async fn client(srv: &ServerProcess) -> Client {
    let channel = tonic::transport::Endpoint::from_shared(srv.url())
        .expect("url")
        .connect()
        .await
        .expect("connect");
    KeepaliveClient::new(channel)
}

/// Opens a session.
pub async fn open(c: &mut Client) -> OpenSessionResponse {
    c.open_session(OpenSessionRequest {})
        .await
        .expect("OpenSession")
        .into_inner()
}

/// A heartbeat of `session` with sequence `n`.
pub async fn heartbeat(c: &mut Client, session: &str, n: u64) -> Result<(), tonic::Status> {
    c.heartbeat(HeartbeatRequest {
        session_id: session.to_string(),
        sequence: n,
        client_send_time_ms: n as f64,
    })
    .await
    .map(|_| ())
}

/// Publishes `text` with idempotency key `key`.
pub async fn publish(c: &mut Client, session: &str, key: &str, text: &str) -> PublishResponse {
    c.publish(PublishRequest {
        session_id: session.to_string(),
        idempotency_key: key.to_string(),
        text: text.to_string(),
    })
    .await
    .expect("Publish")
    .into_inner()
}

/// Publishes `n` events with keys `k1`..`kn`.
pub async fn publish_n(c: &mut Client, session: &str, n: u64) {
    for i in 1..=n {
        publish(c, session, &format!("k{i}"), &format!("event {i}")).await;
    }
}

/// A Subscribe request.
pub fn sub(session: &str, after: Option<u64>, token: &str, log_id: &str) -> SubscribeRequest {
    SubscribeRequest {
        session_id: session.to_string(),
        after_sequence: after,
        resume_token: token.to_string(),
        log_id: log_id.to_string(),
    }
}

/// Starts a subscription.
pub async fn subscribe(c: &mut Client, req: SubscribeRequest) -> Streaming<SubscribeResponse> {
    c.subscribe(req).await.expect("Subscribe").into_inner()
}

/// The next message of `s` within `timeout`; panics on timeout, error or end.
pub async fn next(s: &mut Streaming<SubscribeResponse>, timeout: f64) -> Kind {
    match tokio::time::timeout(secs(timeout), s.message()).await {
        Ok(Ok(Some(SubscribeResponse { kind: Some(kind) }))) => kind,
        Ok(other) => panic!("expected a message, got {other:?}"),
        Err(_) => panic!("no message within {timeout}s"),
    }
}

/// The next message that is not a StreamHeartbeat.
pub async fn next_non_heartbeat(s: &mut Streaming<SubscribeResponse>, timeout: f64) -> Kind {
    loop {
        match next(s, timeout).await {
            Kind::Heartbeat(_) => continue,
            other => return other,
        }
    }
}

/// The sequence of an Event message; panics on anything else.
pub fn event_seq(kind: &Kind) -> u64 {
    match kind {
        Kind::Event(e) => e.sequence,
        other => panic!("expected an Event, got {other:?}"),
    }
}

/// Asserts the stream ends cleanly (status OK) within `timeout`.
pub async fn expect_end(s: &mut Streaming<SubscribeResponse>, timeout: f64) {
    match tokio::time::timeout(secs(timeout), s.message()).await {
        Ok(Ok(None)) => {}
        other => panic!("expected the stream to end OK, got {other:?}"),
    }
}
