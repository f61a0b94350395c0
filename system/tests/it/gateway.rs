//! The HTTP gateway over real sockets: HTTP/1.1 and h2c prior knowledge, every error of the
//! contract, metrics.

use std::time::Duration;

use reqwest::{Client, StatusCode, Version, header};
use serde_json::{Value, json};
use system::{gateway::GatewayConfig, processor::ProcessorConfig};

use crate::{
    client::ingest,
    stack::{Setup, Stack, slow},
    support::{accepted_or_refused, assert_error, parse_prometheus},
};

fn h2c() -> Client {
    Client::builder().http2_prior_knowledge().build().unwrap()
}

#[tokio::test]
async fn ingest_over_http1_and_h2c_reaches_the_processor_intact() {
    let stack = Stack::recording().await;
    for (client, version) in [(Client::new(), Version::HTTP_11), (h2c(), Version::HTTP_2)] {
        let body =
            json!({"source": "sensor-1", "data": "temperature=21.5", "metadata": {"unit": "C"}});
        let response = ingest(&client, &stack.gateway_url, &body.to_string()).await;
        assert_eq!(response.version(), version);
        assert_eq!(response.status(), StatusCode::ACCEPTED);
        let answer: Value = response.json().await.unwrap();
        assert_eq!(answer["status"], "accepted");
        let id = answer["messageId"].as_str().unwrap().to_owned();
        assert!(uuid::Uuid::parse_str(&id).is_ok(), "{id}");

        let n = if version == Version::HTTP_11 { 1 } else { 2 };
        stack.processed(n).await;
        let got = stack.seen.lock().unwrap().last().cloned().unwrap();
        assert_eq!(
            (got.id.as_str(), got.source.as_str()),
            (id.as_str(), "sensor-1")
        );
        assert_eq!(got.payload, b"temperature=21.5");
        assert_eq!(got.metadata["unit"], "C");
    }
    stack.shutdown().await;
}

#[tokio::test]
async fn every_client_error_has_its_status_and_a_json_body() {
    let stack = Stack::start(Setup {
        gateway: Box::new(|forwarder| GatewayConfig {
            body_limit: 2048,
            ..GatewayConfig::new(forwarder)
        }),
        ..Setup::default()
    })
    .await;
    let client = Client::new();
    let url = format!("{}/api/v1/ingest", stack.gateway_url);
    assert_error(
        ingest(&client, &stack.gateway_url, "{oops").await,
        StatusCode::BAD_REQUEST,
        "invalid JSON",
    )
    .await;
    assert_error(
        ingest(&client, &stack.gateway_url, r#"{"data": "x"}"#).await,
        StatusCode::BAD_REQUEST,
        "source",
    )
    .await;
    assert_error(
        ingest(&client, &stack.gateway_url, r#"{"source": "s"}"#).await,
        StatusCode::BAD_REQUEST,
        "data",
    )
    .await;
    assert_error(
        ingest(
            &client,
            &stack.gateway_url,
            r#"{"source": " ", "data": "x"}"#,
        )
        .await,
        StatusCode::BAD_REQUEST,
        "source",
    )
    .await;
    assert_error(
        ingest(
            &client,
            &stack.gateway_url,
            r#"{"source": "s", "data": "x", "extra": 1}"#,
        )
        .await,
        StatusCode::BAD_REQUEST,
        "extra",
    )
    .await;
    let big = json!({"source": "s", "data": "x".repeat(4096)}).to_string();
    assert_error(
        ingest(&client, &stack.gateway_url, &big).await,
        StatusCode::PAYLOAD_TOO_LARGE,
        "limit",
    )
    .await;
    let text = client
        .post(&url)
        .header(header::CONTENT_TYPE, "text/plain")
        .body("hi")
        .send()
        .await
        .unwrap();
    assert_error(text, StatusCode::UNSUPPORTED_MEDIA_TYPE, "content-type").await;
    let wrong = client.get(&url).send().await.unwrap();
    assert_eq!(wrong.headers()[header::ALLOW], "POST");
    assert_error(wrong, StatusCode::METHOD_NOT_ALLOWED, "method").await;
    let put = client
        .put(format!("{}/health", stack.gateway_url))
        .send()
        .await
        .unwrap();
    assert!(
        put.headers()[header::ALLOW]
            .to_str()
            .unwrap()
            .contains("GET")
    );
    assert_error(put, StatusCode::METHOD_NOT_ALLOWED, "method").await;
    let missing = client
        .get(format!("{}/api/v2/ingest", stack.gateway_url))
        .send()
        .await
        .unwrap();
    assert_error(missing, StatusCode::NOT_FOUND, "route").await;
    let stats = stack.shutdown().await;
    assert_eq!(stats.queue.enqueued, 0, "nothing invalid reached the queue");
}

#[tokio::test]
async fn an_unreachable_processor_is_a_502() {
    let closed = ClosedPort::new();
    let stack = Stack::start(Setup {
        processor_url: Some(closed.url().parse().unwrap()),
        ..Setup::default()
    })
    .await;
    let response = ingest(
        &Client::new(),
        &stack.gateway_url,
        r#"{"source": "s", "data": "x"}"#,
    )
    .await;
    assert_error(response, StatusCode::BAD_GATEWAY, "unreachable").await;
    let status: Value = reqwest::get(format!("{}/api/v1/status", stack.gateway_url))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(status["processor"]["status"], "unreachable");
    stack.shutdown().await;
}

/// A port on which nothing listens: bound but never listening, and held while the guard
/// lives, so no other test can be given the port and answer on it.
pub(crate) struct ClosedPort {
    socket: tokio::net::TcpSocket,
}

impl ClosedPort {
    pub(crate) fn new() -> ClosedPort {
        let socket = tokio::net::TcpSocket::new_v4().unwrap();
        socket.bind("127.0.0.1:0".parse().unwrap()).unwrap();
        ClosedPort { socket }
    }

    pub(crate) fn addr(&self) -> std::net::SocketAddr {
        self.socket.local_addr().unwrap()
    }

    pub(crate) fn url(&self) -> String {
        format!("http://{}", self.addr())
    }
}

/// A full processor queue is a 503 with Retry-After at the gateway; everything the gateway
/// answered 202 is processed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_queue_is_a_503_and_nothing_accepted_is_lost() {
    let stack = Stack::start(Setup {
        processor: ProcessorConfig {
            queue_size: 1,
            workers: 1,
            process: slow(Duration::from_millis(50)),
            ..ProcessorConfig::default()
        },
        ..Setup::default()
    })
    .await;
    let client = Client::new();
    let (mut accepted, mut refused) = (0u64, 0u64);
    for _ in 0..8 {
        let response = ingest(
            &client,
            &stack.gateway_url,
            r#"{"source": "burst", "data": "x"}"#,
        )
        .await;
        if accepted_or_refused(response).await {
            accepted += 1;
        } else {
            refused += 1;
        }
    }
    assert!(
        refused > 0,
        "a queue of 1 with a slow worker must refuse part of the burst"
    );
    let stats = stack.shutdown().await;
    assert_eq!(stats.queue.enqueued, accepted);
    assert_eq!(stats.workers.processed, accepted);
}

#[tokio::test]
async fn health_status_and_metrics_answer() {
    let stack = Stack::recording().await;
    let client = h2c();
    ingest(
        &client,
        &stack.gateway_url,
        r#"{"source": "m", "data": "x"}"#,
    )
    .await;
    stack.processed(1).await;
    let health: Value = client
        .get(format!("{}/health", stack.gateway_url))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(health, json!({"status": "ok"}));
    let status: Value = client
        .get(format!("{}/api/v1/status", stack.gateway_url))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(status["gateway"]["status"], "ok");
    assert_eq!(status["gateway"]["ingest"]["accepted"], 1);
    assert_eq!(status["processor"]["status"], "ok");
    assert_eq!(status["processor"]["workers"]["processed"], 1);
    assert_eq!(status["processor"]["queue"]["capacity"], 1000);
    assert!(status["gateway"]["forwarder"]["connectionReuse"].is_number());
    let text = client
        .get(format!("{}/metrics", stack.gateway_url))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let samples = parse_prometheus(&text);
    assert_eq!(samples[r#"gateway_ingest_total{outcome="accepted"}"#], 1.0);
    assert!(samples["gateway_hop_requests_total"] >= 1.0);
    assert!(samples.contains_key("gateway_hop_connection_reuse_ratio"));
    stack.shutdown().await;
}

mod timeouts {
    use std::time::{Duration, Instant};

    use system::{gateway::GatewayConfig, server::HttpLimits};
    use tokio::{
        io::{AsyncReadExt, AsyncWriteExt},
        net::TcpStream,
    };

    use crate::stack::{Setup, Stack};

    async fn stack(header_read_timeout: Duration, idle_timeout: Duration) -> Stack {
        Stack::start(Setup {
            gateway: Box::new(move |forwarder| {
                GatewayConfig::from_front(system::FrontDoorConfig {
                    limits: HttpLimits {
                        header_read_timeout,
                        idle_timeout,
                        ..HttpLimits::default()
                    },
                    ..system::FrontDoorConfig::new(forwarder)
                })
            }),
            ..Setup::default()
        })
        .await
    }

    /// Reads until the server closes the connection (bounded); returns what it sent.
    async fn read_until_closed(connection: &mut TcpStream) -> Option<String> {
        let mut received = Vec::new();
        let mut buf = [0u8; 4096];
        let deadline = tokio::time::sleep(Duration::from_secs(10));
        tokio::pin!(deadline);
        loop {
            tokio::select! {
                read = connection.read(&mut buf) => match read {
                    Ok(0) | Err(_) => return Some(String::from_utf8_lossy(&received).into_owned()),
                    Ok(n) => received.extend_from_slice(&buf[..n]),
                },
                () = &mut deadline => return None,
            }
        }
    }

    #[tokio::test]
    async fn a_client_that_never_finishes_its_headers_is_cut_off() {
        let stack = stack(Duration::from_millis(200), Duration::from_secs(120)).await;
        let addr = stack.gateway_url.trim_start_matches("http://").to_owned();
        let mut connection = TcpStream::connect(&addr).await.unwrap();
        connection
            .write_all(b"GET /health HTTP/1.1\r\nHost: x\r\n")
            .await
            .unwrap();
        assert!(
            read_until_closed(&mut connection).await.is_some(),
            "connection still open"
        );
        stack.shutdown().await;
    }

    #[tokio::test]
    async fn an_idle_connection_is_closed_and_a_busy_one_is_not() {
        let idle = Duration::from_millis(300);
        let stack = stack(Duration::from_secs(2), idle).await;
        let addr = stack.gateway_url.trim_start_matches("http://").to_owned();
        let mut connection = TcpStream::connect(&addr).await.unwrap();
        let started = Instant::now();
        for _ in 0..5 {
            connection
                .write_all(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
                .await
                .unwrap();
            let mut buf = [0u8; 1024];
            let n = connection.read(&mut buf).await.unwrap();
            assert!(String::from_utf8_lossy(&buf[..n]).starts_with("HTTP/1.1 200"));
            tokio::time::sleep(idle / 3).await;
        }
        assert!(
            started.elapsed() > idle,
            "the connection outlived one idle period while busy"
        );
        assert!(
            read_until_closed(&mut connection).await.is_some(),
            "idle connection still open"
        );
        stack.shutdown().await;
    }
}
