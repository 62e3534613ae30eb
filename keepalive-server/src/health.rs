//! `grpc.health.v1.Health`, as gRPC's `doc/health-checking.md` says (and grpc-go's health
//! server does), not only as tonic-health does.
//!
//! - `Check` of a known service answers its status; of an unknown one, `NOT_FOUND`.
//! - `Watch` answers the current status at once and every change after it. For a service
//!   the server does not know, it answers `SERVICE_UNKNOWN` and **keeps the call open**,
//!   sending the real status if the service appears later (tonic-health ends the call with
//!   `NOT_FOUND` instead, which makes a watcher that starts before the service registers
//!   give up).
//! - The empty name is the whole server.
//! - When the server stops, every status becomes `NOT_SERVING` first, and later updates
//!   are ignored (grpc-go's `Shutdown`), so load balancers stop sending before the drain.
//!
//! Services added with [`Builder::add_service`](crate::Builder::add_service) start as
//! `SERVING`; change a status at any time through the [`HealthReporter`]
//! ([`Builder::health_reporter`](crate::Builder::health_reporter)).
//!
//! ```
//! use keepalive_server::health::{HealthReporter, ServingStatus};
//! let health = HealthReporter::new();
//! health.set_status("prices.v1.Prices", ServingStatus::NotServing); // e.g. its store is down
//! assert_eq!(health.status("prices.v1.Prices"), Some(ServingStatus::NotServing));
//! assert_eq!(health.status("nope"), None);
//! ```

use std::collections::HashMap;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard};
use tokio::sync::watch;
use tokio_stream::Stream;
use tonic::{Request, Response, Status};
use tonic_health::pb::health_server::{Health, HealthServer};
use tonic_health::pb::{HealthCheckRequest, HealthCheckResponse};

pub use tonic_health::pb::health_check_response::ServingStatus;

/// Most watched names the server does not know at once (a flood of `Watch` calls for
/// made-up names must not grow the table without bound).
pub const MAX_UNKNOWN_WATCHED: usize = 10_000;

/// The health statuses of a server. Cheap to clone; clones share the statuses.
#[derive(Clone, Debug, Default)]
pub struct HealthReporter {
    inner: Arc<Mutex<Table>>,
}

#[derive(Debug, Default)]
struct Table {
    statuses: HashMap<String, watch::Sender<ServingStatus>>,
    shut_down: bool,
}

impl HealthReporter {
    /// No service known yet (not even the server, `""`).
    pub fn new() -> Self {
        HealthReporter::default()
    }

    fn lock(&self) -> MutexGuard<'_, Table> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Sets the status of `service` (`""`: the whole server). Ignored once the server is
    /// shutting down.
    pub fn set_status(&self, service: &str, status: ServingStatus) {
        let mut t = self.lock();
        if t.shut_down {
            return;
        }
        set(&mut t, service, status);
    }

    /// `SERVING`.
    pub fn set_serving(&self, service: &str) {
        self.set_status(service, ServingStatus::Serving);
    }

    /// `NOT_SERVING`.
    pub fn set_not_serving(&self, service: &str) {
        self.set_status(service, ServingStatus::NotServing);
    }

    /// The status of `service`, if it is known.
    pub fn status(&self, service: &str) -> Option<ServingStatus> {
        let t = self.lock();
        let status = *t.statuses.get(service)?.borrow();
        (status != ServingStatus::ServiceUnknown).then_some(status)
    }

    /// Keeps `services` (`""`: the whole server) `SERVING` while `up` shows true and
    /// `NOT_SERVING` while it shows false — what a dependency's reachability (a shared
    /// Redis) means for every service that needs it. Stops when `up`'s sender is gone;
    /// the shutdown still wins.
    pub fn follow(&self, services: Vec<String>, mut up: watch::Receiver<bool>) {
        let reporter = self.clone();
        tokio::spawn(async move {
            loop {
                let status = if *up.borrow_and_update() {
                    ServingStatus::Serving
                } else {
                    ServingStatus::NotServing
                };
                for service in &services {
                    reporter.set_status(service, status);
                }
                if up.changed().await.is_err() {
                    return;
                }
            }
        });
    }

    /// Every known service becomes `NOT_SERVING`, and stays so (the server is stopping).
    pub fn shut_down(&self) {
        let mut t = self.lock();
        t.shut_down = true;
        for tx in t.statuses.values() {
            tx.send_if_modified(|s| {
                let known = *s != ServingStatus::ServiceUnknown;
                if known {
                    *s = ServingStatus::NotServing;
                }
                known
            });
        }
    }

    /// The `grpc.health.v1.Health` service over these statuses.
    pub fn service(&self) -> HealthServer<HealthService> {
        HealthServer::new(HealthService {
            reporter: self.clone(),
        })
    }

    /// A watch of `service`'s status: `SERVICE_UNKNOWN` until the service is known.
    fn watch(&self, service: &str) -> Result<watch::Receiver<ServingStatus>, Status> {
        let mut t = self.lock();
        if let Some(tx) = t.statuses.get(service) {
            return Ok(tx.subscribe());
        }
        // Forget unknown names nobody watches any more, then bound the rest.
        t.statuses.retain(|_, tx| {
            *tx.borrow() != ServingStatus::ServiceUnknown || tx.receiver_count() > 0
        });
        let unknown = t
            .statuses
            .values()
            .filter(|tx| *tx.borrow() == ServingStatus::ServiceUnknown)
            .count();
        if unknown >= MAX_UNKNOWN_WATCHED {
            return Err(Status::resource_exhausted(format!(
                "too many watched unknown services (at most {MAX_UNKNOWN_WATCHED})"
            )));
        }
        let (tx, rx) = watch::channel(ServingStatus::ServiceUnknown);
        t.statuses.insert(service.to_string(), tx);
        Ok(rx)
    }
}

fn set(t: &mut Table, service: &str, status: ServingStatus) {
    match t.statuses.get(service) {
        Some(tx) => {
            tx.send_if_modified(|s| std::mem::replace(s, status) != status);
        }
        None => {
            t.statuses
                .insert(service.to_string(), watch::channel(status).0);
        }
    }
}

/// The service of a [`HealthReporter`].
#[derive(Debug, Clone)]
pub struct HealthService {
    reporter: HealthReporter,
}

/// The response stream of `Watch`.
pub type WatchStream = Pin<Box<dyn Stream<Item = Result<HealthCheckResponse, Status>> + Send>>;

#[tonic::async_trait]
impl Health for HealthService {
    async fn check(
        &self,
        request: Request<HealthCheckRequest>,
    ) -> Result<Response<HealthCheckResponse>, Status> {
        match self.reporter.status(&request.get_ref().service) {
            Some(status) => Ok(Response::new(HealthCheckResponse {
                status: status as i32,
            })),
            None => Err(Status::not_found("unknown service")),
        }
    }

    type WatchStream = WatchStream;

    async fn watch(
        &self,
        request: Request<HealthCheckRequest>,
    ) -> Result<Response<WatchStream>, Status> {
        let rx = self.reporter.watch(&request.get_ref().service)?;
        let stream = tokio_stream::wrappers::WatchStream::new(rx);
        let stream = tokio_stream::StreamExt::map(stream, |status| {
            Ok(HealthCheckResponse {
                status: status as i32,
            })
        });
        Ok(Response::new(Box::pin(stream)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio_stream::StreamExt;

    async fn next(s: &mut WatchStream) -> ServingStatus {
        let r = tokio::time::timeout(std::time::Duration::from_secs(1), s.next())
            .await
            .expect("in time")
            .expect("item")
            .expect("ok");
        ServingStatus::try_from(r.status).expect("status")
    }

    #[tokio::test]
    async fn watch_of_an_unknown_service_stays_open_until_it_appears() {
        let health = HealthReporter::new();
        let svc = HealthService {
            reporter: health.clone(),
        };
        let req = || {
            Request::new(HealthCheckRequest {
                service: "later.v1.Later".into(),
            })
        };
        assert_eq!(
            svc.check(req()).await.expect_err("unknown").code(),
            tonic::Code::NotFound
        );
        let mut w = svc.watch(req()).await.expect("watch").into_inner();
        assert_eq!(next(&mut w).await, ServingStatus::ServiceUnknown);
        // Watching does not make it known.
        assert_eq!(
            svc.check(req()).await.expect_err("still unknown").code(),
            tonic::Code::NotFound
        );
        health.set_serving("later.v1.Later");
        assert_eq!(next(&mut w).await, ServingStatus::Serving);
        health.set_serving("later.v1.Later"); // no change: nothing sent
        health.shut_down();
        assert_eq!(next(&mut w).await, ServingStatus::NotServing);
        health.set_serving("later.v1.Later"); // ignored while stopping
        assert_eq!(
            health.status("later.v1.Later"),
            Some(ServingStatus::NotServing)
        );
    }

    #[test]
    fn unknown_watches_are_bounded_and_forgotten() {
        let health = HealthReporter::new();
        let kept: Vec<_> = (0..MAX_UNKNOWN_WATCHED)
            .map(|i| health.watch(&format!("s{i}")).expect("watch"))
            .collect();
        assert!(health.watch("one-more").is_err());
        drop(kept);
        assert!(
            health.watch("one-more").is_ok(),
            "unwatched names are forgotten"
        );
    }
}
