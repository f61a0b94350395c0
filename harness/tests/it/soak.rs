//! The soak, one minute per phase: the system binary under a steady mix of valid, retried,
//! invalid and oversized requests through both front doors keeps its memory flat, processes
//! every message it accepted (once), and answers nothing outside the documented kinds; with
//! NATS, also across a processor killed halfway. The rate is low so that a slow machine
//! keeps up; the criteria are the real ones.

use std::{
    path::{Path, PathBuf},
    process::{Command, Stdio},
    time::Duration,
};

use harness::{
    results::ResultFile,
    soak::{self, Outcome, Phase},
};

/// The debug build of the system binary, built when missing.
fn system_binary() -> PathBuf {
    let binary = Path::new(env!("CARGO_BIN_EXE_harness")).with_file_name("system");
    if !binary.exists() {
        let status = Command::new(env!("CARGO"))
            .args(["build", "-p", "system"])
            .status()
            .expect("cargo runs");
        assert!(status.success(), "building the system binary failed");
    }
    binary
}

/// `nats-server`, installed by `scripts/ensure-tools` when missing; `None` when it cannot be.
fn nats_server() -> Option<PathBuf> {
    let installed = || {
        Command::new("nats-server")
            .arg("--version")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    };
    if !installed() {
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../scripts/ensure-tools");
        let _ = Command::new(script).arg("nats-server").status();
    }
    installed().then(|| PathBuf::from("nats-server"))
}

fn soak(phase: Phase, rate: f64, nats_server: Option<PathBuf>) -> Outcome {
    let mut options = soak::Options::new(system_binary(), Duration::from_secs(60));
    options.phases = vec![phase];
    options.rate = Some(rate);
    options.nats_server = nats_server;
    // The ids of the in-memory queues' duplicate check are remembered for two minutes by
    // default: at this rate the table would still be filling up to its bound at the end of
    // the minute, which is growth to a bound, not a leak, and would hide one. Five seconds
    // let it reach its bound within the first window, as a full soak at its full rate does
    // within seconds.
    options.settings = vec![(
        system::config::names::DEDUP_WINDOW_SECS.to_owned(),
        "5".to_owned(),
    )];
    let outcome = soak::run(&options, "test", &mut |line| {
        eprintln!("soak {}: {line}", phase.as_str())
    })
    .expect("the soak runs");
    for item in &outcome.contract {
        eprintln!(
            "soak {}: contract {} {}: {} ({} of {})",
            phase.as_str(),
            item.door.as_str(),
            item.name,
            item.verdict(),
            item.count.yes,
            item.count.of
        );
    }
    outcome
}

/// Every criterion of the outcome held; the file says so and reads back.
fn assert_held(outcome: &Outcome) {
    let judged: Vec<String> = outcome
        .criteria
        .iter()
        .map(|c| format!("{} {}: {} ({})", c.name, c.held, c.measured, c.detail))
        .collect();
    assert_eq!(outcome.criteria.len(), 3, "{judged:#?}");
    assert!(outcome.held(), "{judged:#?}");
    let dir = std::env::temp_dir().join(format!("soak-test-{}", std::process::id()));
    let path = outcome.file.write(&dir).unwrap();
    let file = ResultFile::read(&path).unwrap();
    let _ = std::fs::remove_file(&path);
    assert_eq!(file.suite, "soak");
    assert_eq!(file.notes["held"], "yes");
}

/// The samples of one process's metric.
fn series(outcome: &Outcome, process: &str, metric: &str) -> Vec<f64> {
    outcome
        .file
        .cases
        .iter()
        .find(|c| c.group == "soak/process" && c.variant == process)
        .and_then(|c| c.metrics.get(metric))
        .map(|m| m.samples.clone())
        .unwrap_or_default()
}

#[test]
fn a_minute_with_the_in_memory_queue_keeps_memory_flat_and_processes_every_accepted_message() {
    let outcome = soak(Phase::Memory, 200.0, None);
    assert_held(&outcome);
    let rss = series(&outcome, "system", "rss");
    assert!(rss.len() >= 55, "one RSS sample a second: {}", rss.len());
    assert!(rss.iter().all(|&v| v > 0.0), "{rss:?}");
    assert!(series(&outcome, "system", "fds").iter().all(|&v| v > 0.0));
    let answers = |door: &str| {
        outcome
            .file
            .cases
            .iter()
            .find(|c| c.group == "soak/answers" && c.variant == door)
            .map(|c| c.metrics.keys().cloned().collect::<Vec<_>>())
            .unwrap_or_default()
    };
    // The mix reached the server: refusals of invalid and oversized requests were seen.
    for (door, refusals) in [
        ("http", ["http_400", "http_413"]),
        ("grpc", ["grpc_INVALID_ARGUMENT", "grpc_RESOURCE_EXHAUSTED"]),
    ] {
        let seen = answers(door);
        for refusal in refusals {
            assert!(seen.iter().any(|k| k == refusal), "{door}: {seen:?}");
        }
    }
}

#[test]
fn a_minute_with_nats_and_a_processor_killed_halfway_loses_nothing() {
    let Some(nats) = nats_server() else {
        eprintln!(
            "skipping the NATS soak: `nats-server` is not installed and `scripts/ensure-tools \
             nats-server` could not install it"
        );
        return;
    };
    let outcome = soak(Phase::Nats, 100.0, Some(nats));
    assert_held(&outcome);
    // The second processor was down for a few seconds (no samples) and ran again.
    let rss = series(&outcome, "processor-2", "rss");
    assert!(rss.contains(&0.0), "{rss:?}");
    assert!(rss.last().is_some_and(|&v| v > 0.0), "{rss:?}");
}
