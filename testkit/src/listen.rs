//! Where a server listens, read from its own log: the one line every server of this
//! workspace prints once it accepts connections, `listening on <ip>:<port>`. Reading it
//! (rather than choosing a port and hoping) lets a server bind `127.0.0.1:0` and tell us
//! which port the kernel gave it, so tests never race for a port.

use crate::ansi::strip_ansi;
use std::net::SocketAddr;

/// The text the server prints, followed by its bound address, once it is ready.
pub const LISTENING_MARKER: &str = "listening on ";

/// Parses the address out of a line containing `listening on <addr>`.
///
/// Accepts an optional `http://` / `https://` scheme, ANSI colours and trailing
/// punctuation. `None` when there is no marker, the address does not parse, or its port is
/// 0 (not yet bound).
pub fn parse_listen_addr(line: &str) -> Option<SocketAddr> {
    let line = strip_ansi(line);
    let start = line.find(LISTENING_MARKER)? + LISTENING_MARKER.len();
    let rest = line[start..].trim_start();
    let rest = rest
        .strip_prefix("http://")
        .or_else(|| rest.strip_prefix("https://"))
        .unwrap_or(rest);
    let token: String = rest
        .chars()
        .take_while(|c| !c.is_whitespace() && !matches!(c, ',' | '"' | '\'' | '`' | ';'))
        .collect();
    let token = token.trim_end_matches(['.', ')', '/']);
    let addr: SocketAddr = token.parse().ok()?;
    (addr.port() != 0).then_some(addr)
}

/// Whether `args` already choose a listen address (`--listen X` or `--listen=X`).
pub fn has_listen_arg(args: &[String]) -> bool {
    args.iter()
        .any(|a| a == "--listen" || a.starts_with("--listen="))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_listen_line() {
        let want: SocketAddr = "127.0.0.1:4242".parse().expect("addr");
        for line in [
            "INFO server: listening on 127.0.0.1:4242",
            "listening on http://127.0.0.1:4242/",
            "\x1b[32mINFO\x1b[0m listening on \x1b[1m127.0.0.1:4242\x1b[0m, tls=false",
            "listening on 127.0.0.1:4242.",
        ] {
            assert_eq!(parse_listen_addr(line), Some(want), "{line}");
        }
        assert_eq!(
            parse_listen_addr("listening on [::1]:80"),
            "[::1]:80".parse().ok()
        );
        assert_eq!(parse_listen_addr("listening on 127.0.0.1:0"), None);
        assert_eq!(parse_listen_addr("binding 127.0.0.1:4242"), None);
    }

    #[test]
    fn detects_listen_arg() {
        let args = |a: &[&str]| a.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert!(has_listen_arg(&args(&["--listen", "0.0.0.0:1"])));
        assert!(has_listen_arg(&args(&["-v", "--listen=0.0.0.0:1"])));
        assert!(!has_listen_arg(&args(&["--listen-foo", "x"])));
    }
}
