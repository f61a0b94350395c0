//! The `system` binary as a user runs it: configuration from the environment, a real
//! signal, the exit code.

use std::{process::Command, time::Duration};

use launch::{Launch, Running};

const BIN: &str = env!("CARGO_BIN_EXE_system");

/// How long a signalled process gets to exit.
const EXIT_TIMEOUT: Duration = Duration::from_secs(30);

/// Starts `system` with `args` on free ports and waits until each of `roles` has logged
/// the address it listens on (none for a start that is meant to fail). Every line it logs
/// is kept; it is stopped and reaped when dropped, also when the test fails.
pub(crate) fn start(args: &[&str], envs: &[(&str, &str)], roles: &[&str]) -> Running {
    let mut command = Command::new(BIN);
    command
        .args(args)
        .env("PROCESSOR_PORT", "0")
        .env("API_PORT", "0")
        .env("GRPC_PORT", "0")
        .env("RUST_LOG", "info")
        .envs(envs.iter().copied());
    Launch::new(command)
        .roles(roles)
        .start()
        .unwrap_or_else(|err| panic!("{err}"))
}

/// Sends SIGTERM and waits for the exit; its status (`None` when it had to be killed
/// after [`EXIT_TIMEOUT`]).
pub(crate) fn terminate(running: &mut Running) -> Option<std::process::ExitStatus> {
    running.signal("TERM").expect("kill -TERM");
    let status = running.wait(EXIT_TIMEOUT);
    running.kill();
    status
}

fn summary(running: &Running) -> String {
    let lines = running.lines();
    lines
        .iter()
        .find(|l| l.contains("processor stopped"))
        .cloned()
        .unwrap_or_else(|| panic!("no summary in {lines:?}"))
}

#[tokio::test]
async fn sigterm_drains_accepted_messages_and_exits_zero() {
    let mut running = start(
        &["processor"],
        &[
            ("QUEUE_TYPE", "pooled"),
            ("PROCESSOR_WORKERS", "2"),
            ("WORKER_MODE", "baseline"),
        ],
        &["processor"],
    );
    let addr = running.addrs()["processor"];
    let client = reqwest::Client::new();
    for n in 0..50 {
        let response = client
            .post(format!("http://{addr}/enqueue"))
            .header("content-type", "application/json")
            .body(format!(r#"{{"source": "bin-{n}", "payload": "aGk="}}"#))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 202);
    }
    let status = terminate(&mut running);
    assert!(
        status.is_some_and(|s| s.success()),
        "exit status {status:?}"
    );
    let summary = summary(&running);
    assert!(
        summary.contains("accepted=50") && summary.contains("processed=50"),
        "{summary}"
    );
}

#[test]
fn a_bad_setting_is_refused_at_start_up_by_name() {
    for (name, value, mentions) in [
        ("QUEUE_TYPE", "bogus", "QUEUE_TYPE"),
        ("PROCESSOR_WORKERS", "0", "PROCESSOR_WORKERS"),
        ("WORKER_MODE", "fast", "WORKER_MODE"),
        ("QUEUE_SIZE", "many", "QUEUE_SIZE"),
        ("BIND_ADDR", "not-an-ip", "BIND_ADDR"),
        ("PROCESSOR_URL", "ftp://x", "PROCESSOR_URL"),
        ("CLIENT_MODE", "fast", "CLIENT_MODE"),
        ("HOP_PROTOCOL", "http3", "HOP_PROTOCOL"),
        ("HOP_CODEC", "xml", "HOP_CODEC"),
        ("HOP_BATCH", "0", "HOP_BATCH"),
        ("NATS_URL", "http://127.0.0.1:4222", "NATS_URL"),
        ("NATS_STREAM", "a.b", "NATS_STREAM"),
        ("NATS_CONSUMER", "", "NATS_CONSUMER"),
        ("NATS_MAX_PENDING", "0", "NATS_MAX_PENDING"),
        ("NATS_TIMEOUT_MS", "0", "NATS_TIMEOUT_MS"),
        ("NATS_ACK_WAIT_MS", "5", "NATS_ACK_WAIT_MS"),
        ("NATS_MAX_DELIVER", "0", "NATS_MAX_DELIVER"),
    ] {
        let output = Command::new(BIN)
            .arg("processor")
            .env(name, value)
            .output()
            .unwrap();
        assert!(!output.status.success(), "{name}={value} was accepted");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(stderr.contains(mentions), "{name}={value}: {stderr}");
    }
}

/// `system` with no role runs all three; a SIGTERM drains them and exits 0.
#[tokio::test]
async fn all_roles_run_in_one_process_and_stop_together() {
    let mut running = start(&[], &[], &["processor", "gateway", "grpc"]);
    let addresses = running.addrs().clone();
    let response = reqwest::Client::builder()
        .http2_prior_knowledge()
        .build()
        .unwrap()
        .post(format!("http://{}/api/v1/ingest", addresses["gateway"]))
        .header("content-type", "application/json")
        .body(r#"{"source": "all", "data": "x"}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 202);
    let mut grpc = system::proto::ingest_service_client::IngestServiceClient::connect(format!(
        "http://{}",
        addresses["grpc"]
    ))
    .await
    .unwrap();
    let request = system::proto::IngestRequest {
        source: "all".into(),
        data: b"y".to_vec(),
        metadata: Default::default(),
        id: String::new(),
    };
    grpc.ingest(request).await.unwrap();
    // Wait off the runtime, so the clients above can still answer the servers' goodbyes.
    let (status, rest) = tokio::task::spawn_blocking(move || {
        let status = terminate(&mut running);
        (status, running.lines())
    })
    .await
    .unwrap();
    assert!(
        status.is_some_and(|s| s.success()),
        "exit status {status:?}"
    );
    let summary = rest
        .iter()
        .find(|l| l.contains("processor stopped"))
        .expect("a summary");
    assert!(
        summary.contains("accepted=2") && summary.contains("processed=2"),
        "{summary}"
    );
    let abandoned: Vec<_> = rest
        .iter()
        .filter(|l| l.contains("drain timeout"))
        .collect();
    assert!(
        abandoned.is_empty(),
        "shutdown had to abandon connections: {abandoned:?}"
    );
}

/// With `PROFILE_ENDPOINT=true`, all roles in one process: a profile taken under load
/// through the gateway's port is a pprof protobuf with samples; a second request while it
/// runs gets 409; bad parameters get 400; a flame graph is an SVG; the processor's port
/// serves it too. Without the flag the path is 404.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_profile_endpoint_profiles_the_running_process_one_at_a_time() {
    use pprof::protos::Message as _;

    let mut running = start(
        &[],
        &[("PROFILE_ENDPOINT", "true")],
        &["gateway", "processor", "grpc"],
    );
    let addresses = running.addrs().clone();
    let gateway = format!("http://{}", addresses["gateway"]);
    let client = reqwest::Client::new();
    let profile = |base: &str, query: &str| {
        client
            .get(format!("{base}/debug/pprof/profile?{query}"))
            .send()
    };

    for (query, mentions) in [
        ("seconds=0", "seconds"),
        ("seconds=301", "seconds"),
        ("seconds=soon", "seconds"),
        ("format=png", "format"),
        ("hz=1000", "unknown parameter"),
    ] {
        let response = profile(&gateway, query).await.unwrap();
        crate::support::assert_error(response, reqwest::StatusCode::BAD_REQUEST, mentions).await;
    }

    let first = tokio::spawn(profile(&gateway, "seconds=2"));
    // The load runs until the profile is done, however fast or slow this machine is.
    let load = crate::profile_memory::Load::start(&client, &gateway, 4);
    tokio::time::sleep(Duration::from_millis(300)).await;
    let second = profile(&gateway, "seconds=1").await.unwrap();
    crate::support::assert_error(second, reqwest::StatusCode::CONFLICT, "already").await;
    let first = first.await.unwrap().unwrap();
    load.stop().await;
    assert_eq!(first.status(), reqwest::StatusCode::OK);
    assert_eq!(
        first.headers()[reqwest::header::CONTENT_TYPE],
        "application/octet-stream"
    );
    let decoded = pprof::protos::Profile::decode(first.bytes().await.unwrap()).unwrap();
    assert!(!decoded.sample.is_empty(), "a loaded process has samples");
    assert!(
        decoded.string_table.iter().any(|s| s.contains("system")),
        "frames of the system are named"
    );

    let processor = format!("http://{}", addresses["processor"]);
    let svg = profile(&processor, "seconds=1&format=flamegraph")
        .await
        .unwrap();
    assert_eq!(svg.status(), reqwest::StatusCode::OK);
    assert_eq!(
        svg.headers()[reqwest::header::CONTENT_TYPE],
        "image/svg+xml"
    );
    let svg = svg.text().await.unwrap();
    assert!(svg.contains("<svg"), "{svg}");

    // The gRPC port speaks HTTP/2 only: the profile is there over h2c.
    let h2c = reqwest::Client::builder()
        .http2_prior_knowledge()
        .build()
        .unwrap();
    let over_grpc_port = h2c
        .get(format!(
            "http://{}/debug/pprof/profile?seconds=1",
            addresses["grpc"]
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(over_grpc_port.status(), reqwest::StatusCode::OK);
    pprof::protos::Profile::decode(over_grpc_port.bytes().await.unwrap()).unwrap();

    assert!(terminate(&mut running).is_some_and(|s| s.success()));

    let mut plain = start(&["gateway"], &[], &["gateway"]);
    let addresses = plain.addrs().clone();
    let response = profile(&format!("http://{}", addresses["gateway"]), "seconds=1")
        .await
        .unwrap();
    assert_eq!(response.status(), reqwest::StatusCode::NOT_FOUND);
    assert!(terminate(&mut plain).is_some_and(|s| s.success()));
}

/// Shutdown waits for open calls for `SHUTDOWN_TIMEOUT` and no longer: stragglers (a
/// health watch, which would stay open for the idle time, and a request whose body never
/// comes) are abandoned then, and the process still processes what it accepted and
/// exits 0.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_stops_waiting_for_stragglers_at_the_drain_deadline() {
    use tokio::io::AsyncWriteExt;
    let mut running = start(
        &[],
        &[("SHUTDOWN_TIMEOUT", "1")],
        &["processor", "gateway", "grpc"],
    );
    let addresses = running.addrs().clone();
    let client = reqwest::Client::new();
    let response = client
        .post(format!("http://{}/api/v1/ingest", addresses["gateway"]))
        .header("content-type", "application/json")
        .body(r#"{"source": "before", "data": "x"}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 202);
    let h2 = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
        .http2_only(true)
        .build_http::<http_body_util::Full<bytes::Bytes>>();
    let watch = http::Request::post(format!(
        "http://{}/grpc.health.v1.Health/Watch",
        addresses["grpc"]
    ))
    .header("content-type", "application/grpc")
    .header("te", "trailers")
    .body(http_body_util::Full::new(bytes::Bytes::from_static(&[
        0, 0, 0, 0, 0,
    ])))
    .unwrap();
    let watching = h2.request(watch).await.unwrap();
    let mut stalled = tokio::net::TcpStream::connect(addresses["gateway"])
        .await
        .unwrap();
    stalled
        .write_all(
            b"POST /api/v1/ingest HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\n\
              content-length: 100\r\n\r\n{",
        )
        .await
        .unwrap();
    let status = terminate(&mut running);
    assert!(
        status.is_some_and(|s| s.success()),
        "exit status {status:?}"
    );
    let summary = summary(&running);
    assert!(
        summary.contains("accepted=1") && summary.contains("processed=1"),
        "{summary}"
    );
    drop((watching, stalled));
}
