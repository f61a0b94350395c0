//! The processor service over real sockets with a real HTTP client.

use std::{
    net::SocketAddr,
    sync::{Arc, Mutex},
    time::Duration,
};

use prost::Message as _;
use reqwest::{Client, StatusCode, header};
use serde_json::{Value, json};
use system::{
    message::MessageRef,
    processor::{ProcessorConfig, ProcessorStats, serve},
    proto::DataMessage,
    queue::QueueType,
    worker::{ProcessFn, WorkerMode, seed_processing},
};
use tokio::{net::TcpListener, sync::oneshot, task::JoinHandle};

use crate::{
    client::enqueue,
    support::{accepted_or_refused, assert_error},
};

struct Running {
    url: String,
    stop: oneshot::Sender<()>,
    task: JoinHandle<std::io::Result<ProcessorStats>>,
}

async fn start(config: ProcessorConfig) -> Running {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr: SocketAddr = listener.local_addr().unwrap();
    let (stop, stopped) = oneshot::channel::<()>();
    let task = tokio::spawn(serve(listener, config, async {
        let _ = stopped.await;
    }));
    Running {
        url: format!("http://{addr}"),
        stop,
        task,
    }
}

impl Running {
    async fn shutdown(self) -> ProcessorStats {
        self.stop.send(()).unwrap();
        self.task.await.unwrap().unwrap()
    }

    async fn stats(&self) -> Value {
        Client::new()
            .get(format!("{}/stats", self.url))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    }

    /// Waits (bounded) until the workers have processed `n` messages.
    async fn processed(&self, n: u64) -> Value {
        for _ in 0..500 {
            let stats = self.stats().await;
            if stats["workers"]["processed"] == n {
                return stats;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        panic!("not processed: {}", self.stats().await);
    }
}

/// A processing step that keeps a copy of every message it sees.
fn recording() -> (ProcessFn, Arc<Mutex<Vec<DataMessage>>>) {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let sink = Arc::clone(&seen);
    let process: ProcessFn = Arc::new(move |msg: MessageRef<'_>, out: &mut Vec<u8>| {
        sink.lock().unwrap().push(msg.to_owned_message());
        seed_processing(msg, out)
    });
    (process, seen)
}

fn slow(delay: Duration) -> ProcessFn {
    Arc::new(move |msg: MessageRef<'_>, out: &mut Vec<u8>| {
        std::thread::sleep(delay);
        seed_processing(msg, out)
    })
}

#[tokio::test]
async fn json_enqueue_is_accepted_and_processed_with_its_data_intact() {
    let sides = [
        (QueueType::Memory, WorkerMode::Baseline),
        (QueueType::Memory, WorkerMode::Batched),
        (QueueType::Pooled, WorkerMode::Batched),
    ];
    for (queue_type, worker_mode) in sides {
        let (process, seen) = recording();
        let server = start(ProcessorConfig {
            queue_type,
            worker_mode,
            process,
            ..ProcessorConfig::default()
        })
        .await;
        let body =
            json!({"source": "sensor-1", "payload": "aGVsbG8=", "metadata": {"region": "eu"}});
        let response = enqueue(&Client::new(), &server.url, &body.to_string()).await;
        assert_eq!(response.status(), StatusCode::ACCEPTED);
        let answer: Value = response.json().await.unwrap();
        assert_eq!(answer["status"], "accepted");
        let id = answer["messageId"].as_str().unwrap();
        assert!(uuid::Uuid::parse_str(id).is_ok(), "{id} is a UUID");

        let stats = server.processed(1).await;
        assert_eq!(stats["queue"]["enqueued"], 1);
        assert_eq!(stats["queueType"], queue_type.as_str());
        assert_eq!(stats["workerMode"], worker_mode.as_str());
        let got = seen.lock().unwrap()[0].clone();
        assert_eq!((got.id.as_str(), got.source.as_str()), (id, "sensor-1"));
        assert_eq!(got.payload, b"hello");
        assert_eq!(got.metadata["region"], "eu");
        assert!(got.timestamp > 0, "the processor stamps the arrival time");
        assert_eq!(server.shutdown().await.workers.processed, 1);
    }
}

#[tokio::test]
async fn protobuf_enqueue_is_accepted_and_processed() {
    let (process, seen) = recording();
    let server = start(ProcessorConfig {
        process,
        ..ProcessorConfig::default()
    })
    .await;
    let msg = DataMessage {
        id: "given-id".into(),
        timestamp: 42,
        source: "proto".into(),
        payload: vec![0, 1, 2, 255],
        metadata: [("k".to_owned(), "v".to_owned())].into(),
        ..DataMessage::default()
    };
    let response = Client::new()
        .post(format!("{}/enqueue", server.url))
        .header(header::CONTENT_TYPE, "application/x-protobuf")
        .body(msg.encode_to_vec())
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::ACCEPTED);
    let answer: Value = response.json().await.unwrap();
    assert_eq!(answer["messageId"], "given-id");
    server.processed(1).await;
    assert_eq!(seen.lock().unwrap()[0], msg);
    server.shutdown().await;
}

#[tokio::test]
async fn bad_requests_get_a_status_and_a_json_error() {
    let server = start(ProcessorConfig {
        body_limit: 1024,
        ..ProcessorConfig::default()
    })
    .await;
    let url = &server.url;
    assert_error(
        enqueue(&Client::new(), url, "{not json").await,
        StatusCode::BAD_REQUEST,
        "invalid JSON",
    )
    .await;
    assert_error(
        enqueue(&Client::new(), url, r#"{"payload": "aGk="}"#).await,
        StatusCode::BAD_REQUEST,
        "source",
    )
    .await;
    assert_error(
        enqueue(&Client::new(), url, r#"{"source": "s", "payload": "%%%"}"#).await,
        StatusCode::BAD_REQUEST,
        "invalid JSON",
    )
    .await;
    assert_error(
        enqueue(&Client::new(), url, r#"{"source": "s", "colour": "red"}"#).await,
        StatusCode::BAD_REQUEST,
        "colour",
    )
    .await;
    assert_error(
        enqueue(
            &Client::new(),
            url,
            r#"{"source": "s", "metadata": {"k": 1}}"#,
        )
        .await,
        StatusCode::BAD_REQUEST,
        "invalid JSON",
    )
    .await;
    let client = Client::new();
    let garbage = client
        .post(format!("{url}/enqueue"))
        .header(header::CONTENT_TYPE, "application/x-protobuf")
        .body(vec![0xff, 0xff, 0xff])
        .send()
        .await
        .unwrap();
    assert_error(garbage, StatusCode::BAD_REQUEST, "invalid protobuf").await;
    let too_large = format!(r#"{{"source": "s", "payload": "{}"}}"#, "A".repeat(2000));
    assert_error(
        enqueue(&Client::new(), url, &too_large).await,
        StatusCode::PAYLOAD_TOO_LARGE,
        "limit",
    )
    .await;
    let text = client
        .post(format!("{url}/enqueue"))
        .header(header::CONTENT_TYPE, "text/plain")
        .body("hello")
        .send()
        .await
        .unwrap();
    assert_error(text, StatusCode::UNSUPPORTED_MEDIA_TYPE, "content-type").await;
    let no_type = client
        .post(format!("{url}/enqueue"))
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_error(no_type, StatusCode::UNSUPPORTED_MEDIA_TYPE, "content-type").await;
    let missing = client.get(format!("{url}/nowhere")).send().await.unwrap();
    assert_error(missing, StatusCode::NOT_FOUND, "route").await;
    let wrong_method = client.get(format!("{url}/enqueue")).send().await.unwrap();
    assert_eq!(wrong_method.headers()[header::ALLOW], "POST");
    assert_error(wrong_method, StatusCode::METHOD_NOT_ALLOWED, "method").await;

    let stats = server.shutdown().await;
    assert_eq!(stats.queue.enqueued, 0, "nothing invalid was queued");
}

/// A full queue answers 503 with Retry-After; every message answered 202 is processed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_queue_answers_503_and_loses_nothing_it_accepted() {
    let server = start(ProcessorConfig {
        queue_size: 2,
        workers: 1,
        process: slow(Duration::from_millis(50)),
        ..ProcessorConfig::default()
    })
    .await;
    let (mut accepted, mut refused) = (0, 0);
    for _ in 0..10 {
        let response = enqueue(&Client::new(), &server.url, r#"{"source": "burst"}"#).await;
        if accepted_or_refused(response).await {
            accepted += 1;
        } else {
            refused += 1;
        }
    }
    assert!(
        refused > 0,
        "a queue of 2 with a slow worker must refuse part of a burst of 10"
    );
    let stats = server.shutdown().await;
    assert_eq!(stats.queue.enqueued, accepted);
    assert_eq!(stats.queue.rejected, refused);
    assert_eq!(
        stats.workers.processed, accepted,
        "every accepted message was processed"
    );
}

/// Shutting down with messages still queued processes all of them before `serve` returns.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn graceful_shutdown_processes_everything_queued() {
    let server = start(ProcessorConfig {
        workers: 1,
        process: slow(Duration::from_millis(10)),
        ..ProcessorConfig::default()
    })
    .await;
    let client = Client::new();
    for n in 0..100 {
        let response = client
            .post(format!("{}/enqueue", server.url))
            .header(header::CONTENT_TYPE, "application/json")
            .body(format!(r#"{{"source": "drain-{n}"}}"#))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::ACCEPTED);
    }
    let queued = server.stats().await["queue"]["size"].as_u64().unwrap();
    assert!(
        queued > 0,
        "the test needs messages still queued at shutdown"
    );
    let stats = server.shutdown().await;
    assert_eq!(
        (stats.queue.enqueued, stats.workers.processed, stats.results),
        (100, 100, 100)
    );
}

#[tokio::test]
async fn health_and_metrics_answer() {
    // The memory queue: it is the one that counts waits on its locks.
    let server = start(ProcessorConfig {
        queue_type: QueueType::Memory,
        ..ProcessorConfig::default()
    })
    .await;
    enqueue(&Client::new(), &server.url, r#"{"source": "m"}"#).await;
    server.processed(1).await;
    let client = Client::new();
    let health: Value = client
        .get(format!("{}/health", server.url))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(health, json!({"status": "ok"}));
    let response = client
        .get(format!("{}/metrics", server.url))
        .send()
        .await
        .unwrap();
    assert!(
        response.headers()[header::CONTENT_TYPE]
            .to_str()
            .unwrap()
            .starts_with("text/plain")
    );
    let text = response.text().await.unwrap();
    let samples = crate::support::parse_prometheus(&text);
    assert_eq!(samples["processor_messages_processed_total"], 1.0);
    assert_eq!(
        samples[r#"processor_messages_enqueued_total{queue="memory"}"#],
        1.0
    );
    assert!(samples["processor_connections_accepted_total"] >= 1.0);
    for family in [
        "processor_queue_lock_waits_total",
        "processor_queue_lock_wait_seconds_total",
    ] {
        assert!(samples.contains_key(&format!(r#"{family}{{queue="memory"}}"#)));
    }
    server.shutdown().await;
}
