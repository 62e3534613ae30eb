//! [`Options`]: where the server is, the keepalive knobs, and which methods may be retried.

use keepalive::client::{ClientConfig, RetryPolicy};

/// How to reach the server, grpc-go's keepalive knobs (emulated), and the retry policy of
/// each method, as gRPC's service config declares them.
///
/// ```
/// use keepalive_client::{Options, RetryPolicy};
/// use std::time::Duration;
///
/// let mut options = Options::new("https://api.example")
///     // Quote is idempotent: retry it on UNAVAILABLE (A6), up to 3 attempts.
///     .retry("prices.v1.Prices/Quote", RetryPolicy { max_attempts: 3, ..RetryPolicy::default() });
/// options.keepalive.keepalive_time = Duration::from_secs(10);
/// assert!(options.retry_policy("/prices.v1.Prices/Quote").is_some());
/// assert!(options.retry_policy("/prices.v1.Prices/Watch").is_none());
/// ```
#[derive(Clone, Debug, PartialEq)]
pub struct Options {
    /// The server's base URL, e.g. `https://api.example` (empty: the page's origin).
    pub url: String,
    /// Keepalive, backoff and stream-silence knobs.
    pub keepalive: ClientConfig,
    /// Retry policies by name: `package.Service/Method` for one method, `package.Service`
    /// for every method of a service (the method's own entry wins). Methods without one
    /// are never retried (proposal A6: only what is declared).
    pub retry: Vec<(String, RetryPolicy)>,
}

impl Options {
    /// Defaults (grpc-go's keepalive meanings, gRPC's backoff, no retries) for `url`.
    pub fn new(url: impl Into<String>) -> Self {
        Options {
            url: url.into(),
            keepalive: ClientConfig::default(),
            retry: Vec::new(),
        }
    }

    /// Declares `policy` for `name` (`package.Service/Method` or `package.Service`).
    pub fn retry(mut self, name: impl Into<String>, policy: RetryPolicy) -> Self {
        let name = name.into();
        self.retry.retain(|(n, _)| *n != name);
        self.retry.push((name, policy));
        self
    }

    /// The policy of the method at `path` (`/package.Service/Method`), if declared.
    pub fn retry_policy(&self, path: &str) -> Option<&RetryPolicy> {
        let method = path.trim_start_matches('/');
        let service = method.split_once('/').map_or(method, |(s, _)| s);
        let find = |name: &str| self.retry.iter().find(|(n, _)| n == name).map(|(_, p)| p);
        find(method).or_else(|| find(service))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_method_entry_wins_over_its_service() {
        let quick = RetryPolicy {
            max_attempts: 2,
            ..RetryPolicy::default()
        };
        let o = Options::new("")
            .retry("a.B", RetryPolicy::default())
            .retry("a.B/C", quick.clone());
        assert_eq!(o.retry_policy("/a.B/C"), Some(&quick));
        assert_eq!(o.retry_policy("/a.B/D"), Some(&RetryPolicy::default()));
        assert_eq!(o.retry_policy("/x.Y/Z"), None);
    }
}
