//! The soak's traffic mix: what each request is (valid with or without the client's own
//! id, retried under the same id, invalid, oversized, a gRPC stream), spread evenly over the
//! run, and which answers the contract documents for each.
//!
//! The documented answers: 202 for a valid message (`duplicate` for a retry within the
//! window); 400 / `INVALID_ARGUMENT` for an invalid one; 413 / `RESOURCE_EXHAUSTED` for one
//! over the size limit; and for any request 503 or 408 / `UNAVAILABLE` or
//! `RESOURCE_EXHAUSTED` (overloaded, memory budget reached, shutting down, NATS down), and
//! 502 / `UNAVAILABLE` (the processor unreachable or silent). Anything else, a request
//! without an answer included, is an error outside the documented kinds.

use std::time::Duration;

use bytes::Bytes;
use system::proto::IngestRequest;

/// A front door.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Door {
    /// The HTTP gateway, over HTTP/1.1.
    Http,
    /// The gRPC server.
    Grpc,
}

impl Door {
    /// Both doors, in the order they are reported.
    pub const ALL: [Door; 2] = [Door::Http, Door::Grpc];

    /// Its name in result files.
    pub fn as_str(self) -> &'static str {
        match self {
            Door::Http => "http",
            Door::Grpc => "grpc",
        }
    }

    pub(crate) fn index(self) -> usize {
        match self {
            Door::Http => 0,
            Door::Grpc => 1,
        }
    }

    pub(crate) fn letter(self) -> char {
        match self {
            Door::Http => 'h',
            Door::Grpc => 'g',
        }
    }

    pub(crate) fn from_letter(letter: char) -> Option<Door> {
        match letter {
            'h' => Some(Door::Http),
            'g' => Some(Door::Grpc),
            _ => None,
        }
    }
}

/// How long a request may go without an answer: after it, the answer is
/// [`Answer::Timeout`].
pub(crate) const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// What one request of the mix is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    /// A valid message without an id: the server chooses one.
    Plain,
    /// A valid message under the soak's own id.
    Keyed,
    /// A valid message under the soak's own id, sent again once answered.
    Retried,
    /// A message with an empty `source` (HTTP: every other one is malformed JSON).
    Invalid,
    /// gRPC `IngestStream` of [`STREAM_MESSAGES`] valid messages, each under its own id.
    Stream,
    /// A body (HTTP) or message (gRPC) a little over the door's size limit.
    Oversized,
}

/// Messages in one `IngestStream` call of the mix.
pub(crate) const STREAM_MESSAGES: u64 = 8;

/// Shares of the mix, in percent, per door (oversized requests run on a clock of their own).
const HTTP_MIX: [(Kind, u64); 4] = [
    (Kind::Keyed, 60),
    (Kind::Plain, 20),
    (Kind::Retried, 10),
    (Kind::Invalid, 10),
];
const GRPC_MIX: [(Kind, u64); 5] = [
    (Kind::Keyed, 50),
    (Kind::Plain, 20),
    (Kind::Retried, 10),
    (Kind::Invalid, 10),
    (Kind::Stream, 10),
];

impl Kind {
    /// The kind of the `k`-th request of `door`. Stepping through the hundred shares by 37
    /// (prime to 100) interleaves the kinds, and every hundred requests hold each share.
    pub(crate) fn of(door: Door, k: u64) -> Kind {
        let mix: &[(Kind, u64)] = match door {
            Door::Http => &HTTP_MIX,
            Door::Grpc => &GRPC_MIX,
        };
        let mut slot = k.wrapping_mul(37) % 100;
        for &(kind, share) in mix {
            if slot < share {
                return kind;
            }
            slot -= share;
        }
        Kind::Plain
    }

    /// Whether the message is valid and should be accepted.
    pub(crate) fn valid(self) -> bool {
        !matches!(self, Kind::Invalid | Kind::Oversized)
    }

    /// Whether it carries the soak's own ids.
    pub(crate) fn keyed(self) -> bool {
        matches!(self, Kind::Keyed | Kind::Retried | Kind::Stream)
    }

    /// How many ids it takes.
    pub(crate) fn ids(self) -> u64 {
        match self {
            Kind::Stream => STREAM_MESSAGES,
            kind if kind.keyed() => 1,
            _ => 0,
        }
    }

    /// Its name in result files.
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Kind::Plain => "plain",
            Kind::Keyed => "keyed",
            Kind::Retried => "retried",
            Kind::Invalid => "invalid",
            Kind::Stream => "stream",
            Kind::Oversized => "oversized",
        }
    }
}

/// How one request ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Answer {
    /// 202 (HTTP) or OK (gRPC), with the id the server named (for a stream: the last one),
    /// whether it said `duplicate`, and how many messages it accepted.
    Stored {
        id: String,
        duplicate: bool,
        accepted: u64,
    },
    /// Another HTTP status; whether a 503 said `Retry-After`, and whether the body was the
    /// JSON error object.
    Http {
        status: u16,
        retry_after: bool,
        json_error: bool,
    },
    /// Another gRPC status.
    Grpc(tonic::Code),
    /// No answer within the request's time limit ([`REQUEST_TIMEOUT`]).
    Timeout,
    /// The connection failed or closed before an answer.
    Io,
}

/// What an answer settles about the message it was for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Settled {
    /// The server took it (now or before).
    Stored,
    /// The server refused it and stored nothing.
    Refused,
    /// It may or may not have been stored (a retry under the same id tells).
    Unknown,
}

impl Answer {
    /// The key of the answer in the tally: `accepted`, `duplicate`, `http_<code>`,
    /// `grpc_<CODE>`, `timeout`, `io`.
    pub(crate) fn key(&self) -> String {
        match self {
            Answer::Stored {
                duplicate: false, ..
            } => "accepted".to_owned(),
            Answer::Stored {
                duplicate: true, ..
            } => "duplicate".to_owned(),
            Answer::Http { status, .. } => format!("http_{status}"),
            Answer::Grpc(code) => {
                format!("grpc_{}", crate::load::record::grpc_code_name(*code as i32))
            }
            Answer::Timeout => "timeout".to_owned(),
            Answer::Io => "io".to_owned(),
        }
    }

    /// Whether the contract documents this answer to a request of `kind`.
    pub(crate) fn documented(&self, kind: Kind) -> bool {
        use tonic::Code;
        match self {
            Answer::Stored { .. } => kind.valid(),
            Answer::Http { status, .. } => match status {
                502 | 503 | 408 => true,
                400 => kind == Kind::Invalid,
                413 => kind == Kind::Oversized,
                _ => false,
            },
            Answer::Grpc(code) => match code {
                Code::Unavailable | Code::ResourceExhausted => true,
                Code::InvalidArgument => kind == Kind::Invalid,
                _ => false,
            },
            Answer::Timeout | Answer::Io => false,
        }
    }

    /// What the answer settles. A 4xx or 503 stores nothing (the contract says so); gRPC
    /// `UNAVAILABLE` stands for both 503 and 502, so it settles nothing, and neither does
    /// any answer outside the contract.
    pub(crate) fn settled(&self) -> Settled {
        use tonic::Code;
        match self {
            Answer::Stored { .. } => Settled::Stored,
            Answer::Http { status, .. } if (400..500).contains(status) || *status == 503 => {
                Settled::Refused
            }
            Answer::Grpc(
                Code::InvalidArgument
                | Code::ResourceExhausted
                | Code::FailedPrecondition
                | Code::OutOfRange
                | Code::NotFound
                | Code::AlreadyExists
                | Code::PermissionDenied
                | Code::Unauthenticated
                | Code::Unimplemented,
            ) => Settled::Refused,
            _ => Settled::Unknown,
        }
    }
}

/// Bytes of `data` in each valid message.
const DATA_BYTES: usize = 64;

fn data() -> String {
    (0..DATA_BYTES)
        .map(|i| char::from(b'a' + (i % 26) as u8))
        .collect()
}

/// The JSON body of an HTTP request of `kind` (not oversized), `id` in the body's `id`
/// field when given.
pub(crate) fn http_body(kind: Kind, k: u64, id: Option<&str>) -> Bytes {
    match kind {
        Kind::Invalid if k.is_multiple_of(2) => {
            Bytes::from_static(br#"{"source": "", "data": "x"}"#)
        }
        Kind::Invalid => Bytes::from_static(br#"{"source": "soak", "data": "#),
        _ => {
            let id = id.map(|id| format!(r#","id":"{id}""#)).unwrap_or_default();
            Bytes::from(format!(
                r#"{{"source":"soak","data":"{}","metadata":{{"door":"http","k":"{k}"}}{id}}}"#,
                data()
            ))
        }
    }
}

/// A valid JSON body a little over `limit` bytes.
pub(crate) fn http_oversized(limit: usize) -> Bytes {
    let data = "x".repeat(limit + 1024);
    Bytes::from(format!(r#"{{"source":"soak","data":"{data}"}}"#))
}

/// The gRPC message of a request of `kind` (not oversized), under `id` (empty: none).
pub(crate) fn grpc_message(kind: Kind, k: u64, id: String) -> IngestRequest {
    IngestRequest {
        source: if kind == Kind::Invalid {
            String::new()
        } else {
            "soak".to_owned()
        },
        data: data().into_bytes(),
        metadata: [
            ("door".to_owned(), "grpc".to_owned()),
            ("k".to_owned(), k.to_string()),
        ]
        .into_iter()
        .collect(),
        id,
    }
}

/// A valid gRPC message a little over `limit` bytes.
pub(crate) fn grpc_oversized(limit: usize) -> IngestRequest {
    IngestRequest {
        source: "soak".to_owned(),
        data: vec![b'x'; limit + 1024],
        metadata: Default::default(),
        id: String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_hundred_requests_hold_each_share_of_the_mix() {
        for (door, mix) in [(Door::Http, &HTTP_MIX[..]), (Door::Grpc, &GRPC_MIX[..])] {
            for &(kind, share) in mix {
                let seen = (300..400).filter(|&k| Kind::of(door, k) == kind).count();
                assert_eq!(seen as u64, share, "{door:?} {kind:?}");
            }
        }
    }

    #[test]
    fn bodies_are_json_where_they_should_be() {
        let body = http_body(Kind::Keyed, 3, Some("soak-x-h3"));
        let value: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(value["id"], "soak-x-h3");
        assert!(
            serde_json::from_slice::<serde_json::Value>(&http_body(Kind::Invalid, 1, None))
                .is_err()
        );
        assert!(http_oversized(1000).len() > 1000);
    }
}
