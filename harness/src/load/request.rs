//! Requests built once, before a run: the HTTP/1.1 bytes, the HTTP/2 head and body, the
//! 5-byte-prefixed gRPC frames. Sending a request then copies or clones nothing that grows
//! with the run, so the generator spends its CPU on the wire and not on encoding.

use bytes::{BufMut, Bytes, BytesMut};
use prost::Message;
use system::proto::IngestRequest;

use super::{
    http2::frames::RequestFrames,
    scenario::{Protocol, Scenario},
};

/// Everything needed to send one request (or one streaming call) of a scenario.
#[derive(Debug, Clone)]
pub struct Prepared {
    /// HTTP/1.1: the whole request, head and body.
    pub http1: Bytes,
    /// HTTP/2: the request as frames.
    pub http2: RequestFrames,
    /// The request body: JSON, or the gRPC frame(s).
    pub body: Bytes,
    /// Messages one request carries (more than one only for `grpc_stream`).
    pub messages: u64,
}

/// Why a scenario's request could not be built.
#[derive(Debug, thiserror::Error)]
#[error("cannot build the request: {0}")]
pub struct PrepareError(String);

impl Prepared {
    /// Builds the request material of `scenario`.
    pub fn new(scenario: &Scenario) -> Result<Prepared, PrepareError> {
        let payload = &scenario.payload;
        let data: String = (0..payload.data_bytes)
            .map(|i| char::from(b'a' + (i % 26) as u8))
            .collect();
        if scenario.target.is_empty() || scenario.path().contains(char::is_whitespace) {
            return Err(PrepareError(format!(
                "bad target {:?} or path {:?}",
                scenario.target,
                scenario.path()
            )));
        }
        let json_length;
        let (body, messages, headers): (Bytes, u64, Vec<(&str, &str)>) = match scenario.protocol {
            Protocol::Http1 | Protocol::H2c => {
                let json = serde_json::json!({
                    "source": payload.source,
                    "data": data,
                    "metadata": payload.metadata,
                });
                let body = Bytes::from(json.to_string());
                json_length = body.len().to_string();
                // Like HTTP clients (curl, hyper) for a body of known size.
                let headers = vec![
                    ("content-type", "application/json"),
                    ("content-length", json_length.as_str()),
                ];
                (body, 1, headers)
            }
            Protocol::GrpcUnary | Protocol::GrpcStream => {
                let message = IngestRequest {
                    source: payload.source.clone(),
                    data: data.into_bytes(),
                    metadata: payload.metadata.clone().into_iter().collect(),
                    id: String::new(),
                };
                let count = match scenario.protocol {
                    Protocol::GrpcStream => payload.messages_per_stream,
                    _ => 1,
                };
                (
                    grpc_frames(&message, count),
                    u64::from(count),
                    vec![("content-type", "application/grpc"), ("te", "trailers")],
                )
            }
        };
        let http1 = http1_request(scenario, &body);
        let http2 = RequestFrames::new(&scenario.target, scenario.path(), &headers, body.clone());
        Ok(Prepared {
            http1,
            http2,
            body,
            messages,
        })
    }
}

/// `count` copies of `message`, each as a gRPC length-prefixed frame (flag 0, then the
/// big-endian length, then the protobuf bytes).
pub fn grpc_frames(message: &IngestRequest, count: u32) -> Bytes {
    let encoded = message.encode_to_vec();
    let mut frames = BytesMut::with_capacity((5 + encoded.len()) * count as usize);
    for _ in 0..count {
        frames.put_u8(0);
        frames.put_u32(encoded.len() as u32);
        frames.put_slice(&encoded);
    }
    frames.freeze()
}

fn http1_request(scenario: &Scenario, body: &Bytes) -> Bytes {
    let content_type = match scenario.protocol {
        Protocol::Http1 | Protocol::H2c => "application/json",
        Protocol::GrpcUnary | Protocol::GrpcStream => "application/grpc",
    };
    let head = format!(
        "POST {} HTTP/1.1\r\nhost: {}\r\ncontent-type: {content_type}\r\ncontent-length: {}\r\n\r\n",
        scenario.path(),
        scenario.target,
        body.len()
    );
    let mut request = BytesMut::with_capacity(head.len() + body.len());
    request.put_slice(head.as_bytes());
    request.put_slice(body);
    request.freeze()
}
