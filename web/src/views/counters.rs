//! The client's counters: heartbeats, reconnects, resumes, events, gaps, too_many_pings.

use crate::dom::{self, set_text};
use crate::fmt;
use keepalive_client::Stats;
use web_sys::Element;

/// The counters' cells.
pub struct CountersView {
    sent: Element,
    answered: Element,
    missed: Element,
    reconnects: Element,
    resumes: Element,
    events: Element,
    dups: Element,
    gaps: Element,
    gaps_row: Element,
    too_many_pings: Element,
}

impl CountersView {
    /// Finds the cells.
    pub fn find() -> Self {
        CountersView {
            sent: dom::by_id("c-hb-sent"),
            answered: dom::by_id("c-hb-answered"),
            missed: dom::by_id("c-hb-missed"),
            reconnects: dom::by_id("c-reconnects"),
            resumes: dom::by_id("c-resumes"),
            events: dom::by_id("c-events"),
            dups: dom::by_id("c-dups"),
            gaps: dom::by_id("c-gaps"),
            gaps_row: dom::by_id("c-gaps-row"),
            too_many_pings: dom::by_id("c-tmp"),
        }
    }

    /// Shows `total`: the counters of every client the page had (settings make new ones).
    pub fn render(&self, total: &Stats) {
        let c = &total.core;
        for (el, n) in [
            (&self.sent, c.heartbeats_sent),
            (&self.answered, c.heartbeats_answered),
            (&self.missed, c.heartbeats_missed),
            (&self.reconnects, c.reconnects),
            (&self.resumes, c.resumes),
            (&self.events, c.events_delivered),
            (&self.dups, c.duplicates_dropped),
            (&self.too_many_pings, c.too_many_pings),
        ] {
            set_text(el, &fmt::count(n));
        }
        let gaps = if c.events_missed > 0 {
            format!("{} ({} events)", c.gaps, c.events_missed)
        } else {
            fmt::count(c.gaps)
        };
        set_text(&self.gaps, &gaps);
        self.gaps_row
            .set_class_name(if c.gaps > 0 { "bad" } else { "" });
    }
}
