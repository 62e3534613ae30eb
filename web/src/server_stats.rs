//! The server panel's model: the `Stats` call's counters and gauges, grouped and labelled.
//!
//! The names are the server's (`server/src/stats.rs` and the service's gauges). A name the
//! page does not know still shows in the "every counter" table, and a new `goaway_*`
//! counter joins the GOAWAY group by itself.

use std::collections::HashMap;

/// One labelled value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Row {
    /// What it is, for people.
    pub label: String,
    /// Its value (0 when the server does not report it).
    pub value: u64,
}

/// The panel, grouped.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ServerPanel {
    /// Open now: connections by protocol, streams, subscriptions, sessions, log head.
    pub open: Vec<Row>,
    /// GOAWAYs sent, by reason (connection level), and stream GoAway messages.
    pub goaways: Vec<Row>,
    /// Keepalive enforcement: ping strikes, too_many_pings, keepalive timeouts.
    pub enforcement: Vec<Row>,
    /// Fault injection so far.
    pub chaos: Vec<Row>,
    /// Every counter and gauge, by name.
    pub all: Vec<Row>,
}

const OPEN: &[(&str, &str)] = &[
    ("HTTP/1.1 connections", "open_connections_h1"),
    ("HTTP/2 connections", "open_connections_h2"),
    ("streams", "open_streams"),
    ("subscriptions", "open_subscriptions"),
    ("sessions", "sessions"),
    ("last event #", "log_head"),
];

const GOAWAY_PREFIX: &str = "goaway_";

const ENFORCEMENT: &[(&str, &str)] = &[
    ("HTTP/2 ping strikes", "ping_strikes"),
    ("heartbeat strikes", "heartbeat_strikes"),
    (
        "heartbeats refused: too_many_pings",
        "heartbeats_too_many_pings",
    ),
    ("closed: keepalive timeout", "closed_keepalive_timeout"),
];

const CHAOS: &[(&str, &str)] = &[
    ("chaos actions", "chaos_actions"),
    ("connections dropped", "closed_chaos_drop"),
    ("connections refused", "connections_refused_chaos"),
    ("heartbeats rejected", "heartbeats_rejected_chaos"),
];

impl ServerPanel {
    /// The panel for one `Stats` answer.
    pub fn new(counters: &HashMap<String, u64>, gauges: &HashMap<String, u64>) -> Self {
        let value = |name: &str| {
            counters
                .get(name)
                .or_else(|| gauges.get(name))
                .copied()
                .unwrap_or(0)
        };
        let rows = |table: &[(&str, &str)]| {
            table
                .iter()
                .map(|(label, name)| Row {
                    label: (*label).to_owned(),
                    value: value(name),
                })
                .collect::<Vec<_>>()
        };
        let mut goaways: Vec<Row> = counters
            .iter()
            .filter_map(|(name, v)| {
                name.strip_prefix(GOAWAY_PREFIX).map(|reason| Row {
                    label: reason.to_owned(),
                    value: *v,
                })
            })
            .collect();
        goaways.sort_by(|a, b| a.label.cmp(&b.label));
        goaways.push(Row {
            label: "stream GoAway messages".to_owned(),
            value: value("goaways_sent"),
        });
        let mut all: Vec<Row> = counters
            .iter()
            .chain(gauges.iter())
            .map(|(name, v)| Row {
                label: name.clone(),
                value: *v,
            })
            .collect();
        all.sort_by(|a, b| a.label.cmp(&b.label));
        ServerPanel {
            open: rows(OPEN),
            goaways,
            enforcement: rows(ENFORCEMENT),
            chaos: rows(CHAOS),
            all,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map(pairs: &[(&str, u64)]) -> HashMap<String, u64> {
        pairs.iter().map(|(k, v)| ((*k).to_owned(), *v)).collect()
    }

    #[test]
    fn groups_and_labels() {
        let counters = map(&[
            ("goaway_max_age", 2),
            ("goaway_chaos", 1),
            ("goaways_sent", 7),
            ("ping_strikes", 3),
            ("something_new", 9),
        ]);
        let gauges = map(&[("open_connections_h1", 4), ("sessions", 2)]);
        let p = ServerPanel::new(&counters, &gauges);
        assert_eq!(p.open[0].label, "HTTP/1.1 connections");
        assert_eq!(p.open[0].value, 4);
        assert_eq!(p.open[1].value, 0, "absent means 0");
        let goaways: Vec<(&str, u64)> = p
            .goaways
            .iter()
            .map(|r| (r.label.as_str(), r.value))
            .collect();
        assert_eq!(
            goaways,
            [("chaos", 1), ("max_age", 2), ("stream GoAway messages", 7)]
        );
        assert_eq!(p.enforcement[0].value, 3);
        assert!(
            p.all
                .iter()
                .any(|r| r.label == "something_new" && r.value == 9)
        );
        assert_eq!(p.all.len(), 7);
    }
}
