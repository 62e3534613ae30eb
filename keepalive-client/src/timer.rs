//! The timer loop: sleeps until the core's next deadline (or until an input moved it),
//! then lets the core handle it. Ends when the channel is closed or dropped.

use crate::shared::{Shared, with_core};
use crate::task::sleep_or_signal;
use crate::time;
use std::rc::Rc;

/// Starts the loop of `shared`.
pub(crate) fn start(shared: &Rc<Shared>) {
    let weak = Rc::downgrade(shared);
    wasm_bindgen_futures::spawn_local(async move {
        loop {
            // Our own pump (below) notifies too: forget that before reading the deadline,
            // or the loop would never yield to the page. Whatever changes the deadline
            // after this point notifies again.
            let wait_ms = {
                let Some(shared) = weak.upgrade() else { return };
                shared.timer.clear();
                let inner = shared.inner.borrow();
                if inner.closed {
                    return;
                }
                inner
                    .core
                    .poll_timeout()
                    .map(|d| (d.since_origin().as_secs_f64() * 1000.0 - time::now_ms()).max(0.0))
            };
            // Hold only a weak reference while asleep: a dropped channel ends the loop.
            let Some(shared) = weak.upgrade() else { return };
            let signal = shared.clone();
            drop(shared);
            sleep_or_signal(wait_ms, &signal.timer).await;
            drop(signal);
            if with_core(&weak, |core, now| core.handle_timeout(now)).is_none() {
                return;
            }
        }
    });
}
