//! The `system` binary as a user runs it: configuration from the environment, a real
//! signal, the exit code.

use std::{
    collections::HashMap,
    io::{BufRead, BufReader},
    process::{Child, Command, Stdio},
    sync::{Arc, Mutex, mpsc},
    thread,
    time::{Duration, Instant},
};

const BIN: &str = env!("CARGO_BIN_EXE_system");

/// Starts `system` with `args` on free ports; returns the child, the address each role
/// logged, and the rest of its log lines.
// The child is handed to the caller, which waits for it; clippy cannot follow that.
#[allow(clippy::zombie_processes)]
pub(crate) fn start(
    args: &[&str],
    envs: &[(&str, &str)],
    roles: &[&str],
) -> (Child, HashMap<String, String>, mpsc::Receiver<String>) {
    let mut child = Command::new(BIN)
        .args(args)
        .env("PROCESSOR_PORT", "0")
        .env("API_PORT", "0")
        .env("GRPC_PORT", "0")
        .env("RUST_LOG", "info")
        .envs(envs.iter().copied())
        .stderr(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let stderr = BufReader::new(child.stderr.take().unwrap());
    let (tx, rx) = mpsc::channel();
    thread::spawn(move || {
        for line in stderr.lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let mut addresses = HashMap::new();
    while addresses.len() < roles.len() {
        let Ok(line) = rx.recv_timeout(Duration::from_secs(30)) else {
            break;
        };
        for role in roles {
            if let Some((_, addr)) = line.split_once(&format!("{role} listening on ")) {
                addresses.insert(role.to_string(), addr.trim().to_owned());
            }
        }
    }
    if addresses.len() < roles.len() {
        let _ = child.kill();
        let _ = child.wait();
        panic!("not every role logged its address: {addresses:?}");
    }
    (child, addresses, rx)
}

fn start_processor(envs: &[(&str, &str)]) -> (Child, String, mpsc::Receiver<String>) {
    let (child, mut addresses, logs) = start(&["processor"], envs, &["processor"]);
    (
        child,
        addresses.remove("processor").unwrap_or_default(),
        logs,
    )
}

fn summary(logs: &mpsc::Receiver<String>) -> String {
    let rest: Vec<String> = logs.iter().collect();
    rest.iter()
        .find(|l| l.contains("processor stopped"))
        .cloned()
        .unwrap_or_else(|| panic!("no summary in {rest:?}"))
}

fn terminate(child: &Child) {
    let status = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
}

#[tokio::test]
async fn sigterm_drains_accepted_messages_and_exits_zero() {
    let (mut child, addr, logs) = start_processor(&[
        ("QUEUE_TYPE", "pooled"),
        ("PROCESSOR_WORKERS", "2"),
        ("WORKER_MODE", "baseline"),
    ]);
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
    terminate(&child);
    let status = child.wait().unwrap();
    assert!(status.success(), "exit status {status}");
    let summary = summary(&logs);
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
    let (mut child, addresses, logs) = start(&[], &[], &["processor", "gateway", "grpc"]);
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
    terminate(&child);
    // Wait off the runtime, so the clients above can still answer the servers' goodbyes.
    let (status, logs) = tokio::task::spawn_blocking(move || (child.wait().unwrap(), logs))
        .await
        .unwrap();
    assert!(status.success(), "exit status {status}");
    let rest: Vec<String> = logs.iter().collect();
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

    let (child, addresses, _logs) = start(
        &[],
        &[("PROFILE_ENDPOINT", "true")],
        &["gateway", "processor", "grpc"],
    );
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

    terminate(&child);
    let mut child = child;
    assert!(child.wait().unwrap().success());

    let (plain, addresses, _logs) = start(&["gateway"], &[], &["gateway"]);
    let response = profile(&format!("http://{}", addresses["gateway"]), "seconds=1")
        .await
        .unwrap();
    assert_eq!(response.status(), reqwest::StatusCode::NOT_FOUND);
    terminate(&plain);
    let mut plain = plain;
    assert!(plain.wait().unwrap().success());
}

/// Runs the binary with `args` and `envs` on free ports and collects every line it logs.
pub(crate) struct Running {
    child: Child,
    lines: Arc<Mutex<Vec<String>>>,
}

impl Running {
    pub(crate) fn start(args: &[&str], envs: &[(&str, &str)]) -> Running {
        let mut child = Command::new(BIN)
            .args(args)
            .env("PROCESSOR_PORT", "0")
            .env("API_PORT", "0")
            .env("GRPC_PORT", "0")
            .env("RUST_LOG", "info")
            .envs(envs.iter().copied())
            .stderr(Stdio::piped())
            .stdout(Stdio::null())
            .spawn()
            .unwrap();
        let stderr = BufReader::new(child.stderr.take().unwrap());
        let lines = Arc::new(Mutex::new(Vec::new()));
        let sink = Arc::clone(&lines);
        thread::spawn(move || {
            for line in stderr.lines().map_while(Result::ok) {
                sink.lock().unwrap().push(line);
            }
        });
        Running { child, lines }
    }

    /// The address `role` logged it listens on, waiting up to 30 s for it.
    pub(crate) fn address(&self, role: &str) -> String {
        let deadline = Instant::now() + Duration::from_secs(30);
        let marker = format!("{role} listening on ");
        loop {
            let found = self.lines.lock().unwrap().iter().find_map(|line| {
                line.split_once(&marker)
                    .map(|(_, addr)| addr.trim().to_owned())
            });
            if let Some(addr) = found {
                return addr;
            }
            assert!(
                Instant::now() < deadline,
                "{role} logged no address: {:?}",
                self.lines.lock().unwrap()
            );
            thread::sleep(Duration::from_millis(20));
        }
    }

    /// Waits up to 30 s for the process to exit (killing it after that); its status and
    /// what it logged.
    pub(crate) fn exit(mut self) -> (Option<std::process::ExitStatus>, String) {
        let deadline = Instant::now() + Duration::from_secs(30);
        let status = loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                break Some(status);
            }
            if Instant::now() >= deadline {
                let _ = self.child.kill();
                let _ = self.child.wait();
                break None;
            }
            thread::sleep(Duration::from_millis(20));
        };
        // The reader ends with the pipe; give it a moment to take the last lines.
        thread::sleep(Duration::from_millis(100));
        let lines = self.lines.lock().unwrap().join("\n");
        (status, lines)
    }

    /// Sends SIGTERM and waits for the exit.
    pub(crate) fn stop(self) -> (Option<std::process::ExitStatus>, String) {
        let status = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
        self.exit()
    }
}

impl Drop for Running {
    /// A test that fails leaves no process behind.
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
