//! The fault injection buttons. Each one calls the server's `Chaos` with the token from
//! the URL fragment; without a token they are disabled and the panel says how to get one.

use crate::dom::{self, set_text};
use demo_proto::v1::ChaosAction;
use web_sys::{Element, HtmlButtonElement, HtmlInputElement};

/// The buttons' ids, in order.
const BUTTONS: &[&str] = &[
    "chaos-drop",
    "chaos-stall",
    "chaos-refuse",
    "chaos-reject",
    "chaos-goaway",
    "chaos-restart",
];

/// The panel's elements.
pub struct ChaosView {
    buttons: Vec<HtmlButtonElement>,
    seconds: HtmlInputElement,
    note: Element,
    result: Element,
}

impl ChaosView {
    /// Finds the elements.
    pub fn find() -> Self {
        ChaosView {
            buttons: BUTTONS.iter().map(|id| dom::by_id(id)).collect(),
            seconds: dom::by_id("chaos-seconds"),
            note: dom::by_id("chaos-note"),
            result: dom::by_id("chaos-result"),
        }
    }

    /// Enables the buttons when the page has a token; otherwise says where it comes from.
    pub fn set_token_present(&self, present: bool) {
        for b in &self.buttons {
            b.set_disabled(!present);
        }
        set_text(
            &self.note,
            if present {
                "Each button asks the server to misbehave; watch the state, the timeline and \
                 the feed recover."
            } else {
                "Disabled: no chaos token. Open the URL that cargo xtask demo prints (it ends \
                 in #chaos=…)."
            },
        );
    }

    /// Calls `act` with the action and the duration in ms when a button is clicked.
    pub fn on_action(&self, act: impl Fn(ChaosAction, u64) + 'static) {
        let act = std::rc::Rc::new(act);
        for b in &self.buttons {
            let name = b.get_attribute("data-action").unwrap_or_default();
            let Some(action) = ChaosAction::from_str_name(&name) else {
                continue;
            };
            let seconds = self.seconds.clone();
            let act = act.clone();
            dom::on(b, "click", move |_| {
                let secs = seconds.value_as_number();
                let secs = if secs.is_finite() {
                    secs.clamp(1.0, 600.0)
                } else {
                    5.0
                };
                act(action, (secs * 1000.0).round() as u64);
            });
        }
    }

    /// Shows what the server said.
    pub fn show_result(&self, result: Result<String, String>) {
        let (class, text) = match result {
            Ok(t) => ("result good", t),
            Err(t) => ("result bad", t),
        };
        self.result.set_class_name(class);
        set_text(&self.result, &text);
    }
}
