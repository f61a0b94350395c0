//! The `map<string, string>` metadata of messages read in place. Reading a message makes one
//! pass over it and remembers, in a [`WireEntries`] the caller owns and reuses, the last
//! entry of each key in the order of their last occurrence (what a decoded map holds; a
//! key is found again through a seeded hash index, in a step or two). A [`WireMap`] is the
//! view of one message's remembered entries: checking, sizing, writing and copying a
//! message read in place visit its entries, never its bytes again.
//!
//! A message keeps at most [`MAX_METADATA_ENTRIES`] entries: from the first key over that
//! number on, entries are counted but not remembered (such a message is refused, and
//! nothing reads its entries), so a table never holds more than that many per message.

use std::{cell::Cell, hash::BuildHasher};

use super::MAX_METADATA_ENTRIES;

/// Slots of the key index: more than twice the entries a message keeps, so that a lookup
/// probes a slot or two.
const SLOTS: usize = 256;

// The index stores an entry's place plus one in a byte.
const _: () = assert!(MAX_METADATA_ENTRIES < u8::MAX as usize && 2 * MAX_METADATA_ENTRIES < SLOTS);

/// Where reading messages in place remembers their metadata entries. Made once and reused
/// (a stream keeps one for all its messages, [`WireEntries::recycle`] carrying it from one
/// message's lifetime to the next), so that reading allocates nothing once warm. A table
/// holds the entries of every message read into it since it was last cleared, so that a
/// batch of messages can be read before any of them is used.
#[derive(Debug)]
pub struct WireEntries<'a> {
    /// The remembered entries of the messages read so far, each message's together.
    kept: Vec<(&'a str, &'a str)>,
    /// The message being read (boxed: a table moves from one message's lifetime to the
    /// next, and its index need not move with it).
    current: Box<Current>,
}

/// What the table knows of the message being read.
#[derive(Debug)]
struct Current {
    /// Where its entries begin in `kept`.
    first: usize,
    /// Its entries so far, as [`WireMap::len`] counts them.
    count: usize,
    /// Its entries so far as written, repeats included.
    written: usize,
    /// Set once a key came that would be one entry too many.
    over: bool,
    /// Set once a key came again: its entries are then put back in the order of their last
    /// occurrence when the message ends.
    repeated: bool,
    /// When each kept entry (by its place among the message's) was last written.
    last: [usize; MAX_METADATA_ENTRIES],
    /// The message's keys by their hash: the entry's place plus one, 0 where free.
    slots: [u8; SLOTS],
    /// Seeded once per table, so that no client can choose keys that collide.
    hasher: foldhash::fast::RandomState,
}

impl Default for WireEntries<'_> {
    fn default() -> Self {
        WireEntries {
            kept: Vec::new(),
            current: Box::new(Current {
                first: 0,
                count: 0,
                written: 0,
                over: false,
                repeated: false,
                last: [0; MAX_METADATA_ENTRIES],
                slots: [0; SLOTS],
                hasher: foldhash::fast::RandomState::default(),
            }),
        }
    }
}

/// Which entries of a table are one message's, and how many it had.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Kept {
    first: usize,
    end: usize,
    count: usize,
}

/// Most entries a cached table keeps room for: what a batch of small messages needs,
/// while a table that read a batch of large maps gives its memory back.
const CACHED_ENTRIES: usize = 1024;

thread_local! {
    /// The table of [`WireEntries::from_cache`]: one per thread.
    static CACHE: Cell<Option<WireEntries<'static>>> = const { Cell::new(None) };
}

impl<'a> WireEntries<'a> {
    /// This thread's cached table (a new one when there is none), for reading one request,
    /// so that reading requests allocates nothing once the thread has read one.
    pub(crate) fn from_cache() -> WireEntries<'a> {
        CACHE.take().unwrap_or_default().recycle()
    }

    /// Gives the table to this thread's cache (a request that ended on another thread than
    /// it began gives it to that one).
    pub(crate) fn into_cache(self) {
        let mut entries = self.recycle();
        entries.kept.shrink_to(CACHED_ENTRIES);
        CACHE.set(Some(entries));
    }

    /// The table emptied, for messages of another lifetime; it keeps its capacity.
    pub fn recycle<'b>(mut self) -> WireEntries<'b> {
        self.kept.clear();
        self.current.first = 0;
        WireEntries {
            // The empty vector mapped in place: the same allocation, for other
            // lifetimes (`(&str, &str)` has one layout whatever they are).
            kept: self.kept.into_iter().map(|_| ("", "")).collect(),
            current: self.current,
        }
    }

    /// Forgets every message read into the table.
    pub fn clear(&mut self) {
        self.kept.clear();
        self.current.first = 0;
    }

    /// Starts the next message's entries.
    pub(crate) fn begin(&mut self) {
        let current = &mut self.current;
        if current.count > 0 {
            current.slots.fill(0);
        }
        current.first = self.kept.len();
        current.count = 0;
        current.written = 0;
        current.over = false;
        current.repeated = false;
    }

    /// Remembers an entry of the message being read: a new key at the end, a key seen
    /// before in its place with the new value (put back in order when the message ends).
    pub(crate) fn add(&mut self, key: &'a str, value: &'a str) {
        let current = &mut self.current;
        current.written += 1;
        if current.over {
            current.count += 1;
            return;
        }
        let kept = &mut self.kept[current.first..];
        let mut slot = current.hasher.hash_one(key) as usize % SLOTS;
        loop {
            work::step();
            let place = match current.slots[slot] {
                0 => break,
                taken => usize::from(taken) - 1,
            };
            if let Some(entry) = kept.get_mut(place)
                && entry.0 == key
            {
                entry.1 = value;
                current.last[place] = current.written;
                current.repeated = true;
                return;
            }
            slot = (slot + 1) % SLOTS;
        }
        let place = kept.len();
        if place == MAX_METADATA_ENTRIES {
            current.over = true;
            current.count += 1;
            return;
        }
        self.kept.push((key, value));
        current.last[place] = current.written;
        // `place` is below `MAX_METADATA_ENTRIES`, which fits a byte (asserted above).
        current.slots[slot] = (place + 1) as u8;
        current.count += 1;
    }

    /// Ends the message being read: its entries, in the order of their last occurrence.
    pub(crate) fn end(&mut self) -> Kept {
        let current = &mut self.current;
        let entries = &mut self.kept[current.first..];
        if current.repeated && !current.over {
            // At most `MAX_METADATA_ENTRIES`, sorted on the stack, only for a message whose
            // keys repeat.
            let mut order = [(0, ("", "")); MAX_METADATA_ENTRIES];
            let order = &mut order[..entries.len()];
            for (slot, (&entry, &last)) in order.iter_mut().zip(entries.iter().zip(&current.last)) {
                work::step();
                *slot = (last, entry);
            }
            order.sort_unstable_by_key(|&(last, _)| last);
            for (entry, &(_, sorted)) in entries.iter_mut().zip(order.iter()) {
                *entry = sorted;
            }
        }
        Kept {
            first: current.first,
            end: self.kept.len(),
            count: current.count,
        }
    }

    /// The view of one message's entries.
    pub(crate) fn map(&self, kept: Kept) -> WireMap<'_> {
        WireMap {
            entries: self.kept.get(kept.first..kept.end).unwrap_or_default(),
            count: kept.count,
        }
    }
}

/// The metadata of a message read in place: the entries its reading remembered.
#[derive(Debug, Clone, Copy)]
pub struct WireMap<'a> {
    entries: &'a [(&'a str, &'a str)],
    count: usize,
}

impl<'a> WireMap<'a> {
    /// The pairs, one per key (the last entry of a key wins, as in a decoded map), in the
    /// order of their last occurrence. A map over the limit gives only the first
    /// [`MAX_METADATA_ENTRIES`] keys.
    pub fn iter(self) -> impl ExactSizeIterator<Item = (&'a str, &'a str)> + Clone + 'a {
        self.entries.iter().map(|&entry| {
            work::step();
            entry
        })
    }

    /// Number of entries: the keys, while they are at most [`MAX_METADATA_ENTRIES`]; past
    /// that, the keys up to the first one over and then every entry as written (more than
    /// the limit either way, and exact when no key repeats).
    pub fn len(self) -> usize {
        self.count
    }

    /// Whether the map is empty.
    pub fn is_empty(self) -> bool {
        self.count == 0
    }

    /// The value of `key`.
    pub fn get(self, key: &str) -> Option<&'a str> {
        self.iter().find(|(k, _)| *k == key).map(|(_, v)| v)
    }
}

/// The work of reading messages in place and of using what the reading remembered, counted
/// for the tests that bound it: each field read, key looked up and remembered entry visited
/// is a step. Nothing is counted outside tests.
pub(crate) mod work {
    #[cfg(test)]
    thread_local! {
        static STEPS: std::cell::Cell<u64> = const { std::cell::Cell::new(0) };
    }

    /// One step of work.
    #[inline(always)]
    pub(crate) fn step() {
        #[cfg(test)]
        STEPS.with(|steps| steps.set(steps.get() + 1));
    }

    /// The steps `f` took on this thread, and what it returned.
    #[cfg(test)]
    pub(crate) fn during<R>(f: impl FnOnce() -> R) -> (u64, R) {
        let before = STEPS.with(std::cell::Cell::get);
        let result = f();
        (STEPS.with(std::cell::Cell::get) - before, result)
    }
}
