//! The processor client ("forwarder") that both front doors use to hand messages to the
//! processor, with every network optimization as an A/B switch:
//!
//! - [`ClientMode`]: `pooled` shares one client (keep-alive, up to 200 idle connections per
//!   host, bodies drained so connections go back to the pool, request bodies encoded into
//!   pooled buffers); `baseline` opens a new connection and a new buffer for every request;
//! - [`HopProtocol`]: HTTP/1.1 or HTTP/2 with prior knowledge (h2c);
//! - [`Codec`]: JSON or protobuf bodies;
//! - batching: [`Forwarder::forward_batch`] sends many messages in one
//!   `POST /enqueue/batch`, and with `batch_unary` concurrent single messages are coalesced
//!   by a background batcher. Every caller still learns the fate of its own message.
//!
//! Requests and opened connections are counted, so reuse = 1 − opened / requests; each
//! request carrying messages is timed and its messages counted, into two histograms
//! (`Forwarder::hop_latency`, `Forwarder::hop_batch`) that the front doors show on
//! `/metrics`.

mod batcher;
pub mod buffers;
pub mod connector;
mod encoded;
pub mod trace;

use std::{
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use bytes::{BufMut, Bytes};
use http::{Method, Request, StatusCode, Uri, header};
use http_body_util::{BodyExt, Full, Limited};
use hyper_util::{
    client::legacy::Client,
    rt::{TokioExecutor, TokioTimer},
};
use serde::Serialize;

pub use self::encoded::{Added, HopBatch};
use self::{batcher::Batcher, buffers::BufferPool, connector::CountingConnector};
use crate::serve::tls::{ALPN_H2, ALPN_HTTP1, HopTls};
use crate::{
    domain::codec::{BATCH_FRAME_BYTES, Codec, MAX_BATCH_MESSAGES, entry_len},
    domain::message::MessageRef,
    domain::proto::{BatchOutcome, DataMessage, DataMessageBatch, Outcome},
    serve::auth::Secret,
    serve::prometheus::{self, Histogram},
};

pub use crate::domain::answer::REPLAYED_HEADER;

/// Largest processor answer the client reads.
const MAX_RESPONSE_BYTES: usize = 4 * 1024 * 1024;

/// How connections and buffers are managed (`CLIENT_MODE`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ClientMode {
    /// One shared client: keep-alive, pooled connections and buffers.
    Pooled,
    /// A new connection and a new buffer per request.
    Baseline,
}

impl ClientMode {
    /// The value of `CLIENT_MODE` that chooses this mode.
    pub const fn as_str(self) -> &'static str {
        match self {
            ClientMode::Pooled => "pooled",
            ClientMode::Baseline => "baseline",
        }
    }
}

/// The protocol of the hop to the processor (`HOP_PROTOCOL`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum HopProtocol {
    /// HTTP/1.1.
    Http1,
    /// HTTP/2: with prior knowledge (h2c) to an `http` processor, chosen by ALPN (`h2`) over
    /// TLS to an `https` one.
    H2c,
}

impl HopProtocol {
    /// The value of `HOP_PROTOCOL` that chooses this protocol.
    pub const fn as_str(self) -> &'static str {
        match self {
            HopProtocol::Http1 => "http1",
            HopProtocol::H2c => "h2c",
        }
    }
}

/// Where the front doors find the processor unless told otherwise (`PROCESSOR_URL`): the
/// processor's default port on loopback.
pub(crate) const DEFAULT_PROCESSOR_URL: &str = "http://127.0.0.1:8082";
/// The processor client's management unless told otherwise (`CLIENT_MODE`).
pub(crate) const DEFAULT_CLIENT_MODE: ClientMode = ClientMode::Pooled;
/// The hop's protocol unless told otherwise (`HOP_PROTOCOL`).
pub(crate) const DEFAULT_HOP_PROTOCOL: HopProtocol = HopProtocol::Http1;
/// The hop's encoding unless told otherwise (`HOP_CODEC`).
pub(crate) const DEFAULT_HOP_CODEC: Codec = Codec::Protobuf;
/// Most messages per hop request unless told otherwise (`HOP_BATCH`).
pub(crate) const DEFAULT_HOP_BATCH: usize = 64;
/// How long a batch of single messages waits for more unless told otherwise
/// (`HOP_LINGER_US`): not at all.
pub(crate) const DEFAULT_HOP_LINGER: Duration = Duration::ZERO;
/// Most batch requests of single messages out at once unless told otherwise
/// (`HOP_IN_FLIGHT`).
pub(crate) const DEFAULT_HOP_IN_FLIGHT: usize = 2;
/// Whether single messages are coalesced into batches unless told otherwise
/// (`HOP_BATCH_HTTP`).
pub(crate) const DEFAULT_BATCH_UNARY: bool = true;
/// Time allowed for one hop request unless told otherwise (`HOP_TIMEOUT_MS`).
pub(crate) const DEFAULT_HOP_TIMEOUT: Duration = Duration::from_secs(5);

/// How the forwarder is set up.
#[derive(Debug, Clone)]
pub struct ForwarderConfig {
    /// Base URL of the processor, e.g. `http://127.0.0.1:8082`.
    pub processor_url: Uri,
    /// Connection and buffer management.
    pub mode: ClientMode,
    /// Protocol of the hop.
    pub protocol: HopProtocol,
    /// Encoding of the hop's bodies.
    pub codec: Codec,
    /// Most messages per hop request; 1 sends every message on its own.
    pub batch: usize,
    /// How long a batch of single messages waits for more once the hop has room for it
    /// (zero: it leaves at once with what is ready; see `client/batcher.rs`).
    pub linger: Duration,
    /// Most batch requests of single messages out at once; messages that arrive while they
    /// are out form the next batch.
    pub max_in_flight: usize,
    /// Coalesce concurrent single messages into batches too.
    pub batch_unary: bool,
    /// Time allowed for one hop request, connecting included.
    pub timeout: Duration,
    /// Idle connections kept per host in pooled mode.
    pub max_idle_per_host: usize,
    /// Largest request body the processor accepts (its body limit): batches are cut so
    /// that none is larger, and a message that does not fit even alone is refused.
    pub max_request_bytes: usize,
    /// TLS for an `https` processor: whom to trust, what to present; the system's roots
    /// when `None`.
    pub tls: Option<HopTls>,
    /// The processor's bearer token (`PROCESSOR_TOKEN`), sent on every request to it.
    pub processor_token: Option<Secret>,
}

impl ForwarderConfig {
    /// The defaults for a processor at `processor_url`.
    pub fn new(processor_url: Uri) -> ForwarderConfig {
        ForwarderConfig {
            processor_url,
            mode: DEFAULT_CLIENT_MODE,
            protocol: DEFAULT_HOP_PROTOCOL,
            codec: DEFAULT_HOP_CODEC,
            batch: DEFAULT_HOP_BATCH,
            linger: DEFAULT_HOP_LINGER,
            max_in_flight: DEFAULT_HOP_IN_FLIGHT,
            batch_unary: DEFAULT_BATCH_UNARY,
            timeout: DEFAULT_HOP_TIMEOUT,
            max_idle_per_host: 200,
            max_request_bytes: crate::domain::codec::PROCESSOR_BODY_LIMIT,
            tls: None,
            processor_token: None,
        }
    }

    /// The connector of a client for this processor: TLS with ALPN for `protocol` when the
    /// URL is `https`. Counts new connections into `opened`; with `timing`, reports each
    /// one's phases there.
    pub(crate) fn connector(
        &self,
        opened: Arc<AtomicU64>,
        timing: Option<connector::TimingSlot>,
    ) -> CountingConnector {
        let alpn = match self.protocol {
            HopProtocol::Http1 => ALPN_HTTP1,
            HopProtocol::H2c => ALPN_H2,
        };
        let https = self.processor_url.scheme_str() == Some("https");
        let fallback = (https && self.tls.is_none()).then(|| HopTls::trusting(&[]));
        let tls = self.tls.as_ref().or(fallback.as_ref());
        CountingConnector::new(opened, self.timeout, timing, tls.map(|tls| (tls, alpn)))
    }
}

/// Why a message could not be handed to the processor.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ForwardError {
    /// No connection could be made: the request was not sent.
    #[error("processor unreachable: {0}")]
    Unreachable(String),
    /// The request went out but the connection ended before a whole answer came back:
    /// the processor may have accepted the message.
    #[error("no complete answer from the processor: {0}")]
    Broken(String),
    /// The processor is full or shutting down; retry later.
    #[error("processor overloaded: {0}")]
    Overloaded(String),
    /// The processor refused the message itself.
    #[error("processor rejected the message: {0}")]
    Rejected(String),
    /// No answer in time.
    #[error("processor did not answer within {0:?}")]
    Timeout(Duration),
    /// The processor answered that its queue's broker did not confirm the message in time
    /// (504, or the outcome `UNCERTAIN`): the message may have been stored.
    #[error(
        "the processor's queue did not confirm the message in time, so it may have been \
         accepted: send it again under the same id to settle it"
    )]
    Uncertain,
    /// The message is larger than one request to the processor may be.
    #[error(
        "message too large: it takes {size} bytes on the way to the processor, whose limit \
         is {limit} bytes (PROCESSOR_BODY_LIMIT)"
    )]
    TooLarge {
        /// What the message takes in a request body.
        size: usize,
        /// The processor's body limit.
        limit: usize,
    },
    /// Any other answer.
    #[error("processor answered {status}: {message}")]
    Failed {
        /// HTTP status of the answer.
        status: u16,
        /// What it said.
        message: String,
    },
}

/// What became of a message the processor took.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Accepted {
    /// Queued now.
    New,
    /// Accepted earlier under the same id (within the de-duplication window): not queued
    /// again, and processed once.
    Duplicate,
}

/// The fate of one forwarded message.
pub type Forwarded = Result<Accepted, ForwardError>;

/// A processor answer, read whole.
#[derive(Debug)]
struct Answer {
    status: StatusCode,
    /// The answer carries [`REPLAYED_HEADER`].
    replayed: bool,
    body: Bytes,
}

impl ForwardError {
    /// Whether the processor may have accepted the message all the same: the request went
    /// out but no usable answer came back (a broken connection, no answer in time, an
    /// answer that cannot be read). A retry under the message's own id settles it.
    pub(crate) fn may_have_succeeded(&self) -> bool {
        match self {
            // Refused for its token, before the processor read the request.
            ForwardError::Failed { status: 401, .. } => false,
            ForwardError::Broken(_)
            | ForwardError::Timeout(_)
            | ForwardError::Uncertain
            | ForwardError::Failed { .. } => true,
            _ => false,
        }
    }
}

/// Counters of a forwarder.
#[derive(Debug, Clone, Copy, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ForwarderStats {
    /// Hop requests sent.
    pub requests: u64,
    /// TCP connections opened.
    pub connections_opened: u64,
    /// Requests that failed (no answer, or an error answer).
    pub failures: u64,
    /// 1 − opened / requests; `None` before the first request.
    pub connection_reuse: Option<f64>,
}

type HyperClient = Client<CountingConnector, Full<Bytes>>;

/// The processor client. Cheap to clone; clones share connections and counters.
#[derive(Debug, Clone)]
pub struct Forwarder {
    hop: Arc<Hop>,
    batcher: Option<Batcher>,
}

#[derive(Debug)]
struct Hop {
    config: ForwarderConfig,
    enqueue_uri: Uri,
    batch_uri: Uri,
    stats_uri: Uri,
    shared: HyperClient,
    connector: CountingConnector,
    buffers: BufferPool,
    requests: AtomicU64,
    opened: Arc<AtomicU64>,
    failures: AtomicU64,
    /// Time of each request carrying messages.
    latency: Arc<Histogram>,
    /// Messages per request.
    batch_sizes: Arc<Histogram>,
}

impl Forwarder {
    /// A forwarder for `config`; starts the batcher when `batch_unary` is on. Must be called
    /// inside a tokio runtime.
    pub fn new(mut config: ForwarderConfig) -> Forwarder {
        // The processor refuses larger batches.
        config.batch = config.batch.clamp(1, MAX_BATCH_MESSAGES);
        let opened = Arc::new(AtomicU64::new(0));
        let connector = config.connector(Arc::clone(&opened), None);
        let shared = build_client(&config, connector.clone(), true);
        let base = config.processor_url.to_string();
        let base = base.trim_end_matches('/');
        let uri = |path: &str| -> Uri {
            format!("{base}{path}")
                .parse()
                .unwrap_or_else(|_| Uri::from_static("http://127.0.0.1/"))
        };
        let hop = Arc::new(Hop {
            enqueue_uri: uri("/enqueue"),
            batch_uri: uri("/enqueue/batch"),
            stats_uri: uri("/stats"),
            shared,
            connector,
            buffers: BufferPool::new(1024),
            requests: AtomicU64::new(0),
            opened,
            failures: AtomicU64::new(0),
            latency: prometheus::HOP_DURATION.histogram(),
            batch_sizes: prometheus::HOP_BATCH.histogram(),
            config,
        });
        let batcher = (hop.config.batch_unary && hop.config.batch > 1)
            .then(|| Batcher::start(Arc::clone(&hop)));
        Forwarder { hop, batcher }
    }

    /// The configuration.
    pub fn config(&self) -> &ForwarderConfig {
        &self.hop.config
    }

    /// Hands one message to the processor; `Ok` once the processor accepted it.
    pub async fn forward(&self, msg: DataMessage) -> Forwarded {
        let len = self.hop.entry_len(MessageRef::from(&msg))?;
        match &self.batcher {
            Some(batcher) => batcher.forward(&self.hop, msg, len).await,
            None => self.hop.send_one(msg).await,
        }
    }

    /// The bytes `msg` adds to a batch request (see [`crate::domain::codec::entry_len`]), or
    /// `TooLarge` when no request to the processor could carry it.
    pub fn entry_len(&self, msg: MessageRef<'_>) -> Result<usize, ForwardError> {
        self.hop.entry_len(msg)
    }

    /// Hands several messages to the processor: batch requests of at most `batch` messages
    /// and at most `max_request_bytes` (one request per message when batching is off). One
    /// result per message, in order; a message too large for any request is `TooLarge`.
    pub async fn forward_batch(&self, msgs: Vec<DataMessage>) -> Vec<Forwarded> {
        let mut results = Vec::with_capacity(msgs.len());
        let mut fitting = Vec::with_capacity(msgs.len());
        for msg in msgs {
            match self.hop.entry_len(MessageRef::from(&msg)) {
                Ok(len) => fitting.push((msg, len)),
                Err(err) => {
                    // Those before it go first, so that results stay in the messages' order.
                    results.extend(self.forward_measured(std::mem::take(&mut fitting)).await);
                    results.push(Err(err));
                }
            }
        }
        results.extend(self.forward_measured(fitting).await);
        results
    }

    /// [`Forwarder::forward_batch`] for messages each paired with its
    /// [`Forwarder::entry_len`], so that nothing is measured twice.
    pub(crate) async fn forward_measured(&self, msgs: Vec<(DataMessage, usize)>) -> Vec<Forwarded> {
        let mut results = Vec::with_capacity(msgs.len());
        if self.hop.config.batch <= 1 {
            for (msg, _) in msgs {
                results.push(self.hop.send_one(msg).await);
            }
            return results;
        }
        let mut chunk = Chunk::with_capacity(msgs.len().min(self.hop.config.batch));
        for (msg, len) in msgs {
            if !self.hop.has_room(&chunk, len) {
                results.extend(self.hop.send_chunk(&mut chunk).await);
            }
            chunk.push(msg, len);
        }
        results.extend(self.hop.send_chunk(&mut chunk).await);
        results
    }

    /// The processor's `/stats` answer.
    pub async fn processor_stats(&self) -> Result<serde_json::Value, ForwardError> {
        let request = Request::builder()
            .method(Method::GET)
            .uri(self.hop.stats_uri.clone())
            .body(Full::new(Bytes::new()))
            .map_err(|err| ForwardError::Unreachable(err.to_string()))?;
        let Answer { status, body, .. } = self.hop.exchange(request).await?;
        if status != StatusCode::OK {
            return Err(status_error(status, &body));
        }
        serde_json::from_slice(&body).map_err(|err| ForwardError::Failed {
            status: status.as_u16(),
            message: format!("unreadable stats: {err}"),
        })
    }

    /// The time of each hop request carrying messages, answered or not.
    pub(crate) fn hop_latency(&self) -> &Arc<Histogram> {
        &self.hop.latency
    }

    /// The messages of each hop request.
    pub(crate) fn hop_batch(&self) -> &Arc<Histogram> {
        &self.hop.batch_sizes
    }

    /// Current counters.
    pub fn stats(&self) -> ForwarderStats {
        let requests = self.hop.requests.load(Ordering::Relaxed);
        let opened = self.hop.opened.load(Ordering::Relaxed);
        ForwarderStats {
            requests,
            connections_opened: opened,
            failures: self.hop.failures.load(Ordering::Relaxed),
            connection_reuse: (requests > 0)
                .then(|| (1.0 - opened as f64 / requests as f64).max(0.0)),
        }
    }
}

/// Messages gathered for one batch request, with the bytes their body will take.
#[derive(Debug)]
struct Chunk<T> {
    items: Vec<T>,
    bytes: usize,
}

impl<T> Chunk<T> {
    fn with_capacity(capacity: usize) -> Self {
        Chunk {
            items: Vec::with_capacity(capacity),
            bytes: BATCH_FRAME_BYTES,
        }
    }

    fn push(&mut self, item: T, len: usize) {
        self.items.push(item);
        self.bytes += len;
    }

    fn take(&mut self) -> Vec<T> {
        self.bytes = BATCH_FRAME_BYTES;
        std::mem::take(&mut self.items)
    }
}

impl Hop {
    /// What `msg` adds to a batch body, or `TooLarge` when it would not fit in one even
    /// alone.
    fn entry_len(&self, msg: MessageRef<'_>) -> Result<usize, ForwardError> {
        let size = entry_len(self.config.codec, msg);
        let limit = self.config.max_request_bytes;
        if BATCH_FRAME_BYTES + size > limit {
            return Err(ForwardError::TooLarge { size, limit });
        }
        Ok(size)
    }

    /// Whether a message of `len` bytes may join `chunk` without passing the batch size or
    /// the body limit.
    fn has_room<T>(&self, chunk: &Chunk<T>, len: usize) -> bool {
        chunk.items.len() < self.config.batch && chunk.bytes + len <= self.config.max_request_bytes
    }

    async fn send_chunk(&self, chunk: &mut Chunk<DataMessage>) -> Vec<Forwarded> {
        if chunk.items.is_empty() {
            return Vec::new();
        }
        self.send_batch(chunk.take()).await
    }

    async fn send_one(&self, msg: DataMessage) -> Forwarded {
        let answer = self.post(&self.enqueue_uri, &msg, 1).await?;
        lone_answer(&answer)
    }

    /// Sends `msgs` in one batch request (a single message as a request of its own, the
    /// same path as without batching).
    async fn send_batch(&self, mut msgs: Vec<DataMessage>) -> Vec<Forwarded> {
        if msgs.len() == 1
            && let Some(msg) = msgs.pop()
        {
            return vec![self.send_one(msg).await];
        }
        let count = msgs.len();
        let batch = DataMessageBatch { messages: msgs };
        let answer = match self.post(&self.batch_uri, &batch, count).await {
            Ok(Answer {
                status: StatusCode::OK,
                body,
                ..
            }) => self
                .config
                .codec
                .decode::<BatchOutcome>(&body)
                .map_err(|err| ForwardError::Failed {
                    status: 200,
                    message: err.message,
                }),
            Ok(answer) => Err(status_error(answer.status, &answer.body)),
            Err(err) => Err(err),
        };
        match answer {
            Ok(answer) if answer.outcomes.len() == count => {
                answer.outcomes.into_iter().map(outcome_result).collect()
            }
            Ok(answer) => {
                let err = ForwardError::Failed {
                    status: 200,
                    message: format!("{} outcomes for {count} messages", answer.outcomes.len()),
                };
                vec![Err(err); count]
            }
            Err(err) => vec![Err(err); count],
        }
    }

    /// Encodes `body` (holding `messages` messages) with the configured codec and POSTs it
    /// to `uri`.
    async fn post<T>(&self, uri: &Uri, body: &T, messages: usize) -> Result<Answer, ForwardError>
    where
        T: prost::Message + Serialize,
    {
        let codec = self.config.codec;
        let pooled = self.config.mode == ClientMode::Pooled;
        let mut buffer = if pooled {
            self.buffers.take()
        } else {
            bytes::BytesMut::new()
        };
        match codec {
            Codec::Json => {
                // Writing generated types into memory cannot fail.
                let _ = serde_json::to_writer((&mut buffer).writer(), body);
            }
            Codec::Protobuf => {
                buffer.reserve(body.encoded_len());
                let _ = body.encode(&mut buffer);
            }
        }
        let payload = buffer.freeze();
        let answer = self.post_bytes(uri, payload.clone(), messages).await;
        if pooled {
            self.buffers.give_back(payload);
        }
        answer
    }

    /// POSTs `payload` (`messages` messages, encoded with the configured codec) to `uri`,
    /// timing the request and counting its messages.
    async fn post_bytes(
        &self,
        uri: &Uri,
        payload: Bytes,
        messages: usize,
    ) -> Result<Answer, ForwardError> {
        let request = Request::builder()
            .method(Method::POST)
            .uri(uri.clone())
            .header(header::CONTENT_TYPE, self.config.codec.content_type())
            .body(Full::new(payload))
            .map_err(|err| ForwardError::Unreachable(err.to_string()))?;
        let started = Instant::now();
        let answer = self.exchange(request).await;
        self.latency.observe_since(started);
        self.batch_sizes.observe(messages as u64);
        answer
    }

    /// Sends `request`, reads the whole answer (so the connection can be reused), within
    /// the timeout.
    async fn exchange(&self, mut request: Request<Full<Bytes>>) -> Result<Answer, ForwardError> {
        // Every request to the processor passes here: each carries its token.
        let token = self.config.processor_token.as_ref();
        if let Some(value) = token.and_then(Secret::authorization) {
            request
                .headers_mut()
                .insert(header::AUTHORIZATION, value.clone());
        }
        self.requests.fetch_add(1, Ordering::Relaxed);
        let fresh;
        let client = match self.config.mode {
            ClientMode::Pooled => &self.shared,
            ClientMode::Baseline => {
                fresh = build_client(&self.config, self.connector.clone(), false);
                &fresh
            }
        };
        let exchange = async {
            let response = client.request(request).await.map_err(|err| {
                let text = error_chain(&err);
                if err.is_connect() {
                    ForwardError::Unreachable(text)
                } else {
                    ForwardError::Broken(text)
                }
            })?;
            let status = response.status();
            let replayed = response.headers().contains_key(REPLAYED_HEADER);
            let body = Limited::new(response.into_body(), MAX_RESPONSE_BYTES)
                .collect()
                .await
                .map_err(|err| ForwardError::Broken(format!("reading the answer: {err}")))?
                .to_bytes();
            Ok(Answer {
                status,
                replayed,
                body,
            })
        };
        let result = tokio::time::timeout(self.config.timeout, exchange)
            .await
            .unwrap_or(Err(ForwardError::Timeout(self.config.timeout)));
        if result
            .as_ref()
            .is_ok_and(|answer| answer.status.is_success())
        {
            return result;
        }
        self.failures.fetch_add(1, Ordering::Relaxed);
        result
    }
}

pub(crate) fn build_client(
    config: &ForwarderConfig,
    connector: CountingConnector,
    shared: bool,
) -> HyperClient {
    let mut builder = Client::builder(TokioExecutor::new());
    builder
        .pool_timer(TokioTimer::new())
        .timer(TokioTimer::new());
    if shared {
        builder
            .pool_max_idle_per_host(config.max_idle_per_host)
            .pool_idle_timeout(Duration::from_secs(90));
    } else {
        builder.pool_max_idle_per_host(0);
    }
    if config.protocol == HopProtocol::H2c {
        builder.http2_only(true);
    }
    builder.build(connector)
}

fn outcome_result(outcome: crate::domain::proto::MessageOutcome) -> Forwarded {
    outcome_error(outcome.outcome, &outcome.error)
}

/// What the answer to a lone `/enqueue` means for its message.
fn lone_answer(answer: &Answer) -> Forwarded {
    match answer.status {
        StatusCode::ACCEPTED if answer.replayed => Ok(Accepted::Duplicate),
        StatusCode::ACCEPTED => Ok(Accepted::New),
        status => Err(status_error(status, &answer.body)),
    }
}

/// What the outcome `code` of a batch answer, with its `error` text, means for the message.
fn outcome_error(code: i32, error: &str) -> Forwarded {
    match Outcome::try_from(code) {
        Ok(Outcome::Accepted) => Ok(Accepted::New),
        Ok(Outcome::Duplicate) => Ok(Accepted::Duplicate),
        Ok(Outcome::Invalid) => Err(ForwardError::Rejected(error.to_owned())),
        Ok(Outcome::QueueFull | Outcome::ShuttingDown | Outcome::Unavailable) => {
            Err(ForwardError::Overloaded(error.to_owned()))
        }
        Ok(Outcome::Uncertain) => Err(ForwardError::Uncertain),
        _ => Err(ForwardError::Failed {
            status: 200,
            message: format!("unknown outcome {code}"),
        }),
    }
}

/// Maps an error answer of the processor to what the front doors report.
fn status_error(status: StatusCode, body: &[u8]) -> ForwardError {
    let message = serde_json::from_slice::<serde_json::Value>(body)
        .ok()
        .and_then(|v| v.get("error").and_then(|e| e.as_str()).map(str::to_owned))
        .unwrap_or_else(|| {
            status
                .canonical_reason()
                .unwrap_or("unknown status")
                .to_owned()
        });
    match status {
        StatusCode::SERVICE_UNAVAILABLE => ForwardError::Overloaded(message),
        StatusCode::GATEWAY_TIMEOUT => ForwardError::Uncertain,
        StatusCode::BAD_REQUEST | StatusCode::PAYLOAD_TOO_LARGE => ForwardError::Rejected(message),
        _ => ForwardError::Failed {
            status: status.as_u16(),
            message,
        },
    }
}

/// The error and its causes on one line ("connection refused" hides in the source chain).
pub(crate) fn error_chain(err: &(dyn std::error::Error + 'static)) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}
