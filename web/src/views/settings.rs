//! The client settings form: Time, Timeout, PermitWithoutStream and the backoff, editable;
//! applying them reconnects with the new values.

use crate::dom::{self, set_text};
use crate::settings::SettingsForm;
use web_sys::{Element, HtmlButtonElement, HtmlElement, HtmlInputElement};

/// The form's elements.
pub struct SettingsView {
    form: HtmlElement,
    time: HtmlInputElement,
    timeout: HtmlInputElement,
    permit: HtmlInputElement,
    initial: HtmlInputElement,
    multiplier: HtmlInputElement,
    jitter: HtmlInputElement,
    max: HtmlInputElement,
    reset: HtmlButtonElement,
    result: Element,
}

impl SettingsView {
    /// Finds the elements.
    pub fn find() -> Self {
        SettingsView {
            form: dom::by_id("settings-form"),
            time: dom::by_id("s-time"),
            timeout: dom::by_id("s-timeout"),
            permit: dom::by_id("s-permit"),
            initial: dom::by_id("s-initial"),
            multiplier: dom::by_id("s-multiplier"),
            jitter: dom::by_id("s-jitter"),
            max: dom::by_id("s-max"),
            reset: dom::by_id("settings-reset"),
            result: dom::by_id("settings-result"),
        }
    }

    /// Shows `form` in the fields.
    pub fn fill(&self, form: &SettingsForm) {
        self.time.set_value(&form.time_s);
        self.timeout.set_value(&form.timeout_s);
        self.permit.set_checked(form.permit_without_stream);
        self.initial.set_value(&form.backoff_initial_s);
        self.multiplier.set_value(&form.backoff_multiplier);
        self.jitter.set_value(&form.backoff_jitter);
        self.max.set_value(&form.backoff_max_s);
    }

    fn read(&self) -> SettingsForm {
        SettingsForm {
            time_s: self.time.value(),
            timeout_s: self.timeout.value(),
            permit_without_stream: self.permit.checked(),
            backoff_initial_s: self.initial.value(),
            backoff_multiplier: self.multiplier.value(),
            backoff_jitter: self.jitter.value(),
            backoff_max_s: self.max.value(),
        }
    }

    /// Calls `apply` with the fields when the form is submitted, and `reset` when the
    /// "page defaults" button is clicked.
    pub fn on_apply(&self, apply: impl Fn(SettingsForm) + 'static, reset: impl Fn() + 'static) {
        let view = SettingsView::find();
        dom::on(&self.form, "submit", move |ev| {
            ev.prevent_default();
            apply(view.read());
        });
        dom::on(&self.reset, "click", move |_| reset());
    }

    /// Shows how applying went.
    pub fn show_result(&self, result: Result<String, Vec<String>>) {
        let (class, text) = match result {
            Ok(t) => ("result good", t),
            Err(errors) => ("result bad", errors.join("; ")),
        };
        self.result.set_class_name(class);
        set_text(&self.result, &text);
    }
}
