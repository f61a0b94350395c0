//! The same fault gets the same words at every door: the gateway (HTTP/1.1), the gRPC
//! server (unary and stream) and the processor's `/enqueue` each answer an invalid message
//! with one text, as a 400 with a JSON `{"error": ...}` or as INVALID_ARGUMENT.

use prost::Message as _;
use reqwest::{Client, StatusCode};
use serde_json::{Map, Value, json};
use system::{proto::IngestRequest, validate};
use tonic::Code;

use crate::{
    client::{enqueue, error_of, grpc_call, grpc_frame, ingest, post},
    stack::{Setup, Stack},
};

/// A message as the three doors take it, by its fields; `None` leaves `source` out.
struct Fields {
    source: Option<String>,
    id: String,
    metadata: Vec<(String, String)>,
}

impl Fields {
    fn new(source: &str) -> Fields {
        Fields {
            source: Some(source.to_owned()),
            id: String::new(),
            metadata: Vec::new(),
        }
    }

    /// The JSON body of the gateway (`payload` is `data`, a string) or of the processor
    /// (`payload`, base64).
    fn json(&self, payload: (&str, &str)) -> String {
        let mut body = Map::new();
        if let Some(source) = &self.source {
            body.insert("source".into(), json!(source));
        }
        body.insert(payload.0.into(), json!(payload.1));
        if !self.id.is_empty() {
            body.insert("id".into(), json!(self.id));
        }
        let metadata: Map<String, Value> = self
            .metadata
            .iter()
            .map(|(k, v)| (k.clone(), json!(v)))
            .collect();
        body.insert("metadata".into(), Value::Object(metadata));
        Value::Object(body).to_string()
    }

    fn grpc(&self) -> IngestRequest {
        IngestRequest {
            source: self.source.clone().unwrap_or_default(),
            data: b"x".to_vec(),
            metadata: self.metadata.iter().cloned().collect(),
            id: self.id.clone(),
        }
    }
}

/// Every fault a message's fields can have, by name.
fn faults() -> Vec<(&'static str, Fields)> {
    let with = |change: &dyn Fn(&mut Fields)| {
        let mut fields = Fields::new("sensor-1");
        change(&mut fields);
        fields
    };
    let flood: Vec<(String, String)> = (0..=validate::MAX_METADATA_ENTRIES)
        .map(|i| (format!("k{i}"), "v".to_owned()))
        .collect();
    vec![
        ("missing source", with(&|f| f.source = None)),
        ("empty source", Fields::new("")),
        ("blank source", Fields::new("  ")),
        ("control character in source", Fields::new("a\nb")),
        (
            "over-long source",
            Fields::new(&"s".repeat(validate::MAX_SOURCE_BYTES + 1)),
        ),
        (
            "over-long id",
            with(&|f| f.id = "i".repeat(validate::MAX_ID_BYTES + 1)),
        ),
        ("id with a space", with(&|f| f.id = "a b".to_owned())),
        (
            "too many metadata entries",
            with(&|f| f.metadata = flood.clone()),
        ),
        (
            "empty metadata key",
            with(&|f| f.metadata = vec![(String::new(), "v".to_owned())]),
        ),
        (
            "control character in a metadata value",
            with(&|f| f.metadata = vec![("k".to_owned(), "v\u{7}".to_owned())]),
        ),
    ]
}

#[tokio::test]
async fn an_invalid_message_gets_the_same_error_at_every_door() {
    let stack = Stack::start(Setup::default()).await;
    let client = Client::new();
    let mut grpc = stack.grpc_client().await;
    for (fault, fields) in faults() {
        let gateway =
            error_of(ingest(&client, &stack.gateway_url, &fields.json(("data", "x"))).await).await;
        let processor = error_of(
            enqueue(
                &client,
                &stack.processor_url,
                &fields.json(("payload", "eA==")),
            )
            .await,
        )
        .await;
        assert_eq!(gateway.0, StatusCode::BAD_REQUEST, "{fault}: {gateway:?}");
        assert_eq!(processor, gateway, "{fault}: processor and gateway");
        let unary = grpc.ingest(fields.grpc()).await.unwrap_err();
        assert_eq!(unary.code(), Code::InvalidArgument, "{fault}: {unary:?}");
        assert_eq!(unary.message(), gateway.1, "{fault}: gRPC and gateway");
        let stream = grpc
            .ingest_stream(tokio_stream::iter([fields.grpc()]))
            .await
            .unwrap_err();
        assert_eq!(stream.code(), Code::InvalidArgument, "{fault}: {stream:?}");
        // A stream's status goes on to say how far the stream got.
        assert!(
            stream.message().starts_with(&format!("{} (", gateway.1)),
            "{fault}: stream said {:?}, the gateway {:?}",
            stream.message(),
            gateway.1
        );
    }
    let stats = stack.shutdown().await;
    assert_eq!(stats.queue.enqueued, 0, "an invalid message was queued");
}

/// Bodies that do not decode, or come as a type no door reads, get one text too.
#[tokio::test]
async fn an_undecodable_body_gets_the_same_error_at_every_door() {
    let stack = Stack::start(Setup::default()).await;
    let client = Client::new();
    let gateway_url = format!("{}/api/v1/ingest", stack.gateway_url);
    let processor_url = format!("{}/enqueue", stack.processor_url);
    let both = |content_type: &'static str, body: Vec<u8>| {
        let (client, gateway_url, processor_url) = (&client, &gateway_url, &processor_url);
        async move {
            let gateway = post(client, gateway_url, content_type, None, body.clone()).await;
            let processor = post(client, processor_url, content_type, None, body).await;
            (error_of(gateway).await, error_of(processor).await)
        }
    };
    for (fault, content_type, body) in [
        ("malformed JSON", "application/json", b"{oops".to_vec()),
        (
            "JSON cut short",
            "application/json",
            br#"{"source": "#.to_vec(),
        ),
        ("not JSON at all", "application/json", b"hello".to_vec()),
        ("wrong content type", "text/plain", b"hello".to_vec()),
        (
            "malformed protobuf",
            "application/x-protobuf",
            vec![0xff; 3],
        ),
    ] {
        let (gateway, processor) = both(content_type, body).await;
        assert!(gateway.0.is_client_error(), "{fault}: {gateway:?}");
        assert_eq!(processor, gateway, "{fault}: processor and gateway");
    }

    // The field `source` holding bytes that are not UTF-8: field 1 of an `IngestRequest`
    // (the gateway and gRPC), field 3 of a `DataMessage` (the processor).
    let not_utf8 = [0xc3, 0x28];
    let request = [&[0x0a, 0x02][..], &not_utf8].concat();
    let message = [&[0x1a, 0x02][..], &not_utf8].concat();
    let protobuf = "application/x-protobuf";
    let gateway =
        error_of(post(&client, &gateway_url, protobuf, None, request.clone()).await).await;
    let processor = error_of(post(&client, &processor_url, protobuf, None, message).await).await;
    assert_eq!(gateway.0, StatusCode::BAD_REQUEST, "{gateway:?}");
    assert_eq!(processor, gateway, "not UTF-8: processor and gateway");
    let (code, unary) = grpc_call(&stack.grpc_url, "Ingest", grpc_frame(&request)).await;
    assert_eq!(
        (code.as_str(), unary.as_str()),
        ("3", gateway.1.as_str()),
        "unary"
    );
    let (code, stream) = grpc_call(&stack.grpc_url, "IngestStream", grpc_frame(&request)).await;
    assert_eq!(code, "3", "stream: {stream}");
    assert!(
        stream.starts_with(&format!("{} (", gateway.1)),
        "stream said {stream:?}, the gateway {:?}",
        gateway.1
    );
    // A valid request through the same raw call is accepted: the frames above were the fault.
    let valid = IngestRequest {
        source: "s".to_owned(),
        ..IngestRequest::default()
    };
    let (code, message) = grpc_call(
        &stack.grpc_url,
        "Ingest",
        grpc_frame(&valid.encode_to_vec()),
    )
    .await;
    assert_eq!(code, "0", "{message}");
    stack.shutdown().await;
}
