//! The pooled queue: messages are copied into reusable slots taken from a free list, and a
//! slot goes back to the free list when the consumer drops its [`PooledDelivery`].
//!
//! Invariants:
//! - nothing is allocated per message once the pool is warm: the slot, its strings, its
//!   payload buffer and its metadata pairs all keep their capacity (a payload or a string
//!   larger than [`RETAINED_BYTES`] is trimmed on return, so one huge message cannot pin
//!   memory for ever, and the next one that large allocates again);
//! - the free list keeps at most [`RETAINED_TOTAL`] bytes of buffers in the slots that
//!   keep more than [`SMALL_SLOT`] each (the others are bounded by their number): a slot
//!   that would pass it gives its buffers back to the allocator when it returns;
//! - no message can observe another's data: a slot is cleared when it returns, every field
//!   is overwritten on publish, and only the live metadata pairs are visible;
//! - a message's [`Stamp`] (when it was published) is a plain field of its slot: measuring
//!   its wait costs no allocation;
//! - counters are atomics on their own cache lines, so publishers and consumers never wait
//!   on a lock.

use std::sync::{
    Arc,
    atomic::{AtomicU64, AtomicUsize, Ordering},
};

use crossbeam_queue::ArrayQueue;
use crossbeam_utils::CachePadded;

use super::{Delivery, PublishError, Queue, QueueStats, Stamp, gate::Gate};
use crate::{
    domain::budget::{Budget, Charge},
    domain::message::{IdOrigin, MessageRef, Metadata},
};

/// Largest capacity (in bytes) a slot's buffer keeps across messages.
pub const RETAINED_BYTES: usize = 64 * 1024;
/// Most metadata pairs a slot keeps across messages.
const RETAINED_PAIRS: usize = 64;
/// Free slots kept beyond the queue's capacity, for messages held by consumers.
const SPARE_SLOTS: usize = 256;
/// Most bytes of buffer capacity the free slots keep, all together (of those keeping more
/// than [`SMALL_SLOT`]).
pub const RETAINED_TOTAL: usize = 8 * 1024 * 1024;
/// Slots keeping at most this much are not counted against [`RETAINED_TOTAL`], so the
/// common small message costs no shared counter.
pub const SMALL_SLOT: usize = 4 * 1024;

/// The pooled in-memory queue. Cloning gives another handle to the same queue.
#[derive(Debug, Clone)]
pub struct PooledQueue {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    ready: ArrayQueue<Box<Slot>>,
    free: ArrayQueue<Box<Slot>>,
    gate: Gate,
    /// The bound on the bytes of waiting messages, when there is one.
    bytes: Option<Arc<Budget>>,
    /// Buffer capacity kept by the slots in the free list.
    retained: AtomicUsize,
    enqueued: CachePadded<AtomicU64>,
    dequeued: CachePadded<AtomicU64>,
    rejected: CachePadded<AtomicU64>,
}

#[derive(Debug, Default)]
struct Slot {
    id: String,
    timestamp: i64,
    source: String,
    payload: Vec<u8>,
    /// Pairs beyond `live_pairs` are spare capacity, never shown.
    pairs: Vec<(String, String)>,
    live_pairs: usize,
    /// When the message was published.
    queued_at: Stamp,
    /// The message's bytes, taken from the queue's byte bound while it waits or is held.
    charge: Option<Charge>,
    /// Buffer capacity kept while the slot is free (counted in `Inner::retained`).
    kept: usize,
}

/// A message taken from a [`PooledQueue`]; its slot returns to the pool on drop.
#[derive(Debug)]
pub struct PooledDelivery {
    slot: Option<Box<Slot>>,
    queue: Arc<Inner>,
}

impl PooledQueue {
    /// A queue holding at most `capacity` messages (at least one).
    pub fn new(capacity: usize) -> PooledQueue {
        PooledQueue::with_limits(capacity, None)
    }

    /// A queue holding at most `capacity` messages and at most what `bytes` allows of their
    /// sizes (see [`MessageRef::size`]); a message's charge is given back when its delivery
    /// is dropped.
    pub(crate) fn with_bytes(capacity: usize, bytes: Arc<Budget>) -> PooledQueue {
        PooledQueue::with_limits(capacity, Some(bytes))
    }

    fn with_limits(capacity: usize, bytes: Option<Arc<Budget>>) -> PooledQueue {
        let capacity = capacity.max(1);
        PooledQueue {
            inner: Arc::new(Inner {
                ready: ArrayQueue::new(capacity),
                free: ArrayQueue::new(capacity + SPARE_SLOTS),
                gate: Gate::default(),
                bytes,
                retained: AtomicUsize::new(0),
                enqueued: CachePadded::new(AtomicU64::new(0)),
                dequeued: CachePadded::new(AtomicU64::new(0)),
                rejected: CachePadded::new(AtomicU64::new(0)),
            }),
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
        let inner = &*self.inner;
        let _entered = inner.gate.enter()?;
        if inner.ready.is_full() {
            // Cheap early answer; the push below is what actually decides.
            inner.rejected.fetch_add(1, Ordering::Relaxed);
            return Err(PublishError::Full);
        }
        let charge = match &inner.bytes {
            Some(bytes) => match bytes.try_charge(msg.size()) {
                Ok(charge) => Some(charge),
                Err(_) => {
                    inner.rejected.fetch_add(1, Ordering::Relaxed);
                    return Err(PublishError::Full);
                }
            },
            None => None,
        };
        let mut slot = inner.take_free();
        slot.fill(msg);
        slot.queued_at = queued_at;
        slot.charge = charge;
        match inner.ready.push(slot) {
            Ok(()) => {
                inner.enqueued.fetch_add(1, Ordering::Relaxed);
                inner.gate.wake_one();
                Ok(())
            }
            Err(slot) => {
                inner.rejected.fetch_add(1, Ordering::Relaxed);
                inner.give_back(slot);
                Err(PublishError::Full)
            }
        }
    }

    /// Takes the next message without waiting.
    pub fn try_consume(&self) -> Option<PooledDelivery> {
        let slot = self.inner.ready.pop()?;
        self.inner.dequeued.fetch_add(1, Ordering::Relaxed);
        Some(PooledDelivery {
            slot: Some(slot),
            queue: Arc::clone(&self.inner),
        })
    }

    /// Slots waiting in the free list (for tests and diagnostics).
    pub fn free_slots(&self) -> usize {
        self.inner.free.len()
    }

    /// Buffer capacity the free slots keep, in bytes (for tests and diagnostics).
    pub fn retained_bytes(&self) -> usize {
        self.inner.retained.load(Ordering::Relaxed)
    }
}

impl Inner {
    fn take_free(&self) -> Box<Slot> {
        match self.free.pop() {
            Some(slot) => {
                if slot.kept > SMALL_SLOT {
                    self.retained.fetch_sub(slot.kept, Ordering::Relaxed);
                }
                slot
            }
            None => Box::default(),
        }
    }

    /// Clears `slot` and keeps it for the next message, within [`RETAINED_TOTAL`] (its
    /// buffers go back to the allocator when they would pass it).
    fn give_back(&self, mut slot: Box<Slot>) {
        slot.clear();
        let counted = slot.kept > SMALL_SLOT;
        if counted
            && self.retained.fetch_add(slot.kept, Ordering::Relaxed) + slot.kept > RETAINED_TOTAL
        {
            self.retained.fetch_sub(slot.kept, Ordering::Relaxed);
            *slot = Slot::default();
        }
        let kept = slot.kept;
        if self.free.push(slot).is_err() && kept > SMALL_SLOT {
            // A full free list means the pool already holds enough slots: let this one go.
            self.retained.fetch_sub(kept, Ordering::Relaxed);
        }
    }
}

impl Queue for PooledQueue {
    type Delivery = PooledDelivery;

    async fn publish(&self, msg: MessageRef<'_>) -> Result<(), PublishError> {
        self.try_publish(msg)
    }

    async fn consume(&self) -> Option<PooledDelivery> {
        self.inner.gate.wait_for(|| self.try_consume()).await
    }

    fn try_consume(&self) -> Option<PooledDelivery> {
        PooledQueue::try_consume(self)
    }

    fn close(&self) {
        self.inner.gate.close();
    }

    fn stats(&self) -> QueueStats {
        let inner = &*self.inner;
        QueueStats {
            enqueued: inner.enqueued.load(Ordering::Relaxed),
            dequeued: inner.dequeued.load(Ordering::Relaxed),
            rejected: inner.rejected.load(Ordering::Relaxed),
            size: inner.ready.len() as u64,
            capacity: inner.ready.capacity() as u64,
            ..QueueStats::default()
        }
    }
}

impl Slot {
    fn fill(&mut self, msg: MessageRef<'_>) {
        self.id.clear();
        self.id.push_str(msg.id);
        self.timestamp = msg.timestamp;
        self.source.clear();
        self.source.push_str(msg.source);
        self.payload.clear();
        self.payload.extend_from_slice(msg.payload);
        self.live_pairs = 0;
        // One loop per shape of metadata, each monomorphized (no chained iterators per pair).
        match msg.metadata {
            Metadata::Map(map) => {
                self.fill_pairs(map.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            }
            Metadata::Pairs(pairs) => {
                self.fill_pairs(pairs.iter().map(|(k, v)| (k.as_str(), v.as_str())));
            }
            Metadata::Wire(wire) => self.fill_pairs(wire.iter()),
        }
    }

    fn fill_pairs<'a>(&mut self, entries: impl Iterator<Item = (&'a str, &'a str)>) {
        for (key, value) in entries {
            if let Some((k, v)) = self.pairs.get_mut(self.live_pairs) {
                k.clear();
                k.push_str(key);
                v.clear();
                v.push_str(value);
            } else {
                self.pairs.push((key.to_owned(), value.to_owned()));
            }
            self.live_pairs += 1;
        }
    }

    fn view(&self) -> MessageRef<'_> {
        MessageRef {
            id: &self.id,
            timestamp: self.timestamp,
            source: &self.source,
            payload: &self.payload,
            metadata: Metadata::Pairs(&self.pairs[..self.live_pairs]),
            // How the id is remembered was settled when it was published.
            origin: IdOrigin::client(""),
        }
    }

    /// Forgets the message, keeping (bounded) capacity for the next one, and notes in
    /// `kept` how much that is.
    fn clear(&mut self) {
        self.charge = None;
        clear_string(&mut self.id);
        clear_string(&mut self.source);
        self.payload.clear();
        self.payload.shrink_to(RETAINED_BYTES);
        self.timestamp = 0;
        self.queued_at = Stamp::NONE;
        self.pairs.truncate(RETAINED_PAIRS);
        let mut kept = self.id.capacity() + self.source.capacity() + self.payload.capacity();
        for (k, v) in &mut self.pairs {
            clear_string(k);
            clear_string(v);
            kept += k.capacity() + v.capacity();
        }
        self.kept = kept;
        self.live_pairs = 0;
    }
}

fn clear_string(s: &mut String) {
    s.clear();
    s.shrink_to(RETAINED_BYTES);
}

impl PooledDelivery {
    /// The message.
    pub fn message(&self) -> MessageRef<'_> {
        match &self.slot {
            Some(slot) => slot.view(),
            // The slot is only taken in `drop`.
            None => unreachable!("a pooled delivery always holds its slot until dropped"),
        }
    }
}

impl Delivery for PooledDelivery {
    fn message(&self) -> MessageRef<'_> {
        PooledDelivery::message(self)
    }

    #[inline]
    fn queued_at(&self) -> Option<Stamp> {
        self.slot.as_ref().and_then(|slot| slot.queued_at.get())
    }

    async fn ack(self) {}

    async fn nack(self) {}
}

impl Drop for PooledDelivery {
    fn drop(&mut self) {
        if let Some(slot) = self.slot.take() {
            self.queue.give_back(slot);
        }
    }
}
