//! The gRPC front door (tonic): `diplom.v1.IngestService` with `Ingest` and `IngestStream`,
//! server reflection (v1 and v1alpha, so `grpcurl list` works) and `grpc.health.v1`.
//!
//! Messages go to the processor through the same [`Forwarder`] as the HTTP gateway. A
//! stream is forwarded in batches of up to `batch` messages (fewer when the client pauses
//! longer than the linger); the reply counts the accepted messages, and the call fails with
//! a status as soon as one message is not accepted, saying how many were.

use std::{future::Future, time::Duration};

use futures_util::stream;
use http::HeaderValue;
use tokio::{net::TcpListener, sync::oneshot};
use tonic::{Code, Request, Response, Status, Streaming, transport::Server};
use tower::util::MapResponseLayer;

use crate::{
    client::{ForwardError, Forwarder, ForwarderConfig},
    gateway::new_message,
    net::BoundedListener,
    proto::{
        DataMessage, FILE_DESCRIPTOR_SET, IngestRequest, IngestResponse,
        ingest_service_server::{IngestService, IngestServiceServer},
    },
    server::HttpLimits,
};

/// How the gRPC server is set up.
#[derive(Debug, Clone)]
pub struct GrpcConfig {
    /// The processor client.
    pub forwarder: ForwarderConfig,
    /// Largest message received or sent, in bytes.
    pub max_message_bytes: usize,
    /// Most connections open at once.
    pub max_connections: usize,
    /// HTTP/2 limits and the shutdown drain.
    pub limits: HttpLimits,
}

impl GrpcConfig {
    /// The defaults, forwarding to the processor at `forwarder`.
    pub fn new(forwarder: ForwarderConfig) -> GrpcConfig {
        GrpcConfig {
            forwarder,
            max_message_bytes: 10 * 1024 * 1024,
            max_connections: 10_000,
            limits: HttpLimits::default(),
        }
    }
}

/// Serves gRPC on `listener` until `shutdown` completes, then lets open calls finish
/// (within the drain timeout).
pub async fn serve(
    listener: TcpListener,
    config: GrpcConfig,
    shutdown: impl Future<Output = ()> + Send,
) -> Result<(), GrpcError> {
    let forwarder = Forwarder::new(config.forwarder);
    let ingest = IngestServiceServer::new(IngestServer { forwarder })
        .max_decoding_message_size(config.max_message_bytes)
        .max_encoding_message_size(config.max_message_bytes);
    let (health, health_service) = tonic_health::server::health_reporter();
    health
        .set_serving::<IngestServiceServer<IngestServer>>()
        .await;
    let reflection = || {
        tonic_reflection::server::Builder::configure()
            .register_encoded_file_descriptor_set(FILE_DESCRIPTOR_SET)
            .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
    };
    let reflection_v1 = reflection().build_v1()?;
    let reflection_v1alpha = reflection().build_v1alpha()?;

    let idle = config.limits.idle_timeout;
    let incoming = stream::unfold(
        BoundedListener::new(listener, config.max_connections),
        move |mut listener| async move {
            let (stream, _) = listener.accept().await;
            Some((
                Ok::<_, std::io::Error>(stream.with_idle_timeout(idle)),
                listener,
            ))
        },
    );
    let (fired_tx, fired_rx) = oneshot::channel::<()>();
    let signal = async move {
        shutdown.await;
        let _ = fired_tx.send(());
    };
    let server = Server::builder()
        .max_concurrent_streams(config.limits.max_concurrent_streams)
        .max_frame_size(config.limits.max_frame_size)
        .layer(MapResponseLayer::new(
            resource_exhausted::<tonic::body::Body>,
        ))
        .add_service(ingest)
        .add_service(health_service)
        .add_service(reflection_v1)
        .add_service(reflection_v1alpha)
        .serve_with_incoming_shutdown(incoming, signal);
    let drain = config.limits.drain_timeout;
    tokio::select! {
        result = server => Ok(result?),
        () = async {
            if fired_rx.await.is_err() {
                std::future::pending::<()>().await;
            }
            tokio::time::sleep(drain).await;
        } => {
            tracing::warn!(?drain, "gRPC calls still open after the drain timeout; abandoning them");
            Ok(())
        }
    }
}

/// Why the gRPC server could not run.
#[derive(Debug, thiserror::Error)]
pub enum GrpcError {
    /// The embedded descriptor set could not be served by reflection.
    #[error("reflection: {0}")]
    Reflection(#[from] tonic_reflection::server::Error),
    /// The server failed.
    #[error("gRPC server: {0}")]
    Transport(#[from] tonic::transport::Error),
}

/// tonic answers an over-limit message with OUT_OF_RANGE; the contract (like other gRPC
/// implementations) says RESOURCE_EXHAUSTED.
fn resource_exhausted<B>(mut response: http::Response<B>) -> http::Response<B> {
    let headers = response.headers_mut();
    let too_large = headers
        .get("grpc-message")
        .and_then(|m| m.to_str().ok())
        .is_some_and(|m| m.contains("too%20large") || m.contains("too large"));
    if too_large && headers.get("grpc-status").is_some_and(|s| s == "11") {
        headers.insert("grpc-status", HeaderValue::from_static("8"));
    }
    response
}

struct IngestServer {
    forwarder: Forwarder,
}

#[tonic::async_trait]
impl IngestService for IngestServer {
    async fn ingest(
        &self,
        request: Request<IngestRequest>,
    ) -> Result<Response<IngestResponse>, Status> {
        let msg = new_message(request.into_inner()).map_err(Status::invalid_argument)?;
        let message_id = msg.id.clone();
        self.forwarder.forward(msg).await.map_err(forward_status)?;
        Ok(Response::new(IngestResponse {
            message_id,
            status: "accepted".to_owned(),
            accepted: 1,
        }))
    }

    async fn ingest_stream(
        &self,
        request: Request<Streaming<IngestRequest>>,
    ) -> Result<Response<IngestResponse>, Status> {
        let mut incoming = request.into_inner();
        let mut forwarding = StreamForwarding::new(&self.forwarder);
        loop {
            let next = if forwarding.chunk.is_empty() {
                incoming.message().await
            } else {
                // `Streaming::message` keeps partial frames in the stream, so giving up on
                // it after the linger and asking again later loses nothing.
                match tokio::time::timeout(forwarding.linger, incoming.message()).await {
                    Ok(next) => next,
                    Err(_) => {
                        forwarding.flush().await?;
                        continue;
                    }
                }
            };
            match next {
                Ok(Some(request)) => {
                    let msg = match new_message(request) {
                        Ok(msg) => msg,
                        Err(reason) => {
                            forwarding.flush().await?;
                            return Err(forwarding.failure(Status::invalid_argument(reason)));
                        }
                    };
                    forwarding.push(msg).await?;
                }
                Ok(None) => break,
                Err(status) => {
                    forwarding.flush().await?;
                    return Err(forwarding.failure(receive_status(status)));
                }
            }
        }
        forwarding.flush().await?;
        Ok(Response::new(IngestResponse {
            message_id: forwarding.last_id,
            status: "completed".to_owned(),
            accepted: forwarding.accepted,
        }))
    }
}

/// The state of one `IngestStream` call.
struct StreamForwarding<'a> {
    forwarder: &'a Forwarder,
    chunk: Vec<DataMessage>,
    batch: usize,
    linger: Duration,
    accepted: u64,
    last_id: String,
}

impl<'a> StreamForwarding<'a> {
    fn new(forwarder: &'a Forwarder) -> Self {
        let batch = forwarder.config().batch.max(1);
        StreamForwarding {
            forwarder,
            chunk: Vec::with_capacity(batch),
            batch,
            linger: forwarder.config().linger,
            accepted: 0,
            last_id: String::new(),
        }
    }

    async fn push(&mut self, msg: DataMessage) -> Result<(), Status> {
        self.chunk.push(msg);
        if self.chunk.len() >= self.batch {
            self.flush().await?;
        }
        Ok(())
    }

    /// Forwards the pending messages; fails the call at the first one not accepted.
    async fn flush(&mut self) -> Result<(), Status> {
        if self.chunk.is_empty() {
            return Ok(());
        }
        let ids: Vec<String> = self.chunk.iter().map(|m| m.id.clone()).collect();
        let results = self
            .forwarder
            .forward_batch(std::mem::take(&mut self.chunk))
            .await;
        let mut first_error = None;
        for (id, result) in ids.into_iter().zip(results) {
            match result {
                Ok(()) => {
                    self.accepted += 1;
                    self.last_id = id;
                }
                Err(err) => {
                    first_error.get_or_insert(err);
                }
            }
        }
        match first_error {
            Some(err) => Err(self.failure(forward_status(err))),
            None => Ok(()),
        }
    }

    /// `status`, with how many of the stream's messages were accepted before it.
    fn failure(&self, status: Status) -> Status {
        Status::new(
            status.code(),
            format!(
                "{} ({} messages of this stream were accepted)",
                status.message(),
                self.accepted
            ),
        )
    }
}

fn forward_status(err: ForwardError) -> Status {
    let code = match err {
        ForwardError::Overloaded(_) | ForwardError::Unreachable(_) | ForwardError::Timeout(_) => {
            Code::Unavailable
        }
        ForwardError::Rejected(_) => Code::InvalidArgument,
        ForwardError::Failed { .. } => Code::Internal,
    };
    Status::new(code, err.to_string())
}

fn receive_status(status: Status) -> Status {
    if status.code() == Code::OutOfRange && status.message().contains("too large") {
        Status::resource_exhausted(status.message().to_owned())
    } else {
        status
    }
}
