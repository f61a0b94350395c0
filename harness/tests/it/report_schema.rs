//! The JSON report of real runs (every protocol, both loops, against the bare servers)
//! validates against `harness/schema/load-report.schema.json`, and the schema is strict
//! enough to refuse a report with a missing or mistyped field.

use harness::load::{self, Mode, Protocol, Report, RunOptions, Scenario};
use serde_json::Value;

use crate::servers::TestServer;

fn schema() -> Value {
    let path = harness::results::workspace_root()
        .join("harness")
        .join("schema")
        .join("load-report.schema.json");
    serde_json::from_str(&std::fs::read_to_string(path).expect("schema file")).expect("schema JSON")
}

fn short(protocol: Protocol, target: &str) -> Scenario {
    let mut scenario = Scenario::closed("schema", protocol, target);
    scenario.duration_secs = 0.3;
    scenario.warmup_secs = 0.1;
    scenario.connections = 2;
    scenario.in_flight = 4;
    scenario.payload.messages_per_stream = 5;
    scenario
}

#[test]
fn reports_of_every_protocol_validate_against_the_schema() {
    let validator = jsonschema::validator_for(&schema()).expect("valid schema");
    let http = TestServer::bare_http();
    let grpc = TestServer::bare_grpc();
    let mut reports: Vec<Report> = Vec::new();
    for (protocol, server) in [
        (Protocol::Http1, &http),
        (Protocol::H2c, &http),
        (Protocol::GrpcUnary, &grpc),
        (Protocol::GrpcStream, &grpc),
    ] {
        let report = load::run(
            &short(protocol, &server.target()),
            &RunOptions {
                target_pid: Some(std::process::id()),
            },
        )
        .expect("run");
        // The bare servers answer everything, over every protocol.
        assert!(report.requests.ok > 0, "{protocol:?}: {report:?}");
        assert!(
            report.errors.is_empty(),
            "{protocol:?}: {:?}",
            report.errors
        );
        assert!(report.target.is_some_and(|t| t.cpu_seconds.is_some()));
        reports.push(report);
    }
    // How long the generator polls before sleeping changes how it waits, not what it
    // counts: never, and for the whole run.
    for (protocol, spin_us) in [(Protocol::Http1, 0), (Protocol::H2c, 1_000_000)] {
        let mut busy = short(protocol, &http.target());
        busy.spin_us = spin_us;
        let busy = load::run(&busy, &RunOptions::default()).expect("busy run");
        assert!(busy.requests.ok > 0 && busy.errors.is_empty(), "{busy:?}");
        reports.push(busy);
    }
    let mut open = short(Protocol::Http1, &http.target());
    open.mode = Mode::Open;
    open.rate = Some(200.0);
    let open = load::run(&open, &RunOptions::default()).expect("open run");
    assert!(open.send_lag_us.is_some());
    reports.push(open);

    for report in &reports {
        let json = serde_json::to_value(report).expect("serializes");
        let errors: Vec<String> = validator
            .iter_errors(&json)
            .map(|e| e.to_string())
            .collect();
        assert!(errors.is_empty(), "{errors:?}\n{json:#}");
        let back: Report = serde_json::from_value(json).expect("reads back");
        assert_eq!(&back, report);
    }

    let mut broken = serde_json::to_value(&reports[0]).expect("serializes");
    broken["throughput"]["ok_per_sec"] = Value::String("fast".into());
    assert!(!validator.is_valid(&broken), "a mistyped field passed");
    let mut missing = serde_json::to_value(&reports[0]).expect("serializes");
    missing.as_object_mut().expect("object").remove("timeline");
    assert!(!validator.is_valid(&missing), "a missing field passed");
}
