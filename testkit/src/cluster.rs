//! Replicas behind a load balancer, sharing one Redis: a [`RedisServer`], N servers each
//! under its own [`Supervisor`] on a port fixed up front (so the load balancer's config
//! names them, and a restart comes back where nginx looks), and an [`Nginx`] in front.
//! Every replica gets `--redis`, the same `--session-secret` and `--replica-name
//! replica-N`; the caller's flags follow.

use crate::capture::LogFile;
use crate::nginx::Nginx;
use crate::process::ServerProcess;
use crate::redis::{Persistence, RedisServer, free_port};
use crate::supervisor::Supervisor;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

/// What to start.
#[derive(Clone, Debug)]
pub struct ClusterOptions {
    /// The server binary (the demo's, or any built on the library with these flags).
    pub server: PathBuf,
    /// Replicas in nginx's config.
    pub replicas: usize,
    /// Of them, how many run from the start (the others with [`Cluster::start_replica`]).
    pub running: usize,
    /// Flags for every replica, after the cluster's own.
    pub args: Vec<String>,
    /// nginx cuts a call silent for this long.
    pub idle: Duration,
    /// Redis's durability.
    pub persistence: Persistence,
    /// Echo every replica's lines to stderr (`[server PID] …`).
    pub echo: bool,
    /// Where nginx's gRPC (HTTP/2) and gRPC-web (HTTP/1.1) listeners go (`None`: free
    /// ports).
    pub listen: (Option<SocketAddr>, Option<SocketAddr>),
}

/// The running parts; everything stops when it is dropped.
#[derive(Debug)]
pub struct Cluster {
    /// The shared Redis.
    pub redis: RedisServer,
    /// The load balancer.
    pub nginx: Nginx,
    replicas: Vec<Supervisor>,
    addrs: Vec<SocketAddr>,
}

/// A secret the replicas of one cluster share (not a credential anyone else holds).
fn cluster_secret() -> String {
    use std::hash::{BuildHasher, RandomState};
    let a = RandomState::new().hash_one(std::process::id());
    let b = RandomState::new().hash_one(a);
    format!("test={a:016x}{b:016x}")
}

impl Cluster {
    /// Starts Redis, the first `running` replicas (each listening before the next
    /// starts), and nginx.
    ///
    /// # Errors
    /// What did not start, with its output.
    pub async fn start(options: ClusterOptions) -> Result<Cluster, String> {
        let redis = RedisServer::start(options.persistence).map_err(|e| format!("redis: {e}"))?;
        let secret = cluster_secret();
        let mut addrs = Vec::new();
        let mut replicas = Vec::new();
        for i in 0..options.replicas {
            let addr = SocketAddr::from(([127, 0, 0, 1], free_port().map_err(|e| e.to_string())?));
            let name = format!("replica-{}", i + 1);
            let mut args = vec![
                "--redis".to_owned(),
                redis.url(),
                "--session-secret".to_owned(),
                secret.clone(),
                "--replica-name".to_owned(),
                name,
            ];
            args.extend(options.args.iter().cloned());
            let template = ServerProcess::builder()
                .program(&options.server)
                .args(&args)
                .echo(options.echo);
            replicas
                .push(Supervisor::new(template, LogFile::memory()).listen_on(&addr.to_string()));
            addrs.push(addr);
        }
        for sup in replicas.iter_mut().take(options.running) {
            sup.start().await.map_err(|e| e.to_string())?;
        }
        let (grpc, web) = options.listen;
        let nginx =
            Nginx::start_on(&addrs, options.idle, grpc, web).map_err(|e| format!("nginx: {e}"))?;
        Ok(Cluster {
            redis,
            nginx,
            replicas,
            addrs,
        })
    }

    /// The replicas' addresses (fixed across restarts).
    pub fn addrs(&self) -> &[SocketAddr] {
        &self.addrs
    }

    /// Replica `i` (0-based).
    pub fn replica(&mut self, i: usize) -> &mut Supervisor {
        &mut self.replicas[i]
    }

    /// How many replicas nginx knows.
    pub fn len(&self) -> usize {
        self.replicas.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.replicas.is_empty()
    }

    /// Starts replica `i` (0-based) on its port.
    ///
    /// # Errors
    /// If it does not come up.
    pub async fn start_replica(&mut self, i: usize) -> Result<(), String> {
        self.replicas[i].start().await.map_err(|e| e.to_string())
    }

    /// Every replica's lines, joined (for a failure's message).
    pub fn logs(&self) -> String {
        self.replicas
            .iter()
            .enumerate()
            .map(|(i, r)| format!("--- replica-{}\n{}", i + 1, r.log().text()))
            .collect::<Vec<_>>()
            .join("\n")
    }
}
