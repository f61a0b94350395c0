//! Support for the callgrind suite (`benches/callgrind.rs`): how many operations each
//! benchmark performs, the per-protocol round-trip fixture, the new-connection fixture of
//! the handshake pair ([`NewConnection`]), and reading the counts gungraun writes back into
//! cases of a result file.
//!
//! The round trips run client, gateway or gRPC server, and processor on one current-thread
//! runtime, so the instruction count of a request is the whole system's, deterministic, and
//! comparable across protocols (the hop to the processor is the same HTTP/1.1 for all).

use std::net::SocketAddr;

use bytes::Bytes;
use http::{Request, header};
use http_body_util::{BodyExt, Full};
use hyper::client::conn::{http1, http2};
use hyper_util::rt::{TokioExecutor, TokioIo};
use system::{
    client::ForwarderConfig,
    processor::ProcessorConfig,
    proto::{IngestRequest, ingest_service_client::IngestServiceClient},
    queue::QueueType,
};
use tokio::{net::TcpStream, runtime::Runtime};
use tonic::transport::Channel;

use crate::workloads::{Placement, Stack};

mod new_connection;

pub use new_connection::{Counts, NEW_CONNECTION, NEW_CONNECTIONS, NewConnection, Transport};
pub use study::catalogue::{OPS, ROUND_TRIPS};

/// The ingress protocol of a round trip (`IngestStream` counted per message); its name is
/// the variant of [`study::cases::group::PROTOCOL_ROUND_TRIP`].
pub use study::protocol::Protocol;

/// A system on a current-thread runtime with one warm client of one protocol.
pub struct RoundTrip {
    runtime: Runtime,
    client: Client,
    // Declared last so it is dropped after the client.
    _stack: Stack,
}

enum Client {
    Http1(http1::SendRequest<Full<Bytes>>, SocketAddr),
    H2c(http2::SendRequest<Full<Bytes>>, SocketAddr),
    Grpc(IngestServiceClient<Channel>),
    GrpcStream(IngestServiceClient<Channel>),
}

const BODY: &str =
    r#"{"source": "bench-sensor", "data": "temperature=21.5", "metadata": {"unit": "C"}}"#;

impl RoundTrip {
    /// Starts the system and a client of `protocol`, and warms both up (uncounted).
    pub fn start(protocol: Protocol) -> RoundTrip {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("a tokio runtime");
        let stack = Stack::start(
            Placement::Shared(&runtime),
            ProcessorConfig {
                queue_type: QueueType::Pooled,
                queue_size: 100_000,
                ..ProcessorConfig::default()
            },
            Some(&|url| ForwarderConfig {
                batch: 64,
                ..ForwarderConfig::new(url)
            }),
        )
        .expect("an in-process system");
        let gateway = stack.gateway.expect("the gateway");
        let grpc = format!("http://{}", stack.grpc.expect("the gRPC server"));
        let client = runtime.block_on(async {
            match protocol {
                Protocol::Http1 => {
                    let io = TokioIo::new(TcpStream::connect(gateway).await.expect("connect"));
                    let (send, connection) = http1::handshake(io).await.expect("handshake");
                    tokio::spawn(connection);
                    Client::Http1(send, gateway)
                }
                Protocol::H2c => {
                    let io = TokioIo::new(TcpStream::connect(gateway).await.expect("connect"));
                    let (send, connection) = http2::handshake(TokioExecutor::new(), io)
                        .await
                        .expect("handshake");
                    tokio::spawn(connection);
                    Client::H2c(send, gateway)
                }
                Protocol::GrpcUnary => {
                    Client::Grpc(IngestServiceClient::connect(grpc).await.expect("connect"))
                }
                Protocol::GrpcStream => {
                    Client::GrpcStream(IngestServiceClient::connect(grpc).await.expect("connect"))
                }
            }
        });
        let mut fixture = RoundTrip {
            runtime,
            client,
            _stack: stack,
        };
        fixture.run(ROUND_TRIPS);
        fixture
    }

    /// Sends `n` messages (requests, or messages of one stream) and waits for the answers.
    pub fn run(&mut self, n: usize) {
        let RoundTrip {
            runtime, client, ..
        } = self;
        runtime.block_on(async {
            match client {
                Client::Http1(send, addr) => {
                    for _ in 0..n {
                        send.ready().await.expect("connection ready");
                        let response = send
                            .send_request(ingest_request(*addr, false))
                            .await
                            .expect("answer");
                        assert_eq!(response.status(), 202);
                        let _ = response.into_body().collect().await;
                    }
                }
                Client::H2c(send, addr) => {
                    for _ in 0..n {
                        send.ready().await.expect("connection ready");
                        let response = send
                            .send_request(ingest_request(*addr, true))
                            .await
                            .expect("answer");
                        assert_eq!(response.status(), 202);
                        let _ = response.into_body().collect().await;
                    }
                }
                Client::Grpc(client) => {
                    for _ in 0..n {
                        client.ingest(grpc_message()).await.expect("accepted");
                    }
                }
                Client::GrpcStream(client) => {
                    let messages = (0..n).map(|_| grpc_message());
                    client
                        .ingest_stream(tokio_stream::iter(messages))
                        .await
                        .expect("accepted");
                }
            }
        });
    }
}

fn ingest_request(addr: SocketAddr, h2: bool) -> Request<Full<Bytes>> {
    let uri = format!("http://{addr}/api/v1/ingest");
    let mut builder = Request::post(uri).header(header::CONTENT_TYPE, "application/json");
    if !h2 {
        builder = builder.header(header::HOST, addr.to_string());
    }
    builder
        .body(Full::new(Bytes::from_static(BODY.as_bytes())))
        .expect("a valid request")
}

/// The message every gRPC round trip sends (built anew for each, as a client would).
pub fn grpc_message() -> IngestRequest {
    IngestRequest {
        source: "bench-sensor".to_owned(),
        data: b"temperature=21.5".to_vec(),
        metadata: [("unit".to_owned(), "C".to_owned())].into(),
        id: String::new(),
    }
}

pub use study::callgrind::read_summaries;
