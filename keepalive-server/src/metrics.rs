//! Counters, and how they become Prometheus metrics.
//!
//! Each part of a server keeps its own counters — the transport ([`crate::TransportStats`]),
//! the browser sessions ([`crate::browser::BrowserStats`]), your services — as plain
//! relaxed atomics declared with [`counters!`](crate::counters!): one uncontended increment per event, and a
//! [`Snapshot`] read at any time. Nothing is counted twice for Prometheus: a
//! [`Collector`] reads the same atomics at scrape time and names them by a table of
//! [`Family`]s, where several counters can be one family told apart by a label
//! (`keepalive_goaways_total{reason="max_age"}`). Register the collectors you want on
//! *your* `prometheus-client` [`Registry`]; [`render`] encodes a registry as the text a
//! scrape answers (OpenMetrics 1.0: counters get `_total`, the body ends with `# EOF`).
//!
//! ```
//! use keepalive_server::metrics::{self, Family, Kind};
//! use std::sync::Arc;
//!
//! keepalive_server::counters! {
//!     /// What my service counts.
//!     pub struct MyStats {
//!         /// Quotes answered.
//!         counter quotes,
//!         /// Watch streams open now.
//!         gauge open_watches,
//!     }
//! }
//! const FAMILIES: &[Family] = &[
//!     metrics::family("quotes", Kind::Counter, "Quotes answered.", "", &[("quotes", "")]),
//!     metrics::family("watches_open", Kind::Gauge, "Watch streams open.", "", &[("open_watches", "")]),
//! ];
//!
//! let stats = Arc::new(MyStats::default());
//! MyStats::inc(&stats.quotes);
//! let mut registry = prometheus_client::registry::Registry::default();
//! let source = stats.clone();
//! metrics::register(&mut registry, "my", FAMILIES, move || source.snapshot());
//! let text = metrics::render(&registry);
//! assert!(text.contains("my_quotes_total 1"));
//! ```

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric, MetricEncoder, text};
use prometheus_client::metrics::MetricType;
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
pub use prometheus_client::registry::Registry;
use std::collections::HashSet;
use std::sync::Arc;

/// The content type of a scrape's body (OpenMetrics text, which Prometheus asks for first).
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// Counter (monotonic) or gauge (a current value).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Only grows; exported with a `_total` suffix.
    Counter,
    /// A current value.
    Gauge,
}

/// One value of a [`Snapshot`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Sample {
    /// The counter's name (snake_case, as declared).
    pub name: &'static str,
    /// Its value now.
    pub value: u64,
    /// Counter or gauge.
    pub kind: Kind,
}

/// Every counter of one stats struct, read now.
pub type Snapshot = Vec<Sample>;

/// Declares a struct of relaxed atomic counters with a [`Snapshot`] of them.
///
/// Each field is `counter NAME` (monotonic) or `gauge NAME` (a current value), with its
/// doc comment; the struct gets `Default`, `snapshot()`, and `inc`/`dec`/`add` helpers.
/// See the [module docs](self) for an example.
#[macro_export]
macro_rules! counters {
    (
        $(#[$meta:meta])*
        $vis:vis struct $name:ident {
            $( $(#[$doc:meta])* $kind:ident $field:ident ),* $(,)?
        }
    ) => {
        $(#[$meta])*
        #[derive(Debug, Default)]
        $vis struct $name {
            $( $(#[$doc])* pub $field: ::std::sync::atomic::AtomicU64, )*
        }

        #[allow(dead_code)] // not every struct uses every helper
        impl $name {
            /// Every counter with its name and kind, now.
            pub fn snapshot(&self) -> $crate::metrics::Snapshot {
                vec![$( $crate::metrics::Sample {
                    name: stringify!($field),
                    value: self.$field.load(::std::sync::atomic::Ordering::Relaxed),
                    kind: $crate::counters!(@kind $kind),
                }, )*]
            }

            /// Adds one to `counter`.
            pub fn inc(counter: &::std::sync::atomic::AtomicU64) {
                counter.fetch_add(1, ::std::sync::atomic::Ordering::Relaxed);
            }

            /// Adds `n` to `counter`.
            pub fn add(counter: &::std::sync::atomic::AtomicU64, n: u64) {
                counter.fetch_add(n, ::std::sync::atomic::Ordering::Relaxed);
            }

            /// Subtracts one from a gauge.
            pub fn dec(counter: &::std::sync::atomic::AtomicU64) {
                counter.fetch_sub(1, ::std::sync::atomic::Ordering::Relaxed);
            }
        }
    };
    (@kind counter) => { $crate::metrics::Kind::Counter };
    (@kind gauge) => { $crate::metrics::Kind::Gauge };
}

/// One metric family and the counters it is made of.
#[derive(Debug, Clone, Copy)]
pub struct Family {
    /// The metric name, without the prefix and (for counters) without `_total`.
    pub name: &'static str,
    /// Counter or gauge.
    pub kind: Kind,
    /// The `# HELP` text.
    pub help: &'static str,
    /// The label that tells the members apart (`""` for a single-member family).
    pub label: &'static str,
    /// `(counter name, label value)` of each member; the value is ignored without a label.
    pub members: &'static [(&'static str, &'static str)],
}

/// A [`Family`], in a `const` table.
pub const fn family(
    name: &'static str,
    kind: Kind,
    help: &'static str,
    label: &'static str,
    members: &'static [(&'static str, &'static str)],
) -> Family {
    Family {
        name,
        kind,
        help,
        label,
        members,
    }
}

/// Registers a collector that reads `source` at each scrape and exports it as
/// `families`, every name prefixed with `prefix` and `_`. A counter of the snapshot that
/// no family names is still exported, under its own name.
pub fn register(
    registry: &mut Registry,
    prefix: &'static str,
    families: &'static [Family],
    source: impl Fn() -> Snapshot + Send + Sync + 'static,
) {
    registry.register_collector(Box::new(SnapshotCollector {
        prefix,
        families,
        source: Arc::new(source),
    }));
}

/// The text body of one scrape of `registry`.
pub fn render(registry: &Registry) -> String {
    let mut out = String::with_capacity(8 * 1024);
    // Writing into a String cannot fail.
    let _ = text::encode(&mut out, registry);
    out
}

/// Reads a snapshot per scrape and names it by a family table.
struct SnapshotCollector {
    prefix: &'static str,
    families: &'static [Family],
    source: Arc<dyn Fn() -> Snapshot + Send + Sync>,
}

impl std::fmt::Debug for SnapshotCollector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SnapshotCollector")
            .field("prefix", &self.prefix)
            .finish_non_exhaustive()
    }
}

impl Collector for SnapshotCollector {
    fn encode(&self, mut enc: DescriptorEncoder<'_>) -> std::fmt::Result {
        let snapshot = (self.source)();
        let value = |name: &str| {
            snapshot
                .iter()
                .find(|s| s.name == name)
                .map_or(0, |s| s.value)
        };
        let mut named = HashSet::new();
        for f in self.families {
            let name = format!("{}_{}", self.prefix, f.name);
            let mut metric = enc.encode_descriptor(&name, f.help, None, f.kind.metric_type())?;
            for (member, label_value) in f.members {
                named.insert(*member);
                let v = value(member);
                if f.label.is_empty() {
                    f.kind.encode(v, metric)?;
                    break;
                }
                let labels = [(f.label, *label_value)];
                f.kind.encode(v, metric.encode_family(&labels)?)?;
            }
        }
        // Counters not (yet) in the table: exported under their own name, never dropped.
        for s in snapshot.iter().filter(|s| !named.contains(s.name)) {
            let name = format!("{}_{}", self.prefix, s.name);
            let metric =
                enc.encode_descriptor(&name, "(not described yet)", None, s.kind.metric_type())?;
            s.kind.encode(s.value, metric)?;
        }
        Ok(())
    }
}

impl Kind {
    fn metric_type(self) -> MetricType {
        match self {
            Kind::Counter => MetricType::Counter,
            Kind::Gauge => MetricType::Gauge,
        }
    }

    fn encode(self, v: u64, metric: MetricEncoder<'_>) -> std::fmt::Result {
        match self {
            Kind::Counter => ConstCounter::new(v).encode(metric),
            Kind::Gauge => ConstGauge::new(v).encode(metric),
        }
    }
}

/// Checks a family table against a snapshot: every counter in a family, no counter in
/// two. For a unit test next to each table.
pub fn check_families(families: &[Family], snapshot: &[Sample]) -> Result<(), String> {
    let mut seen = HashSet::new();
    for f in families {
        for (m, _) in f.members {
            if !seen.insert(*m) {
                return Err(format!("{m} is in two families"));
            }
        }
    }
    for s in snapshot {
        if !seen.contains(s.name) {
            return Err(format!("{} is in no family", s.name));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    counters! {
        struct T {
            /// a
            counter hits_h2,
            /// b
            counter hits_h1,
            /// c
            gauge open_things,
            /// d
            counter brand_new,
        }
    }

    const FAMILIES: &[Family] = &[
        family(
            "hits",
            Kind::Counter,
            "Hits, by protocol.",
            "protocol",
            &[("hits_h2", "h2"), ("hits_h1", "http1")],
        ),
        family(
            "things_open",
            Kind::Gauge,
            "Things.",
            "",
            &[("open_things", "")],
        ),
    ];

    #[test]
    fn families_labels_and_unnamed_counters() {
        let t = Arc::new(T::default());
        T::inc(&t.hits_h2);
        T::add(&t.hits_h1, 2);
        T::inc(&t.open_things);
        T::add(&t.brand_new, 4);
        let mut registry = Registry::default();
        let source = t.clone();
        register(&mut registry, "x", FAMILIES, move || source.snapshot());
        let body = render(&registry);
        assert!(body.contains("x_hits_total{protocol=\"h2\"} 1\n"), "{body}");
        assert!(
            body.contains("x_hits_total{protocol=\"http1\"} 2\n"),
            "{body}"
        );
        assert!(body.contains("# TYPE x_things_open gauge\n"), "{body}");
        assert!(body.contains("x_things_open 1\n"), "{body}");
        assert!(body.contains("x_brand_new_total 4\n"), "{body}");
        assert!(body.ends_with("# EOF\n"));
        assert_eq!(
            check_families(FAMILIES, &t.snapshot()),
            Err("brand_new is in no family".into())
        );
    }
}
