//! The work a message costs on its way through the system is bounded by a constant times
//! its bytes, whatever its shape: a stream message is read once, and everything after the
//! reading (the check, its size, its hop encoding, the processor's reading and the pooled
//! queue's copy) works from what the reading remembered. Work is counted in steps
//! ([`super::work`]), never timed.

use std::hint::black_box;

use proptest::{collection, prelude::*};
use prost::encoding::{WireType, encode_key, encode_varint};

use super::{IngestView, WireEntries, parse_data_message, put_data_message, work};
use crate::{
    domain::codec::Codec,
    domain::message::IdOrigin,
    domain::queue::PooledQueue,
    domain::validate,
    hop::client::{Forwarder, ForwarderConfig, HopBatch},
};

/// Steps a byte of a message may cost on its whole way: the reading takes at most one step
/// per byte (a field takes two bytes at least, and a map entry's fields lie within it), a
/// key's lookup a step or two, and each later pass one step per remembered entry (an entry
/// takes five bytes at least once its key may not be empty).
const STEPS_PER_BYTE: u64 = 4;
/// Steps any message may cost besides, however short.
const STEPS_AT_LEAST: u64 = 64;

/// One piece of an encoded `IngestRequest`.
#[derive(Debug, Clone)]
enum Piece {
    Source(String),
    Data(usize),
    Id(String),
    /// A metadata entry of key `k<n>`, with unknown fields inside it when `noisy`.
    Entry {
        key: u8,
        value: String,
        noisy: bool,
    },
    /// `count` unknown fields of one kind, numbered `number`.
    Unknown {
        number: u32,
        kind: Unknown,
        count: usize,
    },
}

#[derive(Debug, Clone, Copy)]
enum Unknown {
    Varint(u64),
    Fixed32,
    Fixed64,
    Bytes(usize),
}

/// A piece of a message whose metadata keys are `k0` to `k<keys - 1>`.
fn piece(keys: u8) -> impl Strategy<Value = Piece> {
    let unknown = prop_oneof![
        any::<u64>().prop_map(Unknown::Varint),
        Just(Unknown::Fixed32),
        Just(Unknown::Fixed64),
        (0usize..64).prop_map(Unknown::Bytes),
    ];
    prop_oneof![
        1 => "[a-z]{1,8}".prop_map(Piece::Source),
        1 => prop_oneof![4 => 0usize..64, 1 => 0usize..(256 * 1024)].prop_map(Piece::Data),
        1 => "[a-z0-9-]{0,12}".prop_map(Piece::Id),
        6 => (0..keys, "[a-z0-9]{0,8}", any::<bool>())
            .prop_map(|(key, value, noisy)| Piece::Entry { key, value, noisy }),
        3 => (5u32..2000, unknown, prop_oneof![4 => 1usize..8, 1 => 1usize..3000])
            .prop_map(|(number, kind, count)| Piece::Unknown { number, kind, count }),
    ]
}

fn put_unknown(number: u32, kind: Unknown, buf: &mut Vec<u8>) {
    match kind {
        Unknown::Varint(value) => {
            encode_key(number, WireType::Varint, buf);
            encode_varint(value, buf);
        }
        Unknown::Fixed32 => {
            encode_key(number, WireType::ThirtyTwoBit, buf);
            buf.extend_from_slice(&[7; 4]);
        }
        Unknown::Fixed64 => {
            encode_key(number, WireType::SixtyFourBit, buf);
            buf.extend_from_slice(&[7; 8]);
        }
        Unknown::Bytes(len) => {
            encode_key(number, WireType::LengthDelimited, buf);
            encode_varint(len as u64, buf);
            buf.resize(buf.len() + len, b'u');
        }
    }
}

fn put_field(number: u32, bytes: &[u8], buf: &mut Vec<u8>) {
    encode_key(number, WireType::LengthDelimited, buf);
    encode_varint(bytes.len() as u64, buf);
    buf.extend_from_slice(bytes);
}

fn encode(pieces: &[Piece]) -> Vec<u8> {
    let mut buf = Vec::new();
    for piece in pieces {
        match piece {
            Piece::Source(source) => put_field(1, source.as_bytes(), &mut buf),
            Piece::Data(len) => put_field(2, &vec![b'd'; *len], &mut buf),
            Piece::Id(id) => put_field(4, id.as_bytes(), &mut buf),
            Piece::Entry { key, value, noisy } => {
                let mut entry = Vec::new();
                if *noisy {
                    put_unknown(3, Unknown::Varint(1), &mut entry);
                }
                put_field(1, format!("k{key}").as_bytes(), &mut entry);
                if *noisy {
                    put_unknown(9, Unknown::Bytes(3), &mut entry);
                }
                put_field(2, value.as_bytes(), &mut entry);
                put_field(3, &entry, &mut buf);
            }
            Piece::Unknown {
                number,
                kind,
                count,
            } => {
                for _ in 0..*count {
                    put_unknown(*number, *kind, &mut buf);
                }
            }
        }
    }
    buf
}

/// Both hop clients (never sending: the batch is only written), made on `runtime`.
fn forwarders(runtime: &tokio::runtime::Runtime) -> [Forwarder; 2] {
    let _entered = runtime.enter();
    [Codec::Protobuf, Codec::Json].map(|codec| {
        Forwarder::new(ForwarderConfig {
            codec,
            ..ForwarderConfig::new(http::Uri::from_static("http://127.0.0.1:9"))
        })
    })
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a runtime")
}

/// The way of one `IngestStream` frame through the system, as the gRPC front door and the
/// processor take it: read in place and checked, measured for the budget and the hop,
/// written into a hop request (in both codecs), read again by the processor from the
/// protobuf hop request, checked, and copied into a pooled queue's slot.
fn stream_way(frame: &[u8], forwarders: &[Forwarder]) {
    let mut entries = WireEntries::default();
    let Ok(request) = IngestView::parse(frame, &mut entries) else {
        return;
    };
    let msg = request.message(request.id, 1, IdOrigin::client("scope"));
    if validate::check(msg).is_err() {
        return;
    }
    black_box(msg.size());
    for forwarder in forwarders {
        let mut batch = HopBatch::default();
        black_box(forwarder.add(&mut batch, msg).is_ok());
    }
    let mut hop = Vec::new();
    put_data_message(&msg, &mut hop);
    let mut entries = WireEntries::default();
    let Ok(arrived) = parse_data_message(&hop, &mut entries) else {
        return;
    };
    if validate::check(arrived).is_err() {
        return;
    }
    let queue = PooledQueue::new(1);
    if queue.try_publish(arrived).is_ok() {
        drop(queue.try_consume());
    }
}

fn bound(bytes: usize) -> u64 {
    STEPS_PER_BYTE * bytes as u64 + STEPS_AT_LEAST
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// Whatever its shape (unknown fields of every wire type, in long runs and inside map
    /// entries; metadata entries, repeated keys, more entries than allowed; fields given
    /// again; large data), a stream message costs work linear in its bytes on its whole way.
    #[test]
    fn a_stream_message_costs_work_linear_in_its_bytes(
        pieces in (1u8..140).prop_flat_map(|keys| collection::vec(piece(keys), 0..400)),
    ) {
        let runtime = runtime();
        let forwarders = forwarders(&runtime);
        // A source first, so that most messages pass the check and go the whole way.
        let frame = encode(&[&[Piece::Source("sensor".to_owned())], &pieces[..]].concat());
        let (steps, ()) = work::during(|| stream_way(&frame, &forwarders));
        prop_assert!(
            steps <= bound(frame.len()),
            "{steps} steps for {} bytes",
            frame.len()
        );
    }
}

proptest! {
    /// Whatever its shape, a message read in place holds what prost decodes from it (the
    /// last entry of a key winning), as long as it keeps all its entries.
    #[test]
    fn a_message_of_any_shape_reads_as_prost_decodes_it(
        pieces in (1u8..140).prop_flat_map(|keys| collection::vec(piece(keys), 0..400)),
    ) {
        let frame = encode(&pieces);
        let decoded = <crate::domain::proto::IngestRequest as prost::Message>::decode(frame.as_slice())
            .expect("prost decodes every shape made here");
        let mut entries = WireEntries::default();
        let view = IngestView::parse(&frame, &mut entries).expect("a valid request");
        if view.metadata.len() <= validate::MAX_METADATA_ENTRIES {
            prop_assert_eq!(view.to_request(), decoded);
        } else {
            prop_assert!(decoded.metadata.len() > validate::MAX_METADATA_ENTRIES);
        }
    }
}

/// The shape that made reading quadratic: 100 metadata entries (all a message may hold),
/// then a million unknown fields of two bytes each. Its whole way costs work linear in its
/// bytes, though every entry is read, checked and written.
#[test]
fn a_hundred_entries_among_a_million_unknown_fields_cost_linear_work() {
    let mut pieces = vec![Piece::Source("sensor".to_owned())];
    pieces.extend(
        (0..validate::MAX_METADATA_ENTRIES as u8).map(|key| Piece::Entry {
            key,
            value: "v".to_owned(),
            noisy: false,
        }),
    );
    pieces.push(Piece::Unknown {
        number: 15,
        kind: Unknown::Varint(0),
        count: 1_000_000,
    });
    let frame = encode(&pieces);
    let mut entries = WireEntries::default();
    let view = IngestView::parse(&frame, &mut entries).expect("a valid request");
    assert_eq!(view.metadata.len(), validate::MAX_METADATA_ENTRIES);
    let runtime = runtime();
    let forwarders = forwarders(&runtime);
    let (steps, ()) = work::during(|| stream_way(&frame, &forwarders));
    assert!(
        steps <= bound(frame.len()),
        "{steps} steps for {} bytes",
        frame.len()
    );
}

/// A key given again keeps its last value, in the place of its last entry (as a decoded
/// map keeps the last); keys past the limit are counted, not kept, and a key given again
/// does not count twice.
#[test]
fn a_key_given_again_takes_its_last_place_and_keys_past_the_limit_are_only_counted() {
    let entry = |key: u8, value: &str| Piece::Entry {
        key,
        value: value.to_owned(),
        noisy: key.is_multiple_of(2),
    };
    let frame = encode(&[entry(1, "a"), entry(2, "b"), entry(1, "c"), entry(3, "d")]);
    let mut entries = WireEntries::default();
    let view = IngestView::parse(&frame, &mut entries).expect("a valid request");
    let pairs: Vec<_> = view.metadata.iter().collect();
    assert_eq!(pairs, [("k2", "b"), ("k1", "c"), ("k3", "d")]);
    assert_eq!(view.metadata.len(), 3);
    assert_eq!(view.metadata.get("k1"), Some("c"));

    let limit = validate::MAX_METADATA_ENTRIES as u8;
    let mut full: Vec<Piece> = (0..limit).map(|key| entry(key, "v")).collect();
    full.push(entry(0, "again"));
    let frame = encode(&full);
    let view = IngestView::parse(&frame, &mut entries).expect("a valid request");
    assert_eq!(view.metadata.len(), validate::MAX_METADATA_ENTRIES);
    assert_eq!(view.metadata.iter().last(), Some(("k0", "again")));

    full.extend((limit..limit + 5).map(|key| entry(key, "v")));
    let frame = encode(&full);
    let view = IngestView::parse(&frame, &mut entries).expect("a valid request");
    assert_eq!(view.metadata.len(), validate::MAX_METADATA_ENTRIES + 5);
    assert_eq!(view.metadata.iter().len(), validate::MAX_METADATA_ENTRIES);
}
