//! The ids the in-memory queues accepted lately, so that a message sent again under the same
//! id (a client retrying after a timeout) is answered `duplicate` instead of being queued
//! twice. (The NATS queue leaves this to JetStream's own de-duplication.)
//!
//! Invariants:
//! - bounded: at most `capacity` ids are remembered, each for at most `window`; when more
//!   arrive within the window the oldest are forgotten first, so under a heavy load the
//!   effective window is shorter (`/stats` shows how many are remembered);
//! - an id counts as accepted only once its publish succeeded: the check, the publish and
//!   the record happen under one lock (of the id's shard), so two concurrent sends of one
//!   id queue it once and a refused publish leaves no record;
//! - ids are kept as 128-bit keyed hashes (16 bytes each whatever the id's length: two
//!   seeded 64-bit hashes); two distinct ids are mistaken for each other with a probability
//!   of about 2^-128 per pair;
//! - time is the caller's clock in whole seconds (a batch reads the clock once), so an id
//!   is remembered for the window give or take a second.

use std::{
    collections::{HashSet, VecDeque},
    hash::{BuildHasher, BuildHasherDefault, Hasher},
    sync::Mutex,
    time::Duration,
};

use foldhash::quality::RandomState;

use super::PublishError;

/// Shards of the table: publishers of different ids rarely wait for each other.
const SHARDS: usize = 16;

/// The default of [`RecentIds::new`]'s `capacity` (`DEDUP_IDS`).
pub const DEFAULT_DEDUP_IDS: usize = 100_000;
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

#[derive(Debug, Default)]
struct Shard {
    known: HashSet<u128, BuildHasherDefault<KeyHasher>>,
    /// Keys in the order they were accepted, with when (Unix seconds).
    order: VecDeque<(u128, i64)>,
}

impl RecentIds {
    /// A table remembering at most `capacity` ids (none when zero) for at most `window`.
    pub fn new(capacity: usize, window: Duration) -> RecentIds {
        RecentIds {
            shards: (0..SHARDS).map(|_| Mutex::default()).collect(),
            per_shard: capacity.div_ceil(SHARDS),
            window: i64::try_from(window.as_secs()).unwrap_or(i64::MAX),
            keys: (RandomState::default(), RandomState::default()),
        }
    }

    /// Runs `publish` unless `id` was accepted within the window before `now` (Unix
    /// seconds), and remembers `id` when it succeeds. An empty id is never remembered.
    pub fn publish_once(
        &self,
        id: &str,
        now: i64,
        publish: impl FnOnce() -> Result<(), PublishError>,
    ) -> Result<Published, PublishError> {
        if id.is_empty() || self.per_shard == 0 {
            return publish().map(|()| Published::New);
        }
        let key = self.key(id);
        let shard = &self.shards[(key as usize) % SHARDS];
        let mut shard = shard
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        shard.forget_older_than(now, self.window);
        if shard.known.contains(&key) {
            return Ok(Published::Duplicate);
        }
        publish()?;
        if shard.order.len() >= self.per_shard
            && let Some((oldest, _)) = shard.order.pop_front()
        {
            shard.known.remove(&oldest);
        }
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

    fn key(&self, id: &str) -> u128 {
        let high = self.keys.0.hash_one(id.as_bytes());
        let low = self.keys.1.hash_one(id.as_bytes());
        (u128::from(high) << 64) | u128::from(low)
    }
}

impl Shard {
    fn forget_older_than(&mut self, now: i64, window: i64) {
        while let Some(&(key, at)) = self.order.front() {
            if now.saturating_sub(at) < window {
                break;
            }
            self.order.pop_front();
            self.known.remove(&key);
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

    fn write_u128(&mut self, key: u128) {
        self.0 = key as u64;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok() -> Result<(), PublishError> {
        Ok(())
    }

    #[test]
    fn an_id_is_published_once_within_the_window() {
        let recent = RecentIds::new(1000, Duration::from_secs(60));
        assert_eq!(recent.publish_once("a", 0, ok), Ok(Published::New));
        assert_eq!(recent.publish_once("a", 0, ok), Ok(Published::Duplicate));
        assert_eq!(recent.publish_once("b", 0, ok), Ok(Published::New));
        // Empty ids are never remembered.
        assert_eq!(recent.publish_once("", 0, ok), Ok(Published::New));
        assert_eq!(recent.publish_once("", 0, ok), Ok(Published::New));
        assert_eq!(recent.len(), 2);
    }

    #[test]
    fn a_refused_publish_leaves_no_record() {
        let recent = RecentIds::new(1000, Duration::from_secs(60));
        assert_eq!(
            recent.publish_once("a", 0, || Err(PublishError::Full)),
            Err(PublishError::Full)
        );
        assert_eq!(recent.publish_once("a", 0, ok), Ok(Published::New));
    }

    #[test]
    fn ids_are_forgotten_after_the_window_and_beyond_the_capacity() {
        let recent = RecentIds::new(1000, Duration::from_secs(60));
        assert_eq!(recent.publish_once("a", 100, ok), Ok(Published::New));
        assert_eq!(recent.publish_once("a", 159, ok), Ok(Published::Duplicate));
        assert_eq!(recent.publish_once("a", 160, ok), Ok(Published::New));

        let recent = RecentIds::new(SHARDS * 4, Duration::from_secs(60));
        for i in 0..10_000 {
            assert_eq!(
                recent.publish_once(&i.to_string(), 0, ok),
                Ok(Published::New)
            );
        }
        assert!(recent.len() <= SHARDS * 4, "{}", recent.len());
        // The latest are still known.
        assert_eq!(recent.publish_once("9999", 0, ok), Ok(Published::Duplicate));

        let off = RecentIds::new(0, Duration::from_secs(60));
        assert_eq!(off.publish_once("a", 0, ok), Ok(Published::New));
        assert_eq!(off.publish_once("a", 0, ok), Ok(Published::New));
    }
}
