//! The worker pool: N tasks that take messages from a [`Queue`], process them, and hand the
//! results to a bounded channel in [`ResultBatch`]es.
//!
//! Two modes, so the harness can measure one against the other ([`WorkerMode`]): the
//! original pool takes one message at a time and makes a fresh result for it; the batched
//! pool takes up to [`BATCH`] messages that are ready at once, reads the clock twice per
//! batch instead of per message, and fills recycled result batches (no allocation per
//! message once warm, see [`results`]).
//!
//! Stats are per-worker atomics on their own cache lines, summed when read, so workers never
//! share a lock or a contended counter. The time each stamped message waited in the queue
//! goes into the pool's histogram (two atomic adds per message, against the clock read once
//! per batch). [`WorkerPool::stop`] closes the queue and waits until the workers have
//! processed everything already accepted. Whoever owns the results receiver must keep
//! draining it until it yields `None`: the channel is bounded, and a full one makes workers
//! wait (that is its backpressure).

pub mod results;

use std::{
    panic::{AssertUnwindSafe, catch_unwind},
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use crossbeam_utils::CachePadded;
use tokio::{sync::mpsc, task::JoinHandle};

use self::results::BatchPool;
pub use self::results::ResultBatch;
use crate::{
    domain::histogram::{Bounds, Histogram},
    domain::message::MessageRef,
    domain::proto::ProcessingResult,
    domain::queue::{Delivery, Queue, Stamp},
};

/// The target of this module's log lines: its public path, which `RUST_LOG` names.
const LOG_TARGET: &str = "system::worker";

/// Most messages a batched worker takes in one go.
pub const BATCH: usize = 32;
// A worker notes which messages of a batch failed as the bits of one `u64`.
const _: () = assert!(BATCH <= u64::BITS as usize);

/// How workers take messages and hand results on (`WORKER_MODE`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum WorkerMode {
    /// The original pool: one message at a time, a fresh result for each.
    Baseline,
    /// Up to [`BATCH`] ready messages at a time, results in recycled batches.
    Batched,
}

/// How workers take messages unless told otherwise (`WORKER_MODE`).
pub(crate) const DEFAULT_WORKER_MODE: WorkerMode = WorkerMode::Batched;

impl Default for WorkerMode {
    fn default() -> Self {
        DEFAULT_WORKER_MODE
    }
}

impl WorkerMode {
    /// The name used in configuration and reports.
    pub fn as_str(self) -> &'static str {
        match self {
            WorkerMode::Baseline => "baseline",
            WorkerMode::Batched => "batched",
        }
    }

    /// Most results in one batch.
    pub fn batch(self) -> usize {
        match self {
            WorkerMode::Baseline => 1,
            WorkerMode::Batched => BATCH,
        }
    }
}

impl std::fmt::Display for WorkerMode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What a worker does to one message: writes the processed bytes into `out` (empty, and
/// with the capacity an earlier message left when results are recycled), or says why it
/// failed.
pub type ProcessFn = Arc<dyn Fn(MessageRef<'_>, &mut Vec<u8>) -> Result<(), String> + Send + Sync>;

/// The processing of the original system: the payload prefixed with `PROCESSED_`.
pub fn seed_processing(msg: MessageRef<'_>, out: &mut Vec<u8>) -> Result<(), String> {
    const PREFIX: &[u8] = b"PROCESSED_";
    out.reserve(PREFIX.len() + msg.payload.len());
    out.extend_from_slice(PREFIX);
    out.extend_from_slice(msg.payload);
    Ok(())
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
    /// How long the messages the workers took had waited in the queue.
    queue_wait: Arc<Histogram>,
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
    /// Starts `workers` tasks (at least one) in `mode` on the current tokio runtime.
    pub fn start(
        queue: Arc<Q>,
        workers: usize,
        mode: WorkerMode,
        process: ProcessFn,
        results: mpsc::Sender<ResultBatch>,
    ) -> WorkerPool<Q> {
        let workers = workers.max(1);
        // Enough batches for a full channel and one in every worker's hands, twice over.
        let batches = match mode {
            WorkerMode::Baseline => None,
            WorkerMode::Batched => Some(BatchPool::new(2 * (results.max_capacity() + workers))),
        };
        let stats = Arc::new(PoolStats {
            per_worker: (0..workers).map(|_| CachePadded::default()).collect(),
            queue_wait: Arc::new(Histogram::new(Bounds::Seconds)),
        });
        let clock = Clock::new();
        let handles = (0..workers)
            .map(|index| {
                let worker = Worker {
                    queue: Arc::clone(&queue),
                    stats: Arc::clone(&stats),
                    index,
                    batches: batches.clone(),
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
                tracing::error!(target: LOG_TARGET, %err, "worker task ended abnormally");
            }
        }
        self.stats.snapshot()
    }
}

impl PoolStats {
    /// The time the messages the workers took had waited in the queue (those published
    /// with a [`Stamp`]).
    pub(crate) fn queue_wait(&self) -> &Arc<Histogram> {
        &self.queue_wait
    }

    /// Sums the per-worker counters.
    pub(crate) fn snapshot(&self) -> WorkerStats {
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
    /// Where batched workers take their result batches from; `None` in the baseline mode.
    batches: Option<Arc<BatchPool>>,
    process: ProcessFn,
    results: mpsc::Sender<ResultBatch>,
    clock: Clock,
}

impl<Q: Queue> Worker<Q> {
    async fn run(self) {
        let counters = &self.stats.per_worker[self.index];
        let mut deliveries = Vec::with_capacity(BATCH);
        while let Some(first) = self.queue.consume().await {
            deliveries.push(first);
            let started = Instant::now();
            // Bit i set: the processing of deliveries[i] failed.
            let mut failed = 0u64;
            let mut batch = match &self.batches {
                Some(pool) => {
                    // Take what is ready now, up to a batch, without waiting for more.
                    while deliveries.len() < BATCH {
                        match self.queue.try_consume() {
                            Some(delivery) => deliveries.push(delivery),
                            None => break,
                        }
                    }
                    self.note_waits(&deliveries, started);
                    let mut batch = pool.take(BATCH);
                    for (i, delivery) in deliveries.iter().enumerate() {
                        failed |= u64::from(!self.fill(delivery.message(), batch.push())) << i;
                    }
                    batch
                }
                None => {
                    self.note_waits(&deliveries, started);
                    let mut result = ProcessingResult::default();
                    failed = u64::from(!self.fill(deliveries[0].message(), &mut result));
                    ResultBatch::one(result)
                }
            };
            let errors = u64::from(failed.count_ones());
            let finished = Instant::now();
            let processed_at = self.clock.unix_seconds(finished);
            for result in batch.iter_mut() {
                result.processed_at = processed_at;
            }
            let busy = finished.saturating_duration_since(started);
            counters
                .busy_nanos
                .fetch_add(busy.as_nanos() as u64, Ordering::Relaxed);
            if errors > 0 {
                counters.errors.fetch_add(errors, Ordering::Relaxed);
            }
            counters
                .processed
                .fetch_add(batch.len() as u64, Ordering::Relaxed);
            // A failed message goes back to the queue, which may deliver it again (NATS)
            // or let it go (the in-memory queues); either way it is counted as an error.
            for (i, delivery) in deliveries.drain(..).enumerate() {
                if failed & (1 << i) == 0 {
                    delivery.ack().await;
                } else {
                    delivery.nack().await;
                }
            }
            // When nobody reads results any more, keep processing so the queue still drains.
            let _ = self.results.send(batch).await;
        }
    }

    /// Counts how long each stamped delivery waited until `taken` (the batch's start: a
    /// message published after it, while the batch was gathered, counts as no wait). The
    /// processor stamps every message it publishes and a bare queue none, so a batch whose
    /// first message has no stamp is passed over with that one check.
    #[inline]
    fn note_waits(&self, deliveries: &[Q::Delivery], taken: Instant) {
        if deliveries.first().and_then(Delivery::queued_at).is_none() {
            return;
        }
        let now = Stamp::at(taken);
        for delivery in deliveries {
            if let Some(queued_at) = delivery.queued_at() {
                self.stats.queue_wait.observe(queued_at.nanos_until(now));
            }
        }
    }

    /// Processes `msg` into `result` (cleared); `false` when processing failed.
    fn fill(&self, msg: MessageRef<'_>, result: &mut ProcessingResult) -> bool {
        result.message_id.push_str(msg.id);
        let outcome = catch_unwind(AssertUnwindSafe(|| (self.process)(msg, &mut result.result)))
            .unwrap_or_else(|_| Err("processing panicked".to_owned()));
        match outcome {
            Ok(()) => {
                result.success = true;
                true
            }
            Err(error) => {
                result.success = false;
                result.error = error;
                result.result.clear();
                false
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
            base_unix: crate::domain::message::unix_time(),
        }
    }

    fn unix_seconds(&self, at: Instant) -> i64 {
        (self.base_unix + at.saturating_duration_since(self.base)).as_secs() as i64
    }
}
