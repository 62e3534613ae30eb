//! The chaos token, from the page's URL fragment.
//!
//! `cargo xtask demo` prints `http://127.0.0.1:8080/#chaos=TOKEN`. A fragment is never
//! sent to the server (not in the request, not in a `Referer`), so the token goes only
//! where the person who started the demo pastes that URL; the server never hands it out.
//! The page presents it in each `Chaos` call.

/// The value of `chaos=` in `fragment` (`#chaos=abc&x=1` or `chaos=abc`), percent-decoded;
/// `None` when absent or empty.
pub fn chaos_token(fragment: &str) -> Option<String> {
    fragment
        .trim_start_matches('#')
        .split('&')
        .filter_map(|pair| pair.split_once('='))
        .find(|(key, _)| *key == "chaos")
        .and_then(|(_, value)| percent_decode(value))
        .filter(|token| !token.is_empty())
}

fn percent_decode(s: &str) -> Option<String> {
    let mut out = Vec::with_capacity(s.len());
    let mut bytes = s.bytes();
    while let Some(b) = bytes.next() {
        if b == b'%' {
            let hi = char::from(bytes.next()?).to_digit(16)?;
            let lo = char::from(bytes.next()?).to_digit(16)?;
            out.push((hi * 16 + lo) as u8);
        } else {
            out.push(b);
        }
    }
    String::from_utf8(out).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_token() {
        assert_eq!(chaos_token("#chaos=ab12"), Some("ab12".into()));
        assert_eq!(chaos_token("x=1&chaos=a%2Bb"), Some("a+b".into()));
        assert_eq!(chaos_token("#chaos="), None);
        assert_eq!(chaos_token(""), None);
        assert_eq!(chaos_token("#chaosx=1"), None);
        assert_eq!(chaos_token("#chaos=%zz"), None);
    }
}
