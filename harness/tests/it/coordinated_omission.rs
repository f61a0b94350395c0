//! Coordinated omission: against a server that stalls every 10th answer, the closed loop
//! records one slow sample per stall (the requests it did not send while waiting are never
//! measured), while the open loop counts every request from when it was due, so the
//! requests queued behind a stall show it too.

use std::time::Duration;

use harness::load::{self, Mode, Protocol, RunOptions, Scenario};
use http::StatusCode;

use crate::servers::TestServer;

const STALL: Duration = Duration::from_millis(60);

fn stalling_server() -> TestServer {
    TestServer::http1(|n, _| {
        let delay = if n % 10 == 0 { STALL } else { Duration::ZERO };
        (StatusCode::ACCEPTED, delay)
    })
}

fn scenario(target: &str) -> Scenario {
    let mut scenario = Scenario::closed("co", Protocol::Http1, target);
    scenario.duration_secs = 1.5;
    scenario.connections = 1;
    scenario.in_flight = 1;
    scenario
}

#[test]
fn open_loop_tail_shows_stalls_that_closed_loop_under_represents() {
    let server = stalling_server();
    let stall_us = STALL.as_micros() as f64;

    let closed =
        load::run(&scenario(&server.target()), &RunOptions::default()).expect("closed run");
    let closed_latency = closed.latency_us.expect("closed-loop latency");

    // 100 requests/s: a 60 ms stall holds back the next ~6 requests, all of which were due
    // while the server stalled; the server's capacity stays well above the rate.
    let mut open = scenario(&server.target());
    open.mode = Mode::Open;
    open.rate = Some(100.0);
    let open = load::run(&open, &RunOptions::default()).expect("open run");
    let open_latency = open.latency_us.expect("open-loop latency");

    eprintln!("closed loop: {closed_latency:?}\nopen loop:   {open_latency:?}");
    assert_eq!(closed.requests.errors, 0, "{closed:?}");
    assert_eq!(open.requests.errors, 0, "{open:?}");
    // Both saw the stalls...
    assert!(closed_latency.max >= stall_us * 0.9, "{closed_latency:?}");
    assert!(open_latency.max >= stall_us * 0.9, "{open_latency:?}");
    // ...but in the closed loop only 1 sample in 10 is slow, so three quarters are fast,
    assert!(closed_latency.p75 < stall_us / 2.0, "{closed_latency:?}");
    // while in the open loop the requests due during a stall wait for it: about 4 in 10
    // are late by more than half a stall, which moves the 75th percentile into the stall
    // and the mean to several times the closed loop's.
    assert!(open_latency.p75 >= stall_us / 2.0, "{open_latency:?}");
    assert!(
        open_latency.mean > closed_latency.mean * 2.0,
        "open {open_latency:?} closed {closed_latency:?}"
    );
    // The open loop kept to its schedule: 150 requests were due in 1.5 s.
    let due = open.requests.ok + open.requests.rejected + open.requests.errors;
    assert!((145..=155).contains(&due), "{due} requests due");
}
