//! ANSI escape sequences out of captured lines: a server may colour its log even when
//! told not to (a dependency's own formatter), and a test compares text.

/// Removes ANSI escape sequences (CSI such as colours, OSC, and two-byte escapes).
pub fn strip_ansi(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars().peekable();
    while let Some(c) = chars.next() {
        if c != '\x1b' {
            out.push(c);
            continue;
        }
        match chars.next() {
            // CSI: parameters and intermediates, then one final byte in '@'..='~'.
            Some('[') => {
                for c in chars.by_ref() {
                    if ('@'..='~').contains(&c) {
                        break;
                    }
                }
            }
            // OSC: until BEL or ST (ESC \).
            Some(']') => {
                while let Some(c) = chars.next() {
                    if c == '\x07' {
                        break;
                    }
                    if c == '\x1b' {
                        if chars.peek() == Some(&'\\') {
                            chars.next();
                        }
                        break;
                    }
                }
            }
            // Two-byte escape (or a lone ESC at the end): drop it.
            _ => {}
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strips_ansi_codes() {
        let line = "\x1b[2m2025-01-01T00:00:00Z\x1b[0m \x1b[32m INFO\x1b[0m \x1b[2mserver\x1b[0m\x1b[2m:\x1b[0m listening on 127.0.0.1:4242";
        assert_eq!(
            strip_ansi(line),
            "2025-01-01T00:00:00Z  INFO server: listening on 127.0.0.1:4242"
        );
        assert_eq!(strip_ansi("a\x1b]0;title\x07b\x1bMc\x1b"), "abc");
    }
}
