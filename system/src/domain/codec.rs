//! Request bodies: reading them under a size limit and decoding them by content type, either
//! as the proto3 canonical JSON mapping or as protobuf. Failures come back as the
//! `ApiError` the contract fixes (400, 413, 415), never as a panic.

mod batch;
mod capped;

pub use batch::{BATCH_FRAME_BYTES, MAX_BATCH_MESSAGES, count_batch, decode_batch, entry_len};
pub use capped::{CappedMap, CappedMessage};

use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};

use serde::{Serialize, de::DeserializeOwned};

use crate::{
    domain::answer, domain::http_error::ApiError, domain::proto::DataMessage, domain::validate,
    domain::wire,
};

/// The largest body the processor takes by default (`PROCESSOR_BODY_LIMIT`); the hop's
/// requests are made to fit it.
pub const PROCESSOR_BODY_LIMIT: usize = 16 * 1024 * 1024;

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
pub(crate) const PROTOBUF_CONTENT_TYPE: &str = "application/x-protobuf";

impl Codec {
    /// The codec named by the request's `content-type`, or 415.
    pub(crate) fn from_headers(headers: &HeaderMap) -> Result<Codec, ApiError> {
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

    /// The name used in configuration and reports (the value of `HOP_CODEC`).
    pub const fn as_str(self) -> &'static str {
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
    pub(crate) fn respond<T: prost::Message + Serialize>(
        self,
        status: StatusCode,
        value: &T,
    ) -> Response {
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
