//! The gRPC front door through real tonic clients: unary and streaming ingest, reflection,
//! health, and the status codes of the contract.

use std::{
    collections::HashSet,
    sync::{Arc, Mutex},
    time::Duration,
};

use system::{
    client::ForwarderConfig,
    grpc::{GrpcConfig, standing},
    message::MessageRef,
    processor::ProcessorConfig,
    proto::{IngestRequest, ingest_service_client::IngestServiceClient},
};
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::Code;
use tonic_health::pb::{
    HealthCheckRequest, health_check_response::ServingStatus, health_client::HealthClient,
};
use tonic_reflection::pb::v1::{
    ServerReflectionRequest, server_reflection_client::ServerReflectionClient,
    server_reflection_request::MessageRequest, server_reflection_response::MessageResponse,
};

use crate::stack::{Setup, Stack, recording};

fn request(source: &str, data: &[u8]) -> IngestRequest {
    IngestRequest {
        source: source.to_owned(),
        data: data.to_vec(),
        metadata: [("origin".to_owned(), "grpc".to_owned())].into(),
        id: String::new(),
    }
}

#[tokio::test]
async fn unary_ingest_reaches_the_processor_intact() {
    let stack = Stack::recording().await;
    let mut client = stack.grpc_client().await;
    let reply = client
        .ingest(request("grpc-1", b"\x00\x01binary"))
        .await
        .unwrap()
        .into_inner();
    assert_eq!((reply.status.as_str(), reply.accepted), ("accepted", 1));
    assert!(uuid::Uuid::parse_str(&reply.message_id).is_ok());
    stack.processed(1).await;
    let got = stack.seen.lock().unwrap()[0].clone();
    assert_eq!(got.id, reply.message_id);
    assert_eq!(
        (got.source.as_str(), got.payload.as_slice()),
        ("grpc-1", &b"\x00\x01binary"[..])
    );
    assert_eq!(got.metadata["origin"], "grpc");
    stack.shutdown().await;
}

/// 10,000 messages in one stream: all accepted, each processed exactly once, carried in
/// far fewer hop requests than messages.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stream_of_10k_is_forwarded_in_batches_and_processed_exactly_once() {
    const N: usize = 10_000;
    let stack = Stack::start_recording(Setup {
        processor: ProcessorConfig {
            queue_size: N,
            ..ProcessorConfig::default()
        },
        ..Setup::default()
    })
    .await;
    let mut client = stack.grpc_client().await;
    let messages = (0..N).map(|i| request(&format!("stream-{i}"), format!("{i}").as_bytes()));
    let reply = client
        .ingest_stream(tokio_stream::iter(messages))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        (reply.status.as_str(), reply.accepted),
        ("completed", N as u64)
    );
    let stats = stack.processed(N as u64).await;
    assert_eq!(
        stats["enqueueRequests"], 0,
        "a batched stream sends no single requests"
    );
    let batches = stats["batchRequests"].as_u64().unwrap();
    assert!(
        batches <= (N / 10) as u64,
        "{batches} hop requests for {N} messages"
    );
    let sources: HashSet<String> = stack
        .seen
        .lock()
        .unwrap()
        .iter()
        .map(|m| m.source.clone())
        .collect();
    assert_eq!(sources.len(), N, "every message processed exactly once");
    stack.shutdown().await;
}

/// With batching off (`HOP_BATCH=1`), the stream is forwarded one request per message.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unbatched_streams_send_one_hop_request_per_message() {
    let stack = Stack::start(Setup {
        forwarder: Box::new(|url| ForwarderConfig {
            batch: 1,
            ..ForwarderConfig::new(url)
        }),
        ..Setup::default()
    })
    .await;
    let mut client = stack.grpc_client().await;
    let messages = (0..200).map(|i| request(&format!("s-{i}"), b"x"));
    let reply = client
        .ingest_stream(tokio_stream::iter(messages))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(reply.accepted, 200);
    let stats = stack.processed(200).await;
    assert_eq!(
        (
            stats["enqueueRequests"].as_u64(),
            stats["batchRequests"].as_u64()
        ),
        (Some(200), Some(0))
    );
    stack.shutdown().await;
}

#[tokio::test]
async fn reflection_lists_the_service_and_health_is_serving() {
    let stack = Stack::recording().await;
    let channel = tonic::transport::Endpoint::from_shared(stack.grpc_url.clone())
        .unwrap()
        .connect()
        .await
        .unwrap();
    let mut reflection = ServerReflectionClient::new(channel.clone());
    let ask = ServerReflectionRequest {
        host: String::new(),
        message_request: Some(MessageRequest::ListServices(String::new())),
    };
    let mut answers = reflection
        .server_reflection_info(tokio_stream::iter([ask]))
        .await
        .unwrap()
        .into_inner();
    let Some(MessageResponse::ListServicesResponse(list)) =
        answers.message().await.unwrap().unwrap().message_response
    else {
        panic!("not a list of services");
    };
    let names: Vec<String> = list.service.into_iter().map(|s| s.name).collect();
    assert!(
        names.contains(&"diplom.v1.IngestService".to_owned()),
        "{names:?}"
    );
    assert!(
        names.contains(&"grpc.health.v1.Health".to_owned()),
        "{names:?}"
    );

    let mut health = HealthClient::new(channel);
    for service in ["", "diplom.v1.IngestService"] {
        let status = health
            .check(HealthCheckRequest {
                service: service.to_owned(),
            })
            .await
            .unwrap()
            .into_inner()
            .status;
        assert_eq!(status, ServingStatus::Serving as i32, "{service:?}");
    }
    stack.shutdown().await;
}

#[tokio::test]
async fn bad_calls_get_the_contract_status_codes() {
    let stack = Stack::start(Setup {
        grpc: Box::new(|forwarder| GrpcConfig {
            max_message_bytes: 4096,
            ..GrpcConfig::new(forwarder)
        }),
        ..Setup::default()
    })
    .await;
    let mut client = stack.grpc_client().await;
    let empty_source = client.ingest(request("", b"x")).await.unwrap_err();
    assert_eq!(
        empty_source.code(),
        Code::InvalidArgument,
        "{empty_source:?}"
    );
    let too_large = client.ingest(request("s", &[7u8; 8192])).await.unwrap_err();
    assert_eq!(too_large.code(), Code::ResourceExhausted, "{too_large:?}");
    let stream = [request("ok", b"x"), request("", b"bad")];
    let failed = client
        .ingest_stream(tokio_stream::iter(stream))
        .await
        .unwrap_err();
    assert_eq!(failed.code(), Code::InvalidArgument);
    assert!(
        failed
            .message()
            .contains("1 messages of this stream were accepted"),
        "{}",
        failed.message()
    );
    let stream = [request("ok", b"x"), request("big", &[7u8; 8192])];
    let failed = client
        .ingest_stream(tokio_stream::iter(stream))
        .await
        .unwrap_err();
    assert_eq!(failed.code(), Code::ResourceExhausted, "{failed:?}");
    let stats = stack.shutdown().await;
    assert_eq!(
        stats.queue.enqueued, 2,
        "only the valid stream messages were queued"
    );
}

#[tokio::test]
async fn an_unreachable_processor_is_unavailable() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let closed = format!("http://{}", listener.local_addr().unwrap());
    drop(listener);
    let stack = Stack::start(Setup {
        processor_url: Some(closed.parse().unwrap()),
        ..Setup::default()
    })
    .await;
    let mut client = stack.grpc_client().await;
    let err = client.ingest(request("s", b"x")).await.unwrap_err();
    assert_eq!(err.code(), Code::Unavailable, "{err:?}");
    let err = client
        .ingest_stream(tokio_stream::iter([request("s", b"x")]))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::Unavailable, "{err:?}");
    // Nothing was sent, so nothing is uncertain: resume from the first message.
    let get = |key| {
        err.metadata()
            .get(key)
            .map(|v| v.to_str().unwrap().to_owned())
    };
    assert_eq!(get(standing::RESUME_FROM).as_deref(), Some("0"), "{err:?}");
    assert_eq!(get(standing::UNCERTAIN), None, "{err:?}");
    stack.shutdown().await;
}

/// A full queue is UNAVAILABLE (retryable); everything answered OK is processed, and a
/// failed stream says exactly which of its messages were accepted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_queue_is_unavailable_and_nothing_accepted_is_lost() {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let record = recording(&seen);
    let stack = Stack::start(Setup {
        processor: ProcessorConfig {
            queue_size: 1,
            workers: 1,
            process: Arc::new(move |msg: MessageRef<'_>, out: &mut Vec<u8>| {
                std::thread::sleep(Duration::from_millis(50));
                record(msg, out)
            }),
            ..ProcessorConfig::default()
        },
        ..Setup::default()
    })
    .await;
    let mut client = stack.grpc_client().await;
    let (mut accepted, mut refused) = (0u64, 0u64);
    for _ in 0..8 {
        match client.ingest(request("burst", b"x")).await {
            Ok(_) => accepted += 1,
            Err(status) => {
                assert_eq!(status.code(), Code::Unavailable, "{status:?}");
                refused += 1;
            }
        }
    }
    assert!(refused > 0);
    let stream = (0..50).map(|i| IngestRequest {
        id: format!("stream-{i}"),
        ..request("stream-burst", b"x")
    });
    let err = client
        .ingest_stream(tokio_stream::iter(stream))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::Unavailable);
    let metadata = |key: &str| {
        err.metadata()
            .get(key)
            .map(|value| value.to_str().unwrap().to_owned())
    };
    let partly: u64 = metadata(standing::ACCEPTED).unwrap().parse().unwrap();
    let resume_from: u64 = metadata(standing::RESUME_FROM).unwrap().parse().unwrap();
    let mut expected: Vec<u64> = (0..resume_from).collect();
    for range in metadata(standing::ACCEPTED_AFTER)
        .iter()
        .flat_map(|r| r.split(','))
    {
        let (start, end) = range.split_once('-').unwrap_or((range, range));
        expected.extend(start.parse::<u64>().unwrap()..=end.parse().unwrap());
    }
    assert_eq!(
        metadata(standing::UNCERTAIN),
        None,
        "a full queue is a certain refusal"
    );
    assert_eq!(expected.len() as u64, partly, "{err:?}");
    assert!(
        err.message()
            .contains(&format!("resume from message {resume_from}")),
        "{err:?}"
    );
    let stats = stack.shutdown().await;
    assert_eq!(stats.queue.enqueued, accepted + partly);
    assert_eq!(stats.workers.processed, accepted + partly);
    let mut processed: Vec<u64> = seen
        .lock()
        .unwrap()
        .iter()
        .filter_map(|msg| msg.id.strip_prefix("stream-")?.parse().ok())
        .collect();
    processed.sort_unstable();
    assert_eq!(processed, expected, "exactly the messages the status names");
}

/// Shutdown lets an open stream finish: messages sent after the signal are still accepted
/// and processed before the processor stops.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_lets_an_open_stream_finish() {
    let stack = Stack::recording().await;
    let mut client = IngestServiceClient::connect(stack.grpc_url.clone())
        .await
        .unwrap();
    let (tx, rx) = mpsc::channel(16);
    let call = tokio::spawn(async move { client.ingest_stream(ReceiverStream::new(rx)).await });
    for i in 0..100 {
        tx.send(request(&format!("before-{i}"), b"x"))
            .await
            .unwrap();
    }
    stack.processed(100).await;
    stack.begin_shutdown();
    tokio::time::sleep(Duration::from_millis(50)).await;
    for i in 0..100 {
        tx.send(request(&format!("after-{i}"), b"x")).await.unwrap();
    }
    drop(tx);
    let reply = call.await.unwrap().unwrap().into_inner();
    assert_eq!(reply.accepted, 200);
    let stats = stack.shutdown().await;
    assert_eq!(stats.workers.processed, 200);
}
