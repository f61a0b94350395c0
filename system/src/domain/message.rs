//! A borrowed view of a [`DataMessage`], so that queues can accept and hand out messages
//! without choosing one owned representation: the baseline queue stores the generated
//! prost type, the pooled queue stores reusable slots, and both are read through
//! [`MessageRef`]. Also the one reading of the wall clock that message times come from
//! ([`unix_now`]).

use std::{
    collections::HashMap,
    time::{Duration, SystemTime, UNIX_EPOCH},
};

pub mod wire_map;

use self::wire_map::WireMap;
use crate::domain::proto::DataMessage;

/// Most metadata entries of one message.
pub const MAX_METADATA_ENTRIES: usize = 100;

/// Time since the Unix epoch, now (zero for a clock set before 1970).
pub fn unix_time() -> Duration {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
}

/// Seconds since the Unix epoch, now: the time a door stamps on a message it accepts.
pub fn unix_now() -> i64 {
    unix_time().as_secs() as i64
}

/// A message as the queues and workers see it: every field borrowed.
#[derive(Debug, Clone, Copy)]
pub struct MessageRef<'a> {
    /// Unique id of the message.
    pub id: &'a str,
    /// Unix time in seconds at which the message was accepted.
    pub timestamp: i64,
    /// Who sent the message.
    pub source: &'a str,
    /// The opaque data.
    pub payload: &'a [u8],
    /// String pairs travelling with the payload.
    pub metadata: Metadata<'a>,
    /// Where the id came from, which decides whether it is remembered for de-duplication.
    pub origin: IdOrigin<'a>,
}

/// Where a message's id came from: the hop's `id_assigned` and `id_scope`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IdOrigin<'a> {
    /// The system gave the id: it cannot come again, and is not remembered.
    pub assigned: bool,
    /// The namespace of a client's id: the name of its token (empty: the namespace
    /// clients share).
    pub scope: &'a str,
}

impl<'a> IdOrigin<'a> {
    /// An id the system gave.
    pub(crate) const ASSIGNED: IdOrigin<'static> = IdOrigin {
        assigned: true,
        scope: "",
    };

    /// A client's id in the namespace `scope`.
    pub fn client(scope: &'a str) -> IdOrigin<'a> {
        IdOrigin {
            assigned: false,
            scope,
        }
    }
}

/// What a message is de-duplicated by: the id its client gave, within the client's scope
/// (the name of its token; empty where clients share one namespace).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DedupKey<'a> {
    /// The namespace of the id.
    pub scope: &'a str,
    /// The client's id.
    pub id: &'a str,
}

impl<'a> DedupKey<'a> {
    /// The key of a client's `id` in the shared namespace.
    pub fn shared(id: &'a str) -> DedupKey<'a> {
        DedupKey { scope: "", id }
    }
}

/// Borrowed metadata in one of the shapes it is kept in.
#[derive(Debug, Clone, Copy)]
pub enum Metadata<'a> {
    /// The map of a generated [`DataMessage`].
    Map(&'a HashMap<String, String>),
    /// The reused pairs of a pooled message (only the live ones).
    Pairs(&'a [(String, String)]),
    /// The entries of a message read in place, as its reading remembered them.
    Wire(WireMap<'a>),
}

impl<'a> Metadata<'a> {
    /// Number of pairs.
    pub fn len(&self) -> usize {
        match self {
            Metadata::Map(map) => map.len(),
            Metadata::Pairs(pairs) => pairs.len(),
            Metadata::Wire(map) => map.len(),
        }
    }

    /// Whether there are no pairs.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The value stored under `key`, if any.
    pub fn get(&self, key: &str) -> Option<&'a str> {
        match self {
            Metadata::Map(map) => map.get(key).map(String::as_str),
            Metadata::Pairs(pairs) => pairs
                .iter()
                .find(|(k, _)| k == key)
                .map(|(_, v)| v.as_str()),
            Metadata::Wire(map) => map.get(key),
        }
    }

    /// All pairs, in no particular order.
    pub fn iter(&self) -> impl Iterator<Item = (&'a str, &'a str)> + 'a {
        let (map, pairs, wire) = match *self {
            Metadata::Map(map) => (Some(map), None, None),
            Metadata::Pairs(pairs) => (None, Some(pairs), None),
            Metadata::Wire(wire) => (None, None, Some(wire)),
        };
        let from_map = map.into_iter().flatten();
        let from_pairs = pairs.into_iter().flatten().map(|(k, v)| (k, v));
        let owned = from_map
            .chain(from_pairs)
            .map(|(k, v)| (k.as_str(), v.as_str()));
        owned.chain(wire.into_iter().flat_map(|wire| wire.iter()))
    }
}

impl<'a> From<&'a DataMessage> for MessageRef<'a> {
    fn from(msg: &'a DataMessage) -> Self {
        MessageRef {
            id: &msg.id,
            timestamp: msg.timestamp,
            source: &msg.source,
            payload: &msg.payload,
            metadata: Metadata::Map(&msg.metadata),
            origin: IdOrigin {
                assigned: msg.id_assigned,
                scope: &msg.id_scope,
            },
        }
    }
}

impl<'a> MessageRef<'a> {
    /// What the message is de-duplicated by: its id within its client's scope, or `None`
    /// when the system gave the id (or none was given yet).
    pub(crate) fn dedup_key(&self) -> Option<DedupKey<'a>> {
        (!self.origin.assigned && !self.id.is_empty()).then_some(DedupKey {
            scope: self.origin.scope,
            id: self.id,
        })
    }
}

impl MessageRef<'_> {
    /// The bytes the message's fields take (what holding it costs, near enough): its
    /// strings, payload and metadata, plus a fixed allowance for the structure.
    pub fn size(&self) -> usize {
        const OVERHEAD: usize = 64;
        // One loop per shape of metadata, each monomorphized (no chained iterators per pair).
        let metadata: usize = match self.metadata {
            Metadata::Map(map) => map.iter().map(|(k, v)| k.len() + v.len()).sum(),
            Metadata::Pairs(pairs) => pairs.iter().map(|(k, v)| k.len() + v.len()).sum(),
            Metadata::Wire(wire) => wire.iter().map(|(k, v)| k.len() + v.len()).sum(),
        };
        OVERHEAD + self.id.len() + self.source.len() + self.payload.len() + metadata
    }

    /// Copies the view into a freshly allocated [`DataMessage`].
    pub fn to_owned_message(&self) -> DataMessage {
        DataMessage {
            id: self.id.to_owned(),
            timestamp: self.timestamp,
            source: self.source.to_owned(),
            payload: self.payload.to_vec(),
            metadata: self
                .metadata
                .iter()
                .map(|(k, v)| (k.to_owned(), v.to_owned()))
                .collect(),
            id_assigned: self.origin.assigned,
            id_scope: self.origin.scope.to_owned(),
        }
    }
}
