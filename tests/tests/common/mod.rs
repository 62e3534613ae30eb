//! Helpers shared by the `service` and `chaos` tests: native tonic clients of
//! `keepalive.v1.Session` and the demo's `keepalive.demo.v1.Feed` against the real server
//! process, and short-hands for their calls.

#![allow(dead_code)] // each test file uses a different subset

pub mod web;

use demo_proto::v1::feed_client::FeedClient;
use keepalive_proto::v1::session_client::SessionClient;
use pb::subscribe_response::Kind;
use pb::{
    HeartbeatRequest, OpenSessionRequest, OpenSessionResponse, PublishRequest, PublishResponse,
    ResumeRequest, SubscribeRequest, SubscribeResponse,
};
use std::time::Duration;
use testkit::ServerProcess;
use tonic::transport::Channel;
use tonic::{IntoRequest, Response, Status, Streaming};

/// Both protocols' messages in one place: `keepalive.v1` (sessions, resume frames) and the
/// demo's `keepalive.demo.v1` (the feed).
pub mod pb {
    pub use demo_proto::v1::*;
    pub use keepalive_proto::v1::*;
}

/// The session client and the feed client over one tonic channel (one connection).
#[derive(Clone, Debug)]
pub struct Client {
    /// `keepalive.v1.Session`.
    pub session: SessionClient<Channel>,
    /// `keepalive.demo.v1.Feed`.
    pub feed: FeedClient<Channel>,
}

impl Client {
    /// Both clients over `channel`.
    pub fn new(channel: Channel) -> Self {
        Client {
            session: SessionClient::new(channel.clone()),
            feed: FeedClient::new(channel),
        }
    }

    /// `Session/OpenSession`.
    pub async fn open_session(
        &mut self,
        req: impl IntoRequest<OpenSessionRequest>,
    ) -> Result<Response<OpenSessionResponse>, Status> {
        self.session.open_session(req).await
    }

    /// `Session/Heartbeat`.
    pub async fn heartbeat(
        &mut self,
        req: impl IntoRequest<HeartbeatRequest>,
    ) -> Result<Response<pb::HeartbeatResponse>, Status> {
        self.session.heartbeat(req).await
    }

    /// `Feed/Subscribe`.
    pub async fn subscribe(
        &mut self,
        req: impl IntoRequest<SubscribeRequest>,
    ) -> Result<Response<Streaming<SubscribeResponse>>, Status> {
        self.feed.subscribe(req).await
    }

    /// `Feed/Publish`.
    pub async fn publish(
        &mut self,
        req: impl IntoRequest<PublishRequest>,
    ) -> Result<Response<PublishResponse>, Status> {
        self.feed.publish(req).await
    }

    /// `Feed/Stats`.
    pub async fn stats(
        &mut self,
        req: impl IntoRequest<pb::StatsRequest>,
    ) -> Result<Response<pb::StatsResponse>, Status> {
        self.feed.stats(req).await
    }

    /// `Feed/Chaos`.
    pub async fn chaos(
        &mut self,
        req: impl IntoRequest<pb::ChaosRequest>,
    ) -> Result<Response<pb::ChaosResponse>, Status> {
        self.feed.chaos(req).await
    }
}

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
    Client::new(channel)
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
        resume: Some(ResumeRequest {
            session_id: session.to_string(),
            after_sequence: after,
            resume_token: token.to_string(),
            log_id: log_id.to_string(),
            ..ResumeRequest::default()
        }),
    }
}

/// The feed's log id, from the Welcome of a subscription from the head (ended at once).
pub async fn log_id(c: &mut Client, session: &str) -> String {
    let mut stream = subscribe(c, sub(session, None, "", "")).await;
    match next(&mut stream, 5.0).await {
        Kind::Welcome(w) => w.log_id,
        other => panic!("expected a Welcome, got {other:?}"),
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
