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
fn a_short_run_profiles_both_processes_and_says_how_much_each_profile_saw() {
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
        assert!(case.metrics.contains_key("errors"), "{case:?}");
        for name in ["front", "processor"] {
            // Both processes worked under the load.
            assert!(
                case.metrics[&format!("{name}_cpu_share")].median > 0.0,
                "{case:?}"
            );
            let kept = case.metrics[&format!("{name}_samples_kept")].median;
            assert!(kept >= 0.0, "{case:?}");
        }
        // The stages and what the sampler could not see add up to the total.
        let sum: f64 = STAGES
            .iter()
            .map(|(key, _)| case.metrics[*key].median)
            .sum::<f64>()
            + case.metrics[stages::UNSAMPLED].median;
        let total = case.metrics["total"].median;
        assert!(total > 0.0, "{case:?}");
        assert!((sum - total).abs() < 1e-9 * total.max(1.0), "{case:?}");
    }
}

/// Samples are charged by their whole stack: a hand-made profile of three samples.
#[test]
fn samples_are_charged_to_the_stage_their_stack_names() {
    use pprof::protos::{Function, Line, Location, Profile, Sample};

    let names = [
        "",
        "system::client::Hop::post_bytes",
        "system::wire::IngestView::parse",
        "mio::net::tcp::stream::TcpStream::read",
    ];
    let profile = Profile {
        string_table: names.iter().map(|n| (*n).to_owned()).collect(),
        function: (1..names.len() as u64)
            .map(|id| Function {
                id,
                name: id as i64,
                ..Function::default()
            })
            .collect(),
        location: (1..names.len() as u64)
            .map(|id| Location {
                id,
                line: vec![Line {
                    function_id: id,
                    line: 0,
                }],
                ..Location::default()
            })
            .collect(),
        sample: [(vec![3, 1], 5), (vec![2], 3), (vec![3], 2)]
            .into_iter()
            .map(|(location_id, n)| Sample {
                location_id,
                value: vec![n, 0],
                ..Sample::default()
            })
            .collect(),
        ..Profile::default()
    };
    let (counts, all) = stages::charge(&profile, front_stage);
    assert_eq!(all, 10);
    assert_eq!(counts[..3], [2, 3, 5]);
}
