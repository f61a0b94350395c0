//! Request bodies as they arrive: read under a size limit and a deadline, charged to the
//! memory budget as their bytes come, and thrown away (lingered on) before an early answer
//! so that the answer reaches a client that is still sending.

use std::{sync::Arc, time::Duration};

use axum::body::{Body, Bytes};
use http::{HeaderMap, StatusCode, header};
use http_body_util::BodyExt;
use hyper::body::Body as _;

use crate::{
    domain::{
        budget::{Budget, Charge},
        http_error::ApiError,
    },
    serve::{clients::Peer, refusals::Refusal},
};

/// Reads the whole body, answering 413 once it exceeds `limit` bytes and 408 when it has
/// not arrived within `timeout`, its bytes taken from `budget` as they arrive: what a
/// client declares costs nothing until it is sent, and a body that stops coming holds only
/// what came. 503 (with `Retry-After`) when the next bytes do not fit, naming the setting
/// that was full (`MEMORY_PER_CLIENT` for a client's share). The charge is the caller's to
/// hold while it keeps the body or what it decoded from it. Refusals are counted for
/// `peer`; a body refused before its end is lingered on (see [`linger`]) before the answer.
pub(crate) async fn read_body_charged(
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
pub(crate) const LINGER_BYTES: usize = 64 * 1024 * 1024;
/// Longest wait for an unwanted body before an early answer.
pub(crate) const LINGER_TIME: Duration = Duration::from_secs(5);

/// Reads and throws away what is left of a body that will not be used, up to
/// [`LINGER_BYTES`] and for at most [`LINGER_TIME`], so that an answer given early (a
/// refused token, a body over the limit, an unknown route) reaches a client still sending:
/// answered at once, an HTTP/2 client sees its stream reset and an HTTP/1.1 client its
/// connection closed while it writes, and many never read the answer. Nothing read is
/// kept. A client that asked to be told before it sends (`Expect: 100-continue`) has sent
/// nothing yet and is answered at once.
pub(crate) async fn linger(headers: &HeaderMap, mut body: Body) {
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

/// The answer to an unknown route (once its body, if any, was thrown away).
pub(crate) async fn not_found(request: axum::extract::Request) -> ApiError {
    let (parts, body) = request.into_parts();
    linger(&parts.headers, body).await;
    ApiError::new(StatusCode::NOT_FOUND, "no such route")
}

/// The answer to a known route called with the wrong method (axum adds `Allow`), once its
/// body was thrown away.
pub(crate) async fn method_not_allowed(request: axum::extract::Request) -> ApiError {
    let (parts, body) = request.into_parts();
    linger(&parts.headers, body).await;
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "method not allowed on this route",
    )
}
