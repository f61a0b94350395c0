//! The ids clients gave the messages the in-memory queues accepted lately, so that a
//! message sent again under the same id (a client retrying after a timeout) is answered
//! `duplicate` instead of being queued twice. (The NATS queue leaves this to JetStream's
//! own de-duplication.)
//!
//! Invariants:
//! - only ids a client gave are remembered (an id the system assigned cannot come again),
//!   each within its scope: the namespace of the client's token, so that clients with
//!   different tokens cannot answer each other's messages;
//! - an id is remembered for the whole window or its message is refused: when the table
//!   holds `capacity` ids (`DEDUP_IDS`), or its memory would not fit the budget, a message
//!   with an id of its own is refused ([`PublishError::IdsFull`], naming the setting) and
//!   nothing is forgotten early;
//! - the table's memory is charged to the process's budget as it grows and given back as
//!   it shrinks;
//! - an id counts as accepted only once its publish succeeded: the check, the publish and
//!   the record happen under one lock (of the id's shard), so two concurrent sends of one
//!   id queue it once and a refused publish leaves no record;
//! - ids are kept as 128-bit keyed hashes of scope and id (16 bytes whatever the id's
//!   length: two seeded 64-bit hashes); two distinct ids are mistaken for each other with
//!   a probability of about 2^-128 per pair;
//! - time is the caller's clock in whole seconds (a batch reads the clock once), so an id
//!   is remembered for the window give or take a second.

use std::{
    collections::{HashSet, VecDeque},
    hash::{BuildHasher, BuildHasherDefault, Hash, Hasher},
    sync::{Arc, Mutex},
    time::Duration,
};

use foldhash::quality::RandomState;

use super::PublishError;
use crate::{
    domain::budget::{Budget, Charge},
    domain::message::DedupKey,
};

/// Shards of the table: publishers of different ids rarely wait for each other.
const SHARDS: usize = 16;

/// The setting that bounds the table's ids.
pub const DEDUP_IDS: &str = "DEDUP_IDS";
/// The default of [`RecentIds::new`]'s `capacity` (`DEDUP_IDS`).
pub const DEFAULT_DEDUP_IDS: usize = 1_000_000;
/// The default of [`RecentIds::new`]'s `window` (`DEDUP_WINDOW_SECS`): as long as
/// JetStream's default duplicate window, so both queue kinds behave alike.
pub const DEFAULT_DEDUP_WINDOW: Duration = Duration::from_secs(120);

/// What a publish through [`RecentIds::publish_once`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Published {
    /// The message was queued.
    New,
    /// A message with this id was accepted within the window; nothing was queued.
    Duplicate,
}

/// The table of recently accepted ids.
#[derive(Debug)]
pub struct RecentIds {
    shards: Box<[Mutex<Shard>]>,
    per_shard: usize,
    window: i64,
    keys: (RandomState, RandomState),
}

/// A remembered id: its two hashes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Key(u64, u64);

impl Hash for Key {
    fn hash<H: Hasher>(&self, state: &mut H) {
        // Already a uniform hash: one half is enough to place it.
        state.write_u64(self.0);
    }
}

#[derive(Debug)]
struct Shard {
    known: HashSet<Key, BuildHasherDefault<KeyHasher>>,
    /// Keys in the order they were accepted, with when (Unix seconds).
    order: VecDeque<(Key, i64)>,
    /// The memory of `known` and `order`, taken from the budget.
    charge: Charge,
}

impl RecentIds {
    /// A table remembering at most `capacity` ids (none when zero) for `window`, its memory
    /// charged to `budget`.
    pub fn new(capacity: usize, window: Duration, budget: &Arc<Budget>) -> RecentIds {
        RecentIds {
            shards: (0..SHARDS)
                .map(|_| {
                    Mutex::new(Shard {
                        known: HashSet::default(),
                        order: VecDeque::new(),
                        charge: budget.empty_charge(),
                    })
                })
                .collect(),
            per_shard: capacity.div_ceil(SHARDS),
            window: i64::try_from(window.as_secs()).unwrap_or(i64::MAX),
            keys: (RandomState::default(), RandomState::default()),
        }
    }

    /// Runs `publish`, unless `key` was accepted within the window before `now` (Unix
    /// seconds), and remembers `key` when it succeeds; `None` (an id the system assigned)
    /// is published and not remembered. A key that could not be remembered is refused
    /// before `publish` runs.
    pub fn publish_once(
        &self,
        key: Option<DedupKey<'_>>,
        now: i64,
        publish: impl FnOnce() -> Result<(), PublishError>,
    ) -> Result<Published, PublishError> {
        let Some(key) = key.filter(|key| !key.id.is_empty() && self.per_shard > 0) else {
            return publish().map(|()| Published::New);
        };
        let key = self.key(key);
        let shard = &self.shards[(key.0 as usize) % SHARDS];
        let mut shard = shard
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        shard.forget_older_than(now, self.window);
        if shard.known.contains(&key) {
            return Ok(Published::Duplicate);
        }
        if shard.order.len() >= self.per_shard {
            return Err(PublishError::IdsFull(DEDUP_IDS));
        }
        shard.make_room()?;
        publish()?;
        shard.known.insert(key);
        shard.order.push_back((key, now));
        Ok(Published::New)
    }

    /// Ids remembered now.
    pub fn len(&self) -> usize {
        self.shards
            .iter()
            .map(|shard| {
                shard
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner)
                    .order
                    .len()
            })
            .sum()
    }

    /// Whether no id is remembered.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn key(&self, key: DedupKey<'_>) -> Key {
        let hash = |state: &RandomState| {
            let mut hasher = state.build_hasher();
            hasher.write(key.scope.as_bytes());
            // Scopes are names without control characters: this byte ends one.
            hasher.write_u8(0);
            hasher.write(key.id.as_bytes());
            hasher.finish()
        };
        Key(hash(&self.keys.0), hash(&self.keys.1))
    }
}

impl Shard {
    /// Bytes the shard's tables take.
    fn bytes(&self) -> usize {
        // A hash set slot is the key and a control byte.
        self.known.capacity() * (size_of::<Key>() + 1)
            + self.order.capacity() * size_of::<(Key, i64)>()
    }

    /// Makes sure one more id fits without the tables growing uncharged: when they are
    /// full they grow now, and the growth is charged, or refused when the budget is full.
    fn make_room(&mut self) -> Result<(), PublishError> {
        if self.known.len() < self.known.capacity() && self.order.len() < self.order.capacity() {
            return Ok(());
        }
        self.known.reserve(1);
        self.order.reserve(1);
        if self.settle_charge().is_err() {
            // Given back: the tables as they were.
            self.known.shrink_to(self.known.len());
            self.order.shrink_to(self.order.len());
            let _ = self.settle_charge();
            return Err(PublishError::IdsFull("MEMORY_BUDGET"));
        }
        Ok(())
    }

    /// Makes the charge what the tables take.
    fn settle_charge(&mut self) -> Result<(), crate::domain::budget::Exhausted> {
        let (want, held) = (self.bytes(), self.charge.bytes());
        if want > held {
            self.charge.grow(want - held)
        } else {
            self.charge.shrink(held - want);
            Ok(())
        }
    }

    fn forget_older_than(&mut self, now: i64, window: i64) {
        let before = self.order.len();
        while let Some(&(key, at)) = self.order.front() {
            if now.saturating_sub(at) < window {
                break;
            }
            self.order.pop_front();
            self.known.remove(&key);
        }
        // Give memory back once most of it is unused (not on every expiry: growing again
        // costs a copy).
        if self.order.len() < before && self.order.len() < self.order.capacity() / 4 {
            self.known.shrink_to(self.known.len() * 2);
            self.order.shrink_to(self.order.len() * 2);
            let _ = self.settle_charge();
        }
    }
}

/// The keys are already uniform hashes: the set uses them as they are.
#[derive(Debug, Default)]
struct KeyHasher(u64);

impl Hasher for KeyHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0 << 8) | u64::from(b);
        }
    }

    fn write_u64(&mut self, key: u64) {
        self.0 = key;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok() -> Result<(), PublishError> {
        Ok(())
    }

    fn table(capacity: usize) -> RecentIds {
        RecentIds::new(
            capacity,
            Duration::from_secs(60),
            &Budget::new("MEMORY_BUDGET", 1 << 30),
        )
    }

    fn id(id: &str) -> Option<DedupKey<'_>> {
        Some(DedupKey::shared(id))
    }

    #[test]
    fn an_id_is_published_once_within_the_window() {
        let recent = table(1000);
        assert_eq!(recent.publish_once(id("a"), 0, ok), Ok(Published::New));
        assert_eq!(
            recent.publish_once(id("a"), 0, ok),
            Ok(Published::Duplicate)
        );
        assert_eq!(recent.publish_once(id("b"), 0, ok), Ok(Published::New));
        // Ids the system assigned, and empty ones, are never remembered.
        assert_eq!(recent.publish_once(None, 0, ok), Ok(Published::New));
        assert_eq!(recent.publish_once(id(""), 0, ok), Ok(Published::New));
        assert_eq!(recent.len(), 2);
    }

    #[test]
    fn scopes_are_namespaces() {
        let recent = table(1000);
        let in_scope = |scope| {
            Some(DedupKey {
                scope,
                id: "order-1",
            })
        };
        assert_eq!(
            recent.publish_once(in_scope("a"), 0, ok),
            Ok(Published::New)
        );
        assert_eq!(
            recent.publish_once(in_scope("b"), 0, ok),
            Ok(Published::New)
        );
        assert_eq!(
            recent.publish_once(id("order-1"), 0, ok),
            Ok(Published::New)
        );
        assert_eq!(
            recent.publish_once(in_scope("a"), 0, ok),
            Ok(Published::Duplicate)
        );
        // The separator keeps ("ab", "c") apart from ("a", "bc").
        let split = |scope, id| Some(DedupKey { scope, id });
        assert_eq!(
            recent.publish_once(split("ab", "c"), 0, ok),
            Ok(Published::New)
        );
        assert_eq!(
            recent.publish_once(split("a", "bc"), 0, ok),
            Ok(Published::New)
        );
    }

    #[test]
    fn a_refused_publish_leaves_no_record() {
        let recent = table(1000);
        assert_eq!(
            recent.publish_once(id("a"), 0, || Err(PublishError::Full)),
            Err(PublishError::Full)
        );
        assert_eq!(recent.publish_once(id("a"), 0, ok), Ok(Published::New));
    }

    #[test]
    fn an_id_is_remembered_for_the_whole_window_or_refused() {
        let recent = table(1000);
        assert_eq!(recent.publish_once(id("a"), 100, ok), Ok(Published::New));
        assert_eq!(
            recent.publish_once(id("a"), 159, ok),
            Ok(Published::Duplicate)
        );
        assert_eq!(recent.publish_once(id("a"), 160, ok), Ok(Published::New));
    }

    #[test]
    fn a_full_table_refuses_new_ids_and_remembers_every_accepted_one() {
        let recent = table(SHARDS * 4);
        let mut accepted = Vec::new();
        for i in 0..1_000 {
            let i = i.to_string();
            match recent.publish_once(id(&i), 0, ok) {
                Ok(Published::New) => accepted.push(i),
                Err(PublishError::IdsFull(setting)) => assert_eq!(setting, DEDUP_IDS),
                other => panic!("{other:?}"),
            }
        }
        assert!(!accepted.is_empty() && accepted.len() <= SHARDS * 4);
        for i in &accepted {
            assert_eq!(recent.publish_once(id(i), 59, ok), Ok(Published::Duplicate));
        }
        // After the window, room again.
        assert_eq!(recent.publish_once(id("late"), 60, ok), Ok(Published::New));
        let off = RecentIds::new(0, Duration::from_secs(60), &Budget::process_default());
        assert_eq!(off.publish_once(id("a"), 0, ok), Ok(Published::New));
        assert_eq!(off.publish_once(id("a"), 0, ok), Ok(Published::New));
    }

    #[test]
    fn the_tables_memory_is_charged_and_bounded_by_the_budget() {
        let budget = Budget::new("MEMORY_BUDGET", 64 * 1024);
        let recent = RecentIds::new(1_000_000, Duration::from_secs(60), &budget);
        let mut refused = None;
        for i in 0..100_000 {
            let i = i.to_string();
            if let Err(err) = recent.publish_once(id(&i), 0, ok) {
                refused = Some(err);
                break;
            }
            assert!(budget.used() > 0 && budget.used() <= 64 * 1024);
        }
        assert_eq!(refused, Some(PublishError::IdsFull("MEMORY_BUDGET")));
        let held = budget.used();
        assert!(held > 32 * 1024, "{held}");
        // Every id expires: the memory goes back.
        for shard in 0..200 {
            let _ = recent.publish_once(id(&format!("later-{shard}")), 1000, ok);
        }
        assert!(budget.used() < held / 2, "{} of {held}", budget.used());
    }
}
