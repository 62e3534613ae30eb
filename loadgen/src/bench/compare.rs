//! The previous run next to this one. `bench.json` from before the run (kept as
//! `bench.prev.json`) and this run's are compared figure by figure, generically: every
//! number in a scenario's JSON whose name says which way is better (`*_per_s`, `*rps*`,
//! `*ratio*` higher; `*_ms`, `*cpu_s*`, `*cpu_us*`, `*kib*`, `*instructions*`, sizes,
//! error counts lower) is matched by its path; rows of a list of objects are matched by
//! their leading plain fields (`sessions=1000, ticker=true, http2=false, server=ours`), a
//! list of numbers (rounds) by its median. Counts, settings and time stamps have no direction and are left out.
//! A change past [`THRESHOLD`] the wrong way is a regression, shown in bold.

use super::report::median;
use serde::de::{self, Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};
use std::fmt::Write as _;

/// A relative change within this is noise on a shared 2-core machine.
pub const THRESHOLD: f64 = 0.10;

/// A latency change under this many milliseconds is noise too, whatever its percentage.
pub const MS_NOISE: f64 = 0.5;

/// Which way a figure is better.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Better {
    /// More is better (throughput, ratios).
    Higher,
    /// Less is better (latency, CPU, memory, instructions, sizes, errors).
    Lower,
}

/// The direction of the figure named `name` (the last key of its path); `None`: not a
/// figure to compare (a count, a setting, a time stamp, a label).
pub fn better(name: &str) -> Option<Better> {
    let n = name.to_ascii_lowercase();
    const LOWER_NAMES: [&str; 9] = [
        "errors",
        "failed",
        "losses",
        "gaps",
        "duplicates",
        "not_ready",
        "raw",
        "gzip",
        "bytes",
    ];
    if n.ends_with("_ms")
        || n.contains("cpu_s")
        || n.contains("cpu_us")
        || n.contains("kib")
        || n.contains("instructions")
        || n.ends_with("_errors")
        || n.ends_with("_bytes")
        || LOWER_NAMES.contains(&n.as_str())
    {
        Some(Better::Lower)
    } else if n.ends_with("per_s") || n.contains("rps") || n.contains("ratio") {
        Some(Better::Higher)
    } else {
        None
    }
}

/// One figure in both runs.
#[derive(Debug, Clone, PartialEq)]
pub struct Change {
    /// Its path in the scenario's JSON (`h2.ours_rps (median)`).
    pub figure: String,
    /// The previous run's value.
    pub previous: f64,
    /// This run's value.
    pub now: f64,
    /// Which way is better.
    pub better: Better,
    /// Whether it is a latency in milliseconds ([`MS_NOISE`] applies).
    pub ms: bool,
}

/// How a figure moved.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Past the threshold the wrong way: a regression.
    Worse,
    /// Past the threshold the right way.
    Better,
    /// Within the noise.
    Same,
}

impl Change {
    /// `(now − previous) / |previous|`; ±∞ from zero, 0 when both are zero.
    pub fn relative(&self) -> f64 {
        if self.previous == 0.0 {
            if self.now == 0.0 {
                0.0
            } else {
                f64::INFINITY.copysign(self.now)
            }
        } else {
            (self.now - self.previous) / self.previous.abs()
        }
    }

    /// Worse, better or the same, by [`THRESHOLD`] (and [`MS_NOISE`] for latencies).
    pub fn verdict(&self) -> Verdict {
        let r = self.relative();
        if r.abs() <= THRESHOLD || (self.ms && (self.now - self.previous).abs() < MS_NOISE) {
            return Verdict::Same;
        }
        match (self.better, r > 0.0) {
            (Better::Higher, true) | (Better::Lower, false) => Verdict::Better,
            _ => Verdict::Worse,
        }
    }
}

/// JSON with its objects' keys in their order (serde_json's `Value` sorts them, and a
/// row's key is its leading fields).
#[derive(Debug, Clone, PartialEq)]
pub enum Json {
    /// `null`.
    Null,
    /// `true` or `false`.
    Bool(bool),
    /// A number.
    Number(f64),
    /// A string.
    String(String),
    /// A list.
    Array(Vec<Json>),
    /// An object, its keys in order.
    Object(Vec<(String, Json)>),
}

impl Json {
    /// Parses JSON text.
    pub fn parse(text: &str) -> Result<Json, serde_json::Error> {
        serde_json::from_str(text)
    }

    /// An object's entry `key`.
    pub fn get(&self, key: &str) -> Option<&Json> {
        match self {
            Json::Object(entries) => entries.iter().find(|(k, _)| k == key).map(|(_, v)| v),
            _ => None,
        }
    }
}

impl<'de> Deserialize<'de> for Json {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Json, D::Error> {
        d.deserialize_any(JsonVisitor)
    }
}

struct JsonVisitor;

impl<'de> Visitor<'de> for JsonVisitor {
    type Value = Json;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("JSON")
    }
    fn visit_unit<E: de::Error>(self) -> Result<Json, E> {
        Ok(Json::Null)
    }
    fn visit_none<E: de::Error>(self) -> Result<Json, E> {
        Ok(Json::Null)
    }
    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Json, D::Error> {
        Json::deserialize(d)
    }
    fn visit_bool<E: de::Error>(self, b: bool) -> Result<Json, E> {
        Ok(Json::Bool(b))
    }
    fn visit_i64<E: de::Error>(self, n: i64) -> Result<Json, E> {
        Ok(Json::Number(n as f64))
    }
    fn visit_u64<E: de::Error>(self, n: u64) -> Result<Json, E> {
        Ok(Json::Number(n as f64))
    }
    fn visit_f64<E: de::Error>(self, n: f64) -> Result<Json, E> {
        Ok(Json::Number(n))
    }
    fn visit_str<E: de::Error>(self, s: &str) -> Result<Json, E> {
        Ok(Json::String(s.to_owned()))
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Json, A::Error> {
        let mut items = Vec::new();
        while let Some(item) = seq.next_element()? {
            items.push(item);
        }
        Ok(Json::Array(items))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Json, A::Error> {
        let mut entries = Vec::new();
        while let Some(entry) = map.next_entry::<String, Json>()? {
            entries.push(entry);
        }
        Ok(Json::Object(entries))
    }
}

/// A figure of one run: its path, value, direction and whether it is in ms.
type Figure = (String, f64, Better, bool);

/// Every figure of `value` (a scenario's JSON), in its order.
pub fn figures(value: &Json) -> Vec<Figure> {
    let mut out = Vec::new();
    walk(value, "", "", &mut out);
    out
}

fn join(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_owned()
    } else {
        format!("{path}.{key}")
    }
}

/// `value` at `path`, named `name` (its key, or its list's key for a list's elements).
fn walk(value: &Json, path: &str, name: &str, out: &mut Vec<Figure>) {
    match value {
        Json::Number(x) => {
            if let Some(b) = better(name) {
                out.push((path.to_owned(), *x, b, name.ends_with("_ms")));
            }
        }
        Json::Object(map) => {
            for (k, v) in map {
                walk(v, &join(path, k), k, out);
            }
        }
        Json::Array(items) if !items.is_empty() && items.iter().all(|i| number(i).is_some()) => {
            if let Some(b) = better(name) {
                let mut xs: Vec<f64> = items.iter().filter_map(number).collect();
                out.push((
                    format!("{path} (median)"),
                    median(&mut xs),
                    b,
                    name.ends_with("_ms"),
                ));
            }
        }
        Json::Array(items) => {
            let keys: Vec<String> = items.iter().map(row_key).collect();
            for (i, (item, key)) in items.iter().zip(&keys).enumerate() {
                let unique = !key.is_empty() && keys.iter().filter(|k| *k == key).count() == 1;
                let key = if unique { key.clone() } else { format!("#{i}") };
                walk(item, &format!("{path}[{key}]"), name, out);
            }
        }
        _ => {}
    }
}

/// What identifies a row of a list: its leading plain fields (strings, booleans, numbers
/// without a direction), up to the first figure or nested value. Empty for a non-object.
fn row_key(item: &Json) -> String {
    let Json::Object(map) = item else {
        return String::new();
    };
    let mut parts = Vec::new();
    for (k, v) in map {
        let shown = match v {
            Json::String(s) => s.clone(),
            Json::Bool(b) => b.to_string(),
            Json::Number(n) if better(k).is_none() => num(*n),
            _ => break,
        };
        parts.push(format!("{k}={shown}"));
    }
    parts.join(", ")
}

fn number(v: &Json) -> Option<f64> {
    match v {
        Json::Number(x) => Some(*x),
        _ => None,
    }
}

/// The figures of `now` that `previous` has too, in `now`'s order.
pub fn compare(previous: &Json, now: &Json) -> Vec<Change> {
    let before = figures(previous);
    figures(now)
        .into_iter()
        .filter_map(|(figure, now, better, ms)| {
            let (_, previous, _, _) = before.iter().find(|(f, ..)| *f == figure)?;
            Some(Change {
                figure,
                previous: *previous,
                now,
                better,
                ms,
            })
        })
        .collect()
}

/// A number as the comparison shows it: whole numbers as they are, others to three
/// significant-ish places.
pub fn num(x: f64) -> String {
    let a = x.abs();
    if (x.fract() == 0.0 && a < 1e15) || a >= 100.0 {
        format!("{x:.0}")
    } else if a >= 10.0 {
        format!("{x:.1}")
    } else if a >= 1.0 {
        format!("{x:.2}")
    } else {
        format!("{x:.3}")
    }
}

/// The change cell: `+12.3 %`, a regression in bold with `worse`.
pub fn change_cell(c: &Change) -> String {
    let r = c.relative();
    let pct = if r.is_infinite() {
        "from 0".to_owned()
    } else {
        format!("{:+.1} %", r * 100.0)
    };
    match c.verdict() {
        Verdict::Worse => format!("**{pct} worse**"),
        Verdict::Better => format!("{pct} better"),
        Verdict::Same => pct,
    }
}

fn rows(md: &mut String, changes: &[&Change]) {
    md.push_str("| figure | previous | now | change |\n|---|---|---|---|\n");
    for c in changes {
        let _ = writeln!(
            md,
            "| {} | {} | {} | {} |",
            c.figure,
            num(c.previous),
            num(c.now),
            change_cell(c)
        );
    }
}

/// The markdown under a scenario's table: the figures that moved past the threshold
/// (regressions first) in a table, then every compared figure (zero in both runs left
/// out) in a collapsed block. Empty when nothing compares.
pub fn section(changes: &[Change]) -> String {
    let shown: Vec<&Change> = changes
        .iter()
        .filter(|c| c.previous != 0.0 || c.now != 0.0)
        .collect();
    if shown.is_empty() {
        return String::new();
    }
    let count = |v: Verdict| shown.iter().filter(|c| c.verdict() == v).count();
    let (worse, better) = (count(Verdict::Worse), count(Verdict::Better));
    let mut md = format!(
        "\nPrevious run (`bench.prev.json`): **{worse} worse**, {better} better, {} within \
         ±{:.0} % of {} figures.\n",
        shown.len() - worse - better,
        THRESHOLD * 100.0,
        shown.len()
    );
    let mut moved: Vec<&Change> = shown
        .iter()
        .copied()
        .filter(|c| c.verdict() != Verdict::Same)
        .collect();
    moved.sort_by_key(|c| c.verdict() != Verdict::Worse);
    if !moved.is_empty() {
        md.push('\n');
        rows(&mut md, &moved);
    }
    md.push_str("\n<details><summary>every figure vs the previous run</summary>\n\n");
    rows(&mut md, &shown);
    md.push_str("\n</details>\n");
    md
}

#[cfg(test)]
mod tests {
    use super::*;

    fn json(text: &str) -> Json {
        Json::parse(text).expect("valid JSON")
    }

    #[test]
    fn directions_from_names() {
        assert_eq!(better("ours_rps"), Some(Better::Higher));
        assert_eq!(better("events_per_s"), Some(Better::Higher));
        assert_eq!(better("ratio"), Some(Better::Higher));
        assert_eq!(better("p99_ms"), Some(Better::Lower));
        assert_eq!(better("cpu_s_per_1000_heartbeats"), Some(Better::Lower));
        assert_eq!(better("server_cpu_us_per_event"), Some(Better::Lower));
        assert_eq!(better("rss_kib_per_session"), Some(Better::Lower));
        assert_eq!(better("gzip"), Some(Better::Lower));
        assert_eq!(better("errors"), Some(Better::Lower));
        for none in ["sessions", "count", "window_s", "seconds", "subscribers"] {
            assert_eq!(better(none), None, "{none}");
        }
    }

    #[test]
    fn rows_match_by_key_and_regressions_are_worse() {
        // Keys out of alphabetical order on purpose: rows are keyed by leading fields.
        let previous = json(
            r#"{
            "h2": {"ours_rps": [100.0, 300.0, 200.0], "ratio": 0.9},
            "rows": [
                {"sessions": 10, "ticker": true, "p99_ms": 2.0, "events_per_s": 50.0},
                {"sessions": 100, "ticker": true, "p99_ms": 20.0, "events_per_s": 500.0},
                {"sessions": 5000, "ticker": true, "p99_ms": 1.0, "events_per_s": 1.0}
            ],
            "errors": 0,
            "gone": 1.0
        }"#,
        );
        let now = json(
            r#"{
            "h2": {"ours_rps": [150.0, 160.0], "ratio": 0.95},
            "rows": [
                {"sessions": 100, "ticker": true, "p99_ms": 30.0, "events_per_s": 520.0},
                {"sessions": 10, "ticker": true, "p99_ms": 2.3, "events_per_s": 60.0}
            ],
            "errors": 3,
            "sessions": 7
        }"#,
        );
        let changes = compare(&previous, &now);
        let got: Vec<(&str, f64, f64, Verdict)> = changes
            .iter()
            .map(|c| (c.figure.as_str(), c.previous, c.now, c.verdict()))
            .collect();
        assert_eq!(
            got,
            vec![
                // Medians of the rounds (the upper one of two): 200 → 160, −20 %.
                ("h2.ours_rps (median)", 200.0, 160.0, Verdict::Worse),
                ("h2.ratio", 0.9, 0.95, Verdict::Same),
                // Matched by `sessions`, not by position.
                (
                    "rows[sessions=100, ticker=true].p99_ms",
                    20.0,
                    30.0,
                    Verdict::Worse
                ),
                (
                    "rows[sessions=100, ticker=true].events_per_s",
                    500.0,
                    520.0,
                    Verdict::Same
                ),
                // +15 % but 0.3 ms: noise.
                (
                    "rows[sessions=10, ticker=true].p99_ms",
                    2.0,
                    2.3,
                    Verdict::Same
                ),
                (
                    "rows[sessions=10, ticker=true].events_per_s",
                    50.0,
                    60.0,
                    Verdict::Better
                ),
                ("errors", 0.0, 3.0, Verdict::Worse),
            ]
        );
        let md = section(&changes);
        assert!(
            md.contains("**3 worse**, 1 better, 3 within ±10 % of 7 figures"),
            "{md}"
        );
        // The regressions come first, in bold.
        let first = md
            .lines()
            .find(|l| l.starts_with("| h2") || l.starts_with("| rows"));
        assert_eq!(
            first,
            Some("| h2.ours_rps (median) | 200 | 160 | **-20.0 % worse** |")
        );
        assert!(md.contains("| errors | 0 | 3 | **from 0 worse** |"), "{md}");
        assert!(md.contains("| h2.ratio | 0.900 | 0.950 | +5.6 % |"), "{md}");
        assert_eq!(
            section(&compare(&json(r#"{"a": 1}"#), &json(r#"{"b": 2}"#))),
            ""
        );
    }

    #[test]
    fn ambiguous_rows_fall_back_to_their_index() {
        let v = json(r#"[{"p99_ms": 1.0}, {"p99_ms": 2.0}, null]"#);
        let f: Vec<String> = figures(&v).into_iter().map(|f| f.0).collect();
        assert_eq!(f, ["[#0].p99_ms", "[#1].p99_ms"]);
        assert_eq!(
            Json::parse(r#"{"b": [1, "x", true, null], "a": {}}"#).expect("parses"),
            Json::Object(vec![
                (
                    "b".into(),
                    Json::Array(vec![
                        Json::Number(1.0),
                        Json::String("x".into()),
                        Json::Bool(true),
                        Json::Null
                    ])
                ),
                ("a".into(), Json::Object(vec![])),
            ])
        );
    }
}
