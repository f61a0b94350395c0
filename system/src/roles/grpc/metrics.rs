//! The gRPC role's families on `/metrics`: the time of each unary call and of each batch
//! of a stream, its hop to the processor, and its counters (read when scraped). They are
//! shown by whichever `/metrics` holds its registry: the gateway's with all roles in one
//! process, `GRPC_METRICS_PORT` when the role runs alone, and the gRPC port itself (h2c).

use std::{
    sync::{
        Arc, Weak,
        atomic::{AtomicU64, Ordering},
    },
    time::Instant,
};

use prometheus_client::{collector::Collector, encoding::DescriptorEncoder};

use super::IngestServer;
use crate::serve::prometheus::{self, Families, Histogram, INGEST_DURATION, Registry};

/// The time of unary calls and of stream batches.
#[derive(Debug)]
pub(super) struct IngestLatency {
    pub(super) unary: Arc<Histogram>,
    /// One observation per hop batch of a stream (per message would cost a clock reading
    /// for each).
    pub(super) stream: Arc<Histogram>,
}

impl IngestLatency {
    pub(super) fn new() -> IngestLatency {
        IngestLatency {
            unary: INGEST_DURATION.histogram(),
            stream: INGEST_DURATION.histogram(),
        }
    }
}

/// Adds the gRPC role's families to `registry`; `connections` counts the connections
/// its listener accepted.
pub(super) fn register(
    registry: &Registry,
    server: &Arc<IngestServer>,
    connections: Arc<AtomicU64>,
) {
    let latency = &server.latency;
    let ingest = [("unary", &latency.unary), ("stream", &latency.stream)];
    crate::hop::metrics::add_door(registry, "grpc", ingest, &server.hop);
    registry.add_collector(GrpcCollector {
        server: Arc::downgrade(server),
        connections,
        started: Instant::now(),
    });
}

/// Reads the gRPC role's counters when `/metrics` is scraped; holds the server weakly, as
/// the server's router holds the registry.
#[derive(Debug)]
struct GrpcCollector {
    server: Weak<IngestServer>,
    connections: Arc<AtomicU64>,
    started: Instant,
}

impl Collector for GrpcCollector {
    fn encode(&self, encoder: DescriptorEncoder<'_>) -> std::fmt::Result {
        let Some(server) = self.server.upgrade() else {
            return Ok(());
        };
        let mut out = Families::new(encoder);
        out.counter(
            "grpc_connections_accepted",
            "TCP connections accepted by the gRPC server.",
            self.connections.load(Ordering::Relaxed),
        )?;
        crate::hop::metrics::hop_counters(&mut out, "grpc", &server.hop)?;
        prometheus::refusal_counters(&mut out, "grpc", &server.refusals)?;
        out.gauge(
            "grpc_uptime_seconds",
            "Seconds since the gRPC server started.",
            self.started.elapsed().as_secs(),
        )?;
        Ok(())
    }
}
