//! What the bench reads about the machine and its processes, from `/proc`: a process's
//! CPU time and resident memory, the whole machine's busy CPU time, the load average, the
//! CPU model, cores, memory and kernel; and the open-file limit its children inherit.

use std::process::Command;
use std::sync::OnceLock;

/// Open files asked for the bench's children: ten thousand sessions are twenty thousand
/// sockets on each side.
pub const NOFILE: u64 = 65_536;

/// CPU time and resident memory of a process.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Usage {
    /// user + system CPU seconds (`user_s + sys_s`).
    pub cpu_s: f64,
    /// CPU seconds in user space (`utime`).
    pub user_s: f64,
    /// CPU seconds in the kernel on its behalf (`stime`): system calls, and the network
    /// stack's work charged to it.
    pub sys_s: f64,
    /// Resident set, KiB.
    pub rss_kib: u64,
}

/// Reads `/proc/<pid>/stat` (utime, stime) and `/proc/<pid>/status` (VmRSS).
pub fn usage(pid: u32) -> Option<Usage> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    parse_usage(&stat, &status, clock_ticks())
}

fn parse_usage(stat: &str, status: &str, ticks_per_s: f64) -> Option<Usage> {
    // Fields after the command name (which may hold spaces) start at the state, field 3.
    let rest = stat.get(stat.rfind(')')? + 2..)?;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let utime: f64 = fields.get(11)?.parse().ok()?;
    let stime: f64 = fields.get(12)?.parse().ok()?;
    let rss_kib = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())?;
    Some(Usage {
        cpu_s: (utime + stime) / ticks_per_s,
        user_s: utime / ticks_per_s,
        sys_s: stime / ticks_per_s,
        rss_kib,
    })
}

/// CPU seconds the whole machine spent busy (not idle, not waiting for I/O) since boot,
/// from the first line of `/proc/stat`.
pub fn machine_busy_s() -> Option<f64> {
    let stat = std::fs::read_to_string("/proc/stat").ok()?;
    parse_busy(&stat, clock_ticks())
}

/// CPU seconds core `cpu` spent busy since boot (its `cpuN` line of `/proc/stat`).
pub fn cpu_busy_s(cpu: usize) -> Option<f64> {
    let stat = std::fs::read_to_string("/proc/stat").ok()?;
    parse_cpu_busy(&stat, &format!("cpu{cpu} "), clock_ticks())
}

fn parse_busy(stat: &str, ticks_per_s: f64) -> Option<f64> {
    parse_cpu_busy(stat, "cpu ", ticks_per_s)
}

/// The busy seconds of the `/proc/stat` line starting with `prefix` (`cpu ` for all).
fn parse_cpu_busy(stat: &str, prefix: &str, ticks_per_s: f64) -> Option<f64> {
    let line = stat.lines().find_map(|l| l.strip_prefix(prefix))?;
    let v: Vec<f64> = line
        .split_whitespace()
        .filter_map(|x| x.parse().ok())
        .collect();
    // user nice system idle iowait irq softirq steal …
    let busy: f64 = v.iter().take(8).sum::<f64>() - v.get(3)? - v.get(4)?;
    Some(busy / ticks_per_s)
}

/// `sysconf(_SC_CLK_TCK)` without libc (and `unsafe`): `getconf CLK_TCK` once, else
/// Linux's 100.
fn clock_ticks() -> f64 {
    static TICKS: OnceLock<f64> = OnceLock::new();
    *TICKS.get_or_init(|| {
        Command::new("getconf")
            .arg("CLK_TCK")
            .output()
            .ok()
            .and_then(|o| String::from_utf8(o.stdout).ok())
            .and_then(|s| s.trim().parse().ok())
            .unwrap_or(100.0)
    })
}

/// CPU model, cores, memory, kernel.
pub fn describe() -> String {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let model = cpuinfo
        .lines()
        .find_map(|l| l.strip_prefix("model name"))
        .and_then(|l| l.split_once(':'))
        .map(|(_, m)| m.trim().to_string())
        .unwrap_or_else(|| "unknown CPU".into());
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    let mem_gib = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|m| {
            m.lines()
                .find_map(|l| l.strip_prefix("MemTotal:"))
                .and_then(|v| v.split_whitespace().next()?.parse::<f64>().ok())
        })
        .map_or(0.0, |kib| kib / 1024.0 / 1024.0);
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    format!(
        "{cores} cores ({model}), {mem_gib:.0} GiB, Linux {}",
        kernel.trim()
    )
}

/// The 1, 5 and 15 minute load averages.
pub fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "unknown".into())
}

/// Sets this process's open-file limit, soft and hard, to `wanted` (what its children
/// inherit; the servers and the load generator raise their soft limit to the hard one
/// themselves). Above the hard limit that needs the privilege to raise it; without it the
/// soft limit goes as high as the hard one. Returns the hard limit now, if readable.
pub fn set_nofile(wanted: u64) -> Option<u64> {
    let nofile = rlimit::Resource::NOFILE;
    if nofile.set(wanted, wanted).is_err() {
        let _ = rlimit::increase_nofile_limit(wanted);
    }
    nofile.get().ok().map(|(_, hard)| hard)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_proc_files() {
        let stat = "1234 (a (b) c) S 1 2 3 4 5 6 7 8 9 10 250 50 0 0 20 0 4 0";
        let status = "Name:\tx\nVmPeak:\t 9 kB\nVmRSS:\t   5120 kB\n";
        assert_eq!(
            parse_usage(stat, status, 100.0),
            Some(Usage {
                cpu_s: 3.0,
                user_s: 2.5,
                sys_s: 0.5,
                rss_kib: 5120
            })
        );
        assert_eq!(parse_usage("garbage", status, 100.0), None);
        let busy = parse_busy("cpu  100 0 50 1000 30 0 10 0 0 0\ncpu0 1 2 3\n", 100.0);
        assert_eq!(busy, Some(1.6));
        let stat = "cpu  100 0 50 1000 30 0 10 0 0 0\ncpu0 10 0 5 100 0 0 0 0 0 0\n\
                    cpu1 90 0 45 900 30 0 10 0 0 0\n";
        assert_eq!(parse_cpu_busy(stat, "cpu1 ", 100.0), Some(1.45));
        assert_eq!(parse_cpu_busy(stat, "cpu2 ", 100.0), None);
        // Our own process is there.
        let me = usage(std::process::id()).expect("own /proc entry");
        assert!(me.rss_kib > 0);
        assert!((me.cpu_s - (me.user_s + me.sys_s)).abs() < 1e-9);
        assert!(machine_busy_s().is_some_and(|s| s > 0.0));
    }
}
