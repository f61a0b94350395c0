//! TLS with real clients: curl with `--cacert` over h2 and HTTP/1.1, a gRPC client over
//! TLS, the hop over TLS (pooled connections reused under load, the handshake in the
//! trace), mutual TLS on the processor, and start-up refusing bad files.

use std::{path::Path, process::Command, sync::Arc, time::Duration};
use system::FrontDoorConfig;

use http::Uri;
use reqwest::{Client, StatusCode, header};
use rustls::pki_types::ServerName;
use serde_json::Value;
use system::{
    client::{ClientMode, ForwarderConfig, HopProtocol},
    grpc::GrpcConfig,
    processor::ProcessorConfig,
    proto::{IngestRequest, ingest_service_client::IngestServiceClient},
    tls::{ALPN_H2, HopTls, Tls, TlsFiles},
};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;

use crate::{
    binary,
    stack::{Setup, Stack},
    support::tool_available,
};

/// A self-signed CA and certificate in a fresh directory, loaded as the system loads them.
fn self_signed(dir: &Path) -> Tls {
    TlsFiles {
        self_signed: Some(dir.to_owned()),
        ..TlsFiles::default()
    }
    .load(&[])
    .unwrap()
}

fn https(url: &Uri) -> Uri {
    url.to_string()
        .replacen("http://", "https://", 1)
        .trim_end_matches('/')
        .parse()
        .unwrap()
}

/// A stack whose processor serves TLS (with `processor_tls`) and whose front doors reach it
/// over `https` with `hop`.
async fn tls_stack(
    processor_tls: Arc<rustls::ServerConfig>,
    hop: HopTls,
    protocol: HopProtocol,
    mode: ClientMode,
) -> Stack {
    tls_stack_coalescing(processor_tls, hop, protocol, mode, true).await
}

async fn tls_stack_coalescing(
    processor_tls: Arc<rustls::ServerConfig>,
    hop: HopTls,
    protocol: HopProtocol,
    mode: ClientMode,
    batch_unary: bool,
) -> Stack {
    Stack::start(Setup {
        processor: ProcessorConfig {
            tls: Some(processor_tls),
            ..ProcessorConfig::default()
        },
        forwarder: Box::new(move |url| ForwarderConfig {
            protocol,
            mode,
            batch_unary,
            tls: Some(hop.clone()),
            ..ForwarderConfig::new(https(&url))
        }),
        ..Setup::default()
    })
    .await
}

async fn status(stack: &Stack) -> Value {
    reqwest::get(format!("{}/api/v1/status", stack.gateway_url))
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

async fn ingest(client: &Client, stack: &Stack, i: u64) -> StatusCode {
    client
        .post(format!("{}/api/v1/ingest", stack.gateway_url))
        .header(header::CONTENT_TYPE, "application/json")
        .body(format!(r#"{{"source": "tls-{i}", "data": "x"}}"#))
        .send()
        .await
        .unwrap()
        .status()
}

/// Under concurrent load the pooled hop keeps its TLS connections: at least 99% of hop
/// requests ride a connection opened earlier, counted by the client and by the processor.
/// Ingests are not coalesced here, so each is a hop request of its own and the ratio does
/// not depend on how the batches fell; at most one connection per concurrent request.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_pooled_hop_over_tls_reuses_its_connections_under_load() {
    const N: u64 = 4000;
    const CONCURRENCY: u64 = 16;
    let dir = tempfile::tempdir().unwrap();
    let tls = self_signed(dir.path());
    for protocol in [HopProtocol::Http1, HopProtocol::H2c] {
        let stack = tls_stack_coalescing(
            tls.processor.clone().unwrap(),
            tls.hop.clone(),
            protocol,
            ClientMode::Pooled,
            false,
        )
        .await;
        let client = Client::new();
        let senders: Vec<_> = (0..CONCURRENCY)
            .map(|task| {
                let (client, url) = (client.clone(), stack.gateway_url.clone());
                tokio::spawn(async move {
                    let mut accepted = 0;
                    for i in (task..N).step_by(CONCURRENCY as usize) {
                        let response = client
                            .post(format!("{url}/api/v1/ingest"))
                            .header(header::CONTENT_TYPE, "application/json")
                            .body(format!(r#"{{"source": "tls-{i}", "data": "x"}}"#))
                            .send()
                            .await
                            .unwrap();
                        assert_eq!(response.status(), StatusCode::ACCEPTED);
                        accepted += 1;
                    }
                    accepted
                })
            })
            .collect();
        let mut accepted = 0;
        for sender in senders {
            accepted += sender.await.unwrap();
        }
        assert_eq!(accepted, N);
        let forwarder = status(&stack).await["gateway"]["forwarder"].clone();
        let opened = forwarder["connectionsOpened"].as_u64().unwrap();
        let requests = forwarder["requests"].as_u64().unwrap();
        let stats = stack.shutdown().await;
        let label = format!("{protocol:?}: {forwarder}");
        assert_eq!(stats.workers.processed, N, "{label}");
        assert!(requests >= N, "{label}");
        assert!(
            opened * 100 <= requests,
            "{label}: {opened} connections for {requests} requests"
        );
        assert!(
            stats.connections_accepted * 100 <= requests,
            "{label}: the processor accepted {} connections",
            stats.connections_accepted
        );
    }
}

/// A new TLS connection shows its handshake and what it agreed on in the trace; a reused
/// one shows neither.
#[tokio::test]
async fn the_trace_times_the_tls_handshake_of_a_new_connection() {
    let dir = tempfile::tempdir().unwrap();
    let tls = self_signed(dir.path());
    for (protocol, alpn, name) in [
        (HopProtocol::Http1, "http/1.1", "HTTP/1.1"),
        (HopProtocol::H2c, "h2", "HTTP/2"),
    ] {
        let stack = tls_stack(
            tls.processor.clone().unwrap(),
            tls.hop.clone(),
            protocol,
            ClientMode::Pooled,
        )
        .await;
        let trace = || async {
            reqwest::get(format!("{}/api/v1/trace", stack.gateway_url))
                .await
                .unwrap()
                .json::<Value>()
                .await
                .unwrap()
        };
        let first = trace().await;
        assert_eq!(first["success"], true, "{first}");
        assert_eq!(first["connection_reused"], false, "{first}");
        assert!(
            first["latency"]["tls_handshake"].as_f64().unwrap() > 0.0,
            "{first}"
        );
        assert!(first["latency"]["tcp_connection"].as_f64().unwrap() > 0.0);
        assert_eq!(first["tls"]["version"], "TLSv1.3", "{first}");
        assert_eq!(first["tls"]["alpn"], alpn, "{first}");
        assert_eq!(first["protocol"], name, "{first}");
        let second = trace().await;
        assert_eq!(second["connection_reused"], true, "{second}");
        assert!(second["latency"]["tls_handshake"].is_null(), "{second}");
        assert!(second["tls"].is_null(), "{second}");
        stack.shutdown().await;
    }
}

/// The baseline client over TLS makes a handshake for every request and still delivers.
#[tokio::test]
async fn the_baseline_client_over_tls_connects_for_every_request() {
    const N: u64 = 50;
    let dir = tempfile::tempdir().unwrap();
    let tls = self_signed(dir.path());
    let stack = tls_stack(
        tls.processor.clone().unwrap(),
        tls.hop.clone(),
        HopProtocol::Http1,
        ClientMode::Baseline,
    )
    .await;
    let client = Client::new();
    for i in 0..N {
        assert_eq!(ingest(&client, &stack, i).await, StatusCode::ACCEPTED);
    }
    let stats = stack.shutdown().await;
    assert_eq!(stats.workers.processed, N);
    assert!(stats.connections_accepted >= N, "{stats:?}");
}

/// With a client CA the processor refuses a client without a certificate (nothing is
/// queued, the ingest fails with an error) and takes one whose certificate that CA signed.
#[tokio::test]
async fn mutual_tls_refuses_a_client_without_a_certificate() {
    let dir = tempfile::tempdir().unwrap();
    let files = TlsFiles {
        self_signed: Some(dir.path().to_owned()),
        client_ca: Some(dir.path().join("ca.pem")),
        ..TlsFiles::default()
    };
    let tls = files.load(&[]).unwrap();
    let processor_tls = tls.processor.clone().unwrap();

    let without_cert = HopTls::trusting(
        &system::tls::read_certs("PROCESSOR_CA", &dir.path().join("ca.pem")).unwrap(),
    );
    let stack = tls_stack(
        Arc::clone(&processor_tls),
        without_cert.clone(),
        HopProtocol::Http1,
        ClientMode::Pooled,
    )
    .await;
    let response = Client::new()
        .post(format!("{}/api/v1/ingest", stack.gateway_url))
        .header(header::CONTENT_TYPE, "application/json")
        .body(r#"{"source": "no-cert", "data": "x"}"#)
        .send()
        .await
        .unwrap();
    let code = response.status();
    let body: Value = response.json().await.unwrap();
    assert!(code.is_server_error(), "{code}: {body}");
    assert!(body["error"].is_string(), "{body}");
    // A raw TLS client without a certificate gets no answer either.
    let processor: Uri = stack.processor_url.parse().unwrap();
    let refused = raw_request(processor.authority().unwrap().as_str(), &without_cert).await;
    assert!(refused.is_err(), "answered: {refused:?}");
    let stats = stack.shutdown().await;
    assert_eq!(stats.workers.processed, 0);

    // The process's own certificate (the hop's in this mode) is signed by that CA.
    let stack = tls_stack(
        processor_tls,
        tls.hop.clone(),
        HopProtocol::Http1,
        ClientMode::Pooled,
    )
    .await;
    let client = Client::new();
    assert_eq!(ingest(&client, &stack, 1).await, StatusCode::ACCEPTED);
    let stats = stack.shutdown().await;
    assert_eq!(stats.workers.processed, 1);
}

/// `GET /health` over TLS on a fresh connection; the answer's status line, or why none came.
async fn raw_request(authority: &str, tls: &HopTls) -> Result<String, String> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let tcp = TcpStream::connect(authority)
        .await
        .map_err(|err| err.to_string())?;
    let connector = TlsConnector::from(tls.with_alpn(b"http/1.1"));
    let name = ServerName::try_from("localhost").unwrap();
    let mut stream = connector
        .connect(name, tcp)
        .await
        .map_err(|err| format!("handshake: {err}"))?;
    stream
        .write_all(b"GET /health HTTP/1.1\r\nhost: localhost\r\nconnection: close\r\n\r\n")
        .await
        .map_err(|err| format!("write: {err}"))?;
    let mut answer = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(30), stream.read_to_end(&mut answer))
        .await
        .map_err(|_| "no answer in 30 s".to_owned())?;
    read.map_err(|err| format!("read: {err}"))?;
    let text = String::from_utf8_lossy(&answer).into_owned();
    if text.starts_with("HTTP/1.1") {
        Ok(text.lines().next().unwrap_or_default().to_owned())
    } else {
        Err(format!("no HTTP answer: {text:?}"))
    }
}

/// A gRPC client over TLS (ALPN `h2`) trusting the self-signed CA.
#[tokio::test]
async fn a_grpc_client_ingests_over_tls() {
    let dir = tempfile::tempdir().unwrap();
    let tls = self_signed(dir.path());
    let grpc_tls = tls.grpc.clone().unwrap();
    let stack = Stack::start(Setup {
        grpc: Box::new(move |forwarder| {
            GrpcConfig::from_front(FrontDoorConfig {
                tls: Some(Arc::clone(&grpc_tls)),
                ..FrontDoorConfig::new(forwarder)
            })
        }),
        ..Setup::default()
    })
    .await;
    let grpc_url: Uri = stack.grpc_url.parse().unwrap();
    let authority = grpc_url.authority().unwrap().to_string();
    let connector = TlsConnector::from(tls.hop.with_alpn(ALPN_H2));
    let channel = tonic::transport::Endpoint::from_shared(format!("https://{authority}"))
        .unwrap()
        .connect_with_connector(tower::service_fn(move |_: Uri| {
            let (connector, authority) = (connector.clone(), authority.clone());
            async move {
                let tcp = TcpStream::connect(authority).await?;
                let name = ServerName::try_from("localhost").unwrap();
                let stream = connector.connect(name, tcp).await?;
                Ok::<_, std::io::Error>(hyper_util::rt::TokioIo::new(stream))
            }
        }))
        .await
        .unwrap();
    let mut client = IngestServiceClient::new(channel);
    let answer = client
        .ingest(IngestRequest {
            source: "grpc-tls".to_owned(),
            data: b"x".to_vec(),
            metadata: Default::default(),
            id: String::new(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(answer.status, "accepted", "{answer:?}");
    // A plain h2c client is not served on a TLS port.
    let plain = tonic::transport::Endpoint::from_shared(stack.grpc_url.clone())
        .unwrap()
        .connect_timeout(Duration::from_secs(10))
        .timeout(Duration::from_secs(10))
        .connect()
        .await;
    if let Ok(channel) = plain {
        let refused = IngestServiceClient::new(channel)
            .ingest(IngestRequest {
                source: "plain".to_owned(),
                data: b"x".to_vec(),
                metadata: Default::default(),
                id: String::new(),
            })
            .await;
        assert!(refused.is_err(), "plain h2c answered: {refused:?}");
    }
    let stats = stack.shutdown().await;
    assert_eq!(stats.workers.processed, 1);
}

/// The binary as a user runs it with `--tls-self-signed DIR`: curl with `--cacert
/// DIR/ca.pem` ingests over h2 and over HTTP/1.1, the hop inside the process is TLS too,
/// and `API_PLAIN_PORT` still serves plain HTTP.
#[test]
fn curl_ingests_over_h2_and_http1_with_the_self_signed_ca() {
    if !tool_available("curl", "curl") {
        eprintln!("skipped: curl is not installed and could not be installed");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let tls_dir = dir.path().join("tls");
    let running = binary::start(
        &[&format!("--tls-self-signed={}", tls_dir.display())],
        &[("API_PLAIN_PORT", "0")],
        &["gateway", "gateway (plain)"],
    );
    let gateway = &running.addrs()["gateway"].to_string();
    let ca = tls_dir.join("ca.pem");
    let curl = |args: &[&str]| {
        let output = Command::new("curl")
            .args(["-sS", "--max-time", "30", "--cacert"])
            .arg(&ca)
            .args(args)
            .output()
            .unwrap();
        assert!(
            output.status.success(),
            "curl {args:?}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8(output.stdout).unwrap()
    };
    for (flag, version) in [("--http2", "2"), ("--http1.1", "1.1")] {
        let written = curl(&[
            flag,
            "-o",
            "/dev/null",
            "-w",
            "%{http_code} %{http_version}",
            "-H",
            "content-type: application/json",
            "-d",
            r#"{"source": "curl", "data": "over tls"}"#,
            &format!("https://localhost:{}/api/v1/ingest", port(gateway)),
        ]);
        assert_eq!(written, format!("202 {version}"), "{flag}");
    }
    let trace: Value = serde_json::from_str(&curl(&[&format!(
        "https://127.0.0.1:{}/api/v1/trace",
        port(gateway)
    )]))
    .unwrap();
    assert_eq!(trace["success"], true, "{trace}");
    assert!(
        trace["latency"]["tls_handshake"].as_f64().is_some(),
        "the hop inside the process is TLS: {trace}"
    );
    let plain = curl(&[
        "-o",
        "/dev/null",
        "-w",
        "%{http_code}",
        &format!("http://{}/health", running.addrs()["gateway (plain)"]),
    ]);
    assert_eq!(plain, "200");
}

fn port(addr: &str) -> &str {
    addr.rsplit(':').next().unwrap()
}

/// Missing, unreadable or mismatched files stop start-up, naming the setting.
#[test]
fn bad_tls_files_stop_start_up_naming_the_setting() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("missing.pem");
    let garbage = dir.path().join("garbage.pem");
    std::fs::write(&garbage, "not a certificate").unwrap();
    let ss = dir.path().join("ss");
    // A certificate and a key that do not belong together.
    self_signed(&ss);
    let other = dir.path().join("other");
    self_signed(&other);
    let (cert, key) = (ss.join("cert.pem"), other.join("key.pem"));
    let cases: [(&[(&str, &Path)], &str); 4] = [
        (&[("TLS_CERT", &missing), ("TLS_KEY", &missing)], "TLS_CERT"),
        (&[("TLS_CERT", &garbage), ("TLS_KEY", &key)], "TLS_CERT"),
        (&[("TLS_CERT", &cert), ("TLS_KEY", &key)], "TLS_KEY"),
        (&[("TLS_CERT", &cert)], "TLS_KEY"),
    ];
    for (envs, named) in cases {
        let output = Command::new(env!("CARGO_BIN_EXE_system"))
            .env("PROCESSOR_PORT", "0")
            .env("API_PORT", "0")
            .env("GRPC_PORT", "0")
            .envs(envs.iter().map(|(k, v)| (k, v.as_os_str())))
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(!output.status.success(), "{envs:?} started");
        assert!(stderr.contains(named), "{envs:?}: {stderr}");
    }
}

/// A client that opens a connection to a TLS port and never finishes the handshake (here:
/// sends half a hello, then nothing) is dropped after the first-request deadline, like a
/// silent plain client: on the gateway and on the processor alike (whose keep-alive wait is
/// much longer, for its clients' pools).
#[tokio::test]
async fn a_stalled_handshake_is_dropped_at_the_first_request_deadline() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let dir = tempfile::tempdir().unwrap();
    let tls = self_signed(dir.path());
    let gateway_tls = tls.gateway.clone().unwrap();
    let processor_tls = tls.processor.clone().unwrap();
    let stack = Stack::start(Setup {
        processor: ProcessorConfig {
            tls: Some(processor_tls),
            ..ProcessorConfig::default()
        },
        forwarder: Box::new(move |url| ForwarderConfig {
            tls: Some(tls.hop.clone()),
            ..ForwarderConfig::new(https(&url))
        }),
        gateway: Box::new(move |forwarder| {
            system::gateway::GatewayConfig::from_front(FrontDoorConfig {
                tls: Some(Arc::clone(&gateway_tls)),
                ..FrontDoorConfig::new(forwarder)
            })
        }),
        ..Setup::default()
    })
    .await;
    for url in [&stack.gateway_url, &stack.processor_url] {
        let port: Uri = url.parse().unwrap();
        let mut stalled = TcpStream::connect(port.authority().unwrap().as_str())
            .await
            .unwrap();
        // A TLS record header announcing a handshake message that never comes.
        stalled
            .write_all(&[0x16, 0x03, 0x01, 0x02, 0x00, 0x01])
            .await
            .unwrap();
        let mut buf = [0u8; 64];
        let closed = tokio::time::timeout(Duration::from_secs(20), stalled.read(&mut buf)).await;
        assert!(
            matches!(closed, Ok(Ok(0)) | Ok(Err(_))),
            "{url}: the connection is still open: {closed:?}"
        );
    }
    stack.shutdown().await;
}
