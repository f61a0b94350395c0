//! Readiness: `GET /ready` on the gateway and the processor, and the gRPC health service,
//! say whether a server should get traffic now; `/health` stays pure liveness.

use std::{
    sync::{Arc, atomic::AtomicU64},
    time::{Duration, Instant},
};

use reqwest::{StatusCode, header};
use serde_json::{Value, json};
use system::{
    client::ForwarderConfig,
    gateway::{self, GatewayConfig},
    grpc::{self, GrpcConfig},
    processor::{self, Processor, ProcessorConfig},
};
use tokio::{net::TcpListener, sync::oneshot, task::JoinHandle};
use tokio_stream::StreamExt as _;
use tonic_health::pb::{
    HealthCheckRequest, health_check_response::ServingStatus, health_client::HealthClient,
};

use crate::nats_server::{NatsServer, free_port};

/// The services whose health the gRPC server reports.
const SERVICES: [&str; 2] = ["", "diplom.v1.IngestService"];

/// Generous: a probe runs about every second, and a slow machine may take longer.
const LIMIT: Duration = Duration::from_secs(20);

/// A server of this process, stopped by sending on `stop`.
struct Serving<T> {
    stop: oneshot::Sender<()>,
    task: JoinHandle<T>,
}

impl<T> Serving<T> {
    async fn stop(self) -> T {
        let _ = self.stop.send(());
        self.task.await.unwrap()
    }
}

fn spawn<T: Send + 'static>(
    serve: impl FnOnce(oneshot::Receiver<()>) -> JoinHandle<T>,
) -> Serving<T> {
    let (stop, stopped) = oneshot::channel();
    Serving {
        stop,
        task: serve(stopped),
    }
}

async fn start_processor(port: u16) -> Serving<std::io::Result<processor::ProcessorStats>> {
    let listener = TcpListener::bind(("127.0.0.1", port)).await.unwrap();
    spawn(|stopped| {
        tokio::spawn(processor::serve(
            listener,
            ProcessorConfig::default(),
            async move {
                let _ = stopped.await;
            },
        ))
    })
}

fn processor_url(port: u16) -> http::Uri {
    format!("http://127.0.0.1:{port}").parse().unwrap()
}

async fn ready(base: &str) -> (StatusCode, Option<String>, Value) {
    let response = reqwest::get(format!("{base}/ready")).await.unwrap();
    let status = response.status();
    let retry_after = response
        .headers()
        .get(header::RETRY_AFTER)
        .map(|v| v.to_str().unwrap().to_owned());
    (status, retry_after, response.json().await.unwrap())
}

/// Asks `/ready` at `base` until it answers `status`, and returns the last answer.
async fn ready_becomes(base: &str, status: StatusCode) -> (StatusCode, Option<String>, Value) {
    let deadline = Instant::now() + LIMIT;
    loop {
        let answer = ready(base).await;
        if answer.0 == status {
            return answer;
        }
        assert!(
            Instant::now() < deadline,
            "{base}/ready did not become {status}: {answer:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn assert_not_ready(answer: &(StatusCode, Option<String>, Value), mentions: &str) {
    assert_eq!(answer.0, StatusCode::SERVICE_UNAVAILABLE, "{answer:?}");
    assert!(answer.1.is_some(), "no Retry-After: {answer:?}");
    let error = answer.2["error"].as_str().unwrap_or_default();
    assert!(error.contains(mentions), "{answer:?}");
}

/// The gateway is not ready while nothing listens where its processor should be, says
/// why, and stays alive (`/health`); it becomes ready once a processor answers there, and
/// not ready again when it is gone.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_gateway_is_ready_while_its_processor_answers() {
    let port = free_port();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let config = GatewayConfig::new(ForwarderConfig::new(processor_url(port)));
    let gateway = spawn(|stopped| {
        tokio::spawn(gateway::serve(listener, config, async move {
            let _ = stopped.await;
        }))
    });

    let answer = ready(&base).await;
    assert_not_ready(&answer, "processor");
    let health = reqwest::get(format!("{base}/health")).await.unwrap();
    assert_eq!(health.status(), StatusCode::OK);

    let processor = start_processor(port).await;
    let (_, _, body) = ready_becomes(&base, StatusCode::OK).await;
    assert_eq!(body, json!({"status": "ready"}));

    processor.stop().await.unwrap();
    let answer = ready_becomes(&base, StatusCode::SERVICE_UNAVAILABLE).await;
    assert_not_ready(&answer, "processor");
    gateway.stop().await;
}

/// The processor is ready while its queue is open, and not once it stops (the queue
/// closes for shutdown), though it still answers `/health`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_processor_is_ready_until_its_queue_closes() {
    let port = free_port();
    let serving = start_processor(port).await;
    let base = format!("http://127.0.0.1:{port}");
    let (status, _, body) = ready(&base).await;
    assert_eq!((status, body), (StatusCode::OK, json!({"status": "ready"})));
    serving.stop().await.unwrap();

    // The routes of a processor that is stopping, served on their own: shutdown begins
    // and the queue closes while they still answer.
    let processor = Processor::start(&ProcessorConfig::default(), Arc::new(AtomicU64::new(0)));
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let routes = processor.router();
    let server = tokio::spawn(async move { axum::serve(listener, routes).await.unwrap() });
    assert_eq!(ready(&base).await.0, StatusCode::OK);
    processor.stop().await;
    let answer = ready(&base).await;
    assert_not_ready(&answer, "shutting down");
    let health = reqwest::get(format!("{base}/health")).await.unwrap();
    assert_eq!(health.status(), StatusCode::OK);
    server.abort();
}

async fn health_of(channel: &tonic::transport::Channel, service: &str) -> i32 {
    HealthClient::new(channel.clone())
        .check(HealthCheckRequest {
            service: service.to_owned(),
        })
        .await
        .unwrap()
        .into_inner()
        .status
}

/// The gRPC health service reports the ingest service and the server as a whole
/// NOT_SERVING while the processor cannot be reached, SERVING once it can, and
/// NOT_SERVING again from the moment shutdown begins: a watcher sees it while the server
/// is still draining (the watch itself is the call that keeps it draining).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grpc_health_follows_the_processor_and_shutdown() {
    let port = free_port();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let config = GrpcConfig::new(ForwarderConfig::new(processor_url(port)));
    let server = spawn(|stopped| {
        tokio::spawn(grpc::serve(listener, config, async move {
            let _ = stopped.await;
        }))
    });
    let channel = tonic::transport::Endpoint::from_shared(url)
        .unwrap()
        .connect()
        .await
        .unwrap();
    for service in SERVICES {
        let status = health_of(&channel, service).await;
        assert_eq!(status, ServingStatus::NotServing as i32, "{service:?}");
    }

    let processor = start_processor(port).await;
    let deadline = Instant::now() + LIMIT;
    for service in SERVICES {
        while health_of(&channel, service).await != ServingStatus::Serving as i32 {
            assert!(
                Instant::now() < deadline,
                "{service:?} never became SERVING"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    let mut watch = HealthClient::new(channel.clone())
        .watch(HealthCheckRequest {
            service: SERVICES[1].to_owned(),
        })
        .await
        .unwrap()
        .into_inner();
    let first = watch.next().await.unwrap().unwrap();
    assert_eq!(first.status, ServingStatus::Serving as i32);
    let _ = server.stop.send(());
    let next = tokio::time::timeout(LIMIT, watch.next())
        .await
        .expect("a status while the server drains")
        .unwrap()
        .unwrap();
    assert_eq!(next.status, ServingStatus::NotServing as i32);
    drop(watch);
    drop(channel);
    server.task.await.unwrap().unwrap();
    processor.stop().await.unwrap();
}

/// With the NATS queue the processor is ready only while its client is connected: not
/// while the server is down, and again once it is back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_processor_on_nats_is_not_ready_while_nats_is_down() {
    let Some(mut server) = NatsServer::for_test("the_processor_on_nats_is_not_ready") else {
        return;
    };
    let processor = crate::nats::start(&server.url(), |_| {}).await;
    let (_, _, body) = ready_becomes(&processor.url, StatusCode::OK).await;
    assert_eq!(body, json!({"status": "ready"}));
    server.kill();
    let answer = ready_becomes(&processor.url, StatusCode::SERVICE_UNAVAILABLE).await;
    assert_not_ready(&answer, "NATS");
    let health = reqwest::get(format!("{}/health", processor.url))
        .await
        .unwrap();
    assert_eq!(health.status(), StatusCode::OK);
    server.restart().expect("nats-server restarts");
    ready_becomes(&processor.url, StatusCode::OK).await;
    processor.shutdown().await;
}
