//! The NATS JetStream queue against a real `nats-server -js`: processors sharing one
//! stream, the server going away and coming back, dead letters and backpressure (a
//! processor that dies is in `nats_crash.rs`). Each test starts its own server and is skipped (saying so)
//! when no server can be had.

use std::{
    collections::HashSet,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use prost::Message as _;
use reqwest::{Client, StatusCode, header};
use serde_json::Value;
use system::{
    message::MessageRef,
    processor::{ProcessorConfig, ProcessorStats, serve},
    proto::{BatchOutcome, DataMessage, DataMessageBatch, Outcome},
    queue::{NatsConfig, NatsQueue, QueueType},
    worker::{ProcessFn, seed_processing},
};
use tokio::{net::TcpListener, sync::oneshot, task::JoinHandle};

use crate::nats_server::NatsServer;

pub(crate) type Seen = Arc<Mutex<Vec<String>>>;

pub(crate) struct Running {
    pub(crate) url: String,
    pub(crate) seen: Seen,
    stop: oneshot::Sender<()>,
    task: JoinHandle<std::io::Result<ProcessorStats>>,
}

/// A processor on the NATS queue at `nats_url` that records the id of every message it
/// processes; `tune` adjusts its configuration first.
pub(crate) async fn start(nats_url: &str, tune: impl FnOnce(&mut ProcessorConfig)) -> Running {
    let seen: Seen = Arc::default();
    let sink = Arc::clone(&seen);
    let mut config = ProcessorConfig {
        queue_type: QueueType::Nats,
        queue_size: 20_000,
        nats: NatsConfig {
            url: nats_url.to_owned(),
            ..NatsConfig::default()
        },
        process: Arc::new(move |msg: MessageRef<'_>, out: &mut Vec<u8>| {
            sink.lock().unwrap().push(msg.id.to_owned());
            seed_processing(msg, out)
        }),
        ..ProcessorConfig::default()
    };
    tune(&mut config);
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let (stop, stopped) = oneshot::channel::<()>();
    let task = tokio::spawn(serve(listener, config, async {
        let _ = stopped.await;
    }));
    Running {
        url,
        seen,
        stop,
        task,
    }
}

impl Running {
    pub(crate) async fn shutdown(self) -> ProcessorStats {
        self.stop.send(()).unwrap();
        self.task.await.unwrap().unwrap()
    }

    pub(crate) async fn stats(&self) -> Value {
        reqwest::get(format!("{}/stats", self.url))
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    }

    pub(crate) fn seen(&self) -> Vec<String> {
        self.seen.lock().unwrap().clone()
    }
}

pub(crate) fn messages(prefix: &str, range: std::ops::Range<u64>) -> Vec<DataMessage> {
    range
        .map(|n| DataMessage {
            id: format!("{prefix}-{n}"),
            source: prefix.to_owned(),
            payload: n.to_le_bytes().to_vec(),
            ..DataMessage::default()
        })
        .collect()
}

/// Posts `batch` as protobuf and returns the ids the processor accepted.
pub(crate) async fn post_batch(client: &Client, url: &str, batch: Vec<DataMessage>) -> Vec<String> {
    let answer = post_batch_outcome(client, url, batch).await;
    answer
        .outcomes
        .into_iter()
        .filter(|o| o.outcome == Outcome::Accepted as i32)
        .map(|o| o.message_id)
        .collect()
}

async fn post_batch_outcome(client: &Client, url: &str, batch: Vec<DataMessage>) -> BatchOutcome {
    let response = client
        .post(format!("{url}/enqueue/batch"))
        .header(header::CONTENT_TYPE, "application/x-protobuf")
        .body(DataMessageBatch { messages: batch }.encode_to_vec())
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    BatchOutcome::decode(response.bytes().await.unwrap()).unwrap()
}

async fn post_one(client: &Client, url: &str, id: &str) -> reqwest::Response {
    client
        .post(format!("{url}/enqueue"))
        .header(header::CONTENT_TYPE, "application/json")
        .body(format!(r#"{{"id": "{id}", "source": "nats-test"}}"#))
        .send()
        .await
        .unwrap()
}

/// Waits (at most `limit`) until `done` holds.
pub(crate) async fn eventually(limit: Duration, what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + limit;
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting until {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_processors_split_10000_messages_and_process_each_once() {
    const N: u64 = 10_000;
    const BATCH: u64 = 100;
    let Some(server) = NatsServer::for_test("two_processors_split_10000_messages") else {
        return;
    };
    let a = start(&server.url(), |_| {}).await;
    let b = start(&server.url(), |_| {}).await;
    let mut senders = Vec::new();
    for (half, url) in [(0, a.url.clone()), (1, b.url.clone())] {
        senders.push(tokio::spawn(async move {
            let client = Client::new();
            let mut accepted = Vec::new();
            for start in (half * N / 2..(half + 1) * N / 2).step_by(BATCH as usize) {
                let batch = messages("split", start..start + BATCH);
                accepted.extend(post_batch(&client, &url, batch).await);
            }
            accepted
        }));
    }
    let mut accepted = HashSet::new();
    for sender in senders {
        accepted.extend(sender.await.unwrap());
    }
    assert_eq!(accepted.len() as u64, N, "every message is accepted");
    eventually(Duration::from_secs(15), "all are processed", || {
        a.seen.lock().unwrap().len() + b.seen.lock().unwrap().len() >= N as usize
    })
    .await;
    // A moment more, so a duplicate delivery would show.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let (seen_a, seen_b) = (a.seen(), b.seen());
    assert!(
        !seen_a.is_empty() && !seen_b.is_empty(),
        "both processors did part of the work ({} and {})",
        seen_a.len(),
        seen_b.len()
    );
    let processed: HashSet<&String> = seen_a.iter().chain(&seen_b).collect();
    assert_eq!(
        seen_a.len() + seen_b.len(),
        processed.len(),
        "no message was processed twice"
    );
    assert_eq!(
        processed,
        accepted.iter().collect(),
        "each accepted message"
    );
    let (stats_a, stats_b) = (a.shutdown().await, b.shutdown().await);
    let (nats_a, nats_b) = (stats_a.nats.unwrap(), stats_b.nats.unwrap());
    assert_eq!(nats_a.published + nats_b.published, N);
    assert_eq!(nats_a.acknowledged + nats_b.acknowledged, N);
    assert_eq!(nats_a.redelivered + nats_b.redelivered, 0);
}

/// With the server gone `/enqueue` answers 503 and nothing is stored; when the server is
/// back the same processor accepts and processes again, without a restart.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn while_nats_is_down_nothing_is_accepted_and_service_resumes_after() {
    let Some(mut server) = NatsServer::for_test("while_nats_is_down") else {
        return;
    };
    // A short ack wait, so that a message whose ack the dying server did not get comes
    // back soon.
    let processor = start(&server.url(), |c| c.nats.ack_wait = Duration::from_secs(1)).await;
    let client = Client::new();
    assert_eq!(
        post_one(&client, &processor.url, "before").await.status(),
        StatusCode::ACCEPTED
    );
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let stats = processor.stats().await;
        if stats["nats"]["acknowledged"] == 1 && stats["nats"]["pending"] == 0 {
            break;
        }
        assert!(Instant::now() < deadline, "not acknowledged: {stats}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    server.kill();
    // Until the client has noticed, a publish still goes out and times out: an uncertain
    // 504, not a refusal.
    let deadline = Instant::now() + Duration::from_secs(20);
    while processor.stats().await["nats"]["server"] != "" {
        assert!(Instant::now() < deadline, "the client did not notice");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    for n in 0..5 {
        let response = post_one(&client, &processor.url, &format!("down-{n}")).await;
        assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(response.headers()[header::RETRY_AFTER], "1");
        let body: Value = response.json().await.unwrap();
        assert!(
            body["error"].as_str().unwrap().contains("unavailable"),
            "{body}"
        );
    }
    let answer = post_batch_outcome(&client, &processor.url, messages("down-batch", 0..3)).await;
    assert_eq!(answer.accepted, 0);
    assert!(
        answer
            .outcomes
            .iter()
            .all(|o| o.outcome == Outcome::Unavailable as i32)
    );
    server.restart().expect("nats-server restarts");
    let mut after = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(10);
    while after.len() < 5 {
        assert!(Instant::now() < deadline, "service did not resume");
        let id = format!("after-{}", after.len());
        if post_one(&client, &processor.url, &id).await.status() == StatusCode::ACCEPTED {
            after.push(id);
        } else {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    eventually(
        Duration::from_secs(10),
        "the accepted ones are processed",
        || {
            let seen = processor.seen.lock().unwrap();
            ["before".to_owned()]
                .iter()
                .chain(&after)
                .all(|id| seen.contains(id))
        },
    )
    .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let refused: Vec<String> = processor
        .seen()
        .into_iter()
        .filter(|id| id.starts_with("down"))
        .collect();
    assert!(
        refused.is_empty(),
        "refused messages were stored: {refused:?}"
    );
    processor.shutdown().await;
}

/// A message delivered `max_deliver` times without an acknowledgement is moved to the
/// dead-letter stream, counted, and no longer delivered.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_message_that_uses_up_its_deliveries_is_dead_lettered() {
    let Some(server) = NatsServer::for_test("a_message_that_uses_up_its_deliveries") else {
        return;
    };
    let config = NatsConfig {
        url: server.url(),
        ack_wait: Duration::from_millis(300),
        max_deliver: 2,
        ..NatsConfig::default()
    };
    let queue = NatsQueue::connect(config.clone()).await.unwrap();
    let msg = crate::support::message(7, 16, 2);
    queue.publish(MessageRef::from(&msg)).await.unwrap();
    for _ in 0..2 {
        let delivery = tokio::time::timeout(Duration::from_secs(5), queue.consume())
            .await
            .expect("delivered within the time limit")
            .unwrap();
        assert_eq!(delivery.message().id, msg.id);
        // Dropped without an acknowledgement, as by a worker that died.
        drop(delivery);
    }
    eventually(
        Duration::from_secs(10),
        "the message is dead-lettered",
        || {
            let stats = queue.nats_stats();
            stats.dead_lettered == 1 && stats.pending == 0
        },
    )
    .await;
    assert_eq!(queue.nats_stats().redelivered, 1);
    let client = async_nats::connect(server.url()).await.unwrap();
    let dead = async_nats::jetstream::new(client)
        .get_stream(config.dead_letter_stream())
        .await
        .unwrap();
    let stored = dead.get_raw_message(1).await.unwrap();
    assert_eq!(DataMessage::decode(stored.payload).unwrap(), msg);
    let nothing_more = tokio::time::timeout(Duration::from_millis(500), queue.consume()).await;
    assert!(
        nothing_more.is_err(),
        "a dead letter is not delivered again"
    );
    queue.close();
}

/// Backpressure keeps the memory queue's contract: a full stream, and too many publishes
/// waiting for JetStream, answer 503 with Retry-After (or QUEUE_FULL in a batch).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_stream_and_too_many_pending_publishes_answer_503() {
    let Some(server) = NatsServer::for_test("a_full_stream_and_too_many_pending_publishes") else {
        return;
    };
    let slow: ProcessFn = Arc::new(|msg: MessageRef<'_>, out: &mut Vec<u8>| {
        std::thread::sleep(Duration::from_millis(200));
        seed_processing(msg, out)
    });
    let small = start(&server.url(), |c| {
        c.queue_size = 5;
        c.workers = 1;
        c.process = slow;
        c.nats.stream = "SMALL".into();
    })
    .await;
    let client = Client::new();
    let (mut accepted, mut refused) = (0, 0);
    for n in 0..20 {
        let response = post_one(&client, &small.url, &format!("full-{n}")).await;
        match response.status() {
            StatusCode::ACCEPTED => accepted += 1,
            StatusCode::SERVICE_UNAVAILABLE => {
                assert_eq!(response.headers()[header::RETRY_AFTER], "1");
                let body: Value = response.json().await.unwrap();
                assert!(body["error"].as_str().unwrap().contains("full"), "{body}");
                refused += 1;
            }
            other => panic!("unexpected {other}"),
        }
    }
    assert!(
        accepted >= 5 && refused > 0,
        "{accepted} accepted, {refused} refused"
    );
    let stats = small.shutdown().await;
    assert_eq!(stats.queue.enqueued, accepted);
    assert_eq!(stats.queue.rejected, refused);

    let narrow = start(&server.url(), |c| {
        c.nats.max_pending_publishes = 2;
        c.nats.stream = "NARROW".into();
    })
    .await;
    let answer = post_batch_outcome(&client, &narrow.url, messages("narrow", 0..20)).await;
    let full = answer
        .outcomes
        .iter()
        .filter(|o| o.outcome == Outcome::QueueFull as i32)
        .count();
    assert!(
        answer.accepted <= 2 && full > 0,
        "at most 2 publishes wait for JetStream at once: {answer:?}"
    );
    narrow.shutdown().await;
}

/// A message whose processing fails is negatively acknowledged: JetStream delivers it again
/// after a short delay (the ack wait here is far longer than the test), and after
/// `max_deliver` deliveries it is moved to the dead-letter stream and counted; the other
/// messages are processed once. `/stats` and `/metrics` count the negative
/// acknowledgements.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_message_whose_processing_fails_is_redelivered_then_dead_lettered() {
    const MAX_DELIVER: u32 = 3;
    const POISON: &str = "poison-2";
    let Some(server) = NatsServer::for_test("a_message_whose_processing_fails") else {
        return;
    };
    let seen: Seen = Arc::default();
    let sink = Arc::clone(&seen);
    let failing: ProcessFn = Arc::new(move |msg: MessageRef<'_>, out: &mut Vec<u8>| {
        sink.lock().unwrap().push(msg.id.to_owned());
        if msg.id == POISON {
            return Err("this message cannot be processed".to_owned());
        }
        seed_processing(msg, out)
    });
    let processor = start(&server.url(), |c| {
        c.process = failing;
        c.nats.max_deliver = MAX_DELIVER;
        c.nats.ack_wait = Duration::from_secs(120);
    })
    .await;
    let client = Client::new();
    let accepted = post_batch(&client, &processor.url, messages("poison", 0..5)).await;
    assert_eq!(accepted.len(), 5);

    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let stats = processor.stats().await;
        if stats["nats"]["deadLettered"] == 1 && stats["nats"]["pending"] == 0 {
            break;
        }
        assert!(Instant::now() < deadline, "not dead-lettered: {stats}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // A moment more, so one delivery too many would show.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let seen = seen.lock().unwrap().clone();
    for id in &accepted {
        let times = seen.iter().filter(|s| *s == id).count();
        let expected = if id == POISON {
            MAX_DELIVER as usize
        } else {
            1
        };
        assert_eq!(
            times, expected,
            "{id} was processed {times} times: {seen:?}"
        );
    }

    let metrics = reqwest::get(format!("{}/metrics", processor.url))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let metrics = crate::support::parse_prometheus(&metrics);
    assert_eq!(
        metrics.get("processor_nats_nacked_total"),
        Some(&f64::from(MAX_DELIVER)),
        "{metrics:?}"
    );
    assert_eq!(
        metrics.get("processor_nats_dead_lettered_total"),
        Some(&1.0)
    );

    let stats = processor.shutdown().await;
    let nats = stats.nats.unwrap();
    assert_eq!(nats.acknowledged, 4);
    assert_eq!(nats.nacked, u64::from(MAX_DELIVER));
    assert_eq!(nats.redelivered, u64::from(MAX_DELIVER - 1));
    assert_eq!(nats.dead_lettered, 1);
    assert_eq!(stats.workers.errors, u64::from(MAX_DELIVER));

    let client = async_nats::connect(server.url()).await.unwrap();
    let dead = async_nats::jetstream::new(client)
        .get_stream(NatsConfig::default().dead_letter_stream())
        .await
        .unwrap();
    let stored = dead.get_raw_message(1).await.unwrap();
    assert_eq!(DataMessage::decode(stored.payload).unwrap().id, POISON);
}
