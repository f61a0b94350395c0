//! The processor's families on `/metrics`: its queue, worker and request counters (read
//! from their atomics when scraped) and the time messages waited in the queue.

use std::sync::{Arc, Weak};

use prometheus_client::{collector::Collector, encoding::DescriptorEncoder};

use super::AppState;
use crate::{
    domain::queue::QueueType,
    serve::prometheus::{Families, QUEUE_WAIT, Registry},
};

/// Adds the processor's families to `registry`.
pub(super) fn register(registry: &Registry, state: &Arc<AppState>) {
    // Messages in the NATS stream carry no stamp of this process: their wait is unknown.
    let kind = state.queue.kind();
    if kind != QueueType::Nats {
        registry.add_histogram(
            &QUEUE_WAIT,
            vec![("queue", kind.as_str())],
            Arc::clone(state.pool_stats.queue_wait()),
        );
    }
    registry.add_collector(ProcessorCollector(Arc::downgrade(state)));
}

/// Reads the processor's counters when `/metrics` is scraped. It holds the state weakly:
/// the state holds the registry, and so this collector.
#[derive(Debug)]
struct ProcessorCollector(Weak<AppState>);

impl Collector for ProcessorCollector {
    fn encode(&self, encoder: DescriptorEncoder<'_>) -> std::fmt::Result {
        let Some(state) = self.0.upgrade() else {
            return Ok(());
        };
        let stats = state.stats();
        let queue: &[(&str, &str)] = &[("queue", stats.queue_type)];
        let mut out = Families::new(encoder);
        out.counters(
            "processor_messages_enqueued",
            "Messages accepted into the queue.",
            &[(queue, stats.queue.enqueued)],
        )?
        .counters(
            "processor_messages_rejected",
            "Messages refused because the queue was full.",
            &[(queue, stats.queue.rejected)],
        )?
        .counters(
            "processor_messages_dequeued",
            "Messages handed to workers.",
            &[(queue, stats.queue.dequeued)],
        )?
        .gauges(
            "processor_queue_size",
            "Messages waiting in the queue.",
            &[(queue, stats.queue.size)],
        )?
        .gauges(
            "processor_queue_capacity",
            "Most messages that can wait in the queue.",
            &[(queue, stats.queue.capacity)],
        )?
        .counters(
            "processor_queue_lock_waits",
            "Times a publisher or consumer waited for a lock of the queue (0 without locks).",
            &[(queue, stats.queue.lock_waits)],
        )?
        .counters(
            "processor_queue_lock_wait_seconds",
            "Time spent waiting for locks of the queue, summed over threads.",
            &[(queue, stats.queue.lock_wait_nanos as f64 / 1e9)],
        )?
        .gauge(
            "processor_workers",
            "Number of workers.",
            stats.workers.workers,
        )?
        .counter(
            "processor_messages_processed",
            "Messages processed by the workers.",
            stats.workers.processed,
        )?
        .counter(
            "processor_processing_errors",
            "Messages whose processing failed.",
            stats.workers.errors,
        )?
        .counter(
            "processor_processing_seconds",
            "Time the workers spent processing.",
            stats.workers.processing_nanos as f64 / 1e9,
        )?
        .counters(
            "processor_http_requests",
            "Ingest requests received, by route.",
            &[
                (&[("route", "/enqueue")], stats.enqueue_requests),
                (&[("route", "/enqueue/batch")], stats.batch_requests),
            ],
        )?
        .counter(
            "processor_connections_accepted",
            "TCP connections accepted.",
            stats.connections_accepted,
        )?
        .gauge(
            "processor_uptime_seconds",
            "Seconds since the processor started.",
            stats.uptime_seconds,
        )?;
        if let Some(nats) = stats.nats {
            out.counter(
                "processor_nats_published",
                "Publishes JetStream confirmed.",
                nats.published,
            )?
            .counter(
                "processor_nats_uncertain",
                "Publishes JetStream did not confirm in time (each may have been stored).",
                nats.uncertain,
            )?
            .counter(
                "processor_nats_acknowledged",
                "Messages acknowledged to JetStream after processing.",
                nats.acknowledged,
            )?
            .counter(
                "processor_nats_nacked",
                "Deliveries whose processing failed, negatively acknowledged to JetStream.",
                nats.nacked,
            )?
            .counter(
                "processor_nats_redelivered",
                "Deliveries received that were not a message's first.",
                nats.redelivered,
            )?
            .counter(
                "processor_nats_dead_lettered",
                "Messages moved to the dead-letter stream after their last delivery.",
                nats.dead_lettered,
            )?
            .gauge(
                "processor_nats_stream_pending",
                "Messages in the stream not yet acknowledged.",
                nats.pending,
            )?;
        }
        crate::serve::prometheus::refusal_counters(&mut out, "processor", &state.refusals)?;
        Ok(())
    }
}
