//! Batch bodies (`DataMessageBatch`) on both ends of the hop.
//!
//! The processor counts a batch's messages before it decodes any of them, so a body packed
//! with millions of tiny messages is refused with 413 at once instead of costing minutes and
//! gigabytes. The front doors cut their batches by bytes as well as by count: [`entry_len`]
//! bounds what one message adds to a batch body, so no batch they send is over the
//! processor's body limit, and a message that would not fit even alone is refused at the
//! front door, where the client can be told why.

use serde::de::{self, DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};

use super::{CappedMessage, Codec, invalid_json};
use crate::{
    domain::answer, domain::http_error::ApiError, domain::message::MessageRef, domain::wire,
};

/// Most messages in one batch request; also the largest `HOP_BATCH`.
pub const MAX_BATCH_MESSAGES: usize = 10_000;

/// Bytes a batch body has besides its messages' entries (JSON `{"messages":[` and `]}`).
pub const BATCH_FRAME_BYTES: usize = 16;

/// Decodes a batch of at most `max` messages; more are refused with 413 before any is
/// decoded (JSON stops reading at the first one over). Each message keeps at most
/// [`crate::domain::validate::MAX_METADATA_ENTRIES`] metadata entries and says how many it had
/// ([`CappedMessage`]), so that the one with too many is refused alone.
pub fn decode_batch(codec: Codec, body: &[u8], max: usize) -> Result<Vec<CappedMessage>, ApiError> {
    let too_many = || {
        ApiError::new(
            http::StatusCode::PAYLOAD_TOO_LARGE,
            format!("a batch may hold at most {max} messages"),
        )
    };
    match codec {
        Codec::Protobuf => {
            let count = count_batch(body, max)?;
            let invalid = |err| ApiError::bad_request(answer::invalid_protobuf(&err));
            wire::with_entries(|entries| {
                let mut messages = Vec::with_capacity(count);
                for entry in wire::batch_entries(body) {
                    let msg = wire::parse_data_message(entry.map_err(invalid)?, entries)
                        .map_err(invalid)?;
                    messages.push(CappedMessage {
                        message: msg.to_owned_message(),
                        entries: msg.metadata.len(),
                    });
                }
                Ok(messages)
            })
        }
        Codec::Json => {
            let mut over = false;
            let mut deserializer = serde_json::Deserializer::from_slice(body);
            let decoded = BatchSeed {
                max,
                over: &mut over,
            }
            .deserialize(&mut deserializer)
            .and_then(|messages| deserializer.end().map(|()| messages));
            match decoded {
                Err(_) if over => Err(too_many()),
                Err(err) => Err(invalid_json(err)),
                Ok(messages) => Ok(messages),
            }
        }
    }
}

/// The messages of a protobuf `DataMessageBatch` (a bound: a malformed body may count
/// fewer), or 413 when there are more than `max`.
pub fn count_batch(body: &[u8], max: usize) -> Result<usize, ApiError> {
    let count = count_protobuf_entries(body, max);
    if count > max {
        return Err(ApiError::new(
            http::StatusCode::PAYLOAD_TOO_LARGE,
            format!("a batch may hold at most {max} messages"),
        ));
    }
    Ok(count)
}

/// The `messages` entries of a protobuf `DataMessageBatch`, counted up to `max + 1`
/// without decoding them. A malformed body stops the count early; the decoder that runs
/// next reports it.
fn count_protobuf_entries(mut body: &[u8], max: usize) -> usize {
    let mut count = 0;
    while !body.is_empty() && count <= max {
        let Ok(key) = prost::encoding::decode_varint(&mut body) else {
            break;
        };
        let skip = match key & 7 {
            0 => prost::encoding::decode_varint(&mut body).map(|_| 0),
            1 => Ok(8),
            2 => prost::encoding::decode_varint(&mut body).map(|len| len as usize),
            5 => Ok(4),
            _ => break,
        };
        let Ok(skip) = skip else { break };
        if skip > body.len() {
            break;
        }
        body = &body[skip..];
        if key == (1 << 3 | 2) {
            count += 1;
        }
    }
    count
}

/// `{"messages": [...]}` with a bound on the array; `over` tells the bound from other errors.
struct BatchSeed<'a> {
    max: usize,
    over: &'a mut bool,
}

impl<'de> DeserializeSeed<'de> for BatchSeed<'_> {
    type Value = Vec<CappedMessage>;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Self::Value, D::Error> {
        deserializer.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for BatchSeed<'_> {
    type Value = Vec<CappedMessage>;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("a DataMessageBatch object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut messages = None;
        while let Some(key) = map.next_key::<String>()? {
            if key != "messages" {
                return Err(de::Error::unknown_field(&key, &["messages"]));
            }
            if messages.is_some() {
                return Err(de::Error::duplicate_field("messages"));
            }
            messages = Some(map.next_value_seed(MessagesSeed {
                max: self.max,
                over: &mut *self.over,
            })?);
        }
        Ok(messages.unwrap_or_default())
    }
}

struct MessagesSeed<'a> {
    max: usize,
    over: &'a mut bool,
}

impl<'de> DeserializeSeed<'de> for MessagesSeed<'_> {
    type Value = Vec<CappedMessage>;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Self::Value, D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for MessagesSeed<'_> {
    type Value = Vec<CappedMessage>;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("an array of messages")
    }

    fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
        // The proto3 JSON mapping reads `null` as the field's default.
        Ok(Vec::new())
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        let mut messages = Vec::new();
        while let Some(msg) = seq.next_element::<CappedMessage>()? {
            if messages.len() == self.max {
                *self.over = true;
                return Err(de::Error::custom("too many messages"));
            }
            messages.push(msg);
        }
        Ok(messages)
    }
}

/// At most how many bytes `msg` adds to a batch body in `codec` (its entry and a
/// separator); a body of `msg` alone is never larger. Exact for protobuf; for JSON it
/// counts every byte the encoder may escape as escaped.
pub fn entry_len(codec: Codec, msg: MessageRef<'_>) -> usize {
    match codec {
        Codec::Protobuf => {
            let len = wire::data_message_len(&msg);
            1 + prost::encoding::encoded_len_varint(len as u64) + len
        }
        Codec::Json => {
            // `{"id":"","timestamp":"-9223372036854775808","source":"","payload":"",
            // "metadata":{}}` and a comma: every field at its longest framing.
            const FRAMING: usize = 96;
            let payload = msg.payload.len().div_ceil(3) * 4;
            let metadata: usize = msg
                .metadata
                .iter()
                .map(|(k, v)| json_string_len(k) + json_string_len(v) + 2)
                .sum();
            // `,"idAssigned":true`, or `,"idScope":` and the scope (neither when default).
            let origin = if msg.origin.assigned { 18 } else { 0 }
                + if msg.origin.scope.is_empty() {
                    0
                } else {
                    11 + json_string_len(msg.origin.scope)
                };
            FRAMING
                + json_string_len(msg.id)
                + json_string_len(msg.source)
                + payload
                + metadata
                + origin
        }
    }
}

/// The longest a string can be once JSON-encoded, quotes included: a byte the encoder may
/// escape (`"`, `\`, a control character) is counted at its longest, six bytes
/// (`\u001f`). A fold without an early exit, so that the loop vectorizes.
fn json_string_len(text: &str) -> usize {
    let escaped = text.bytes().fold(0usize, |n, b| {
        n + usize::from((b < 0x20) | (b == b'"') | (b == b'\\'))
    });
    text.len() + 5 * escaped + 2
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::proto::{DataMessage, DataMessageBatch};

    fn batch_of(n: usize) -> DataMessageBatch {
        DataMessageBatch {
            messages: (0..n)
                .map(|i| DataMessage {
                    source: format!("s{i}"),
                    ..DataMessage::default()
                })
                .collect(),
        }
    }

    #[test]
    fn a_batch_over_the_cap_is_refused_in_both_codecs_and_one_at_the_cap_is_not() {
        for codec in [Codec::Json, Codec::Protobuf] {
            let at_cap = codec.encode(&batch_of(5));
            assert_eq!(decode_batch(codec, &at_cap, 5).unwrap().len(), 5);
            let over = codec.encode(&batch_of(6));
            let err = decode_batch(codec, &over, 5).unwrap_err();
            assert_eq!(err.status, http::StatusCode::PAYLOAD_TOO_LARGE, "{codec:?}");
        }
    }

    #[test]
    fn malformed_batches_are_400_not_413() {
        for (codec, body) in [
            (Codec::Json, &b"{\"messages\": [{\"source\": 1}]}"[..]),
            (Codec::Json, b"{\"messages\": [], \"extra\": 1}"),
            (Codec::Json, b"{\"messages\": []} trailing"),
            (Codec::Protobuf, b"\x0a\xff\xff\xff"),
        ] {
            let err = decode_batch(codec, body, 5).unwrap_err();
            assert_eq!(err.status, http::StatusCode::BAD_REQUEST, "{body:?}");
        }
        assert!(
            decode_batch(Codec::Json, b"{\"messages\": null}", 5)
                .unwrap()
                .is_empty()
        );
    }

    #[test]
    fn an_entry_bound_covers_its_encoding_in_a_batch() {
        let scoped = DataMessage {
            id: "a\"b".into(),
            timestamp: i64::MIN,
            source: "\u{1}\\".into(),
            payload: vec![0; 10],
            metadata: [("k\"".to_owned(), "\n".to_owned())].into(),
            id_assigned: false,
            id_scope: "sensors.eu-1".into(),
        };
        let assigned = DataMessage {
            id_assigned: true,
            id_scope: String::new(),
            ..scoped.clone()
        };
        for (msg, codec) in [scoped, assigned]
            .into_iter()
            .flat_map(|msg| [(msg.clone(), Codec::Json), (msg, Codec::Protobuf)])
        {
            let one = codec.encode(&DataMessageBatch {
                messages: vec![msg.clone()],
            });
            assert!(one.len() <= BATCH_FRAME_BYTES + entry_len(codec, MessageRef::from(&msg)));
            assert!(codec.encode(&msg).len() <= entry_len(codec, MessageRef::from(&msg)));
        }
    }
}
