//! Processor client pairs against an in-process processor on loopback, one axis at a time
//! from the same reference (pooled, HTTP/1.1, JSON, unbatched): `baseline` vs `pooled`,
//! HTTP/1.1 vs h2c, JSON vs protobuf, unbatched vs batched. Reported per message. And one
//! large gRPC stream message end to end, in its typical and its worst shape.

use std::time::Instant;

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use harness::workloads::{
    CLIENT_PAIRS, Placement, Stack, forward_accepted, reference_forwarder, sample_message,
};
use study::{cases::group, criterion_results::criterion_group};
use system::{client::ForwarderConfig, processor::ProcessorConfig};

fn client(c: &mut Criterion) {
    let stack = Stack::for_clients().expect("an in-process processor");
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a tokio runtime");
    let msg = sample_message();
    let ids = std::sync::atomic::AtomicU64::new(0);
    let reference = reference_forwarder;
    for (axis, variants) in CLIENT_PAIRS {
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
                            forward_accepted(&forwarder, &msg, chunk, &ids).await;
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

/// One `IngestStream` call carrying one 8 MiB message, sent as pre-encoded frames to an
/// in-process system (defaults, all on loopback) and timed until its answer: the message's
/// whole way in, by shape (the report holds the worst to `study::targets::WORST_SHAPE`).
fn stream_shape(c: &mut Criterion) {
    use bytes::Bytes;
    use harness::workloads::{SHAPE_BYTES, shapes};
    use http_body_util::{BodyExt, Full};
    use hyper_util::{client::legacy::Client, rt::TokioExecutor};

    let stack = Stack::start(
        Placement::OwnRuntime(2),
        ProcessorConfig::default(),
        Some(&ForwarderConfig::new),
    )
    .expect("an in-process system");
    let grpc = stack.grpc.expect("the gRPC front door");
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a tokio runtime");
    let client = Client::builder(TokioExecutor::new())
        .http2_only(true)
        .build_http::<Full<Bytes>>();
    let uri: http::Uri = format!("http://{grpc}/diplom.v1.IngestService/IngestStream")
        .parse()
        .expect("a URI");
    let mut group = c.benchmark_group(criterion_group(group::CLIENT_STREAM_SHAPE));
    group.throughput(Throughput::Bytes(SHAPE_BYTES as u64));
    group.sample_size(10);
    for (name, message) in shapes() {
        let mut frame = vec![0];
        frame.extend_from_slice(&(message.len() as u32).to_be_bytes());
        frame.extend_from_slice(&message);
        let frame = Bytes::from(frame);
        group.bench_function(BenchmarkId::from_parameter(name), |b| {
            b.iter(|| {
                runtime.block_on(async {
                    let request = http::Request::post(uri.clone())
                        .header("content-type", "application/grpc")
                        .header("te", "trailers")
                        .body(Full::new(frame.clone()))
                        .expect("a request");
                    let response = client.request(request).await.expect("an answer");
                    let answer = response.into_body().collect().await.expect("a body");
                    let status = answer
                        .trailers()
                        .and_then(|t| t.get("grpc-status"))
                        .map(|v| v.as_bytes().to_vec());
                    assert_eq!(status.as_deref(), Some(&b"0"[..]), "the call failed");
                });
            });
        });
    }
    group.finish();
}

criterion_group!(benches, client, stream_shape);
criterion_main!(benches);
