//! Processor client pairs against an in-process processor on loopback, one axis at a time
//! from the same reference (pooled, HTTP/1.1, JSON, unbatched): `baseline` vs `pooled`,
//! HTTP/1.1 vs h2c, JSON vs protobuf, unbatched vs batched. Reported per message.

use std::time::Instant;

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use harness::workloads::{Placement, Stack, distinct_copies, reference_forwarder, sample_message};
use study::{cases::group, criterion_results::criterion_group, variant::Variant};
use system::{
    client::{ClientMode, ForwarderConfig, HopProtocol},
    codec::Codec,
    processor::ProcessorConfig,
    queue::QueueType,
};

fn client(c: &mut Criterion) {
    let stack = Stack::start(
        Placement::OwnRuntime(1),
        ProcessorConfig {
            queue_type: QueueType::Pooled,
            queue_size: 1 << 20,
            ..ProcessorConfig::default()
        },
        None,
    )
    .expect("an in-process processor");
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a tokio runtime");
    let msg = sample_message();
    let ids = std::sync::atomic::AtomicU64::new(0);
    let reference = reference_forwarder;
    type Adjusted = (Variant, fn(ForwarderConfig) -> ForwarderConfig);
    let axes: [(&str, [Adjusted; 2]); 4] = [
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
    for (axis, variants) in axes {
        let mut group = c.benchmark_group(criterion_group(axis));
        group.throughput(Throughput::Elements(1));
        for (name, adjust) in variants {
            let forwarder =
                runtime.block_on(async { stack.forwarder(|url| adjust(reference(url))) });
            group.bench_function(BenchmarkId::from_parameter(name), |b| {
                b.iter_custom(|iters| {
                    let started = Instant::now();
                    runtime.block_on(async {
                        // Whole batches of 64 either way, so both sides send the same messages.
                        let mut left = iters as usize;
                        while left > 0 {
                            let chunk = left.min(64);
                            let results = forwarder
                                .forward_batch(distinct_copies(&msg, chunk, &ids))
                                .await;
                            assert!(
                                results
                                    .iter()
                                    .all(|r| *r == Ok(system::client::Accepted::New)),
                                "the processor refused a message or took it for a repeat"
                            );
                            left -= chunk;
                        }
                    });
                    started.elapsed()
                });
            });
        }
        group.finish();
    }
}

criterion_group!(benches, client);
criterion_main!(benches);
