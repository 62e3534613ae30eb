//! The server panel: the `Stats` call, polled every second, grouped (open connections by
//! protocol, streams, sessions; GOAWAYs by reason; enforcement; fault injection).

use crate::dom::{self, set_text};
use crate::fmt;
use crate::server_stats::{Row, ServerPanel};
use web_sys::Element;

/// The panel's tables.
pub struct ServerView {
    open: Element,
    goaways: Element,
    enforcement: Element,
    chaos: Element,
    all: Element,
    age: Element,
}

impl ServerView {
    /// Finds the tables.
    pub fn find() -> Self {
        ServerView {
            open: dom::by_id("server-open"),
            goaways: dom::by_id("server-goaways"),
            enforcement: dom::by_id("server-enforcement"),
            chaos: dom::by_id("server-chaos"),
            all: dom::by_id("server-all"),
            age: dom::by_id("server-age"),
        }
    }

    /// Shows one `Stats` answer.
    pub fn render(&self, panel: &ServerPanel) {
        fill(&self.open, &panel.open);
        fill(&self.goaways, &panel.goaways);
        fill(&self.enforcement, &panel.enforcement);
        fill(&self.chaos, &panel.chaos);
        fill(&self.all, &panel.all);
    }

    /// Says how fresh the numbers are, or why they are not.
    pub fn render_age(&self, now_ms: f64, updated_ms: Option<f64>, error: Option<&str>) {
        let text = match (updated_ms, error) {
            (_, Some(e)) => format!("· unreachable: {e}"),
            (Some(at), None) => format!("· updated {} ago", fmt::elapsed_ms(now_ms - at)),
            (None, None) => "· waiting for the first answer".to_owned(),
        };
        set_text(&self.age, &text);
    }
}

/// Puts `rows` into `table`, reusing its rows (the tables change every second).
fn fill(table: &Element, rows: &[Row]) {
    let existing = table.child_element_count() as usize;
    for (i, row) in rows.iter().enumerate() {
        let tr = if i < existing {
            table.children().item(i as u32)
        } else {
            let tr = dom::el("tr", "", "");
            let th = dom::el("th", "", "");
            let _ = th.set_attribute("scope", "row");
            let _ = tr.append_child(&th);
            let _ = tr.append_child(&dom::el("td", "", ""));
            let _ = table.append_child(&tr);
            Some(tr.into())
        };
        let Some(tr) = tr else { continue };
        if let (Some(th), Some(td)) = (tr.first_element_child(), tr.last_element_child()) {
            set_text(&th, &row.label);
            set_text(&td, &fmt::count(row.value));
        }
    }
    while table.child_element_count() as usize > rows.len() {
        match table.last_element_child() {
            Some(last) => last.remove(),
            None => break,
        }
    }
}
