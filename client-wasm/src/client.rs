//! The Rust API: [`Client`], a channel to the keepalive server with keepalive emulation,
//! reconnect, a resumable feed subscription and publishing with retries.
//!
//! ```ignore
//! let client = Client::new(Options::new("http://127.0.0.1:8080"));
//! client.on_state(|s| log(&format!("{}", s.state)));
//! client.subscribe(|event| show(event.sequence, &event.text));
//! let sent = client.publish("hello").await?;
//! ```

use crate::driver::{self, Inner, Opener, ResumeRequest, StateInfo, Stats, pump};
use crate::resumable::ResumableMessage;
use crate::status::{CallError, classify, pushback_ms};
use crate::time;
use demo_proto::v1::{
    ChaosAction, ChaosRequest, ChaosResponse, PublishRequest, PublishResponse, StatsRequest,
    StatsResponse, SubscribeRequest, SubscribeResponse,
};
use keepalive::client::{
    ClientConfig, ClientEvent, Failure, RetryDecision, RetryPolicy, RetryState, StreamId,
};
use keepalive_proto::v1::ResumeRequest as WireResume;
use std::cell::RefCell;
use std::rc::Rc;
use tonic::Status;

/// How to reach the server and which knobs to use.
#[derive(Clone, Debug, PartialEq)]
pub struct Options {
    /// The server's base URL, e.g. `http://127.0.0.1:8080` (empty: the page's origin).
    pub url: String,
    /// Keepalive, backoff and stream-silence knobs.
    pub keepalive: ClientConfig,
    /// Retry policy of publish (idempotent, so it is declared retryable).
    pub publish_retry: RetryPolicy,
}

impl Options {
    /// Defaults (grpc-go's keepalive meanings, gRPC's backoff) for `url`.
    pub fn new(url: impl Into<String>) -> Self {
        Options {
            url: url.into(),
            keepalive: ClientConfig::default(),
            publish_retry: RetryPolicy::default(),
        }
    }
}

/// A keepalive channel to the server. Cheap to clone; all clones are the same channel.
#[derive(Clone)]
pub struct Client {
    inner: Rc<RefCell<Inner>>,
    retry: RetryPolicy,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client")
            .field("state", &self.state().state)
            .finish()
    }
}

impl Client {
    /// A channel in IDLE; it connects on [`connect`](Self::connect) or the first
    /// subscription.
    pub fn new(options: Options) -> Self {
        let url = if options.url.is_empty() {
            web_sys::window()
                .and_then(|w| w.location().origin().ok())
                .unwrap_or_default()
        } else {
            options.url.trim_end_matches('/').to_owned()
        };
        let inner = Rc::new(RefCell::new(Inner::new(&url, options.keepalive)));
        driver::start_timer_loop(&inner);
        crate::dom::listen(&inner);
        Client {
            inner,
            retry: options.publish_retry,
        }
    }

    /// Starts connecting (a probe heartbeat when there is no subscription).
    pub fn connect(&self) {
        let now = time::now();
        self.inner.borrow_mut().core.connect(now);
        pump(&self.inner);
    }

    /// The connectivity state and its details.
    pub fn state(&self) -> StateInfo {
        self.inner.borrow().state_info()
    }

    /// Counters.
    pub fn stats(&self) -> Stats {
        self.inner.borrow().stats()
    }

    /// The knobs in force.
    pub fn config(&self) -> ClientConfig {
        *self.inner.borrow().core.config()
    }

    /// Calls `f` on every state change.
    pub fn on_state(&self, f: impl Fn(&StateInfo) + 'static) {
        self.inner.borrow_mut().listeners.state.push(Rc::new(f));
    }

    /// Calls `f` with every event of the keepalive machinery (state changes, losses, gaps,
    /// resumes, go-aways, heartbeat round trips, too_many_pings), with the wall-clock time.
    pub fn on_timeline(&self, f: impl Fn(f64, &ClientEvent) + 'static) {
        self.inner.borrow_mut().listeners.timeline.push(Rc::new(f));
    }

    /// Calls `f` whenever the counters change.
    pub fn on_stats(&self, f: impl Fn(&Stats) + 'static) {
        self.inner.borrow_mut().listeners.stats.push(Rc::new(f));
    }

    /// Subscribes to the server's event feed from now on; `on_event` gets every event
    /// exactly once, in order, across reconnects (a gap is reported on the timeline).
    pub fn subscribe(&self, on_event: impl Fn(demo_proto::v1::Event) + 'static) -> StreamId {
        let opener: Opener<SubscribeResponse> = Rc::new(|mut api, req: ResumeRequest| {
            Box::pin(async move {
                let request = SubscribeRequest {
                    resume: Some(WireResume {
                        session_id: req.session_id,
                        after_sequence: req.after,
                        resume_token: req.token,
                        log_id: req.log_id,
                    }),
                };
                Ok(api.feed.subscribe(request).await?.into_inner())
            })
        });
        self.subscribe_with(opener, on_event)
    }

    /// Keeps any resumable server stream open: `opener` makes one call (with the session
    /// and resume point it is given), `on_event` gets each event exactly once.
    pub fn subscribe_with<M: ResumableMessage>(
        &self,
        opener: Opener<M>,
        on_event: impl Fn(M::Event) + 'static,
    ) -> StreamId {
        let id = self
            .inner
            .borrow_mut()
            .add_stream(opener, Rc::new(on_event));
        pump(&self.inner);
        id
    }

    /// Stops keeping `stream` open.
    pub fn unsubscribe(&self, stream: StreamId) {
        self.inner.borrow_mut().core.remove_stream(stream);
        pump(&self.inner);
    }

    /// Publishes `text` to the feed. Retried per the retry policy (proposal A6) with one
    /// idempotency key, so a retry never publishes twice.
    pub async fn publish(&self, text: &str) -> Result<PublishResponse, Status> {
        let weak = Rc::downgrade(&self.inner);
        let key = time::random_hex(16);
        let mut retry = RetryState::new(self.retry.clone());
        loop {
            let session = driver::ensure_session(&weak)
                .await
                .map(|s| s.id)
                .unwrap_or_default();
            let mut api = self.inner.borrow().api.clone();
            let request = PublishRequest {
                session_id: session,
                idempotency_key: key.clone(),
                text: text.to_owned(),
            };
            let status = match api.feed.publish(request).await {
                Ok(r) => {
                    driver::with_core(&weak, |c, now| c.on_call(now, true));
                    return Ok(r.into_inner());
                }
                Err(status) => status,
            };
            let failure = match classify(&status) {
                CallError::Failed => {
                    driver::with_core(&weak, |c, now| c.on_call(now, false));
                    Failure {
                        code: keepalive::client::retry::UNAVAILABLE,
                        headers_received: false,
                        pushback_ms: pushback_ms(&status),
                    }
                }
                CallError::Answered(code) => {
                    driver::with_core(&weak, |c, now| c.on_call(now, true));
                    Failure {
                        code: code as i32,
                        headers_received: false,
                        pushback_ms: pushback_ms(&status),
                    }
                }
            };
            match retry.on_failure(failure, js_sys::Math::random()) {
                RetryDecision::GiveUp => return Err(status),
                RetryDecision::Retry(delay) => {
                    tracing::info!(
                        "publish failed ({status}); retry {} in {delay:?}",
                        retry.attempts()
                    );
                    gloo_timers::future::sleep(delay).await;
                }
            }
        }
    }

    /// The server's counters.
    pub async fn server_stats(&self) -> Result<StatsResponse, Status> {
        let mut api = self.inner.borrow().api.clone();
        Ok(api.feed.stats(StatsRequest {}).await?.into_inner())
    }

    /// Asks the server (run with `--chaos`) to inject a fault.
    pub async fn chaos(
        &self,
        token: &str,
        action: ChaosAction,
        duration_ms: u64,
    ) -> Result<ChaosResponse, Status> {
        let mut api = self.inner.borrow().api.clone();
        let request = ChaosRequest {
            token: token.to_owned(),
            action: action as i32,
            duration_ms,
        };
        Ok(api.feed.chaos(request).await?.into_inner())
    }

    /// Closes the channel: every call is aborted, listeners are removed.
    pub fn close(&self) {
        let now = time::now();
        {
            let mut inner = self.inner.borrow_mut();
            inner.core.close(now);
        }
        pump(&self.inner);
        let mut inner = self.inner.borrow_mut();
        inner.closed = true;
        for l in inner.dom.drain(..) {
            l.remove();
        }
    }
}
