//! `testkit`: the harness as a process, for the orchestration in `cargo xtask`.
//!
//! ```text
//! testkit browser-server --server BIN [--listen ADDR] [--controller ADDR] [--log FILE] -- ARGS…
//! testkit supervise --server BIN [--listen ADDR] [--restart-exit-code 75] [--log FILE] -- ARGS…
//! testkit cluster --server BIN --replicas N --listen ADDR -- ARGS…
//! ```
//!
//! - `browser-server`: the server under a [`Supervisor`] and the HTTP
//!   [controller](testkit::controller) for the browser tests. Once both listen it prints
//!   one line on stdout, `testkit: server http://ADDR controller http://ADDR`, and runs
//!   until its stdin closes (its parent is gone) or SIGINT/SIGTERM; then it kills the
//!   server and exits.
//! - `supervise`: the demo's server, its lines echoed; when it exits with the restart
//!   code (the dashboard's Restart button) it is started again on the same port; any other
//!   exit ends `testkit` with that code. Ctrl-C reaches the server too (one process
//!   group): it drains, exits 0, and so does `testkit`.
//! - `cluster`: Redis, N replicas of the server (`--redis`, a shared `--session-secret`,
//!   `--replica-name replica-N`) and nginx in front, its gRPC-web (HTTP/1.1) listener on
//!   `--listen`; a replica that exits (the dashboard's Restart, a kill) is started again on
//!   its port. Ctrl-C stops everything. For `cargo xtask demo --replicas N`.

use clap::{Parser, Subcommand};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use testkit::{LogFile, ServerProcess, Supervisor};
use tokio::io::AsyncReadExt;

#[derive(Parser, Debug)]
#[command(name = "testkit", about = "The workspace's process harness")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// The browser tests' server and its controller.
    BrowserServer {
        #[command(flatten)]
        server: ServerArgs,
        /// Where the controller listens.
        #[arg(long, default_value = "127.0.0.1:0")]
        controller: String,
    },
    /// Redis, replicas and nginx (see the module docs).
    Cluster {
        /// The server binary.
        #[arg(long)]
        server: PathBuf,
        /// How many replicas.
        #[arg(long, default_value_t = 3)]
        replicas: usize,
        /// nginx's HTTP/1.1 listener (the page's origin).
        #[arg(long)]
        listen: std::net::SocketAddr,
        /// nginx cuts a call silent this long (ms).
        #[arg(long, default_value_t = 60_000)]
        idle_ms: u64,
        /// The replicas' flags.
        #[arg(last = true)]
        args: Vec<String>,
    },
    /// A server restarted when it exits with the restart code.
    Supervise {
        #[command(flatten)]
        server: ServerArgs,
        /// The exit code that means "start me again".
        #[arg(long, default_value_t = 75)]
        restart_exit_code: i32,
    },
}

#[derive(clap::Args, Debug)]
struct ServerArgs {
    /// The server binary.
    #[arg(long)]
    server: PathBuf,
    /// Where it listens (the same address at every restart).
    #[arg(long, default_value = "127.0.0.1:0")]
    listen: String,
    /// Every line of every process also goes to this file.
    #[arg(long)]
    log: Option<PathBuf>,
    /// The server's flags (after `--listen ADDR`).
    #[arg(last = true)]
    args: Vec<String>,
}

impl ServerArgs {
    fn supervisor(&self, echo: bool) -> Result<Supervisor, String> {
        let log = match &self.log {
            Some(path) => LogFile::create(path)
                .map_err(|e| format!("cannot create {}: {e}", path.display()))?,
            None => LogFile::memory(),
        };
        let template = ServerProcess::builder()
            .program(&self.server)
            .args(&self.args)
            .echo(echo);
        Ok(Supervisor::new(template, log).listen_on(&self.listen))
    }
}

/// SIGINT or SIGTERM.
async fn signalled() {
    use tokio::signal::unix::{SignalKind, signal};
    match (
        signal(SignalKind::interrupt()),
        signal(SignalKind::terminate()),
    ) {
        (Ok(mut int), Ok(mut term)) => {
            tokio::select! {
                _ = int.recv() => {}
                _ = term.recv() => {}
            }
        }
        _ => std::future::pending().await,
    }
}

/// Until stdin reaches EOF (the parent closed it, or is gone).
async fn stdin_closed() {
    let mut stdin = tokio::io::stdin();
    let mut buf = [0u8; 256];
    while matches!(stdin.read(&mut buf).await, Ok(n) if n > 0) {}
}

async fn browser_server(server: ServerArgs, controller: String) -> Result<ExitCode, String> {
    let mut sup = server.supervisor(false)?;
    sup.start().await.map_err(|e| e.to_string())?;
    let server_url = sup.status().url.unwrap_or_default();
    let shared = Arc::new(tokio::sync::Mutex::new(sup));
    let (listener, addr) = testkit::controller::bind(&controller)
        .await
        .map_err(|e| format!("the controller cannot listen on {controller}: {e}"))?;
    println!("testkit: server {server_url} controller http://{addr}");
    let serving = testkit::controller::serve(listener, shared.clone(), async {
        tokio::select! {
            () = stdin_closed() => {}
            () = signalled() => {}
        }
    });
    let result = serving.await;
    shared.lock().await.kill();
    result.map_err(|e| format!("the controller failed: {e}"))?;
    Ok(ExitCode::SUCCESS)
}

async fn supervise(server: ServerArgs, restart: i32) -> Result<ExitCode, String> {
    let mut sup = server.supervisor(true)?;
    sup.start().await.map_err(|e| e.to_string())?;
    let mut signals = Box::pin(signalled());
    loop {
        let status = tokio::select! {
            status = sup.wait_exit() => status,
            () = &mut signals => {
                // Ours only (not the terminal's, which the server got too): pass it on.
                if let Some(process) = sup.process() {
                    process.signal_term();
                }
                signals = Box::pin(signalled());
                continue;
            }
        };
        match status.and_then(|s| s.code()) {
            Some(code) if code == restart => {
                eprintln!("testkit: the server exited with {restart}: starting it again");
                sup.start().await.map_err(|e| e.to_string())?;
            }
            Some(code) => return Ok(ExitCode::from(u8::try_from(code).unwrap_or(1))),
            None => return Ok(ExitCode::from(1)),
        }
    }
}

async fn cluster(
    server: PathBuf,
    replicas: usize,
    listen: std::net::SocketAddr,
    idle_ms: u64,
    args: Vec<String>,
) -> Result<ExitCode, String> {
    let mut cluster = testkit::Cluster::start(testkit::ClusterOptions {
        server,
        replicas,
        running: replicas,
        args,
        idle: std::time::Duration::from_millis(idle_ms),
        persistence: testkit::redis::Persistence::AppendFsyncAlways,
        echo: true,
        listen: (None, Some(listen)),
    })
    .await?;
    println!(
        "testkit: cluster of {replicas} behind nginx: gRPC-web http://{} gRPC http://{} (Redis {})",
        cluster.nginx.web_addr(),
        cluster.nginx.grpc_addr(),
        cluster.redis.url()
    );
    let mut signals = Box::pin(signalled());
    loop {
        tokio::select! {
            () = &mut signals => break,
            () = tokio::time::sleep(std::time::Duration::from_millis(200)) => {}
        }
        for i in 0..cluster.len() {
            let status = cluster.replica(i).status();
            if !status.running {
                eprintln!(
                    "testkit: replica-{} ended ({}): starting it again",
                    i + 1,
                    status.last_exit.unwrap_or_default()
                );
                if let Err(e) = cluster.start_replica(i).await {
                    eprintln!("testkit: replica-{}: {e}", i + 1);
                }
            }
        }
    }
    for i in 0..cluster.len() {
        cluster.replica(i).stop().await;
    }
    Ok(ExitCode::SUCCESS)
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::BrowserServer { server, controller } => browser_server(server, controller).await,
        Command::Supervise {
            server,
            restart_exit_code,
        } => supervise(server, restart_exit_code).await,
        Command::Cluster {
            server,
            replicas,
            listen,
            idle_ms,
            args,
        } => cluster(server, replicas, listen, idle_ms, args).await,
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("testkit: {e}");
            ExitCode::from(2)
        }
    }
}
