//! Hop requests written as messages arrive: a [`HopBatch`] holds the body of the next
//! request, each message encoded into it straight from a borrowed [`MessageRef`], so that
//! a caller that holds messages only as views of the bytes they came in (the gRPC stream)
//! forwards them without building owned messages. With the protobuf codec nothing is
//! allocated per message: the body comes from the buffer pool, the answer is read in place
//! and the outcomes go into a vector the caller keeps.

use bytes::{BufMut, BytesMut};
use http::StatusCode;

use super::{Answer, ForwardError, Forwarded, Forwarder, lone_answer, outcome_error, status_error};
use crate::{
    domain::codec::{BATCH_FRAME_BYTES, Codec},
    domain::message::MessageRef,
    domain::proto::BatchOutcome,
    domain::wire,
};

/// The body of the next hop request and the messages in it.
#[derive(Debug, Default)]
pub struct HopBatch {
    body: Option<BytesMut>,
    /// Messages in the body.
    count: usize,
    /// What the body will take once framed (the bound the byte limit is checked against).
    bytes: usize,
    /// Where the first message's own encoding starts and ends in the body (a batch of one
    /// is sent as that message alone).
    first: (usize, usize),
}

/// JSON batch framing: the body starts with this and ends with `]}`.
const JSON_OPEN: &[u8] = b"{\"messages\":[";

impl HopBatch {
    /// Messages in the batch.
    pub fn len(&self) -> usize {
        self.count
    }

    /// Whether the batch is empty.
    pub fn is_empty(&self) -> bool {
        self.count == 0
    }
}

/// Whether [`Forwarder::add`] took the message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Added {
    /// The message is in the batch.
    Yes,
    /// The batch is full (by count or by bytes): send it, then add the message again.
    Full,
}

impl Forwarder {
    /// Adds `msg` to `batch`, encoded for the hop; `TooLarge` when no request could carry
    /// it, whatever the batch holds.
    pub fn add(&self, batch: &mut HopBatch, msg: MessageRef<'_>) -> Result<Added, ForwardError> {
        let len = self.hop.entry_len(msg)?;
        let config = &self.hop.config;
        if batch.count > 0
            && (batch.count >= config.batch || batch.bytes + len > config.max_request_bytes)
        {
            return Ok(Added::Full);
        }
        let codec = config.codec;
        let body = batch.body.get_or_insert_with(|| self.hop.buffers.take());
        if batch.count == 0 {
            body.clear();
            batch.bytes = BATCH_FRAME_BYTES;
            if codec == Codec::Json {
                body.put_slice(JSON_OPEN);
            }
        } else if codec == Codec::Json {
            body.put_u8(b',');
        }
        let start = match codec {
            Codec::Protobuf => {
                let size = wire::data_message_len(&msg);
                prost::encoding::encode_key(1, prost::encoding::WireType::LengthDelimited, body);
                prost::encoding::encode_varint(size as u64, body);
                let start = body.len();
                body.reserve(size);
                wire::put_data_message(&msg, body);
                start
            }
            Codec::Json => {
                let start = body.len();
                // Writing generated types into memory cannot fail.
                let _ = serde_json::to_writer(body.writer(), &msg.to_owned_message());
                start
            }
        };
        if batch.count == 0 {
            batch.first = (start, body.len());
        }
        batch.count += 1;
        batch.bytes += len;
        Ok(Added::Yes)
    }

    /// Sends the batch (a batch of one as a request of its own) and appends one outcome per
    /// message, in order, to `outcomes`. The batch is empty afterwards.
    pub async fn send(&self, batch: &mut HopBatch, outcomes: &mut Vec<Forwarded>) {
        let count = std::mem::take(&mut batch.count);
        let Some(mut body) = batch.body.take() else {
            return;
        };
        if count == 0 {
            self.hop.buffers.give_back(body.freeze());
            return;
        }
        let codec = self.hop.config.codec;
        let lone = count == 1;
        if codec == Codec::Json && !lone {
            body.put_slice(b"]}");
        }
        let body = body.freeze();
        let (uri, payload) = if lone {
            let (start, end) = batch.first;
            (&self.hop.enqueue_uri, body.slice(start..end))
        } else {
            (&self.hop.batch_uri, body.clone())
        };
        let answer = self.hop.post_bytes(uri, payload, count).await;
        self.hop.buffers.give_back(body);
        let answer = match answer {
            Ok(answer) if lone => lone_answer(&answer).map(|accepted| outcomes.push(Ok(accepted))),
            Ok(Answer {
                status: StatusCode::OK,
                body,
                ..
            }) => read_outcomes(codec, &body, count, outcomes),
            Ok(answer) => Err(status_error(answer.status, &answer.body)),
            Err(err) => Err(err),
        };
        if let Err(err) = answer {
            outcomes.extend(std::iter::repeat_n(Err(err), count));
        }
    }
}

/// Appends the `count` outcomes of a batch answer, or says why the answer is unusable.
fn read_outcomes(
    codec: Codec,
    body: &[u8],
    count: usize,
    outcomes: &mut Vec<Forwarded>,
) -> Result<(), ForwardError> {
    let unreadable = |message: String| ForwardError::Failed {
        status: 200,
        message,
    };
    let wrong_count = |n: usize| unreadable(format!("{n} outcomes for {count} messages"));
    let before = outcomes.len();
    match codec {
        Codec::Protobuf => {
            for outcome in wire::batch_outcomes(body) {
                // An answer that breaks off is unusable as a whole, as it is when decoded
                // at once: the outcomes read before the break are taken back.
                match outcome {
                    Ok((code, error)) => outcomes.push(outcome_error(code, error)),
                    Err(err) => {
                        outcomes.truncate(before);
                        return Err(unreadable(err.to_string()));
                    }
                }
            }
        }
        Codec::Json => {
            let answer: BatchOutcome = codec.decode(body).map_err(|err| unreadable(err.message))?;
            for outcome in answer.outcomes {
                outcomes.push(outcome_error(outcome.outcome, &outcome.error));
            }
        }
    }
    let got = outcomes.len() - before;
    if got != count {
        outcomes.truncate(before);
        return Err(wrong_count(got));
    }
    Ok(())
}
