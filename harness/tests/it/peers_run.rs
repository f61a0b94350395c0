//! A quick peers run end to end: the bare servers and our generator as pinned child
//! processes, the result file written through `ResultFile`. (wrk, h2load and the gateway
//! are left out to keep the test short; their parsers are tested in `parsing`.)

use harness::{
    peers::{self, PeersOptions},
    results::ResultFile,
};

#[test]
fn quick_peers_run_writes_a_result_file() {
    let mut options = PeersOptions::new(env!("CARGO_BIN_EXE_harness").into(), true);
    options.suite = "peers-test".to_owned();
    options.use_tools = false;
    options.system_bin = None;
    options.duration_secs = 1;
    options.warmup_secs = 0.1;
    options.http1_connections = 4;
    let mut log = Vec::new();
    let result = peers::run(&options, &mut |line| log.push(line.to_owned())).expect("peers run");

    let groups: Vec<(&str, &str)> = result
        .cases
        .iter()
        .map(|c| (c.group.as_str(), c.variant.as_str()))
        .collect();
    for group in [
        "peers/http1",
        "peers/h2c",
        "peers/grpc_unary",
        "peers/grpc_stream",
    ] {
        assert!(groups.contains(&(group, "ours")), "{groups:?}");
    }
    for case in &result.cases {
        let throughput = &case.metrics["throughput"];
        assert_eq!(throughput.unit, "req/s");
        assert_eq!(throughput.samples.len(), 1);
        assert!(throughput.median > 0.0, "{case:?}");
        assert_eq!(case.metrics["errors"].median, 0.0, "{case:?}");
    }
    assert!(result.notes.contains_key("pinning"), "{:?}", result.notes);
    assert!(result.notes["wrk"].contains("skipped") || result.notes["wrk"].contains("not"));

    let dir = std::env::temp_dir().join(format!("peers-test-{}", std::process::id()));
    let path = result.write(&dir).expect("write");
    let back = ResultFile::read(&path).expect("read back");
    assert_eq!(back.cases, result.cases);
    let _ = std::fs::remove_dir_all(&dir);
}
