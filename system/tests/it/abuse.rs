//! One cheap client against the limits, from the attacker's side: every attack comes from
//! one loopback address (127.0.0.2) while a victim from another (127.0.0.3) must still be
//! served. Bodies and gRPC messages are charged as they arrive and each address holds at
//! most its share; every call has a deadline; an HTTP/2 connection that only greets is
//! closed soon; an address keeps at most its share of connections; refusals are counted
//! by reason on `/metrics`.

use std::{convert::Infallible, net::IpAddr, sync::Arc, time::Duration};
use system::FrontDoorConfig;

use bytes::Bytes;
use http_body_util::{BodyExt as _, StreamBody};
use hyper::body::Frame;
use hyper_util::{
    client::legacy::{Client, connect::HttpConnector},
    rt::TokioExecutor,
};
use prost::Message as _;
use reqwest::StatusCode;
use serde_json::Value;
use system::{
    budget::Budget,
    clients::{ClientLimits, Clients},
    gateway::GatewayConfig,
    grpc::GrpcConfig,
    processor::ProcessorConfig,
    proto::IngestRequest,
    server::HttpLimits,
};
use tokio::{
    io::AsyncWriteExt,
    net::{TcpSocket, TcpStream},
    sync::mpsc,
    task::JoinHandle,
};
use tokio_stream::wrappers::ReceiverStream;

use crate::{
    client::grpc_frame,
    raw,
    stack::{Setup, Stack},
    support::parse_prometheus,
};

/// Generous: the deadlines under test are a second or two, and a loaded machine is slow.
const WITHIN: Duration = Duration::from_secs(20);
const ATTACKER: &str = "127.0.0.2";
const VICTIM: &str = "127.0.0.3";

fn ip(addr: &str) -> IpAddr {
    addr.parse().unwrap()
}

/// An HTTP client whose connections come from `local`.
fn client_from(local: &str) -> reqwest::Client {
    reqwest::Client::builder()
        .local_address(ip(local))
        .build()
        .unwrap()
}

/// A TCP connection to `url`'s port from `local`.
async fn connect_from(local: &str, url: &str) -> TcpStream {
    let socket = TcpSocket::new_v4().unwrap();
    socket.bind((ip(local), 0).into()).unwrap();
    let addr = url.trim_start_matches("http://").parse().unwrap();
    socket.connect(addr).await.unwrap()
}

/// A stack whose front doors share one client table of `limits` within `budget`.
fn shared_clients(budget: &Arc<Budget>, limits: ClientLimits, http: HttpLimits) -> Setup {
    let clients = Clients::new(budget, limits);
    let (gateway_clients, grpc_clients) = (Arc::clone(&clients), clients);
    Setup {
        processor: ProcessorConfig {
            budget: Arc::clone(budget),
            ..ProcessorConfig::default()
        },
        gateway: Box::new(move |forwarder| {
            GatewayConfig::from_front(FrontDoorConfig {
                clients: Arc::clone(&gateway_clients),
                limits: http,
                ..FrontDoorConfig::new(forwarder)
            })
        }),
        grpc: Box::new(move |forwarder| {
            GrpcConfig::from_front(FrontDoorConfig {
                clients: Arc::clone(&grpc_clients),
                limits: http,
                ..FrontDoorConfig::new(forwarder)
            })
        }),
        ..Setup::default()
    }
}

/// A stack within a budget of `budget` bytes, of which one client may hold `share`.
async fn with_share(budget: usize, share: usize) -> (Arc<Budget>, Stack) {
    let budget = Budget::new("MEMORY_BUDGET", budget);
    let limits = ClientLimits {
        memory: share,
        ..ClientLimits::default()
    };
    let stack = Stack::start(shared_clients(&budget, limits, HttpLimits::default())).await;
    (budget, stack)
}

async fn gateway_status(stack: &Stack) -> Value {
    reqwest::get(format!("{}/api/v1/status", stack.gateway_url))
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

async fn budget_used(stack: &Stack) -> u64 {
    gateway_status(stack).await["gateway"]["memoryBudget"]["used"]
        .as_u64()
        .unwrap()
}

/// Waits (bounded) until `url` has counted at least `n` refusals of `reason`.
async fn until_refused(url: &str, family: &str, reason: &str, n: f64) -> f64 {
    let deadline = tokio::time::Instant::now() + WITHIN;
    loop {
        let count = refusals(url, family, reason).await;
        if count >= n || tokio::time::Instant::now() > deadline {
            return count;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Waits (bounded) until the budget holds at least `bytes`.
async fn until_used(stack: &Stack, bytes: u64) -> u64 {
    let deadline = tokio::time::Instant::now() + WITHIN;
    loop {
        let used = budget_used(stack).await;
        if used >= bytes || tokio::time::Instant::now() > deadline {
            return used;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The victim ingests `n` messages through the gateway; each must be accepted.
async fn victim_is_served(stack: &Stack, n: usize) {
    let victim = client_from(VICTIM);
    for i in 0..n {
        let response = victim
            .post(format!("{}/api/v1/ingest", stack.gateway_url))
            .header("content-type", "application/json")
            .body(format!(r#"{{"source": "victim", "data": "{i}"}}"#))
            .send()
            .await
            .unwrap();
        let status = response.status();
        assert_eq!(
            status,
            StatusCode::ACCEPTED,
            "the victim was refused: {}",
            response.text().await.unwrap()
        );
    }
}

/// The value of `<family>_total{reason="<reason>"}` on `url`'s `/metrics` (asked over
/// h2c, which every port speaks).
async fn refusals(url: &str, family: &str, reason: &str) -> f64 {
    let h2c = reqwest::Client::builder()
        .http2_prior_knowledge()
        .build()
        .unwrap();
    let text = h2c
        .get(format!("{url}/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    parse_prometheus(&text)
        .get(&format!("{family}_total{{reason=\"{reason}\"}}"))
        .copied()
        .unwrap_or_else(|| panic!("no {family} {reason} in {text}"))
}

/// 130 connections declaring a 1 MiB body each and sending one byte of it hold 130 bytes
/// of the budget, not 130 MiB: what is declared costs nothing until it is sent, and the
/// victim is served meanwhile.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bodies_declared_but_not_sent_hold_nothing() {
    let stack = Stack::start(Setup::default()).await;
    let head = "POST /api/v1/ingest HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\n\
                content-length: 1048576\r\n\r\n{";
    let mut held = Vec::new();
    for _ in 0..130 {
        let mut stream = connect_from(ATTACKER, &stack.gateway_url).await;
        stream.write_all(head.as_bytes()).await.unwrap();
        held.push(stream);
    }
    let used = until_used(&stack, 130).await;
    assert!(
        used < 1024 * 1024,
        "declared bodies hold {used} bytes of the budget"
    );
    victim_is_served(&stack, 20).await;
    drop(held);
    stack.shutdown().await;
}

/// A client that sends bodies it never finishes holds its share of the budget and no more:
/// its next bytes are refused (503 naming `MEMORY_PER_CLIENT`), while a client from
/// another address is served.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_holds_at_most_its_share_of_the_budget() {
    const SHARE: usize = 2 * 1024 * 1024;
    let (budget, stack) = with_share(8 * 1024 * 1024, SHARE).await;
    // Eight bodies of 1 MiB, each sent up to its last kilobyte: four times the share.
    let chunk = vec![b'x'; 1024 * 1024 - 1024];
    let mut attackers = Vec::new();
    for _ in 0..8 {
        let mut stream = connect_from(ATTACKER, &stack.gateway_url).await;
        let head = "POST /api/v1/ingest HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\n\
                    content-length: 1048576\r\n\r\n";
        stream.write_all(head.as_bytes()).await.unwrap();
        let _ = stream.write_all(&chunk).await;
        attackers.push(stream);
    }
    // At most two such bodies fit the share: the other six are refused.
    let refused = until_refused(&stack.gateway_url, "gateway_refusals", "client_memory", 6.0);
    assert!(
        refused.await >= 6.0,
        "the attacker's bodies were not refused"
    );
    let used = budget.used();
    assert!(used <= SHARE, "the attacker holds {used} bytes");
    // A refused body is read to its end (or for a few seconds) before the answer goes.
    let readers: Vec<_> = attackers
        .into_iter()
        .map(|mut stream| tokio::spawn(async move { raw::read_answer(&mut stream, WITHIN).await }))
        .collect();
    let refusal = async {
        loop {
            for reader in &readers {
                if reader.is_finished() {
                    return;
                }
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    };
    tokio::time::timeout(WITHIN, refusal)
        .await
        .expect("a refusal reached the attacker");
    let mut answers = Vec::new();
    for reader in readers.into_iter().filter(JoinHandle::is_finished) {
        answers.push(reader.await.unwrap());
    }
    assert!(
        answers.iter().all(
            |answer| answer.starts_with("HTTP/1.1 503") && answer.contains("MEMORY_PER_CLIENT")
        ),
        "{answers:?}"
    );
    victim_is_served(&stack, 20).await;
    stack.shutdown().await;
}

/// Feeds a request body, frame by frame.
type BodySender = mpsc::Sender<Result<Frame<Bytes>, Infallible>>;

/// A gRPC call on a raw HTTP/2 request from `local`, whose body is fed through the
/// returned sender; the task ends with the call's `grpc-status` and `grpc-message`.
fn grpc_open(local: &str, base: &str, path: &str) -> (BodySender, JoinHandle<(String, String)>) {
    let mut connector = HttpConnector::new();
    connector.set_local_address(Some(ip(local)));
    let client = Client::builder(TokioExecutor::new())
        .http2_only(true)
        .build(connector);
    let (tx, rx) = mpsc::channel(16);
    let request = http::Request::post(format!("{base}{path}"))
        .header("content-type", "application/grpc")
        .header("te", "trailers")
        .body(StreamBody::new(ReceiverStream::new(rx)))
        .unwrap();
    let call = tokio::spawn(async move {
        let response = match client.request(request).await {
            Ok(response) => response,
            Err(err) => return ("error".to_owned(), err.to_string()),
        };
        let mut headers = response.headers().clone();
        match response.into_body().collect().await {
            Ok(collected) => {
                if let Some(trailers) = collected.trailers() {
                    headers.extend(trailers.clone());
                }
            }
            Err(err) => return ("error".to_owned(), err.to_string()),
        }
        let get = |name: &str| {
            headers
                .get(name)
                .map(|v| v.to_str().unwrap().replace("%20", " "))
                .unwrap_or_default()
        };
        (get("grpc-status"), get("grpc-message"))
    });
    (tx, call)
}

fn data(bytes: Vec<u8>) -> Result<Frame<Bytes>, Infallible> {
    Ok(Frame::data(Bytes::from(bytes)))
}

/// The prefix of a gRPC message of `len` bytes and its first `sent` bytes.
fn partial_message(len: usize, sent: usize) -> Vec<u8> {
    let mut out = vec![0];
    out.extend_from_slice(&(len as u32).to_be_bytes());
    out.extend(std::iter::repeat_n(0x0a, sent));
    out
}

/// gRPC messages are charged as their bytes arrive, whatever their prefix declares, and
/// one address holds at most its share: its further calls fail `RESOURCE_EXHAUSTED`
/// naming `MEMORY_PER_CLIENT`, while a client from another address is served.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grpc_messages_are_charged_as_they_arrive_within_the_clients_share() {
    const SHARE: usize = 4 * 1024 * 1024;
    let (budget, stack) = with_share(16 * 1024 * 1024, SHARE).await;
    // Each call declares 8 MiB and sends 1 MiB of it.
    let mut calls = Vec::new();
    for _ in 0..8 {
        let (tx, call) = grpc_open(ATTACKER, &stack.grpc_url, "/diplom.v1.IngestService/Ingest");
        tx.send(data(partial_message(8 << 20, 1 << 20)))
            .await
            .unwrap();
        calls.push((tx, call));
    }
    // Three such messages fit the share, the fourth only in part: five are refused.
    let used = until_used(&stack, 3 << 20).await;
    let refused = until_refused(&stack.grpc_url, "grpc_refusals", "client_memory", 5.0);
    assert!(
        refused.await >= 5.0,
        "the attacker's calls were not refused"
    );
    let used_then = budget.used() as u64;
    assert!(
        used >= 3 << 20 && used_then <= SHARE as u64,
        "the calls hold {used} then {used_then} bytes"
    );
    let mut exhausted = 0;
    for (_, call) in &mut calls {
        if call.is_finished() {
            let (status, message) = call.await.unwrap();
            assert_eq!(status, "8", "{message}");
            assert!(message.contains("MEMORY_PER_CLIENT"), "{message}");
            exhausted += 1;
        }
    }
    assert!(exhausted >= 1, "no refusal reached the attacker");
    let mut victim = tonic::transport::Endpoint::from_shared(stack.grpc_url.clone())
        .unwrap()
        .local_address(Some(ip(VICTIM)))
        .connect()
        .await
        .map(system::proto::ingest_service_client::IngestServiceClient::new)
        .unwrap();
    for i in 0..10 {
        let request = IngestRequest {
            source: "victim".into(),
            data: format!("{i}").into_bytes(),
            ..IngestRequest::default()
        };
        victim.ingest(request).await.unwrap();
    }
    drop(calls);
    stack.shutdown().await;
}

/// Short deadlines, so that the cases take seconds; pings keep live connections busy.
fn quick_limits() -> HttpLimits {
    HttpLimits {
        body_timeout: Duration::from_millis(500),
        idle_timeout: Duration::from_secs(1),
        keep_alive_interval: Duration::from_millis(300),
        keep_alive_timeout: Duration::from_secs(1),
        ..HttpLimits::default()
    }
}

/// Every unary call, health and reflection included, has a body deadline: a message begun
/// and not finished, or a request that never ends, is answered `DEADLINE_EXCEEDED`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_grpc_call_has_a_body_deadline() {
    let budget = Budget::process_default();
    let stack = Stack::start(shared_clients(
        &budget,
        ClientLimits::default(),
        quick_limits(),
    ))
    .await;
    let paths = [
        "/diplom.v1.IngestService/Ingest",
        "/grpc.health.v1.Health/Check",
        "/grpc.reflection.v1.ServerReflection/ServerReflectionInfo",
        "/diplom.v1.IngestService/IngestStream",
    ];
    for path in paths {
        // Half a message, then nothing.
        let (tx, call) = grpc_open(ATTACKER, &stack.grpc_url, path);
        tx.send(data(partial_message(100, 10))).await.unwrap();
        let (status, message) = tokio::time::timeout(WITHIN, call).await.unwrap().unwrap();
        assert_eq!(status, "4", "{path}: {message}");
        drop(tx);
    }
    for path in &paths[..2] {
        // A whole message, and a request that never ends.
        let (tx, call) = grpc_open(ATTACKER, &stack.grpc_url, path);
        let message = IngestRequest {
            source: "s".into(),
            ..IngestRequest::default()
        };
        tx.send(data(grpc_frame(&message.encode_to_vec())))
            .await
            .unwrap();
        let (status, message) = tokio::time::timeout(WITHIN, call).await.unwrap().unwrap();
        assert_eq!(status, "4", "{path}: {message}");
        drop(tx);
    }
    let timeouts = refusals(&stack.grpc_url, "grpc_refusals", "body_timeout").await;
    assert!(timeouts >= 5.0, "{timeouts}");
    stack.shutdown().await;
}

/// A health watch or a reflection stream that carries nothing is ended after the idle
/// time, and a health request far larger than any real one is refused at once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn streams_that_carry_nothing_end_and_control_calls_are_small() {
    let budget = Budget::process_default();
    let stack = Stack::start(shared_clients(
        &budget,
        ClientLimits::default(),
        quick_limits(),
    ))
    .await;
    // Watch the whole server: one SERVING message, then nothing.
    let (tx, watch) = grpc_open(ATTACKER, &stack.grpc_url, "/grpc.health.v1.Health/Watch");
    tx.send(data(grpc_frame(&[]))).await.unwrap();
    drop(tx);
    let (status, message) = tokio::time::timeout(WITHIN, watch).await.unwrap().unwrap();
    assert_eq!(status, "4", "{message}");
    // A reflection stream that sends no request at all.
    let (tx, reflection) = grpc_open(
        ATTACKER,
        &stack.grpc_url,
        "/grpc.reflection.v1.ServerReflection/ServerReflectionInfo",
    );
    let (status, message) = tokio::time::timeout(WITHIN, reflection)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(status, "4", "{message}");
    drop(tx);
    assert!(refusals(&stack.grpc_url, "grpc_refusals", "stream_idle").await >= 2.0);
    // 4 MiB declared for a health check: refused before it is read.
    let (tx, check) = grpc_open(ATTACKER, &stack.grpc_url, "/grpc.health.v1.Health/Check");
    tx.send(data(partial_message(4 << 20, 16))).await.unwrap();
    let (status, message) = tokio::time::timeout(WITHIN, check).await.unwrap().unwrap();
    assert_eq!(status, "8", "{message}");
    drop(tx);
    assert!(refusals(&stack.grpc_url, "grpc_refusals", "too_large").await >= 1.0);
    stack.shutdown().await;
}

/// A connection that sent the HTTP/2 preface and its settings and nothing more is told to
/// go away and closed within seconds on every port, not kept for the idle time.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connection_that_only_greets_is_closed_soon_on_every_port() {
    let stack = Stack::start(Setup::default()).await;
    for port in [&stack.gateway_url, &stack.grpc_url, &stack.processor_url] {
        let mut stream = raw::connect(port).await;
        let seen = raw::exchange(&mut stream, &raw::preface(), WITHIN, true, |seen| {
            seen.closed
        })
        .await;
        assert!(seen.closed, "{port} kept a connection that only greeted");
    }
    assert!(refusals(&stack.gateway_url, "gateway_refusals", "first_request").await >= 1.0);
    stack.shutdown().await;
}

/// The processor drops a connection that sends nothing as soon as the front doors do,
/// although it keeps idle keep-alive connections of its clients' pools much longer.
#[tokio::test]
async fn the_processor_drops_a_silent_connection_as_the_front_doors_do() {
    let stack = Stack::start(Setup::default()).await;
    let mut stream = raw::connect(&stack.processor_url).await;
    assert!(
        raw::closed_within(&mut stream, WITHIN).await,
        "the processor kept a silent connection"
    );
    let text = reqwest::get(format!("{}/metrics", stack.processor_url))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        text.contains("processor_refusals_total{reason=\"first_request\"} 1"),
        "{text}"
    );
    stack.shutdown().await;
}

/// One address keeps at most its share of connections across the front doors' ports:
/// one more is closed at once, counted on `/metrics`, while another address connects
/// and is served.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_address_keeps_at_most_its_share_of_connections() {
    let budget = Budget::process_default();
    let limits = ClientLimits {
        connections: 8,
        ..ClientLimits::default()
    };
    let stack = Stack::start(shared_clients(&budget, limits, HttpLimits::default())).await;
    // Eight connections, each with a request under way (whose body never comes).
    let mut held = Vec::new();
    for i in 0..8 {
        let url = if i % 2 == 0 {
            &stack.gateway_url
        } else {
            &stack.grpc_url
        };
        let mut stream = connect_from(ATTACKER, url).await;
        let mut opening = raw::preface();
        opening.extend(raw::post_headers(1, "/api/v1/ingest", "application/json"));
        stream.write_all(&opening).await.unwrap();
        held.push(stream);
    }
    // Each port has its own accept loop: wait until both took their four.
    let metrics = reqwest::Client::builder()
        .http2_prior_knowledge()
        .build()
        .unwrap();
    for (url, family) in [
        (&stack.gateway_url, "gateway_connections_accepted_total"),
        (&stack.grpc_url, "grpc_connections_accepted_total"),
    ] {
        let deadline = tokio::time::Instant::now() + WITHIN;
        loop {
            let text = metrics
                .get(format!("{url}/metrics"))
                .send()
                .await
                .unwrap()
                .text()
                .await
                .unwrap();
            // The four held, and this client's own connection.
            if parse_prometheus(&text).get(family).copied().unwrap_or(0.0) >= 5.0
                || tokio::time::Instant::now() > deadline
            {
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
    for url in [&stack.gateway_url, &stack.grpc_url] {
        let mut one_more = connect_from(ATTACKER, url).await;
        let _ = one_more.write_all(&raw::preface()).await;
        assert!(
            raw::closed_within(&mut one_more, WITHIN).await,
            "a ninth connection was kept"
        );
    }
    victim_is_served(&stack, 5).await;
    let gateway = refusals(&stack.gateway_url, "gateway_refusals", "client_connections").await;
    let grpc = refusals(&stack.grpc_url, "grpc_refusals", "client_connections").await;
    assert_eq!((gateway, grpc), (1.0, 1.0));
    drop(held);
    stack.shutdown().await;
}
