//! `cargo xtask fuzz [--seconds N]`: the long run of the fuzz harnesses.
//!
//! The harnesses are proptest-driven tests on stable Rust (`tests/tests/fuzz.rs`: the
//! HTTP/2 frame observer in both directions, the gRPC message-size scanner, and arbitrary
//! byte streams against a real server in the test process). `cargo xtask test` runs them
//! for a few seconds with their default case counts; this runs each harness for
//! `--seconds` (default [`DEFAULT_SECONDS`]), one at a time so they do not share the
//! two cores, and sums up the `FUZZ` lines they print: executions and findings. A finding
//! fails the run with the shrunk input in the output.

use crate::error::{Result, bail};
use crate::workspace::Workspace;

/// Seconds each harness runs by default.
pub const DEFAULT_SECONDS: u64 = 60;

/// Options of `cargo xtask fuzz`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FuzzOptions {
    /// Seconds each harness keeps running new batches.
    pub seconds: u64,
}

impl Default for FuzzOptions {
    fn default() -> Self {
        FuzzOptions {
            seconds: DEFAULT_SECONDS,
        }
    }
}

/// One harness's result, from its `FUZZ` line.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Tally {
    name: String,
    executions: u64,
    finding: bool,
}

/// Parses `FUZZ <name>: <N> executions in <T>, 0 findings` or
/// `FUZZ <name>: FINDING after <N> executions: ...`.
fn parse_line(line: &str) -> Option<Tally> {
    let rest = line.trim().strip_prefix("FUZZ ")?;
    let (name, rest) = rest.split_once(": ")?;
    let (finding, rest) = match rest.strip_prefix("FINDING after ") {
        Some(r) => (true, r),
        None => (false, rest),
    };
    let executions = rest.split_whitespace().next()?.parse().ok()?;
    Some(Tally {
        name: name.to_string(),
        executions,
        finding,
    })
}

/// Runs `cargo xtask fuzz`.
pub fn run(ws: &Workspace, opts: &FuzzOptions) -> Result<()> {
    let mut tallies: Vec<Tally> = Vec::new();
    let cmd = ws
        .cargo()
        .args([
            "test",
            "-p",
            "tests",
            "--test",
            "fuzz",
            "--",
            "--nocapture",
            "--test-threads=1",
        ])
        .env("KEEPALIVE_FUZZ_SECONDS", opts.seconds.to_string());
    let result = cmd.run_reading_stderr(|line| tallies.extend(parse_line(line)));
    println!(
        "\nfuzz summary ({} s per harness, stable Rust, proptest):",
        opts.seconds
    );
    for t in &tallies {
        let what = if t.finding { "FINDING" } else { "0 findings" };
        println!("  {:<28} {:>12} executions  {what}", t.name, t.executions);
    }
    let total: u64 = tallies.iter().map(|t| t.executions).sum();
    let findings = tallies.iter().filter(|t| t.finding).count();
    println!(
        "  {:<28} {total:>12} executions  {findings} findings",
        "total"
    );
    result?;
    if findings > 0 {
        bail!("{findings} fuzz findings");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_fuzz_lines() {
        assert_eq!(
            parse_line("FUZZ observer_incoming: 2000 executions in 1.0s, 0 findings"),
            Some(Tally {
                name: "observer_incoming".into(),
                executions: 2000,
                finding: false
            })
        );
        assert_eq!(
            parse_line("FUZZ server_wire: FINDING after 17 executions: boom"),
            Some(Tally {
                name: "server_wire".into(),
                executions: 17,
                finding: true
            })
        );
        assert_eq!(parse_line("PROBE x: 1 calls"), None);
    }
}
