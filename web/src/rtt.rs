//! Heartbeat round-trip times of the last two minutes: percentiles and the sparkline.

use std::collections::VecDeque;

/// How far back the sparkline and the percentiles look.
pub const WINDOW_MS: f64 = 120_000.0;

/// Round trips measured in the last [`WINDOW_MS`], oldest first.
#[derive(Debug, Default, Clone)]
pub struct RttWindow {
    /// `(wall-clock ms when measured, round trip in ms)`.
    samples: VecDeque<(f64, f64)>,
}

impl RttWindow {
    /// Adds a round trip measured at `at_ms`, forgetting what left the window.
    pub fn push(&mut self, at_ms: f64, rtt_ms: f64) {
        self.samples.push_back((at_ms, rtt_ms));
        self.prune(at_ms);
    }

    /// Forgets samples older than the window at `now_ms`.
    pub fn prune(&mut self, now_ms: f64) {
        while self
            .samples
            .front()
            .is_some_and(|(at, _)| *at < now_ms - WINDOW_MS)
        {
            self.samples.pop_front();
        }
    }

    /// How many samples the window holds.
    pub fn len(&self) -> usize {
        self.samples.len()
    }

    /// Whether the window is empty.
    pub fn is_empty(&self) -> bool {
        self.samples.is_empty()
    }

    /// The most recent round trip.
    pub fn last(&self) -> Option<f64> {
        self.samples.back().map(|(_, rtt)| *rtt)
    }

    /// The `p`-th percentile (nearest rank, `p` in 0..=100) of the window.
    pub fn percentile(&self, p: f64) -> Option<f64> {
        let mut values: Vec<f64> = self.samples.iter().map(|(_, rtt)| *rtt).collect();
        if values.is_empty() {
            return None;
        }
        values.sort_by(f64::total_cmp);
        let rank = ((p / 100.0) * values.len() as f64).ceil() as usize;
        Some(values[rank.clamp(1, values.len()) - 1])
    }

    /// The largest round trip in the window.
    pub fn max(&self) -> Option<f64> {
        self.samples.iter().map(|(_, rtt)| *rtt).reduce(f64::max)
    }

    /// SVG `points` for a polyline in a `width` × `height` box: time left to right over
    /// the window ending at `now_ms`, round trip bottom to top up to `top_ms`.
    pub fn points(&self, now_ms: f64, width: f64, height: f64, top_ms: f64) -> String {
        let start = now_ms - WINDOW_MS;
        let top = top_ms.max(f64::MIN_POSITIVE);
        let mut out = String::new();
        for (at, rtt) in &self.samples {
            let x = ((at - start) / WINDOW_MS * width).clamp(0.0, width);
            let y = height - (rtt / top).clamp(0.0, 1.0) * height;
            if !out.is_empty() {
                out.push(' ');
            }
            out.push_str(&format!("{x:.1},{y:.1}"));
        }
        out
    }
}

/// A round upper bound for the sparkline's scale: 1, 2 or 5 × 10^n ms, at least `max_ms`.
pub fn scale_top(max_ms: f64) -> f64 {
    let mut top = 1.0;
    loop {
        for step in [1.0, 2.0, 5.0] {
            if top * step >= max_ms {
                return top * step;
            }
        }
        top *= 10.0;
        if top > 1e9 {
            return top;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_by_nearest_rank() {
        let mut w = RttWindow::default();
        assert_eq!(w.percentile(50.0), None);
        for (i, rtt) in [5.0, 1.0, 3.0, 2.0, 4.0].into_iter().enumerate() {
            w.push(i as f64, rtt);
        }
        assert_eq!(w.percentile(50.0), Some(3.0));
        assert_eq!(w.percentile(99.0), Some(5.0));
        assert_eq!(w.percentile(0.0), Some(1.0));
        assert_eq!(w.max(), Some(5.0));
        assert_eq!(w.last(), Some(4.0));
        let mut many = RttWindow::default();
        for i in 1..=100 {
            many.push(f64::from(i), f64::from(i));
        }
        assert_eq!(many.percentile(99.0), Some(99.0));
        assert_eq!(many.percentile(50.0), Some(50.0));
    }

    #[test]
    fn old_samples_leave_the_window() {
        let mut w = RttWindow::default();
        w.push(0.0, 10.0);
        w.push(60_000.0, 20.0);
        w.push(121_000.0, 30.0);
        assert_eq!(w.len(), 2);
        w.prune(200_000.0);
        assert_eq!(w.len(), 1);
        w.prune(300_000.0);
        assert!(w.is_empty());
    }

    #[test]
    fn sparkline_points() {
        let mut w = RttWindow::default();
        w.push(0.0, 0.0);
        w.push(60_000.0, 5.0);
        w.push(120_000.0, 10.0);
        assert_eq!(
            w.points(120_000.0, 300.0, 60.0, 10.0),
            "0.0,60.0 150.0,30.0 300.0,0.0"
        );
        assert_eq!(scale_top(0.3), 1.0);
        assert_eq!(scale_top(1.5), 2.0);
        assert_eq!(scale_top(4.2), 5.0);
        assert_eq!(scale_top(7.0), 10.0);
        assert_eq!(scale_top(180.0), 200.0);
    }
}
