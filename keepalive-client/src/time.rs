//! The browser's clocks and randomness, as the core wants them.
//!
//! `performance.now()` is monotonic and keeps running while a tab is throttled, so a timer
//! that fires late is recognised by comparing it with the deadline (the core does that).
//! `Date.now()` is the wall clock, used only for display and round-trip stamps.

/// Now, on the monotonic clock (`performance.now()`).
pub fn now() -> keepalive::Instant {
    keepalive::Instant::from_millis_f64(now_ms())
}

/// `performance.now()` in milliseconds (falls back to `Date.now()` without a window).
pub fn now_ms() -> f64 {
    web_sys::window()
        .and_then(|w| w.performance())
        .map_or_else(js_sys::Date::now, |p| p.now())
}

/// The wall clock in milliseconds since the Unix epoch.
pub fn wall_ms() -> f64 {
    js_sys::Date::now()
}

/// A 64-bit seed for the backoff jitter.
pub fn seed() -> u64 {
    let hi = (js_sys::Math::random() * f64::from(u32::MAX)) as u64;
    let lo = (js_sys::Math::random() * f64::from(u32::MAX)) as u64;
    (hi << 32) | lo
}

/// `n` random bytes as hex, from `crypto.getRandomValues` (falls back to `Math.random`
/// where there is no `crypto`, which only idempotency keys use).
pub fn random_hex(n: usize) -> String {
    let mut bytes = vec![0u8; n];
    let filled = web_sys::window()
        .and_then(|w| w.crypto().ok())
        .is_some_and(|c| c.get_random_values_with_u8_array(&mut bytes).is_ok());
    if !filled {
        for b in &mut bytes {
            *b = (js_sys::Math::random() * 256.0) as u8;
        }
    }
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
