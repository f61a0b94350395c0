//! The process-wide budget of bytes in flight: when it is reached, new work is refused at
//! once (503 + Retry-After, RESOURCE_EXHAUSTED) and what was accepted is kept; the budget
//! is given back when the work is answered. The in-memory queues are bounded by bytes.

use std::{sync::Arc, time::Duration};
use system::FrontDoorConfig;

use reqwest::{Client, StatusCode, header};
use serde_json::Value;
use system::{
    budget::Budget,
    client::ForwarderConfig,
    clients::{ClientLimits, Clients},
    gateway::GatewayConfig,
    grpc::{GrpcConfig, standing},
    processor::ProcessorConfig,
    proto::IngestRequest,
    queue::{PooledQueue, Queue, RETAINED_TOTAL},
};
use tokio::{io::AsyncReadExt, net::TcpListener};
use tonic::Code;

use crate::stack::{Setup, Stack, slow};

/// A "processor" that takes connections and requests and never answers.
async fn stalled_processor() -> String {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move {
        loop {
            let Ok((mut socket, _)) = listener.accept().await else {
                return;
            };
            tokio::spawn(async move {
                let mut sink = vec![0u8; 64 * 1024];
                while matches!(socket.read(&mut sink).await, Ok(n) if n > 0) {}
            });
        }
    });
    url
}

/// A stack whose front doors hand messages to `url`, within `budget`; one client's share
/// is more than the whole budget, so that the budget is what refuses (the shares per client
/// are tested in `abuse.rs`).
fn stalled_setup(url: &str, budget: &Arc<Budget>) -> Setup {
    let clients = Clients::new(
        budget,
        ClientLimits {
            memory: 2 * budget.limit(),
            ..ClientLimits::default()
        },
    );
    let (gateway_clients, grpc_clients) = (Arc::clone(&clients), clients);
    Setup {
        processor_url: Some(url.parse().unwrap()),
        forwarder: Box::new(|url| ForwarderConfig {
            timeout: Duration::from_secs(2),
            ..ForwarderConfig::new(url)
        }),
        gateway: Box::new(move |forwarder| {
            GatewayConfig::from_front(FrontDoorConfig {
                clients: Arc::clone(&gateway_clients),
                ..FrontDoorConfig::new(forwarder)
            })
        }),
        grpc: Box::new(move |forwarder| {
            GrpcConfig::from_front(FrontDoorConfig {
                clients: Arc::clone(&grpc_clients),
                ..FrontDoorConfig::new(forwarder)
            })
        }),
        ..Setup::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_gateway_refuses_new_work_at_once_when_the_budget_is_spent() {
    const BODY: usize = 100 * 1024;
    let budget = Budget::new("MEMORY_BUDGET", 1024 * 1024);
    let stack = Stack::start(stalled_setup(&stalled_processor().await, &budget)).await;
    let client = Client::new();
    let body = serde_json::json!({"source": "s", "data": "x".repeat(BODY)}).to_string();
    // Each held ingest takes about three times its body: a handful fill the budget.
    let held: Vec<_> = (0..8)
        .map(|_| {
            let request = client
                .post(format!("{}/api/v1/ingest", stack.gateway_url))
                .header(header::CONTENT_TYPE, "application/json")
                .body(body.clone())
                .send();
            tokio::spawn(request)
        })
        .collect();
    let mut refused = None;
    for _ in 0..200 {
        let response = client
            .post(format!("{}/api/v1/ingest", stack.gateway_url))
            .header(header::CONTENT_TYPE, "application/json")
            .body(body.clone())
            .timeout(Duration::from_secs(30))
            .send();
        // A refusal comes at once; an ingest that was let in waits for the stalled hop.
        match tokio::time::timeout(Duration::from_millis(500), response).await {
            Ok(Ok(response)) if response.status() == StatusCode::SERVICE_UNAVAILABLE => {
                refused = Some(response);
                break;
            }
            _ => tokio::time::sleep(Duration::from_millis(20)).await,
        }
    }
    let refused = refused.expect("a refusal once the budget is spent");
    assert!(refused.headers().contains_key(header::RETRY_AFTER));
    let error: Value = refused.json().await.unwrap();
    assert!(
        error["error"].as_str().unwrap().contains("MEMORY_BUDGET"),
        "{error}"
    );
    assert!(budget.used() <= 1024 * 1024);
    // The held ingests end (the hop times out: 502; those that found the budget spent
    // got 503), and give their bytes back.
    let mut timed_out = 0;
    for request in held {
        let status = request.await.unwrap().unwrap().status();
        assert!(
            [StatusCode::BAD_GATEWAY, StatusCode::SERVICE_UNAVAILABLE].contains(&status),
            "{status}"
        );
        timed_out += usize::from(status == StatusCode::BAD_GATEWAY);
    }
    assert!(timed_out > 0);
    for _ in 0..500 {
        if budget.used() == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(budget.used(), 0, "every charge is given back");
    assert!(budget.stats().refused > 0);
    stack.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stream_beyond_the_budget_is_resource_exhausted_and_says_where_to_resume() {
    let budget = Budget::new("MEMORY_BUDGET", 1024 * 1024);
    let stack = Stack::start(Setup {
        processor: ProcessorConfig {
            process: slow(Duration::from_millis(1)),
            ..ProcessorConfig::default()
        },
        ..stalled_setup("http://127.0.0.1:1", &budget)
    })
    .await;
    // Another caller holds most of the budget.
    let held = budget.try_charge(900 * 1024).unwrap();
    let mut client = stack.grpc_client().await;
    let stream = (0..10).map(|i| IngestRequest {
        source: "s".to_owned(),
        data: vec![i as u8; 64 * 1024],
        ..IngestRequest::default()
    });
    let err = client
        .ingest_stream(tokio_stream::iter(stream))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::ResourceExhausted, "{err:?}");
    assert!(err.message().contains("MEMORY_BUDGET"), "{err:?}");
    let resume = err.metadata().get(standing::RESUME_FROM).unwrap();
    assert!(resume.to_str().unwrap().parse::<u64>().is_ok(), "{err:?}");
    drop(held);
    assert_eq!(budget.used(), 0);
    stack.shutdown().await;
}

/// The queue's byte bound refuses with 503 once the waiting messages fill it, and every
/// message accepted is processed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_queue_is_bounded_by_bytes() {
    let stack = Stack::start(Setup {
        processor: ProcessorConfig {
            queue_bytes: 256 * 1024,
            workers: 1,
            process: slow(Duration::from_millis(20)),
            ..ProcessorConfig::default()
        },
        ..Setup::default()
    })
    .await;
    let client = Client::new();
    let body = serde_json::json!({"source": "s", "data": "x".repeat(64 * 1024)}).to_string();
    let (mut accepted, mut refused) = (0u64, 0u64);
    for _ in 0..20 {
        let response = client
            .post(format!("{}/api/v1/ingest", stack.gateway_url))
            .header(header::CONTENT_TYPE, "application/json")
            .body(body.clone())
            .send()
            .await
            .unwrap();
        match response.status() {
            StatusCode::ACCEPTED => accepted += 1,
            StatusCode::SERVICE_UNAVAILABLE => refused += 1,
            other => panic!("{other}"),
        }
    }
    assert!(
        refused > 0,
        "a queue of 256 KiB holds only a few 64 KiB messages"
    );
    let stats = stack.shutdown().await;
    assert_eq!(stats.workers.processed, accepted);
}

/// Slots give large buffers back to the allocator beyond the free list's total bound.
#[tokio::test]
async fn pooled_slots_keep_a_bounded_amount_of_memory() {
    // Each message fits what one slot may keep; together they would pass the total.
    let queue = PooledQueue::new(256);
    let big = vec![7u8; system::queue::RETAINED_BYTES];
    let msg = system::proto::DataMessage {
        id: "x".to_owned(),
        source: "s".to_owned(),
        payload: big,
        ..Default::default()
    };
    for _ in 0..200 {
        queue
            .publish(system::message::MessageRef::from(&msg))
            .await
            .unwrap();
    }
    while let Some(delivery) = queue.try_consume() {
        drop(delivery);
    }
    assert!(
        queue.retained_bytes() <= RETAINED_TOTAL,
        "{} retained",
        queue.retained_bytes()
    );
}
