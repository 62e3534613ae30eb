//! The browser events the channel listens to: `online`, `offline` (window) and
//! `visibilitychange` (document). `offline` means TRANSIENT_FAILURE now; `online` or the tab
//! becoming visible means retry now, or check a READY connection at once (its timers may
//! have been throttled while hidden).

use crate::shared::{Shared, with_core};
use std::rc::{Rc, Weak};
use wasm_bindgen::JsCast;
use wasm_bindgen::closure::Closure;

/// A registered DOM listener; removed by [`Listener::remove`].
pub struct Listener {
    target: web_sys::EventTarget,
    kind: &'static str,
    closure: Closure<dyn FnMut()>,
}

impl std::fmt::Debug for Listener {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Listener")
            .field("kind", &self.kind)
            .finish()
    }
}

impl Listener {
    fn add(
        target: web_sys::EventTarget,
        kind: &'static str,
        f: impl FnMut() + 'static,
    ) -> Option<Self> {
        let closure = Closure::<dyn FnMut()>::new(f);
        target
            .add_event_listener_with_callback(kind, closure.as_ref().unchecked_ref())
            .ok()?;
        Some(Listener {
            target,
            kind,
            closure,
        })
    }

    /// Unregisters it.
    pub fn remove(&self) {
        let _ = self
            .target
            .remove_event_listener_with_callback(self.kind, self.closure.as_ref().unchecked_ref());
    }
}

/// Registers the listeners for the channel behind `shared`.
pub(crate) fn listen(shared: &Rc<Shared>) {
    let Some(window) = web_sys::window() else {
        return;
    };
    let mut listeners = Vec::new();
    let weak: Weak<Shared> = Rc::downgrade(shared);
    let w = weak.clone();
    listeners.extend(Listener::add(window.clone().into(), "offline", move || {
        tracing::warn!("browser offline");
        with_core(&w, |core, now| core.offline(now));
    }));
    let w = weak.clone();
    listeners.extend(Listener::add(window.clone().into(), "online", move || {
        tracing::info!("browser online: retrying now");
        with_core(&w, |core, now| core.online(now));
    }));
    if let Some(document) = window.document() {
        let doc = document.clone();
        let w = weak;
        listeners.extend(Listener::add(
            document.into(),
            "visibilitychange",
            move || {
                let visible = doc.visibility_state() == web_sys::VisibilityState::Visible;
                with_core(&w, |core, now| core.visibility(now, visible));
            },
        ));
    }
    shared.inner.borrow_mut().dom = listeners;
}
