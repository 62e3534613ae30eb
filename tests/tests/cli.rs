//! Bad flags and config end with one clear error line and exit code 2.

use std::time::Duration;
use testkit::run_to_exit;

fn assert_fails(args: &[&str], needle: &str) {
    let (code, stderr) = run_to_exit(args, Duration::from_secs(20));
    assert_eq!(code, Some(2), "{args:?}: {stderr}");
    let lines: Vec<&str> = stderr.lines().filter(|l| !l.trim().is_empty()).collect();
    assert_eq!(lines.len(), 1, "{args:?}: not one line: {stderr:?}");
    assert!(lines[0].starts_with("error: "), "{stderr}");
    assert!(lines[0].contains(needle), "{args:?}: {stderr}");
}

#[test]
fn unknown_flag() {
    assert_fails(&["--keepalive-tme", "1s"], "--keepalive-tme");
}

#[test]
fn unparsable_duration() {
    assert_fails(&["--keepalive-time", "ten seconds"], "invalid duration");
    assert_fails(
        &["--max-connection-idle", "5 fortnights"],
        "invalid duration",
    );
}

#[test]
fn grace_without_age() {
    assert_fails(
        &["--max-connection-age-grace", "5s"],
        "needs --max-connection-age",
    );
}

#[test]
fn port_in_use() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = taken.local_addr().expect("addr").to_string();
    assert_fails(&["--listen", &addr], "cannot listen on");
}

#[test]
fn config_file_unknown_key_and_bad_value() {
    let dir = std::env::temp_dir().join(format!("cli-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("dir");
    let bad_key = dir.join("bad_key.toml");
    std::fs::write(
        &bad_key,
        "keepalive_time = \"10s\"\nmax_conection_idle = \"5m\"\n",
    )
    .expect("write");
    assert_fails(
        &["--config", bad_key.to_str().expect("utf8")],
        "max_conection_idle",
    );
    let bad_value = dir.join("bad_value.toml");
    std::fs::write(&bad_value, "max_connection_age = \"forever\"\n").expect("write");
    assert_fails(
        &["--config", bad_value.to_str().expect("utf8")],
        "max_connection_age",
    );
    assert_fails(
        &["--config", dir.join("missing.toml").to_str().expect("utf8")],
        "cannot read config",
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn help_lists_every_flag() {
    let (code, _) = run_to_exit(&["--help"], Duration::from_secs(20));
    assert_eq!(code, Some(0));
    let out = std::process::Command::new(testkit::server_binary())
        .arg("--help")
        .output()
        .expect("run");
    let help = String::from_utf8_lossy(&out.stdout);
    for flag in [
        "--listen",
        "--keepalive-time",
        "--keepalive-timeout",
        "--max-connection-idle",
        "--max-connection-age",
        "--max-connection-age-grace",
        "--min-ping-interval",
        "--permit-keepalive-without-stream",
        "--max-ping-strikes",
        "--shutdown-grace",
        "--cors-allow-origin",
        "--config",
    ] {
        assert!(help.contains(flag), "{flag} missing from --help");
    }
}
