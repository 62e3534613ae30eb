//! The timeline: connection events with their times, newest first.

use crate::dom;
use crate::fmt;
use crate::timeline::Entry;
use web_sys::Element;

/// Entries kept on the page.
const CAP: u32 = 300;

/// The timeline's list.
pub struct TimelineView {
    list: Element,
}

impl TimelineView {
    /// Finds the list.
    pub fn find() -> Self {
        TimelineView {
            list: dom::by_id("timeline-list"),
        }
    }

    /// Adds `entry`, which happened at `at_ms` (wall clock), at the top.
    pub fn push(&self, entry: &Entry, at_ms: f64, utc_offset_min: f64) {
        let li = dom::el("li", entry.tone.class(), "");
        let _ = li.append_child(&dom::el(
            "span",
            "time",
            &fmt::clock_tenths(at_ms, utc_offset_min),
        ));
        let _ = li.append_child(&dom::el("span", "text", &entry.text));
        dom::prepend_capped(&self.list, &li, CAP);
    }
}
