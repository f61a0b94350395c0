//! The operations every suite measures, written once: the criterion suites time them, the
//! allocation suite counts their allocations and the callgrind suites count their
//! instructions. Each function performs whole operations of one side of an A/B pair.

mod shapes;
mod stack;

pub use shapes::{SHAPE_BYTES, StreamReader, data_carried, shapes, unknown_fields};
pub use stack::{Placement, Stack};

use std::{
    collections::HashMap,
    sync::{Arc, atomic::AtomicU64},
    thread,
};

use prost::Message as _;
use study::{cases::group, variant::Variant};
use system::{
    client::{Accepted, ClientMode, Forwarder, ForwarderConfig, HopProtocol},
    codec::Codec,
    message::MessageRef,
    proto::DataMessage,
    queue::{AnyQueue, PublishError, Queue, QueueType},
    worker::{ResultBatch, WorkerMode, WorkerPool, seed_processing},
};
use tokio::sync::mpsc;

/// Payload size of the sample message, in bytes.
pub const PAYLOAD_BYTES: usize = 256;

/// `n` copies of `msg`, each under an id of its own: the processor answers a message sent
/// again under an id it accepted as a duplicate and does not queue it, which is not the
/// path the client suites measure. The ids are written into the copies' own strings (as
/// long as the sample's), so this allocates what `n` clones do and no more.
pub fn distinct_copies(
    msg: &DataMessage,
    n: usize,
    next: &std::sync::atomic::AtomicU64,
) -> Vec<DataMessage> {
    use std::fmt::Write as _;
    let mut copies = vec![msg.clone(); n];
    for copy in &mut copies {
        let number = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        copy.id.clear();
        let _ = write!(copy.id, "bench-{number:030}");
    }
    copies
}

/// The message every suite uses: fixed content, four metadata pairs.
pub fn sample_message() -> DataMessage {
    DataMessage {
        id: "0b9d8a52-6a4f-4c1e-9d3b-4f5e6a7b8c9d".to_owned(),
        timestamp: 1_750_000_000,
        source: "bench-sensor".to_owned(),
        payload: (0..PAYLOAD_BYTES).map(|i| (i % 251) as u8).collect(),
        metadata: HashMap::from([
            ("region".to_owned(), "eu-central".to_owned()),
            ("unit".to_owned(), "celsius".to_owned()),
            ("device".to_owned(), "probe-17".to_owned()),
            ("firmware".to_owned(), "2.4.1".to_owned()),
        ]),
        // A client's own id, in the namespace clients share.
        id_assigned: false,
        id_scope: String::new(),
    }
}

/// Publishes without waiting (both in-memory queues publish synchronously; the NATS queue
/// needs a runtime and is not measured here).
pub fn try_publish(queue: &AnyQueue, msg: &DataMessage) -> Result<(), PublishError> {
    match queue {
        AnyQueue::Memory(q) => q.try_publish(MessageRef::from(msg)),
        AnyQueue::Pooled(q) => q.try_publish(MessageRef::from(msg)),
        AnyQueue::Nats(_) => Err(PublishError::Unavailable),
    }
}

/// Takes one message without waiting and lets it go (returning a pooled slot).
pub fn try_consume(queue: &AnyQueue) -> bool {
    match queue {
        AnyQueue::Memory(q) => q
            .try_consume()
            .map(|d| std::hint::black_box(d.message().payload.len())),
        AnyQueue::Pooled(q) => q
            .try_consume()
            .map(|d| std::hint::black_box(d.message().payload.len())),
        AnyQueue::Nats(_) => None,
    }
    .is_some()
}

/// A queue of `kind`, warmed up so the pooled one holds the slots it needs.
pub fn warm_queue(kind: QueueType, capacity: usize, msg: &DataMessage) -> AnyQueue {
    let queue = AnyQueue::new(kind, capacity);
    for _ in 0..capacity.min(1024) {
        let _ = try_publish(&queue, msg);
    }
    while try_consume(&queue) {}
    queue
}

/// `n` publish+consume pairs on one thread.
pub fn publish_consume(queue: &AnyQueue, msg: &DataMessage, n: usize) {
    for _ in 0..n {
        let _ = try_publish(queue, msg);
        try_consume(queue);
    }
}

/// `n` messages from `producers` threads to `consumers` threads through `queue`; returns
/// when every message has been consumed. Producers retry while the queue is full.
pub fn contended(
    queue: &Arc<AnyQueue>,
    msg: &DataMessage,
    producers: usize,
    consumers: usize,
    n: usize,
) {
    let per_producer = n / producers;
    let total = per_producer * producers;
    let consumed = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    thread::scope(|scope| {
        for _ in 0..producers {
            scope.spawn(|| {
                for _ in 0..per_producer {
                    while try_publish(queue, msg).is_err() {
                        std::hint::spin_loop();
                    }
                }
            });
        }
        for _ in 0..consumers {
            let consumed = Arc::clone(&consumed);
            scope.spawn(move || {
                use std::sync::atomic::Ordering;
                while consumed.load(Ordering::Relaxed) < total {
                    if try_consume(queue) {
                        consumed.fetch_add(1, Ordering::Relaxed);
                    } else {
                        std::hint::spin_loop();
                    }
                }
            });
        }
    });
}

/// A queue of `kind` holding `n` copies of `msg`: the pre-filled queue of the original
/// system's BenchmarkWorkerPool.
pub async fn prefilled(kind: QueueType, n: usize, msg: &DataMessage) -> Arc<AnyQueue> {
    let queue = Arc::new(AnyQueue::new(kind, n));
    for _ in 0..n {
        let _ = queue.publish(MessageRef::from(msg)).await;
    }
    queue
}

/// The timed part of BenchmarkWorkerPool: start 4 workers in `mode` on a pre-filled queue
/// of `n`, wait until all `n` results are out, stop the pool. The emptied queue stays with the caller: freeing it is teardown, not processing (the
/// original's queue outlived its timer too).
pub async fn drain_with_pool(queue: &Arc<AnyQueue>, n: usize, mode: WorkerMode) {
    let (tx, mut rx) = mpsc::channel::<ResultBatch>(1024 / mode.batch());
    let pool = WorkerPool::start(Arc::clone(queue), 4, mode, Arc::new(seed_processing), tx);
    receive(&mut rx, n).await;
    pool.stop().await;
}

/// Takes results until `n` are out (or every sender is gone), in bulk: one wake-up takes
/// every batch waiting.
async fn receive(results: &mut mpsc::Receiver<ResultBatch>, n: usize) {
    let mut batches = Vec::with_capacity(64);
    let mut received = 0;
    while received < n {
        if results.recv_many(&mut batches, 64).await == 0 {
            break;
        }
        received += batches.drain(..).map(|batch| batch.len()).sum::<usize>();
    }
}

/// A pool of 4 workers on a current-thread runtime, for the counting suites: it has run a
/// warm-up round, so a measured round sees what every message costs once the pool is warm
/// (queue slots, result batches and channel blocks reused), not the pool's first batches.
/// Nothing runs between calls: the workers only move while [`RunningPool::drain`] drives
/// the runtime.
pub struct RunningPool {
    runtime: tokio::runtime::Runtime,
    queue: Arc<AnyQueue>,
    pool: Option<WorkerPool<AnyQueue>>,
    results: mpsc::Receiver<ResultBatch>,
}

impl RunningPool {
    /// Starts the pool and runs one round of `n` messages through it.
    pub fn start(kind: QueueType, mode: WorkerMode, n: usize, msg: &DataMessage) -> RunningPool {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("a tokio runtime");
        let queue = Arc::new(AnyQueue::new(kind, n));
        let (tx, results) = mpsc::channel::<ResultBatch>(1024 / mode.batch());
        let pool = {
            let _entered = runtime.enter();
            WorkerPool::start(Arc::clone(&queue), 4, mode, Arc::new(seed_processing), tx)
        };
        let mut running = RunningPool {
            runtime,
            queue,
            pool: Some(pool),
            results,
        };
        running.fill(n, msg);
        running.drain(n);
        running
    }

    /// Publishes `n` copies of `msg` without letting the workers run.
    pub fn fill(&self, n: usize, msg: &DataMessage) {
        for _ in 0..n {
            let _ = try_publish(&self.queue, msg);
        }
    }

    /// Lets the workers run until `n` results are out.
    pub fn drain(&mut self, n: usize) {
        self.runtime.block_on(receive(&mut self.results, n));
    }
}

impl Drop for RunningPool {
    fn drop(&mut self) {
        if let Some(pool) = self.pool.take() {
            let results = &mut self.results;
            self.runtime.block_on(async {
                let drain = async { while results.recv().await.is_some() {} };
                tokio::join!(pool.stop(), drain);
            });
        }
    }
}

/// Encodes `msg` as the hop does, into `buf` (cleared first).
pub fn encode(codec: system::codec::Codec, msg: &DataMessage, buf: &mut Vec<u8>) {
    buf.clear();
    match codec {
        system::codec::Codec::Json => {
            let _ = serde_json::to_writer(&mut *buf, msg);
        }
        system::codec::Codec::Protobuf => {
            let _ = msg.encode(buf);
        }
    }
}

/// Decodes a message encoded by [`encode`].
pub fn decode(codec: system::codec::Codec, bytes: &[u8]) -> Option<DataMessage> {
    codec.decode::<DataMessage>(bytes).ok()
}

/// The processor client every client pair changes one thing of: pooled connections,
/// HTTP/1.1, JSON, one message per request (the baseline sides of the hop pairs, whatever
/// the system's defaults are).
pub fn reference_forwarder(processor_url: http::Uri) -> system::client::ForwarderConfig {
    system::client::ForwarderConfig {
        mode: system::client::ClientMode::Pooled,
        protocol: system::client::HopProtocol::Http1,
        codec: system::codec::Codec::Json,
        batch: 1,
        batch_unary: false,
        ..system::client::ForwarderConfig::new(processor_url)
    }
}

/// One side of a hop client pair: its variant, and what it changes of
/// [`reference_forwarder`].
pub type ClientSide = (Variant, fn(ForwarderConfig) -> ForwarderConfig);

/// The hop client pairs, one axis at a time from [`reference_forwarder`]: `baseline` vs
/// `pooled`, HTTP/1.1 vs h2c, JSON vs protobuf, unbatched vs batched (64 a request); each
/// group with its two sides, the baseline first.
pub const CLIENT_PAIRS: [(&str, [ClientSide; 2]); 4] = [
    (
        group::CLIENT_MODE,
        [
            (Variant::Baseline, |c| ForwarderConfig {
                mode: ClientMode::Baseline,
                ..c
            }),
            (Variant::Pooled, |c| c),
        ],
    ),
    (
        group::CLIENT_PROTOCOL,
        [
            (Variant::Http1, |c| c),
            (Variant::H2c, |c| ForwarderConfig {
                protocol: HopProtocol::H2c,
                ..c
            }),
        ],
    ),
    (
        group::CLIENT_CODEC,
        [
            (Variant::Json, |c| c),
            (Variant::Protobuf, |c| ForwarderConfig {
                codec: Codec::Protobuf,
                ..c
            }),
        ],
    ),
    (
        group::CLIENT_BATCHING,
        [
            (Variant::Unbatched, |c| c),
            (Variant::Batched, |c| ForwarderConfig { batch: 64, ..c }),
        ],
    ),
];

/// Forwards `n` copies of `msg`, each under an id of its own ([`distinct_copies`]), in one
/// batch, and checks that the processor accepted each as new: the operation of the hop
/// client pairs.
pub async fn forward_accepted(forwarder: &Forwarder, msg: &DataMessage, n: usize, ids: &AtomicU64) {
    let results = forwarder.forward_batch(distinct_copies(msg, n, ids)).await;
    assert!(
        results.iter().all(|r| *r == Ok(Accepted::New)),
        "the processor refused a message or took it for a repeat"
    );
}
