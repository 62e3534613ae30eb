//! The connectivity state: the pill in the header (colour, name, time in state, and in
//! TRANSIENT_FAILURE the attempt number and a countdown) and the connection card.

use crate::dom::{self, set_attr, set_text};
use crate::fmt;
use keepalive_client::{ConnectivityState, StateInfo};
use std::time::Duration;
use web_sys::{Element, HtmlElement};

/// What the status shows, at one instant.
#[derive(Debug, Clone)]
pub struct StatusModel {
    /// The state and its details (fresh from the client).
    pub info: StateInfo,
    /// Wall clock now, ms.
    pub now_ms: f64,
    /// How many times the state left READY.
    pub lost: u32,
    /// The keepalive Time in force (doubled by too_many_pings).
    pub keepalive_time: Option<Duration>,
    /// `performance.now()` when the page was first READY.
    pub ready_page_ms: Option<f64>,
    /// Which server (replica) serves the stream and answered the last heartbeat.
    pub servers: keepalive_client::Servers,
}

/// The state's elements.
pub struct StatusView {
    pill: HtmlElement,
    name: Element,
    since: Element,
    retry: Element,
    card_state: Element,
    card_for: Element,
    card_retry: Element,
    card_time: Element,
    card_ready: Element,
    card_server: Element,
}

impl StatusView {
    /// Finds the elements.
    pub fn find() -> Self {
        StatusView {
            pill: dom::by_id("state"),
            name: dom::by_id("state-name"),
            since: dom::by_id("state-for"),
            retry: dom::by_id("state-retry"),
            card_state: dom::by_id("conn-state"),
            card_for: dom::by_id("conn-for"),
            card_retry: dom::by_id("conn-retry"),
            card_time: dom::by_id("conn-time"),
            card_ready: dom::by_id("conn-ready"),
            card_server: dom::by_id("conn-server"),
        }
    }

    /// Shows `m`.
    pub fn render(&self, m: &StatusModel) {
        let state = m.info.state;
        let name = state.as_str();
        let class = format!("state {}", name.to_ascii_lowercase());
        if self.pill.class_name() != class {
            self.pill.set_class_name(&class);
        }
        set_attr(&self.pill, "data-state", name);
        set_attr(&self.pill, "data-lost", &m.lost.to_string());
        let in_state = fmt::elapsed_ms(m.now_ms - m.info.since_ms);
        set_text(&self.name, name);
        set_text(&self.since, &format!("for {in_state}"));
        set_text(&self.card_state, name);
        set_text(&self.card_for, &in_state);

        let retry = match (state, m.info.retry_in_ms) {
            (ConnectivityState::TransientFailure, Some(ms)) => {
                format!("attempt {} in {}", m.info.failures + 1, fmt::elapsed_ms(ms))
            }
            (ConnectivityState::TransientFailure, None) => {
                format!("attempt {}", m.info.failures + 1)
            }
            (ConnectivityState::Connecting, _) if m.info.failures > 0 => {
                format!("attempt {} in progress", m.info.failures + 1)
            }
            _ => String::new(),
        };
        set_text(&self.retry, &retry);
        set_text(
            &self.card_retry,
            if retry.is_empty() { "–" } else { &retry },
        );
        let time = m
            .keepalive_time
            .map_or_else(|| "–".to_owned(), fmt::setting);
        set_text(&self.card_time, &time);
        let ready = m
            .ready_page_ms
            .map_or_else(|| "–".to_owned(), |ms| format!("{} ms", ms.round() as u64));
        set_text(&self.card_ready, &ready);
        set_text(&self.card_server, &servers_text(&m.servers));
    }
}

/// `replica-2` when one server answers both, `stream replica-1 · heartbeats replica-3`
/// behind a load balancer that spreads the calls, `–` before any answer.
pub fn servers_text(s: &keepalive_client::Servers) -> String {
    match (&s.stream, &s.heartbeat) {
        (None, None) => "–".to_owned(),
        (Some(a), Some(b)) if a == b => a.clone(),
        (Some(a), None) => format!("stream {a}"),
        (None, Some(b)) => format!("heartbeats {b}"),
        (Some(a), Some(b)) => format!("stream {a} · heartbeats {b}"),
    }
}
