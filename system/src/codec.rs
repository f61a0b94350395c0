//! Request bodies: reading them under a size limit and decoding them by content type, either
//! as the proto3 canonical JSON mapping or as protobuf. Failures come back as the
//! [`ApiError`] the contract fixes (400, 413, 415), never as a panic.

mod batch;
mod capped;

pub use batch::{BATCH_FRAME_BYTES, MAX_BATCH_MESSAGES, count_batch, decode_batch, entry_len};
pub use capped::{CappedMap, CappedMessage};

use axum::response::{IntoResponse, Response};
use axum::{
    body::{Body, Bytes},
    http::{HeaderMap, StatusCode, header},
};
use std::{sync::Arc, time::Duration};

use http_body_util::BodyExt;
use hyper::body::Body as _;
use serde::{Serialize, de::DeserializeOwned};

use crate::{
    answer,
    budget::{Budget, Charge},
    clients::Peer,
    http_error::ApiError,
    proto::DataMessage,
    refusals::Refusal,
    validate, wire,
};

/// How a body is encoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Codec {
    /// The proto3 canonical JSON mapping (`application/json`).
    Json,
    /// Protobuf binary (`application/x-protobuf`).
    Protobuf,
}

/// The content type of protobuf bodies.
pub const PROTOBUF_CONTENT_TYPE: &str = "application/x-protobuf";

impl Codec {
    /// The codec named by the request's `content-type`, or 415.
    pub fn from_headers(headers: &HeaderMap) -> Result<Codec, ApiError> {
        let unsupported = || {
            ApiError::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "content-type must be application/json or application/x-protobuf",
            )
        };
        let value = headers
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .ok_or_else(unsupported)?;
        let essence = value
            .split(';')
            .next()
            .unwrap_or("")
            .trim()
            .to_ascii_lowercase();
        match essence.as_str() {
            "application/json" => Ok(Codec::Json),
            "application/x-protobuf" | "application/protobuf" => Ok(Codec::Protobuf),
            other if other.starts_with("application/") && other.ends_with("+json") => {
                Ok(Codec::Json)
            }
            _ => Err(unsupported()),
        }
    }

    /// The name used in configuration and reports.
    pub fn as_str(self) -> &'static str {
        match self {
            Codec::Json => "json",
            Codec::Protobuf => "protobuf",
        }
    }

    /// The `content-type` value of this codec.
    pub fn content_type(self) -> &'static str {
        match self {
            Codec::Json => "application/json",
            Codec::Protobuf => PROTOBUF_CONTENT_TYPE,
        }
    }

    /// Decodes a message of type `T`, or answers 400 saying what is wrong.
    pub fn decode<T>(self, body: &[u8]) -> Result<T, ApiError>
    where
        T: prost::Message + Default + DeserializeOwned,
    {
        match self {
            Codec::Json => serde_json::from_slice(body).map_err(invalid_json),
            Codec::Protobuf => T::decode(body)
                .map_err(|err| ApiError::bad_request(format!("invalid protobuf: {err}"))),
        }
    }
}

impl Codec {
    /// Encodes `value` in this codec.
    pub fn encode<T: prost::Message + Serialize>(self, value: &T) -> Vec<u8> {
        match self {
            // Serializing generated types into memory cannot fail: no maps with non-string keys.
            Codec::Json => serde_json::to_vec(value).unwrap_or_default(),
            Codec::Protobuf => value.encode_to_vec(),
        }
    }

    /// A response with `status` and `value` encoded in this codec.
    pub fn respond<T: prost::Message + Serialize>(self, status: StatusCode, value: &T) -> Response {
        (
            status,
            [(header::CONTENT_TYPE, self.content_type())],
            self.encode(value),
        )
            .into_response()
    }
}

/// Decodes a `DataMessage` body (the processor's `/enqueue`) without building more metadata
/// than a message may hold: JSON keeps at most [`validate::MAX_METADATA_ENTRIES`] entries
/// while it is read ([`CappedMessage`]), protobuf is read in place ([`wire`]) and copied
/// only when its metadata may be taken. Too many entries is a 400 saying how many.
pub fn decode_message(codec: Codec, body: &[u8]) -> Result<DataMessage, ApiError> {
    let refused = |err: validate::Invalid| ApiError::bad_request(err.to_string());
    match codec {
        Codec::Json => serde_json::from_slice::<CappedMessage>(body)
            .map_err(invalid_json)?
            .into_message()
            .map_err(refused),
        Codec::Protobuf => wire::with_entries(|entries| {
            let msg = wire::parse_data_message(body, entries)
                .map_err(|err| ApiError::bad_request(answer::invalid_protobuf(&err)))?;
            validate::entries(msg.metadata.len()).map_err(refused)?;
            Ok(msg.to_owned_message())
        }),
    }
}

fn invalid_json(err: serde_json::Error) -> ApiError {
    ApiError::bad_request(format!("invalid JSON: {err}"))
}

/// Reads the whole body, answering 413 once it exceeds `limit` bytes and 408 when it has
/// not arrived within `timeout`, its bytes taken from `budget` as they arrive: what a
/// client declares costs nothing until it is sent, and a body that stops coming holds only
/// what came. 503 (with `Retry-After`) when the next bytes do not fit, naming the setting
/// that was full (`MEMORY_PER_CLIENT` for a client's share). The charge is the caller's to
/// hold while it keeps the body or what it decoded from it. Refusals are counted for
/// `peer`; a body refused before its end is lingered on (see [`linger`]) before the answer.
pub async fn read_body_charged(
    headers: &HeaderMap,
    mut body: Body,
    limit: usize,
    timeout: Duration,
    budget: &Arc<Budget>,
    peer: Option<&Peer>,
) -> Result<(Bytes, Charge), ApiError> {
    let refuse = |refusal| {
        if let Some(peer) = peer {
            peer.refuse(refusal);
        }
    };
    if declared_length(headers).is_some_and(|len| len > limit as u64) {
        refuse(Refusal::TooLarge);
        linger(headers, body).await;
        return Err(too_large(limit));
    }
    let mut charge = budget.empty_charge();
    let read = async {
        // Most bodies come in one chunk: it is kept as it is, and copied only when a
        // second one follows.
        let mut only: Option<Bytes> = None;
        let mut joined = bytes::BytesMut::new();
        let mut read = 0;
        while let Some(frame) = body.frame().await {
            let frame = frame
                .map_err(|err| ApiError::bad_request(format!("could not read the body: {err}")))?;
            let Ok(data) = frame.into_data() else {
                continue;
            };
            read += data.len();
            if read > limit {
                refuse(Refusal::TooLarge);
                return Err(too_large(limit));
            }
            if let Err(exhausted) = charge.grow(data.len()) {
                refuse(Refusal::of(&exhausted));
                return Err(ApiError::unavailable(exhausted.to_string()));
            }
            if only.is_none() && joined.is_empty() {
                only = Some(data);
            } else {
                if let Some(first) = only.take() {
                    joined.extend_from_slice(&first);
                }
                joined.extend_from_slice(&data);
            }
        }
        Ok(only.unwrap_or_else(|| joined.freeze()))
    };
    match tokio::time::timeout(timeout, read).await {
        Ok(Ok(bytes)) => Ok((bytes, charge)),
        Ok(Err(err)) => {
            drop(charge);
            if err.status != StatusCode::BAD_REQUEST {
                linger(headers, body).await;
            }
            Err(err)
        }
        Err(_) => {
            refuse(Refusal::BodyTimeout);
            Err(late(timeout))
        }
    }
}

/// Most bytes of an unwanted body read and thrown away before an early answer.
pub const LINGER_BYTES: usize = 64 * 1024 * 1024;
/// Longest wait for an unwanted body before an early answer.
pub const LINGER_TIME: Duration = Duration::from_secs(5);

/// Reads and throws away what is left of a body that will not be used, up to
/// [`LINGER_BYTES`] and for at most [`LINGER_TIME`], so that an answer given early (a
/// refused token, a body over the limit, an unknown route) reaches a client still sending:
/// answered at once, an HTTP/2 client sees its stream reset and an HTTP/1.1 client its
/// connection closed while it writes, and many never read the answer. Nothing read is
/// kept. A client that asked to be told before it sends (`Expect: 100-continue`) has sent
/// nothing yet and is answered at once.
pub async fn linger(headers: &HeaderMap, mut body: Body) {
    if headers.contains_key(header::EXPECT) || body.is_end_stream() {
        return;
    }
    let drain = async {
        let mut read = 0;
        while let Some(Ok(frame)) = body.frame().await {
            read += frame.data_ref().map_or(0, Bytes::len);
            if read > LINGER_BYTES {
                return;
            }
        }
    };
    let _ = tokio::time::timeout(LINGER_TIME, drain).await;
}

fn declared_length(headers: &HeaderMap) -> Option<u64> {
    headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok())
}

fn too_large(limit: usize) -> ApiError {
    ApiError::new(
        StatusCode::PAYLOAD_TOO_LARGE,
        format!("body exceeds the limit of {limit} bytes"),
    )
}

fn late(timeout: Duration) -> ApiError {
    ApiError::new(
        StatusCode::REQUEST_TIMEOUT,
        format!(
            "the request body did not arrive within {} s",
            timeout.as_secs_f64()
        ),
    )
}
