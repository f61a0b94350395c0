//! The gRPC front door (tonic): `diplom.v1.IngestService` with `Ingest` and `IngestStream`,
//! server reflection (v1 and v1alpha, so `grpcurl list` works) and `grpc.health.v1`.
//!
//! Messages go to the processor through the same `Hop` as the HTTP gateway. A
//! stream is forwarded in batches of what has arrived while the previous batch was out (and
//! within the linger, when one is set), up to `batch` messages and the hop's request limit;
//! the reply counts the accepted messages, and the call fails with a status as soon as one
//! message is not accepted, saying how many were.
//!
//! `IngestStream` is served from the raw frames: each message is read once, in place
//! ([`IngestView`], its metadata entries remembered in a table the stream keeps), checked,
//! and written straight into the next hop request ([`HopBatch`]) from what the reading
//! remembered, so a warm stream allocates nothing per message and a message costs work
//! linear in its bytes. `Ingest` reads its message the same way and copies it only once
//! it is known to have no more metadata entries than a message may hold.
//!
//! With `INGEST_TOKEN` set, both calls want the metadata `authorization: Bearer <token>`
//! (`UNAUTHENTICATED` otherwise, before a message is read); health and reflection stay
//! open (see [`crate::serve::auth`]).

mod limits;
mod metrics;
pub mod standing;

use std::{
    convert::Infallible,
    future::Future,
    pin::Pin,
    sync::Arc,
    task::{Context, Poll},
    time::{Duration, Instant},
};

use bytes::{Buf, Bytes};
use futures_util::{Stream, StreamExt};
use http::HeaderValue;
use tokio::net::TcpListener;
use tonic::{Code, Request, Response, Status, Streaming, service::Routes};
use tower::util::MapResponseLayer;

use self::standing::Standing;
use crate::{
    domain::answer::{self, status_word},
    domain::budget::{Budget, Charge},
    domain::ids::{IdSource, MessageId},
    domain::message::{IdOrigin, MessageRef, unix_now},
    domain::proto::{
        DataMessage, FILE_DESCRIPTOR_SET, IngestRequest, IngestResponse,
        ingest_service_server::{IngestService, IngestServiceServer},
    },
    domain::validate,
    domain::wire::{IngestView, WireEntries},
    hop::{
        Hop,
        client::{Accepted, Added, ForwardError, Forwarded, ForwarderConfig, HopBatch},
    },
    roles::FrontDoorConfig,
    roles::gateway::{IDEMPOTENCY_KEY, held_bytes, new_message, read_ingest, scope_id, take_key},
    serve::auth::{Guard, IdScope, Scope},
    serve::clients::Peer,
    serve::debug,
    serve::net::BoundedListener,
    serve::prometheus::Histogram,
    serve::refusals::{Refusal, Refusals},
    serve::server::{self, Protocols},
};

/// The gRPC port unless told otherwise (`GRPC_PORT`).
pub(crate) const DEFAULT_PORT: u16 = 50051;

/// The largest message received or sent unless told otherwise, in bytes.
pub(crate) const DEFAULT_MAX_MESSAGE_BYTES: usize = 10 * 1024 * 1024;

/// How the gRPC server is set up: what every front door takes, and its message limit.
#[derive(Debug, Clone)]
pub struct GrpcConfig {
    /// The hop, limits, clients, metrics, TLS and tokens (TLS with ALPN `h2`; h2c when
    /// `None`). The gRPC port answers `GET /metrics` over h2c whichever registry it has.
    pub front: FrontDoorConfig,
    /// Largest message received or sent, in bytes.
    pub max_message_bytes: usize,
}

impl GrpcConfig {
    /// The defaults, forwarding to the processor at `forwarder`.
    pub fn new(forwarder: ForwarderConfig) -> GrpcConfig {
        GrpcConfig::from_front(FrontDoorConfig::new(forwarder))
    }

    /// The gRPC server of the front door `front`, with the default message limit.
    pub fn from_front(front: FrontDoorConfig) -> GrpcConfig {
        GrpcConfig {
            front,
            max_message_bytes: DEFAULT_MAX_MESSAGE_BYTES,
        }
    }
}

/// Serves gRPC on `listener` until `shutdown` completes, then lets open calls finish
/// (within the drain timeout). The services run on the same accept loop and under the same
/// deadlines as the HTTP servers ([`crate::serve::server`]), HTTP/2 only.
pub async fn serve(
    listener: TcpListener,
    config: GrpcConfig,
    shutdown: impl Future<Output = ()> + Send,
) -> Result<(), GrpcError> {
    let hop = Hop::network(config.front.forwarder);
    let refusals = Arc::new(Refusals::default());
    let server = Arc::new(IngestServer {
        hop,
        budget: Arc::clone(config.front.clients.budget()),
        idle_timeout: config.front.limits.idle_timeout,
        latency: metrics::IngestLatency::new(),
        guard: Guard::any_of(Scope::Ingest, REALM, config.front.ingest_tokens),
        refusals: Arc::clone(&refusals),
    });
    let listener = BoundedListener::new(listener, config.front.max_connections)
        .with_clients(&config.front.clients)
        .counting(&refusals);
    let registry = config.front.metrics.unwrap_or_default();
    metrics::register(&registry, &server, listener.accepted_counter());
    let route = |method| FrameRoute {
        server: Arc::clone(&server),
        max_message_bytes: config.max_message_bytes,
        method,
    };
    let (unary, stream) = (route(FrameMethod::Unary), route(FrameMethod::Stream));
    let ingest = IngestServiceServer::from_arc(server)
        .max_decoding_message_size(config.max_message_bytes)
        .max_encoding_message_size(config.max_message_bytes);
    let (reporter, health_service) = tonic_health::server::health_reporter();
    let health_service = health_service.max_decoding_message_size(CONTROL_MESSAGE_BYTES);
    let health = crate::hop::ready::GrpcHealth::start(
        reporter,
        <IngestServiceServer<IngestServer> as tonic::server::NamedService>::NAME,
        stream.server.hop.config(),
    )
    .await;
    let reflection = || {
        tonic_reflection::server::Builder::configure()
            .register_encoded_file_descriptor_set(FILE_DESCRIPTOR_SET)
            .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
    };
    let router = Routes::new(ingest)
        .add_service(health.gate(health_service))
        .add_service(
            reflection()
                .build_v1()?
                .max_decoding_message_size(CONTROL_MESSAGE_BYTES),
        )
        .add_service(
            reflection()
                .build_v1alpha()?
                .max_decoding_message_size(CONTROL_MESSAGE_BYTES),
        )
        .prepare()
        .into_axum_router()
        .route_service(STREAM_PATH, stream)
        .route_service(UNARY_PATH, unary)
        .merge(debug::routes(
            config.front.profile_endpoint,
            &Guard::new(Scope::Debug, REALM, config.front.debug_token),
        ))
        .merge(registry.routes())
        .layer(MapResponseLayer::new(contract_status::<axum::body::Body>))
        .layer(limits::CallLimits {
            budget: Arc::clone(config.front.clients.budget()),
            body_timeout: config.front.limits.body_timeout,
            idle_timeout: config.front.limits.idle_timeout,
            max_message_bytes: config.max_message_bytes,
            max_control_bytes: CONTROL_MESSAGE_BYTES,
        });
    let shutdown = health.until(shutdown);
    let tls = config.front.tls;
    server::serve(
        listener,
        router,
        config.front.limits,
        Protocols::Http2,
        tls,
        shutdown,
    )
    .await;
    Ok(())
}

/// The role named in the challenges of the port's HTTP routes (`/debug/*`).
const REALM: &str = "grpc";

/// Largest health or reflection request: each names a service or a symbol, a few hundred
/// bytes at most.
const CONTROL_MESSAGE_BYTES: usize = 64 * 1024;

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
    hop: Hop,
    /// The process's budget, charged when a call carries no [`Peer`] (whose client's share
    /// it charges otherwise).
    budget: Arc<Budget>,
    /// Where the port counts refusals.
    refusals: Arc<Refusals>,
    /// Longest a stream may go without a message before it is ended.
    idle_timeout: Duration,
    latency: metrics::IngestLatency,
    /// `INGEST_TOKEN`, wanted in the `authorization` metadata of both calls.
    guard: Guard,
}

#[tonic::async_trait]
impl IngestService for IngestServer {
    async fn ingest(
        &self,
        request: Request<IngestRequest>,
    ) -> Result<Response<IngestResponse>, Status> {
        // Served by a `FrameRoute` from the raw frame; this path is for callers of the
        // generated service.
        let scope = self.guard.check_grpc(request.metadata().as_ref())?;
        let started = Instant::now();
        let key = request.metadata().get(IDEMPOTENCY_KEY).cloned();
        let caller = Caller {
            peer: Peer::of(request.extensions()),
            scope,
        };
        let answer = self
            .ingest_one(
                &caller,
                key.as_ref().map(|key| key.as_bytes()),
                request.into_inner(),
            )
            .await;
        self.latency.unary.observe_since(started);
        answer
    }

    async fn ingest_stream(
        &self,
        request: Request<Streaming<IngestRequest>>,
    ) -> Result<Response<IngestResponse>, Status> {
        // Served by a `FrameRoute` from raw frames; this path (for callers of the generated
        // service) encodes each message again and takes the same way.
        let scope = self.guard.check_grpc(request.metadata().as_ref())?;
        let caller = Caller {
            peer: Peer::of(request.extensions()),
            scope,
        };
        let frames = request
            .into_inner()
            .map(|next| next.map(|msg| Bytes::from(prost::Message::encode_to_vec(&msg))));
        self.forward_stream(&caller, frames).await
    }
}

impl IngestServer {
    /// A unary `Ingest` as its frame arrived: read by [`read_ingest`], as the gateway reads
    /// a protobuf body, so that a broken request is described in the same words.
    async fn ingest_frame(
        &self,
        request: Request<Bytes>,
    ) -> Result<Response<IngestResponse>, Status> {
        let started = Instant::now();
        let key = request.metadata().get(IDEMPOTENCY_KEY).cloned();
        let caller = Caller::of(request.extensions());
        let answer = match read_ingest(request.get_ref()) {
            Ok(decoded) => {
                self.ingest_one(&caller, key.as_ref().map(|key| key.as_bytes()), decoded)
                    .await
            }
            Err(reason) => Err(Status::invalid_argument(reason)),
        };
        self.latency.unary.observe_since(started);
        answer
    }

    /// The budget a call of `peer` charges: its client's share, or the process's.
    fn budget_of<'a>(&'a self, peer: Option<&'a Peer>) -> &'a Arc<Budget> {
        peer.map_or(&self.budget, |peer| peer.budget(&self.budget))
    }

    /// A unary `Ingest` of `request` from `caller`, with the client's id `key` from the
    /// metadata.
    async fn ingest_one(
        &self,
        caller: &Caller,
        key: Option<&[u8]>,
        mut request: IngestRequest,
    ) -> Result<Response<IngestResponse>, Status> {
        let peer = caller.peer.as_ref();
        take_key(&mut request, key, "metadata `idempotency-key`")
            .map_err(Status::invalid_argument)?;
        let mut msg =
            new_message(request).map_err(|err| Status::invalid_argument(err.to_string()))?;
        caller.scope_id(&mut msg);
        // The message as received, and its copy in a hop request, until answered.
        let _charge = self
            .budget_of(peer)
            .try_charge(held_bytes(MessageRef::from(&msg)))
            .map_err(|exhausted| {
                self.refuse(peer, Refusal::of(&exhausted));
                Status::resource_exhausted(exhausted.to_string())
            })?;
        let message_id = msg.id.clone();
        let accepted = self.hop.forward(msg).await.map_err(forward_status)?;
        Ok(Response::new(IngestResponse {
            message_id,
            status: status_word(accepted == Accepted::Duplicate).to_owned(),
            accepted: 1,
            duplicates: u64::from(accepted == Accepted::Duplicate),
        }))
    }

    /// Counts a refusal of `peer`'s call (on the port's counters when it has no peer).
    fn refuse(&self, peer: Option<&Peer>, refusal: Refusal) {
        match peer {
            Some(peer) => peer.refuse(refusal),
            None => self.refusals.count(refusal),
        }
    }

    /// Forwards a stream of encoded `IngestRequest`s from `caller`.
    async fn forward_stream(
        &self,
        caller: &Caller,
        frames: impl Stream<Item = Result<Bytes, Status>> + Unpin,
    ) -> Result<Response<IngestResponse>, Status> {
        let peer = caller.peer.as_ref();
        let mut frames = frames;
        let mut forwarding = StreamForwarding::new(self, caller);
        loop {
            let next = if forwarding.batch.is_empty() {
                // A stream holds a slot of its connection: one that sends nothing is ended.
                match tokio::time::timeout(self.idle_timeout, frames.next()).await {
                    Ok(next) => next,
                    Err(_) => {
                        self.refuse(peer, Refusal::StreamIdle);
                        let idle = Status::deadline_exceeded(format!(
                            "no message for {} s",
                            self.idle_timeout.as_secs()
                        ));
                        return Err(forwarding.failure(idle));
                    }
                }
            } else {
                // A stream keeps partial frames, so giving up on it after the linger and
                // asking again later loses nothing.
                match tokio::time::timeout(forwarding.linger, frames.next()).await {
                    Ok(next) => next,
                    Err(_) => {
                        forwarding.flush().await?;
                        continue;
                    }
                }
            };
            match next {
                Some(Ok(frame)) => forwarding.push(&frame).await?,
                None => break,
                Some(Err(status)) => {
                    forwarding.flush().await?;
                    return Err(forwarding.failure(receive_status(status)));
                }
            }
        }
        forwarding.flush().await?;
        Ok(Response::new(IngestResponse {
            message_id: forwarding
                .last_id
                .as_ref()
                .map(|id| id.as_str().to_owned())
                .unwrap_or_default(),
            status: "completed".to_owned(),
            accepted: forwarding.accepted,
            duplicates: forwarding.duplicates,
        }))
    }
}

/// Who makes a call: its connection's client, and the namespace of its ids (the name of
/// the token it came with).
struct Caller {
    peer: Option<Peer>,
    scope: Option<IdScope>,
}

impl Caller {
    /// The caller of a request whose extensions are `extensions` (where the server and the
    /// guard put them).
    fn of(extensions: &http::Extensions) -> Caller {
        Caller {
            peer: Peer::of(extensions),
            scope: extensions.get::<IdScope>().cloned(),
        }
    }

    /// Puts a message whose client gave its id into the caller's namespace.
    fn scope_id(&self, msg: &mut DataMessage) {
        scope_id(self.scope.as_ref(), msg);
    }
}

/// The state of one `IngestStream` call.
struct StreamForwarding<'a> {
    server: &'a IngestServer,
    /// The client, whose share of the budget the stream charges.
    peer: Option<&'a Peer>,
    /// The namespace of the client's ids (the name of its token; empty: the shared one).
    scope: &'a str,
    hop: &'a Hop,
    /// The next hop request, and the ids of the messages in it.
    batch: HopBatch,
    ids: Vec<StreamId>,
    /// Outcomes of the request last sent (kept for their capacity).
    outcomes: Vec<Forwarded>,
    linger: Duration,
    accepted: u64,
    duplicates: u64,
    last_id: Option<StreamId>,
    /// Messages of the stream put in a batch so far (the index of the next one).
    read: u64,
    /// The index of the batch's first message.
    batch_start: u64,
    /// Set when a batch was not wholly accepted.
    standing: Option<Standing>,
    /// What the batch holds (its frames and their encoding in the hop request), charged
    /// to the budget until the batch is answered.
    charge: Charge,
    /// When the batch's first message was read, and where the time until its answer goes.
    batch_began: Option<Instant>,
    latency: &'a Histogram,
    /// Where each message's metadata entries are remembered as it is read (between
    /// messages, empty and of no lifetime; see [`WireEntries::recycle`]).
    entries: Option<WireEntries<'static>>,
}

/// The id of a stream's message: the client's own (a slice of the frame it came in), or
/// one given here.
enum StreamId {
    Client(Bytes),
    Given(MessageId),
}

impl StreamId {
    fn as_str(&self) -> &str {
        match self {
            // Only ids that passed `validate::check` (visible ASCII) are kept.
            StreamId::Client(bytes) => std::str::from_utf8(bytes).unwrap_or_default(),
            StreamId::Given(id) => id.as_str(),
        }
    }
}

impl<'a> StreamForwarding<'a> {
    fn new(server: &'a IngestServer, caller: &'a Caller) -> Self {
        let hop = &server.hop;
        let peer = caller.peer.as_ref();
        StreamForwarding {
            server,
            peer,
            scope: caller.scope.as_ref().map_or("", IdScope::as_str),
            hop,
            batch: HopBatch::default(),
            ids: Vec::new(),
            outcomes: Vec::new(),
            linger: hop.config().linger,
            accepted: 0,
            duplicates: 0,
            last_id: None,
            read: 0,
            batch_start: 0,
            standing: None,
            charge: server.budget_of(peer).empty_charge(),
            batch_began: None,
            latency: &server.latency.stream,
            entries: None,
        }
    }

    /// Reads one encoded `IngestRequest`, checks it and adds it to the batch, sending the
    /// batch first when the message does not fit and after when it is full. A message that
    /// is not valid, or too large for any request, fails the call (after the messages
    /// before it are sent).
    async fn push(&mut self, frame: &Bytes) -> Result<(), Status> {
        let mut entries = self.entries.take().unwrap_or_default().recycle();
        let pushed = self.push_read(frame, &mut entries).await;
        self.entries = Some(entries.recycle());
        pushed
    }

    /// [`StreamForwarding::push`], the frame's metadata entries remembered in `entries`.
    async fn push_read<'f>(
        &mut self,
        frame: &'f Bytes,
        entries: &mut WireEntries<'f>,
    ) -> Result<(), Status> {
        let request = match IngestView::parse(frame, entries) {
            Ok(request) => request,
            Err(err) => {
                self.flush().await?;
                let status = Status::invalid_argument(answer::invalid_protobuf(&err));
                return Err(self.failure(status));
            }
        };
        let id = if request.id.is_empty() {
            StreamId::Given(MessageId::generate(IdSource::Fast))
        } else {
            StreamId::Client(frame.slice_ref(request.id.as_bytes()))
        };
        let origin = match id {
            StreamId::Client(_) => IdOrigin::client(self.scope),
            StreamId::Given(_) => IdOrigin::ASSIGNED,
        };
        let msg = request.message(id.as_str(), unix_now(), origin);
        if let Err(reason) = validate::check(msg) {
            self.flush().await?;
            return Err(self.failure(Status::invalid_argument(reason.to_string())));
        }
        let held = frame.len() + msg.size();
        self.hold(held).await?;
        let added = match self.hop.add(&mut self.batch, msg) {
            Ok(Added::Full) => {
                // The flush gives back what the batch held, this message's share with it.
                self.flush().await?;
                self.hold(held).await?;
                self.hop.add(&mut self.batch, msg)
            }
            other => other,
        };
        match added {
            Ok(_) => {
                self.ids.push(id);
                self.read += 1;
                if self.batch_began.is_none() {
                    self.batch_began = Some(Instant::now());
                }
            }
            Err(err) => {
                self.flush().await?;
                return Err(self.failure(forward_status(err)));
            }
        }
        if self.batch.len() >= self.hop.config().batch {
            self.flush().await?;
        }
        Ok(())
    }

    /// Takes `bytes` more from the budget for the batch; when they do not fit, sends what
    /// the stream holds first (giving its share back) and tries once more.
    async fn hold(&mut self, bytes: usize) -> Result<(), Status> {
        if self.charge.grow(bytes).is_ok() {
            return Ok(());
        }
        self.flush().await?;
        self.charge.grow(bytes).map_err(|exhausted| {
            self.server.refuse(self.peer, Refusal::of(&exhausted));
            self.failure(Status::resource_exhausted(exhausted.to_string()))
        })
    }

    /// Forwards the pending messages; fails the call when one is not accepted, saying
    /// exactly which of the batch were (see [`standing`]).
    async fn flush(&mut self) -> Result<(), Status> {
        if self.batch.is_empty() {
            return Ok(());
        }
        self.outcomes.clear();
        self.hop.send(&mut self.batch, &mut self.outcomes).await;
        if let Some(began) = self.batch_began.take() {
            self.latency.observe_since(began);
        }
        self.charge.release();
        let start = std::mem::replace(&mut self.batch_start, self.read);
        let mut first_error = None;
        let mut standing = Standing::default();
        let outcomes = self.ids.drain(..).zip(self.outcomes.drain(..));
        for (index, (id, outcome)) in (start..).zip(outcomes) {
            match outcome {
                Ok(accepted) => {
                    self.accepted += 1;
                    self.duplicates += u64::from(accepted == Accepted::Duplicate);
                    self.last_id = Some(id);
                    if first_error.is_some() {
                        standing.accepted_after.push(index);
                    }
                }
                Err(err) => {
                    if err.may_have_succeeded() {
                        standing.uncertain.push(index);
                    }
                    if first_error.is_none() {
                        standing.resume_from = index;
                        first_error = Some(err);
                    }
                }
            }
        }
        match first_error {
            Some(err) => {
                self.standing = Some(standing);
                Err(self.failure(forward_status(err)))
            }
            None => Ok(()),
        }
    }

    /// `status`, with where the stream stands: what a batch that failed said, or else
    /// every message read so far accepted and the next one to resume from.
    fn failure(&self, status: Status) -> Status {
        let standing = self.standing.clone().unwrap_or(Standing {
            resume_from: self.read,
            ..Standing::default()
        });
        Standing {
            accepted: self.accepted,
            ..standing
        }
        .attach(&status)
    }
}

/// The path of `IngestStream`, served by a [`FrameRoute`].
const STREAM_PATH: &str = "/diplom.v1.IngestService/IngestStream";
/// The path of `Ingest`, served by a [`FrameRoute`].
const UNARY_PATH: &str = "/diplom.v1.IngestService/Ingest";

/// Which method a [`FrameRoute`] serves.
#[derive(Debug, Clone, Copy)]
enum FrameMethod {
    /// `Ingest`: the frame is read by [`IngestServer::ingest_frame`], as the gateway reads
    /// a protobuf body, so that a broken request is described in the same words.
    Unary,
    /// `IngestStream`: each frame's bytes go to the handler, which reads the messages in
    /// place (the generated service would decode each into owned fields).
    Stream,
}

/// A method of the ingest service served from raw frames, with the guard checked before
/// a frame is read and the message limits of the service.
#[derive(Clone)]
struct FrameRoute {
    server: Arc<IngestServer>,
    max_message_bytes: usize,
    method: FrameMethod,
}

impl tower::Service<http::Request<axum::body::Body>> for FrameRoute {
    type Response = http::Response<tonic::body::Body>;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Infallible>> + Send>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: http::Request<axum::body::Body>) -> Self::Future {
        let route = self.clone();
        Box::pin(async move {
            // Refused before a frame is read (and the request thrown away); let in, told
            // the namespace of its client's ids.
            let mut request = request;
            match route.server.guard.check_grpc(request.headers()) {
                Ok(Some(scope)) => {
                    request.extensions_mut().insert(scope);
                }
                Ok(None) => {}
                Err(status) => {
                    let peer = Peer::of(request.extensions());
                    route.server.refuse(peer.as_ref(), Refusal::Unauthenticated);
                    let (parts, body) = request.into_parts();
                    crate::serve::body::linger(&parts.headers, body).await;
                    return Ok(status.into_http());
                }
            }
            let mut grpc = tonic::server::Grpc::new(FrameCodec).apply_max_message_size_config(
                Some(route.max_message_bytes),
                Some(route.max_message_bytes),
            );
            let server = route.server;
            Ok(match route.method {
                FrameMethod::Unary => {
                    let handler = tower::service_fn(move |call: Request<Bytes>| {
                        let server = Arc::clone(&server);
                        async move { server.ingest_frame(call).await }
                    });
                    grpc.unary(handler, request).await
                }
                FrameMethod::Stream => {
                    let handler = tower::service_fn(move |call: Request<Streaming<Bytes>>| {
                        let server = Arc::clone(&server);
                        async move {
                            let caller = Caller::of(call.extensions());
                            server.forward_stream(&caller, call.into_inner()).await
                        }
                    });
                    grpc.client_streaming(handler, request).await
                }
            })
        })
    }
}

/// Decodes a frame into its bytes (messages are read in place by the handler) and encodes
/// the answer with prost.
#[derive(Debug, Clone, Copy)]
struct FrameCodec;

impl tonic::codec::Codec for FrameCodec {
    type Encode = IngestResponse;
    type Decode = Bytes;
    type Encoder = tonic_prost::ProstEncoder<IngestResponse>;
    type Decoder = FrameDecoder;

    fn encoder(&mut self) -> Self::Encoder {
        tonic_prost::ProstEncoder::default()
    }

    fn decoder(&mut self) -> Self::Decoder {
        FrameDecoder
    }
}

#[derive(Debug, Clone, Copy)]
struct FrameDecoder;

impl tonic::codec::Decoder for FrameDecoder {
    type Item = Bytes;
    type Error = Status;

    fn decode(&mut self, src: &mut tonic::codec::DecodeBuf<'_>) -> Result<Option<Bytes>, Status> {
        // A split of tonic's receive buffer: no copy, and no allocation once it is shared.
        Ok(Some(src.copy_to_bytes(src.remaining())))
    }
}

fn forward_status(err: ForwardError) -> Status {
    let code = match err {
        ForwardError::Overloaded(_)
        | ForwardError::Unreachable(_)
        | ForwardError::Broken(_)
        | ForwardError::Timeout(_)
        | ForwardError::Uncertain => Code::Unavailable,
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
