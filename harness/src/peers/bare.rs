//! The bare reference servers: the least a server on the same stack as the system can do.
//! HTTP: hyper-util's auto builder (HTTP/1.1 and h2c on one port) answering `202` to
//! `POST /api/v1/ingest` after reading the body. gRPC: tonic serving
//! `diplom.v1.IngestService` that answers OK without forwarding anything. The gap between
//! these and the real gateway is what the gateway's own work costs.
//!
//! Like the system's servers they are bounded: at most [`MAX_CONNECTIONS`] connections,
//! request bodies of at most [`BODY_LIMIT`] bytes, and shutdown drains for at most
//! [`DRAIN`].

use std::{convert::Infallible, future::Future, sync::Arc, time::Duration};

use bytes::Bytes;
use http::{Method, Request, Response, StatusCode, header};
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper_util::{
    rt::{TokioExecutor, TokioIo},
    server::{conn::auto::Builder, graceful::GracefulShutdown},
};
use system::proto::{
    IngestRequest, IngestResponse,
    ingest_service_server::{IngestService, IngestServiceServer},
};
use tokio::{net::TcpListener, sync::Semaphore};
use tonic::{Status, Streaming, transport::server::TcpIncoming};

/// The bare HTTP server's name in its readiness line (`harness serve-bare`).
pub const HTTP_SERVER: &str = "bare-http";
/// The bare gRPC server's name in its readiness line.
pub const GRPC_SERVER: &str = "bare-grpc";
/// The harness's arguments that start both bare servers on loopback ports they pick.
pub const SERVE_ON_FREE_PORTS: [&str; 5] = [
    "serve-bare",
    "--http",
    "127.0.0.1:0",
    "--grpc",
    "127.0.0.1:0",
];

/// Most connections a bare server holds open; further ones wait to be accepted.
pub const MAX_CONNECTIONS: usize = 10_000;
/// Largest request body the bare HTTP server reads.
pub const BODY_LIMIT: usize = 1 << 20;
/// Longest shutdown drain.
pub const DRAIN: Duration = Duration::from_secs(5);

const ACCEPTED: &[u8] = br#"{"status":"accepted"}"#;

/// Serves the bare HTTP server on `listener` until `shutdown` completes.
pub async fn serve_http(listener: TcpListener, shutdown: impl Future<Output = ()>) {
    let builder = Builder::new(TokioExecutor::new());
    let permits = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    let graceful = GracefulShutdown::new();
    tokio::pin!(shutdown);
    loop {
        let Ok(permit) = permits.clone().acquire_owned().await else {
            break;
        };
        let stream = tokio::select! {
            () = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                // Out of file descriptors and the like: wait instead of spinning.
                Err(_) => {
                    tokio::time::sleep(Duration::from_millis(10)).await;
                    continue;
                }
            },
        };
        let _ = stream.set_nodelay(true);
        let connection = builder
            .serve_connection(TokioIo::new(stream), hyper::service::service_fn(answer))
            .into_owned();
        let connection = graceful.watch(connection);
        tokio::spawn(async move {
            let _ = connection.await;
            drop(permit);
        });
    }
    drop(listener);
    let _ = tokio::time::timeout(DRAIN, graceful.shutdown()).await;
}

async fn answer(request: Request<Incoming>) -> Result<Response<Full<Bytes>>, Infallible> {
    let status = if request.uri().path() != "/api/v1/ingest" {
        StatusCode::NOT_FOUND
    } else if request.method() != Method::POST {
        StatusCode::METHOD_NOT_ALLOWED
    } else {
        match Limited::new(request.into_body(), BODY_LIMIT)
            .collect()
            .await
        {
            Ok(_) => StatusCode::ACCEPTED,
            Err(_) => StatusCode::PAYLOAD_TOO_LARGE,
        }
    };
    let body = if status == StatusCode::ACCEPTED {
        Bytes::from_static(ACCEPTED)
    } else {
        Bytes::new()
    };
    let mut response = Response::new(Full::new(body));
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static("application/json"),
    );
    Ok(response)
}

/// Serves the bare gRPC server on `listener` until `shutdown` completes.
pub async fn serve_grpc(
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send,
) -> Result<(), tonic::transport::Error> {
    let incoming = TcpIncoming::from(listener).with_nodelay(Some(true));
    let service = IngestServiceServer::new(BareIngest)
        .max_decoding_message_size(10 << 20)
        .max_encoding_message_size(10 << 20);
    tonic::transport::Server::builder()
        .max_concurrent_streams(250)
        .add_service(service)
        .serve_with_incoming_shutdown(incoming, shutdown)
        .await
}

struct BareIngest;

#[tonic::async_trait]
impl IngestService for BareIngest {
    async fn ingest(
        &self,
        _request: tonic::Request<IngestRequest>,
    ) -> Result<tonic::Response<IngestResponse>, Status> {
        Ok(tonic::Response::new(IngestResponse {
            message_id: String::new(),
            status: "accepted".to_owned(),
            accepted: 1,
            duplicates: 0,
        }))
    }

    async fn ingest_stream(
        &self,
        request: tonic::Request<Streaming<IngestRequest>>,
    ) -> Result<tonic::Response<IngestResponse>, Status> {
        let mut incoming = request.into_inner();
        let mut accepted = 0u64;
        // The client ends the stream; tonic bounds each message by the decoding limit.
        while incoming.message().await?.is_some() {
            accepted += 1;
        }
        Ok(tonic::Response::new(IngestResponse {
            message_id: String::new(),
            status: "completed".to_owned(),
            accepted,
            duplicates: 0,
        }))
    }
}
