//! Protobuf read and written in place, for the lean gRPC-stream path: an `IngestRequest`
//! or a `DataMessage` is read as a borrowed view of the bytes it arrived in, and a message
//! is written straight into the body of a hop request, so that forwarding a message copies
//! its bytes but allocates nothing.
//!
//! A message is read once, in one pass, which remembers its metadata entries in a table the
//! caller keeps ([`WireEntries`]); everything after the reading (checking, sizing, writing,
//! copying) works from what it remembered, so the work a message costs is linear in its
//! bytes whatever its shape. The views accept exactly what the generated (prost) decoder
//! accepts: unknown fields are skipped, the last occurrence of a field wins (for map
//! entries, the last entry of a key, in the place of its last occurrence), strings must be
//! UTF-8, and a known field with the wrong wire type is an error.

use bytes::BufMut;
use prost::encoding::{
    DecodeContext, WireType, decode_key, decode_varint, encode_key, encode_varint,
    encoded_len_varint, key_len, skip_field,
};

use crate::domain::message::wire_map::{Kept, work};
pub use crate::domain::message::wire_map::{WireEntries, WireMap};
use crate::{
    domain::message::{IdOrigin, MessageRef, Metadata},
    domain::proto::IngestRequest,
};

#[cfg(test)]
mod tests;

/// Why bytes are not a valid message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct WireError(&'static str);

impl From<prost::DecodeError> for WireError {
    fn from(_: prost::DecodeError) -> Self {
        WireError("malformed protobuf")
    }
}

/// The known fields of one message: `(tag, value)` where the value is the field's bytes
/// for a length-delimited field and the varint for a varint field; fields of other wire
/// types are skipped (and are an error where a known field is expected). Fields numbered
/// above `known` are read and skipped without being handed out, in a loop of their own.
struct Fields<'a> {
    rest: &'a [u8],
    known: u32,
}

enum Value<'a> {
    Bytes(&'a [u8]),
    Varint(u64),
    Skipped,
}

impl<'a> Fields<'a> {
    #[inline]
    fn next(&mut self) -> Option<Result<(u32, Value<'a>), WireError>> {
        while !self.rest.is_empty() {
            match self.field() {
                Ok((tag, _)) if tag > self.known => {}
                Err(err) => {
                    self.rest = &[];
                    return Some(Err(err));
                }
                known => return Some(known),
            }
        }
        None
    }

    /// One field. Its short forms (a key of one byte, fields 1 to 15, with a varint or a
    /// length of one byte) are read here in a few instructions, as a message may hold
    /// millions of fields; the others by [`Fields::long_field`].
    #[inline(always)]
    fn field(&mut self) -> Result<(u32, Value<'a>), WireError> {
        work::step();
        // A key below 8 is field 0, which prost refuses: the long way says so.
        if let [key, small, ref rest @ ..] = *self.rest
            && (8..0x80).contains(&key)
            && small < 0x80
        {
            let tag = u32::from(key >> 3);
            match key & 7 {
                0 => {
                    self.rest = rest;
                    return Ok((tag, Value::Varint(u64::from(small))));
                }
                2 if usize::from(small) <= rest.len() => {
                    let (value, rest) = rest.split_at(usize::from(small));
                    self.rest = rest;
                    return Ok((tag, Value::Bytes(value)));
                }
                _ => {}
            }
        }
        self.long_field()
    }

    /// A field of any form, as prost reads it, with the errors it gives.
    #[inline(never)]
    fn long_field(&mut self) -> Result<(u32, Value<'a>), WireError> {
        let (tag, wire_type) = decode_key(&mut self.rest)?;
        match wire_type {
            WireType::LengthDelimited => {
                let len = decode_varint(&mut self.rest)?;
                if len > self.rest.len() as u64 {
                    return Err(WireError("a field runs past the end of the message"));
                }
                let (value, rest) = self.rest.split_at(len as usize);
                self.rest = rest;
                Ok((tag, Value::Bytes(value)))
            }
            WireType::Varint => Ok((tag, Value::Varint(decode_varint(&mut self.rest)?))),
            other => {
                skip_field(other, tag, &mut self.rest, DecodeContext::default())?;
                Ok((tag, Value::Skipped))
            }
        }
    }
}

/// The fields of `bytes` numbered up to `known` (see [`Fields`]).
fn fields(bytes: &[u8], known: u32) -> Fields<'_> {
    Fields { rest: bytes, known }
}

fn bytes_of(value: Value<'_>) -> Result<&[u8], WireError> {
    match value {
        Value::Bytes(bytes) => Ok(bytes),
        _ => Err(WireError("a field has the wrong wire type")),
    }
}

fn text_of(value: Value<'_>) -> Result<&str, WireError> {
    std::str::from_utf8(bytes_of(value)?)
        .map_err(|_| WireError("a string field is not valid UTF-8"))
}

fn varint_of(value: Value<'_>) -> Result<u64, WireError> {
    match value {
        Value::Varint(v) => Ok(v),
        _ => Err(WireError("a field has the wrong wire type")),
    }
}

/// Reads one entry of a `map<string, string>` field into `entries`.
fn map_entry<'a>(value: Value<'a>, entries: &mut WireEntries<'a>) -> Result<(), WireError> {
    let (mut key, mut val) = ("", "");
    let mut entry = fields(bytes_of(value)?, 2);
    while let Some(field) = entry.next() {
        match field? {
            (1, value) => key = text_of(value)?,
            (2, value) => val = text_of(value)?,
            _ => {}
        }
    }
    entries.add(key, val);
    Ok(())
}

/// An `IngestRequest` read in place.
#[derive(Debug, Clone, Copy)]
pub struct IngestView<'a> {
    /// The client's own id for the message; empty when it gave none.
    pub id: &'a str,
    /// Who sent the message.
    pub source: &'a str,
    /// The payload.
    pub data: &'a [u8],
    /// The metadata.
    pub metadata: WireMap<'a>,
}

impl<'a> IngestView<'a> {
    /// Reads an encoded `IngestRequest`, its metadata into `entries` (emptied first).
    pub fn parse<'b: 'a>(
        bytes: &'b [u8],
        entries: &'a mut WireEntries<'b>,
    ) -> Result<IngestView<'a>, WireError> {
        entries.clear();
        entries.begin();
        let (mut id, mut source, mut data) = ("", "", &[][..]);
        let mut all = fields(bytes, 4);
        while let Some(field) = all.next() {
            match field? {
                (1, value) => source = text_of(value)?,
                (2, value) => data = bytes_of(value)?,
                (3, value) => map_entry(value, entries)?,
                (4, value) => id = text_of(value)?,
                _ => {}
            }
        }
        let kept = entries.end();
        Ok(IngestView {
            id,
            source,
            data,
            metadata: entries.map(kept),
        })
    }

    /// The message this request makes, under `id` (the client's, or one given to it),
    /// stamped `timestamp`, its id from `origin`.
    pub fn message<'m>(&self, id: &'m str, timestamp: i64, origin: IdOrigin<'m>) -> MessageRef<'m>
    where
        'a: 'm,
    {
        MessageRef {
            id,
            timestamp,
            source: self.source,
            payload: self.data,
            metadata: Metadata::Wire(self.metadata),
            origin,
        }
    }

    /// The request as the generated type: what prost decodes from the same bytes.
    pub fn to_request(&self) -> IngestRequest {
        IngestRequest {
            source: self.source.to_owned(),
            data: self.data.to_vec(),
            metadata: self
                .metadata
                .iter()
                .map(|(k, v)| (k.to_owned(), v.to_owned()))
                .collect(),
            id: self.id.to_owned(),
        }
    }
}

/// A `DataMessage` read in place, its metadata into a table of entries that may hold other
/// messages' too, so that a batch is read whole before any of its messages is looked at;
/// [`ReadMessage::view`] is the message once the table is no longer written.
#[derive(Debug, Clone, Copy)]
pub(crate) struct ReadMessage<'a> {
    id: &'a str,
    timestamp: i64,
    source: &'a str,
    payload: &'a [u8],
    metadata: Kept,
    origin: IdOrigin<'a>,
}

impl<'a> ReadMessage<'a> {
    /// Reads an encoded `DataMessage`, adding its metadata to `entries`.
    pub(crate) fn read(bytes: &'a [u8], entries: &mut WireEntries<'a>) -> Result<Self, WireError> {
        entries.begin();
        let (mut id, mut timestamp, mut source, mut payload) = ("", 0, "", &[][..]);
        let (mut assigned, mut scope) = (false, "");
        let mut all = fields(bytes, 7);
        while let Some(field) = all.next() {
            match field? {
                (1, value) => id = text_of(value)?,
                (2, value) => timestamp = varint_of(value)? as i64,
                (3, value) => source = text_of(value)?,
                (4, value) => payload = bytes_of(value)?,
                (5, value) => map_entry(value, entries)?,
                (6, value) => assigned = varint_of(value)? != 0,
                (7, value) => scope = text_of(value)?,
                _ => {}
            }
        }
        Ok(ReadMessage {
            id,
            timestamp,
            source,
            payload,
            metadata: entries.end(),
            origin: IdOrigin { assigned, scope },
        })
    }

    /// The message, its metadata in `entries` (the table it was read into).
    pub(crate) fn view<'e>(&self, entries: &'e WireEntries<'a>) -> MessageRef<'e> {
        MessageRef {
            id: self.id,
            timestamp: self.timestamp,
            source: self.source,
            payload: self.payload,
            metadata: Metadata::Wire(entries.map(self.metadata)),
            origin: self.origin,
        }
    }
}

/// Runs `f` with a table of entries from this thread's cache (see
/// [`WireEntries::from_cache`]), for a message read once and then copied (a unary request).
pub(crate) fn with_entries<'a, R>(f: impl FnOnce(&mut WireEntries<'a>) -> R) -> R {
    let mut entries = WireEntries::from_cache();
    let result = f(&mut entries);
    entries.into_cache();
    result
}

/// Reads an encoded `DataMessage` as a [`MessageRef`] borrowing `bytes`, its metadata into
/// `entries` (emptied first).
pub fn parse_data_message<'a, 'e>(
    bytes: &'a [u8],
    entries: &'e mut WireEntries<'a>,
) -> Result<MessageRef<'e>, WireError> {
    entries.clear();
    let read = ReadMessage::read(bytes, entries)?;
    Ok(read.view(entries))
}

/// The encoded `DataMessage`s of a `DataMessageBatch`, in order; the first malformed
/// entry is an error.
pub(crate) fn batch_entries(body: &[u8]) -> impl Iterator<Item = Result<&[u8], WireError>> {
    let mut all = fields(body, 1);
    std::iter::from_fn(move || all.next()).filter_map(|field| match field {
        Ok((1, value)) => Some(bytes_of(value)),
        Ok(_) => None,
        Err(err) => Some(Err(err)),
    })
}

/// What a length-delimited field of `len` bytes takes, nothing when it is empty (a proto3
/// default is not written).
fn field_len(tag: u32, len: usize) -> usize {
    if len == 0 {
        0
    } else {
        key_len(tag) + encoded_len_varint(len as u64) + len
    }
}

fn put_bytes(tag: u32, bytes: &[u8], buf: &mut impl BufMut) {
    if !bytes.is_empty() {
        encode_key(tag, WireType::LengthDelimited, buf);
        encode_varint(bytes.len() as u64, buf);
        buf.put_slice(bytes);
    }
}

fn map_entry_len(key: &str, value: &str) -> usize {
    field_len(1, key.len()) + field_len(2, value.len())
}

/// The length of `msg` encoded as a `DataMessage` (what prost's `encoded_len` says).
pub fn data_message_len(msg: &MessageRef<'_>) -> usize {
    let timestamp = if msg.timestamp == 0 {
        0
    } else {
        key_len(2) + encoded_len_varint(msg.timestamp as u64)
    };
    let metadata: usize = msg
        .metadata
        .iter()
        .map(|(k, v)| {
            let len = map_entry_len(k, v);
            key_len(5) + encoded_len_varint(len as u64) + len
        })
        .sum();
    let origin = if msg.origin.assigned {
        key_len(6) + 1
    } else {
        0
    } + field_len(7, msg.origin.scope.len());
    field_len(1, msg.id.len())
        + timestamp
        + field_len(3, msg.source.len())
        + field_len(4, msg.payload.len())
        + metadata
        + origin
}

/// Writes `msg` as a `DataMessage` (fields in number order, defaults left out, as prost
/// writes them): [`data_message_len`] bytes.
pub fn put_data_message(msg: &MessageRef<'_>, buf: &mut impl BufMut) {
    put_bytes(1, msg.id.as_bytes(), buf);
    if msg.timestamp != 0 {
        encode_key(2, WireType::Varint, buf);
        encode_varint(msg.timestamp as u64, buf);
    }
    put_bytes(3, msg.source.as_bytes(), buf);
    put_bytes(4, msg.payload, buf);
    for (key, value) in msg.metadata.iter() {
        encode_key(5, WireType::LengthDelimited, buf);
        encode_varint(map_entry_len(key, value) as u64, buf);
        put_bytes(1, key.as_bytes(), buf);
        put_bytes(2, value.as_bytes(), buf);
    }
    if msg.origin.assigned {
        encode_key(6, WireType::Varint, buf);
        encode_varint(1, buf);
    }
    put_bytes(7, msg.origin.scope.as_bytes(), buf);
}

/// The `(outcome, error)` of each `MessageOutcome` of an encoded `BatchOutcome`, in order.
pub fn batch_outcomes(body: &[u8]) -> impl Iterator<Item = Result<(i32, &str), WireError>> {
    batch_entries(body).map(|entry| {
        let (mut code, mut error) = (0, "");
        let mut all = fields(entry?, 3);
        while let Some(field) = all.next() {
            match field? {
                (2, value) => code = varint_of(value)? as i32,
                (3, value) => error = text_of(value)?,
                _ => {}
            }
        }
        Ok((code, error))
    })
}

/// Writes one `MessageOutcome` entry of a `BatchOutcome` (field 1).
pub fn put_outcome(message_id: &str, outcome: i32, error: &str, buf: &mut impl BufMut) {
    let code_len = if outcome == 0 {
        0
    } else {
        key_len(2) + encoded_len_varint(outcome as i64 as u64)
    };
    let len = field_len(1, message_id.len()) + code_len + field_len(3, error.len());
    encode_key(1, WireType::LengthDelimited, buf);
    encode_varint(len as u64, buf);
    put_bytes(1, message_id.as_bytes(), buf);
    if outcome != 0 {
        encode_key(2, WireType::Varint, buf);
        encode_varint(outcome as i64 as u64, buf);
    }
    put_bytes(3, error.as_bytes(), buf);
}

/// Writes the `accepted` count of a `BatchOutcome` (field 2).
pub fn put_accepted(accepted: u32, buf: &mut impl BufMut) {
    if accepted != 0 {
        encode_key(2, WireType::Varint, buf);
        encode_varint(u64::from(accepted), buf);
    }
}
