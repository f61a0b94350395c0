//! What a message may hold, checked once at each edge (the gateway, the gRPC server and the
//! processor) before anything else sees it. Every client-chosen string can end up in a log
//! line, a NATS header or a metric label, so none may hold control characters, and each
//! has a length limit; the id, which becomes JetStream's de-duplication header, is visible
//! ASCII only. The payload is opaque bytes and is not looked at.
//!
//! The limits on metadata follow those of common message brokers (100 attributes, keys of
//! 256 bytes, values of 1024 bytes): enough for routing and tracing, small enough that a
//! message's metadata never costs more than about 128 KiB however it is encoded. No door
//! builds metadata of more entries than that while it reads a message: too many are
//! refused as the message is read ([`entries`]), so that fault is named before any other.

use crate::{
    domain::ids::{IdSource, MessageId},
    domain::message::{MessageRef, Metadata},
    domain::proto::{DataMessage, IngestRequest},
};

/// Longest `source`, in bytes.
pub const MAX_SOURCE_BYTES: usize = 256;
/// Longest message id, in bytes.
pub const MAX_ID_BYTES: usize = 128;
/// Longest name of a namespace of ids, in bytes.
pub(crate) const MAX_SCOPE_BYTES: usize = 64;
pub use crate::domain::message::MAX_METADATA_ENTRIES;
/// Longest metadata key, in bytes.
pub(crate) const MAX_METADATA_KEY_BYTES: usize = 256;
/// Longest metadata value, in bytes.
pub(crate) const MAX_METADATA_VALUE_BYTES: usize = 1024;

/// Why a message is refused. The texts are written for the client and never echo the
/// offending value (it may be huge, or hold the very characters refused).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Invalid {
    /// `source` is missing, empty or blank.
    #[error("field `source` is required and must not be empty")]
    MissingSource,
    /// A string is longer than its limit.
    #[error("field `{field}` is longer than {limit} bytes")]
    TooLong {
        /// Which field.
        field: &'static str,
        /// Its limit in bytes.
        limit: usize,
    },
    /// A string holds a control character (such as a line break).
    #[error("field `{0}` must not contain control characters")]
    ControlCharacter(&'static str),
    /// The id is not visible ASCII.
    #[error(
        "field `id` must be 1 to {MAX_ID_BYTES} visible ASCII characters \
         (no spaces or control characters)"
    )]
    BadId,
    /// Too many metadata entries.
    #[error("metadata has {0} entries; at most {MAX_METADATA_ENTRIES} are allowed")]
    TooManyEntries(usize),
    /// A metadata key is empty.
    #[error("metadata keys must not be empty")]
    EmptyKey,
    /// A metadata key appears twice in a JSON body.
    #[error("metadata key repeated")]
    RepeatedKey,
    /// The namespace of the id is not a name.
    #[error("field `idScope` must be 1 to {MAX_SCOPE_BYTES} letters, digits, `.`, `_` or `-`")]
    BadScope,
}

/// Admits a message as a door decoded it: checks it (see [`check`]), then gives it an id
/// from `ids` when it has none (marking it assigned: it is not remembered for
/// de-duplication) and the time `now` (Unix seconds) when it has none. Every door that
/// holds a decoded message calls this, so a fault reads the same at each.
pub(crate) fn admit(msg: &mut DataMessage, ids: IdSource, now: i64) -> Result<(), Invalid> {
    check(MessageRef::from(&*msg))?;
    if msg.id.is_empty() {
        msg.id = MessageId::generate(ids).as_str().to_owned();
        msg.id_assigned = true;
        msg.id_scope.clear();
    }
    if msg.timestamp == 0 {
        msg.timestamp = now;
    }
    Ok(())
}

/// A front door's request admitted as a message (see [`admit`]), stamped `now`.
pub(crate) fn admit_request(
    request: IngestRequest,
    ids: IdSource,
    now: i64,
) -> Result<DataMessage, Invalid> {
    let mut msg = DataMessage {
        id: request.id,
        timestamp: 0,
        source: request.source,
        payload: request.data,
        metadata: request.metadata,
        id_assigned: false,
        id_scope: String::new(),
    };
    admit(&mut msg, ids, now)?;
    Ok(msg)
}

/// Checks every string of `msg` against the rules above; an empty id is allowed (the
/// processor assigns one). The number of metadata entries comes first, as the decoders
/// refuse too many while they read a message (see [`entries`]), so that every door names
/// the same fault first.
pub fn check(msg: MessageRef<'_>) -> Result<(), Invalid> {
    entries(msg.metadata.len())?;
    if !msg.id.is_empty() && !is_valid_id(msg.id) {
        return Err(Invalid::BadId);
    }
    let scope = msg.origin.scope;
    if !scope.is_empty() && !is_valid_scope(scope) {
        return Err(Invalid::BadScope);
    }
    if msg.source.trim().is_empty() {
        return Err(Invalid::MissingSource);
    }
    text("source", msg.source, MAX_SOURCE_BYTES)?;
    // One loop per shape of metadata, each monomorphized (no chained iterators per entry).
    match msg.metadata {
        Metadata::Map(map) => pairs(map.iter().map(|(k, v)| (k.as_str(), v.as_str()))),
        Metadata::Pairs(list) => pairs(list.iter().map(|(k, v)| (k.as_str(), v.as_str()))),
        Metadata::Wire(wire) => pairs(wire.iter()),
    }
}

/// Whether a message may have `count` metadata entries: the check a decoder makes once it
/// has read a message whose metadata it kept only the first [`MAX_METADATA_ENTRIES`] of.
pub fn entries(count: usize) -> Result<(), Invalid> {
    if count > MAX_METADATA_ENTRIES {
        return Err(Invalid::TooManyEntries(count));
    }
    Ok(())
}

fn pairs<'a>(entries: impl Iterator<Item = (&'a str, &'a str)>) -> Result<(), Invalid> {
    for (key, value) in entries {
        if key.is_empty() {
            return Err(Invalid::EmptyKey);
        }
        text("metadata key", key, MAX_METADATA_KEY_BYTES)?;
        text("metadata value", value, MAX_METADATA_VALUE_BYTES)?;
    }
    Ok(())
}

/// Whether `name` can name a namespace of ids (an ingest token's name): 1 to
/// [`MAX_SCOPE_BYTES`] letters, digits, `.`, `_` or `-` (it ends where a zero byte begins
/// in the de-duplication table's keys, and appears in a NATS message id).
pub(crate) fn is_valid_scope(name: &str) -> bool {
    (1..=MAX_SCOPE_BYTES).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
}

/// Whether `id` can serve as a message id: 1 to [`MAX_ID_BYTES`] visible ASCII characters.
pub(crate) fn is_valid_id(id: &str) -> bool {
    (1..=MAX_ID_BYTES).contains(&id.len()) && id.bytes().all(|b| b.is_ascii_graphic())
}

fn text(field: &'static str, value: &str, limit: usize) -> Result<(), Invalid> {
    if value.len() > limit {
        return Err(Invalid::TooLong { field, limit });
    }
    if has_control(value) {
        return Err(Invalid::ControlCharacter(field));
    }
    Ok(())
}

/// Whether `text` holds a control character (`char::is_control`: C0, DEL and C1). Every C1
/// character is encoded as 0xC2 and a second byte, so a scan of the bytes for C0, DEL and
/// 0xC2 finds every candidate (a fold without an early exit, so that the loop vectorizes);
/// only text with a candidate in it is looked at by character.
fn has_control(text: &str) -> bool {
    let candidate = text.bytes().fold(false, |found, b| {
        found | (b < 0x20) | (b == 0x7f) | (b == 0xc2)
    });
    candidate && text.chars().any(char::is_control)
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;
    use crate::domain::proto::DataMessage;

    fn message(id: &str, source: &str, metadata: &[(&str, &str)]) -> DataMessage {
        DataMessage {
            id: id.to_owned(),
            source: source.to_owned(),
            metadata: metadata
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect::<HashMap<_, _>>(),
            ..DataMessage::default()
        }
    }

    fn verdict(id: &str, source: &str, metadata: &[(&str, &str)]) -> Result<(), Invalid> {
        check(MessageRef::from(&message(id, source, metadata)))
    }

    #[test]
    fn every_string_field_refuses_control_characters_and_excess_length() {
        assert_eq!(verdict("", "sensor-1", &[("unit", "°C")]), Ok(()));
        assert_eq!(verdict("", " ", &[]), Err(Invalid::MissingSource));
        assert_eq!(
            verdict("", "a\nb", &[]),
            Err(Invalid::ControlCharacter("source"))
        );
        assert_eq!(
            verdict("", "s", &[("k\r", "v")]),
            Err(Invalid::ControlCharacter("metadata key"))
        );
        assert_eq!(
            verdict("", "s", &[("k", "v\u{0}")]),
            Err(Invalid::ControlCharacter("metadata value"))
        );
        assert_eq!(verdict("", "s", &[("", "v")]), Err(Invalid::EmptyKey));
        let long = "x".repeat(MAX_METADATA_VALUE_BYTES + 1);
        assert!(matches!(
            verdict("", "s", &[("k", &long)]),
            Err(Invalid::TooLong { .. })
        ));
        assert!(matches!(
            verdict("", &long[..MAX_SOURCE_BYTES + 1], &[]),
            Err(Invalid::TooLong { .. })
        ));
    }

    #[test]
    fn control_characters_are_found_by_their_bytes_as_by_their_chars() {
        for c in (0..0x250u32).filter_map(char::from_u32) {
            let text = format!("ab{c}cd");
            assert_eq!(has_control(&text), c.is_control(), "{c:?}");
        }
    }

    #[test]
    fn an_id_is_visible_ascii_of_bounded_length() {
        assert_eq!(verdict("0f8e-Ab_9", "s", &[]), Ok(()));
        for bad in ["a\r\nb", "a b", "é", &"x".repeat(MAX_ID_BYTES + 1)] {
            assert_eq!(verdict(bad, "s", &[]), Err(Invalid::BadId), "{bad:?}");
        }
    }

    #[test]
    fn metadata_entries_are_counted() {
        let keys: Vec<String> = (0..=MAX_METADATA_ENTRIES).map(|i| i.to_string()).collect();
        let pairs: Vec<(&str, &str)> = keys.iter().map(|k| (k.as_str(), "")).collect();
        assert_eq!(
            verdict("", "s", &pairs),
            Err(Invalid::TooManyEntries(MAX_METADATA_ENTRIES + 1))
        );
        assert_eq!(verdict("", "s", &pairs[1..]), Ok(()));
        // Named before the other faults, as the decoders refuse it while they read.
        assert_eq!(
            verdict("a b", " ", &pairs),
            Err(Invalid::TooManyEntries(MAX_METADATA_ENTRIES + 1))
        );
    }
}
