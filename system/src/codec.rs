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

use http_body_util::{BodyExt, LengthLimitError, Limited};
use serde::{Serialize, de::DeserializeOwned};

use crate::{
    answer,
    budget::{Budget, Charge},
    http_error::ApiError,
    proto::DataMessage,
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

/// [`read_body`], with the body's bytes taken from `budget` first: the declared length
/// before reading, or each chunk as it arrives when none is declared. 503 (with
/// `Retry-After`) when they do not fit; the charge is the caller's to hold while it keeps
/// the body or what it decoded from it.
pub async fn read_body_charged(
    headers: &HeaderMap,
    body: Body,
    limit: usize,
    timeout: Duration,
    budget: &Arc<Budget>,
) -> Result<(Bytes, Charge), ApiError> {
    let exhausted = |err: crate::budget::Exhausted| ApiError::unavailable(err.to_string());
    let declared = declared_length(headers);
    if declared.is_some_and(|len| len > limit as u64) {
        return Err(too_large(limit));
    }
    let mut charge = budget
        .try_charge(declared.unwrap_or(0) as usize)
        .map_err(exhausted)?;
    if declared.is_some() {
        let bytes = read_body(headers, body, limit, timeout).await?;
        return Ok((bytes, charge));
    }
    let read = async {
        let mut body = std::pin::pin!(Limited::new(body, limit));
        let mut bytes = bytes::BytesMut::new();
        while let Some(frame) = body.frame().await {
            let frame = frame.map_err(|err| body_error(&*err, limit))?;
            if let Ok(data) = frame.into_data() {
                charge.grow(data.len()).map_err(exhausted)?;
                bytes.extend_from_slice(&data);
            }
        }
        Ok(bytes.freeze())
    };
    match tokio::time::timeout(timeout, read).await {
        Ok(Ok(bytes)) => Ok((bytes, charge)),
        Ok(Err(err)) => Err(err),
        Err(_) => Err(late(timeout)),
    }
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

fn body_error(err: &(dyn std::error::Error + Send + Sync + 'static), limit: usize) -> ApiError {
    if err.is::<LengthLimitError>() {
        too_large(limit)
    } else {
        ApiError::bad_request(format!("could not read the body: {err}"))
    }
}

/// Reads the whole body, answering 413 once it exceeds `limit` bytes and 408 when it has
/// not arrived within `timeout`.
pub async fn read_body(
    headers: &HeaderMap,
    body: Body,
    limit: usize,
    timeout: Duration,
) -> Result<Bytes, ApiError> {
    if declared_length(headers).is_some_and(|len| len > limit as u64) {
        return Err(too_large(limit));
    }
    let read = tokio::time::timeout(timeout, Limited::new(body, limit).collect()).await;
    let Ok(read) = read else {
        return Err(late(timeout));
    };
    match read {
        Ok(collected) => Ok(collected.to_bytes()),
        Err(err) => Err(body_error(&*err, limit)),
    }
}
