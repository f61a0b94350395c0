//! Protobuf read and written in place, for the lean gRPC-stream path: an `IngestRequest`
//! or a `DataMessage` is read as a borrowed view of the bytes it arrived in, and a message
//! is written straight into the body of a hop request, so that forwarding a message copies
//! its bytes but allocates nothing.
//!
//! The views accept exactly what the generated (prost) decoder accepts: unknown fields are
//! skipped, the last occurrence of a field wins (for map entries, the last entry of a key),
//! strings must be UTF-8, and a known field with the wrong wire type is an error.

use bytes::BufMut;
use prost::encoding::{
    DecodeContext, WireType, decode_key, decode_varint, encode_key, encode_varint,
    encoded_len_varint, key_len, skip_field,
};

use crate::message::{MessageRef, Metadata};

/// Why bytes are not a valid message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct WireError(&'static str);

impl From<prost::DecodeError> for WireError {
    fn from(_: prost::DecodeError) -> Self {
        WireError("malformed protobuf")
    }
}

/// The fields of one message: `(tag, value)` where the value is the field's bytes for a
/// length-delimited field and the varint for a varint field; fields of other wire types
/// are skipped (and are an error where a known field is expected).
struct Fields<'a> {
    rest: &'a [u8],
}

enum Value<'a> {
    Bytes(&'a [u8]),
    Varint(u64),
    Skipped,
}

impl<'a> Fields<'a> {
    fn next(&mut self) -> Option<Result<(u32, Value<'a>), WireError>> {
        if self.rest.is_empty() {
            return None;
        }
        let field = self.field();
        if field.is_err() {
            self.rest = &[];
        }
        Some(field)
    }

    fn field(&mut self) -> Result<(u32, Value<'a>), WireError> {
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

fn fields(bytes: &[u8]) -> Fields<'_> {
    Fields { rest: bytes }
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

/// A `map<string, string>` field read in place: the bytes of the message that holds it and
/// the field's number. Checked when the message is read, so iterating cannot fail.
#[derive(Debug, Clone, Copy)]
pub struct WireMap<'a> {
    message: &'a [u8],
    field: u32,
}

impl<'a> WireMap<'a> {
    /// Bytes of the whole encoded message the map is part of (an upper bound on what its
    /// entries take, found without reading them).
    pub fn message_len(&self) -> usize {
        self.message.len()
    }

    /// Every entry in the order they were written, repeated keys included.
    fn entries(self) -> impl Iterator<Item = (&'a str, &'a str)> + 'a {
        let field = self.field;
        let mut all = fields(self.message);
        std::iter::from_fn(move || all.next())
            .filter_map(Result::ok)
            .filter(move |(tag, _)| *tag == field)
            .filter_map(|(_, value)| map_entry(value).ok())
    }

    /// The pairs, one per key (the last entry of a key wins, as in a decoded map).
    pub fn iter(self) -> impl Iterator<Item = (&'a str, &'a str)> + 'a {
        let map = self;
        map.entries()
            .enumerate()
            .filter_map(move |(i, (key, value))| {
                let repeated_later = map.entries().skip(i + 1).any(|(k, _)| k == key);
                (!repeated_later).then_some((key, value))
            })
    }

    /// Number of entries as written, a repeated key counted each time (so that counting
    /// stays linear however the entries repeat; [`WireMap::iter`] is quadratic and runs
    /// only on maps whose count was checked).
    pub fn len(self) -> usize {
        self.entries().count()
    }

    /// Whether the map is empty.
    pub fn is_empty(self) -> bool {
        self.entries().next().is_none()
    }

    /// The value of `key`.
    pub fn get(self, key: &str) -> Option<&'a str> {
        self.entries()
            .filter(|(k, _)| *k == key)
            .last()
            .map(|(_, v)| v)
    }
}

fn map_entry(value: Value<'_>) -> Result<(&str, &str), WireError> {
    let (mut key, mut val) = ("", "");
    let mut entry = fields(bytes_of(value)?);
    while let Some(field) = entry.next() {
        match field? {
            (1, value) => key = text_of(value)?,
            (2, value) => val = text_of(value)?,
            _ => {}
        }
    }
    Ok((key, val))
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
    /// Reads an encoded `IngestRequest`.
    pub fn parse(bytes: &'a [u8]) -> Result<IngestView<'a>, WireError> {
        let mut view = IngestView {
            id: "",
            source: "",
            data: &[],
            metadata: WireMap {
                message: bytes,
                field: 3,
            },
        };
        let mut all = fields(bytes);
        while let Some(field) = all.next() {
            match field? {
                (1, value) => view.source = text_of(value)?,
                (2, value) => view.data = bytes_of(value)?,
                (3, value) => {
                    map_entry(value)?;
                }
                (4, value) => view.id = text_of(value)?,
                _ => {}
            }
        }
        Ok(view)
    }
}

/// Reads an encoded `DataMessage` as a [`MessageRef`] borrowing `bytes`.
pub fn parse_data_message(bytes: &[u8]) -> Result<MessageRef<'_>, WireError> {
    let mut msg = MessageRef {
        id: "",
        timestamp: 0,
        source: "",
        payload: &[],
        metadata: Metadata::Wire(WireMap {
            message: bytes,
            field: 5,
        }),
    };
    let mut all = fields(bytes);
    while let Some(field) = all.next() {
        match field? {
            (1, value) => msg.id = text_of(value)?,
            (2, value) => msg.timestamp = varint_of(value)? as i64,
            (3, value) => msg.source = text_of(value)?,
            (4, value) => msg.payload = bytes_of(value)?,
            (5, value) => {
                map_entry(value)?;
            }
            _ => {}
        }
    }
    Ok(msg)
}

/// The encoded `DataMessage`s of a `DataMessageBatch`, in order; the first malformed
/// entry is an error.
pub fn batch_entries(body: &[u8]) -> impl Iterator<Item = Result<&[u8], WireError>> {
    let mut all = fields(body);
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
    field_len(1, msg.id.len())
        + timestamp
        + field_len(3, msg.source.len())
        + field_len(4, msg.payload.len())
        + metadata
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
}

/// The `(outcome, error)` of each `MessageOutcome` of an encoded `BatchOutcome`, in order.
pub fn batch_outcomes(body: &[u8]) -> impl Iterator<Item = Result<(i32, &str), WireError>> {
    batch_entries(body).map(|entry| {
        let (mut code, mut error) = (0, "");
        let mut all = fields(entry?);
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
