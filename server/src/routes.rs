//! What the server answers on its one port: gRPC services behind gRPC-web and CORS.
//!
//! Order matters: CORS outermost (so preflights are answered before anything else and
//! error responses still carry the CORS headers a browser needs to read `grpc-status`),
//! then tonic-web (translating `application/grpc-web*` requests over HTTP/1.1 or HTTP/2
//! into gRPC), then the size limits ([`crate::limits`], inside gRPC-web so they measure
//! decoded messages and their errors reach browsers as gRPC-web trailers), then tonic's
//! routes. `GET /metrics` ([`crate::metrics`]) is answered before all of them.

use crate::conn::streams::Routes;
use crate::limits::{LimitLayer, Limits};
use crate::metrics::{Metrics, MetricsLayer};
use crate::service::KeepaliveService;
use http::{HeaderName, HeaderValue, Method};
use std::sync::Arc;
use std::time::Duration;
use tonic_health::pb::health_server::{Health, HealthServer};
use tower_http::cors::{AllowHeaders, AllowOrigin, CorsLayer};

/// Response headers a browser may read cross-origin: without them a gRPC-web client
/// cannot see why a call failed.
pub const EXPOSED_HEADERS: [&str; 3] = ["grpc-status", "grpc-message", "grpc-status-details-bin"];

/// Builds the routes: health, reflection, the keepalive service, and everything behind
/// gRPC-web, CORS and the size limits.
pub fn build(
    health: HealthServer<impl Health>,
    keepalive: KeepaliveService,
    cors_allow_origin: &[String],
    limits: Limits,
) -> Result<Routes, String> {
    // tonic's own decoding limit, as a second line behind LimitLayer (which answers first,
    // with RESOURCE_EXHAUSTED instead of tonic's OUT_OF_RANGE).
    let max_in = limits.max_recv_message_size;
    let metrics = Metrics::new(Arc::new(keepalive.snapshot_source()));
    let reflection = tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
        .register_encoded_file_descriptor_set(proto::FILE_DESCRIPTOR_SET)
        .build_v1()
        .map_err(|e| format!("reflection: {e}"))?
        .max_decoding_message_size(max_in);
    let routes = tonic::service::Routes::new(health.max_decoding_message_size(max_in))
        .add_service(reflection)
        .add_service(keepalive.into_server().max_decoding_message_size(max_in))
        .prepare();
    let stack = tower::ServiceBuilder::new()
        .layer(MetricsLayer::new(metrics))
        .option_layer(cors(cors_allow_origin)?)
        .layer(tonic_web::GrpcWebLayer::new())
        .layer(LimitLayer::new(limits))
        .service(routes);
    Ok(Routes::new(stack))
}

/// The CORS layer for the allowed origins; `None` (same-origin only) when there are none.
pub fn cors(origins: &[String]) -> Result<Option<CorsLayer>, String> {
    if origins.is_empty() {
        return Ok(None);
    }
    let allow = if origins.iter().any(|o| o == "*") {
        AllowOrigin::any()
    } else {
        AllowOrigin::list(
            origins
                .iter()
                .map(|o| HeaderValue::from_str(o).map_err(|_| format!("bad CORS origin {o:?}")))
                .collect::<Result<Vec<_>, _>>()?,
        )
    };
    Ok(Some(
        CorsLayer::new()
            .allow_origin(allow)
            .allow_methods([Method::POST, Method::OPTIONS])
            .allow_headers(AllowHeaders::mirror_request())
            .expose_headers(EXPOSED_HEADERS.map(HeaderName::from_static))
            .max_age(Duration::from_secs(2 * 60 * 60)),
    ))
}
