//! Small single-threaded async helpers: a wake-up signal for the timer loop, cancellable
//! tasks, and a sleep that a signal can cut short.
//!
//! Cancelling a call must drop its future: dropping a tonic-web-wasm-client response (or
//! the future waiting for it) aborts the underlying `fetch`, which frees the browser's
//! connection (there are only six per origin over HTTP/1.1).

use std::cell::{Cell, RefCell};
use std::future::Future;
use std::pin::pin;
use std::rc::Rc;
use std::task::{Poll, Waker};

/// A level-triggered wake-up: `notify` sets it, the waiter consumes it.
#[derive(Debug, Default)]
pub struct Signal {
    set: Cell<bool>,
    waker: RefCell<Option<Waker>>,
}

impl Signal {
    /// Wakes the waiter (or the next one).
    pub fn notify(&self) {
        self.set.set(true);
        if let Some(w) = self.waker.borrow_mut().take() {
            w.wake();
        }
    }

    /// Forgets a pending notification.
    pub fn clear(&self) {
        self.set.set(false);
    }

    /// Whether it was notified (and not cleared since).
    pub fn is_set(&self) -> bool {
        self.set.get()
    }

    /// Wakes `waker` at the next notification (instead of whoever registered before).
    pub fn register(&self, waker: &Waker) {
        *self.waker.borrow_mut() = Some(waker.clone());
    }

    /// Completes once notified (consuming the notification).
    pub async fn wait(&self) {
        std::future::poll_fn(|cx| {
            if self.set.replace(false) {
                Poll::Ready(())
            } else {
                *self.waker.borrow_mut() = Some(cx.waker().clone());
                Poll::Pending
            }
        })
        .await;
    }
}

/// Runs `fut` until it completes or `abort` is notified; then drops it. Returns `None`
/// when aborted.
pub async fn abortable<F: Future>(fut: F, abort: Rc<Signal>) -> Option<F::Output> {
    let mut fut = pin!(fut);
    std::future::poll_fn(|cx| {
        if abort.set.get() {
            return Poll::Ready(None);
        }
        *abort.waker.borrow_mut() = Some(cx.waker().clone());
        fut.as_mut().poll(cx).map(Some)
    })
    .await
}

/// Sleeps for `ms` milliseconds (forever if `None`) or until `signal` is notified.
pub async fn sleep_or_signal(ms: Option<f64>, signal: &Signal) {
    let mut sleep = ms.map(|ms| {
        let ms = ms.clamp(0.0, f64::from(i32::MAX)) as u32;
        gloo_timers::future::TimeoutFuture::new(ms)
    });
    let mut wait = pin!(signal.wait());
    std::future::poll_fn(|cx| {
        if wait.as_mut().poll(cx).is_ready() {
            return Poll::Ready(());
        }
        match sleep.as_mut() {
            Some(s) => std::pin::Pin::new(s).poll(cx),
            None => Poll::Pending,
        }
    })
    .await;
}
