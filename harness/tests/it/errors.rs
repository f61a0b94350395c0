//! Outcomes are told apart: 503 and gRPC UNAVAILABLE are rejections, not errors; other
//! statuses, refused connections and timeouts are errors of their own kinds.

use std::time::Duration;

use harness::load::{self, Protocol, Report, RunOptions, Scenario};
use http::StatusCode;

use crate::servers::TestServer;

fn run(protocol: Protocol, target: &str, adjust: impl FnOnce(&mut Scenario)) -> Report {
    let mut scenario = Scenario::closed("errors", protocol, target);
    scenario.duration_secs = 0.3;
    scenario.connections = 2;
    scenario.in_flight = 2;
    adjust(&mut scenario);
    load::run(&scenario, &RunOptions::default()).expect("run")
}

#[test]
fn http_statuses_are_classified() {
    let server = TestServer::http1(|_, path| {
        let status = match path {
            "/reject" => StatusCode::SERVICE_UNAVAILABLE,
            "/fail" => StatusCode::INTERNAL_SERVER_ERROR,
            _ => StatusCode::ACCEPTED,
        };
        (status, Duration::ZERO)
    });
    let rejected = run(Protocol::Http1, &server.target(), |s| {
        s.path = Some("/reject".into())
    });
    assert!(rejected.requests.rejected > 0, "{rejected:?}");
    assert_eq!(rejected.requests.ok, 0);
    assert!(
        rejected.errors.is_empty(),
        "503 is a rejection: {:?}",
        rejected.errors
    );

    let failed = run(Protocol::Http1, &server.target(), |s| {
        s.path = Some("/fail".into())
    });
    assert_eq!(failed.requests.ok + failed.requests.rejected, 0);
    assert!(
        failed.errors.get("http_500").is_some_and(|n| *n > 0),
        "{:?}",
        failed.errors
    );
    assert_eq!(failed.errors.len(), 1, "{:?}", failed.errors);
    // Pipelined requests over keep-alive connections: each connection opened once.
    assert_eq!(failed.connections_opened, 2);
}

#[test]
fn grpc_statuses_are_classified() {
    let server = TestServer::grpc_by_source();
    for protocol in [Protocol::GrpcUnary, Protocol::GrpcStream] {
        let ok = run(protocol, &server.target(), |s| {
            s.payload.messages_per_stream = 10
        });
        assert!(ok.requests.ok > 0 && ok.errors.is_empty(), "{ok:?}");
        if protocol == Protocol::GrpcStream {
            assert_eq!(ok.requests.messages, ok.requests.ok * 10);
        }
        let rejected = run(protocol, &server.target(), |s| {
            s.payload.source = "reject".into()
        });
        assert!(rejected.requests.rejected > 0, "{rejected:?}");
        assert!(
            rejected.errors.is_empty(),
            "UNAVAILABLE is a rejection: {:?}",
            rejected.errors
        );
        let bad = run(protocol, &server.target(), |s| {
            s.payload.source = "bad".into()
        });
        assert!(
            bad.errors
                .get("grpc_INVALID_ARGUMENT")
                .is_some_and(|n| *n > 0),
            "{:?}",
            bad.errors
        );
    }
}

#[test]
fn refused_connections_and_timeouts_are_errors() {
    // A port that was just free: nothing listens there.
    let free = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let target = free.local_addr().expect("addr").to_string();
    drop(free);
    let refused = run(Protocol::Http1, &target, |_| {});
    assert!(
        refused.errors.get("connect").is_some_and(|n| *n > 0),
        "{:?}",
        refused.errors
    );
    assert_eq!(refused.connections_opened, 0);

    let silent = TestServer::silent();
    for protocol in [Protocol::Http1, Protocol::H2c] {
        let timed_out = run(protocol, &silent.target(), |s| {
            s.timeout_ms = 100;
            s.connections = 1;
            s.in_flight = 1;
        });
        assert_eq!(timed_out.requests.ok, 0);
        let kinds: Vec<&String> = timed_out.errors.keys().collect();
        // HTTP/1.1 times out the request; h2 already the connection's handshake.
        assert!(
            timed_out.errors.contains_key("timeout") || timed_out.errors.contains_key("connect"),
            "{protocol:?}: {kinds:?}"
        );
    }
}

#[test]
fn connections_closed_by_the_server_are_io_errors_and_reopened_with_a_pause() {
    let server = TestServer::closing();
    for protocol in [Protocol::Http1, Protocol::H2c] {
        let report = run(protocol, &server.target(), |s| s.in_flight = 1);
        assert_eq!(report.requests.ok, 0);
        assert!(
            report.errors.contains_key("io") || report.errors.contains_key("connect"),
            "{protocol:?}: {:?}",
            report.errors
        );
        // Two connection slots, 0.3 s, a 20 ms pause after each failed connection.
        assert!(
            report.connections_opened > 2 && report.connections_opened <= 40,
            "{protocol:?}: {} connections",
            report.connections_opened
        );
    }
}

#[test]
fn a_server_that_goes_away_mid_run_ends_in_errors_and_the_run_still_ends_on_time() {
    for protocol in [Protocol::Http1, Protocol::H2c] {
        let server = TestServer::bare_http();
        let target = server.target();
        let started = std::time::Instant::now();
        let stopper = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(300));
            drop(server);
        });
        let report = run(protocol, &target, |s| {
            s.duration_secs = 1.0;
            s.timeout_ms = 500;
        });
        stopper.join().expect("stopper");
        assert!(report.requests.ok > 0, "{protocol:?}: {report:?}");
        assert!(
            report.errors.contains_key("connect"),
            "{protocol:?}: after the server stopped, reconnects fail: {:?}",
            report.errors
        );
        // Bounded: the duration, plus at most one request timeout, plus slack for a slow
        // debug build; not a speed assertion.
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "{:?}",
            started.elapsed()
        );
    }
}
