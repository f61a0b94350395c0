//! The original system's BenchmarkWorkerPool: pre-fill N messages, start 4 workers, time
//! until all N results are out; reported per message, for both queues.

use std::time::Instant;

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use harness::workloads::{sample_message, worker_pool};
use system::queue::QueueType;

fn pool(c: &mut Criterion) {
    let msg = sample_message();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a tokio runtime");
    let mut group = c.benchmark_group("worker_pool");
    group.throughput(Throughput::Elements(1));
    for kind in [QueueType::Memory, QueueType::Pooled] {
        group.bench_function(BenchmarkId::from_parameter(kind), |b| {
            b.iter_custom(|iters| {
                let n = (iters as usize).max(1000);
                let started = Instant::now();
                runtime.block_on(worker_pool(kind, n, &msg));
                started.elapsed().mul_f64(iters as f64 / n as f64)
            });
        });
    }
    group.finish();
}

criterion_group!(benches, pool);
criterion_main!(benches);
