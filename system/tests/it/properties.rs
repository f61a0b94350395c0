//! Properties of the decoders and of the batch contract, over generated input.

use std::{collections::HashMap, sync::Arc};

use proptest::{collection, prelude::*, test_runner::TestRunner};
use system::{
    client::{ForwardError, Forwarder, ForwarderConfig},
    codec::{BATCH_FRAME_BYTES, Codec, decode_batch, decode_message, entry_len},
    gateway::decode_ingest,
    message::MessageRef,
    processor::ProcessorConfig,
    proto::{BatchOutcome, DataMessage, DataMessageBatch, IngestRequest, Outcome},
    validate, wire,
};

use crate::stack::{Setup, Stack};

const CODECS: [Codec; 2] = [Codec::Json, Codec::Protobuf];

/// Any text, control characters and all.
fn text() -> impl Strategy<Value = String> {
    ".{0,12}"
}

fn metadata() -> impl Strategy<Value = HashMap<String, String>> {
    collection::hash_map(text(), text(), 0..4)
}

fn message() -> impl Strategy<Value = DataMessage> {
    (
        text(),
        any::<i64>(),
        text(),
        collection::vec(any::<u8>(), 0..48),
        metadata(),
        any::<bool>(),
        text(),
    )
        .prop_map(
            |(id, timestamp, source, payload, metadata, id_assigned, id_scope)| DataMessage {
                id,
                timestamp,
                source,
                payload,
                metadata,
                id_assigned,
                id_scope,
            },
        )
}

proptest! {
    /// The JSON and protobuf forms of any message decode to the same value: the message.
    #[test]
    fn both_forms_of_a_message_decode_to_the_same_value(msg in message()) {
        for codec in CODECS {
            let decoded: DataMessage = codec.decode(&codec.encode(&msg)).unwrap();
            prop_assert_eq!(&decoded, &msg, "{:?}", codec);
        }
    }

    /// The gateway's JSON body (`data` a string) and its protobuf body decode to the same
    /// request.
    #[test]
    fn both_forms_of_an_ingest_body_decode_to_the_same_request(
        source in text(), data in text(), metadata in metadata(),
    ) {
        let json = serde_json::json!({"source": source, "data": data, "metadata": metadata});
        let request = IngestRequest { source, data: data.into_bytes(), metadata, id: String::new() };
        let protobuf = prost::Message::encode_to_vec(&request);
        let from_json = decode_ingest(Codec::Json, json.to_string().as_bytes()).unwrap();
        let from_protobuf = decode_ingest(Codec::Protobuf, &protobuf).unwrap();
        prop_assert_eq!(&from_json, &request);
        prop_assert_eq!(&from_protobuf, &request);
    }

    /// Any bytes given to a decoder yield a value or an error, never a panic: random bytes,
    /// and valid bodies with a few bytes changed or cut off.
    #[test]
    fn any_bytes_decode_to_a_value_or_an_error(
        noise in collection::vec(any::<u8>(), 0..256),
        msgs in collection::vec(message(), 0..4),
        edits in collection::vec((any::<prop::sample::Index>(), any::<u8>()), 0..4),
        cut in any::<prop::sample::Index>(),
    ) {
        for codec in CODECS {
            let mut body = codec.encode(&DataMessageBatch { messages: msgs.clone() });
            for (at, byte) in &edits {
                if !body.is_empty() {
                    let at = at.index(body.len());
                    body[at] = *byte;
                }
            }
            let len = body.len();
            for input in [&noise[..], &body[..], &body[..cut.index(len + 1)]] {
                let _ = codec.decode::<DataMessage>(input);
                let _ = decode_batch(codec, input, 3);
                if let Ok(request) = decode_ingest(codec, input) {
                    let _ = system::gateway::new_message(request);
                }
                if let Ok(msg) = codec.decode::<DataMessage>(input) {
                    let _ = validate::check(MessageRef::from(&msg));
                }
            }
        }
    }

    /// What a message adds to a batch body is never more than its bound, in a batch or on
    /// its own.
    #[test]
    fn a_message_never_takes_more_than_its_bound(msgs in collection::vec(message(), 1..4)) {
        for codec in CODECS {
            let bound: usize = msgs.iter().map(|m| entry_len(codec, m.into())).sum();
            let batch = codec.encode(&DataMessageBatch { messages: msgs.clone() });
            prop_assert!(batch.len() <= BATCH_FRAME_BYTES + bound, "{:?}", codec);
            for msg in &msgs {
                prop_assert!(codec.encode(msg).len() <= entry_len(codec, msg.into()));
            }
        }
    }
}

/// A JSON value of any kind a field of a `DataMessage` body might be given.
fn json_value() -> impl Strategy<Value = serde_json::Value> {
    use serde_json::{Value, json};
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(|n| json!(n)),
        any::<f64>().prop_map(|n| json!(n)),
        text().prop_map(Value::String),
        "[A-Za-z0-9+/]{0,8}={0,2}".prop_map(Value::String),
        "-?[0-9]{1,20}".prop_map(Value::String),
    ];
    leaf.prop_recursive(2, 8, 4, |inner| {
        prop_oneof![
            collection::vec(inner.clone(), 0..3).prop_map(Value::Array),
            collection::vec((text(), inner), 0..4)
                .prop_map(|pairs| Value::Object(pairs.into_iter().collect())),
        ]
    })
}

/// A value fit for the field `name` of a `DataMessage` most of the time, any value else.
fn json_field(name: &'static str) -> impl Strategy<Value = serde_json::Value> {
    use serde_json::{Value, json};
    let fit = match name {
        "timestamp" => prop_oneof![
            any::<i64>().prop_map(|n| json!(n)),
            "-?[0-9]{1,20}".prop_map(Value::String),
        ]
        .boxed(),
        "payload" => "([A-Za-z0-9+/]{4}){0,3}".prop_map(Value::String).boxed(),
        "idAssigned" => any::<bool>().prop_map(Value::Bool).boxed(),
        "metadata" => collection::vec((text(), text()), 0..4)
            .prop_map(|pairs| {
                let pairs = pairs.into_iter().map(|(k, v)| (k, Value::String(v)));
                Value::Object(pairs.collect())
            })
            .boxed(),
        _ => text().prop_map(Value::String).boxed(),
    };
    prop_oneof![4 => fit, 1 => json_value()]
}

/// A JSON object with fields a `DataMessage` has (and rarely one it has not), each with a
/// value mostly fit for it, some given twice.
fn json_message() -> impl Strategy<Value = String> {
    let field = prop_oneof![
        4 => Just("id"),
        4 => Just("timestamp"),
        4 => Just("source"),
        4 => Just("payload"),
        4 => Just("metadata"),
        2 => Just("idAssigned"),
        2 => Just("idScope"),
        1 => Just("id_scope"),
        1 => Just("other"),
    ]
    .prop_flat_map(|name| (Just(name), json_field(name)));
    collection::vec(field, 0..6).prop_map(|fields| {
        let fields: Vec<String> = fields
            .iter()
            .map(|(name, value)| format!("{}:{value}", serde_json::json!(name)))
            .collect();
        format!("{{{}}}", fields.join(","))
    })
}

proptest! {
    /// The processor's reader of a `DataMessage` body (which caps the metadata as it reads)
    /// takes what the generated decoder takes and refuses what it refuses, in the same
    /// words for JSON: any message, JSON objects of any fields and values, and bodies with
    /// a few bytes changed or cut off.
    #[test]
    fn the_capped_reader_agrees_with_the_generated_decoder(
        msg in message(),
        object in json_message(),
        edits in collection::vec((any::<prop::sample::Index>(), any::<u8>()), 0..3),
        cut in any::<prop::sample::Index>(),
    ) {
        for codec in CODECS {
            let mut body = codec.encode(&msg);
            for (at, byte) in &edits {
                if !body.is_empty() {
                    let at = at.index(body.len());
                    body[at] = *byte;
                }
            }
            let len = body.len();
            let object = object.as_bytes();
            for input in [&body[..], &body[..cut.index(len + 1)], object] {
                let generated = codec.decode::<DataMessage>(input);
                let capped = decode_message(codec, input);
                match (generated, capped) {
                    (Ok(generated), Ok(capped)) => prop_assert_eq!(generated, capped),
                    (Err(generated), Err(capped)) => {
                        prop_assert_eq!(generated.status, capped.status);
                        if codec == Codec::Json {
                            prop_assert_eq!(generated.message, capped.message);
                        }
                    }
                    (generated, capped) => prop_assert!(
                        false,
                        "{:?}: generated {:?}, capped {:?} for {:?}",
                        codec, generated, capped, String::from_utf8_lossy(input)
                    ),
                }
            }
        }
    }
}

proptest! {
    /// A message read in place is the message prost decodes, and one written in place is
    /// what prost writes, to the byte count.
    #[test]
    fn messages_read_and_written_in_place_agree_with_prost(
        msg in message(),
        repeated in text(),
        noise in collection::vec(any::<u8>(), 0..24),
    ) {
        let mut entries = wire::WireEntries::default();
        let prost_says = <DataMessage as prost::Message>::decode(noise.as_slice());
        let view_says = wire::parse_data_message(&noise, &mut entries);
        prop_assert_eq!(prost_says.is_ok(), view_says.is_ok(), "{:?}", noise);

        let mut bytes = prost::Message::encode_to_vec(&msg);
        // A key written twice: the last entry wins, as in a decoded map.
        for value in ["first", repeated.as_str()] {
            let entry = DataMessage {
                metadata: [("dup".to_owned(), value.to_owned())].into(),
                ..DataMessage::default()
            };
            bytes.extend(prost::Message::encode_to_vec(&entry));
        }
        let decoded = <DataMessage as prost::Message>::decode(bytes.as_slice()).unwrap();
        let view = wire::parse_data_message(&bytes, &mut entries).unwrap();
        prop_assert_eq!(&view.to_owned_message(), &decoded);

        let mut written = Vec::new();
        wire::put_data_message(&MessageRef::from(&msg), &mut written);
        prop_assert_eq!(written.len(), prost::Message::encoded_len(&msg));
        prop_assert_eq!(wire::data_message_len(&MessageRef::from(&msg)), written.len());
        let back = <DataMessage as prost::Message>::decode(written.as_slice()).unwrap();
        prop_assert_eq!(&back, &msg);
    }

    /// An ingest request read in place holds what prost decodes; bytes prost refuses are
    /// refused in place too.
    #[test]
    fn ingest_requests_read_in_place_agree_with_prost(
        source in text(),
        data in collection::vec(any::<u8>(), 0..32),
        metadata in metadata(),
        noise in collection::vec(any::<u8>(), 0..24),
    ) {
        let request = IngestRequest { source, data, metadata, id: String::new() };
        let bytes = prost::Message::encode_to_vec(&request);
        let mut entries = wire::WireEntries::default();
        let view = wire::IngestView::parse(&bytes, &mut entries).unwrap();
        prop_assert_eq!(view.source, request.source.as_str());
        prop_assert_eq!(view.data, request.data.as_slice());
        let pairs: HashMap<String, String> = view
            .metadata
            .iter()
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect();
        prop_assert_eq!(&pairs, &request.metadata);

        let prost_says = <IngestRequest as prost::Message>::decode(noise.as_slice());
        let view_says = wire::IngestView::parse(&noise, &mut entries);
        prop_assert_eq!(prost_says.is_ok(), view_says.is_ok(), "{:?}", noise);
    }
}

proptest! {
    /// A batch answer written in place decodes with prost to the same outcomes, and one
    /// prost writes reads in place to the same codes and errors.
    #[test]
    fn batch_answers_written_and_read_in_place_agree_with_prost(
        outcomes in collection::vec((text(), 0i32..6, text()), 0..6),
    ) {
        let mut written = Vec::new();
        for (id, code, error) in &outcomes {
            wire::put_outcome(id, *code, error, &mut written);
        }
        let accepted = outcomes.iter().filter(|(_, code, _)| *code == 1).count() as u32;
        wire::put_accepted(accepted, &mut written);
        let expected = BatchOutcome {
            outcomes: outcomes
                .iter()
                .map(|(id, code, error)| system::proto::MessageOutcome {
                    message_id: id.clone(),
                    outcome: *code,
                    error: error.clone(),
                })
                .collect(),
            accepted,
        };
        let decoded = <BatchOutcome as prost::Message>::decode(written.as_slice()).unwrap();
        prop_assert_eq!(&decoded, &expected);
        let read: Vec<(i32, String)> = wire::batch_outcomes(&prost::Message::encode_to_vec(&expected))
            .map(|o| o.map(|(code, error)| (code, error.to_owned())))
            .collect::<Result<_, _>>()
            .unwrap();
        let codes: Vec<(i32, String)> = outcomes.iter().map(|(_, c, e)| (*c, e.clone())).collect();
        prop_assert_eq!(read, codes);
    }
}

/// Messages for the hop: some invalid, some too large for its limit, the rest fine.
fn hop_messages() -> impl Strategy<Value = Vec<DataMessage>> {
    let source = prop_oneof![
        4 => "[a-z]{1,8}",
        1 => Just(String::new()),
        1 => "[a-z]{0,3}[\n\r\u{0}]",
    ];
    let one = (source, 0usize..5000).prop_map(|(source, len)| DataMessage {
        source,
        payload: vec![b'p'; len],
        ..DataMessage::default()
    });
    collection::vec(one, 0..40)
}

/// The hop's request limit in the batch contract cases.
const HOP_LIMIT: usize = 8 * 1024;

/// Forwarded in batches cut by count and bytes, every message gets its own result in its
/// place: accepted ones are processed exactly once, invalid ones are rejected, and only
/// those too large for any hop request are refused as such. Posted as one batch, the
/// processor answers one outcome per message, in order.
#[test]
fn a_batch_has_one_outcome_per_message_in_order() {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    for codec in CODECS {
        let stack = runtime.block_on(Stack::start_recording(Setup {
            processor: ProcessorConfig {
                queue_size: 100_000,
                body_limit: HOP_LIMIT,
                ..ProcessorConfig::default()
            },
            ..Setup::default()
        }));
        let forwarder = runtime.block_on(async {
            Forwarder::new(ForwarderConfig {
                codec,
                batch: 8,
                max_request_bytes: HOP_LIMIT,
                ..ForwarderConfig::new(stack.processor_url.parse().unwrap())
            })
        });
        let accepted = Arc::new(std::sync::Mutex::new(Vec::new()));
        let mut runner = TestRunner::new(ProptestConfig::with_cases(48));
        let next_id = std::sync::atomic::AtomicU64::new(0);
        runner
            .run(&hop_messages(), |mut msgs| {
                for msg in &mut msgs {
                    let n = next_id.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    msg.id = format!("m-{n}");
                }
                let results = runtime.block_on(forwarder.forward_batch(msgs.clone()));
                prop_assert_eq!(results.len(), msgs.len());
                for (msg, result) in msgs.iter().zip(&results) {
                    let valid = validate::check(MessageRef::from(msg)).is_ok();
                    match result {
                        Ok(system::client::Accepted::New) => {
                            prop_assert!(valid);
                            accepted.lock().unwrap().push(msg.id.clone());
                        }
                        Err(ForwardError::Rejected(_)) => prop_assert!(!valid),
                        Err(ForwardError::TooLarge { .. }) => {
                            let alone = codec.encode(&DataMessageBatch {
                                messages: vec![msg.clone()],
                            });
                            prop_assert!(alone.len() + 128 > HOP_LIMIT, "{}", alone.len());
                        }
                        Ok(system::client::Accepted::Duplicate) => {
                            prop_assert!(false, "no id repeats: {}", msg.id);
                        }
                        Err(other) => prop_assert!(false, "{}", other),
                    }
                }
                // The same messages, small enough to go as one batch, posted directly.
                let small: Vec<DataMessage> = msgs
                    .iter()
                    .map(|msg| DataMessage {
                        id: format!("{}-posted", msg.id),
                        payload: msg.payload[..msg.payload.len().min(64)].to_vec(),
                        ..msg.clone()
                    })
                    .collect();
                let answer = runtime.block_on(post_batch(&stack, codec, &small));
                prop_assert_eq!(answer.outcomes.len(), small.len());
                for (msg, outcome) in small.iter().zip(&answer.outcomes) {
                    let valid = validate::check(MessageRef::from(msg)).is_ok();
                    let expected = if valid {
                        Outcome::Accepted
                    } else {
                        Outcome::Invalid
                    };
                    prop_assert_eq!(outcome.outcome, expected as i32);
                    if valid {
                        prop_assert_eq!(&outcome.message_id, &msg.id);
                        accepted.lock().unwrap().push(msg.id.clone());
                    }
                }
                Ok(())
            })
            .unwrap();
        let seen = Arc::clone(&stack.seen);
        runtime.block_on(stack.shutdown());
        let mut seen: Vec<String> = seen.lock().unwrap().iter().map(|m| m.id.clone()).collect();
        seen.sort();
        let mut accepted = accepted.lock().unwrap().clone();
        accepted.sort();
        assert_eq!(
            seen, accepted,
            "{codec:?}: processed exactly the accepted, once each"
        );
    }
}

/// Posts `msgs` as one batch request.
pub(crate) async fn post_batch(stack: &Stack, codec: Codec, msgs: &[DataMessage]) -> BatchOutcome {
    let body = codec.encode(&DataMessageBatch {
        messages: msgs.to_vec(),
    });
    let response = reqwest::Client::new()
        .post(format!("{}/enqueue/batch", stack.processor_url))
        .header(reqwest::header::CONTENT_TYPE, codec.content_type())
        .body(body)
        .send()
        .await
        .unwrap();
    let status = response.status();
    let bytes = response.bytes().await.unwrap();
    assert_eq!(status, reqwest::StatusCode::OK, "{bytes:?}");
    codec.decode(&bytes).unwrap()
}
