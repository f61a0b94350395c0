//! The queue between the processor's HTTP front and its worker pool.
//!
//! One abstraction, [`Queue`], with an acknowledged hand-off ([`Delivery`]) so that a
//! broker-backed queue fits the worker pool unchanged. Two in-memory implementations form
//! the A/B pair the harness measures:
//!
//! - [`MemoryQueue`], the baseline: a locked ring of freshly allocated messages, stats
//!   behind a lock;
//! - [`PooledQueue`]: messages live in reusable slots that return to a pool when their
//!   delivery is dropped; nothing is allocated per message once the pool is warm.
//!
//! Both keep the same contract: publishing never waits (a full queue answers
//! [`PublishError::Full`], a closed one [`PublishError::Closed`]); messages from one
//! producer come out in the order they went in; after [`Queue::close`] consumers receive
//! everything already accepted and then `None`.
//!
//! [`NatsQueue`] puts the queue in a NATS JetStream stream shared by several processors.
//! Its publish waits for the broker's confirmation (bounded in number and in time): a
//! publish the broker did not confirm in time answers [`PublishError::Uncertain`], never a
//! plain refusal, since the broker may have stored it. After `close` consumers receive only
//! what this processor already fetched: the rest stays in the stream for the other
//! processors.

mod gate;
mod memory;
mod nats;
mod pooled;
mod recent;

use std::{
    fmt,
    future::Future,
    sync::{Arc, OnceLock},
    time::Instant,
};

pub use memory::{MemoryDelivery, MemoryQueue};
pub use nats::{
    DEFAULT_NATS_ACK_WAIT, DEFAULT_NATS_CONSUMER, DEFAULT_NATS_MAX_DELIVER,
    DEFAULT_NATS_MAX_PENDING, DEFAULT_NATS_REPLICAS, DEFAULT_NATS_STREAM, DEFAULT_NATS_TIMEOUT,
    DEFAULT_NATS_URL, NatsAuth, NatsAuthError, NatsAuthSettings, NatsConfig, NatsDelivery,
    NatsError, NatsQueue, NatsStats,
};
pub use pooled::{PooledDelivery, PooledQueue, RETAINED_BYTES, RETAINED_TOTAL, SMALL_SLOT};
pub use recent::{DEDUP_IDS, DEFAULT_DEDUP_IDS, DEFAULT_DEDUP_WINDOW, Published, RecentIds};

pub use crate::domain::message::DedupKey;

/// The target of this module's log lines: its public path, which `RUST_LOG` names.
const LOG_TARGET: &str = "system::queue";
use crate::{domain::budget::Budget, domain::message::MessageRef};

/// Why a message was not accepted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum PublishError {
    /// The queue holds its capacity; retry later.
    #[error("queue is full")]
    Full,
    /// The queue no longer accepts messages (shutting down).
    #[error("queue is closed")]
    Closed,
    /// The broker behind the queue cannot be reached, or refused the message; retry
    /// later. The message was not stored.
    #[error("queue broker is unavailable")]
    Unavailable,
    /// The message went to the broker, which did not confirm it in time (or the connection
    /// was lost before it did): it may have been stored. Sending it again under the same
    /// id settles it.
    #[error("queue broker did not confirm the message in time")]
    Uncertain,
    /// The message is larger than the broker accepts; retrying will not help.
    #[error("message is too large for the queue")]
    TooLarge,
    /// The message's id cannot be stored by the broker (see [`crate::domain::validate`]); retrying
    /// will not help.
    #[error("message id is not valid")]
    InvalidId,
    /// The id the client gave cannot be remembered for the de-duplication window: the
    /// table holds `DEDUP_IDS` ids, or its memory would not fit `MEMORY_BUDGET` (the
    /// setting named); retry later.
    #[error("no room to remember the message's id for the de-duplication window ({0})")]
    IdsFull(&'static str),
}

/// Counters of a queue at one moment.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct QueueStats {
    /// Messages accepted since start.
    pub enqueued: u64,
    /// Messages handed to consumers since start.
    pub dequeued: u64,
    /// Messages refused because the queue was full.
    pub rejected: u64,
    /// Messages waiting now.
    pub size: u64,
    /// Most messages that can wait at once.
    pub capacity: u64,
    /// Times a publisher or consumer found a lock of the queue held and waited for it
    /// (always 0 for the lock-free queues).
    pub lock_waits: u64,
    /// Time spent in those waits, summed over threads, in nanoseconds.
    pub lock_wait_nanos: u64,
}

/// When a message was published, on the process's monotonic clock (nanoseconds since the
/// first stamp was taken), kept beside the message in the queue so that a worker can tell
/// how long it waited. `Stamp::NONE` marks a message published without one: its wait is
/// not measured. The processor takes one stamp per request, for all its messages.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord)]
pub struct Stamp(u64);

impl Stamp {
    /// No stamp.
    pub(crate) const NONE: Stamp = Stamp(0);

    /// Now.
    pub fn now() -> Stamp {
        Stamp::at(Instant::now())
    }

    /// The stamp of `instant` (an instant before the process's first stamp counts as that
    /// first stamp).
    pub fn at(instant: Instant) -> Stamp {
        static EPOCH: OnceLock<Instant> = OnceLock::new();
        let since = instant.saturating_duration_since(*EPOCH.get_or_init(Instant::now));
        // Plus one, so that no stamp is `NONE`.
        Stamp(u64::try_from(since.as_nanos()).map_or(u64::MAX, |nanos| nanos.saturating_add(1)))
    }

    /// `Some(self)` unless this is `Stamp::NONE`.
    #[inline]
    pub fn get(self) -> Option<Stamp> {
        (self != Stamp::NONE).then_some(self)
    }

    /// Nanoseconds from this stamp to `later` (0 when `later` is not later).
    pub fn nanos_until(self, later: Stamp) -> u64 {
        later.0.saturating_sub(self.0)
    }
}

/// A bounded multi-producer, multi-consumer queue of messages.
pub trait Queue: Send + Sync + 'static {
    /// What a consumer holds while it works on a message.
    type Delivery: Delivery;

    /// Accepts a copy of `msg`, or says why not. Never waits for room (a broker-backed
    /// queue waits, within a time limit, for the broker's confirmation).
    fn publish(&self, msg: MessageRef<'_>)
    -> impl Future<Output = Result<(), PublishError>> + Send;

    /// The next message; waits while the queue is empty and open. `None` once the queue
    /// is closed and everything accepted has been handed out.
    fn consume(&self) -> impl Future<Output = Option<Self::Delivery>> + Send;

    /// A message that is ready now, without waiting; `None` when none is.
    fn try_consume(&self) -> Option<Self::Delivery>;

    /// Stops accepting messages; those already accepted are still delivered.
    fn close(&self);

    /// Current counters.
    fn stats(&self) -> QueueStats;
}

/// A message held by a consumer. Dropping it without [`Delivery::ack`] is allowed: the
/// in-memory queues treat it the same, a broker-backed queue redelivers it later.
pub trait Delivery: Send + 'static {
    /// The message.
    fn message(&self) -> MessageRef<'_>;

    /// Tells the queue the message has been handled.
    fn ack(self) -> impl Future<Output = ()> + Send;

    /// When the message was published, if its publisher stamped it (see [`Stamp`]); the
    /// NATS queue does not.
    fn queued_at(&self) -> Option<Stamp> {
        None
    }

    /// Tells the queue that handling the message failed. The in-memory queues let it go
    /// (the worker pool counts it as an error); a broker-backed queue delivers it again
    /// soon, until its deliveries are used up and it is dead-lettered.
    fn nack(self) -> impl Future<Output = ()> + Send;
}

/// Which queue implementation the processor runs (`QUEUE_TYPE`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum QueueType {
    /// Baseline: a fresh allocation per message, stats behind a lock.
    #[default]
    Memory,
    /// Reused message slots from an object pool, atomic stats.
    Pooled,
    /// A NATS JetStream stream shared by several processors (needs a server).
    Nats,
}

impl QueueType {
    /// The name used in configuration and reports (the value of `QUEUE_TYPE`).
    pub const fn as_str(self) -> &'static str {
        match self {
            QueueType::Memory => "memory",
            QueueType::Pooled => "pooled",
            QueueType::Nats => "nats",
        }
    }

    /// Where this side of the A/B pair takes its message ids from.
    pub(crate) fn id_source(self) -> crate::domain::ids::IdSource {
        match self {
            // Ids of the shared stream must not collide across processors on many
            // machines, and a broker round trip dwarfs the cost of kernel randomness.
            QueueType::Memory | QueueType::Nats => crate::domain::ids::IdSource::Os,
            QueueType::Pooled => crate::domain::ids::IdSource::Fast,
        }
    }
}

impl fmt::Display for QueueType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A queue of either type, chosen at start-up; dispatch is a `match`, so nothing is boxed
/// on the hot path.
#[derive(Debug)]
pub enum AnyQueue {
    /// The baseline.
    Memory(MemoryQueue),
    /// The pooled queue.
    Pooled(PooledQueue),
    /// The NATS JetStream queue.
    Nats(NatsQueue),
}

impl AnyQueue {
    /// A new in-memory queue of `kind` holding at most `capacity` messages.
    ///
    /// `QueueType::Nats` needs a connection, which only the async [`NatsQueue::connect`]
    /// can make (wrap its result in [`AnyQueue::Nats`]). Given `Nats`, this returns a
    /// `NatsQueue::detached` queue, which refuses every message as unavailable, and logs
    /// an error: a processor built this way stays up but accepts nothing.
    pub fn new(kind: QueueType, capacity: usize) -> AnyQueue {
        match kind {
            QueueType::Memory => AnyQueue::Memory(MemoryQueue::new(capacity)),
            QueueType::Pooled => AnyQueue::Pooled(PooledQueue::new(capacity)),
            QueueType::Nats => {
                tracing::error!(target: LOG_TARGET, "a NATS queue needs NatsQueue::connect; this one accepts nothing");
                AnyQueue::Nats(NatsQueue::detached())
            }
        }
    }

    /// [`AnyQueue::new`] with the waiting messages' bytes bounded by `bytes` (the NATS
    /// queue keeps its messages in the broker, bounded there by count).
    pub(crate) fn with_bytes(kind: QueueType, capacity: usize, bytes: Arc<Budget>) -> AnyQueue {
        match kind {
            QueueType::Memory => AnyQueue::Memory(MemoryQueue::with_bytes(capacity, bytes)),
            QueueType::Pooled => AnyQueue::Pooled(PooledQueue::with_bytes(capacity, bytes)),
            QueueType::Nats => AnyQueue::new(kind, capacity),
        }
    }

    /// The NATS-side counters, for the NATS queue.
    pub fn nats_stats(&self) -> Option<NatsStats> {
        match self {
            AnyQueue::Nats(q) => Some(q.nats_stats()),
            AnyQueue::Memory(_) | AnyQueue::Pooled(_) => None,
        }
    }

    /// Publishes `msg` unless a message with its client's id (`key`; `None` for an id the
    /// system assigned) was accepted lately: the in-memory queues ask `recent`, the NATS
    /// queue JetStream's de-duplication (by the `Nats-Msg-Id` header, within the stream's
    /// duplicate window). `now` is the caller's clock, in Unix seconds.
    pub async fn publish_once(
        &self,
        msg: MessageRef<'_>,
        key: Option<DedupKey<'_>>,
        recent: &RecentIds,
        now: i64,
    ) -> Result<Published, PublishError> {
        self.publish_once_at(msg, key, recent, now, Stamp::NONE)
            .await
    }

    /// [`AnyQueue::publish_once`], the message stamped `queued_at` in an in-memory queue.
    pub(crate) async fn publish_once_at(
        &self,
        msg: MessageRef<'_>,
        key: Option<DedupKey<'_>>,
        recent: &RecentIds,
        now: i64,
        queued_at: Stamp,
    ) -> Result<Published, PublishError> {
        match self {
            AnyQueue::Memory(q) => {
                recent.publish_once(key, now, || q.try_publish_at(msg, queued_at))
            }
            AnyQueue::Pooled(q) => {
                recent.publish_once(key, now, || q.try_publish_at(msg, queued_at))
            }
            AnyQueue::Nats(q) => q.publish_once(msg, key).await,
        }
    }

    /// Which implementation this is.
    pub fn kind(&self) -> QueueType {
        match self {
            AnyQueue::Memory(_) => QueueType::Memory,
            AnyQueue::Pooled(_) => QueueType::Pooled,
            AnyQueue::Nats(_) => QueueType::Nats,
        }
    }
}

/// A delivery from an [`AnyQueue`].
#[derive(Debug)]
pub enum AnyDelivery {
    /// From the baseline queue.
    Memory(MemoryDelivery),
    /// From the pooled queue.
    Pooled(PooledDelivery),
    /// From the NATS queue.
    Nats(NatsDelivery),
}

impl Queue for AnyQueue {
    type Delivery = AnyDelivery;

    async fn publish(&self, msg: MessageRef<'_>) -> Result<(), PublishError> {
        match self {
            AnyQueue::Memory(q) => q.try_publish(msg),
            AnyQueue::Pooled(q) => q.try_publish(msg),
            AnyQueue::Nats(q) => q.publish(msg).await,
        }
    }

    async fn consume(&self) -> Option<AnyDelivery> {
        match self {
            AnyQueue::Memory(q) => q.consume().await.map(AnyDelivery::Memory),
            AnyQueue::Pooled(q) => q.consume().await.map(AnyDelivery::Pooled),
            AnyQueue::Nats(q) => q.consume().await.map(AnyDelivery::Nats),
        }
    }

    fn try_consume(&self) -> Option<AnyDelivery> {
        match self {
            AnyQueue::Memory(q) => q.try_consume().map(AnyDelivery::Memory),
            AnyQueue::Pooled(q) => q.try_consume().map(AnyDelivery::Pooled),
            AnyQueue::Nats(q) => q.try_consume().map(AnyDelivery::Nats),
        }
    }

    fn close(&self) {
        match self {
            AnyQueue::Memory(q) => q.close(),
            AnyQueue::Pooled(q) => q.close(),
            AnyQueue::Nats(q) => q.close(),
        }
    }

    fn stats(&self) -> QueueStats {
        match self {
            AnyQueue::Memory(q) => q.stats(),
            AnyQueue::Pooled(q) => q.stats(),
            AnyQueue::Nats(q) => q.stats(),
        }
    }
}

impl Delivery for AnyDelivery {
    fn message(&self) -> MessageRef<'_> {
        match self {
            AnyDelivery::Memory(d) => d.message(),
            AnyDelivery::Pooled(d) => d.message(),
            AnyDelivery::Nats(d) => d.message(),
        }
    }

    #[inline]
    fn queued_at(&self) -> Option<Stamp> {
        match self {
            AnyDelivery::Memory(d) => d.queued_at(),
            AnyDelivery::Pooled(d) => d.queued_at(),
            AnyDelivery::Nats(d) => d.queued_at(),
        }
    }

    async fn ack(self) {
        match self {
            AnyDelivery::Memory(d) => d.ack().await,
            AnyDelivery::Pooled(d) => d.ack().await,
            AnyDelivery::Nats(d) => d.ack().await,
        }
    }

    async fn nack(self) {
        match self {
            AnyDelivery::Memory(d) => d.nack().await,
            AnyDelivery::Pooled(d) => d.nack().await,
            AnyDelivery::Nats(d) => d.nack().await,
        }
    }
}
