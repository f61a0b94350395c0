//! `GET /metrics` of the processor.

use std::sync::Arc;

use axum::{extract::State, http::header, response::IntoResponse};

use super::AppState;
use crate::prometheus::{CONTENT_TYPE, Exposition, Kind};

pub(super) async fn render(State(state): State<Arc<AppState>>) -> impl IntoResponse {
    let stats = state.stats();
    let queue = [("queue", stats.queue_type)];
    let mut out = Exposition::default();
    out.family(
        "processor_messages_enqueued_total",
        Kind::Counter,
        "Messages accepted into the queue.",
        &[(&queue, stats.queue.enqueued as f64)],
    )
    .family(
        "processor_messages_rejected_total",
        Kind::Counter,
        "Messages refused because the queue was full.",
        &[(&queue, stats.queue.rejected as f64)],
    )
    .family(
        "processor_messages_dequeued_total",
        Kind::Counter,
        "Messages handed to workers.",
        &[(&queue, stats.queue.dequeued as f64)],
    )
    .family(
        "processor_queue_size",
        Kind::Gauge,
        "Messages waiting in the queue.",
        &[(&queue, stats.queue.size as f64)],
    )
    .family(
        "processor_queue_capacity",
        Kind::Gauge,
        "Most messages that can wait in the queue.",
        &[(&queue, stats.queue.capacity as f64)],
    )
    .family(
        "processor_queue_lock_waits_total",
        Kind::Counter,
        "Times a publisher or consumer waited for a lock of the queue (0 without locks).",
        &[(&queue, stats.queue.lock_waits as f64)],
    )
    .family(
        "processor_queue_lock_wait_seconds_total",
        Kind::Counter,
        "Time spent waiting for locks of the queue, summed over threads.",
        &[(&queue, stats.queue.lock_wait_nanos as f64 / 1e9)],
    )
    .metric(
        "processor_workers",
        Kind::Gauge,
        "Number of workers.",
        stats.workers.workers as f64,
    )
    .metric(
        "processor_messages_processed_total",
        Kind::Counter,
        "Messages processed by the workers.",
        stats.workers.processed as f64,
    )
    .metric(
        "processor_processing_errors_total",
        Kind::Counter,
        "Messages whose processing failed.",
        stats.workers.errors as f64,
    )
    .metric(
        "processor_processing_seconds_total",
        Kind::Counter,
        "Time the workers spent processing.",
        stats.workers.processing_nanos as f64 / 1e9,
    )
    .family(
        "processor_http_requests_total",
        Kind::Counter,
        "Ingest requests received, by route.",
        &[
            (&[("route", "/enqueue")], stats.enqueue_requests as f64),
            (&[("route", "/enqueue/batch")], stats.batch_requests as f64),
        ],
    )
    .metric(
        "processor_connections_accepted_total",
        Kind::Counter,
        "TCP connections accepted.",
        stats.connections_accepted as f64,
    )
    .metric(
        "processor_uptime_seconds",
        Kind::Gauge,
        "Seconds since the processor started.",
        stats.uptime_seconds as f64,
    );
    if let Some(nats) = stats.nats {
        out.metric(
            "processor_nats_published_total",
            Kind::Counter,
            "Publishes JetStream confirmed.",
            nats.published as f64,
        )
        .metric(
            "processor_nats_acknowledged_total",
            Kind::Counter,
            "Messages acknowledged to JetStream after processing.",
            nats.acknowledged as f64,
        )
        .metric(
            "processor_nats_nacked_total",
            Kind::Counter,
            "Deliveries whose processing failed, negatively acknowledged to JetStream.",
            nats.nacked as f64,
        )
        .metric(
            "processor_nats_redelivered_total",
            Kind::Counter,
            "Deliveries received that were not a message's first.",
            nats.redelivered as f64,
        )
        .metric(
            "processor_nats_dead_lettered_total",
            Kind::Counter,
            "Messages moved to the dead-letter stream after their last delivery.",
            nats.dead_lettered as f64,
        )
        .metric(
            "processor_nats_stream_pending",
            Kind::Gauge,
            "Messages in the stream not yet acknowledged.",
            nats.pending as f64,
        );
    }
    ([(header::CONTENT_TYPE, CONTENT_TYPE)], out.finish())
}
