//! Where the time goes: a short run profiles both processes of the system under load and
//! charges every sample to a stage.

use harness::{
    load::Protocol,
    stages::{self, STAGES, front_stage, processor_stage},
};

/// The debug build of the system binary, built when missing.
fn system_binary() -> std::path::PathBuf {
    let binary = std::path::Path::new(env!("CARGO_BIN_EXE_harness")).with_file_name("system");
    if !binary.exists() {
        let status = std::process::Command::new(env!("CARGO"))
            .args(["build", "-p", "system"])
            .status()
            .expect("cargo runs");
        assert!(status.success(), "building the system binary failed");
    }
    binary
}

#[test]
fn frames_name_their_stage() {
    let stage = |frames: &[&str], classify: fn(&[&str]) -> usize| STAGES[classify(frames)].1;
    let hop = [
        "bytes::BytesMut::reserve",
        "system::client::Hop::post_bytes::{{closure}}",
    ];
    assert_eq!(stage(&hop, front_stage), "hop client");
    let decode = [
        "prost::encoding::decode_varint",
        "system::grpc::IngestServer::ingest",
    ];
    assert_eq!(stage(&decode, front_stage), "decode and validate");
    let wire = [
        "system::wire::IngestView::parse",
        "system::grpc::StreamForwarding::push",
    ];
    assert_eq!(stage(&wire, front_stage), "decode and validate");
    let io = [
        "mio::net::tcp::stream::TcpStream::read",
        "tokio::runtime::io::driver",
    ];
    assert_eq!(stage(&io, front_stage), "front-door protocol");
    let publish = [
        "system::queue::pooled::Slot::fill",
        "system::processor::enqueue_wire_batch",
    ];
    assert_eq!(stage(&publish, processor_stage), "queue");
    let work = ["sha2::compress", "system::worker::run_batched"];
    assert_eq!(stage(&work, processor_stage), "worker");
    let parse = ["httparse::parse", "hyper::proto::h1::role::Server::parse"];
    assert_eq!(stage(&parse, processor_stage), "processor server");
}

#[test]
fn a_short_run_splits_the_cpu_per_message_by_stage() {
    let options = stages::Options {
        system: system_binary(),
        seconds: 1,
        warmup: 0.3,
        server_core: None,
        protocols: vec![Protocol::Http1, Protocol::GrpcStream],
    };
    let file = stages::run(&options, "test", &mut |_| {}).expect("a stages run");
    assert_eq!(file.suite, "stages");
    assert_eq!(file.cases.len(), 2);
    for case in &file.cases {
        assert!(case.metrics["rate"].median > 0.0, "{case:?}");
        let mut sum = 0.0;
        for (key, _) in STAGES {
            let value = case.metrics[key].median;
            assert!(value >= 0.0, "{key}: {case:?}");
            sum += value;
        }
        let total = case.metrics["total"].median;
        assert!(total > 0.0, "{case:?}");
        assert!((sum - total).abs() < 1e-9 * total.max(1.0), "{case:?}");
        // Both processes worked: the front door decodes, the processor queues.
        assert!(case.metrics["front_cpu_share"].median > 0.0, "{case:?}");
        assert!(case.metrics["processor_cpu_share"].median > 0.0, "{case:?}");
    }
}
