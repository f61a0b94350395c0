//! Codec pair: JSON (the proto3 JSON mapping) against protobuf, encoding and decoding the
//! sample `DataMessage`. Beside it, one large stream message on the gRPC front door's way in
//! its typical shape and in its worst (`codec/stream_shape`): reading is linear in a
//! message's bytes when the two take about the same time.

use std::hint::black_box;

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use harness::workloads::{SHAPE_BYTES, StreamReader, decode, encode, sample_message, shapes};
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

fn stream_shape(c: &mut Criterion) {
    let mut group = c.benchmark_group(criterion_group(group::CODEC_STREAM_SHAPE));
    group.throughput(Throughput::Bytes(SHAPE_BYTES as u64));
    // Milliseconds per message: fewer samples keep the group within a few seconds.
    group.sample_size(20);
    for (name, frame) in shapes() {
        let mut reader = StreamReader::default();
        group.bench_function(BenchmarkId::from_parameter(name), |b| {
            b.iter(|| reader.forward(black_box(&frame)));
        });
    }
    group.finish();
}

criterion_group!(benches, codec, stream_shape);
criterion_main!(benches);
