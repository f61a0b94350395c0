//! The answers every door gives, written once: the 202 of an accepted message (the same at
//! the gateway and the processor, and the same `status` words in a gRPC reply) and the
//! text of a body that does not decode as protobuf. Error bodies themselves are
//! [`crate::domain::http_error::ApiError`]; a field that is wrong is a [`crate::domain::validate::Invalid`].

use axum::{
    Json,
    http::{HeaderValue, StatusCode},
    response::{IntoResponse, Response},
};
use serde::Serialize;

use crate::domain::wire::WireError;

/// The header with which an answer says that it repeats an earlier acceptance: the message
/// was accepted before under the same id, and is not queued again.
pub const REPLAYED_HEADER: &str = "idempotent-replayed";

/// The `status` of an answer to a message accepted now.
pub(crate) const ACCEPTED: &str = "accepted";
/// The `status` of an answer to a message accepted before under the same id.
pub(crate) const DUPLICATE: &str = "duplicate";

/// The answer to an accepted message: 202 with `{"messageId": ..., "status": "accepted"}`,
/// or for a message accepted before under the same id `"status": "duplicate"` and the
/// `Idempotent-Replayed: true` header.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Receipt {
    /// The id the message was accepted under.
    pub message_id: String,
    /// [`ACCEPTED`] or [`DUPLICATE`].
    pub status: &'static str,
}

impl Receipt {
    /// The receipt of `message_id`, accepted now or (`duplicate`) before.
    pub(crate) fn new(message_id: String, duplicate: bool) -> Receipt {
        Receipt {
            message_id,
            status: status_word(duplicate),
        }
    }
}

impl IntoResponse for Receipt {
    fn into_response(self) -> Response {
        let replayed = self.status == DUPLICATE;
        let mut response = (StatusCode::ACCEPTED, Json(self)).into_response();
        if replayed {
            response
                .headers_mut()
                .insert(REPLAYED_HEADER, HeaderValue::from_static("true"));
        }
        response
    }
}

/// The `status` word of a message accepted now, or (`duplicate`) before.
pub(crate) fn status_word(duplicate: bool) -> &'static str {
    if duplicate { DUPLICATE } else { ACCEPTED }
}

/// What a door says of protobuf it cannot read. The reason comes from [`crate::domain::wire`],
/// which names no message type, so an `IngestRequest` and a `DataMessage` broken the same
/// way read the same.
pub(crate) fn invalid_protobuf(err: &WireError) -> String {
    format!("invalid protobuf: {err}")
}
