//! Safe retries: a message sent again under an id the system accepted within its window is
//! answered as the first was, marked `duplicate`, and processed once, whichever door,
//! hop codec or in-memory queue it went through.

use std::collections::HashMap;
use system::FrontDoorConfig;

use reqwest::{Client, StatusCode, header};
use serde_json::Value;
use system::{
    client::ForwarderConfig,
    codec::Codec,
    processor::ProcessorConfig,
    proto::{DataMessage, IngestRequest},
    queue::QueueType,
};
use tonic::Code;

use crate::stack::{Setup, Stack};

fn setup(queue_type: QueueType, codec: Codec) -> Setup {
    Setup {
        processor: ProcessorConfig {
            queue_type,
            ..ProcessorConfig::default()
        },
        forwarder: Box::new(move |url| ForwarderConfig {
            codec,
            ..ForwarderConfig::new(url)
        }),
        ..Setup::default()
    }
}

/// How many times the workers processed each id.
fn processed_ids(seen: &[DataMessage]) -> HashMap<String, usize> {
    let mut counts = HashMap::new();
    for msg in seen {
        *counts.entry(msg.id.clone()).or_default() += 1;
    }
    counts
}

async fn post(client: &Client, stack: &Stack, key: Option<&str>, body: &str) -> reqwest::Response {
    let mut request = client
        .post(format!("{}/api/v1/ingest", stack.gateway_url))
        .header(header::CONTENT_TYPE, "application/json")
        .body(body.to_owned());
    if let Some(key) = key {
        request = request.header("idempotency-key", key);
    }
    request.send().await.unwrap()
}

async fn answer(response: reqwest::Response) -> (StatusCode, bool, Value) {
    let status = response.status();
    let replayed = response.headers().get("idempotent-replayed").is_some();
    (status, replayed, response.json().await.unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_http_retry_under_the_same_key_is_answered_as_the_first_and_processed_once() {
    for queue_type in [QueueType::Memory, QueueType::Pooled] {
        for codec in [Codec::Json, Codec::Protobuf] {
            let label = format!("{queue_type} over {codec:?}");
            let stack = Stack::start_recording(setup(queue_type, codec)).await;
            let client = Client::new();
            let body = r#"{"source": "orders", "data": "17"}"#;
            let (status, replayed, first) =
                answer(post(&client, &stack, Some("order-17"), body).await).await;
            assert_eq!(status, StatusCode::ACCEPTED, "{label}");
            assert!(!replayed, "{label}");
            assert_eq!(first["messageId"], "order-17", "{label}");
            assert_eq!(first["status"], "accepted", "{label}");
            for _ in 0..3 {
                let (status, replayed, again) =
                    answer(post(&client, &stack, Some("order-17"), body).await).await;
                assert_eq!(status, StatusCode::ACCEPTED, "{label}");
                assert!(replayed, "{label}: Idempotent-Replayed");
                assert_eq!(again["messageId"], "order-17", "{label}");
                assert_eq!(again["status"], "duplicate", "{label}");
            }
            // The id may come in the body as well; concurrent retries are settled too.
            let with_field = r#"{"id": "order-18", "source": "orders", "data": "18"}"#;
            let answers = futures_util::future::join_all(
                (0..16).map(|_| post(&client, &stack, None, with_field)),
            )
            .await;
            let mut statuses = Vec::new();
            for response in answers {
                let (status, _, value) = answer(response).await;
                assert_eq!(status, StatusCode::ACCEPTED, "{label}: {value}");
                statuses.push(value["status"].as_str().unwrap().to_owned());
            }
            assert_eq!(
                statuses.iter().filter(|s| *s == "accepted").count(),
                1,
                "{label}: {statuses:?}"
            );
            stack.processed(2).await;
            let seen = stack.seen.lock().unwrap().clone();
            stack.shutdown().await;
            let counts = processed_ids(&seen);
            assert_eq!(counts.get("order-17"), Some(&1), "{label}: {counts:?}");
            assert_eq!(counts.get("order-18"), Some(&1), "{label}: {counts:?}");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bad_or_conflicting_key_is_refused() {
    let stack = Stack::recording().await;
    let client = Client::new();
    let body = r#"{"source": "s", "data": "x"}"#;
    let response = post(&client, &stack, Some("has space"), body).await;
    crate::support::assert_error(response, StatusCode::BAD_REQUEST, "visible ASCII").await;
    let response = post(&client, &stack, Some(&"k".repeat(129)), body).await;
    crate::support::assert_error(response, StatusCode::BAD_REQUEST, "visible ASCII").await;
    let both = r#"{"id": "a", "source": "s", "data": "x"}"#;
    let response = post(&client, &stack, Some("b"), both).await;
    crate::support::assert_error(response, StatusCode::BAD_REQUEST, "Idempotency-Key").await;
    // The same id in both places is fine.
    let response = post(&client, &stack, Some("a"), both).await;
    assert_eq!(response.status(), StatusCode::ACCEPTED);
    stack.shutdown().await;
}

fn request(id: &str, n: u8) -> IngestRequest {
    IngestRequest {
        source: "grpc".to_owned(),
        data: vec![n],
        metadata: HashMap::new(),
        id: id.to_owned(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grpc_retries_are_answered_duplicate_and_processed_once() {
    let stack = Stack::recording().await;
    let mut grpc = stack.grpc_client().await;
    // Unary, with the id as a field and as metadata.
    let first = grpc.ingest(request("u-1", 1)).await.unwrap().into_inner();
    assert_eq!(
        (first.message_id.as_str(), first.status.as_str()),
        ("u-1", "accepted")
    );
    let again = grpc.ingest(request("u-1", 1)).await.unwrap().into_inner();
    assert_eq!(
        (again.message_id.as_str(), again.status.as_str()),
        ("u-1", "duplicate")
    );
    let mut keyed = tonic::Request::new(request("", 2));
    keyed
        .metadata_mut()
        .insert("idempotency-key", "u-2".parse().unwrap());
    let first = grpc.ingest(keyed).await.unwrap().into_inner();
    assert_eq!(
        (first.message_id.as_str(), first.status.as_str()),
        ("u-2", "accepted")
    );
    let err = grpc.ingest(request("bad id", 3)).await.unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument, "{err:?}");

    // A stream sent again, with one new message: the repeated ones are duplicates.
    let stream = |ids: &'static [&'static str]| {
        tokio_stream::iter(ids.iter().enumerate().map(|(i, id)| request(id, i as u8)))
    };
    let first = grpc
        .ingest_stream(stream(&["s-1", "s-2", "s-3"]))
        .await
        .unwrap()
        .into_inner();
    assert_eq!((first.accepted, first.duplicates), (3, 0));
    let again = grpc
        .ingest_stream(stream(&["s-1", "s-2", "s-3", "s-4"]))
        .await
        .unwrap()
        .into_inner();
    assert_eq!((again.accepted, again.duplicates), (4, 3));
    stack.processed(6).await;
    let seen = stack.seen.lock().unwrap().clone();
    stack.shutdown().await;
    let counts = processed_ids(&seen);
    for id in ["u-1", "u-2", "s-1", "s-2", "s-3", "s-4"] {
        assert_eq!(counts.get(id), Some(&1), "{id}: {counts:?}");
    }
}

/// The processor's own endpoints: `/enqueue` answers a repeat 202 with
/// `Idempotent-Replayed`, and a batch says `OUTCOME_DUPLICATE` for each repeat, also of a
/// message earlier in the same batch.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_processor_answers_repeats_as_duplicates() {
    let stack = Stack::recording().await;
    let client = Client::new();
    let msg = serde_json::to_string(&DataMessage {
        id: "p-1".to_owned(),
        source: "s".to_owned(),
        ..DataMessage::default()
    })
    .unwrap();
    for expected in ["accepted", "duplicate"] {
        let response = client
            .post(format!("{}/enqueue", stack.processor_url))
            .header(header::CONTENT_TYPE, "application/json")
            .body(msg.clone())
            .send()
            .await
            .unwrap();
        let (status, replayed, value) = answer(response).await;
        assert_eq!(status, StatusCode::ACCEPTED);
        assert_eq!(replayed, expected == "duplicate");
        assert_eq!(value["status"], expected);
    }
    for codec in [Codec::Json, Codec::Protobuf] {
        let id = format!("b-{codec:?}");
        let messages = [&id, "p-1", &id].map(|id| DataMessage {
            id: id.to_owned(),
            source: "s".to_owned(),
            ..DataMessage::default()
        });
        let outcome = crate::properties::post_batch(&stack, codec, &messages).await;
        let codes: Vec<i32> = outcome.outcomes.iter().map(|o| o.outcome).collect();
        use system::proto::Outcome::{Accepted, Duplicate};
        assert_eq!(
            codes,
            [Accepted as i32, Duplicate as i32, Duplicate as i32],
            "{codec:?}"
        );
        assert_eq!(outcome.accepted, 1, "{codec:?}");
    }
    stack.shutdown().await;
}

/// With the NATS queue JetStream settles repeats (by the id, within its namespace, as
/// `Nats-Msg-Id`): a repeat is answered as a duplicate, alone or in a batch, and processed
/// once; the same id in another namespace is another message.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_nats_a_repeat_is_a_jetstream_duplicate() {
    let Some(server) = crate::nats_server::NatsServer::for_test("with_nats_a_repeat") else {
        return;
    };
    let processor = crate::nats::start(&server.url(), |_| {}).await;
    let client = Client::new();
    let msg = |id: &str| DataMessage {
        id: id.to_owned(),
        source: "s".to_owned(),
        ..DataMessage::default()
    };
    for expected in ["accepted", "duplicate"] {
        let response = client
            .post(format!("{}/enqueue", processor.url))
            .header(header::CONTENT_TYPE, "application/json")
            .body(serde_json::to_string(&msg("n-1")).unwrap())
            .send()
            .await
            .unwrap();
        let (status, replayed, value) = answer(response).await;
        assert_eq!(status, StatusCode::ACCEPTED, "{value}");
        assert_eq!(replayed, expected == "duplicate");
        assert_eq!(value["status"], expected);
    }
    let batch = system::proto::DataMessageBatch {
        messages: vec![msg("n-2"), msg("n-1")],
    };
    let response = client
        .post(format!("{}/enqueue/batch", processor.url))
        .header(header::CONTENT_TYPE, "application/x-protobuf")
        .body(prost::Message::encode_to_vec(&batch))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let outcome: system::proto::BatchOutcome =
        prost::Message::decode(response.bytes().await.unwrap()).unwrap();
    let codes: Vec<i32> = outcome.outcomes.iter().map(|o| o.outcome).collect();
    use system::proto::Outcome::{Accepted, Duplicate};
    assert_eq!(codes, [Accepted as i32, Duplicate as i32]);
    for _ in 0..500 {
        if processor.seen.lock().unwrap().len() >= 2 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    // The same id in two namespaces is two messages; again in one of them, a duplicate.
    for (scope, expected) in [("x", "accepted"), ("y", "accepted"), ("x", "duplicate")] {
        let scoped = DataMessage {
            id_scope: scope.to_owned(),
            ..msg("n-3")
        };
        let response = client
            .post(format!("{}/enqueue", processor.url))
            .header(header::CONTENT_TYPE, "application/json")
            .body(serde_json::to_string(&scoped).unwrap())
            .send()
            .await
            .unwrap();
        let (status, _, value) = answer(response).await;
        assert_eq!(status, StatusCode::ACCEPTED, "{value}");
        assert_eq!(value["status"], expected, "{scope}");
    }
    for _ in 0..500 {
        if processor.seen.lock().unwrap().len() >= 4 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    // Give a wrongly stored repeat time to show up before counting.
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    let mut seen = processor.seen.lock().unwrap().clone();
    processor.shutdown().await;
    seen.sort();
    assert_eq!(seen, ["n-1", "n-2", "n-3", "n-3"]);
}

/// The processor's count of the ids it remembers.
async fn remembered(stack: &Stack) -> u64 {
    stack.processor_stats().await["recentIds"].as_u64().unwrap()
}

/// Only ids a client gave are remembered: messages without one (through the gateway, a
/// gRPC call or stream, or straight to the processor) cost the table nothing, and those
/// with one are each remembered.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_ids_a_client_gave_are_remembered() {
    let stack = Stack::start(Setup::default()).await;
    let client = Client::new();
    let body = r#"{"source": "plain", "data": "x"}"#;
    for _ in 0..20 {
        assert_eq!(post(&client, &stack, None, body).await.status(), 202);
    }
    let mut grpc = stack.grpc_client().await;
    for i in 0..5 {
        grpc.ingest(request("", i)).await.unwrap();
    }
    let plain = tokio_stream::iter((0..20).map(|i| request("", i)));
    assert_eq!(
        grpc.ingest_stream(plain)
            .await
            .unwrap()
            .into_inner()
            .accepted,
        20
    );
    let direct = client
        .post(format!("{}/enqueue", stack.processor_url))
        .header(header::CONTENT_TYPE, "application/json")
        .body(r#"{"source": "direct"}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(direct.status(), 202);
    assert_eq!(remembered(&stack).await, 0, "assigned ids were remembered");
    for i in 0..7 {
        let key = format!("k-{i}");
        assert_eq!(post(&client, &stack, Some(&key), body).await.status(), 202);
    }
    let keyed = tokio_stream::iter(["s-1", "s-2", "s-3"].map(|id| request(id, 1)));
    grpc.ingest_stream(keyed).await.unwrap();
    assert_eq!(remembered(&stack).await, 10);
    stack.shutdown().await;
}

/// When the table holds `DEDUP_IDS` ids, a message with an id of its own is refused with a
/// 503 naming the setting, and no id already taken is forgotten; messages without an id
/// are still accepted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_table_refuses_new_ids_and_forgets_none() {
    let stack = Stack::start(Setup {
        processor: ProcessorConfig {
            dedup_ids: 16,
            ..ProcessorConfig::default()
        },
        ..Setup::default()
    })
    .await;
    let client = Client::new();
    let body = r#"{"source": "orders", "data": "x"}"#;
    let (mut accepted, mut refused) = (Vec::new(), 0);
    for i in 0..100 {
        let key = format!("order-{i}");
        let response = post(&client, &stack, Some(&key), body).await;
        match response.status() {
            StatusCode::ACCEPTED => accepted.push(key),
            StatusCode::SERVICE_UNAVAILABLE => {
                let error: Value = response.json().await.unwrap();
                assert!(
                    error["error"].as_str().unwrap().contains("DEDUP_IDS"),
                    "{error}"
                );
                refused += 1;
            }
            other => panic!("{other}"),
        }
    }
    assert!(
        refused > 0 && accepted.len() <= 16,
        "{} accepted",
        accepted.len()
    );
    for key in &accepted {
        let (status, replayed, _) = answer(post(&client, &stack, Some(key), body).await).await;
        assert_eq!((status, replayed), (StatusCode::ACCEPTED, true), "{key}");
    }
    assert_eq!(post(&client, &stack, None, body).await.status(), 202);
    stack.shutdown().await;
}

/// Ids are kept apart per ingest token's name: the same id under two names is two
/// messages, under one name (two tokens may share it) a duplicate, whichever door it came
/// through; tokens without a name share one namespace.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ids_are_kept_apart_per_token_name() {
    use system::{auth::ClientToken, gateway::GatewayConfig, grpc::GrpcConfig};
    let tokens = || {
        vec![
            ClientToken::named("shop", "tok-shop"),
            ClientToken::named("shop", "tok-shop-next"),
            ClientToken::named("sensors", "tok-sensors"),
            ClientToken::unnamed("tok-plain"),
        ]
    };
    let stack = Stack::start_recording(Setup {
        gateway: Box::new(move |forwarder| {
            GatewayConfig::from_front(FrontDoorConfig {
                ingest_tokens: tokens(),
                ..FrontDoorConfig::new(forwarder)
            })
        }),
        grpc: Box::new(move |forwarder| {
            GrpcConfig::from_front(FrontDoorConfig {
                ingest_tokens: tokens(),
                ..FrontDoorConfig::new(forwarder)
            })
        }),
        ..Setup::default()
    })
    .await;
    let client = Client::new();
    let send = |token: &'static str| {
        client
            .post(format!("{}/api/v1/ingest", stack.gateway_url))
            .header(header::CONTENT_TYPE, "application/json")
            .header(header::AUTHORIZATION, format!("Bearer {token}"))
            .header("idempotency-key", "order-1")
            .body(r#"{"source": "s", "data": "x"}"#)
            .send()
    };
    for (token, expected) in [
        ("tok-shop", "accepted"),
        ("tok-sensors", "accepted"),
        ("tok-shop-next", "duplicate"),
        ("tok-plain", "accepted"),
        ("tok-plain", "duplicate"),
    ] {
        let (status, _, value) = answer(send(token).await.unwrap()).await;
        assert_eq!(status, StatusCode::ACCEPTED, "{token}: {value}");
        assert_eq!(value["status"], expected, "{token}");
    }
    let mut grpc = stack.grpc_client().await;
    let mut call = tonic::Request::new(request("order-1", 1));
    call.metadata_mut()
        .insert("authorization", "Bearer tok-sensors".parse().unwrap());
    assert_eq!(
        grpc.ingest(call).await.unwrap().into_inner().status,
        "duplicate"
    );
    let mut stream = tonic::Request::new(tokio_stream::iter([request("order-1", 1)]));
    stream
        .metadata_mut()
        .insert("authorization", "Bearer tok-shop".parse().unwrap());
    let answer = grpc.ingest_stream(stream).await.unwrap().into_inner();
    assert_eq!((answer.accepted, answer.duplicates), (1, 1));
    stack.processed(3).await;
    stack.shutdown().await;
}
