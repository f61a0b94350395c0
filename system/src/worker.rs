//! The worker pool: N tasks that take messages from a [`Queue`], process them, and hand each
//! [`ProcessingResult`] to a bounded results channel.
//!
//! Stats are per-worker atomics on their own cache lines, summed when read, so workers never
//! share a lock or a contended counter. [`WorkerPool::stop`] closes the queue and waits
//! until the workers have processed everything already accepted. Whoever owns the results
//! receiver must keep draining it until it yields `None`: the channel is bounded, and a full
//! one makes workers wait (that is its backpressure).

use std::{
    panic::{AssertUnwindSafe, catch_unwind},
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    time::{Duration, Instant, SystemTime, UNIX_EPOCH},
};

use crossbeam_utils::CachePadded;
use tokio::{sync::mpsc, task::JoinHandle};

use crate::{
    message::MessageRef,
    proto::ProcessingResult,
    queue::{Delivery, Queue},
};

/// What a worker does to one message: the processed bytes, or why it failed.
pub type ProcessFn = Arc<dyn Fn(MessageRef<'_>) -> Result<Vec<u8>, String> + Send + Sync>;

/// The processing of the original system: the payload prefixed with `PROCESSED_`.
pub fn seed_processing(msg: MessageRef<'_>) -> Result<Vec<u8>, String> {
    const PREFIX: &[u8] = b"PROCESSED_";
    let mut out = Vec::with_capacity(PREFIX.len() + msg.payload.len());
    out.extend_from_slice(PREFIX);
    out.extend_from_slice(msg.payload);
    Ok(out)
}

/// A running pool of workers.
#[derive(Debug)]
pub struct WorkerPool<Q> {
    queue: Arc<Q>,
    stats: Arc<PoolStats>,
    workers: Vec<JoinHandle<()>>,
}

/// Counters shared by the workers of one pool.
#[derive(Debug)]
pub struct PoolStats {
    per_worker: Vec<CachePadded<WorkerCounters>>,
}

#[derive(Debug, Default)]
struct WorkerCounters {
    processed: AtomicU64,
    errors: AtomicU64,
    busy_nanos: AtomicU64,
}

/// A snapshot of [`PoolStats`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct WorkerStats {
    /// Number of workers.
    pub workers: u64,
    /// Messages processed (successfully or not).
    pub processed: u64,
    /// Messages whose processing failed.
    pub errors: u64,
    /// Time spent processing, summed over workers, in nanoseconds.
    pub processing_nanos: u64,
}

impl<Q: Queue> WorkerPool<Q> {
    /// Starts `workers` tasks (at least one) on the current tokio runtime.
    pub fn start(
        queue: Arc<Q>,
        workers: usize,
        process: ProcessFn,
        results: mpsc::Sender<ProcessingResult>,
    ) -> WorkerPool<Q> {
        let workers = workers.max(1);
        let stats = Arc::new(PoolStats {
            per_worker: (0..workers).map(|_| CachePadded::default()).collect(),
        });
        let clock = Clock::new();
        let handles = (0..workers)
            .map(|index| {
                let worker = Worker {
                    queue: Arc::clone(&queue),
                    stats: Arc::clone(&stats),
                    index,
                    process: Arc::clone(&process),
                    results: results.clone(),
                    clock,
                };
                tokio::spawn(worker.run())
            })
            .collect();
        WorkerPool {
            queue,
            stats,
            workers: handles,
        }
    }

    /// The pool's counters, readable while it runs.
    pub fn stats(&self) -> Arc<PoolStats> {
        Arc::clone(&self.stats)
    }

    /// Closes the queue and returns when every accepted message has been processed and
    /// every worker has ended.
    pub async fn stop(self) -> WorkerStats {
        self.queue.close();
        for handle in self.workers {
            if let Err(err) = handle.await {
                tracing::error!(%err, "worker task ended abnormally");
            }
        }
        self.stats.snapshot()
    }
}

impl PoolStats {
    /// Sums the per-worker counters.
    pub fn snapshot(&self) -> WorkerStats {
        let mut total = WorkerStats {
            workers: self.per_worker.len() as u64,
            ..WorkerStats::default()
        };
        for counters in &self.per_worker {
            total.processed += counters.processed.load(Ordering::Relaxed);
            total.errors += counters.errors.load(Ordering::Relaxed);
            total.processing_nanos += counters.busy_nanos.load(Ordering::Relaxed);
        }
        total
    }
}

struct Worker<Q> {
    queue: Arc<Q>,
    stats: Arc<PoolStats>,
    index: usize,
    process: ProcessFn,
    results: mpsc::Sender<ProcessingResult>,
    clock: Clock,
}

impl<Q: Queue> Worker<Q> {
    async fn run(self) {
        let counters = &self.stats.per_worker[self.index];
        while let Some(delivery) = self.queue.consume().await {
            let started = Instant::now();
            let msg = delivery.message();
            let outcome = catch_unwind(AssertUnwindSafe(|| (self.process)(msg)))
                .unwrap_or_else(|_| Err("processing panicked".to_owned()));
            let finished = Instant::now();
            let result = match outcome {
                Ok(result) => ProcessingResult {
                    message_id: msg.id.to_owned(),
                    processed_at: self.clock.unix_seconds(finished),
                    success: true,
                    error: String::new(),
                    result,
                },
                Err(error) => {
                    counters.errors.fetch_add(1, Ordering::Relaxed);
                    ProcessingResult {
                        message_id: msg.id.to_owned(),
                        processed_at: self.clock.unix_seconds(finished),
                        success: false,
                        error,
                        result: Vec::new(),
                    }
                }
            };
            let busy = finished.saturating_duration_since(started);
            counters
                .busy_nanos
                .fetch_add(busy.as_nanos() as u64, Ordering::Relaxed);
            counters.processed.fetch_add(1, Ordering::Relaxed);
            delivery.ack().await;
            if self.results.send(result).await.is_err() {
                // Nobody reads results any more; keep processing so the queue still drains.
                continue;
            }
        }
    }
}

/// Unix time derived from the monotonic clock, so a worker reads the clock once per message.
#[derive(Debug, Clone, Copy)]
struct Clock {
    base: Instant,
    base_unix: Duration,
}

impl Clock {
    fn new() -> Clock {
        Clock {
            base: Instant::now(),
            base_unix: SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .unwrap_or_default(),
        }
    }

    fn unix_seconds(&self, at: Instant) -> i64 {
        (self.base_unix + at.saturating_duration_since(self.base)).as_secs() as i64
    }
}
