//! The NATS JetStream queue: processors on several machines share one work-queue stream and
//! one durable pull consumer, so each message goes to one worker of one processor.
//!
//! Invariants:
//! - `publish` returns `Ok` only after JetStream confirmed it stored the message (the 202
//!   rests on that); at most [`NatsConfig::max_pending_publishes`] publishes wait for that
//!   confirmation at once, and one more answers [`PublishError::Full`] without waiting;
//! - a refusal is certain or says it is not: a publish refused before it was handed to the
//!   client (disconnected, too many pending, closed) or refused by JetStream itself was not
//!   stored; a publish handed to the client whose confirmation did not come in time, or
//!   whose connection was lost meanwhile, is [`PublishError::Uncertain`], since the server
//!   may have stored it (and would store it after a pause that outlasted the timeout);
//! - a message leaves the stream only when a worker acknowledged it after processing, or
//!   after [`NatsConfig::max_deliver`] deliveries without an acknowledgement, when it is
//!   moved to the dead-letter stream and counted (at-least-once, never silently lost); a
//!   delivery whose processing failed is negatively acknowledged, so it comes back after
//!   [`NAK_DELAY`] rather than the whole ack wait; the one exception is a payload that
//!   does not decode as a message, which is dropped with a warning since no delivery could
//!   ever process it;
//! - nothing here is unbounded: the stream holds at most [`NatsConfig::capacity`] messages;
//!   a processor holds what its open pull requests asked for (about
//!   [`NatsConfig::fetch_batch`]), a channel of `fetch_batch` to the workers and one message
//!   per worker; every broker call has a timeout.
//!
//! The settings and the creation of the broker-side objects live in `nats/setup.rs`, the
//! credentials in `nats/auth.rs`, the background tasks (fetching, dead letters, stats) in
//! `nats/tasks.rs`; the tasks end when the queue is closed or dropped.

mod auth;
mod setup;
mod tasks;

pub use auth::{NatsAuth, NatsAuthError, NatsAuthSettings};
pub use setup::{
    DEFAULT_NATS_ACK_WAIT, DEFAULT_NATS_CONSUMER, DEFAULT_NATS_MAX_DELIVER,
    DEFAULT_NATS_MAX_PENDING, DEFAULT_NATS_REPLICAS, DEFAULT_NATS_STREAM, DEFAULT_NATS_TIMEOUT,
    DEFAULT_NATS_URL, NatsConfig, NatsError,
};

use std::{
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicU64, Ordering},
    },
    time::Duration,
};

use async_nats::{
    Client, ConnectErrorKind, ConnectOptions, Event, HeaderValue, Subject,
    connection::State,
    header::NATS_MESSAGE_ID,
    jetstream::{
        self, Context, ErrorCode,
        context::PublishErrorKind,
        message::{AckKind, Acker, PublishMessage},
    },
};
use bytes::Bytes;
use prost::Message as _;
use tokio::sync::{Mutex, mpsc, watch};

use super::{DedupKey, Delivery, PublishError, Published, QueueStats};

/// The target of this module's log lines: its public path, which `RUST_LOG` names.
const LOG_TARGET: &str = "system::queue::nats";
use crate::{domain::message::MessageRef, domain::proto::DataMessage};

/// How long JetStream waits before it delivers again a message whose processing failed:
/// long enough that a failure from a passing condition may be over, short enough that a
/// message that always fails reaches the dead-letter stream in seconds, not ack waits.
pub(crate) const NAK_DELAY: Duration = Duration::from_millis(500);

/// Counters of the NATS side, shown in `/stats` and `/metrics`.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct NatsStats {
    /// The name of the server this processor is connected to now (empty while it is not
    /// connected); with a cluster, the node it failed over to.
    pub server: String,
    /// Publishes JetStream confirmed.
    pub published: u64,
    /// Publishes JetStream did not confirm in time, or whose connection was lost before it
    /// did: each may have been stored, and its sender was told so.
    pub uncertain: u64,
    /// Messages this processor acknowledged after processing.
    pub acknowledged: u64,
    /// Deliveries this processor failed to process and negatively acknowledged, so that
    /// JetStream delivers them again (or dead-letters them after their last delivery).
    pub nacked: u64,
    /// Deliveries this processor received that were not the message's first.
    pub redelivered: u64,
    /// Messages this processor moved to the dead-letter stream.
    pub dead_lettered: u64,
    /// Messages in the stream not yet acknowledged (as last read from the server).
    pub pending: u64,
}

/// The JetStream-backed queue. Cloning gives another handle to the same queue.
#[derive(Debug, Clone)]
pub struct NatsQueue {
    inner: Option<Arc<Inner>>,
}

#[derive(Debug)]
struct Inner {
    jetstream: Context,
    client: Client,
    subject: Subject,
    /// The most one publish may take, from handing it to the client to the confirmation.
    timeout: Duration,
    counters: Arc<Counters>,
    closed: AtomicBool,
    /// Tells the background tasks to stop; dropping it (with the queue) stops them too.
    stop: watch::Sender<bool>,
    /// Fetched messages waiting for a worker. A tokio mutex because a worker holds it
    /// across the wait for the next message.
    fetched: Mutex<mpsc::Receiver<NatsDelivery>>,
}

#[derive(Debug, Default)]
struct Counters {
    published: AtomicU64,
    refused: AtomicU64,
    uncertain: AtomicU64,
    delivered: AtomicU64,
    redelivered: AtomicU64,
    acknowledged: AtomicU64,
    nacked: AtomicU64,
    dead_lettered: AtomicU64,
    pending: AtomicU64,
    waiting: AtomicU64,
    capacity: AtomicU64,
}

/// A message fetched from JetStream; [`Delivery::ack`] acknowledges it, [`Delivery::nack`]
/// has it delivered again after a short delay (half a second). Dropped without either it is delivered again
/// (to any processor) once the ack wait is over.
// Boxed so that `AnyDelivery` stays as small as the in-memory deliveries; the NATS path
// allocates per message anyway.
pub struct NatsDelivery(Box<Held>);

struct Held {
    message: DataMessage,
    acker: Acker,
    counters: Arc<Counters>,
}

impl NatsQueue {
    /// Connects to NATS, creates the stream and the consumer unless they exist, and starts
    /// fetching. Fails when the server cannot be reached within the request timeout, or
    /// refuses the credentials.
    pub async fn connect(config: NatsConfig) -> Result<NatsQueue, NatsError> {
        let url = config.shown_url();
        let credentials = |problem: String| NatsError::Credentials {
            url: url.clone(),
            problem,
        };
        let (servers, auth) = config
            .connect_to()
            .map_err(|problem| credentials(format!("NATS_URL: {problem}")))?;
        let options = auth
            .apply(ConnectOptions::new())
            .map_err(|err| credentials(err.to_string()))?;
        let (disconnections, disconnected) = watch::channel(0u64);
        let client = options
            .event_callback(move |event| {
                let disconnections = disconnections.clone();
                async move { on_event(&event, &disconnections) }
            })
            .connection_timeout(config.request_timeout)
            // The default backoff grows to 4 s; a shorter cap resumes service sooner
            // after the server comes back, for the price of a few more connection attempts.
            .reconnect_delay_callback(|attempts| {
                Duration::from_millis(100u64.saturating_mul(attempts as u64).min(1000))
            })
            .connect(servers)
            .await
            .map_err(|source| match source.kind() {
                ConnectErrorKind::AuthorizationViolation | ConnectErrorKind::Authentication => {
                    NatsError::Refused {
                        url: url.clone(),
                        source,
                    }
                }
                _ => NatsError::Connect {
                    url: url.clone(),
                    source,
                },
            })?;
        let jetstream = jetstream::ContextBuilder::new()
            .timeout(config.request_timeout)
            .max_ack_inflight(config.max_pending_publishes.max(1))
            // Refuse at once rather than wait: the same contract as a full memory queue.
            .backpressure_on_inflight(false)
            .build(client.clone());
        let consumer = set_up_at_start(&jetstream, &config).await?;
        let counters = Arc::new(Counters::default());
        counters
            .capacity
            .store(config.capacity as u64, Ordering::Relaxed);
        let (stop, stopped) = watch::channel(false);
        let (fetched_tx, fetched_rx) = mpsc::channel(config.fetch_batch.max(1));
        tasks::spawn(tasks::Tasks {
            jetstream: jetstream.clone(),
            config: config.clone(),
            consumer,
            counters: Arc::clone(&counters),
            stopped,
            disconnected,
            fetched: fetched_tx,
        })
        .await?;
        Ok(NatsQueue {
            inner: Some(Arc::new(Inner {
                jetstream,
                client,
                subject: Subject::from(config.subject()),
                timeout: config.request_timeout,
                counters,
                closed: AtomicBool::new(false),
                stop,
                fetched: Mutex::new(fetched_rx),
            })),
        })
    }

    /// A queue with no connection: every publish answers [`PublishError::Unavailable`] and
    /// consumers get `None` at once. It is what the synchronous `AnyQueue::new` can offer
    /// for `QueueType::Nats`, which needs [`NatsQueue::connect`].
    pub(crate) fn detached() -> NatsQueue {
        NatsQueue { inner: None }
    }

    /// Whether the client is connected to the server now (a detached queue never is).
    pub(crate) fn is_connected(&self) -> bool {
        self.inner
            .as_ref()
            .is_some_and(|inner| inner.client.connection_state() == State::Connected)
    }

    /// The NATS-side counters.
    pub fn nats_stats(&self) -> NatsStats {
        let Some(inner) = &self.inner else {
            return NatsStats::default();
        };
        let c = &inner.counters;
        let server = match inner.client.connection_state() {
            State::Connected => inner.client.server_info().server_name,
            _ => String::new(),
        };
        NatsStats {
            server,
            published: c.published.load(Ordering::Relaxed),
            uncertain: c.uncertain.load(Ordering::Relaxed),
            acknowledged: c.acknowledged.load(Ordering::Relaxed),
            nacked: c.nacked.load(Ordering::Relaxed),
            redelivered: c.redelivered.load(Ordering::Relaxed),
            dead_lettered: c.dead_lettered.load(Ordering::Relaxed),
            pending: c.pending.load(Ordering::Relaxed),
        }
    }

    /// Publishes `msg` and waits until JetStream confirms it stored it.
    pub async fn publish(&self, msg: MessageRef<'_>) -> Result<(), PublishError> {
        self.publish_once(msg, msg.dedup_key()).await.map(|_| ())
    }

    /// [`NatsQueue::publish`], with `key` as JetStream's de-duplication id (none: the
    /// system gave the message its id, which cannot come again), saying whether JetStream
    /// stored the message or found it a duplicate of one stored under the same key within
    /// the stream's duplicate window.
    pub async fn publish_once(
        &self,
        msg: MessageRef<'_>,
        key: Option<DedupKey<'_>>,
    ) -> Result<Published, PublishError> {
        let inner = self.inner.as_ref().ok_or(PublishError::Unavailable)?;
        let result = inner.publish(msg, key).await;
        let counter = match result {
            Ok(_) => &inner.counters.published,
            Err(PublishError::Uncertain) => &inner.counters.uncertain,
            Err(_) => &inner.counters.refused,
        };
        counter.fetch_add(1, Ordering::Relaxed);
        result
    }

    /// The next fetched message; `None` once the queue is closed and the messages already
    /// fetched are handed out.
    pub async fn consume(&self) -> Option<NatsDelivery> {
        let inner = self.inner.as_ref()?;
        let delivery = inner.fetched.lock().await.recv().await?;
        inner.counters.delivered.fetch_add(1, Ordering::Relaxed);
        Some(delivery)
    }

    /// A fetched message that is ready now, without waiting.
    pub fn try_consume(&self) -> Option<NatsDelivery> {
        let inner = self.inner.as_ref()?;
        let delivery = inner.fetched.try_lock().ok()?.try_recv().ok()?;
        inner.counters.delivered.fetch_add(1, Ordering::Relaxed);
        Some(delivery)
    }

    /// Stops publishing and fetching; messages already fetched are still handed out.
    /// Messages the broker holds stay there for the other processors.
    pub fn close(&self) {
        if let Some(inner) = &self.inner {
            inner.closed.store(true, Ordering::SeqCst);
            let _ = inner.stop.send(true);
        }
    }

    /// Counters in the shape every queue reports: `enqueued` are confirmed publishes,
    /// `dequeued` deliveries handed to workers, `rejected` refused publishes (the uncertain
    /// ones are [`NatsStats::uncertain`]), `size` the messages the consumer has not
    /// delivered yet, `capacity` the stream's limit.
    pub fn stats(&self) -> QueueStats {
        let Some(inner) = &self.inner else {
            return QueueStats::default();
        };
        let c = &inner.counters;
        QueueStats {
            enqueued: c.published.load(Ordering::Relaxed),
            dequeued: c.delivered.load(Ordering::Relaxed),
            rejected: c.refused.load(Ordering::Relaxed),
            size: c.waiting.load(Ordering::Relaxed),
            capacity: c.capacity.load(Ordering::Relaxed),
            ..QueueStats::default()
        }
    }
}

impl Inner {
    /// Publishes `msg` within [`Inner::timeout`] as a whole: handing it to the client may
    /// wait too, while the client reconnects to another server.
    async fn publish(
        &self,
        msg: MessageRef<'_>,
        key: Option<DedupKey<'_>>,
    ) -> Result<Published, PublishError> {
        let deadline = tokio::time::Instant::now() + self.timeout;
        if self.closed.load(Ordering::SeqCst) {
            return Err(PublishError::Closed);
        }
        // While disconnected the client would buffer the publish and send it after the
        // reconnect, storing a message whose sender was told 503: refuse it here instead.
        if self.client.connection_state() != State::Connected {
            return Err(PublishError::Unavailable);
        }
        // The client's id (within its scope) is JetStream's deduplication key, so a client
        // that retries after a timed-out answer does not get its message stored twice. The
        // edges refuse ids and scopes that cannot be a header value; checking again here
        // keeps the client library's header code (which panics on such a value) out of
        // reach of any caller.
        let dedup = key
            .map(|key| match key.scope {
                "" => key.id.parse::<HeaderValue>(),
                scope => format!("{scope}/{}", key.id).parse::<HeaderValue>(),
            })
            .transpose()
            .map_err(|_| PublishError::InvalidId)?;
        let payload = Bytes::from(msg.to_owned_message().encode_to_vec());
        let mut publish = PublishMessage::build().payload(payload);
        if let Some(dedup) = dedup {
            publish = publish.header(NATS_MESSAGE_ID, dedup);
        }
        let handed = tokio::time::timeout_at(
            deadline,
            self.jetstream.send_publish(self.subject.clone(), publish),
        );
        // Until the client took the publish, nothing was sent: a failure is a refusal.
        let ack = match handed.await {
            Ok(Ok(ack)) => ack,
            Ok(Err(err)) => return Err(refusal(&err)),
            Err(_elapsed) => return Err(PublishError::Unavailable),
        };
        // From here on the publish may be on its way, or stored already: only an answer of
        // JetStream's makes a failure certain.
        let ack = match tokio::time::timeout_at(deadline, ack.into_future()).await {
            Ok(Ok(ack)) => ack,
            Ok(Err(err)) => return Err(unconfirmed(&err)),
            Err(_elapsed) => return Err(PublishError::Uncertain),
        };
        Ok(if ack.duplicate {
            Published::Duplicate
        } else {
            Published::New
        })
    }
}

/// How long start-up keeps setting up the stream and the consumer while the broker times
/// out or JetStream is not available yet (a cluster that just started, or is electing a
/// leader), before the processor gives up. A refusal ends start-up at once.
const START_UP_PATIENCE: Duration = Duration::from_secs(30);

/// [`setup::setup`], tried again after a pause while it fails in a way that may pass.
async fn set_up_at_start(
    jetstream: &Context,
    config: &NatsConfig,
) -> Result<jetstream::consumer::PullConsumer, NatsError> {
    let deadline = tokio::time::Instant::now() + START_UP_PATIENCE;
    loop {
        match setup::setup(jetstream, config).await {
            Err(err) if err.is_transient() && tokio::time::Instant::now() < deadline => {
                tracing::warn!(target: LOG_TARGET, %err, "JetStream not ready; setting up again");
                tokio::time::sleep(tasks::RETRY_PAUSE).await;
            }
            done => return done,
        }
    }
}

/// Counts the client's disconnections, so that the fetcher sets up the stream and the
/// consumer again once the server is back (it may have come back without them). The
/// client logs the events itself.
fn on_event(event: &Event, disconnections: &watch::Sender<u64>) {
    if let Event::Disconnected = event {
        disconnections.send_modify(|n| *n += 1);
    }
}

/// A publish the client did not take (nothing was sent).
fn refusal(err: &jetstream::context::PublishError) -> PublishError {
    match err.kind() {
        PublishErrorKind::MaxAckPending => PublishError::Full,
        PublishErrorKind::MaxPayloadExceeded => PublishError::TooLarge,
        kind => {
            tracing::debug!(target: LOG_TARGET, ?kind, %err, "the NATS client did not take a publish");
            PublishError::Unavailable
        }
    }
}

/// A publish the client sent (or holds to send) that was not confirmed: certain only when
/// JetStream answered it, or nothing listens on its subject.
fn unconfirmed(err: &jetstream::context::PublishError) -> PublishError {
    match err.kind() {
        // No responders: no stream took the subject, so nothing stored it.
        PublishErrorKind::StreamNotFound => PublishError::Unavailable,
        _ if is_store_full(err) => PublishError::Full,
        _ if jetstream_answer(err).is_some() => {
            tracing::debug!(target: LOG_TARGET, %err, "JetStream refused a publish");
            PublishError::Unavailable
        }
        // No answer in time, the connection lost on the way, or an answer that cannot be
        // read: the server may have stored the message.
        kind => {
            tracing::debug!(target: LOG_TARGET, ?kind, %err, "JetStream did not confirm a publish");
            PublishError::Uncertain
        }
    }
}

/// A stream at its message limit (with the discard-new policy) answers "store failed".
fn is_store_full(err: &jetstream::context::PublishError) -> bool {
    jetstream_answer(err).is_some_and(|err| err.error_code() == ErrorCode::STREAM_STORE_FAILED)
}

/// The error JetStream answered, when the failure is an answer of JetStream's.
fn jetstream_answer(err: &jetstream::context::PublishError) -> Option<&jetstream::Error> {
    std::error::Error::source(err).and_then(|source| source.downcast_ref::<jetstream::Error>())
}

impl std::fmt::Debug for NatsDelivery {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NatsDelivery")
            .field("message", &self.0.message)
            .finish_non_exhaustive()
    }
}

impl NatsDelivery {
    /// The message.
    pub fn message(&self) -> MessageRef<'_> {
        MessageRef::from(&self.0.message)
    }
}

impl Delivery for NatsDelivery {
    fn message(&self) -> MessageRef<'_> {
        NatsDelivery::message(self)
    }

    async fn ack(self) {
        let Held {
            message,
            acker,
            counters,
        } = *self.0;
        // At trace level the ids of acknowledged messages are logged before the ack goes
        // out, so a test can account for every message a killed processor handled.
        tracing::trace!(target: LOG_TARGET, message_id = %message.id, "nats ack");
        match acker.ack().await {
            Ok(()) => {
                counters.acknowledged.fetch_add(1, Ordering::Relaxed);
            }
            // The message will be delivered again after the ack wait: at-least-once.
            Err(err) => {
                tracing::warn!(target: LOG_TARGET, %err, id = %message.id, "cannot acknowledge")
            }
        }
    }

    async fn nack(self) {
        let Held {
            message,
            acker,
            counters,
        } = *self.0;
        tracing::debug!(target: LOG_TARGET, message_id = %message.id, "nats nack");
        match acker.ack_with(AckKind::Nak(Some(NAK_DELAY))).await {
            Ok(()) => {
                counters.nacked.fetch_add(1, Ordering::Relaxed);
            }
            // Unanswered, the message comes back after the ack wait instead.
            Err(err) => {
                tracing::warn!(target: LOG_TARGET, %err, id = %message.id, "cannot acknowledge negatively")
            }
        }
    }
}

impl super::Queue for NatsQueue {
    type Delivery = NatsDelivery;

    async fn publish(&self, msg: MessageRef<'_>) -> Result<(), PublishError> {
        NatsQueue::publish(self, msg).await
    }

    async fn consume(&self) -> Option<NatsDelivery> {
        NatsQueue::consume(self).await
    }

    fn try_consume(&self) -> Option<NatsDelivery> {
        NatsQueue::try_consume(self)
    }

    fn close(&self) {
        NatsQueue::close(self);
    }

    fn stats(&self) -> QueueStats {
        NatsQueue::stats(self)
    }
}
