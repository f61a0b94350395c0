//! Codec pair: JSON (the proto3 JSON mapping) against protobuf, encoding and decoding the
//! sample `DataMessage`.

use std::hint::black_box;

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use harness::workloads::{decode, encode, sample_message};
use study::{cases::group, criterion_results::criterion_group};
use system::codec::Codec;

fn codec(c: &mut Criterion) {
    let msg = sample_message();
    let mut group = c.benchmark_group(criterion_group(group::CODEC_ENCODE));
    group.throughput(Throughput::Elements(1));
    for codec in [Codec::Json, Codec::Protobuf] {
        let mut buf = Vec::new();
        group.bench_function(BenchmarkId::from_parameter(codec.as_str()), |b| {
            b.iter(|| encode(codec, black_box(&msg), &mut buf));
        });
    }
    group.finish();

    let mut group = c.benchmark_group(criterion_group(group::CODEC_DECODE));
    group.throughput(Throughput::Elements(1));
    for codec in [Codec::Json, Codec::Protobuf] {
        let mut encoded = Vec::new();
        encode(codec, &msg, &mut encoded);
        group.bench_function(BenchmarkId::from_parameter(codec.as_str()), |b| {
            b.iter(|| decode(codec, black_box(&encoded)));
        });
    }
    group.finish();
}

criterion_group!(benches, codec);
criterion_main!(benches);
