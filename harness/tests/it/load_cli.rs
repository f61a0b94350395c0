//! The command line of `harness`, run as a user runs it: the version, the protocols `--help`
//! lists, durations as `1s` or `500ms` (and a bad one refused with exit status 2), and
//! `--hgrm`, which keeps a run's whole latency distribution in HdrHistogram's text format.

use std::process::{Command, Output};

use harness::load::hgrm;

use crate::servers::TestServer;

fn harness(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_harness"))
        .args(args)
        .output()
        .expect("run harness")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[test]
fn version_and_help_name_the_program_and_every_protocol() {
    let version = harness(&["--version"]);
    assert!(version.status.success(), "{}", text(&version.stderr));
    assert_eq!(
        text(&version.stdout).trim(),
        format!("harness {}", env!("CARGO_PKG_VERSION"))
    );

    let short = harness(&["load", "-h"]);
    assert!(short.status.success(), "{}", text(&short.stderr));
    let short = text(&short.stdout);
    assert!(
        short.contains("[possible values: http1, h2c, grpc_unary, grpc_stream]"),
        "{short}"
    );
    let long = harness(&["load", "--help"]);
    assert!(long.status.success(), "{}", text(&long.stderr));
    let long = text(&long.stdout);
    for line in [
        "- http1:",
        "- h2c:",
        "- grpc_unary:",
        "- grpc_stream:",
        "-c, --connections",
        "-d, --duration",
        "--hgrm <FILE>",
    ] {
        assert!(long.contains(line), "{line} missing from\n{long}");
    }
}

#[test]
fn a_bad_duration_or_protocol_is_refused_with_status_2() {
    for args in [
        &["load", "-s", "smoke", "-d", "1x"][..],
        &["load", "-s", "smoke", "--duration", "s"],
        &["load", "-s", "smoke", "--protocol", "http3"],
        &["system-load", "--system", "system", "--seconds", "3 s"],
        &["stages", "--system", "system", "-d", "1m1m"],
        &["peers", "--seconds", "2.5x"],
    ] {
        let refused = harness(args);
        assert_eq!(refused.status.code(), Some(2), "{args:?}");
        let stderr = text(&refused.stderr);
        let bad = args[args.len() - 1];
        assert!(stderr.contains(bad), "{args:?}: {stderr}");
    }
}

#[test]
fn load_with_hgrm_keeps_the_whole_latency_distribution() {
    let dir = std::env::temp_dir().join(format!("harness-load-cli-{}", std::process::id()));
    let hgrm_path = dir.join("nested").join("run.hgrm");
    let json_path = dir.join("run.json");
    std::fs::create_dir_all(&dir).expect("temp dir");
    let server = TestServer::bare_http();
    let run = Command::new(env!("CARGO_BIN_EXE_harness"))
        .args(["load", "-s", "smoke", "--target", &server.target()])
        .args(["--protocol", "h2c", "-c", "2", "-d", "1s", "--warmup", "0"])
        .args(["--quiet", "--fail-on-error", "--hgrm"])
        .arg(&hgrm_path)
        .arg("--json")
        .arg(&json_path)
        .output()
        .expect("run harness load");
    assert!(run.status.success(), "{}", text(&run.stderr));

    let report: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&json_path).expect("JSON report"))
            .expect("JSON");
    assert_eq!(report["scenario"]["connections"], 2);
    assert_eq!(report["scenario"]["duration_secs"], 1.0);
    assert_eq!(report["scenario"]["protocol"], "h2c");
    let count = report["latency_us"]["count"].as_u64().expect("a count");

    let file = std::fs::read_to_string(&hgrm_path).expect("the .hgrm file");
    assert!(
        file.starts_with("       Value     Percentile TotalCount 1/(1-Percentile)\n\n"),
        "{file}"
    );
    assert!(
        file.contains(&format!("Total count    = {count:>12}]")),
        "{file}"
    );
    let points = hgrm::read(&hgrm_path).expect("a parseable .hgrm");
    let last = points.last().expect("points");
    assert_eq!(last.percentile, 1.0);
    let p50 = hgrm::value_at(&points, 0.5).expect("a median");
    let max_ms = report["latency_us"]["max"].as_f64().expect("max") / 1000.0;
    assert!(p50 > 0.0 && p50 <= last.value_ms, "{points:?}");
    assert!((last.value_ms - max_ms).abs() < 0.001, "{last:?} {max_ms}");
    let _ = std::fs::remove_dir_all(&dir);
}
