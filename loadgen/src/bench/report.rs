//! The report: table cells as every scenario writes them, JSON objects whose keys keep
//! the order they were added in (so `bench.json` reads like the tables; serde_json's own
//! map sorts them), and the two files; the previous run's `bench.json`, read before the
//! run and kept as `bench.prev.json` (see [`super::compare`]).

use super::Result;
use super::compare::{self, Json};
use crate::histogram::Summary;
use serde::Serialize;
use serde::ser::{SerializeMap, Serializer};
use serde_json::value::RawValue;
use std::path::{Path, PathBuf};

/// What a scenario hands back: its markdown (a heading, a table, maybe a note) and its
/// entry in `bench.json`.
#[derive(Debug)]
pub struct Section {
    /// Markdown, ending with a newline.
    pub table: String,
    /// The JSON, as written.
    pub json: Box<RawValue>,
}

impl Section {
    /// A section with `json` serialized now (structs keep their field order).
    pub fn new(table: String, json: &impl Serialize) -> Self {
        Section {
            table,
            json: raw(json),
        }
    }
}

/// `value` as JSON text. Plain data (numbers, strings, structs, string-keyed maps)
/// always serializes; non-finite numbers become `null`.
pub fn raw(value: &impl Serialize) -> Box<RawValue> {
    serde_json::value::to_raw_value(value).expect("plain data serializes to JSON")
}

/// A JSON object with its keys in the order they were added.
#[derive(Debug, Default)]
pub struct Object(Vec<(String, Box<RawValue>)>);

impl Object {
    /// An empty object.
    pub fn new() -> Self {
        Self::default()
    }

    /// With `key` set to `value` (added last).
    pub fn with(mut self, key: &str, value: impl Serialize) -> Self {
        self.0.push((key.to_owned(), raw(&value)));
        self
    }
}

impl Serialize for Object {
    fn serialize<S: Serializer>(&self, serializer: S) -> std::result::Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(Some(self.0.len()))?;
        for (k, v) in &self.0 {
            map.serialize_entry(k, v)?;
        }
        map.end()
    }
}

/// `x` rounded to `decimals` places, for the JSON (what `{x:.N}` printed before; a
/// non-finite `x` is written as `null`).
pub fn fixed(x: f64, decimals: i32) -> f64 {
    let scale = 10f64.powi(decimals);
    (x * scale).round() / scale
}

/// `p50 / p99 / max` of a distribution, ms with one decimal.
pub fn ms3(s: &Summary) -> String {
    format!("{:.1} / {:.1} / {:.1}", s.p50_ms, s.p99_ms, s.max_ms)
}

/// The target column.
pub fn met(ok: bool) -> &'static str {
    if ok { "met" } else { "**missed**" }
}

/// The median (the upper one of an even count); NaN for none.
pub fn median(v: &mut [f64]) -> f64 {
    if v.is_empty() {
        return f64::NAN;
    }
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// The previous run's `bench.json` in `out`, if there is one (one that cannot be read is
/// said and skipped).
pub fn previous(out: &Path) -> Option<Json> {
    let path = out.join("bench.json");
    let text = std::fs::read_to_string(&path).ok()?;
    match Json::parse(&text) {
        Ok(json) => Some(json),
        Err(e) => {
            println!("  (previous {} not compared: {e})", shown(&path));
            None
        }
    }
}

/// The line under the header that says what the previous run was.
pub fn previous_note(previous: &Json, quick: bool) -> String {
    let text = |key: &str| match previous.get(key) {
        Some(Json::String(s)) => s.clone(),
        Some(Json::Number(x)) => compare::num(*x),
        _ => "?".into(),
    };
    let was_quick = matches!(previous.get("quick"), Some(Json::Bool(true)));
    let mut note = format!(
        "Compared with the previous run (`bench.prev.json`: load average before {}, took {} s{}): \
         under each table, the figures that moved more than ±{:.0} % (regressions in bold) \
         and every figure.\n",
        text("load_before"),
        text("seconds"),
        if was_quick { ", --quick" } else { "" },
        compare::THRESHOLD * 100.0
    );
    if was_quick != quick {
        note.push_str(&format!(
            "**The previous run was {} and this one is {}: the figures are not comparable.**\n",
            if was_quick { "--quick" } else { "a full run" },
            if quick { "--quick" } else { "a full run" }
        ));
    }
    note.push('\n');
    note
}

/// Writes `bench.md` and `bench.json` into `out` (a `bench.json` already there becomes
/// `bench.prev.json`); returns their paths.
pub fn write(out: &Path, md: &str, json: &Object) -> Result<(PathBuf, PathBuf)> {
    let md_path = out.join("bench.md");
    let json_path = out.join("bench.json");
    let mut text = serde_json::to_string(json).map_err(|e| format!("bench.json: {e}"))?;
    text.push('\n');
    if json_path.is_file() {
        let prev = out.join("bench.prev.json");
        std::fs::rename(&json_path, &prev).map_err(|e| {
            format!(
                "cannot rename {} to {}: {e}",
                json_path.display(),
                prev.display()
            )
        })?;
    }
    for (path, text) in [(&md_path, md), (&json_path, text.as_str())] {
        std::fs::write(path, text).map_err(|e| format!("cannot write {}: {e}", path.display()))?;
    }
    Ok((md_path, json_path))
}

/// `path` relative to the current directory when it is inside it.
pub fn shown(path: &Path) -> String {
    std::env::current_dir()
        .ok()
        .and_then(|dir| path.strip_prefix(dir).ok().map(Path::to_path_buf))
        .unwrap_or_else(|| path.to_path_buf())
        .display()
        .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Serialize)]
    struct Row {
        zeta: u32,
        alpha: f64,
    }

    #[test]
    fn objects_keep_their_order() {
        let inner = Object::new().with("b", 1).with("a", "x\"y");
        let json = Object::new()
            .with(
                "z",
                Row {
                    zeta: 1,
                    alpha: fixed(0.123_456, 3),
                },
            )
            .with("nan", f64::NAN)
            .with("inner", &inner)
            .with("list", [1.5, 2.0]);
        assert_eq!(
            serde_json::to_string(&json).expect("serializes"),
            r#"{"z":{"zeta":1,"alpha":0.123},"nan":null,"inner":{"b":1,"a":"x\"y"},"list":[1.5,2.0]}"#
        );
    }

    #[test]
    fn the_previous_run_is_read_and_kept() {
        let dir = std::env::temp_dir().join(format!("bench-report-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("temp dir");
        assert_eq!(previous(&dir), None);
        let first = Object::new().with("quick", true).with("seconds", 2.5);
        write(&dir, "# one\n", &first).expect("writes");
        let prev = previous(&dir).expect("the first run's bench.json");
        assert_eq!(prev.get("seconds"), Some(&Json::Number(2.5)));
        assert!(previous_note(&prev, true).contains("took 2.50 s, --quick)"));
        assert!(previous_note(&prev, false).contains("not comparable"));
        assert!(!previous_note(&prev, true).contains("not comparable"));
        write(&dir, "# two\n", &Object::new().with("quick", false)).expect("writes");
        let kept = std::fs::read_to_string(dir.join("bench.prev.json")).expect("kept");
        assert_eq!(kept, "{\"quick\":true,\"seconds\":2.5}\n");
        let now = std::fs::read_to_string(dir.join("bench.json")).expect("written");
        assert_eq!(now, "{\"quick\":false}\n");
        std::fs::write(dir.join("bench.json"), "{not json").expect("writes");
        assert_eq!(previous(&dir), None);
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn cells() {
        let s = Summary {
            count: 3,
            p50_ms: 0.26,
            p99_ms: 3.04,
            max_ms: 12.0,
        };
        assert_eq!(ms3(&s), "0.3 / 3.0 / 12.0");
        assert_eq!(met(true), "met");
        assert_eq!(met(false), "**missed**");
        assert_eq!(median(&mut [3.0, 1.0, 2.0, 10.0]), 3.0);
        assert!(median(&mut []).is_nan());
        assert_eq!(fixed(2.345_67, 1), 2.3);
    }
}
