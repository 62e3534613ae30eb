//! The market: a random walk per symbol, one tick per interval, appended to its log.

use keepalive_server::log::{EventLog, LogError, now_ms};
use prices_proto::v1::PriceTick;
use std::sync::Arc;
use std::time::Duration;

/// The first price of a symbol with no history: 100.00.
pub const OPENING_PRICE_MICROS: i64 = 100_000_000;

/// The latest tick of `log`, if it has one.
///
/// # Errors
/// The log's read failed.
pub async fn last_tick(log: &dyn EventLog<PriceTick>) -> Result<Option<PriceTick>, LogError> {
    let head = log.head();
    if head == 0 {
        return Ok(None);
    }
    Ok(log.read_after(head - 1, 1).await?.events.pop())
}

/// The next price after `price`: ±1% at most, never below one cent.
pub fn next_price(price: i64, sample: f64) -> i64 {
    let step = (price as f64 * 0.01 * (sample * 2.0 - 1.0)) as i64;
    (price + step).max(10_000)
}

/// Publishes a tick of `symbol` every `every`, continuing from the last price in `log`.
pub async fn run(symbol: &'static str, log: Arc<dyn EventLog<PriceTick>>, every: Duration) {
    let mut price = match last_tick(log.as_ref()).await {
        Ok(Some(t)) => t.price_micros,
        _ => OPENING_PRICE_MICROS,
    };
    let mut interval = tokio::time::interval(every);
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    interval.tick().await;
    loop {
        interval.tick().await;
        price = next_price(price, fastrand::f64());
        let tick = PriceTick {
            sequence: 0,
            symbol: symbol.to_string(),
            price_micros: price,
            at_ms: now_ms(),
        };
        if let Err(e) = log.append(tick, None).await {
            tracing::warn!(symbol, error = %e, "cannot publish a tick");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prices_walk_within_one_percent() {
        assert_eq!(next_price(100_000_000, 0.5), 100_000_000);
        assert_eq!(next_price(100_000_000, 1.0), 101_000_000);
        assert_eq!(next_price(100_000_000, 0.0), 99_000_000);
        assert_eq!(next_price(10_000, 0.0), 10_000);
    }
}
