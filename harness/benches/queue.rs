//! Queue pair: `memory` (baseline) against `pooled`, on one thread and across threads.

use std::{
    hint::black_box,
    sync::Arc,
    time::{Duration, Instant},
};

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use harness::workloads::{
    contended, publish_consume, sample_message, try_consume, try_publish, warm_queue,
};
use study::{cases::group, criterion_results::criterion_group};
use system::queue::QueueType;

const KINDS: [QueueType; 2] = [QueueType::Memory, QueueType::Pooled];

fn single_thread(c: &mut Criterion) {
    let msg = sample_message();
    let mut group = c.benchmark_group(criterion_group(group::QUEUE_PUBLISH_CONSUME));
    group.throughput(Throughput::Elements(1));
    for kind in KINDS {
        let queue = warm_queue(kind, 1024, &msg);
        group.bench_function(BenchmarkId::from_parameter(kind), |b| {
            b.iter(|| publish_consume(black_box(&queue), black_box(&msg), 1));
        });
    }
    group.finish();

    let mut group = c.benchmark_group(criterion_group(group::QUEUE_PUBLISH));
    group.throughput(Throughput::Elements(1));
    const CHUNK: usize = 1024;
    for kind in KINDS {
        let queue = warm_queue(kind, CHUNK, &msg);
        group.bench_function(BenchmarkId::from_parameter(kind), |b| {
            // Time publishing only; drain the queue between chunks, untimed.
            b.iter_custom(|iters| {
                let mut spent = Duration::ZERO;
                let mut left = iters as usize;
                while left > 0 {
                    let chunk = left.min(CHUNK);
                    let started = Instant::now();
                    for _ in 0..chunk {
                        let _ = black_box(try_publish(&queue, &msg));
                    }
                    spent += started.elapsed();
                    while try_consume(&queue) {}
                    left -= chunk;
                }
                spent
            });
        });
    }
    group.finish();
}

fn across_threads(c: &mut Criterion) {
    let msg = sample_message();
    for (producers, consumers) in [(1, 1), (2, 1), (4, 1), (1, 2), (2, 2), (4, 2)] {
        // The producers and consumers are in the name; `cargo xtask bench` reads them back
        // into params of `queue/threads`.
        let name = format!(
            "{}_p{producers}_c{consumers}",
            criterion_group(group::QUEUE_THREADS)
        );
        let mut group = c.benchmark_group(name);
        group.throughput(Throughput::Elements(1));
        group.sample_size(20);
        for kind in KINDS {
            let queue = Arc::new(warm_queue(kind, 1024, &msg));
            group.bench_function(BenchmarkId::from_parameter(kind), |b| {
                b.iter_custom(|iters| {
                    let n = (iters as usize).max(producers * 64);
                    let started = Instant::now();
                    contended(&queue, &msg, producers, consumers, n);
                    started.elapsed().mul_f64(iters as f64 / n as f64)
                });
            });
        }
        group.finish();
    }
}

criterion_group!(benches, single_thread, across_threads);
criterion_main!(benches);
