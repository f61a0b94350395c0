//! Hostile clients against real sockets: input that must be refused with its documented
//! status, connections that send nothing or too little, floods of HTTP/2 resets, batches
//! and streams at and over the limits. Every case ends the same way: the servers still
//! answer, and every message answered 202 / OK was processed exactly once (and nothing
//! else was).

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
    time::Duration,
};
use system::FrontDoorConfig;

use prost::Message as _;
use reqwest::{Client, StatusCode, header};
use serde_json::{Value, json};
use system::{
    client::{ForwarderConfig, HopProtocol},
    codec::MAX_BATCH_MESSAGES,
    gateway::GatewayConfig,
    grpc::GrpcConfig,
    processor::ProcessorConfig,
    proto::{BatchOutcome, DataMessage, DataMessageBatch, IngestRequest, Outcome},
    server::HttpLimits,
    validate::{MAX_METADATA_ENTRIES, MAX_SOURCE_BYTES},
};
use tokio::io::AsyncWriteExt;
use tonic::Code;

use crate::{
    client::grpc_call,
    nats_server::NatsServer,
    raw,
    stack::{Setup, Stack},
    support::assert_error,
};

/// Generous: the deadlines under test are a second or two, and a loaded machine is slow.
const WITHIN: Duration = Duration::from_secs(20);

/// A recording stack and the ledger of what it accepted.
struct Hostile {
    stack: Stack,
    client: Client,
    /// Ids answered 202 / OK.
    accepted: Mutex<Vec<String>>,
    /// Messages of gRPC streams answered OK (a stream's answer names only its last id).
    accepted_in_streams: Mutex<u64>,
}

impl Hostile {
    async fn start(setup: Setup) -> Hostile {
        Hostile {
            stack: Stack::start_recording(setup).await,
            client: Client::new(),
            accepted: Mutex::default(),
            accepted_in_streams: Mutex::default(),
        }
    }

    fn gateway(&self) -> String {
        format!("{}/api/v1/ingest", self.stack.gateway_url)
    }

    fn enqueue(&self) -> String {
        format!("{}/enqueue", self.stack.processor_url)
    }

    /// POSTs `body` to `url`; a 202 is entered in the ledger.
    async fn post(&self, url: &str, content_type: &str, body: Vec<u8>) -> reqwest::Response {
        let response = self
            .client
            .post(url)
            .header(header::CONTENT_TYPE, content_type)
            .body(body)
            .send()
            .await
            .unwrap();
        if response.status() == StatusCode::ACCEPTED {
            let answer: Value = response.json().await.unwrap();
            let id = answer["messageId"].as_str().unwrap().to_owned();
            self.accepted.lock().unwrap().push(id);
            panic!("accepted a message the case expected to be refused: {answer}");
        }
        response
    }

    async fn post_json(&self, url: &str, body: &str) -> reqwest::Response {
        self.post(url, "application/json", body.as_bytes().to_vec())
            .await
    }

    /// Enters a batch's accepted messages in the ledger.
    fn note_batch(&self, outcome: &BatchOutcome) {
        let mut accepted = self.accepted.lock().unwrap();
        for one in &outcome.outcomes {
            if one.outcome == Outcome::Accepted as i32 {
                accepted.push(one.message_id.clone());
            }
        }
    }

    /// A valid message through every door is still accepted; then the stack shuts down
    /// and every accepted message was processed exactly once.
    async fn finish(self) {
        let h2c = Client::builder().http2_prior_knowledge().build().unwrap();
        let still = [
            (
                &self.client,
                self.gateway(),
                r#"{"source": "after", "data": "x"}"#,
            ),
            (&h2c, self.gateway(), r#"{"source": "after", "data": "x"}"#),
            (
                &self.client,
                self.enqueue(),
                r#"{"source": "after", "payload": "aGk="}"#,
            ),
        ];
        for (client, url, body) in still {
            let id = accepted_id(client, url, body.to_owned()).await;
            self.accepted.lock().unwrap().push(id);
        }
        let answer = self
            .stack
            .grpc_client()
            .await
            .ingest(request("after", b"still here"))
            .await
            .unwrap()
            .into_inner();
        self.accepted.lock().unwrap().push(answer.message_id);

        let seen = Arc::clone(&self.stack.seen);
        self.stack.shutdown().await;
        let seen = seen.lock().unwrap();
        let mut times: HashMap<&str, usize> = HashMap::new();
        for msg in seen.iter() {
            *times.entry(msg.id.as_str()).or_default() += 1;
        }
        let twice: Vec<_> = times.iter().filter(|(_, n)| **n > 1).collect();
        assert!(twice.is_empty(), "processed more than once: {twice:?}");
        let accepted = self.accepted.into_inner().unwrap();
        let lost: Vec<_> = accepted
            .iter()
            .filter(|id| !times.contains_key(id.as_str()))
            .collect();
        assert!(lost.is_empty(), "accepted but never processed: {lost:?}");
        let in_streams = self.accepted_in_streams.into_inner().unwrap();
        assert_eq!(
            seen.len() as u64,
            accepted.len() as u64 + in_streams,
            "processed messages that were never accepted"
        );
    }
}

/// POSTs a JSON `body` that must be accepted; returns the id it was accepted under.
async fn accepted_id(client: &Client, url: String, body: String) -> String {
    let response = client
        .post(url)
        .header(header::CONTENT_TYPE, "application/json")
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::ACCEPTED);
    let answer: Value = response.json().await.unwrap();
    answer["messageId"].as_str().unwrap().to_owned()
}

fn request(source: &str, data: &[u8]) -> IngestRequest {
    IngestRequest {
        source: source.to_owned(),
        data: data.to_vec(),
        metadata: HashMap::new(),
        id: String::new(),
    }
}

fn with_metadata(source: &str, pairs: &[(&str, &str)]) -> IngestRequest {
    IngestRequest {
        metadata: pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect(),
        ..request(source, b"x")
    }
}

/// Every string a client chooses is refused with a control character in it, at the
/// gateway (JSON and protobuf), the gRPC server (unary and stream) and the processor; the
/// payload may hold any bytes.
#[tokio::test]
async fn control_characters_in_any_string_field_are_refused_at_every_door() {
    let hostile = Hostile::start(Setup::default()).await;
    let gateway = hostile.gateway();
    for body in [
        json!({"source": "a\r\nb", "data": "x"}),
        json!({"source": "s", "data": "x", "metadata": {"k\n": "v"}}),
        json!({"source": "s", "data": "x", "metadata": {"k": "v\u{0}"}}),
        json!({"source": "s\u{85}", "data": "x"}),
    ] {
        let response = hostile.post_json(&gateway, &body.to_string()).await;
        assert_error(response, StatusCode::BAD_REQUEST, "control characters").await;
    }
    let protobuf = with_metadata("s", &[("k", "line\nbreak")]).encode_to_vec();
    let response = hostile
        .post(&gateway, "application/x-protobuf", protobuf)
        .await;
    assert_error(response, StatusCode::BAD_REQUEST, "control characters").await;

    let processor = hostile.enqueue();
    for (body, mentions) in [
        (json!({"source": "s", "id": "a\r\nb"}), "`id`"),
        (json!({"source": "s", "id": "has space"}), "`id`"),
        (json!({"source": "s\t"}), "control characters"),
        (
            json!({"source": "s", "metadata": {"k": "\u{1b}[31m"}}),
            "control",
        ),
    ] {
        let response = hostile.post_json(&processor, &body.to_string()).await;
        assert_error(response, StatusCode::BAD_REQUEST, mentions).await;
    }
    let batch = DataMessageBatch {
        messages: vec![
            DataMessage {
                source: "good".into(),
                payload: b"\r\n\0 any bytes".to_vec(),
                ..DataMessage::default()
            },
            DataMessage {
                source: "bad".into(),
                id: "x\ny".into(),
                ..DataMessage::default()
            },
        ],
    };
    let response = hostile
        .client
        .post(format!("{processor}/batch"))
        .header(header::CONTENT_TYPE, "application/x-protobuf")
        .body(batch.encode_to_vec())
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let outcome = BatchOutcome::decode(response.bytes().await.unwrap()).unwrap();
    let kinds: Vec<i32> = outcome.outcomes.iter().map(|o| o.outcome).collect();
    assert_eq!(
        kinds,
        [Outcome::Accepted as i32, Outcome::Invalid as i32],
        "{outcome:?}"
    );
    hostile.note_batch(&outcome);

    let mut grpc = hostile.stack.grpc_client().await;
    for bad in [
        request("a\rb", b"x"),
        with_metadata("s", &[("k\u{7f}", "v")]),
        with_metadata("s", &[("k", "\u{2}")]),
    ] {
        let err = grpc.ingest(bad).await.unwrap_err();
        assert_eq!(err.code(), Code::InvalidArgument, "{err:?}");
        assert!(err.message().contains("control characters"), "{err:?}");
    }
    let err = grpc
        .ingest_stream(tokio_stream::iter([
            request("ok", b"\n\0"),
            request("bad\n", b"x"),
        ]))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument, "{err:?}");
    assert!(
        err.message()
            .contains("1 messages of this stream were accepted")
    );
    *hostile.accepted_in_streams.lock().unwrap() += 1;
    hostile.finish().await;
}

/// Bytes that are not UTF-8, and JSON that names a field or a metadata key twice, are 400.
#[tokio::test]
async fn invalid_utf8_and_repeated_keys_are_refused() {
    let hostile = Hostile::start(Setup::default()).await;
    let gateway = hostile.gateway();
    let mut not_utf8 = br#"{"source": "s", "data": ""#.to_vec();
    not_utf8.extend_from_slice(&[0xff, 0xfe, b'"', b'}']);
    let response = hostile
        .post(&gateway, "application/json", not_utf8.clone())
        .await;
    assert_error(response, StatusCode::BAD_REQUEST, "invalid JSON").await;
    // Field 1 (source) of an IngestRequest, holding two bytes that are not UTF-8.
    let response = hostile
        .post(
            &gateway,
            "application/x-protobuf",
            vec![0x0a, 0x02, 0xc3, 0x28],
        )
        .await;
    assert_error(response, StatusCode::BAD_REQUEST, "invalid protobuf").await;
    let processor = hostile.enqueue();
    let response = hostile.post(&processor, "application/json", not_utf8).await;
    assert_error(response, StatusCode::BAD_REQUEST, "invalid JSON").await;
    let response = hostile
        .post(&processor, "application/x-protobuf", vec![0x1a, 0x01, 0xff])
        .await;
    assert_error(response, StatusCode::BAD_REQUEST, "invalid protobuf").await;

    // The same over gRPC, framed by hand (a client library would not send it).
    for method in ["Ingest", "IngestStream"] {
        let frame = vec![0, 0, 0, 0, 4, 0x0a, 0x02, 0xc3, 0x28];
        let status = grpc_call(&hostile.stack.grpc_url, method, frame).await;
        assert_eq!(status.0, "3", "{method}: {status:?}");
    }
    for (url, body, mentions) in [
        (
            &gateway,
            r#"{"source": "a", "source": "b", "data": "x"}"#,
            "duplicate field",
        ),
        (
            &gateway,
            r#"{"source": "a", "data": "x", "metadata": {"k": "1", "k": "2"}}"#,
            "metadata key repeated",
        ),
        (
            &processor,
            r#"{"source": "a", "source": "b"}"#,
            "duplicate field",
        ),
    ] {
        let response = hostile.post_json(url, body).await;
        assert_error(response, StatusCode::BAD_REQUEST, mentions).await;
    }
    hostile.finish().await;
}

/// 100,000 metadata entries fit in the body limit but not in a message; so do strings
/// longer than their limits.
#[tokio::test]
async fn metadata_floods_and_long_strings_are_refused() {
    let hostile = Hostile::start(Setup {
        gateway: Box::new(|forwarder| GatewayConfig {
            body_limit: 4 << 20,
            ..GatewayConfig::new(forwarder)
        }),
        ..Setup::default()
    })
    .await;
    let flood: HashMap<String, String> = (0..100_000)
        .map(|i| (format!("{i:x}"), String::new()))
        .collect();
    let entries = format!("at most {MAX_METADATA_ENTRIES}");
    let body = json!({"source": "s", "data": "x", "metadata": flood}).to_string();
    let response = hostile.post_json(&hostile.gateway(), &body).await;
    assert_error(response, StatusCode::BAD_REQUEST, &entries).await;
    let protobuf = IngestRequest {
        metadata: flood.clone(),
        ..request("s", b"x")
    }
    .encode_to_vec();
    assert!(protobuf.len() < 1 << 20, "inside the default body limit");
    let response = hostile
        .post(&hostile.gateway(), "application/x-protobuf", protobuf)
        .await;
    assert_error(response, StatusCode::BAD_REQUEST, &entries).await;
    let body = json!({"source": "s", "metadata": flood}).to_string();
    let response = hostile.post_json(&hostile.enqueue(), &body).await;
    assert_error(response, StatusCode::BAD_REQUEST, &entries).await;
    let err = hostile
        .stack
        .grpc_client()
        .await
        .ingest(IngestRequest {
            metadata: flood,
            ..request("s", b"x")
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument, "{err:?}");

    let long = "x".repeat(MAX_SOURCE_BYTES + 1);
    for body in [
        json!({"source": long, "data": "x"}),
        json!({"source": "s", "data": "x", "metadata": {long.repeat(4): "v"}}),
        json!({"source": "s", "data": "x", "metadata": {"k": long.repeat(8)}}),
    ] {
        let response = hostile
            .post_json(&hostile.gateway(), &body.to_string())
            .await;
        assert_error(response, StatusCode::BAD_REQUEST, "longer than").await;
    }
    hostile.finish().await;
}

/// The processor's hop limit, smaller than the default so that batches of a few large
/// messages pass it.
const HOP_LIMIT: usize = 2 << 20;

fn small_hop(hop: HopProtocol) -> Setup {
    Setup {
        processor: ProcessorConfig {
            body_limit: HOP_LIMIT,
            ..ProcessorConfig::default()
        },
        forwarder: Box::new(move |url| ForwarderConfig {
            max_request_bytes: HOP_LIMIT,
            protocol: hop,
            batch_unary: true,
            ..ForwarderConfig::new(url)
        }),
        gateway: Box::new(|forwarder| GatewayConfig {
            body_limit: 4 << 20,
            ..GatewayConfig::new(forwarder)
        }),
        ..Setup::default()
    }
}

/// A stream of 64 messages of 300 KB (one hop batch by count, several hop limits by bytes)
/// and 32 concurrent large POSTs coalesced by the batcher are all accepted: batches are cut
/// by bytes. A message that fits no hop request is refused at the door.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn streams_and_batches_of_large_messages_are_cut_to_fit_the_hop() {
    for hop in [HopProtocol::Http1, HopProtocol::H2c] {
        let hostile = Hostile::start(small_hop(hop)).await;
        let messages: Vec<_> = (0..64)
            .map(|i| request(&format!("large-{i}"), &vec![b'x'; 300_000]))
            .collect();
        let answer = hostile
            .stack
            .grpc_client()
            .await
            .ingest_stream(tokio_stream::iter(messages))
            .await
            .unwrap()
            .into_inner();
        assert_eq!(answer.accepted, 64);
        *hostile.accepted_in_streams.lock().unwrap() += 64;

        let data = "y".repeat(900_000);
        let posts: Vec<_> = (0..32)
            .map(|i| {
                let client = hostile.client.clone();
                let body = json!({"source": format!("post-{i}"), "data": data}).to_string();
                let url = hostile.gateway();
                tokio::spawn(async move { accepted_id(&client, url, body).await })
            })
            .collect();
        for post in posts {
            let id = post.await.unwrap();
            hostile.accepted.lock().unwrap().push(id);
        }

        let huge = "z".repeat(HOP_LIMIT);
        let body = json!({"source": "huge", "data": huge}).to_string();
        let response = hostile.post_json(&hostile.gateway(), &body).await;
        assert_error(
            response,
            StatusCode::PAYLOAD_TOO_LARGE,
            "PROCESSOR_BODY_LIMIT",
        )
        .await;
        let err = hostile
            .stack
            .grpc_client()
            .await
            .ingest_stream(tokio_stream::iter([
                request("fits", b"x"),
                request("huge", huge.as_bytes()),
            ]))
            .await
            .unwrap_err();
        assert_eq!(err.code(), Code::ResourceExhausted, "{err:?}");
        assert!(
            err.message()
                .contains("1 messages of this stream were accepted")
        );
        *hostile.accepted_in_streams.lock().unwrap() += 1;
        hostile.finish().await;
    }
}

/// A batch request may hold at most `MAX_BATCH_MESSAGES`; more are refused with 413 at
/// once, before they are decoded, in both codecs. A batch at the cap is accepted whole.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn batches_over_the_cap_are_refused_at_once() {
    let hostile = Hostile::start(Setup {
        processor: ProcessorConfig {
            queue_size: 2 * MAX_BATCH_MESSAGES,
            ..ProcessorConfig::default()
        },
        ..Setup::default()
    })
    .await;
    let url = format!("{}/batch", hostile.enqueue());
    let tiny = |n: usize| DataMessageBatch {
        messages: (0..n)
            .map(|_| DataMessage {
                source: "s".into(),
                ..DataMessage::default()
            })
            .collect(),
    };
    // Three million messages in 15 MB: this took minutes and a gigabyte when every one
    // was decoded and answered.
    let packed = tiny(3_000_000).encode_to_vec();
    assert!(packed.len() < 16 << 20, "inside the processor's body limit");
    let over = [
        ("application/x-protobuf", packed),
        (
            "application/x-protobuf",
            tiny(MAX_BATCH_MESSAGES + 1).encode_to_vec(),
        ),
        (
            "application/json",
            serde_json::to_vec(&tiny(MAX_BATCH_MESSAGES + 1)).unwrap(),
        ),
    ];
    for (content_type, body) in over {
        let response = tokio::time::timeout(WITHIN, hostile.post(&url, content_type, body))
            .await
            .expect("refused at once");
        assert_error(response, StatusCode::PAYLOAD_TOO_LARGE, "at most").await;
    }
    let response = hostile
        .client
        .post(&url)
        .header(header::CONTENT_TYPE, "application/x-protobuf")
        .body(tiny(MAX_BATCH_MESSAGES).encode_to_vec())
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let outcome = BatchOutcome::decode(response.bytes().await.unwrap()).unwrap();
    assert_eq!(outcome.accepted as usize, MAX_BATCH_MESSAGES);
    hostile.note_batch(&outcome);
    hostile.finish().await;
}

/// Short deadlines, so that the cases below take seconds.
fn quick_limits(header_read_timeout: Duration) -> HttpLimits {
    HttpLimits {
        header_read_timeout,
        idle_timeout: Duration::from_secs(1),
        body_timeout: Duration::from_millis(500),
        keep_alive_interval: Duration::from_millis(300),
        keep_alive_timeout: Duration::from_secs(1),
        ..HttpLimits::default()
    }
}

fn quick() -> Setup {
    Setup {
        processor: ProcessorConfig {
            limits: quick_limits(Duration::from_secs(1)),
            ..ProcessorConfig::default()
        },
        gateway: Box::new(|forwarder| {
            GatewayConfig::from_front(FrontDoorConfig {
                limits: quick_limits(HttpLimits::default().header_read_timeout),
                ..FrontDoorConfig::new(forwarder)
            })
        }),
        grpc: Box::new(|forwarder| {
            GrpcConfig::from_front(FrontDoorConfig {
                limits: quick_limits(HttpLimits::default().header_read_timeout),
                ..FrontDoorConfig::new(forwarder)
            })
        }),
        ..Setup::default()
    }
}

/// A connection that sends nothing, or stops in the middle of protocol detection, is
/// dropped after the header deadline (2 s by default; the processor's is set to 1 s here, as
/// its default waits as long as its clients' pools keep idle connections) on every port,
/// long before the idle deadline.
#[tokio::test]
async fn silent_connections_are_dropped_at_the_header_deadline_on_every_port() {
    let hostile = Hostile::start(Setup {
        processor: ProcessorConfig {
            limits: HttpLimits {
                header_read_timeout: Duration::from_secs(1),
                ..HttpLimits::default()
            },
            ..ProcessorConfig::default()
        },
        ..Setup::default()
    })
    .await;
    let ports = [
        hostile.stack.gateway_url.clone(),
        hostile.stack.grpc_url.clone(),
        hostile.stack.processor_url.clone(),
    ];
    for port in &ports {
        for sent in [&b""[..], b"P", b"PRI * HTTP/2.0\r\n"] {
            let mut stream = raw::connect(port).await;
            stream.write_all(sent).await.unwrap();
            assert!(
                raw::closed_within(&mut stream, WITHIN).await,
                "{port} kept a connection that sent {sent:?}"
            );
        }
    }
    hostile.finish().await;
}

/// HTTP/2 peers are pinged; one that does not answer is dropped, and one without an open
/// stream is told to go away once idle.
#[tokio::test]
async fn idle_http2_connections_are_pinged_and_closed_on_every_port() {
    let hostile = Hostile::start(quick()).await;
    let ports = [
        hostile.stack.gateway_url.clone(),
        hostile.stack.grpc_url.clone(),
        hostile.stack.processor_url.clone(),
    ];
    for port in &ports {
        // A peer that does not answer pings is dropped: no traffic for the idle time.
        let mut stream = raw::connect(port).await;
        let seen = raw::exchange(&mut stream, &raw::preface(), WITHIN, false, |seen| {
            seen.closed
        })
        .await;
        assert!(seen.pinged && seen.closed, "{port}: {seen:?}");
        // A live peer without streams is told to go away when it has been idle.
        let mut stream = raw::connect(port).await;
        let seen = raw::exchange(&mut stream, &raw::preface(), WITHIN, true, |seen| {
            seen.closed
        })
        .await;
        assert!(
            seen.goaway == Some(raw::NO_ERROR) && seen.closed,
            "{port} kept an idle HTTP/2 connection: {seen:?}"
        );
    }
    hostile.finish().await;
}

/// A gRPC stream that keeps sending is not cut by the idle rules, however long it runs;
/// one that stops sending is ended with DEADLINE_EXCEEDED.
#[tokio::test]
async fn busy_streams_outlive_the_idle_deadline_and_silent_ones_do_not() {
    let hostile = Hostile::start(quick()).await;
    let mut grpc = hostile.stack.grpc_client().await;
    let slow = paced(8, Duration::from_millis(300));
    let answer = grpc.ingest_stream(slow).await.unwrap().into_inner();
    assert_eq!(answer.accepted, 8);
    *hostile.accepted_in_streams.lock().unwrap() += 8;
    let stalled = paced(1, Duration::from_secs(3));
    let err = grpc.ingest_stream(stalled).await.unwrap_err();
    assert_eq!(err.code(), Code::DeadlineExceeded, "{err:?}");
    assert!(
        err.message()
            .contains("0 messages of this stream were accepted")
    );
    hostile.finish().await;
}

/// `n` messages, each after a pause of `every`.
fn paced(n: usize, every: Duration) -> impl tokio_stream::Stream<Item = IngestRequest> {
    use tokio_stream::StreamExt as _;
    tokio_stream::iter(0..n).then(move |i| async move {
        tokio::time::sleep(every).await;
        request(&format!("slow-{i}"), b"x")
    })
}

/// A request whose body stops arriving is answered 408 once the body deadline passes.
#[tokio::test]
async fn a_body_that_never_finishes_is_408() {
    let hostile = Hostile::start(quick()).await;
    for (url, path) in [
        (&hostile.stack.gateway_url, "/api/v1/ingest"),
        (&hostile.stack.processor_url, "/enqueue"),
    ] {
        let mut stream = raw::connect(url).await;
        let head = format!(
            "POST {path} HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\n\
             content-length: 1000\r\n\r\n{{\"source\": "
        );
        stream.write_all(head.as_bytes()).await.unwrap();
        let answer = raw::read_answer(&mut stream, WITHIN).await;
        assert!(answer.starts_with("HTTP/1.1 408"), "{url}: {answer}");
        assert!(answer.contains(r#"{"error":"#), "{answer}");
    }
    hostile.finish().await;
}

/// Streams opened and reset at once ("rapid reset"), and streams the client makes the
/// server reset ("MadeYouReset": a zero window update on each), end in GOAWAY on both
/// HTTP/2 ports instead of costing the server without bound.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http2_reset_floods_end_in_goaway_on_both_ports() {
    let hostile = Hostile::start(Setup::default()).await;
    let targets = [
        (
            hostile.stack.gateway_url.clone(),
            "/api/v1/ingest",
            "application/json",
        ),
        (
            hostile.stack.grpc_url.clone(),
            "/diplom.v1.IngestService/IngestStream",
            "application/grpc",
        ),
    ];
    for (url, path, content_type) in &targets {
        for flood in ["rapid reset", "server reset"] {
            let mut bytes = raw::preface();
            for i in 0..20_000u32 {
                let stream = 2 * i + 1;
                bytes.extend(raw::post_headers(stream, path, content_type));
                bytes.extend(match flood {
                    "rapid reset" => raw::rst_stream(stream, raw::CANCEL),
                    _ => raw::window_update(stream, 0x7fff_ffff),
                });
            }
            let mut stream = raw::connect(url).await;
            let seen = raw::exchange(&mut stream, &bytes, WITHIN, false, |seen| {
                seen.goaway.is_some()
            })
            .await;
            assert_eq!(
                seen.goaway,
                Some(raw::ENHANCE_YOUR_CALM),
                "{flood} on {url}: {seen:?}"
            );
        }
    }
    hostile.finish().await;
}

/// With the NATS queue the id becomes JetStream's de-duplication header: an id that cannot
/// be one (a line break, a space, too long) is refused with 400 at the edge, in every form,
/// instead of panicking in the client library and resetting the connection.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ids_that_cannot_be_a_nats_header_are_refused() {
    let Some(nats) = NatsServer::for_test("ids_that_cannot_be_a_nats_header_are_refused") else {
        return;
    };
    let processor = crate::nats::start(&nats.url(), |_| {}).await;
    let client = Client::new();
    let long = "x".repeat(200);
    for id in ["a\r\nb", "a b", long.as_str()] {
        let json = json!({"source": "s", "id": id}).to_string();
        let response = client
            .post(format!("{}/enqueue", processor.url))
            .header(header::CONTENT_TYPE, "application/json")
            .body(json)
            .send()
            .await
            .unwrap();
        assert_error(response, StatusCode::BAD_REQUEST, "`id`").await;
        let protobuf = DataMessage {
            id: id.to_owned(),
            source: "s".into(),
            ..DataMessage::default()
        };
        let response = client
            .post(format!("{}/enqueue", processor.url))
            .header(header::CONTENT_TYPE, "application/x-protobuf")
            .body(protobuf.encode_to_vec())
            .send()
            .await
            .unwrap();
        assert_error(response, StatusCode::BAD_REQUEST, "`id`").await;
    }
    let mut batch = crate::nats::messages("good", 0..2);
    batch.insert(
        1,
        DataMessage {
            id: "bad\r\nid".into(),
            source: "s".into(),
            ..DataMessage::default()
        },
    );
    let accepted = crate::nats::post_batch(&client, &processor.url, batch).await;
    assert_eq!(accepted, ["good-0", "good-1"]);
    crate::nats::eventually(WITHIN, "both are processed", || processor.seen().len() == 2).await;
    let mut seen = processor.seen();
    seen.sort();
    assert_eq!(seen, accepted, "each accepted message, once");
    let stats = processor.shutdown().await;
    assert_eq!(stats.workers.processed, 2, "{stats:?}");
}
