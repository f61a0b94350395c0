//! Instruction counts (callgrind, through gungraun) of the A/B pairs: exact and repeatable,
//! so they are what the regression gate compares. Each benchmark performs a fixed number of
//! operations after an uncounted setup that warms everything up; the per-operation figure
//! is the count divided by [`harness::callgrind::OPS`].

use std::hint::black_box;

use gungraun::{library_benchmark, library_benchmark_group, main};
use harness::{
    callgrind::{NEW_CONNECTIONS, NewConnection, OPS, Protocol, ROUND_TRIPS, RoundTrip, Transport},
    workloads::{RunningPool, decode, encode, publish_consume, sample_message, warm_queue},
};
use system::{
    codec::Codec,
    proto::DataMessage,
    queue::{AnyQueue, QueueType},
    worker::WorkerMode,
};

fn queue_setup(kind: QueueType) -> (AnyQueue, DataMessage) {
    let msg = sample_message();
    (warm_queue(kind, 1024, &msg), msg)
}

#[library_benchmark]
#[bench::memory(args = (QueueType::Memory), setup = queue_setup)]
#[bench::pooled(args = (QueueType::Pooled), setup = queue_setup)]
fn queue_publish_consume(fixture: (AnyQueue, DataMessage)) -> (AnyQueue, DataMessage) {
    publish_consume(black_box(&fixture.0), black_box(&fixture.1), OPS);
    fixture
}

fn encode_setup(codec: Codec) -> (Codec, DataMessage, Vec<u8>) {
    let msg = sample_message();
    let mut buf = Vec::new();
    encode(codec, &msg, &mut buf);
    (codec, msg, buf)
}

#[library_benchmark]
#[bench::json(args = (Codec::Json), setup = encode_setup)]
#[bench::protobuf(args = (Codec::Protobuf), setup = encode_setup)]
fn codec_encode(mut fixture: (Codec, DataMessage, Vec<u8>)) -> (Codec, DataMessage, Vec<u8>) {
    for _ in 0..OPS {
        encode(fixture.0, black_box(&fixture.1), &mut fixture.2);
    }
    fixture
}

#[library_benchmark]
#[bench::json(args = (Codec::Json), setup = encode_setup)]
#[bench::protobuf(args = (Codec::Protobuf), setup = encode_setup)]
fn codec_decode(fixture: (Codec, DataMessage, Vec<u8>)) -> (Codec, DataMessage, Vec<u8>) {
    for _ in 0..OPS {
        black_box(decode(fixture.0, black_box(&fixture.2)));
    }
    fixture
}

fn pool_setup(kind: QueueType, mode: WorkerMode) -> RunningPool {
    let msg = sample_message();
    let pool = RunningPool::start(kind, mode, OPS, &msg);
    pool.fill(OPS, &msg);
    pool
}

#[library_benchmark]
#[bench::memory(args = (QueueType::Memory, WorkerMode::Batched), setup = pool_setup)]
#[bench::pooled(args = (QueueType::Pooled, WorkerMode::Batched), setup = pool_setup)]
fn worker_pool_run(pool: RunningPool) -> RunningPool {
    drained(pool)
}

#[library_benchmark]
#[bench::baseline(args = (QueueType::Pooled, WorkerMode::Baseline), setup = pool_setup)]
#[bench::batched(args = (QueueType::Pooled, WorkerMode::Batched), setup = pool_setup)]
fn worker_mode_run(pool: RunningPool) -> RunningPool {
    drained(pool)
}

/// Returns the pool so that stopping it happens after the measurement.
fn drained(mut pool: RunningPool) -> RunningPool {
    pool.drain(OPS);
    pool
}

#[library_benchmark]
#[bench::http1(args = (Protocol::Http1), setup = RoundTrip::start)]
#[bench::h2c(args = (Protocol::H2c), setup = RoundTrip::start)]
#[bench::grpc_unary(args = (Protocol::GrpcUnary), setup = RoundTrip::start)]
#[bench::grpc_stream(args = (Protocol::GrpcStream), setup = RoundTrip::start)]
fn round_trip(mut fixture: RoundTrip) -> RoundTrip {
    fixture.run(ROUND_TRIPS);
    fixture
}

// One hop request on a new connection, plaintext against TLS: the handshake's cost. The
// certificate is made and both ends warmed up in the setup; `tls_full` makes a full
// handshake every time, `tls_resumed` resumes the previous connection's session (see
// `harness::callgrind::NewConnection`).
#[library_benchmark]
#[bench::plain(args = (Transport::Plain), setup = NewConnection::start)]
#[bench::tls_full(args = (Transport::TlsFull), setup = NewConnection::start)]
#[bench::tls_resumed(args = (Transport::TlsResumed), setup = NewConnection::start)]
fn new_connection(mut fixture: NewConnection) -> NewConnection {
    fixture.run(NEW_CONNECTIONS);
    fixture
}

library_benchmark_group!(name = queue; benchmarks = queue_publish_consume);
library_benchmark_group!(name = codec; benchmarks = codec_encode, codec_decode);
library_benchmark_group!(name = pool; benchmarks = worker_pool_run, worker_mode_run);
library_benchmark_group!(name = protocol; benchmarks = round_trip);
library_benchmark_group!(name = hop; benchmarks = new_connection);

main!(library_benchmark_groups = queue, codec, pool, protocol, hop);
