//! The original system's BenchmarkWorkerPool: pre-fill N messages (untimed, as the
//! original reset its timer after it), start 4 workers, time until all N results are out;
//! reported per message, for both queues, and for both worker modes.

use std::time::Instant;

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use harness::workloads::{drain_with_pool, prefilled, sample_message};
use study::{cases::group, criterion_results::criterion_group, variant::Variant};
use system::{queue::QueueType, worker::WorkerMode};

fn pool(c: &mut Criterion) {
    let msg = sample_message();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a tokio runtime");
    let mut run = |name: &str, variants: [(Variant, QueueType, WorkerMode); 2]| {
        let mut group = c.benchmark_group(criterion_group(name));
        group.throughput(Throughput::Elements(1));
        for (variant, kind, mode) in variants {
            group.bench_function(BenchmarkId::from_parameter(variant), |b| {
                b.iter_custom(|iters| {
                    // At least 10k messages, so starting the pool (its first result batches
                    // are fresh allocations) weighs little whatever the sample size.
                    let n = (iters as usize).max(10_000);
                    let queue = runtime.block_on(prefilled(kind, n, &msg));
                    let started = Instant::now();
                    runtime.block_on(drain_with_pool(&queue, n, mode));
                    started.elapsed().mul_f64(iters as f64 / n as f64)
                });
            });
        }
        group.finish();
    };
    run(
        group::WORKER_POOL,
        [
            (Variant::Memory, QueueType::Memory, WorkerMode::Batched),
            (Variant::Pooled, QueueType::Pooled, WorkerMode::Batched),
        ],
    );
    run(
        group::WORKER_POOL_MODE,
        [
            (Variant::Baseline, QueueType::Pooled, WorkerMode::Baseline),
            (Variant::Batched, QueueType::Pooled, WorkerMode::Batched),
        ],
    );
}

criterion_group!(benches, pool);
criterion_main!(benches);
