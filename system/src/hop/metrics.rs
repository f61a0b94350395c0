//! A front door's metric families that come from its hop: the hop's latency and batch
//! size histograms beside the door's ingest latency, and the hop's counters.

use std::sync::Arc;

use crate::{
    domain::histogram::Histogram,
    hop::Hop,
    serve::prometheus::{Families, HOP_BATCH, HOP_DURATION, INGEST_DURATION, Registry},
};

/// Adds a front door's histograms: its ingest latency per protocol (`door` and `protocol`
/// labels) and its hop's latency and batch size.
pub(crate) fn add_door(
    registry: &Registry,
    door: &'static str,
    ingest: [(&'static str, &Arc<Histogram>); 2],
    forwarder: &Hop,
) {
    for (protocol, histogram) in ingest {
        registry.add_histogram(
            &INGEST_DURATION,
            vec![("door", door), ("protocol", protocol)],
            Arc::clone(histogram),
        );
    }
    add_hop(registry, door, forwarder);
}

/// Adds the hop histograms of a front door's `forwarder`, labelled with its `door`.
fn add_hop(registry: &Registry, door: &'static str, forwarder: &Hop) {
    registry.add_histogram(
        &HOP_DURATION,
        vec![("door", door)],
        Arc::clone(forwarder.hop_latency()),
    );
    registry.add_histogram(
        &HOP_BATCH,
        vec![("door", door)],
        Arc::clone(forwarder.hop_batch()),
    );
}

/// Writes the hop counters of a front door, each name beginning with `prefix`.
pub(crate) fn hop_counters(
    out: &mut Families<'_>,
    prefix: &str,
    forwarder: &Hop,
) -> std::fmt::Result {
    let hop = forwarder.stats();
    out.counter(
        &format!("{prefix}_hop_requests"),
        "Requests sent to the processor.",
        hop.requests,
    )?
    .counter(
        &format!("{prefix}_hop_connections_opened"),
        "Connections opened to the processor.",
        hop.connections_opened,
    )?
    .counter(
        &format!("{prefix}_hop_failures"),
        "Requests to the processor that failed.",
        hop.failures,
    )?
    .gauge(
        &format!("{prefix}_hop_connection_reuse_ratio"),
        "1 - connections opened / requests sent to the processor.",
        hop.connection_reuse.unwrap_or(0.0),
    )?;
    Ok(())
}
