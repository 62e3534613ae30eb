//! The heartbeat round-trip sparkline (last 2 minutes) with p50, p99 and the last value.

use crate::dom::{self, set_attr, set_text};
use crate::fmt;
use crate::rtt::{RttWindow, scale_top};
use web_sys::Element;

/// The sparkline's box, in SVG user units (stretched to the card's width).
const WIDTH: f64 = 300.0;
const HEIGHT: f64 = 64.0;

/// The sparkline's elements.
pub struct RttView {
    line: Element,
    p50_line: Element,
    title: Element,
    top: Element,
    last: Element,
    p50: Element,
    p99: Element,
    count: Element,
}

impl RttView {
    /// Finds the elements.
    pub fn find() -> Self {
        RttView {
            line: dom::by_id("rtt-line"),
            p50_line: dom::by_id("rtt-p50"),
            title: dom::by_id("rtt-title"),
            top: dom::by_id("rtt-top"),
            last: dom::by_id("rtt-last"),
            p50: dom::by_id("rtt-p50-value"),
            p99: dom::by_id("rtt-p99-value"),
            count: dom::by_id("rtt-count"),
        }
    }

    /// Shows the window as of `now_ms`.
    pub fn render(&self, w: &RttWindow, now_ms: f64) {
        let dash = || "–".to_owned();
        let p50 = w.percentile(50.0);
        let p99 = w.percentile(99.0);
        let top = scale_top(w.max().unwrap_or(1.0));
        set_attr(&self.line, "points", &w.points(now_ms, WIDTH, HEIGHT, top));
        let y = p50.map_or(HEIGHT, |p| HEIGHT - (p / top).clamp(0.0, 1.0) * HEIGHT);
        let y = format!("{y:.1}");
        set_attr(&self.p50_line, "y1", &y);
        set_attr(&self.p50_line, "y2", &y);
        set_text(&self.top, &format!("scale {}", fmt::rtt_ms(top)));
        set_text(&self.last, &w.last().map_or_else(dash, fmt::rtt_ms));
        set_text(&self.p50, &p50.map_or_else(dash, fmt::rtt_ms));
        set_text(&self.p99, &p99.map_or_else(dash, fmt::rtt_ms));
        set_text(&self.count, &w.len().to_string());
        let title = match (p50, p99) {
            (Some(p50), Some(p99)) => format!(
                "Heartbeat round-trip times, last 2 minutes: {} samples, p50 {}, p99 {}",
                w.len(),
                fmt::rtt_ms(p50),
                fmt::rtt_ms(p99)
            ),
            _ => "Heartbeat round-trip times: no samples in the last 2 minutes".to_owned(),
        };
        set_text(&self.title, &title);
    }
}
