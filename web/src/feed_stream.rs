//! The feed subscription the page keeps open through `Client::subscribe_with`.
//!
//! Two things the plain `Client::subscribe` does not give the page:
//!
//! - **The resume point across clients.** Applying new settings closes the client and
//!   makes a new one, whose subscription would start "from now on". The opener here asks
//!   for the events after the last one the page showed (and in the same log), so the feed
//!   goes on without a hole. Once the new client has delivered an event, its own resume
//!   point takes over.
//! - **The reason of a GoAway** (`max_stream_age`, `chaos`, `shutdown`), for the timeline:
//!   the messages are decoded as [`Watched`], which is `SubscribeResponse` with a look at
//!   the Welcome (its `log_id`) and the GoAway (its reason) on the way to the client.
//!
//! The page has one feed, so what is seen is kept per thread (the page's only thread).

use client_wasm::{Frame, ResumableMessage, ResumeRequest};
use demo_proto::v1::subscribe_response::Kind;
use demo_proto::v1::{Event, SubscribeRequest, SubscribeResponse};
use keepalive_proto::v1::ResumeRequest as WireResume;
use std::cell::RefCell;
use std::future::Future;
use std::pin::Pin;
use std::rc::Rc;
use tonic::{Status, Streaming};

/// The path of the Subscribe call.
const SUBSCRIBE: &str = "/keepalive.demo.v1.Feed/Subscribe";

/// A `SubscribeResponse`, decoded the same way (same fields, same tags), that records the
/// Welcome's log and the GoAway's reason when the client reads it.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Watched {
    /// The message.
    #[prost(
        oneof = "demo_proto::v1::subscribe_response::Kind",
        tags = "1, 2, 3, 4, 5"
    )]
    pub kind: Option<Kind>,
}

#[derive(Debug, Default)]
struct Seen {
    /// The last event the page showed, over every client so far.
    delivered: Option<u64>,
    /// The log those sequences belong to (from the last Welcome).
    log_id: String,
    /// The reason of the last GoAway, until the timeline takes it.
    go_away_reason: Option<String>,
}

thread_local! {
    static SEEN: RefCell<Seen> = RefCell::new(Seen::default());
}

impl ResumableMessage for Watched {
    type Event = Event;

    fn from_frame(frame: Frame<Event>) -> Self {
        Watched {
            kind: SubscribeResponse::from_frame(frame).kind,
        }
    }

    fn into_frame(self) -> Option<Frame<Event>> {
        match &self.kind {
            Some(Kind::Welcome(w)) if !w.log_id.is_empty() => {
                SEEN.with_borrow_mut(|s| s.log_id.clone_from(&w.log_id));
            }
            Some(Kind::GoAway(g)) => {
                SEEN.with_borrow_mut(|s| s.go_away_reason = Some(g.reason.clone()));
            }
            _ => {}
        }
        SubscribeResponse { kind: self.kind }.into_frame()
    }
}

/// The page showed event `seq`.
pub fn delivered(seq: u64) {
    SEEN.with_borrow_mut(|s| s.delivered = Some(seq));
}

/// The last event the page showed.
pub fn last_delivered() -> Option<u64> {
    SEEN.with_borrow(|s| s.delivered)
}

/// The reason of the last GoAway, once.
pub fn take_go_away_reason() -> Option<String> {
    SEEN.with_borrow_mut(|s| s.go_away_reason.take())
}

type Opened = Pin<Box<dyn Future<Output = Result<Streaming<Watched>, Status>>>>;

/// The opener for `Client::subscribe_with`: one Subscribe call to `url` (the page's
/// origin), resuming where the page left off when the client itself has nothing yet.
pub fn opener(url: String) -> Rc<dyn Fn(client_wasm::Api, ResumeRequest) -> Opened> {
    Rc::new(move |_api, req: ResumeRequest| {
        let (after, log_id) = match req.after {
            Some(after) => (Some(after), req.log_id),
            None => SEEN.with_borrow(|s| (s.delivered, s.log_id.clone())),
        };
        let request = SubscribeRequest {
            resume: Some(WireResume {
                session_id: req.session_id,
                after_sequence: after,
                resume_token: req.token,
                log_id,
            }),
        };
        let url = url.clone();
        Box::pin(async move {
            let mut grpc = tonic::client::Grpc::new(tonic_web_wasm_client::Client::new(url));
            grpc.ready()
                .await
                .map_err(|e| Status::unknown(format!("transport not ready: {e}")))?;
            let codec = tonic_prost::ProstCodec::<SubscribeRequest, Watched>::default();
            let path = http::uri::PathAndQuery::from_static(SUBSCRIBE);
            let response = grpc
                .server_streaming(tonic::Request::new(request), path, codec)
                .await?;
            Ok(response.into_inner())
        })
    })
}
