//! Session ids and resume tokens: unguessable, compared without leaking timing.
//!
//! A session id is the only credential a browser session has: whoever knows it can
//! heartbeat, publish and subscribe as that session. A resume token binds a resume point
//! to its session. Both are 128 bits from the operating system's CSPRNG (`getrandom`),
//! written as 32 lowercase hex digits. `fastrand` (used for jitter) is not a CSPRNG and
//! must not be used here.

/// 128 random bits from the OS CSPRNG, as 32 lowercase hex digits.
pub fn random_hex128() -> Result<String, getrandom::Error> {
    let mut bytes = [0u8; 16];
    getrandom::fill(&mut bytes)?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

/// 128 bits that are unique (not secret): random, or — should the CSPRNG fail — the
/// wall clock and a process-wide counter, for ids such as a log's `log_id` that must only
/// never repeat.
pub fn unique_hex128() -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    random_hex128().unwrap_or_else(|_| {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as u64);
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        format!(
            "{nanos:016x}{:016x}",
            n ^ u64::from(std::process::id()) << 32
        )
    })
}

/// Compares two secrets in time that depends only on their lengths.
pub fn ct_eq(a: &str, b: &str) -> bool {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    if a.len() != b.len() {
        return false;
    }
    let diff = a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y));
    std::hint::black_box(diff) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_hex_and_distinct() {
        let a = random_hex128().expect("rng");
        let b = random_hex128().expect("rng");
        assert_eq!(a.len(), 32);
        assert!(
            a.chars()
                .all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase())
        );
        assert_ne!(a, b);
    }

    #[test]
    fn constant_time_eq() {
        assert!(ct_eq("abc", "abc"));
        assert!(!ct_eq("abc", "abd"));
        assert!(!ct_eq("abc", "ab"));
        assert!(ct_eq("", ""));
    }
}
