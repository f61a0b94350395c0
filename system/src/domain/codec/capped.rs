//! JSON bodies read with their metadata capped: a metadata object keeps at most
//! [`MAX_METADATA_ENTRIES`] entries while it is read and only counts the ones after (each
//! still has to be a string), so a body packed with tiny entries never builds a map larger
//! than a message may hold; the door then refuses the message, saying how many entries it
//! had ([`validate::entries`]).
//!
//! [`CappedMessage`] reads a `DataMessage` as the generated (pbjson) reader does, field by
//! field, with the same errors; only its metadata is read by [`CappedMap`].

use std::{collections::HashMap, fmt};

use pbjson::private::{BytesDeserialize, NumberDeserialize};
use serde::{
    Deserialize, Deserializer,
    de::{self, DeserializeSeed, MapAccess, Visitor},
};

use crate::{
    domain::proto::DataMessage,
    domain::validate::{self, Invalid, MAX_METADATA_ENTRIES},
};

/// A metadata object as read: its first entries, and how many it had.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CappedMap {
    /// The first [`MAX_METADATA_ENTRIES`] keys (all of them, when there are no more).
    pub kept: HashMap<String, String>,
    /// The entries of the object: its keys, while they are at most
    /// [`MAX_METADATA_ENTRIES`]; past that, the keys up to the first one over and then
    /// every entry as written (as [`crate::domain::wire::WireMap::len`] counts them).
    pub entries: usize,
}

impl CappedMap {
    /// The map, or why a message may not have it.
    pub(crate) fn into_map(self) -> Result<HashMap<String, String>, Invalid> {
        validate::entries(self.entries)?;
        Ok(self.kept)
    }

    /// Reads an object of strings with repeated keys refused (the form of a front door's
    /// JSON body).
    pub fn unique<'de, D: Deserializer<'de>>(deserializer: D) -> Result<CappedMap, D::Error> {
        deserializer.deserialize_map(CappedSeed {
            unique: true,
            expecting: "an object of strings",
        })
    }
}

/// How a metadata object is read: with repeated keys refused, or with the last one winning
/// (as a generated map does), and the words for a value that is no object.
#[derive(Debug, Clone, Copy)]
struct CappedSeed {
    unique: bool,
    expecting: &'static str,
}

impl<'de> DeserializeSeed<'de> for CappedSeed {
    type Value = CappedMap;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<CappedMap, D::Error> {
        deserializer.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for CappedSeed {
    type Value = CappedMap;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.expecting)
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<CappedMap, A::Error> {
        let mut capped = CappedMap::default();
        while let Some(key) = map.next_key::<String>()? {
            if capped.kept.len() == MAX_METADATA_ENTRIES && !capped.kept.contains_key(&key) {
                // One key too many: from here on entries are only counted.
                map.next_value::<AnyString>()?;
                capped.entries += 1;
                while map.next_entry::<AnyString, AnyString>()?.is_some() {
                    capped.entries += 1;
                }
                return Ok(capped);
            }
            let value = map.next_value()?;
            if capped.kept.insert(key, value).is_some() && self.unique {
                return Err(de::Error::custom(Invalid::RepeatedKey));
            }
            capped.entries = capped.kept.len();
        }
        Ok(capped)
    }
}

/// A string read and let go without being kept (nor allocated).
struct AnyString;

impl<'de> Deserialize<'de> for AnyString {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<AnyString, D::Error> {
        deserializer.deserialize_str(AnyString)
    }
}

impl Visitor<'_> for AnyString {
    type Value = AnyString;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a string")
    }

    fn visit_str<E: de::Error>(self, _: &str) -> Result<AnyString, E> {
        Ok(AnyString)
    }
}

/// A `DataMessage` in the proto3 JSON mapping with its metadata capped: the message (with
/// the metadata's first entries) and how many entries the metadata had.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct CappedMessage {
    /// The message, with at most [`MAX_METADATA_ENTRIES`] metadata entries.
    pub message: DataMessage,
    /// The entries of its metadata (see [`CappedMap::entries`]).
    pub entries: usize,
}

impl CappedMessage {
    /// The message, or why it may not be taken.
    pub fn into_message(self) -> Result<DataMessage, Invalid> {
        validate::entries(self.entries)?;
        Ok(self.message)
    }
}

/// The fields of a `DataMessage`, under their JSON names (for fields 6 and 7 their proto
/// names and the names the proto3 mapping writes, both of which it reads), in the order
/// the generated reader lists them in its errors.
const FIELDS: &[&str] = &[
    "id",
    "timestamp",
    "source",
    "payload",
    "metadata",
    "id_assigned",
    "idAssigned",
    "id_scope",
    "idScope",
];

/// The field a name of [`FIELDS`] stands for (5: `id_assigned`, 6: `id_scope`).
const FIELD_OF_NAME: [usize; 9] = [0, 1, 2, 3, 4, 5, 5, 6, 6];

/// Each field's name in errors (as the generated reader names it).
const FIELD_NAMES: [&str; 7] = [
    "id",
    "timestamp",
    "source",
    "payload",
    "metadata",
    "idAssigned",
    "idScope",
];

impl<'de> Deserialize<'de> for CappedMessage {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<CappedMessage, D::Error> {
        deserializer.deserialize_struct("diplom.v1.DataMessage", FIELDS, MessageVisitor)
    }
}

/// A field of a `DataMessage`: its place in [`FIELDS`].
struct Field(usize);

impl<'de> Deserialize<'de> for Field {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Field, D::Error> {
        deserializer.deserialize_identifier(FieldVisitor)
    }
}

struct FieldVisitor;

impl Visitor<'_> for FieldVisitor {
    type Value = Field;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "expected one of: {FIELDS:?}")
    }

    fn visit_str<E: de::Error>(self, value: &str) -> Result<Field, E> {
        FIELDS
            .iter()
            .position(|name| *name == value)
            .map(|i| Field(FIELD_OF_NAME[i]))
            .ok_or_else(|| de::Error::unknown_field(value, FIELDS))
    }
}

struct MessageVisitor;

impl<'de> Visitor<'de> for MessageVisitor {
    type Value = CappedMessage;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("struct diplom.v1.DataMessage")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<CappedMessage, A::Error> {
        let mut seen = [false; FIELD_NAMES.len()];
        let mut capped = CappedMessage::default();
        let msg = &mut capped.message;
        while let Some(Field(field)) = map.next_key()? {
            if std::mem::replace(&mut seen[field], true) {
                return Err(de::Error::duplicate_field(FIELD_NAMES[field]));
            }
            match field {
                0 => msg.id = map.next_value()?,
                1 => msg.timestamp = map.next_value::<NumberDeserialize<i64>>()?.0,
                2 => msg.source = map.next_value()?,
                3 => msg.payload = map.next_value::<BytesDeserialize<Vec<u8>>>()?.0,
                5 => msg.id_assigned = map.next_value()?,
                6 => msg.id_scope = map.next_value()?,
                _ => {
                    let metadata = map.next_value_seed(CappedSeed {
                        unique: false,
                        expecting: "a map",
                    })?;
                    msg.metadata = metadata.kept;
                    capped.entries = metadata.entries;
                }
            }
        }
        Ok(capped)
    }
}
