//! The command line: parse `cargo xtask ...` arguments into a [`Task`], and the usage text.

use std::ffi::OsString;

use crate::bench::BenchOptions;
use crate::demo::DemoOptions;
use crate::error::{Result, bail};
use crate::fuzz::FuzzOptions;
use crate::setup::Setup;
use crate::soak::SoakOptions;
use crate::test::TestOptions;

/// The usage text of `cargo xtask help`.
pub const USAGE: &str = "\
cargo xtask: the project's developer commands (std only, builds in seconds)

USAGE:
    cargo xtask <COMMAND> [OPTIONS]

COMMANDS:
    setup [--browser]
        Install what builds and tests need; idempotent, fast when done.
        Always: the wasm32-unknown-unknown target, rustfmt and clippy, and a
        Python venv at .tools/venv with tests/python/requirements.txt.
        --browser: also chromium + chromium-driver (apt-get), wasm-bindgen-cli
        (the version in Cargo.lock), wasm-pack, trunk and wasm-opt (npm
        binaryen, into .tools/binaryen). About 11 minutes on a fresh machine.

    test [--no-lint] [--no-browser | --browser-only] [-- CARGO_TEST_ARGS...]
        setup --browser, cargo fmt --check, cargo clippy -D warnings (native
        and keepalive-client on wasm32), build the server, cargo test --workspace,
        then the browser tests: keepalive-client's tests in headless Chromium
        (wasm-pack test --headless --chrome) against a server started for
        them. Each step is timed; the first failure stops.
        --no-lint: skip fmt and clippy.
        --no-browser: skip the browser setup and the browser tests.
        --browser-only: setup, build the server, browser tests; nothing else.
        With the browser tests, the dashboard and the example's pages are
        built first for their end-to-end tests (tests/tests/dashboard_e2e.rs,
        tests/tests/example_pages.rs).
        Arguments after -- go to `cargo test --workspace` (with
        --browser-only: to the wasm `cargo test`, e.g. a test name).
        The native tests get KEEPALIVE_PYTHON, KEEPALIVE_PEER,
        KEEPALIVE_SERVER_BIN, KEEPALIVE_PRICES_BIN; the browser tests, at
        compile time, KEEPALIVE_TEST_SERVER, KEEPALIVE_TEST_CONTROLLER and
        KEEPALIVE_TEST_CHAOS_TOKEN (without them: test-server's addresses).

    demo [--listen ADDR] [--tls] [--replicas N] [-- SERVER_ARGS...]
        setup (with trunk, wasm-bindgen and wasm-opt), build the dashboard
        (trunk build --release into web/dist) and the release server, and run
        it on ADDR (default 127.0.0.1:8080) with demo settings: short keepalive
        values, a ticker, the page at /, chaos on with a fresh token. Prints
        the page's URL, http://ADDR/#chaos=TOKEN (the token stays in the URL
        fragment). The page's Restart button restarts the server; Ctrl-C
        stops everything. Arguments after -- are appended to the server's
        command line. --tls: https (so browsers use HTTP/2) with a fresh
        self-signed certificate for localhost/127.0.0.1 made by the openssl
        command into target/demo/. --replicas N: N replicas sharing one Redis
        behind nginx (on ADDR), the feed's log in Redis; the page shows which
        replica serves its stream. Not with --tls.

    bench [--quick] [--only SCENARIO,...]
        Build the release server, loadgen, bench-server and bench (and, for
        sizes, the example's pages and the dashboard), then run bench
        (loadgen/src/bench/), which measures on 127.0.0.1: capacity (100 to
        10 000 browser sessions, ours and a stock tonic server, CPU per
        event, a perf profile), idle (server memory per idle HTTP/2 and
        HTTP/1.1 connection, a DHAT heap profile), overhead (our server vs a
        stock tonic server, HTTP/2 and gRPC-web/HTTP/1.1, instructions per
        call by crate under callgrind), latency (h2load unary p99 and req/s:
        ours, stock tonic, grpc-go; installs nghttp2-client, golang-go and
        golang-google-grpc-dev if missing), detection (chaos STALL),
        recovery (server restart), fan-out (1 000 subscribers), replicas
        (the event log on Redis: memory vs Redis per event, 3 replicas behind
        nginx, publish -> deliver lag, a replica killed; installs redis-server
        and nginx if missing) and sizes (client and dashboard wasm). Prints
        markdown tables, the previous run's figures next to them; writes
        target/bench/bench.md and bench.json and every process's log.
        Installs linux-perf and valgrind if missing. About 12 minutes.
        Nothing timed is asserted.
        --quick: few sessions, short windows (checks that it runs).
        --only: some of capacity, idle, overhead, latency, detection,
        recovery, fanout, replicas, sizes.

    client
        Build the browser client as an npm package for TypeScript and
        JavaScript: release wasm with the JS bindings, wasm-bindgen --target
        web (ES module + TypeScript types), wasm-opt -Oz, and the connect-es
        transport (keepalive-client/js/index.ts, compiled with tsc) into
        target/keepalive-client/pkg; prints the sizes.

    example [--listen ADDR]
        Build the example's two pages (examples/prices/web-rust with Trunk,
        examples/prices/web-ts with buf + protoc-gen-es, tsc and esbuild) into
        target/prices-pages and run the example server with them on ADDR
        (default 127.0.0.1:8090): the Rust page at /rust/, the TypeScript page
        at /ts/. Ctrl-C stops it.

    test-server
        The browser tests' server and test controller on fixed addresses
        (127.0.0.1:18350 and :18351) until Ctrl-C, so that in another
        terminal `wasm-pack test --headless --chrome keepalive-client` runs
        the browser suite by hand (the same command `cargo xtask test` runs).

    fuzz [--seconds N]
        The long run of the fuzz harnesses (tests/tests/fuzz.rs: the HTTP/2
        frame observer both ways, the gRPC message-size scanner, arbitrary
        bytes against a real server): each harness runs N seconds (default
        60), one at a time; prints executions and findings per harness.
        `cargo xtask test` runs the same harnesses for a few seconds.

    soak [--faults N] [--seed S]
        The full chaos soak in headless Chromium (keepalive-client/tests/soak.rs):
        the wasm client subscribed and publishing while the server is dropped,
        stalled, refused, GOAWAYed, killed and restarted at random, N times
        (default 100); then lost = 0, duplicated = 0, READY, connections and
        server RSS back. Prints the FIGURE soak lines. `cargo xtask test` runs
        it with 10 faults.

    help
        This text.
";

/// What to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Task {
    /// `cargo xtask setup`.
    Setup(Setup),
    /// `cargo xtask test`.
    Test(TestOptions),
    /// `cargo xtask bench`.
    Bench(BenchOptions),
    /// `cargo xtask demo`.
    Demo(DemoOptions),
    /// `cargo xtask client`.
    Client,
    /// `cargo xtask example`, on this address.
    Example(String),
    /// `cargo xtask test-server`.
    TestServer,
    /// `cargo xtask fuzz`.
    Fuzz(FuzzOptions),
    /// `cargo xtask soak`.
    Soak(SoakOptions),
    /// `cargo xtask help`, or no arguments.
    Help,
}

/// Splits `args` at the first `--`: options before, pass-through after.
fn split_passthrough(args: Vec<OsString>) -> (Vec<String>, Vec<OsString>) {
    let mut before = Vec::new();
    let mut iter = args.into_iter();
    for arg in iter.by_ref() {
        if arg == "--" {
            break;
        }
        before.push(arg.to_string_lossy().into_owned());
    }
    (before, iter.collect())
}

/// Parses the arguments after `cargo xtask`.
pub fn parse(args: impl IntoIterator<Item = OsString>) -> Result<Task> {
    let mut args = args.into_iter();
    let Some(command) = args.next() else {
        return Ok(Task::Help);
    };
    let (options, passthrough) = split_passthrough(args.collect());
    let command = command.to_string_lossy();
    let no_passthrough = |command: &str| -> Result<()> {
        if passthrough.is_empty() {
            Ok(())
        } else {
            bail!("`cargo xtask {command}` takes no arguments after `--`")
        }
    };
    match command.as_ref() {
        "help" | "-h" | "--help" => Ok(Task::Help),
        "bench" => {
            no_passthrough("bench")?;
            let mut bench = BenchOptions::default();
            let mut options = options.into_iter();
            while let Some(option) = options.next() {
                let only = match option.as_str() {
                    "--quick" => {
                        bench.quick = true;
                        continue;
                    }
                    "--only" => options.next(),
                    other => match other.strip_prefix("--only=") {
                        Some(v) => Some(v.to_owned()),
                        None => bail!("unknown option `{other}` for `cargo xtask bench`"),
                    },
                };
                let Some(only) = only else {
                    bail!("`--only` needs scenarios, e.g. `--only capacity,overhead`");
                };
                bench
                    .only
                    .extend(only.split(',').filter(|s| !s.is_empty()).map(String::from));
            }
            Ok(Task::Bench(bench))
        }
        "client" => {
            no_passthrough("client")?;
            if let Some(other) = options.first() {
                bail!("unknown option `{other}` for `cargo xtask client`");
            }
            Ok(Task::Client)
        }
        "test-server" => {
            no_passthrough("test-server")?;
            if let Some(other) = options.first() {
                bail!("unknown option `{other}` for `cargo xtask test-server`");
            }
            Ok(Task::TestServer)
        }
        "example" => {
            no_passthrough("example")?;
            let mut listen = crate::example::DEFAULT_LISTEN.to_owned();
            let mut options = options.into_iter();
            while let Some(option) = options.next() {
                match option.as_str() {
                    "--listen" => match options.next() {
                        Some(addr) => listen = addr,
                        None => {
                            bail!("`--listen` needs an address, e.g. `--listen 127.0.0.1:8090`")
                        }
                    },
                    other => match other.strip_prefix("--listen=") {
                        Some(addr) => addr.clone_into(&mut listen),
                        None => bail!("unknown option `{other}` for `cargo xtask example`"),
                    },
                }
            }
            Ok(Task::Example(listen))
        }
        "setup" => {
            no_passthrough("setup")?;
            let mut setup = Setup::default();
            for option in options {
                match option.as_str() {
                    "--browser" => setup.browser = true,
                    other => bail!("unknown option `{other}` for `cargo xtask setup`"),
                }
            }
            Ok(Task::Setup(setup))
        }
        "test" => {
            let mut test = TestOptions {
                cargo_test_args: passthrough,
                ..TestOptions::default()
            };
            for option in options {
                match option.as_str() {
                    "--no-lint" => test.no_lint = true,
                    "--no-browser" => test.no_browser = true,
                    "--browser-only" => test.browser_only = true,
                    other => bail!("unknown option `{other}` for `cargo xtask test`"),
                }
            }
            Ok(Task::Test(test))
        }
        "fuzz" => {
            no_passthrough("fuzz")?;
            let mut fuzz = FuzzOptions::default();
            let mut options = options.into_iter();
            while let Some(option) = options.next() {
                let value = match option.as_str() {
                    "--seconds" => options.next(),
                    other => match other.strip_prefix("--seconds=") {
                        Some(v) => Some(v.to_owned()),
                        None => bail!("unknown option `{other}` for `cargo xtask fuzz`"),
                    },
                };
                fuzz.seconds = match value.as_deref().map(str::parse) {
                    Some(Ok(n)) => n,
                    _ => bail!("`--seconds` needs a number of seconds, e.g. `--seconds 300`"),
                };
            }
            Ok(Task::Fuzz(fuzz))
        }
        "soak" => {
            no_passthrough("soak")?;
            let mut soak = SoakOptions::default();
            let mut options = options.into_iter();
            while let Some(option) = options.next() {
                let (name, value) = match option.split_once('=') {
                    Some((n, v)) => (n.to_owned(), Some(v.to_owned())),
                    None => (option.clone(), options.next()),
                };
                let number = value.as_deref().and_then(|v| v.parse::<u64>().ok());
                match (name.as_str(), number) {
                    ("--faults", Some(n)) if n > 0 && n <= u64::from(u32::MAX) => {
                        soak.faults = n as u32;
                    }
                    ("--seed", Some(n)) => soak.seed = Some(n),
                    ("--faults" | "--seed", _) => {
                        bail!("`{name}` needs a positive number, e.g. `{name} 100`")
                    }
                    _ => bail!("unknown option `{option}` for `cargo xtask soak`"),
                }
            }
            Ok(Task::Soak(soak))
        }
        "demo" => {
            let mut demo = DemoOptions {
                server_args: passthrough,
                ..DemoOptions::default()
            };
            let mut options = options.into_iter();
            while let Some(option) = options.next() {
                match option.as_str() {
                    "--tls" => demo.tls = true,
                    "--replicas" => match options.next().and_then(|n| n.parse().ok()) {
                        Some(n) if n >= 1 => demo.replicas = Some(n),
                        _ => bail!("`--replicas` needs a number of replicas, e.g. `--replicas 3`"),
                    },
                    "--listen" => match options.next() {
                        Some(addr) => demo.listen = addr,
                        None => {
                            bail!("`--listen` needs an address, e.g. `--listen 127.0.0.1:8080`")
                        }
                    },
                    other => match other.strip_prefix("--listen=") {
                        Some(addr) => demo.listen = addr.to_owned(),
                        None => bail!("unknown option `{other}` for `cargo xtask demo`"),
                    },
                }
            }
            if demo.tls && demo.replicas.is_some() {
                bail!(
                    "`--tls` and `--replicas` do not go together: with replicas the page talks \
                     to nginx, which terminates TLS in production and speaks plain HTTP to the \
                     replicas here; drop one of them"
                );
            }
            Ok(Task::Demo(demo))
        }
        other => bail!("unknown command `{other}`"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_str(args: &[&str]) -> Result<Task> {
        parse(args.iter().map(OsString::from))
    }

    #[test]
    fn parses_commands() {
        assert_eq!(parse_str(&[]).ok(), Some(Task::Help));
        assert_eq!(parse_str(&["help"]).ok(), Some(Task::Help));
        assert_eq!(
            parse_str(&["setup", "--browser"]).ok(),
            Some(Task::Setup(Setup { browser: true }))
        );
        assert_eq!(
            parse_str(&["test", "--no-lint", "--", "-p", "tests"]).ok(),
            Some(Task::Test(TestOptions {
                no_lint: true,
                cargo_test_args: vec!["-p".into(), "tests".into()],
                ..TestOptions::default()
            }))
        );
        assert_eq!(
            parse_str(&["test", "--browser-only"]).ok(),
            Some(Task::Test(TestOptions {
                browser_only: true,
                ..TestOptions::default()
            }))
        );
        assert_eq!(
            parse_str(&["demo", "--listen", "0.0.0.0:9000"]).ok(),
            Some(Task::Demo(DemoOptions {
                listen: "0.0.0.0:9000".into(),
                server_args: vec![],
                tls: false,
                replicas: None,
            }))
        );
        assert_eq!(
            parse_str(&["demo", "--listen=127.0.0.1:1", "--", "--x"]).ok(),
            Some(Task::Demo(DemoOptions {
                listen: "127.0.0.1:1".into(),
                server_args: vec!["--x".into()],
                tls: false,
                replicas: None,
            }))
        );
    }

    #[test]
    fn parses_demo_replicas_and_refuses_them_with_tls() {
        match parse_str(&["demo", "--replicas", "3"]) {
            Ok(Task::Demo(d)) => assert_eq!(d.replicas, Some(3)),
            other => panic!("{other:?}"),
        }
        assert!(parse_str(&["demo", "--replicas", "0"]).is_err());
        let both =
            parse_str(&["demo", "--tls", "--replicas", "3"]).expect_err("--tls with --replicas");
        assert!(both.to_string().contains("do not go together"), "{both}");
    }

    #[test]
    fn parses_demo_tls() {
        match parse_str(&["demo", "--tls", "--listen", "127.0.0.1:9"]) {
            Ok(Task::Demo(d)) => assert!(d.tls && d.listen == "127.0.0.1:9"),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn parses_soak() {
        assert_eq!(
            parse_str(&["soak"]).ok(),
            Some(Task::Soak(SoakOptions::default()))
        );
        assert_eq!(
            parse_str(&["soak", "--faults", "20", "--seed=7"]).ok(),
            Some(Task::Soak(SoakOptions {
                faults: 20,
                seed: Some(7)
            }))
        );
        assert!(parse_str(&["soak", "--faults", "0"]).is_err());
        assert!(parse_str(&["soak", "--faults"]).is_err());
        assert!(parse_str(&["soak", "--later"]).is_err());
    }

    #[test]
    fn parses_fuzz() {
        assert_eq!(
            parse_str(&["fuzz"]).ok(),
            Some(Task::Fuzz(FuzzOptions::default()))
        );
        assert_eq!(
            parse_str(&["fuzz", "--seconds", "5"]).ok(),
            Some(Task::Fuzz(FuzzOptions { seconds: 5 }))
        );
        assert_eq!(
            parse_str(&["fuzz", "--seconds=7"]).ok(),
            Some(Task::Fuzz(FuzzOptions { seconds: 7 }))
        );
    }

    #[test]
    fn parses_bench() {
        assert_eq!(
            parse_str(&["bench", "--quick", "--only", "capacity,sizes"]).ok(),
            Some(Task::Bench(BenchOptions {
                quick: true,
                only: vec!["capacity".into(), "sizes".into()],
            }))
        );
        assert!(parse_str(&["bench", "--only"]).is_err());
        assert_eq!(
            parse_str(&["example", "--listen", "127.0.0.1:1"]).ok(),
            Some(Task::Example("127.0.0.1:1".into()))
        );
        assert_eq!(parse_str(&["test-server"]).ok(), Some(Task::TestServer));
        assert!(parse_str(&["test-server", "--x"]).is_err());
        assert!(parse_str(&["bench", "--fast"]).is_err());
    }

    #[test]
    fn rejects_unknown_input() {
        assert!(parse_str(&["frobnicate"]).is_err());
        assert!(parse_str(&["test", "--lint"]).is_err());
        assert!(parse_str(&["demo", "--listen"]).is_err());
        assert!(parse_str(&["setup", "--", "x"]).is_err());
        assert!(parse_str(&["fuzz", "--seconds"]).is_err());
        assert!(parse_str(&["fuzz", "--seconds", "soon"]).is_err());
    }
}
