//! `GET /metrics` of the gateway.

use std::sync::{Arc, atomic::Ordering};

use axum::{extract::State, http::header, response::IntoResponse};

use super::Gateway;
use crate::prometheus::{CONTENT_TYPE, Exposition, Kind};

pub(super) async fn render(State(gateway): State<Arc<Gateway>>) -> impl IntoResponse {
    let hop = gateway.forwarder.stats();
    let count = |n: &std::sync::atomic::AtomicU64| n.load(Ordering::Relaxed) as f64;
    let mut out = Exposition::default();
    out.family(
        "gateway_ingest_total",
        Kind::Counter,
        "Ingest requests by outcome: accepted, refused (4xx, 503) or failed (502).",
        &[
            (&[("outcome", "accepted")], count(&gateway.accepted)),
            (&[("outcome", "refused")], count(&gateway.refused)),
            (&[("outcome", "failed")], count(&gateway.failed)),
        ],
    )
    .metric(
        "gateway_connections_accepted_total",
        Kind::Counter,
        "TCP connections accepted by the gateway.",
        count(&gateway.connections),
    )
    .metric(
        "gateway_hop_requests_total",
        Kind::Counter,
        "Requests sent to the processor.",
        hop.requests as f64,
    )
    .metric(
        "gateway_hop_connections_opened_total",
        Kind::Counter,
        "Connections opened to the processor.",
        hop.connections_opened as f64,
    )
    .metric(
        "gateway_hop_failures_total",
        Kind::Counter,
        "Requests to the processor that failed.",
        hop.failures as f64,
    )
    .metric(
        "gateway_hop_connection_reuse_ratio",
        Kind::Gauge,
        "1 - connections opened / requests sent to the processor.",
        hop.connection_reuse.unwrap_or(0.0),
    )
    .metric(
        "gateway_uptime_seconds",
        Kind::Gauge,
        "Seconds since the gateway started.",
        gateway.started.elapsed().as_secs() as f64,
    );
    ([(header::CONTENT_TYPE, CONTENT_TYPE)], out.finish())
}
