//! The gateway's families on `/metrics`: its counters (read from its atomics when
//! scraped), the time of each ingest by protocol, and its hop to the processor.

use std::{
    sync::{Arc, Weak, atomic::Ordering},
    time::Instant,
};

use prometheus_client::{collector::Collector, encoding::DescriptorEncoder};

use super::Gateway;
use crate::serve::prometheus::{self, Families, Histogram, INGEST_DURATION, Registry};

/// The time of each ingest, by the HTTP version it came in.
#[derive(Debug)]
pub(super) struct IngestLatency {
    http1: Arc<Histogram>,
    h2c: Arc<Histogram>,
}

impl IngestLatency {
    pub(super) fn new() -> IngestLatency {
        IngestLatency {
            http1: INGEST_DURATION.histogram(),
            h2c: INGEST_DURATION.histogram(),
        }
    }

    /// Counts an ingest that came in over `version` and began at `started`.
    pub(super) fn observe(&self, version: http::Version, started: Instant) {
        let histogram = if version == http::Version::HTTP_2 {
            &self.h2c
        } else {
            &self.http1
        };
        histogram.observe_since(started);
    }
}

/// Adds the gateway's families to `registry`.
pub(super) fn register(registry: &Registry, gateway: &Arc<Gateway>) {
    let latency = &gateway.latency;
    let ingest = [("http1", &latency.http1), ("h2c", &latency.h2c)];
    crate::hop::metrics::add_door(registry, "gateway", ingest, &gateway.hop);
    registry.add_collector(GatewayCollector(Arc::downgrade(gateway)));
}

/// Reads the gateway's counters when `/metrics` is scraped. It holds the gateway weakly:
/// the gateway's router holds the registry, and so this collector.
#[derive(Debug)]
struct GatewayCollector(Weak<Gateway>);

impl Collector for GatewayCollector {
    fn encode(&self, encoder: DescriptorEncoder<'_>) -> std::fmt::Result {
        let Some(gateway) = self.0.upgrade() else {
            return Ok(());
        };
        let count = |n: &std::sync::atomic::AtomicU64| n.load(Ordering::Relaxed);
        let mut out = Families::new(encoder);
        out.counters(
            "gateway_ingest",
            "Ingest requests by outcome: accepted, refused (4xx, 503) or failed (502).",
            &[
                (&[("outcome", "accepted")], count(&gateway.accepted)),
                (&[("outcome", "refused")], count(&gateway.refused)),
                (&[("outcome", "failed")], count(&gateway.failed)),
            ],
        )?
        .counter(
            "gateway_connections_accepted",
            "TCP connections accepted by the gateway.",
            count(&gateway.connections),
        )?;
        crate::hop::metrics::hop_counters(&mut out, "gateway", &gateway.hop)?;
        prometheus::refusal_counters(&mut out, "gateway", &gateway.refusals)?;
        out.gauge(
            "gateway_uptime_seconds",
            "Seconds since the gateway started.",
            gateway.started.elapsed().as_secs(),
        )?;
        Ok(())
    }
}
