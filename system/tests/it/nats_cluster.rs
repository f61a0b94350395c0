//! The NATS queue on more than one server: `NATS_URL` as a list, `NATS_REPLICAS`, and a
//! three-node JetStream cluster with a replicated stream losing a node under load (any
//! node, then the stream leader's). Each cluster test starts its own cluster and is
//! skipped (saying so) when `nats-server` cannot be had.

use std::{
    collections::{BTreeMap, HashSet},
    process::Command,
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, Ordering},
    },
    time::Duration,
};

use launch::NatsCluster;
use reqwest::{Client, StatusCode};
use serde_json::Value;
use system::{
    processor::ProcessorConfig,
    queue::{NatsConfig, QueueType},
};

use crate::{
    client::ingest,
    nats::{self, eventually, messages, post_batch},
    nats_server::{NatsServer, free_port},
    stack::{Setup, Stack},
};

const BIN: &str = env!("CARGO_BIN_EXE_system");

/// With a list of servers the processor connects to one that answers, even when the
/// first one listed does not.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_list_of_servers_is_tried_until_one_answers() {
    let Some(server) = NatsServer::for_test("a_list_of_servers_is_tried") else {
        return;
    };
    let dead = format!("nats://127.0.0.1:{}", free_port());
    let urls = format!("{dead}, {}", server.url());
    let processor = nats::start(&urls, |_| {}).await;
    let accepted = post_batch(&Client::new(), &processor.url, messages("list", 0..10)).await;
    assert_eq!(accepted.len(), 10);
    eventually(Duration::from_secs(10), "all are processed", || {
        processor.seen().len() >= 10
    })
    .await;
    processor.shutdown().await;
}

/// A stream that exists with one copy, and a processor that asks for three: it says so
/// and exits non-zero rather than run believing the stream is replicated. On a single
/// server, three copies cannot be created either, and that is said as clearly.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stream_with_other_replicas_stops_the_processor_at_start_up() {
    let Some(server) = NatsServer::for_test("a_stream_with_other_replicas") else {
        return;
    };
    let url = server.url();
    let start_up = move |stream: &str| {
        let output = Command::new(BIN)
            .arg("processor")
            .env("QUEUE_TYPE", "nats")
            .env("NATS_URL", &url)
            .env("NATS_STREAM", stream)
            .env("NATS_REPLICAS", "3")
            .env("PROCESSOR_PORT", "0")
            .output()
            .unwrap();
        assert!(!output.status.success(), "{stream}: the processor ran");
        String::from_utf8_lossy(&output.stderr).into_owned()
    };
    // The first processor creates the stream with one copy.
    let first = nats::start(&server.url(), |_| {}).await;
    let stderr = tokio::task::spawn_blocking(move || (start_up("INGEST"), start_up))
        .await
        .unwrap();
    let (stderr, start_up) = stderr;
    assert!(
        stderr.contains("stream INGEST has 1 replica(s) but NATS_REPLICAS is 3"),
        "{stderr}"
    );
    first.shutdown().await;
    let stderr = tokio::task::spawn_blocking(move || start_up("FRESH"))
        .await
        .unwrap();
    assert!(
        stderr.contains("cannot set up JetStream stream FRESH"),
        "{stderr}"
    );
}

/// Which node a test kills.
#[derive(Debug, Clone, Copy)]
enum Victim {
    /// A node holding a processor's connection, other than the stream leader's.
    Follower,
    /// The stream leader's node.
    StreamLeader,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_node_loses_no_accepted_message() {
    lose_a_node(Victim::Follower).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_stream_leader_loses_no_accepted_message() {
    lose_a_node(Victim::StreamLeader).await;
}

/// What the clients were told, by phase of the run.
#[derive(Default)]
struct Tally {
    /// Ids answered 202, in order.
    accepted: Vec<String>,
    /// Count of answers by status.
    statuses: BTreeMap<u16, u64>,
    /// Bodies of answers other than 202, 503 and a 502 saying the message may have been
    /// accepted (a publish whose confirmation was lost with the node).
    unexpected: Vec<String>,
}

impl Tally {
    fn accepted(tally: &Mutex<Tally>) -> usize {
        tally.lock().unwrap().accepted.len()
    }
}

/// Clients sending one message at a time to `gateway` until `stop`.
fn clients(
    gateway: &str,
    tally: &Arc<Mutex<Tally>>,
    stop: &Arc<AtomicBool>,
) -> Vec<tokio::task::JoinHandle<()>> {
    (0..4)
        .map(|n| {
            let (gateway, tally, stop) = (gateway.to_owned(), Arc::clone(tally), Arc::clone(stop));
            tokio::spawn(async move {
                let client = Client::new();
                let body = format!(r#"{{"source": "client-{n}", "data": "reading"}}"#);
                while !stop.load(Ordering::Relaxed) {
                    let response = ingest(&client, &gateway, &body).await;
                    let status = response.status();
                    let text = response.text().await.unwrap_or_default();
                    let mut tally = tally.lock().unwrap();
                    *tally.statuses.entry(status.as_u16()).or_default() += 1;
                    match status {
                        StatusCode::ACCEPTED => {
                            let answer: Value = serde_json::from_str(&text).unwrap();
                            let id = answer["messageId"].as_str().unwrap().to_owned();
                            tally.accepted.push(id);
                        }
                        StatusCode::SERVICE_UNAVAILABLE => {}
                        StatusCode::BAD_GATEWAY if text.contains("may have been accepted") => {}
                        _ => tally.unexpected.push(format!("{status}: {text}")),
                    }
                }
            })
        })
        .collect()
}

/// Waits (at most `limit`) until `more` further messages were accepted.
async fn accepted_grows(tally: &Mutex<Tally>, more: usize, limit: Duration, what: &str) {
    let target = Tally::accepted(tally) + more;
    eventually(limit, what, || Tally::accepted(tally) >= target).await;
}

/// The name of the node a processor is connected to, from its `/stats`.
fn connected_node(stats: &Value) -> String {
    stats["nats"]["server"]
        .as_str()
        .unwrap_or_default()
        .to_owned()
}

/// Two processors (one behind a gateway) on a replicated stream, clients sending all
/// along; `victim`'s node is killed with SIGKILL mid-run and restarted later.
async fn lose_a_node(victim: Victim) {
    let test = format!("losing a NATS node ({victim:?})");
    let Some(mut cluster) = NatsCluster::for_test(&test) else {
        return;
    };
    let urls = cluster.urls();
    let tune = |config: &mut ProcessorConfig| {
        config.queue_type = QueueType::Nats;
        config.queue_size = 100_000;
        config.nats = NatsConfig {
            url: urls.clone(),
            replicas: 3,
            // A message whose acknowledgement was lost with the node comes back soon.
            ack_wait: Duration::from_secs(2),
            ..NatsConfig::default()
        };
    };
    let mut setup = Setup::default();
    tune(&mut setup.processor);
    let front = Stack::start_recording(setup).await;
    let other = nats::start(&urls, tune).await;

    let tally = Arc::new(Mutex::new(Tally::default()));
    let stop = Arc::new(AtomicBool::new(false));
    let senders = clients(&front.gateway_url, &tally, &stop);
    accepted_grows(&tally, 300, Duration::from_secs(60), "the run is under way").await;

    let jetstream = async_nats::jetstream::new(
        async_nats::connect(urls.split(',').collect::<Vec<_>>())
            .await
            .unwrap(),
    );
    let stream = jetstream.get_stream("INGEST").await.unwrap();
    let info = stream.get_info().await.unwrap();
    assert_eq!(info.config.num_replicas, 3);
    let leader = info
        .cluster
        .as_ref()
        .and_then(|c| c.leader.clone())
        .unwrap();
    let on = [
        connected_node(&front.processor_stats().await),
        connected_node(&other.stats().await),
    ];
    let name = match victim {
        Victim::StreamLeader => leader.clone(),
        // Preferably one a processor is connected to, so that it has to fail over.
        Victim::Follower => {
            let names: Vec<String> = cluster.names().iter().map(|n| n.to_string()).collect();
            on.iter()
                .chain(&names)
                .find(|node| **node != leader && !node.is_empty())
                .cloned()
                .unwrap()
        }
    };
    drop(jetstream);
    let node = cluster.node_mut(&name).unwrap();
    node.kill();
    accepted_grows(
        &tally,
        300,
        Duration::from_secs(90),
        &format!("service resumes without node {name} (leader {leader}, processors on {on:?})"),
    )
    .await;
    cluster.node_mut(&name).unwrap().restart().unwrap();
    accepted_grows(
        &tally,
        300,
        Duration::from_secs(90),
        "service goes on after the restart",
    )
    .await;
    stop.store(true, Ordering::Relaxed);
    for sender in senders {
        sender.await.unwrap();
    }

    let tally = Arc::try_unwrap(tally).ok().unwrap().into_inner().unwrap();
    assert!(
        tally.unexpected.is_empty(),
        "clients saw errors other than 503 and an uncertain 502: {:?} (statuses {:?})",
        &tally.unexpected[..tally.unexpected.len().min(5)],
        tally.statuses
    );
    let accepted: HashSet<&String> = tally.accepted.iter().collect();
    assert_eq!(
        accepted.len(),
        tally.accepted.len(),
        "every 202 is for a new id"
    );
    let processed = || {
        let front_seen = front.seen.lock().unwrap();
        let ids = front_seen.iter().map(|m| m.id.clone());
        ids.chain(other.seen()).collect::<Vec<String>>()
    };
    eventually(
        Duration::from_secs(90),
        "every accepted message is processed",
        || {
            let all = processed();
            let done: HashSet<&String> = all.iter().collect();
            accepted.iter().all(|id| done.contains(id))
        },
    )
    .await;
    // Both processors are back on the cluster.
    for stats in [front.processor_stats().await, other.stats().await] {
        assert!(!connected_node(&stats).is_empty(), "{stats}");
    }
    // A moment more, so a late duplicate would show.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let all = processed();
    let twice = all.len() - all.iter().collect::<HashSet<_>>().len();
    let (front_stats, other_stats) = (front.shutdown().await, other.shutdown().await);
    let redelivered = front_stats.nats.unwrap().redelivered + other_stats.nats.unwrap().redelivered;
    // JetStream may lose, with the node that led the consumer, its record of the last
    // deliveries, and deliver those messages again as first deliveries: such a duplicate
    // cannot be told from a first delivery, so it is not counted. There can be no more of
    // them than the two processors held at once: what their pulls asked for
    // (`fetch_batch`, twice the workers), their channel to the workers (as many) and one
    // per worker.
    let workers = ProcessorConfig::default().workers;
    let held = 2 * (2 * 2 * workers + workers);
    assert!(
        twice as u64 <= redelivered + held as u64,
        "{twice} messages were processed twice, {redelivered} redeliveries were counted and \
         the processors held at most {held}"
    );
    eprintln!(
        "{test}: killed {name} (leader {leader}); statuses {:?}, {} processed, {twice} twice, \
         {redelivered} redelivered",
        tally.statuses,
        all.len()
    );
}
