//! The `system` binary as a user runs it: configuration from the environment, a real
//! signal, the exit code.

use std::{
    io::{BufRead, BufReader},
    process::{Child, Command, Stdio},
    sync::mpsc,
    thread,
    time::Duration,
};

const BIN: &str = env!("CARGO_BIN_EXE_system");

/// Starts `system processor` on a free port; returns the child, its address, and the rest
/// of its log lines.
// The child is handed to the caller, which waits for it; clippy cannot follow that.
#[allow(clippy::zombie_processes)]
fn start_processor(envs: &[(&str, &str)]) -> (Child, String, mpsc::Receiver<String>) {
    let mut child = Command::new(BIN)
        .arg("processor")
        .env("PROCESSOR_PORT", "0")
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
    loop {
        let line = rx
            .recv_timeout(Duration::from_secs(30))
            .expect("the processor logs its address");
        if let Some((_, addr)) = line.split_once("processor listening on ") {
            return (child, addr.trim().to_owned(), rx);
        }
    }
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
    let (mut child, addr, logs) =
        start_processor(&[("QUEUE_TYPE", "pooled"), ("PROCESSOR_WORKERS", "2")]);
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
    let rest: Vec<String> = logs.iter().collect();
    let summary = rest
        .iter()
        .find(|l| l.contains("processor stopped"))
        .unwrap_or_else(|| panic!("no summary in {rest:?}"));
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
        ("QUEUE_SIZE", "many", "QUEUE_SIZE"),
        ("BIND_ADDR", "not-an-ip", "BIND_ADDR"),
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
