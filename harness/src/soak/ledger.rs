//! Which messages the system said it accepted, and which it processed, kept compactly
//! enough for a run of many minutes: the soak's own ids are numbers (`<prefix><door><n>`),
//! kept as bits; ids the server chose (UUIDs) as 128-bit numbers, and only when they are
//! to be matched one by one (the NATS run, where each processed id is logged).
//!
//! A message counts as accepted once, whatever the number of 202 answers its id got
//! (`accepted` first, `duplicate` for the retries); a server that ignores the client's id
//! gives every answer an id of its own, and each of them counts.

use super::mix::Door;

/// A growable set of small numbers.
#[derive(Debug, Clone, Default)]
pub(crate) struct Bitset {
    words: Vec<u64>,
    len: u64,
}

impl Bitset {
    /// Adds `n`; whether it was new.
    pub(crate) fn insert(&mut self, n: u64) -> bool {
        let (word, bit) = ((n / 64) as usize, n % 64);
        if self.words.len() <= word {
            self.words.resize(word + 1, 0);
        }
        let mask = 1u64 << bit;
        let new = self.words[word] & mask == 0;
        self.words[word] |= mask;
        self.len += u64::from(new);
        new
    }

    /// How many numbers the set holds.
    pub(crate) fn len(&self) -> u64 {
        self.len
    }

    /// How many numbers of this set `other` lacks.
    pub(crate) fn missing_from(&self, other: &Bitset) -> u64 {
        self.words
            .iter()
            .enumerate()
            .map(|(i, w)| (w & !other.words.get(i).copied().unwrap_or(0)).count_ones() as u64)
            .sum()
    }
}

/// The ids of one door's messages: `<prefix><door letter><n>`.
#[derive(Debug, Clone)]
pub(crate) struct Ids {
    prefix: String,
}

impl Ids {
    /// Ids under `prefix` (which ends before the door's letter).
    pub(crate) fn new(prefix: String) -> Ids {
        Ids { prefix }
    }

    /// The id of message `n` of `door`.
    pub(crate) fn id(&self, door: Door, n: u64) -> String {
        format!("{}{}{n}", self.prefix, door.letter())
    }

    /// The door and number of one of our ids; `None` for any other id.
    pub(crate) fn parse(&self, id: &str) -> Option<(Door, u64)> {
        let rest = id.strip_prefix(&self.prefix)?;
        let door = Door::from_letter(rest.chars().next()?)?;
        Some((door, rest.get(1..)?.parse().ok()?))
    }
}

/// A UUID in its text form as a number, or `None` for any other text.
pub(crate) fn uuid(text: &str) -> Option<u128> {
    let hex: String = text.chars().filter(|c| *c != '-').collect();
    (hex.len() == 32)
        .then(|| u128::from_str_radix(&hex, 16).ok())
        .flatten()
}

/// What one door's answers said was accepted.
#[derive(Debug, Clone, Default)]
pub(crate) struct Accepted {
    /// Our ids answered 202 under that id (`accepted` or `duplicate`).
    pub(crate) answered: Bitset,
    /// Our ids answered `accepted` (not `duplicate`) at least once.
    new: Bitset,
    /// Answers `accepted` to an id already answered `accepted`: the server's word that it
    /// stored one message twice.
    pub(crate) stored_twice: u64,
    /// Messages accepted under an id the server chose (no id given, or the given one not
    /// used), each counted once.
    pub(crate) anonymous: u64,
    /// Those ids, when they are kept ([`Accepted::keeping_ids`]) and are UUIDs.
    pub(crate) anonymous_ids: Option<Vec<u128>>,
}

impl Accepted {
    /// A ledger that keeps the server's ids too, to match them with processed ids.
    pub(crate) fn keeping_ids() -> Accepted {
        Accepted {
            anonymous_ids: Some(Vec::new()),
            ..Accepted::default()
        }
    }

    /// Notes a 202 answer to our message `n` under our id.
    pub(crate) fn ours(&mut self, n: u64, duplicate: bool) {
        self.answered.insert(n);
        if !duplicate && !self.new.insert(n) {
            self.stored_twice += 1;
        }
    }

    /// Notes a message accepted under the server's id `id` (empty when not told).
    pub(crate) fn theirs(&mut self, id: &str) {
        self.anonymous += 1;
        if let (Some(ids), Some(n)) = (&mut self.anonymous_ids, uuid(id)) {
            ids.push(n);
        }
    }

    /// Messages accepted: each of our ids once, and each of the server's.
    pub(crate) fn total(&self) -> u64 {
        self.answered.len() + self.anonymous
    }
}

/// What the processors' logs say they processed (the NATS run: one `nats ack` line with
/// the id for each message a worker finished).
#[derive(Debug, Clone)]
pub(crate) struct Processed {
    ids: Ids,
    ours: [Bitset; 2],
    theirs: Vec<u128>,
    /// Processed ids that are neither ours nor UUIDs.
    foreign: u64,
    /// Every ack line, redeliveries included.
    pub(crate) acks: u64,
}

impl Processed {
    /// An empty record for messages whose ids are made by `ids`.
    pub(crate) fn new(ids: Ids) -> Processed {
        Processed {
            ids,
            ours: [Bitset::default(), Bitset::default()],
            theirs: Vec::new(),
            foreign: 0,
            acks: 0,
        }
    }

    /// Notes one processed message.
    pub(crate) fn record(&mut self, id: &str) {
        self.acks += 1;
        if let Some((door, n)) = self.ids.parse(id) {
            self.ours[door.index()].insert(n);
        } else if let Some(n) = uuid(id) {
            self.theirs.push(n);
        } else {
            self.foreign += 1;
        }
    }

    /// Distinct messages processed so far (a message processed again after a redelivery
    /// may count twice until [`Processed::compare`] sorts the server's ids).
    pub(crate) fn so_far(&self) -> u64 {
        self.ours.iter().map(Bitset::len).sum::<u64>() + self.theirs.len() as u64 + self.foreign
    }

    /// Matches what each door had accepted against what was processed.
    pub(crate) fn compare(&mut self, accepted: &[&Accepted]) -> Matched {
        self.theirs.sort_unstable();
        self.theirs.dedup();
        let mut lost = 0;
        let mut theirs_accepted = Vec::new();
        for (i, door) in accepted.iter().enumerate() {
            lost += self
                .ours
                .get(i)
                .map_or(door.answered.len(), |p| door.answered.missing_from(p));
            theirs_accepted.extend(door.anonymous_ids.iter().flatten().copied());
        }
        lost += theirs_accepted
            .iter()
            .filter(|n| self.theirs.binary_search(n).is_err())
            .count() as u64;
        let processed = self.ours.iter().map(Bitset::len).sum::<u64>()
            + self.theirs.len() as u64
            + self.foreign;
        Matched {
            processed,
            lost,
            reprocessed: self.acks.saturating_sub(processed),
        }
    }
}

/// Accepted against processed, id by id.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Matched {
    /// Distinct messages processed.
    pub(crate) processed: u64,
    /// Accepted messages whose id no processor logged.
    pub(crate) lost: u64,
    /// Messages processed more than once (delivered again after a processor died).
    pub(crate) reprocessed: u64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_retried_id_counts_once_and_an_id_stored_twice_is_noticed() {
        let mut accepted = Accepted::keeping_ids();
        accepted.ours(7, false);
        accepted.ours(7, true);
        assert_eq!((accepted.total(), accepted.stored_twice), (1, 0));
        accepted.ours(7, false);
        assert_eq!(accepted.stored_twice, 1);
        accepted.theirs("0b5e7c4e-95a1-4f0e-9a37-1c1f2b9e2a10");
        assert_eq!(accepted.total(), 2);
    }

    #[test]
    fn processed_ids_are_matched_with_accepted_ones_and_redeliveries_count_apart() {
        let ids = Ids::new("soak-1-memory-".to_owned());
        let mut accepted = Accepted::keeping_ids();
        accepted.ours(1, false);
        accepted.ours(2, false);
        let uuid = "0b5e7c4e-95a1-4f0e-9a37-1c1f2b9e2a10";
        accepted.theirs(uuid);
        let mut processed = Processed::new(ids.clone());
        for id in [
            ids.id(Door::Http, 1),
            ids.id(Door::Http, 1),
            uuid.to_owned(),
        ] {
            processed.record(&id);
        }
        let empty = Accepted::default();
        let matched = processed.compare(&[&accepted, &empty]);
        assert_eq!(
            matched,
            Matched {
                processed: 2,
                lost: 1,
                reprocessed: 1
            }
        );
        assert_eq!(ids.parse(&ids.id(Door::Grpc, 42)), Some((Door::Grpc, 42)));
        assert_eq!(ids.parse("soak-1-memory-x1"), None);
    }
}
