//! The gRPC front door (tonic): `diplom.v1.IngestService` with `Ingest` and `IngestStream`,
//! server reflection (v1 and v1alpha, so `grpcurl list` works) and `grpc.health.v1`.
//!
//! Messages go to the processor through the same [`Forwarder`] as the HTTP gateway. A
//! stream is forwarded in batches of what has arrived while the previous batch was out (and
//! within the linger, when one is set), up to `batch` messages and the hop's request limit;
//! the reply counts the accepted messages, and the call fails with a status as soon as one
//! message is not accepted, saying how many were.

use std::{future::Future, time::Duration};

use http::HeaderValue;
use tokio::net::TcpListener;
use tonic::{Code, Request, Response, Status, Streaming, service::Routes};
use tower::util::MapResponseLayer;

use crate::{
    client::{ForwardError, Forwarder, ForwarderConfig},
    codec::BATCH_FRAME_BYTES,
    gateway::new_message,
    net::BoundedListener,
    proto::{
        DataMessage, FILE_DESCRIPTOR_SET, IngestRequest, IngestResponse,
        ingest_service_server::{IngestService, IngestServiceServer},
    },
    server::{self, HttpLimits, Protocols},
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
/// (within the drain timeout). The services run on the same accept loop and under the same
/// deadlines as the HTTP servers ([`crate::server`]), HTTP/2 only.
pub async fn serve(
    listener: TcpListener,
    config: GrpcConfig,
    shutdown: impl Future<Output = ()> + Send,
) -> Result<(), GrpcError> {
    let forwarder = Forwarder::new(config.forwarder);
    let ingest = IngestServiceServer::new(IngestServer {
        forwarder,
        idle_timeout: config.limits.idle_timeout,
    })
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
    let router = Routes::new(ingest)
        .add_service(health_service)
        .add_service(reflection().build_v1()?)
        .add_service(reflection().build_v1alpha()?)
        .prepare()
        .into_axum_router()
        .layer(MapResponseLayer::new(contract_status::<axum::body::Body>));
    let listener = BoundedListener::new(listener, config.max_connections);
    server::serve(listener, router, config.limits, Protocols::Http2, shutdown).await;
    Ok(())
}

/// Why the gRPC server could not run.
#[derive(Debug, thiserror::Error)]
pub enum GrpcError {
    /// The embedded descriptor set could not be served by reflection.
    #[error("reflection: {0}")]
    Reflection(#[from] tonic_reflection::server::Error),
}

/// tonic answers an over-limit message with OUT_OF_RANGE and a message that does not decode
/// with INTERNAL; the contract (like other gRPC implementations) says RESOURCE_EXHAUSTED
/// and INVALID_ARGUMENT. The code of the mapped answer, if it is one of those.
fn contract_code(code: Code, message: &str) -> Option<Code> {
    match code {
        Code::OutOfRange if message.contains("too large") => Some(Code::ResourceExhausted),
        Code::Internal if message.starts_with("failed to decode") => Some(Code::InvalidArgument),
        _ => None,
    }
}

/// [`contract_code`] for answers that tonic writes before a handler runs (status in the
/// headers, `grpc-message` percent-encoded).
fn contract_status<B>(mut response: http::Response<B>) -> http::Response<B> {
    let headers = response.headers_mut();
    let Some(code) = headers
        .get("grpc-status")
        .and_then(|s| s.to_str().ok())
        .and_then(|s| s.parse::<i32>().ok())
        .map(Code::from)
    else {
        return response;
    };
    let message = headers
        .get("grpc-message")
        .and_then(|m| m.to_str().ok())
        .map(|m| m.replace("%20", " "))
        .unwrap_or_default();
    if let Some(mapped) = contract_code(code, &message) {
        headers.insert("grpc-status", HeaderValue::from(mapped as i32));
    }
    response
}

struct IngestServer {
    forwarder: Forwarder,
    /// Longest a stream may go without a message before it is ended.
    idle_timeout: Duration,
}

#[tonic::async_trait]
impl IngestService for IngestServer {
    async fn ingest(
        &self,
        request: Request<IngestRequest>,
    ) -> Result<Response<IngestResponse>, Status> {
        let msg = new_message(request.into_inner())
            .map_err(|err| Status::invalid_argument(err.to_string()))?;
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
                // A stream holds a slot of its connection: one that sends nothing is ended.
                match tokio::time::timeout(self.idle_timeout, incoming.message()).await {
                    Ok(next) => next,
                    Err(_) => {
                        let idle = Status::deadline_exceeded(format!(
                            "no message for {} s",
                            self.idle_timeout.as_secs()
                        ));
                        return Err(forwarding.failure(idle));
                    }
                }
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
                            return Err(
                                forwarding.failure(Status::invalid_argument(reason.to_string()))
                            );
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
    /// Messages waiting to be forwarded, each with what it takes in a request body.
    chunk: Vec<(DataMessage, usize)>,
    /// What the chunk takes in a batch request body.
    chunk_bytes: usize,
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
            chunk_bytes: BATCH_FRAME_BYTES,
            batch,
            linger: forwarder.config().linger,
            accepted: 0,
            last_id: String::new(),
        }
    }

    /// Adds `msg` to the chunk, sending the chunk first when `msg` would take it over the
    /// hop's request limit and after when it is full. A message too large for any request
    /// fails the call (after the messages before it are sent).
    async fn push(&mut self, msg: DataMessage) -> Result<(), Status> {
        let len = match self.forwarder.entry_len(&msg) {
            Ok(len) => len,
            Err(err) => {
                self.flush().await?;
                return Err(self.failure(forward_status(err)));
            }
        };
        if self.chunk_bytes + len > self.forwarder.config().max_request_bytes {
            self.flush().await?;
        }
        self.chunk.push((msg, len));
        self.chunk_bytes += len;
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
        self.chunk_bytes = BATCH_FRAME_BYTES;
        let ids: Vec<String> = self.chunk.iter().map(|(m, _)| m.id.clone()).collect();
        let results = self
            .forwarder
            .forward_measured(std::mem::take(&mut self.chunk))
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
        ForwardError::TooLarge { .. } => Code::ResourceExhausted,
        ForwardError::Rejected(_) => Code::InvalidArgument,
        ForwardError::Failed { .. } => Code::Internal,
    };
    Status::new(code, err.to_string())
}

fn receive_status(status: Status) -> Status {
    match contract_code(status.code(), status.message()) {
        Some(code) => Status::new(code, status.message().to_owned()),
        None => status,
    }
}
