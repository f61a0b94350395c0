//! The hop from the front doors to the processor: connection reuse as the processor counts
//! it, codecs, coalescing of concurrent ingests, and the traced client.

use reqwest::{Client, StatusCode, header};
use serde_json::Value;
use system::{
    client::{ClientMode, ForwarderConfig, HopProtocol},
    codec::Codec,
};

use crate::{
    client::{get_json, ingest},
    stack::{Setup, Stack},
};

fn setup(mode: ClientMode, protocol: HopProtocol, codec: Codec) -> Setup {
    Setup {
        forwarder: Box::new(move |url| ForwarderConfig {
            mode,
            protocol,
            codec,
            ..ForwarderConfig::new(url)
        }),
        ..Setup::default()
    }
}

async fn ingest_sequentially(stack: &Stack, n: u64) {
    let client = Client::new();
    for i in 0..n {
        let body = format!(r#"{{"source": "reuse-{i}", "data": "x"}}"#);
        let response = ingest(&client, &stack.gateway_url, &body).await;
        assert_eq!(response.status(), StatusCode::ACCEPTED);
    }
}

/// 1,000 sequential ingests: the pooled client keeps using a handful of connections, the
/// baseline opens one per request, counted where they arrive (the processor) as well as
/// by the client.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pooled_clients_reuse_connections_and_baseline_clients_do_not() {
    const N: u64 = 1000;
    for protocol in [HopProtocol::Http1, HopProtocol::H2c] {
        for mode in [ClientMode::Pooled, ClientMode::Baseline] {
            let stack = Stack::start(setup(mode, protocol, Codec::Json)).await;
            ingest_sequentially(&stack, N).await;
            let gateway: Value = reqwest::get(format!("{}/api/v1/status", stack.gateway_url))
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            let opened_by_client = gateway["gateway"]["forwarder"]["connectionsOpened"]
                .as_u64()
                .unwrap();
            let stats = stack.shutdown().await;
            let label = format!("{mode:?} over {protocol:?}");
            assert_eq!(stats.workers.processed, N, "{label}");
            match mode {
                ClientMode::Pooled => {
                    assert!(
                        stats.connections_accepted <= 5,
                        "{label}: {} connections",
                        stats.connections_accepted
                    );
                    assert!(
                        opened_by_client <= 5,
                        "{label}: client opened {opened_by_client}"
                    );
                }
                ClientMode::Baseline => {
                    assert!(
                        stats.connections_accepted >= N,
                        "{label}: {} connections",
                        stats.connections_accepted
                    );
                    assert!(
                        opened_by_client >= N,
                        "{label}: client opened {opened_by_client}"
                    );
                }
            }
        }
    }
}

/// Every combination of protocol and codec carries messages intact, single and batched.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_protocol_and_codec_carries_messages_intact() {
    for protocol in [HopProtocol::Http1, HopProtocol::H2c] {
        for codec in [Codec::Json, Codec::Protobuf] {
            let stack = Stack::start_recording(setup(ClientMode::Pooled, protocol, codec)).await;
            let response = Client::new()
                .post(format!("{}/api/v1/ingest", stack.gateway_url))
                .header(header::CONTENT_TYPE, "application/json")
                .body(r#"{"source": "codec", "data": "ünïcødé", "metadata": {"a": "b"}}"#)
                .send()
                .await
                .unwrap();
            assert_eq!(response.status(), StatusCode::ACCEPTED);
            let mut grpc = stack.grpc_client().await;
            let stream = (0..10).map(|i| system::proto::IngestRequest {
                source: format!("batch-{i}"),
                data: vec![i as u8, 0xff],
                metadata: Default::default(),
                id: String::new(),
            });
            assert_eq!(
                grpc.ingest_stream(tokio_stream::iter(stream))
                    .await
                    .unwrap()
                    .into_inner()
                    .accepted,
                10
            );
            let stats = stack.processed(11).await;
            assert_eq!(
                (
                    stats["enqueueRequests"].as_u64(),
                    stats["batchRequests"].as_u64()
                ),
                (Some(1), Some(1))
            );
            let seen = stack.seen.lock().unwrap().clone();
            let first = seen.iter().find(|m| m.source == "codec").unwrap();
            assert_eq!(
                first.payload,
                "ünïcødé".as_bytes(),
                "{protocol:?}/{codec:?}"
            );
            assert_eq!(first.metadata["a"], "b");
            let third = seen.iter().find(|m| m.source == "batch-3").unwrap();
            assert_eq!(third.payload, [3, 0xff], "{protocol:?}/{codec:?}");
            stack.shutdown().await;
        }
    }
}

fn batching(max_in_flight: usize) -> Setup {
    Setup {
        forwarder: Box::new(move |url| ForwarderConfig {
            batch_unary: true,
            max_in_flight,
            ..ForwarderConfig::new(url)
        }),
        ..Setup::default()
    }
}

/// With `HOP_BATCH_HTTP` and no linger, a message that finds the hop idle is not held for
/// company: one at a time, every ingest is a hop request of its own, on the same path as
/// without batching.
#[tokio::test]
async fn a_lone_ingest_leaves_at_once_on_its_own() {
    let stack = Stack::start_recording(batching(4)).await;
    ingest_sequentially(&stack, 20).await;
    let stats = stack.processed(20).await;
    assert_eq!(stats["enqueueRequests"], 20, "{stats}");
    assert_eq!(stats["batchRequests"], 0, "{stats}");
    stack.shutdown().await;
}

/// With `HOP_BATCH_HTTP`, ingests that arrive while the hop's batch requests are out share
/// the next one, and each caller still gets its own answer.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_http_ingests_are_coalesced_when_asked() {
    const N: u64 = 200;
    let stack = Stack::start_recording(batching(1)).await;
    let client = Client::builder().http2_prior_knowledge().build().unwrap();
    let calls: Vec<_> = (0..N)
        .map(|i| {
            let request = client
                .post(format!("{}/api/v1/ingest", stack.gateway_url))
                .header(header::CONTENT_TYPE, "application/json")
                .body(format!(r#"{{"source": "c-{i}", "data": "x"}}"#));
            tokio::spawn(async move {
                let answer: Value = request.send().await.unwrap().json().await.unwrap();
                answer["messageId"].as_str().unwrap().to_owned()
            })
        })
        .collect();
    let mut ids = Vec::new();
    for call in calls {
        ids.push(call.await.unwrap());
    }
    let stats = stack.processed(N).await;
    let requests =
        stats["batchRequests"].as_u64().unwrap() + stats["enqueueRequests"].as_u64().unwrap();
    assert!(
        requests < N / 2,
        "{requests} hop requests for {N} concurrent ingests"
    );
    let mut processed: Vec<String> = stack
        .seen
        .lock()
        .unwrap()
        .iter()
        .map(|m| m.id.clone())
        .collect();
    ids.sort();
    processed.sort();
    assert_eq!(ids, processed, "each caller got the id of its own message");
    stack.shutdown().await;
}

async fn trace(stack: &Stack) -> Value {
    let url = format!("{}/api/v1/trace", stack.gateway_url);
    get_json(&Client::new(), &url, None).await
}

/// The first trace opens a connection and times its connect; the next reuses it. Phases
/// that do not happen (TLS; DNS for an IP address) are null, never invented.
#[tokio::test]
async fn trace_reports_phases_and_reuse() {
    for (protocol, name) in [
        (HopProtocol::Http1, "HTTP/1.1"),
        (HopProtocol::H2c, "HTTP/2"),
    ] {
        let stack = Stack::start(setup(ClientMode::Pooled, protocol, Codec::Json)).await;
        let first = trace(&stack).await;
        assert_eq!(first["success"], true, "{first}");
        assert_eq!(first["connection_reused"], false);
        assert_eq!(first["protocol"], name);
        let latency = &first["latency"];
        for field in [
            "dns_lookup",
            "tcp_connection",
            "tls_handshake",
            "server_processing",
            "total",
        ] {
            assert!(latency.get(field).is_some(), "{field} missing in {first}");
        }
        assert!(latency["tcp_connection"].as_f64().unwrap() > 0.0);
        assert!(latency["tls_handshake"].is_null(), "plain HTTP has no TLS");
        assert!(
            latency["dns_lookup"].is_null(),
            "an IP address needs no lookup"
        );
        assert!(latency["server_processing"].as_f64().unwrap() > 0.0);
        assert!(latency["total"].as_f64().unwrap() > 0.0);

        let second = trace(&stack).await;
        assert_eq!(second["connection_reused"], true, "{second}");
        assert!(second["latency"]["tcp_connection"].is_null());
        assert!(second["latency"]["dns_lookup"].is_null());
        assert!(second["latency"]["total"].as_f64().unwrap() > 0.0);
        stack.shutdown().await;
    }
}

/// A host name is resolved, and the lookup is timed.
#[tokio::test]
async fn trace_times_the_dns_lookup_of_a_host_name() {
    let stack = Stack::start(Setup {
        forwarder: Box::new(|url| {
            let port = url.port_u16().unwrap();
            ForwarderConfig::new(format!("http://localhost:{port}").parse().unwrap())
        }),
        ..Setup::default()
    })
    .await;
    let first = trace(&stack).await;
    assert_eq!(first["success"], true, "{first}");
    assert!(
        first["latency"]["dns_lookup"].as_f64().unwrap() > 0.0,
        "{first}"
    );
    stack.shutdown().await;
}
