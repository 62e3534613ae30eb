//! A server's counters, read the way Prometheus reads them: `GET /metrics` (the text
//! format). Tests wait for a counter rather than a log line: the counter is the server's
//! promise to operators, the wording of a log line is not.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// How long one scrape may take.
const TIMEOUT: Duration = Duration::from_secs(5);

/// One scrape: every sample, `name` or `name{labels}` exactly as printed, to its value.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Metrics {
    samples: BTreeMap<String, f64>,
    text: String,
}

impl Metrics {
    /// Parses the Prometheus text format (comments skipped).
    pub fn parse(text: &str) -> Metrics {
        let samples = text
            .lines()
            .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
            .filter_map(|l| {
                let (key, value) = l.rsplit_once(' ')?;
                Some((key.trim().to_owned(), value.trim().parse().ok()?))
            })
            .collect();
        Metrics {
            samples,
            text: text.to_owned(),
        }
    }

    /// The value of `sample` (`keepalive_pings_sent_total`,
    /// `keepalive_goaways_total{reason="max_idle"}`).
    pub fn get(&self, sample: &str) -> Option<f64> {
        self.samples.get(sample).copied()
    }

    /// Every sample.
    pub fn samples(&self) -> &BTreeMap<String, f64> {
        &self.samples
    }

    /// Every sample summed over `parts` (the counters of several replicas as one); the
    /// text is theirs, one after the other.
    pub fn sum(parts: &[Metrics]) -> Metrics {
        let mut samples = BTreeMap::new();
        for part in parts {
            for (key, value) in &part.samples {
                *samples.entry(key.clone()).or_insert(0.0) += value;
            }
        }
        Metrics {
            samples,
            text: parts.iter().map(|p| p.text.as_str()).collect(),
        }
    }

    /// The text as scraped (for assertion messages).
    pub fn text(&self) -> &str {
        &self.text
    }
}

/// `GET /metrics` over plain HTTP/1.1 on a connection of its own.
///
/// # Errors
/// A connection or read error, a timeout, or a status other than 200.
pub async fn scrape(addr: SocketAddr) -> Result<Metrics, String> {
    let body = tokio::time::timeout(TIMEOUT, get(addr, "/metrics"))
        .await
        .map_err(|_| format!("no answer within {TIMEOUT:?}"))??;
    Ok(Metrics::parse(&body))
}

/// A plain HTTP/1.1 GET; the body of a 200 (chunked or not).
///
/// # Errors
/// A connection or read error, or a status other than 200.
pub async fn get(addr: SocketAddr, path: &str) -> Result<String, String> {
    let mut sock = tokio::net::TcpStream::connect(addr)
        .await
        .map_err(|e| format!("connect: {e}"))?;
    let request = format!("GET {path} HTTP/1.1\r\nhost: {addr}\r\nconnection: close\r\n\r\n");
    sock.write_all(request.as_bytes())
        .await
        .map_err(|e| format!("write: {e}"))?;
    let mut raw = Vec::new();
    sock.read_to_end(&mut raw)
        .await
        .map_err(|e| format!("read: {e}"))?;
    response_body(&raw)
}

/// The body of a complete HTTP/1.1 response (read to the close) if its status is 200,
/// chunked or not: for callers with a transport of their own (TLS).
///
/// # Errors
/// No response head, or a status other than 200.
pub fn response_body(raw: &[u8]) -> Result<String, String> {
    let raw = String::from_utf8_lossy(raw);
    let (head, body) = raw
        .split_once("\r\n\r\n")
        .ok_or_else(|| format!("no response head in {raw:?}"))?;
    let status = head.lines().next().unwrap_or_default();
    if !status.contains(" 200") {
        return Err(format!("{status}: {body}"));
    }
    let chunked = head.lines().any(|l| {
        let l = l.to_ascii_lowercase();
        l.starts_with("transfer-encoding:") && l.contains("chunked")
    });
    Ok(if chunked {
        dechunk(body)
    } else {
        body.to_owned()
    })
}

/// The data of a chunked body.
fn dechunk(mut body: &str) -> String {
    let mut out = String::new();
    while let Some((size, rest)) = body.split_once("\r\n") {
        let Ok(size) = usize::from_str_radix(size.trim(), 16) else {
            break;
        };
        if size == 0 || rest.len() < size {
            break;
        }
        out.push_str(&rest[..size]);
        body = rest[size..].trim_start_matches("\r\n");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_samples_with_and_without_labels() {
        let m = Metrics::parse(
            "# HELP x y\n# TYPE keepalive_pings_sent counter\nkeepalive_pings_sent_total 3\n\
             keepalive_goaways_total{reason=\"max_idle\"} 1\n# EOF\n",
        );
        assert_eq!(m.get("keepalive_pings_sent_total"), Some(3.0));
        assert_eq!(
            m.get("keepalive_goaways_total{reason=\"max_idle\"}"),
            Some(1.0)
        );
        assert_eq!(m.get("keepalive_goaways_total"), None);
        assert_eq!(m.samples().len(), 2);
    }

    #[test]
    fn sums_every_sample_over_the_parts() {
        let a = Metrics::parse("x 1\ny{r=\"a\"} 2\n");
        let b = Metrics::parse("x 3\nz 4\n");
        let s = Metrics::sum(&[a, b]);
        assert_eq!(s.get("x"), Some(4.0));
        assert_eq!(s.get("y{r=\"a\"}"), Some(2.0));
        assert_eq!(s.get("z"), Some(4.0));
        assert_eq!(Metrics::sum(&[]).get("x"), None);
    }

    #[test]
    fn dechunks() {
        assert_eq!(
            dechunk("5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n"),
            "hello world"
        );
    }
}
