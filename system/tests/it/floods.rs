//! A body packed with metadata entries is refused while it is read: no door's decoder builds
//! a map of more entries than a message may hold, whatever the body's size, and each says
//! how many entries there were. Counted in allocations, which building a map of every
//! entry would make two of per entry.

use std::collections::HashMap;

use prost::Message as _;
use system::{
    codec::{Codec, decode_batch, decode_message},
    gateway::{decode_ingest, read_ingest},
    proto::{DataMessage, DataMessageBatch, IngestRequest},
    validate::MAX_METADATA_ENTRIES,
};

use crate::alloc_count::allocations_during;

/// Entries in the flood: many times what a message may hold.
const FLOOD: usize = 100_000;

/// What a decoder may allocate for a flood: the entries a message may hold (a key and a
/// value each) and their map, with room for the rest of the message and the error.
const MOST_ALLOCATIONS: u64 = 4 * MAX_METADATA_ENTRIES as u64 + 64;

fn flood() -> HashMap<String, String> {
    (0..FLOOD)
        .map(|i| (format!("{i:x}"), String::new()))
        .collect()
}

/// Runs `decode` once to warm what it reuses, then counts the allocations of a second run
/// and checks that it refused the flood, saying how many entries it had.
fn refused_with_bounded_allocations<T>(what: &str, decode: impl Fn() -> Result<T, String>) {
    let _ = decode();
    let (allocations, result) = allocations_during(&decode);
    let err = result
        .err()
        .unwrap_or_else(|| panic!("{what}: the flood was taken"));
    assert!(
        err.contains(&format!("metadata has {FLOOD} entries")),
        "{what}: {err}"
    );
    assert!(
        allocations <= MOST_ALLOCATIONS,
        "{what}: {allocations} allocations for a flood of {FLOOD} entries"
    );
}

#[test]
fn a_metadata_flood_is_refused_while_it_is_read_in_every_form() {
    let metadata = flood();
    let request = IngestRequest {
        source: "s".to_owned(),
        data: b"x".to_vec(),
        metadata: metadata.clone(),
        id: String::new(),
    };
    let message = DataMessage {
        source: "s".to_owned(),
        metadata,
        ..DataMessage::default()
    };
    let ingest_json = serde_json::json!({
        "source": "s", "data": "x", "metadata": &request.metadata,
    })
    .to_string();
    let ingest_protobuf = request.encode_to_vec();
    let message_json = Codec::Json.encode(&message);
    let message_protobuf = message.encode_to_vec();
    let batch = DataMessageBatch {
        messages: vec![message],
    };

    for (codec, body) in [
        (Codec::Json, ingest_json.as_bytes()),
        (Codec::Protobuf, &ingest_protobuf[..]),
    ] {
        refused_with_bounded_allocations(&format!("gateway {codec:?}"), || {
            decode_ingest(codec, body).map_err(|err| err.message)
        });
    }
    refused_with_bounded_allocations("gRPC Ingest", || read_ingest(&ingest_protobuf));
    for (codec, body) in [
        (Codec::Json, &message_json[..]),
        (Codec::Protobuf, &message_protobuf[..]),
    ] {
        refused_with_bounded_allocations(&format!("processor {codec:?}"), || {
            decode_message(codec, body).map_err(|err| err.message)
        });
        let batch = codec.encode(&batch);
        refused_with_bounded_allocations(&format!("processor batch {codec:?}"), || {
            let mut messages = decode_batch(codec, &batch, 1).map_err(|err| err.message)?;
            let refused = messages.pop().map(|capped| capped.into_message());
            match refused {
                Some(Err(reason)) => Err(reason.to_string()),
                _ => Ok(()),
            }
        });
    }
}
