//! Where a server's time goes, so that a target the bench misses comes with what bounds
//! it (issue 13: "the profile that shows what bounds it, named functions and their
//! share"), from a tool that needs no rebuild:
//! - [`Recording`]: `perf record -e cpu-clock` on a running server over a window (this
//!   machine has no hardware counters; cpu-clock samples user and kernel alike), then
//!   [`perf_report`]: the share of the samples in the kernel and the hottest functions.
//! - [`callgrind_functions`]: a callgrind dump's instructions by function (self cost,
//!   `callgrind_annotate --inclusive=no`), then [`by_crate`]: summed by the crate a
//!   function belongs to, to set two servers' calls side by side.
//!
//! Without `perf` or `callgrind_annotate` the profile is skipped with a line saying why.

use super::children::log_file;
use super::{Ctx, Result};
use serde_json::Value;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

/// `program --listen 127.0.0.1:0 flags` under `valgrind tool_args` (its log in
/// `NAME.log`; a minute to start, valgrind being slow).
pub async fn under_valgrind(
    ctx: &Ctx,
    name: &str,
    tool_args: &[String],
    program: &Path,
    flags: &[&str],
) -> Result<testkit::ServerProcess> {
    let mut args = tool_args.to_vec();
    args.push(program.display().to_string());
    args.extend(["--listen".to_string(), "127.0.0.1:0".to_string()]);
    args.extend(flags.iter().map(|f| f.to_string()));
    // One worker, as in the pinned rounds: valgrind runs one thread at a time anyway, and
    // with a worker per core the counts also held the hand-offs between the workers
    // (futex wakes, a contended lock), which moved by hundreds of instructions per call
    // from run to run with how valgrind happened to switch threads.
    testkit::ServerProcess::builder()
        .program("valgrind")
        .env("TOKIO_WORKER_THREADS", "1")
        .args(&args)
        .echo(false)
        .log(log_file(&ctx.out.join(format!("{name}.log")))?)
        .startup_timeout(Duration::from_secs(60))
        .try_start()
        .await
        .map_err(|e| format!("{name}: {e}"))
}

/// Heap blocks live at the heap's peak (DHAT's `gb`, `gbk`), by the code that asked for
/// them: the first frame of the allocation's stack outside the standard library, libc
/// and the containers (`bytes`, `hashbrown`, `slab`, …), which say *what* was allocated
/// but not *whose*. Only sites with at least `min_blocks` blocks at the peak are kept:
/// with `min_blocks` half the connections open at the peak, what is left is what each
/// connection holds, not the server's fixed memory. Bytes, largest first.
pub fn dhat_sites(dhat: &Value, min_blocks: u64) -> Result<Vec<(String, f64)>> {
    let frames = dhat["ftbl"].as_array().ok_or("DHAT file without ftbl")?;
    let pps = dhat["pps"].as_array().ok_or("DHAT file without pps")?;
    let mut sums: HashMap<String, f64> = HashMap::new();
    for pp in pps {
        let (Some(gb), Some(gbk)) = (pp["gb"].as_u64(), pp["gbk"].as_u64()) else {
            continue;
        };
        if gbk < min_blocks || gb == 0 {
            continue;
        }
        let site = pp["fs"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|i| frames.get(i.as_u64()? as usize)?.as_str())
            .map(frame_function)
            .find(|f| !container(f))
            .unwrap_or("?");
        *sums.entry(site.to_owned()).or_default() += gb as f64;
    }
    let mut v: Vec<_> = sums.into_iter().collect();
    v.sort_by(|a, b| b.1.total_cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    Ok(v)
}

/// `0x4A2B3C: h2::codec::Codec<T,B>::new (mod.rs:80:23)` → `h2::codec::Codec<T,B>::new`.
fn frame_function(frame: &str) -> &str {
    let f = frame.split_once(": ").map_or(frame, |(_, f)| f);
    match f.rfind(" (") {
        Some(i) if f.ends_with(')') => &f[..i],
        _ => f,
    }
}

/// Frames that allocate on someone else's behalf.
fn container(function: &str) -> bool {
    let c = crate_of(function, false);
    matches!(
        c,
        "std" | "libc" | "bytes" | "hashbrown" | "slab" | "indexmap" | "smallvec"
    ) || function.starts_with("__rust")
        || function == "[root]"
}

/// `perf record` on a process, stopped (SIGINT, so that it writes its file) by
/// [`Recording::stop`]; killed on drop.
#[derive(Debug)]
pub struct Recording {
    child: tokio::process::Child,
    data: PathBuf,
}

impl Recording {
    /// Starts sampling `pid` at 999 Hz into `data` (perf's messages into `data.log`).
    pub fn start(pid: u32, data: &Path) -> Result<Recording> {
        let log = data.with_extension("log");
        let log = std::fs::File::create(&log)
            .map_err(|e| format!("cannot create {}: {e}", log.display()))?;
        let child = tokio::process::Command::new("perf")
            .args(["record", "-e", "cpu-clock", "-F", "999", "-p"])
            .arg(pid.to_string())
            .arg("-o")
            .arg(data)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .kill_on_drop(true)
            .spawn()
            .map_err(|e| format!("perf: {e}"))?;
        Ok(Recording {
            child,
            data: data.to_owned(),
        })
    }

    /// Stops it and returns its data file.
    pub async fn stop(mut self) -> Result<PathBuf> {
        let pid = self.child.id().ok_or("perf ended early")?;
        let _ = tokio::process::Command::new("kill")
            .args(["-INT", &pid.to_string()])
            .status()
            .await;
        match tokio::time::timeout(Duration::from_secs(30), self.child.wait()).await {
            Ok(Ok(_)) if self.data.exists() => Ok(self.data.clone()),
            Ok(_) => Err(format!("perf wrote no {}", self.data.display())),
            Err(_) => Err("perf did not stop in 30 s".into()),
        }
    }
}

/// A function's share of a profile.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Hot {
    /// Percent of all samples (self time).
    pub percent: f64,
    /// In the kernel (`[k]`) rather than the process.
    pub kernel: bool,
    /// Its name as perf printed it.
    pub function: String,
}

/// What `perf report` says about a recording.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize)]
pub struct PerfProfile {
    /// Percent of the samples in the kernel.
    pub kernel_percent: f64,
    /// Percent of the samples by crate (user space; the kernel as `kernel`), largest first.
    pub crates: Vec<(String, f64)>,
    /// The hottest functions, largest first.
    pub top: Vec<Hot>,
}

/// `perf report` of `data`: the kernel's share, shares by crate and the `top` functions.
pub async fn perf_report(data: &Path, top: usize) -> Result<PerfProfile> {
    let args = [
        "report",
        "--no-children",
        "--sort",
        "sym",
        "--stdio",
        "-q",
        "-i",
    ];
    let text = stdout_of("perf", &args, data).await?;
    Ok(parse_perf(&text, top))
}

/// Lines of `perf report --sort sym --stdio -q`: `  12.34%  [k] function` or `[.]`.
fn parse_perf(text: &str, top: usize) -> PerfProfile {
    let mut all = Vec::new();
    for line in text.lines() {
        let line = line.trim();
        let Some((percent, rest)) = line.split_once('%') else {
            continue;
        };
        let Ok(percent) = percent.trim().parse::<f64>() else {
            continue;
        };
        let rest = rest.trim();
        let (kernel, function) = if let Some(f) = rest.strip_prefix("[k]") {
            (true, f.trim())
        } else if let Some(f) = rest.strip_prefix("[.]") {
            (false, f.trim())
        } else {
            continue;
        };
        all.push(Hot {
            percent,
            kernel,
            function: function.to_owned(),
        });
    }
    let kernel_percent = all.iter().filter(|h| h.kernel).map(|h| h.percent).sum();
    let crates = by_crate(
        all.iter()
            .map(|h| (h.function.as_str(), h.kernel, h.percent)),
    );
    all.truncate(top);
    PerfProfile {
        kernel_percent,
        crates,
        top: all,
    }
}

/// Instructions by function (self cost) of a callgrind dump, largest first.
pub async fn callgrind_functions(dump: &Path) -> Result<Vec<(String, f64)>> {
    let args = ["--inclusive=no", "--threshold=100", "--auto=no"];
    let text = stdout_of("callgrind_annotate", &args, dump).await?;
    Ok(parse_callgrind(&text))
}

/// Lines of `callgrind_annotate`: `12,345 (1.23%)  file:function [object]`; a function
/// listed once per source file it was inlined from is summed. A dump taken while the
/// program runs (`callgrind_control -d`) lists the functions that were on the stack when
/// the counters were zeroed (the threads' entry points, the worker loop) with the whole
/// part's cost as if it were their own: a line of half the total or more cannot be self
/// cost, and is left out (the others add up to the total).
fn parse_callgrind(text: &str) -> Vec<(String, f64)> {
    let mut sums: HashMap<String, f64> = HashMap::new();
    let mut total = f64::INFINITY;
    for line in text.lines() {
        let line = line.trim();
        let Some((count, rest)) = line.split_once(' ') else {
            continue;
        };
        let Ok(count) = count.replace(',', "").parse::<f64>() else {
            continue;
        };
        let rest = rest.trim_start();
        let rest = match rest.strip_prefix('(') {
            Some(r) => r.split_once(')').map_or(r, |(_, r)| r).trim_start(),
            None => rest,
        };
        if rest == "PROGRAM TOTALS" {
            total = count;
            continue;
        }
        if count >= total / 2.0 {
            continue;
        }
        let rest = match rest.rfind(" [") {
            Some(i) if rest.ends_with(']') => &rest[..i],
            _ => rest,
        };
        let function = rest.split_once(':').map_or(rest, |(_, f)| f);
        *sums.entry(function.to_owned()).or_default() += count;
    }
    largest_first(sums)
}

/// The crate a function belongs to: the first path segment of its name, past any
/// `<`, `&`, `mut ` or `dyn ` (`<h2::proto::X as core::future::Future>::poll` is h2's);
/// `core`, `alloc` and `std` are one, `std`; a name with no path is C (`libc`: malloc,
/// memcpy) or, with `kernel`, the kernel's.
pub fn crate_of(function: &str, kernel: bool) -> &str {
    if kernel {
        return "kernel";
    }
    let mut f = function.trim_start();
    loop {
        let before = f;
        for p in ["<", "&", "mut ", "dyn ", "*const ", "*mut ", "("] {
            f = f.strip_prefix(p).unwrap_or(f);
        }
        if f == before {
            break;
        }
    }
    match f.split_once("::") {
        Some(("core" | "alloc" | "std", _)) => "std",
        Some((c, _)) if !c.is_empty() && !c.contains(' ') => c,
        _ => "libc",
    }
}

/// `(function, in the kernel, amount)` summed by [`crate_of`], largest first.
pub fn by_crate<'a>(items: impl IntoIterator<Item = (&'a str, bool, f64)>) -> Vec<(String, f64)> {
    let mut sums: HashMap<String, f64> = HashMap::new();
    for (f, kernel, x) in items {
        *sums.entry(crate_of(f, kernel).to_owned()).or_default() += x;
    }
    largest_first(sums)
}

/// The standard output of `program args file`, or its standard error as the error.
async fn stdout_of(program: &str, args: &[&str], file: &Path) -> Result<String> {
    let out = tokio::process::Command::new(program)
        .args(args)
        .arg(file)
        .stdin(Stdio::null())
        .output()
        .await
        .map_err(|e| format!("{program}: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "{program}: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Sums by name, largest first (ties by name, so that the order is stable).
fn largest_first(sums: HashMap<String, f64>) -> Vec<(String, f64)> {
    let mut v: Vec<_> = sums.into_iter().collect();
    v.sort_by(|a, b| b.1.total_cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    v
}

/// `name` cut to `max` characters (an ellipsis where cut), for a table cell; `|` escaped.
pub fn short(name: &str, max: usize) -> String {
    let cut: String = name.chars().take(max).collect();
    let cut = if cut.len() < name.len() {
        format!("{cut}…")
    } else {
        cut
    };
    cut.replace('|', "\\|")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crates_are_named_by_the_first_segment() {
        assert_eq!(
            crate_of(
                "<h2::proto::streams::Streams<B> as core::ops::Drop>::drop",
                false
            ),
            "h2"
        );
        assert_eq!(
            crate_of("&mut tokio::runtime::task::raw::poll", false),
            "tokio"
        );
        assert_eq!(crate_of("core::ptr::drop_in_place<x>", false), "std");
        assert_eq!(crate_of("alloc::raw_vec::finish_grow", false), "std");
        assert_eq!(crate_of("_int_malloc", false), "libc");
        assert_eq!(crate_of("0x0000000000014cb0", false), "libc");
        assert_eq!(crate_of("tcp_sendmsg", true), "kernel");
    }

    #[test]
    fn perf_lines_are_read() {
        let text = "\n    30.00%  [k] tcp_sendmsg\n    20.50%  [.] h2::proto::x\n\
                    \x20    9.50%  [.] malloc\n     5.00%  [k] __schedule\n# comment\n";
        let p = parse_perf(text, 2);
        assert_eq!(p.kernel_percent, 35.0);
        assert_eq!(p.top.len(), 2);
        assert_eq!(p.top[1].function, "h2::proto::x");
        assert!(!p.top[1].kernel);
        assert_eq!(p.crates[0], ("kernel".to_string(), 35.0));
        assert_eq!(p.crates[1], ("h2".to_string(), 20.5));
    }

    #[test]
    fn callgrind_lines_are_summed_by_function() {
        let text = "\
Ir                file:function
--------------------------------------------------------------------------------
614,929 (100.0%)  PROGRAM TOTALS
614,929 (100.0%)  ???:std::sys::backtrace::__rust_begin_short_backtrace [/srv/server]
100,435 (16.33%)  ./elf/dl-lookup.c:do_lookup_x [/usr/lib/ld.so]
 31,944 ( 5.19%)  ./elf/dl-new-hash.h:do_lookup_x
  2,000 ( 1.00%)  ???:h2::codec::framed_read::decode_frame [/srv/server]
";
        let f = parse_callgrind(text);
        assert_eq!(f[0], ("do_lookup_x".to_string(), 132_379.0));
        assert_eq!(
            f[1],
            ("h2::codec::framed_read::decode_frame".to_string(), 2_000.0)
        );
        assert_eq!(f.len(), 2);
    }

    #[test]
    fn dhat_sites_are_the_first_frame_that_is_not_a_container() {
        let dhat = serde_json::json!({
            "ftbl": [
                "[root]",
                "0x1: malloc (in /usr/libexec/valgrind/vgpreload_dhat-amd64-linux.so)",
                "0x2: alloc::raw_vec::finish_grow (raw_vec.rs:1:1)",
                "0x3: bytes::bytes_mut::BytesMut::with_capacity (bytes_mut.rs:1:1)",
                "0x4: h2::codec::framed_write::FramedWrite<T,B>::new (framed_write.rs:1:1)",
                "0x5: keepalive_server::serve (lib.rs:1:1)"
            ],
            "pps": [
                {"gb": 16384000, "gbk": 1000, "fs": [1, 2, 3, 4, 5]},
                {"gb": 4000, "gbk": 1000, "fs": [1, 5]},
                {"gb": 1000000, "gbk": 3, "fs": [1, 5]},
                {"gb": 100, "gbk": 1000, "fs": [1, 2]}
            ]
        });
        let sites = dhat_sites(&dhat, 500).expect("a DHAT file");
        assert_eq!(
            sites,
            vec![
                (
                    "h2::codec::framed_write::FramedWrite<T,B>::new".to_string(),
                    16_384_000.0
                ),
                ("keepalive_server::serve".to_string(), 4_000.0),
                ("?".to_string(), 100.0),
            ]
        );
    }

    #[test]
    fn cells_are_cut_and_escaped() {
        assert_eq!(short("abc", 5), "abc");
        assert_eq!(short("abcdef", 3), "abc…");
        assert_eq!(short("a|b", 5), "a\\|b");
    }
}
