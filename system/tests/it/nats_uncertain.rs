//! What each door answers when JetStream does not confirm a publish, against a real
//! `nats-server -js`. Paused with SIGSTOP, the server keeps its connections open but
//! answers nothing: a publish goes out and its confirmation never comes in time. That
//! message may have been stored, and every door says so (the processor 504 and outcome
//! `UNCERTAIN`, the gateway 502, gRPC `UNAVAILABLE` and `ingest-uncertain`); once the server
//! runs again it stores what it had received, and a resend under the same id is answered
//! as a duplicate. A server that is gone before the publish is a certain refusal: 503.

use std::{collections::HashMap, time::Duration};

use prost::Message as _;
use reqwest::{Client, StatusCode, header};
use serde_json::Value;
use system::{
    client::ForwarderConfig,
    grpc::standing,
    processor::ProcessorConfig,
    proto::{BatchOutcome, DataMessage, DataMessageBatch, IngestRequest, Outcome},
    queue::{NatsConfig, QueueType},
};
use tonic::Code;

use crate::{
    client::{enqueue, error_of, ingest},
    nats::eventually,
    nats_server::NatsServer,
    stack::{Setup, Stack},
};

/// How long the processor waits for JetStream's confirmation: short, so that a paused
/// server makes a publish uncertain soon.
const NATS_TIMEOUT: Duration = Duration::from_secs(1);
/// How long the front doors wait for the processor: far longer than [`NATS_TIMEOUT`], so
/// that they hear the processor's answer rather than time out themselves.
const HOP_TIMEOUT: Duration = Duration::from_secs(20);

/// A stack whose processor runs on the NATS server at `url`.
async fn stack_on(url: &str) -> Stack {
    let setup = Setup {
        processor: ProcessorConfig {
            queue_type: QueueType::Nats,
            nats: NatsConfig {
                url: url.to_owned(),
                request_timeout: NATS_TIMEOUT,
                // A delivery the paused server made to a pull request the processor had
                // given up on comes back soon.
                ack_wait: Duration::from_secs(2),
                ..NatsConfig::default()
            },
            ..ProcessorConfig::default()
        },
        forwarder: Box::new(|url| ForwarderConfig {
            timeout: HOP_TIMEOUT,
            ..ForwarderConfig::new(url)
        }),
        ..Setup::default()
    };
    Stack::start_recording(setup).await
}

/// Sends one message through the gateway until it is accepted: the stream is set up and
/// the path works before the test breaks it.
async fn warm_up(client: &Client, stack: &Stack) {
    let body = ingest_body("warm-up");
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while ingest(client, &stack.gateway_url, &body).await.status() != StatusCode::ACCEPTED {
        assert!(
            std::time::Instant::now() < deadline,
            "no message was accepted"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn grpc_request(id: &str) -> IngestRequest {
    IngestRequest {
        source: "uncertain".to_owned(),
        data: b"x".to_vec(),
        metadata: HashMap::new(),
        id: id.to_owned(),
    }
}

fn batch(ids: &[&str]) -> Vec<u8> {
    let messages = ids
        .iter()
        .map(|id| DataMessage {
            id: (*id).to_owned(),
            source: "uncertain".to_owned(),
            payload: b"x".to_vec(),
            ..DataMessage::default()
        })
        .collect();
    DataMessageBatch { messages }.encode_to_vec()
}

async fn post_batch(client: &Client, processor: &str, ids: &[&str]) -> BatchOutcome {
    let response = client
        .post(format!("{processor}/enqueue/batch"))
        .header(header::CONTENT_TYPE, "application/x-protobuf")
        .body(batch(ids))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    BatchOutcome::decode(response.bytes().await.unwrap()).unwrap()
}

fn enqueue_body(id: &str) -> String {
    format!(r#"{{"id": "{id}", "source": "uncertain"}}"#)
}

fn ingest_body(id: &str) -> String {
    format!(r#"{{"id": "{id}", "source": "uncertain", "data": "x"}}"#)
}

const STREAM_IDS: [&str; 3] = ["stream-0", "stream-1", "stream-2"];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unconfirmed_publish_is_said_to_be_uncertain_at_every_door() {
    let Some(server) = NatsServer::for_test("an_unconfirmed_publish_is_said_to_be_uncertain")
    else {
        return;
    };
    let stack = stack_on(&server.url()).await;
    let client = Client::new();
    warm_up(&client, &stack).await;
    let paused = server.process().expect("the server runs");
    paused.signal("STOP").expect("kill -STOP");

    // The processor: 504 for one message, `UNCERTAIN` for each of a batch.
    let response = enqueue(&client, &stack.processor_url, &enqueue_body("enqueue-1")).await;
    let (status, error) = error_of(response).await;
    assert_eq!(status, StatusCode::GATEWAY_TIMEOUT, "{error}");
    assert!(error.contains("may have been stored"), "{error}");
    assert!(error.contains("same id"), "{error}");
    let answer = post_batch(&client, &stack.processor_url, &["batch-1", "batch-2"]).await;
    assert_eq!(answer.accepted, 0);
    for outcome in &answer.outcomes {
        assert_eq!(outcome.outcome, Outcome::Uncertain as i32, "{answer:?}");
        assert!(outcome.error.contains("may have been stored"), "{answer:?}");
    }

    // The gateway: 502, saying the message may have been accepted.
    let response = ingest(&client, &stack.gateway_url, &ingest_body("gateway-1")).await;
    let (status, error) = error_of(response).await;
    assert_eq!(status, StatusCode::BAD_GATEWAY, "{error}");
    assert!(error.contains("may have been accepted"), "{error}");
    assert!(error.contains("same id"), "{error}");

    // gRPC: UNAVAILABLE saying so; a stream lists its messages as uncertain.
    let mut grpc = stack.grpc_client().await;
    let err = grpc.ingest(grpc_request("unary-1")).await.unwrap_err();
    assert_eq!(err.code(), Code::Unavailable, "{err:?}");
    assert!(err.message().contains("may have been accepted"), "{err:?}");
    let stream = STREAM_IDS.map(grpc_request);
    let err = grpc
        .ingest_stream(tokio_stream::iter(stream))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::Unavailable, "{err:?}");
    let get = |key: &str| {
        err.metadata()
            .get(key)
            .map(|v| v.to_str().unwrap().to_owned())
    };
    assert_eq!(get(standing::UNCERTAIN).as_deref(), Some("0-2"), "{err:?}");
    assert_eq!(get(standing::ACCEPTED).as_deref(), Some("0"), "{err:?}");
    assert!(err.message().contains("may have been accepted"), "{err:?}");

    // Running again, the server stores what it had received: each resend under the same
    // id is a duplicate, whichever door it goes through.
    paused.signal("CONT").expect("kill -CONT");
    let response = enqueue(&client, &stack.processor_url, &enqueue_body("enqueue-1")).await;
    assert_eq!(response.status(), StatusCode::ACCEPTED);
    assert!(response.headers().contains_key("idempotent-replayed"));
    let answer = post_batch(&client, &stack.processor_url, &["batch-1", "batch-2"]).await;
    assert!(
        answer
            .outcomes
            .iter()
            .all(|o| o.outcome == Outcome::Duplicate as i32),
        "{answer:?}"
    );
    let response = ingest(&client, &stack.gateway_url, &ingest_body("gateway-1")).await;
    assert_eq!(response.status(), StatusCode::ACCEPTED);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["status"], "duplicate", "{body}");
    let reply = grpc
        .ingest(grpc_request("unary-1"))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(reply.status, "duplicate");
    let reply = grpc
        .ingest_stream(tokio_stream::iter(STREAM_IDS.map(grpc_request)))
        .await
        .unwrap()
        .into_inner();
    assert_eq!((reply.accepted, reply.duplicates), (3, 3));

    // Each uncertain message was stored, and is processed.
    let uncertain = [
        "enqueue-1",
        "batch-1",
        "batch-2",
        "gateway-1",
        "unary-1",
        "stream-0",
        "stream-1",
        "stream-2",
    ];
    eventually(
        Duration::from_secs(20),
        "every uncertain message is processed",
        || {
            let seen = stack.seen.lock().unwrap();
            uncertain
                .iter()
                .all(|id| seen.iter().any(|msg| msg.id == *id))
        },
    )
    .await;
    let stats = stack.processor_stats().await;
    assert_eq!(stats["nats"]["uncertain"], uncertain.len(), "{stats}");
    stack.shutdown().await;
}

/// With the server gone before the publish nothing can be stored later: every door
/// answers a certain refusal (503, `UNAVAILABLE` without `ingest-uncertain`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_publish_refused_while_nats_is_down_is_a_certain_503_at_every_door() {
    let Some(mut server) = NatsServer::for_test("a_publish_refused_while_nats_is_down") else {
        return;
    };
    let stack = stack_on(&server.url()).await;
    let client = Client::new();
    warm_up(&client, &stack).await;
    server.kill();
    // Until the processor's client has noticed, a publish may still go out and time out.
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while stack.processor_stats().await["nats"]["server"] != "" {
        assert!(std::time::Instant::now() < deadline, "still connected");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    let response = enqueue(&client, &stack.processor_url, &enqueue_body("down-1")).await;
    assert_eq!(response.headers()[header::RETRY_AFTER], "1");
    let (status, error) = error_of(response).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{error}");
    assert!(!error.contains("may have been"), "{error}");
    let answer = post_batch(&client, &stack.processor_url, &["down-2", "down-3"]).await;
    assert!(
        answer
            .outcomes
            .iter()
            .all(|o| o.outcome == Outcome::Unavailable as i32),
        "{answer:?}"
    );

    let response = ingest(&client, &stack.gateway_url, &ingest_body("down-4")).await;
    let (status, error) = error_of(response).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{error}");
    assert!(!error.contains("may have been"), "{error}");

    let mut grpc = stack.grpc_client().await;
    let err = grpc.ingest(grpc_request("down-5")).await.unwrap_err();
    assert_eq!(err.code(), Code::Unavailable, "{err:?}");
    assert!(!err.message().contains("may have been"), "{err:?}");
    let err = grpc
        .ingest_stream(tokio_stream::iter(["down-6", "down-7"].map(grpc_request)))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::Unavailable, "{err:?}");
    assert!(err.metadata().get(standing::UNCERTAIN).is_none(), "{err:?}");
    assert_eq!(
        err.metadata()
            .get(standing::RESUME_FROM)
            .map(|v| v.to_str().unwrap()),
        Some("0")
    );
    let stats = stack.processor_stats().await;
    assert_eq!(stats["nats"]["uncertain"], 0, "{stats}");
    stack.shutdown().await;
}
