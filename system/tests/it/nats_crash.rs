//! A processor that stops: killed with signal 9 mid-run it loses no accepted message (the
//! messages it held are delivered again to the processor that is left), stopped with
//! SIGTERM it exits 0 and loses nothing either, and one that cannot reach NATS at start-up
//! says so and exits non-zero. The victim runs as its own
//! `system processor` process, the survivor in this one.

use std::{
    collections::HashSet,
    process::Command,
    time::{Duration, Instant},
};

use launch::{Launch, Running};
use prost::Message as _;
use reqwest::Client;

use crate::{
    nats::{eventually, messages, post_batch, start},
    nats_server::{NatsServer, free_port},
};

const BIN: &str = env!("CARGO_BIN_EXE_system");

/// `system processor` as its own process, with its log lines kept; stopped when dropped.
struct Victim {
    process: Running,
    url: String,
}

fn start_victim(nats_url: &str, ack_wait_ms: &str) -> Victim {
    let mut command = Command::new(BIN);
    command
        .arg("processor")
        .env("QUEUE_TYPE", "nats")
        .env("NATS_URL", nats_url)
        .env("NATS_ACK_WAIT_MS", ack_wait_ms)
        .env("QUEUE_SIZE", "20000")
        .env("PROCESSOR_PORT", "0")
        // The ids of acknowledged messages are logged at trace level.
        .env("RUST_LOG", "info,system::queue::nats=trace");
    let process = Launch::new(command)
        .roles(&["processor"])
        .start()
        .unwrap_or_else(|err| panic!("{err}"));
    let url = format!("http://{}", process.addrs()["processor"]);
    Victim { process, url }
}

impl Victim {
    /// Ids of the messages it acknowledged (the log line is written before the ack).
    fn acknowledged(&self) -> HashSet<String> {
        self.process
            .lines()
            .iter()
            .filter(|line| line.contains("nats ack"))
            .filter_map(|line| line.split_once("message_id=").map(|(_, id)| id.trim()))
            .map(str::to_owned)
            .collect()
    }

    fn signal(&self, signal: &str) {
        self.process
            .signal(signal)
            .unwrap_or_else(|err| panic!("kill -{signal}: {err}"));
    }

    /// Waits (bounded) for it to exit; its status.
    fn exit(&mut self) -> std::process::ExitStatus {
        self.process
            .wait(Duration::from_secs(60))
            .expect("the processor exits")
    }
}

/// kill -9 of one processor mid-run: every message answered 202 is still processed (the
/// ones it held are delivered again to the other processor), none is lost.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_processor_killed_mid_run_loses_no_accepted_message() {
    let Some(server) = NatsServer::for_test("a_processor_killed_mid_run") else {
        return;
    };
    // The victim starts alone, so that what the consumer has delivered and not seen
    // acknowledged can only be in its hands.
    let mut victim = start_victim(&server.url(), "1000");
    let client = Client::new();
    let mut accepted = HashSet::new();
    for start in (0..1000).step_by(100) {
        accepted
            .extend(post_batch(&client, &victim.url, messages("kill", start..start + 100)).await);
    }
    let jetstream = async_nats::jetstream::new(async_nats::connect(server.url()).await.unwrap());
    let consumer = || async {
        let stream = jetstream.get_stream("INGEST").await.unwrap();
        stream.consumer_info("processors").await.unwrap()
    };
    // Freeze it (as a hung machine) while it has a pull request open, then publish: it
    // receives messages it cannot finish.
    let deadline = Instant::now() + Duration::from_secs(5);
    while consumer().await.num_waiting == 0 {
        assert!(Instant::now() < deadline, "the processor does not pull");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    victim.signal("STOP");
    for msg in messages("kill", 1000..1020) {
        let ack = jetstream
            .publish("INGEST.messages", msg.encode_to_vec().into())
            .await
            .unwrap();
        ack.await.unwrap();
        accepted.insert(msg.id);
    }
    let deadline = Instant::now() + Duration::from_secs(5);
    let held = loop {
        let held = consumer().await.num_ack_pending;
        if held > 0 {
            break held as u64;
        }
        assert!(
            Instant::now() < deadline,
            "the frozen processor got nothing"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let survivor = start(&server.url(), |c| c.nats.ack_wait = Duration::from_secs(1)).await;
    for start in (1020..3020).step_by(100) {
        accepted
            .extend(post_batch(&client, &survivor.url, messages("kill", start..start + 100)).await);
        if start == 2020 {
            victim.signal("KILL");
        }
    }
    assert_eq!(accepted.len(), 3020, "every message is accepted");
    let status = victim.exit();
    assert!(!status.success(), "the victim was killed");
    let by_victim = victim.acknowledged();
    eventually(
        Duration::from_secs(15),
        "every accepted message is processed",
        || {
            let seen = survivor.seen.lock().unwrap();
            let processed: HashSet<&String> = seen.iter().chain(&by_victim).collect();
            accepted.iter().all(|id| processed.contains(id))
        },
    )
    .await;
    let stats = survivor.shutdown().await;
    let redelivered = stats.nats.unwrap().redelivered;
    assert!(
        redelivered >= held,
        "the {held} messages the killed processor held were delivered again ({redelivered})"
    );
}

/// A processor that cannot reach NATS at start-up says so and exits non-zero.
#[test]
fn an_unreachable_nats_server_stops_the_processor_at_start_up() {
    let url = format!("nats://127.0.0.1:{}", free_port());
    let output = Command::new(BIN)
        .arg("processor")
        .env("QUEUE_TYPE", "nats")
        .env("NATS_URL", &url)
        .env("NATS_TIMEOUT_MS", "500")
        .env("PROCESSOR_PORT", "0")
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("cannot connect to NATS"), "{stderr}");
}

/// SIGTERM with NATS: the processor stops fetching, finishes and acknowledges what it holds,
/// and exits 0; whatever it had fetched and not finished goes to the other processor.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_with_nats_exits_zero_and_leaves_the_rest_to_the_others() {
    let Some(server) = NatsServer::for_test("sigterm_with_nats") else {
        return;
    };
    let survivor = start(&server.url(), |c| c.nats.ack_wait = Duration::from_secs(1)).await;
    let mut stopping = start_victim(&server.url(), "1000");
    let client = Client::new();
    let mut accepted = HashSet::new();
    for start in (0..1000).step_by(100) {
        accepted
            .extend(post_batch(&client, &stopping.url, messages("term", start..start + 100)).await);
    }
    stopping.signal("TERM");
    // Waited for off the runtime, which the in-process survivor needs meanwhile.
    let (status, stopping) = tokio::task::spawn_blocking(move || (stopping.exit(), stopping))
        .await
        .unwrap();
    assert!(status.success(), "exit status {status}");
    assert!(
        stopping
            .process
            .lines()
            .iter()
            .any(|line| line.contains("processor stopped")),
        "a summary is logged"
    );
    assert_eq!(accepted.len(), 1000, "every message is accepted");
    let by_stopped = stopping.acknowledged();
    eventually(
        Duration::from_secs(15),
        "every accepted message is processed",
        || {
            let seen = survivor.seen.lock().unwrap();
            let processed: HashSet<&String> = seen.iter().chain(&by_stopped).collect();
            accepted.iter().all(|id| processed.contains(id))
        },
    )
    .await;
    survivor.shutdown().await;
}
