//! The few DOM helpers the views share: find an element by id, set text only when it
//! changed, make list items, listen to events, read the clocks.

use wasm_bindgen::JsCast;
use wasm_bindgen::closure::Closure;
use web_sys::{Document, Element, Event, HtmlElement};

/// The page's document.
pub fn document() -> Document {
    web_sys::window()
        .and_then(|w| w.document())
        .expect("the dashboard runs in a page with a document")
}

/// The element with `id`, as `T`. The skeleton is `web/index.html`: a missing id is a
/// bug of the page, reported loudly.
pub fn by_id<T: JsCast>(id: &str) -> T {
    document()
        .get_element_by_id(id)
        .unwrap_or_else(|| panic!("web/index.html has no element #{id}"))
        .dyn_into::<T>()
        .unwrap_or_else(|_| panic!("#{id} is not the expected kind of element"))
}

/// Sets the text of `el` (skipped when unchanged, so the DOM is not touched for nothing).
pub fn set_text(el: &Element, text: &str) {
    if el.text_content().as_deref() != Some(text) {
        el.set_text_content(Some(text));
    }
}

/// Sets an attribute (skipped when unchanged).
pub fn set_attr(el: &Element, name: &str, value: &str) {
    if el.get_attribute(name).as_deref() != Some(value) {
        let _ = el.set_attribute(name, value);
    }
}

/// A new element `tag` with `class` and `text`.
pub fn el(tag: &str, class: &str, text: &str) -> HtmlElement {
    let e = document()
        .create_element(tag)
        .expect("create_element")
        .unchecked_into::<HtmlElement>();
    if !class.is_empty() {
        e.set_class_name(class);
    }
    if !text.is_empty() {
        e.set_text_content(Some(text));
    }
    e
}

/// Inserts `child` first in `list` and removes the last children beyond `cap`.
pub fn prepend_capped(list: &Element, child: &Element, cap: u32) {
    let _ = list.insert_before(child, list.first_child().as_ref());
    while list.child_element_count() > cap {
        match list.last_element_child() {
            Some(last) => last.remove(),
            None => break,
        }
    }
}

/// Calls `f` on every `event` of `target`, for the page's lifetime.
pub fn on(target: &web_sys::EventTarget, event: &str, f: impl FnMut(Event) + 'static) {
    let closure = Closure::<dyn FnMut(Event)>::new(f);
    let _ = target.add_event_listener_with_callback(event, closure.as_ref().unchecked_ref());
    // The page never removes its listeners: leak the closure on purpose.
    closure.forget();
}

/// Wall-clock time, ms since the Unix epoch (`Date.now()`).
pub fn now_ms() -> f64 {
    js_sys::Date::now()
}

/// `performance.now()`: ms since the page started loading.
pub fn page_ms() -> f64 {
    web_sys::window()
        .and_then(|w| w.performance())
        .map_or(0.0, |p| p.now())
}

/// The local offset from UTC in minutes (east positive), for clock times.
pub fn utc_offset_min() -> f64 {
    -js_sys::Date::new_0().get_timezone_offset()
}
