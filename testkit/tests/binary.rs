//! The `testkit` binary as xtask runs it, with shell scripts standing in for the server.

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// A fresh executable script in a fresh directory.
fn script(name: &str, body: &str) -> PathBuf {
    use std::os::unix::fs::PermissionsExt;
    let dir = std::env::temp_dir().join(format!("testkit-bin-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("dir");
    let path = dir.join(format!("{name}.sh"));
    std::fs::write(&path, format!("#!/bin/sh\n{body}\n")).expect("write");
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    path
}

fn alive(pid: u32) -> bool {
    Command::new("kill")
        .args(["-0", &pid.to_string()])
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

#[test]
fn supervise_restarts_on_the_restart_code_and_ends_with_any_other() {
    // First run: listen, then ask for a restart (75). Second run: listen, then exit 3.
    let server = script(
        "restarting",
        r#"dir=$(dirname "$0")
echo "INFO listening on 127.0.0.1:4250" >&2
if [ ! -e "$dir/ran" ]; then touch "$dir/ran"; sleep 0.2; exit 75; fi
sleep 0.2; exit 3"#,
    );
    let out = Command::new(env!("CARGO_BIN_EXE_testkit"))
        .arg("supervise")
        .arg("--server")
        .arg(&server)
        .args(["--", "--flag"])
        .output()
        .expect("run testkit");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(3), "{stderr}");
    assert_eq!(
        stderr.matches("listening on 127.0.0.1:4250").count(),
        2,
        "{stderr}"
    );
    assert!(stderr.contains("starting it again"), "{stderr}");
}

#[test]
fn browser_server_announces_itself_and_stops_with_its_stdin() {
    let server = script(
        "listening",
        r#"addr="$2"; [ "$addr" = "127.0.0.1:0" ] && addr=127.0.0.1:4251
echo $$ > "$(dirname "$0")/pid"
echo "INFO listening on $addr" >&2
while true; do sleep 0.05; done"#,
    );
    let mut child = Command::new(env!("CARGO_BIN_EXE_testkit"))
        .arg("browser-server")
        .arg("--server")
        .arg(&server)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("spawn testkit");
    let mut line = String::new();
    BufReader::new(child.stdout.take().expect("stdout"))
        .read_line(&mut line)
        .expect("read");
    let words: Vec<&str> = line.split_whitespace().collect();
    assert_eq!(
        words[..3],
        ["testkit:", "server", "http://127.0.0.1:4251"],
        "{line}"
    );
    assert_eq!(words[3], "controller", "{line}");
    let pid: u32 = std::fs::read_to_string(server.with_file_name("pid"))
        .expect("pid file")
        .trim()
        .parse()
        .expect("pid");
    assert!(alive(pid));

    drop(child.stdin.take());
    let deadline = Instant::now() + Duration::from_secs(10);
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait") {
            break status;
        }
        assert!(
            Instant::now() < deadline,
            "testkit did not stop when its stdin closed"
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    assert!(status.success(), "{status}");
    assert!(!alive(pid), "the server outlived testkit");
}
