//! The baseline queue, shaped like the original system's `MemoryQueue`: a bounded ring
//! behind a mutex, each message copied into a fresh heap allocation on publish and freed by
//! whichever thread consumes it, stats kept in a second mutex.
//!
//! Lock waits are counted (how often a thread found a lock held, and how long it waited),
//! the stand-in for a mutex profile: the uncontended path costs nothing more than the lock
//! itself, the clock is read only by a thread that is about to wait anyway.

use std::{
    collections::VecDeque,
    sync::{
        Mutex, MutexGuard, PoisonError, TryLockError,
        atomic::{AtomicU64, Ordering},
    },
    time::Instant,
};

use super::{Delivery, PublishError, Queue, QueueStats, Stamp, gate::Gate};
use crate::{
    domain::budget::{Budget, Charge},
    domain::message::MessageRef,
    domain::proto::DataMessage,
};

/// A waiting message: its own allocation, its share of the byte bound, when it was
/// published.
type Entry = (Box<DataMessage>, Option<Charge>, Stamp);

/// The baseline in-memory queue.
#[derive(Debug)]
pub struct MemoryQueue {
    ring: Mutex<VecDeque<Entry>>,
    stats: Mutex<QueueStats>,
    capacity: usize,
    /// The bound on the bytes of waiting messages, when there is one.
    bytes: Option<std::sync::Arc<Budget>>,
    gate: Gate,
    waits: LockWaits,
}

#[derive(Debug, Default)]
struct LockWaits {
    count: AtomicU64,
    nanos: AtomicU64,
}

/// A message taken from a [`MemoryQueue`]; it owns its allocation.
#[derive(Debug)]
pub struct MemoryDelivery(
    Box<DataMessage>,
    // Held to give the message's bytes back when the delivery is dropped.
    #[allow(dead_code)] Option<Charge>,
    Stamp,
);

impl MemoryQueue {
    /// A queue holding at most `capacity` messages (at least one).
    pub fn new(capacity: usize) -> MemoryQueue {
        let capacity = capacity.max(1);
        MemoryQueue {
            ring: Mutex::new(VecDeque::with_capacity(capacity)),
            stats: Mutex::new(QueueStats {
                capacity: capacity as u64,
                ..QueueStats::default()
            }),
            capacity,
            bytes: None,
            gate: Gate::default(),
            waits: LockWaits::default(),
        }
    }

    /// A queue holding at most `capacity` messages and at most what `bytes` allows of their
    /// sizes (see [`MessageRef::size`]); the charge of a message is given back when its
    /// delivery is dropped.
    pub(crate) fn with_bytes(capacity: usize, bytes: std::sync::Arc<Budget>) -> MemoryQueue {
        MemoryQueue {
            bytes: Some(bytes),
            ..MemoryQueue::new(capacity)
        }
    }

    /// Accepts a copy of `msg` without waiting (unstamped: its wait is not measured).
    pub fn try_publish(&self, msg: MessageRef<'_>) -> Result<(), PublishError> {
        self.try_publish_at(msg, Stamp::NONE)
    }

    /// Accepts a copy of `msg`, published at `queued_at`, without waiting.
    pub fn try_publish_at(
        &self,
        msg: MessageRef<'_>,
        queued_at: Stamp,
    ) -> Result<(), PublishError> {
        let _entered = self.gate.enter()?;
        let charge = match &self.bytes {
            Some(bytes) => match bytes.try_charge(msg.size()) {
                Ok(charge) => Some(charge),
                Err(_) => {
                    self.lock(&self.stats).rejected += 1;
                    return Err(PublishError::Full);
                }
            },
            None => None,
        };
        let boxed = Box::new(msg.to_owned_message());
        {
            let mut ring = self.lock(&self.ring);
            if ring.len() >= self.capacity {
                drop(ring);
                self.lock(&self.stats).rejected += 1;
                return Err(PublishError::Full);
            }
            ring.push_back((boxed, charge, queued_at));
        }
        self.lock(&self.stats).enqueued += 1;
        self.gate.wake_one();
        Ok(())
    }

    /// Takes the next message without waiting.
    pub fn try_consume(&self) -> Option<MemoryDelivery> {
        let (boxed, charge, queued_at) = self.lock(&self.ring).pop_front()?;
        self.lock(&self.stats).dequeued += 1;
        Some(MemoryDelivery(boxed, charge, queued_at))
    }

    /// Locks one of this queue's mutexes, counting the wait when it is held. A poisoned
    /// lock only means another thread panicked while holding it; the data (a ring and
    /// counters) stays consistent, so keep going rather than spread the panic.
    fn lock<'a, T>(&self, mutex: &'a Mutex<T>) -> MutexGuard<'a, T> {
        match mutex.try_lock() {
            Ok(guard) => guard,
            Err(TryLockError::Poisoned(poisoned)) => poisoned.into_inner(),
            Err(TryLockError::WouldBlock) => {
                let started = Instant::now();
                let guard = mutex.lock().unwrap_or_else(PoisonError::into_inner);
                let waited = started.elapsed().as_nanos() as u64;
                self.waits.count.fetch_add(1, Ordering::Relaxed);
                self.waits.nanos.fetch_add(waited, Ordering::Relaxed);
                guard
            }
        }
    }
}

impl Queue for MemoryQueue {
    type Delivery = MemoryDelivery;

    async fn publish(&self, msg: MessageRef<'_>) -> Result<(), PublishError> {
        self.try_publish(msg)
    }

    async fn consume(&self) -> Option<MemoryDelivery> {
        self.gate.wait_for(|| self.try_consume()).await
    }

    fn try_consume(&self) -> Option<MemoryDelivery> {
        MemoryQueue::try_consume(self)
    }

    fn close(&self) {
        self.gate.close();
    }

    fn stats(&self) -> QueueStats {
        let size = self.lock(&self.ring).len() as u64;
        QueueStats {
            size,
            lock_waits: self.waits.count.load(Ordering::Relaxed),
            lock_wait_nanos: self.waits.nanos.load(Ordering::Relaxed),
            ..*self.lock(&self.stats)
        }
    }
}

impl MemoryDelivery {
    /// The message.
    pub fn message(&self) -> MessageRef<'_> {
        MessageRef::from(&*self.0)
    }
}

impl Delivery for MemoryDelivery {
    fn message(&self) -> MessageRef<'_> {
        MemoryDelivery::message(self)
    }

    #[inline]
    fn queued_at(&self) -> Option<Stamp> {
        self.2.get()
    }

    async fn ack(self) {}

    async fn nack(self) {}
}
