//! How numbers and times read on the page: short, fixed-width where they change often.

use std::time::Duration;

/// An elapsed time for people: `850 ms`, `12.3 s`, `2 min 05 s`, `1 h 02 min`.
pub fn elapsed_ms(ms: f64) -> String {
    let ms = ms.max(0.0);
    if ms < 1000.0 {
        return format!("{} ms", ms.round() as u64);
    }
    let secs = ms / 1000.0;
    if secs < 60.0 {
        return format!("{secs:.1} s");
    }
    let whole = secs.floor() as u64;
    if whole < 3600 {
        return format!("{} min {:02} s", whole / 60, whole % 60);
    }
    format!("{} h {:02} min", whole / 3600, (whole % 3600) / 60)
}

/// A round-trip time: `0.8 ms`, `4 ms`, `1.20 s`.
pub fn rtt_ms(ms: f64) -> String {
    if ms < 10.0 {
        format!("{ms:.1} ms")
    } else if ms < 1000.0 {
        format!("{} ms", ms.round() as u64)
    } else {
        format!("{:.2} s", ms / 1000.0)
    }
}

/// A configured duration: `2 s`, `1.5 s`, `500 ms`, `2 min`.
pub fn setting(d: Duration) -> String {
    let ms = d.as_millis();
    if ms < 1000 {
        format!("{ms} ms")
    } else if ms.is_multiple_of(60_000) {
        format!("{} min", ms / 60_000)
    } else {
        format!("{} s", trim_float(d.as_secs_f64()))
    }
}

/// `1.5`, `2`, `0.25`: a float without trailing zeros (three decimals at most).
pub fn trim_float(x: f64) -> String {
    let s = format!("{x:.3}");
    let s = s.trim_end_matches('0').trim_end_matches('.');
    if s.is_empty() || s == "-" {
        "0".to_owned()
    } else {
        s.to_owned()
    }
}

/// Local wall-clock time `HH:MM:SS` of `epoch_ms`, given the local offset from UTC in
/// minutes (east positive).
pub fn clock(epoch_ms: f64, utc_offset_min: f64) -> String {
    let local = (epoch_ms + utc_offset_min * 60_000.0).max(0.0);
    let secs = (local / 1000.0).floor() as u64;
    let day = secs % 86_400;
    format!("{:02}:{:02}:{:02}", day / 3600, (day % 3600) / 60, day % 60)
}

/// [`clock`] with tenths of a second: `HH:MM:SS.s`.
pub fn clock_tenths(epoch_ms: f64, utc_offset_min: f64) -> String {
    let local = (epoch_ms + utc_offset_min * 60_000.0).max(0.0);
    let tenths = ((local % 1000.0) / 100.0).floor() as u64;
    format!("{}.{tenths}", clock(epoch_ms, utc_offset_min))
}

/// A counter with thin grouping: `1 234 567`.
pub fn count(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push('\u{2009}');
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn elapsed() {
        assert_eq!(elapsed_ms(-5.0), "0 ms");
        assert_eq!(elapsed_ms(850.4), "850 ms");
        assert_eq!(elapsed_ms(12_345.0), "12.3 s");
        assert_eq!(elapsed_ms(125_000.0), "2 min 05 s");
        assert_eq!(elapsed_ms(3_720_000.0), "1 h 02 min");
    }

    #[test]
    fn rtts_and_settings() {
        assert_eq!(rtt_ms(0.84), "0.8 ms");
        assert_eq!(rtt_ms(42.4), "42 ms");
        assert_eq!(rtt_ms(1200.0), "1.20 s");
        assert_eq!(setting(Duration::from_millis(500)), "500 ms");
        assert_eq!(setting(Duration::from_secs(2)), "2 s");
        assert_eq!(setting(Duration::from_millis(1500)), "1.5 s");
        assert_eq!(setting(Duration::from_secs(120)), "2 min");
        assert_eq!(trim_float(1.6), "1.6");
        assert_eq!(trim_float(0.0), "0");
        assert_eq!(trim_float(0.25), "0.25");
    }

    #[test]
    fn clocks() {
        // 1970-01-02 01:02:03.456 UTC
        let t = 86_400_000.0 + 3_723_456.0;
        assert_eq!(clock(t, 0.0), "01:02:03");
        assert_eq!(clock(t, 60.0), "02:02:03");
        assert_eq!(clock_tenths(t, 0.0), "01:02:03.4");
    }

    #[test]
    fn counts() {
        assert_eq!(count(0), "0");
        assert_eq!(count(999), "999");
        assert_eq!(count(1234), "1\u{2009}234");
        assert_eq!(count(1_234_567), "1\u{2009}234\u{2009}567");
    }
}
