//! The processor service: accepts messages over HTTP (`POST /enqueue`), queues them, and
//! runs the worker pool that processes them; reports on `/stats`, `/health`, `/metrics`.
//!
//! A message answered 202 is in the queue, and the queue is drained by the workers before
//! [`serve`] returns: shutting down loses nothing that was accepted. With the NATS queue
//! the queue is the shared stream: a 202 means JetStream stored the message, a 503 that it
//! did not, and a 504 (outcome `UNCERTAIN` in a batch) that it did not confirm in time and
//! may have stored it; shutting down processes what this processor fetched and leaves the
//! rest to the other processors.
//!
//! With `PROCESSOR_TOKEN` set, `/enqueue` and `/enqueue/batch` want it as a bearer token
//! (401 otherwise, before the body is read; see [`crate::serve::auth`]); `/stats`, `/health`,
//! `/ready` and `/metrics` stay open.

mod metrics;

use std::{
    future::Future,
    io,
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use axum::{
    Extension, Json, Router,
    body::Body,
    extract::State,
    http::{HeaderMap, StatusCode, header},
    response::{IntoResponse, Response},
    routing::{get, post},
};
use bytes::{Bytes, BytesMut};
use serde::Serialize;
use tokio::{net::TcpListener, sync::mpsc, task::JoinHandle};

use crate::{
    domain::answer::{self, Receipt},
    domain::budget::{Budget, BudgetStats, Charge, DEFAULT_QUEUE_BYTES},
    domain::codec::{
        Codec, MAX_BATCH_MESSAGES, PROTOBUF_CONTENT_TYPE, count_batch, decode_batch, decode_message,
    },
    domain::http_error::ApiError,
    domain::ids::MessageId,
    domain::message::{IdOrigin, MessageRef, unix_now},
    domain::proto::{BatchOutcome, DataMessage, MessageOutcome, Outcome},
    domain::queue::{
        AnyQueue, DEFAULT_DEDUP_IDS, DEFAULT_DEDUP_WINDOW, NatsConfig, NatsQueue, NatsStats,
        PublishError, Published, Queue, QueueStats, QueueType, RecentIds, Stamp,
    },
    domain::validate::{self, Invalid},
    domain::wire::{self, ReadMessage, WireEntries},
    domain::worker::{PoolStats, ProcessFn, WorkerMode, WorkerPool, WorkerStats, seed_processing},
    serve::auth::{Guard, Scope, Secret},
    serve::body::{linger, read_body_charged},
    serve::clients::Peer,
    serve::debug,
    serve::net::BoundedListener,
    serve::prometheus::Registry,
    serve::ready,
    serve::refusals::Refusals,
    serve::server::{self, HttpLimits, Protocols},
};

/// The target of this module's log lines: its public path, which `RUST_LOG` names.
const LOG_TARGET: &str = "system::processor";

/// The default of [`ProcessorConfig::body_limit`]; the front doors' processor client
/// assumes it unless told otherwise (`PROCESSOR_BODY_LIMIT` sets both).
pub(crate) const DEFAULT_BODY_LIMIT: usize = crate::domain::codec::PROCESSOR_BODY_LIMIT;
/// The processor's port unless told otherwise (`PROCESSOR_PORT`); the front doors'
/// [`crate::hop::client::DEFAULT_PROCESSOR_URL`] points at it.
pub(crate) const DEFAULT_PORT: u16 = 8082;
/// The queue the processor runs unless told otherwise (`QUEUE_TYPE`).
pub(crate) const DEFAULT_QUEUE_TYPE: QueueType = QueueType::Pooled;
/// Most messages waiting in the queue unless told otherwise (`QUEUE_SIZE`).
pub(crate) const DEFAULT_QUEUE_SIZE: usize = 1000;
/// Workers in the pool unless told otherwise (`PROCESSOR_WORKERS`).
pub(crate) const DEFAULT_WORKERS: usize = 4;

/// What one outcome of an accepted message takes in a batch answer (its id and code).
const OUTCOME_BYTES: usize = 44;

/// The realm of the processor's `WWW-Authenticate` challenges.
const REALM: &str = "processor";

/// Most result batches the reader takes from the channel per wake-up.
const RESULTS_BATCH: usize = 64;

/// How a processor is set up.
#[derive(Clone)]
pub struct ProcessorConfig {
    /// Which queue implementation to run.
    pub queue_type: QueueType,
    /// Most messages waiting at once.
    pub queue_size: usize,
    /// Number of workers.
    pub workers: usize,
    /// How workers take messages and hand results on.
    pub worker_mode: WorkerMode,
    /// Largest accepted request body, in bytes.
    pub body_limit: usize,
    /// Most connections open at once.
    pub max_connections: usize,
    /// Most results waiting between the workers and whoever reads them (the channel holds
    /// whole batches: this divided by the batch size of `worker_mode`, at least one).
    pub results_capacity: usize,
    /// Protocol limits, deadlines and the shutdown drain.
    pub limits: HttpLimits,
    /// What a worker does to a message.
    pub process: ProcessFn,
    /// Serve `GET /debug/pprof/profile` (see [`crate::serve::debug`]).
    pub profile_endpoint: bool,
    /// Where the NATS queue lives, when `queue_type` is `Nats`. [`serve`] takes the
    /// stream's capacity from `queue_size` and the fetch batch from `workers`.
    pub nats: NatsConfig,
    /// Most ids the in-memory queues remember to answer repeats as duplicates (0: none).
    pub dedup_ids: usize,
    /// How long they remember an id.
    pub dedup_window: Duration,
    /// The process's budget of bytes in flight (bodies being read, queued messages).
    pub budget: Arc<Budget>,
    /// Most bytes of messages waiting in an in-memory queue (within `budget`).
    pub queue_bytes: usize,
    /// Where the processor's metric families go: a registry shared with other roles of the
    /// process, or `None` for one of its own (what its `/metrics` shows).
    pub metrics: Option<Registry>,
    /// TLS on the processor's port (ALPN `h2`, `http/1.1`; with a client verifier for
    /// mutual TLS); plain HTTP/1.1 and h2c when `None`.
    pub tls: Option<Arc<rustls::ServerConfig>>,
    /// The bearer token wanted on `/enqueue` and `/enqueue/batch` (`PROCESSOR_TOKEN`);
    /// open when `None`.
    pub processor_token: Option<Secret>,
    /// The bearer token wanted on `/debug/*` (`DEBUG_TOKEN`); open when `None`.
    pub debug_token: Option<Secret>,
}

impl Default for ProcessorConfig {
    fn default() -> Self {
        ProcessorConfig {
            queue_type: DEFAULT_QUEUE_TYPE,
            queue_size: DEFAULT_QUEUE_SIZE,
            workers: DEFAULT_WORKERS,
            worker_mode: WorkerMode::default(),
            body_limit: DEFAULT_BODY_LIMIT,
            max_connections: server::DEFAULT_MAX_CONNECTIONS,
            results_capacity: 1024,
            limits: HttpLimits {
                // The header timer also closes idle keep-alive connections (see
                // `HttpLimits`). The processor's clients are the front doors' pools, which
                // drop idle connections after 90 s; closing them earlier here would race
                // with requests they are sending.
                header_read_timeout: HttpLimits::default().idle_timeout,
                ..HttpLimits::default()
            },
            process: Arc::new(seed_processing),
            profile_endpoint: debug::DEFAULT_PROFILE_ENDPOINT,
            nats: NatsConfig::default(),
            dedup_ids: DEFAULT_DEDUP_IDS,
            dedup_window: DEFAULT_DEDUP_WINDOW,
            budget: Budget::process_default(),
            queue_bytes: DEFAULT_QUEUE_BYTES,
            metrics: None,
            tls: None,
            processor_token: None,
            debug_token: None,
        }
    }
}

impl std::fmt::Debug for ProcessorConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ProcessorConfig")
            .field("queue_type", &self.queue_type)
            .field("queue_size", &self.queue_size)
            .field("workers", &self.workers)
            .field("worker_mode", &self.worker_mode)
            .field("body_limit", &self.body_limit)
            .field("max_connections", &self.max_connections)
            .field("nats", &self.nats)
            .finish_non_exhaustive()
    }
}

/// Everything `/stats` reports.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ProcessorStats {
    /// Always `processor`.
    pub service: &'static str,
    /// Seconds since start.
    pub uptime_seconds: u64,
    /// The queue implementation.
    pub queue_type: &'static str,
    /// How the workers take messages (`baseline` or `batched`).
    pub worker_mode: &'static str,
    /// Queue counters.
    pub queue: QueueStats,
    /// Worker counters.
    pub workers: WorkerStats,
    /// Connections accepted since start.
    pub connections_accepted: u64,
    /// Results handed on by the workers.
    pub results: u64,
    /// Requests to `/enqueue`.
    pub enqueue_requests: u64,
    /// Requests to `/enqueue/batch`.
    pub batch_requests: u64,
    /// Ids remembered to answer repeats as duplicates (in-memory queues).
    pub recent_ids: u64,
    /// The process's budget of bytes in flight.
    pub memory_budget: BudgetStats,
    /// Counters of the NATS side, with the NATS queue only.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub nats: Option<NatsStats>,
}

/// A running processor: its queue, workers and the reader of their results.
#[derive(Debug)]
pub struct Processor {
    state: Arc<AppState>,
    pool: WorkerPool<AnyQueue>,
    results_reader: JoinHandle<()>,
    /// Begun when shutdown begins: `/ready` answers 503 from then on.
    draining: ready::Draining,
}

#[derive(Debug)]
struct AppState {
    queue: Arc<AnyQueue>,
    budget: Arc<Budget>,
    recent: RecentIds,
    pool_stats: Arc<PoolStats>,
    worker_mode: WorkerMode,
    profile_endpoint: bool,
    /// `/enqueue` and `/enqueue/batch` (`PROCESSOR_TOKEN`).
    enqueue_guard: Guard,
    /// `/debug/*` (`DEBUG_TOKEN`).
    debug_guard: Guard,
    started: Instant,
    body_limit: usize,
    body_timeout: Duration,
    connections: Arc<AtomicU64>,
    /// Connections and requests the port refused, by reason.
    refusals: Arc<Refusals>,
    results: Arc<AtomicU64>,
    enqueue_requests: AtomicU64,
    batch_requests: AtomicU64,
    metrics: Registry,
}

impl Processor {
    /// Starts an in-memory queue and the workers on the current tokio runtime.
    ///
    /// A NATS queue needs a connection first: [`serve`] makes it, or call
    /// [`NatsQueue::connect`] and `Processor::start_with_queue`. Given
    /// `QueueType::Nats`, this starts a processor that refuses every message (see
    /// [`AnyQueue::new`]).
    pub fn start(config: &ProcessorConfig, connections: Arc<AtomicU64>) -> Processor {
        let queue = in_memory_queue(config);
        Processor::start_with_queue(queue, config, connections)
    }

    /// Starts the workers on `queue` (whose kind wins over `config.queue_type`).
    pub(crate) fn start_with_queue(
        queue: AnyQueue,
        config: &ProcessorConfig,
        connections: Arc<AtomicU64>,
    ) -> Processor {
        let queue = Arc::new(queue);
        let batches = config.results_capacity / config.worker_mode.batch();
        let (results_tx, mut results_rx) = mpsc::channel(batches.max(1));
        let pool = WorkerPool::start(
            Arc::clone(&queue),
            config.workers,
            config.worker_mode,
            Arc::clone(&config.process),
            results_tx,
        );
        let results = Arc::new(AtomicU64::new(0));
        let counted = Arc::clone(&results);
        // Results are the end of the line in this system; count them so the channel drains.
        let results_reader = tokio::spawn(async move {
            let mut batch = Vec::with_capacity(RESULTS_BATCH);
            loop {
                if results_rx.recv_many(&mut batch, RESULTS_BATCH).await == 0 {
                    break;
                }
                let got: usize = batch.drain(..).map(|results| results.len()).sum();
                counted.fetch_add(got as u64, Ordering::Relaxed);
            }
        });
        let state = Arc::new(AppState {
            queue,
            budget: Arc::clone(&config.budget),
            recent: RecentIds::new(config.dedup_ids, config.dedup_window, &config.budget),
            pool_stats: pool.stats(),
            worker_mode: config.worker_mode,
            profile_endpoint: config.profile_endpoint,
            enqueue_guard: Guard::new(Scope::Processor, REALM, config.processor_token.clone()),
            debug_guard: Guard::new(Scope::Debug, REALM, config.debug_token.clone()),
            started: Instant::now(),
            body_limit: config.body_limit,
            body_timeout: config.limits.body_timeout,
            connections,
            refusals: Arc::default(),
            results,
            enqueue_requests: AtomicU64::new(0),
            batch_requests: AtomicU64::new(0),
            metrics: config.metrics.clone().unwrap_or_default(),
        });
        metrics::register(&state.metrics, &state);
        Processor {
            state,
            pool,
            results_reader,
            draining: ready::Draining::default(),
        }
    }

    /// The HTTP routes.
    pub fn router(&self) -> Router {
        let enqueue = Router::new()
            .route("/enqueue", post(enqueue))
            .route("/enqueue/batch", post(enqueue_batch));
        Router::new()
            .merge(self.state.enqueue_guard.protect(enqueue))
            .route("/stats", get(stats))
            .route("/health", get(health))
            .merge(self.state.metrics.routes())
            .merge(processor_routes(
                Arc::clone(&self.state.queue),
                self.draining.clone(),
            ))
            .merge(debug::routes(
                self.state.profile_endpoint,
                &self.state.debug_guard,
            ))
            .fallback(crate::serve::body::not_found)
            .method_not_allowed_fallback(crate::serve::body::method_not_allowed)
            .with_state(Arc::clone(&self.state))
    }

    /// Current counters.
    pub fn stats(&self) -> ProcessorStats {
        self.state.stats()
    }

    /// Closes the queue, waits until every accepted message is processed and every result
    /// read, and returns the final counters.
    pub async fn stop(self) -> ProcessorStats {
        self.draining.begin();
        self.pool.stop().await;
        if let Err(err) = self.results_reader.await {
            tracing::error!(target: LOG_TARGET, %err, "results reader ended abnormally");
        }
        self.state.stats()
    }
}

impl AppState {
    /// Reads a request: its codec (415 when it has none we read, once the body was thrown
    /// away) and its body within the limits, the body's bytes charged to the budget as they
    /// arrive; refusals are counted for `peer`.
    async fn read_request(
        &self,
        peer: Option<Extension<Peer>>,
        headers: &HeaderMap,
        body: Body,
    ) -> Result<(Codec, Bytes, Charge), ApiError> {
        let codec = match Codec::from_headers(headers) {
            Ok(codec) => codec,
            Err(err) => {
                linger(headers, body).await;
                return Err(err);
            }
        };
        let peer = peer.map(|Extension(peer)| peer);
        let (bytes, charge) = read_body_charged(
            headers,
            body,
            self.body_limit,
            self.body_timeout,
            &self.budget,
            peer.as_ref(),
        )
        .await?;
        Ok((codec, bytes, charge))
    }

    fn stats(&self) -> ProcessorStats {
        ProcessorStats {
            service: "processor",
            uptime_seconds: self.started.elapsed().as_secs(),
            queue_type: self.queue.kind().as_str(),
            worker_mode: self.worker_mode.as_str(),
            queue: self.queue.stats(),
            workers: self.pool_stats.snapshot(),
            connections_accepted: self.connections.load(Ordering::Relaxed),
            results: self.results.load(Ordering::Relaxed),
            enqueue_requests: self.enqueue_requests.load(Ordering::Relaxed),
            batch_requests: self.batch_requests.load(Ordering::Relaxed),
            recent_ids: self.recent.len() as u64,
            memory_budget: self.budget.stats(),
            nats: self.queue.nats_stats(),
        }
    }
}

/// Serves the processor on `listener` until `shutdown` completes, then stops accepting,
/// lets open requests finish (within the drain timeout), processes everything accepted and
/// returns the final counters. With `QueueType::Nats` it first connects to NATS, and fails
/// when it cannot.
pub async fn serve(
    listener: TcpListener,
    config: ProcessorConfig,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> io::Result<ProcessorStats> {
    let queue = match config.queue_type {
        QueueType::Nats => {
            let nats = NatsConfig {
                capacity: config.queue_size,
                fetch_batch: config.workers.saturating_mul(2),
                ..config.nats.clone()
            };
            let queue = NatsQueue::connect(nats).await.map_err(io::Error::other)?;
            tracing::info!(target: LOG_TARGET,
                url = %config.nats.shown_url(),
                stream = %config.nats.stream,
                "connected to NATS"
            );
            AnyQueue::Nats(queue)
        }
        _ => in_memory_queue(&config),
    };
    let listener = BoundedListener::new(listener, config.max_connections);
    let processor = Processor::start_with_queue(queue, &config, listener.accepted_counter());
    let listener = listener.counting(&processor.state.refusals);
    let shutdown = processor.draining.clone().after(shutdown);
    server::serve(
        listener,
        processor.router(),
        config.limits,
        Protocols::Auto,
        config.tls,
        shutdown,
    )
    .await;
    let stats = processor.stop().await;
    tracing::info!(target: LOG_TARGET,
        accepted = stats.queue.enqueued,
        processed = stats.workers.processed,
        "processor stopped"
    );
    Ok(stats)
}

/// The in-memory queue `config` asks for, bounded by count and by bytes.
fn in_memory_queue(config: &ProcessorConfig) -> AnyQueue {
    let bytes = Budget::child(&config.budget, "QUEUE_BYTES", config.queue_bytes);
    AnyQueue::with_bytes(config.queue_type, config.queue_size, bytes)
}

async fn enqueue(
    State(state): State<Arc<AppState>>,
    peer: Option<Extension<Peer>>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    state.enqueue_requests.fetch_add(1, Ordering::Relaxed);
    let (codec, bytes, _charge) = state.read_request(peer, &headers, body).await?;
    let mut msg = decode_message(codec, &bytes)?;
    complete(&mut msg, state.queue.kind())?;
    // Only an id a client gave is remembered: one assigned cannot come again.
    let msg_ref = MessageRef::from(&msg);
    let published = state
        .queue
        .publish_once_at(
            msg_ref,
            msg_ref.dedup_key(),
            &state.recent,
            unix_now(),
            Stamp::now(),
        )
        .await
        .map_err(publish_error)?;
    Ok(Receipt::new(msg.id, published == Published::Duplicate).into_response())
}

/// Queues every message of a batch that it can, and says for each what became of it. The
/// answer is 200 whenever the batch itself could be read: refusals are per message.
async fn enqueue_batch(
    State(state): State<Arc<AppState>>,
    peer: Option<Extension<Peer>>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    state.batch_requests.fetch_add(1, Ordering::Relaxed);
    let (codec, bytes, _charge) = state.read_request(peer, &headers, body).await?;
    if codec == Codec::Protobuf {
        return enqueue_wire_batch(&state, &bytes).await;
    }
    let mut messages = decode_batch(codec, &bytes, MAX_BATCH_MESSAGES)?;
    let checked: Vec<Result<(), ApiError>> = messages
        .iter_mut()
        .map(|capped| {
            validate::entries(capped.entries)
                .map_err(|err| ApiError::bad_request(err.to_string()))
                .and_then(|()| complete(&mut capped.message, state.queue.kind()))
        })
        .collect();
    let queue = &*state.queue;
    let pairs = messages.iter().map(|capped| &capped.message).zip(&checked);
    let at = At {
        recent: &state.recent,
        now: unix_now(),
        stamp: Stamp::now(),
    };
    let outcomes = if let AnyQueue::Nats(_) = queue {
        // Each publish waits for a broker round trip: have them all in flight at once.
        // The batch is bounded by the body limit, the publishes by the queue's own bound.
        let publishes = pairs.map(|(msg, checked)| publish_one(queue, &at, msg, checked));
        futures_util::future::join_all(publishes).await
    } else {
        let mut outcomes = Vec::with_capacity(messages.len());
        for (msg, checked) in pairs {
            outcomes.push(publish_one(queue, &at, msg, checked).await);
        }
        outcomes
    };
    let mut answer = BatchOutcome {
        outcomes: Vec::with_capacity(messages.len()),
        accepted: 0,
    };
    for (capped, (outcome, error)) in messages.into_iter().zip(outcomes) {
        if outcome == Outcome::Accepted {
            answer.accepted += 1;
        }
        answer.outcomes.push(MessageOutcome {
            message_id: capped.message.id,
            outcome: outcome as i32,
            error,
        });
    }
    Ok(codec.respond(StatusCode::OK, &answer))
}

/// A protobuf batch read in place: each message is read once (its metadata entries into
/// one table for the batch), checked and published from the bytes it arrived in (the
/// pooled queue copies it straight into a slot), and the answer is written as it goes, so
/// nothing is allocated per message.
async fn enqueue_wire_batch(state: &AppState, body: &[u8]) -> Result<Response, ApiError> {
    let count = count_batch(body, MAX_BATCH_MESSAGES)?;
    let invalid = |err: wire::WireError| ApiError::bad_request(answer::invalid_protobuf(&err));
    let id_source = state.queue.kind().id_source();
    let now = unix_now();
    // Every message is read before any is published: a malformed batch publishes nothing.
    let mut entries = WireEntries::from_cache();
    let mut messages = Vec::with_capacity(count);
    for entry in wire::batch_entries(body) {
        let msg = ReadMessage::read(entry.map_err(invalid)?, &mut entries).map_err(invalid)?;
        let id = msg.view(&entries).id.is_empty();
        messages.push((msg, id.then(|| MessageId::generate(id_source))));
    }
    let completed = messages.iter().map(|(msg, id)| {
        let sent = msg.view(&entries);
        (sent, completed(&sent, id.as_ref(), now))
    });
    let queue = &*state.queue;
    let at = At {
        recent: &state.recent,
        now,
        stamp: Stamp::now(),
    };
    let outcomes = if let AnyQueue::Nats(_) = queue {
        // Each publish waits for a broker round trip: have them all in flight at once.
        let publishes = completed
            .clone()
            .map(|(sent, msg)| publish_view(queue, &at, sent, msg));
        futures_util::future::join_all(publishes).await
    } else {
        let mut outcomes = Vec::with_capacity(count);
        for (sent, msg) in completed.clone() {
            outcomes.push(publish_view(queue, &at, sent, msg).await);
        }
        outcomes
    };
    let mut answer = BytesMut::with_capacity(count * OUTCOME_BYTES + 8);
    let mut accepted = 0u32;
    for ((_, msg), (outcome, error)) in completed.zip(outcomes) {
        accepted += u32::from(outcome == Outcome::Accepted);
        wire::put_outcome(
            msg.id,
            outcome as i32,
            error.as_deref().unwrap_or(""),
            &mut answer,
        );
    }
    wire::put_accepted(accepted, &mut answer);
    entries.into_cache();
    Ok((
        StatusCode::OK,
        [(header::CONTENT_TYPE, PROTOBUF_CONTENT_TYPE)],
        answer.freeze(),
    )
        .into_response())
}

/// `msg` with the id (when it had none: then marked assigned) and the time (when it had
/// none) the processor gives.
fn completed<'a>(msg: &MessageRef<'a>, id: Option<&'a MessageId>, now: i64) -> MessageRef<'a> {
    MessageRef {
        id: id.map_or(msg.id, MessageId::as_str),
        timestamp: if msg.timestamp == 0 {
            now
        } else {
            msg.timestamp
        },
        origin: if id.is_some() {
            IdOrigin::ASSIGNED
        } else {
            msg.origin
        },
        ..*msg
    }
}

/// What the messages of one request are published with: the ids accepted lately, the
/// request's time in Unix seconds and its [`Stamp`] (one clock reading per request).
struct At<'a> {
    recent: &'a RecentIds,
    now: i64,
    stamp: Stamp,
}

impl At<'_> {
    /// Publishes `msg`, remembering its id when a client gave it (one the system assigned
    /// cannot come again).
    async fn publish(
        &self,
        queue: &AnyQueue,
        msg: MessageRef<'_>,
    ) -> Result<Published, PublishError> {
        queue
            .publish_once_at(msg, msg.dedup_key(), self.recent, self.now, self.stamp)
            .await
    }
}

/// Checks `sent` (a message as it arrived) and publishes it as `msg` (completed); what
/// became of it, with the reason when it was not accepted.
async fn publish_view(
    queue: &AnyQueue,
    at: &At<'_>,
    sent: MessageRef<'_>,
    msg: MessageRef<'_>,
) -> (Outcome, Option<String>) {
    if let Err(err) = validate::check(sent) {
        return (Outcome::Invalid, Some(err.to_string()));
    }
    match at.publish(queue, msg).await {
        Ok(published) => (published_outcome(published), None),
        Err(err) => (outcome_of(err), Some(publish_error(err).message)),
    }
}

fn published_outcome(published: Published) -> Outcome {
    match published {
        Published::New => Outcome::Accepted,
        Published::Duplicate => Outcome::Duplicate,
    }
}

/// Publishes one message of a batch that passed its checks, and says what became of it.
async fn publish_one(
    queue: &AnyQueue,
    at: &At<'_>,
    msg: &DataMessage,
    checked: &Result<(), ApiError>,
) -> (Outcome, String) {
    match checked {
        Err(err) => (Outcome::Invalid, err.message.clone()),
        Ok(()) => match at.publish(queue, MessageRef::from(msg)).await {
            Ok(published) => (published_outcome(published), String::new()),
            Err(err) => (outcome_of(err), publish_error(err).message),
        },
    }
}

fn outcome_of(err: PublishError) -> Outcome {
    match err {
        PublishError::Full => Outcome::QueueFull,
        PublishError::Closed => Outcome::ShuttingDown,
        PublishError::Unavailable => Outcome::Unavailable,
        PublishError::Uncertain => Outcome::Uncertain,
        // Retry later, as with a full queue; the error names the setting.
        PublishError::IdsFull(_) => Outcome::QueueFull,
        PublishError::TooLarge | PublishError::InvalidId => Outcome::Invalid,
    }
}

/// Admits the message (see [`validate::admit`]): checked, with an id of the queue's kind
/// and the time filled in when they are missing.
fn complete(msg: &mut DataMessage, queue: QueueType) -> Result<(), ApiError> {
    validate::admit(msg, queue.id_source(), unix_now())
        .map_err(|err| ApiError::bad_request(err.to_string()))
}

fn publish_error(err: PublishError) -> ApiError {
    match err {
        PublishError::Full => ApiError::unavailable("queue is full; retry later"),
        PublishError::Closed => ApiError::unavailable("processor is shutting down; retry later"),
        PublishError::Unavailable => {
            ApiError::unavailable("queue broker (NATS) is unavailable; retry later")
        }
        PublishError::IdsFull(setting) => ApiError::unavailable(format!(
            "no room to remember the message's id for the de-duplication window ({setting}); \
             retry later"
        )),
        // Not 503, which says the message was not accepted: 504 says that the server
        // behind this one (the broker) did not answer in time, so it may have stored it.
        PublishError::Uncertain => ApiError::new(
            StatusCode::GATEWAY_TIMEOUT,
            "queue broker (NATS) did not confirm the message in time, so it may have been \
             stored: send it again under the same id to settle it",
        ),
        PublishError::InvalidId => ApiError::bad_request(Invalid::BadId.to_string()),
        PublishError::TooLarge => ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "message exceeds the largest message the queue broker accepts",
        ),
    }
}

async fn stats(State(state): State<Arc<AppState>>) -> Json<ProcessorStats> {
    Json(state.stats())
}

#[derive(Serialize)]
struct Health {
    status: &'static str,
}

async fn health() -> Json<Health> {
    Json(Health { status: "ok" })
}

/// The processor's readiness: open for messages and, with NATS, connected.
pub(crate) fn processor_verdict(queue: &AnyQueue, draining: &ready::Draining) -> ready::Verdict {
    if draining.has_begun() {
        return Err("the processor is shutting down: its queue is closed".to_owned());
    }
    if let AnyQueue::Nats(nats) = queue
        && !nats.is_connected()
    {
        return Err("the processor is not connected to NATS".to_owned());
    }
    Ok(())
}

/// `GET /ready` of the processor whose queue is `queue`.
pub(crate) fn processor_routes<S: Clone + Send + Sync + 'static>(
    queue: Arc<AnyQueue>,
    draining: ready::Draining,
) -> Router<S> {
    Router::new().route(
        "/ready",
        get(move || {
            let verdict = processor_verdict(&queue, &draining);
            async move { ready::answer(verdict) }
        }),
    )
}
