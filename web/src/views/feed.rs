//! The event feed, newest first with sequence numbers, and the box to publish a message.

use crate::dom::{self, set_text};
use crate::fmt;
use demo_proto::v1::Event;
use wasm_bindgen::JsCast;
use web_sys::{Element, HtmlButtonElement, HtmlElement, HtmlInputElement};

/// Events kept on the page.
const CAP: u32 = 200;

/// The feed's elements.
pub struct FeedView {
    list: Element,
    form: HtmlElement,
    input: HtmlInputElement,
    button: HtmlButtonElement,
    result: Element,
}

impl FeedView {
    /// Finds the elements.
    pub fn find() -> Self {
        FeedView {
            list: dom::by_id("feed-list"),
            form: dom::by_id("publish-form"),
            input: dom::by_id("publish-text"),
            button: dom::by_id("publish-button"),
            result: dom::by_id("publish-result"),
        }
    }

    /// Shows a delivered event at the top (`li[data-seq]`).
    pub fn push(&self, e: &Event, utc_offset_min: f64) {
        let li = dom::el("li", "fresh", "");
        let _ = li.set_attribute("data-seq", &e.sequence.to_string());
        let time = fmt::clock(e.published_at_ms as f64, utc_offset_min);
        for child in [
            dom::el("span", "time", &time),
            dom::el("span", "seq", &format!("#{}", e.sequence)),
            dom::el("span", "text", &e.text),
            dom::el("span", "src", &e.source),
        ] {
            let _ = li.append_child(&child);
        }
        dom::prepend_capped(&self.list, &li, CAP);
    }

    /// Calls `publish` with the text when the form is submitted (empty text is ignored).
    pub fn on_publish(&self, publish: impl Fn(String) + 'static) {
        let input = self.input.clone();
        dom::on(&self.form, "submit", move |ev| {
            ev.prevent_default();
            let text = input.value().trim().to_owned();
            if !text.is_empty() {
                publish(text);
            }
        });
    }

    /// While a publish is in flight the button is disabled.
    pub fn set_busy(&self, busy: bool) {
        self.button.set_disabled(busy);
    }

    /// Shows how a publish went (and clears the box when it went through).
    pub fn show_result(&self, result: Result<String, String>) {
        let (class, text) = match result {
            Ok(text) => {
                self.input.set_value("");
                ("result good", text)
            }
            Err(text) => ("result bad", text),
        };
        self.result.set_class_name(class);
        set_text(&self.result, &text);
        let _ = self.input.dyn_ref::<HtmlElement>().map(HtmlElement::focus);
    }
}
