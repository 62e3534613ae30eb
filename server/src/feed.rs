//! `keepalive.demo.v1.Feed`: the demo's feed, a user of the library like any other.
//!
//! - **Subscribe** is a resumable stream: one call of
//!   [`BrowserKeepalive::resumable`](keepalive_server::browser::BrowserKeepalive::resumable)
//!   over the feed's log, answering the demo's own `SubscribeResponse`.
//! - **Publish** appends idempotently ([`crate::publish`]).
//! - **Stats** reports every counter of the server ([`crate::counters`]).
//! - **Chaos** injects faults ([`crate::chaos`]), off unless `--chaos`.
//!
//! Errors (code, message), besides those of the resumable stream:
//! - bad publish: INVALID_ARGUMENT (the message says the limit);
//! - chaos off / wrong token: PERMISSION_DENIED `chaos is disabled` / `wrong chaos token`.

use crate::chaos::{self, Chaos};
use crate::counters::{Counters, DemoStats};
use crate::publish;
use crate::settings::Secret;
use demo_proto::v1::feed_server::{Feed, FeedServer};
use demo_proto::v1::{
    ChaosRequest, ChaosResponse, Event, PublishRequest, PublishResponse, StatsRequest,
    StatsResponse, SubscribeRequest, SubscribeResponse,
};
use keepalive_server::browser::{BrowserKeepalive, ResumableStream, StreamOptions};
use keepalive_server::log::EventLog;
use std::sync::Arc;
use tonic::{Request, Response, Status};

/// The feed service.
#[derive(Debug, Clone)]
pub struct FeedService {
    /// Sessions and resumable streams.
    pub browser: BrowserKeepalive,
    /// The feed's log.
    pub log: Arc<dyn EventLog<Event>>,
    /// Every counter, for Stats.
    pub counters: Counters,
    /// The demo's counters.
    pub stats: Arc<DemoStats>,
    /// Fault injection; `None`: the Chaos call answers `chaos is disabled`.
    pub chaos: Option<(Arc<Chaos>, Secret)>,
}

impl FeedService {
    /// The tonic service.
    pub fn into_server(self) -> FeedServer<Self> {
        FeedServer::new(self)
    }
}

#[tonic::async_trait]
impl Feed for FeedService {
    type SubscribeStream = ResumableStream<SubscribeResponse>;

    async fn subscribe(
        &self,
        request: Request<SubscribeRequest>,
    ) -> Result<Response<Self::SubscribeStream>, Status> {
        let resume = request.into_inner().resume.unwrap_or_default();
        let stream = self
            .browser
            .resumable(&self.log, resume, StreamOptions::default())?;
        Ok(Response::new(stream))
    }

    async fn publish(
        &self,
        request: Request<PublishRequest>,
    ) -> Result<Response<PublishResponse>, Status> {
        let (event, key) = publish::validate(request.into_inner(), &self.browser)?;
        let appended = self.log.append(event, Some(key)).await.map_err(|e| {
            tracing::error!(error = %e, "publish failed");
            Status::unavailable(e.to_string())
        })?;
        DemoStats::inc(if appended.duplicate {
            &self.stats.publish_duplicates
        } else {
            &self.stats.events_published
        });
        Ok(Response::new(PublishResponse {
            sequence: appended.sequence,
            duplicate: appended.duplicate,
        }))
    }

    async fn stats(&self, _: Request<StatsRequest>) -> Result<Response<StatsResponse>, Status> {
        Ok(Response::new(self.counters.snapshot()))
    }

    async fn chaos(
        &self,
        request: Request<ChaosRequest>,
    ) -> Result<Response<ChaosResponse>, Status> {
        let req = request.into_inner();
        let (chaos, token) = match &self.chaos {
            Some((chaos, token)) => (chaos, Some(token)),
            None => return Err(Status::permission_denied("chaos is disabled")),
        };
        chaos::authorize(true, token, &req.token)?;
        let message = chaos.apply(&req)?;
        DemoStats::inc(&self.stats.chaos_actions);
        Ok(Response::new(ChaosResponse { message }))
    }
}
