//! The open-file limit: every connection is a file descriptor, and ten thousand sessions
//! hold twenty thousand connections.

/// Raises the soft `RLIMIT_NOFILE` to at least `wanted` if possible: up to the hard
/// limit always, beyond it only with the privilege to raise the hard limit (root).
/// Returns the soft limit now.
pub fn raise_nofile(wanted: u64) -> std::io::Result<u64> {
    let (soft, hard) = rlimit::Resource::NOFILE.get()?;
    if soft >= wanted {
        return Ok(soft);
    }
    if hard < wanted {
        // Needs CAP_SYS_RESOURCE; without it the hard limit stays as it is.
        let _ = rlimit::Resource::NOFILE.set(wanted, wanted);
    }
    rlimit::increase_nofile_limit(wanted)
}
