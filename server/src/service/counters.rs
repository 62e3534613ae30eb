//! The Stats call: the server's counters and current values, by name.
//!
//! Counters (monotonic) and gauges (current values) are kept apart because a dashboard
//! plots them differently (rates vs levels) and Prometheus types them differently. The
//! connection-level ones come from [`crate::stats::Stats`] (its `open_*` entries are
//! gauges); the service adds the values only it knows: sessions, the log's head and depth.

use super::log::EventLog;
use super::sessions::Sessions;
use crate::stats::Stats;
use proto::v1::StatsResponse;

/// Every counter and gauge, now.
pub fn snapshot(stats: &Stats, sessions: &Sessions, log: &dyn EventLog) -> StatsResponse {
    let mut res = StatsResponse::default();
    for (name, value) in stats.snapshot() {
        let map = if Stats::is_gauge(name) {
            &mut res.gauges
        } else {
            &mut res.counters
        };
        map.insert(name.to_string(), value);
    }
    res.gauges.insert("sessions".into(), sessions.len() as u64);
    res.gauges.insert("log_head".into(), log.head());
    res.gauges.insert("log_depth".into(), log.depth());
    res
}
