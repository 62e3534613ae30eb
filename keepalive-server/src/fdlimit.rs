//! The open-file limit: raised to the hard limit at start.
//!
//! Every connection is a file descriptor. Linux distributions often start processes with a
//! soft `RLIMIT_NOFILE` of 1024, far below `--max-connections`: past it `accept` fails
//! with EMFILE and new clients hang in the listen backlog instead of being refused
//! cleanly. A process may raise its own soft limit up to the hard limit without
//! privileges, so the server does that once at start and logs what it got; if the result
//! is still below `--max-connections` it says so, because then the file limit and not the
//! connection limit is what clients will meet first.

/// File descriptors kept for things other than connections (listener, event log, stdio,
/// the runtime's own).
pub const RESERVED_FDS: u64 = 64;

/// What [`raise_nofile`] did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NofileLimit {
    /// The soft limit before.
    pub before: u64,
    /// The soft limit now (the hard limit if raising worked).
    pub now: u64,
}

/// Raises the soft `RLIMIT_NOFILE` to the hard limit.
pub fn raise_nofile() -> std::io::Result<NofileLimit> {
    let (before, _hard) = rlimit::Resource::NOFILE.get()?;
    let now = rlimit::increase_nofile_limit(u64::MAX)?;
    Ok(NofileLimit { before, now })
}

/// Raises the limit and logs the outcome, with a warning when `max_connections` cannot
/// be reached under it.
pub fn raise_and_log(max_connections: usize) {
    match raise_nofile() {
        Ok(NofileLimit { before, now }) => {
            if now > before {
                tracing::info!(before, now, "open file limit raised to the hard limit");
            } else {
                tracing::info!(limit = now, "open file limit");
            }
            let usable = now.saturating_sub(RESERVED_FDS);
            if (max_connections as u64) > usable {
                tracing::warn!(
                    max_connections,
                    open_file_limit = now,
                    "--max-connections is above what the open file limit allows; \
                     accept will fail (EMFILE) before the connection limit refuses cleanly"
                );
            }
        }
        Err(e) => tracing::warn!(error = %e, "cannot read or raise the open file limit"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn raising_never_lowers() {
        let got = raise_nofile().expect("getrlimit works on Linux");
        assert!(got.now >= got.before, "{got:?}");
        let (soft, _) = rlimit::Resource::NOFILE.get().expect("get");
        assert_eq!(soft, got.now);
    }
}
