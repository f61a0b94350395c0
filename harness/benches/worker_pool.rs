//! The original system's BenchmarkWorkerPool: pre-fill N messages (untimed, as the
//! original reset its timer after it), start 4 workers, time until all N results are out;
//! reported per message, for both queues.

use std::time::Instant;

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use harness::workloads::{drain_with_pool, prefilled, sample_message};
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
                let queue = runtime.block_on(prefilled(kind, n, &msg));
                let started = Instant::now();
                runtime.block_on(drain_with_pool(queue, n));
                started.elapsed().mul_f64(iters as f64 / n as f64)
            });
        });
    }
    group.finish();
}

criterion_group!(benches, pool);
criterion_main!(benches);
