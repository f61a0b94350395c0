//! The generator's HTTP/2 client obeys the server: bodies larger than the windows wait for
//! WINDOW_UPDATE and are split into frames, and no more streams are opened than the server's
//! SETTINGS allow (an excess stream would be refused and counted as a `reset` error).

use harness::load::{self, Protocol, RunOptions, Scenario};

use crate::servers::TestServer;

fn run(protocol: Protocol, target: &str, messages: u32) -> load::Report {
    let mut scenario = Scenario::closed("http2", protocol, target);
    scenario.duration_secs = 0.5;
    scenario.connections = 2;
    scenario.in_flight = 8;
    scenario.payload.messages_per_stream = messages;
    scenario.payload.data_bytes = 200;
    load::run(&scenario, &RunOptions::default()).expect("run")
}

#[test]
fn flow_control_and_stream_limits_are_obeyed() {
    let server = TestServer::grpc_constrained();
    // 100 messages of ~210 bytes: a 21 kB body against a 1 kB stream window, sent as
    // several DATA frames as the server opens the window.
    let stream = run(Protocol::GrpcStream, &server.target(), 100);
    assert!(stream.requests.ok > 0, "{stream:?}");
    assert!(stream.errors.is_empty(), "{:?}", stream.errors);
    assert_eq!(stream.requests.messages, stream.requests.ok * 100);

    let unary = run(Protocol::GrpcUnary, &server.target(), 1);
    assert!(unary.requests.ok > 0, "{unary:?}");
    assert!(unary.errors.is_empty(), "{:?}", unary.errors);

    // Against the bare server, a body over the 16 kB default frame size.
    let bare = TestServer::bare_grpc();
    let big = run(Protocol::GrpcStream, &bare.target(), 1_000);
    assert!(big.requests.ok > 0 && big.errors.is_empty(), "{big:?}");
    assert_eq!(big.requests.messages, big.requests.ok * 1_000);
}
