//! The front-door protocols a client speaks to the system, with one spelling each
//! ([`Protocol::as_str`]): the same name is a `protocol` param, a variant of the `stages`
//! suite, part of a peers group and of a latency file's name, a scenario's `protocol` and a
//! value of the load generator's `--protocol`.

use std::{fmt, str::FromStr};

use serde::{Deserialize, Serialize};

/// A front-door protocol.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Protocol {
    /// HTTP/1.1 keep-alive, `POST` of a JSON body.
    Http1,
    /// HTTP/2 with prior knowledge, `POST` of a JSON body.
    H2c,
    /// gRPC `Ingest`: one message per call.
    GrpcUnary,
    /// gRPC `IngestStream`: many messages per call.
    GrpcStream,
}

impl Protocol {
    /// Every protocol, in the order the suites measure them.
    pub const ALL: [Protocol; 4] = [
        Protocol::Http1,
        Protocol::H2c,
        Protocol::GrpcUnary,
        Protocol::GrpcStream,
    ];

    /// The protocol's one name, in files and on command lines.
    pub fn as_str(self) -> &'static str {
        match self {
            Protocol::Http1 => "http1",
            Protocol::H2c => "h2c",
            Protocol::GrpcUnary => "grpc_unary",
            Protocol::GrpcStream => "grpc_stream",
        }
    }

    /// What the protocol sends, for a person (a command line's help).
    pub fn description(self) -> &'static str {
        match self {
            Protocol::Http1 => "HTTP/1.1 keep-alive, `POST` of a JSON body",
            Protocol::H2c => "HTTP/2 with prior knowledge, `POST` of a JSON body",
            Protocol::GrpcUnary => "gRPC `Ingest`: one pre-encoded message per call",
            Protocol::GrpcStream => {
                "gRPC `IngestStream`: `messages_per_stream` pre-encoded messages per call"
            }
        }
    }

    /// The path requests go to unless a scenario names one.
    pub fn default_path(self) -> &'static str {
        match self {
            Protocol::Http1 | Protocol::H2c => "/api/v1/ingest",
            Protocol::GrpcUnary => "/diplom.v1.IngestService/Ingest",
            Protocol::GrpcStream => "/diplom.v1.IngestService/IngestStream",
        }
    }

    /// Whether the protocol is one of gRPC's.
    pub fn is_grpc(self) -> bool {
        matches!(self, Protocol::GrpcUnary | Protocol::GrpcStream)
    }
}

impl fmt::Display for Protocol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A name that is no protocol's.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnknownProtocol(pub String);

impl fmt::Display for UnknownProtocol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let names: Vec<&str> = Protocol::ALL.iter().map(|p| p.as_str()).collect();
        write!(
            f,
            "unknown protocol `{}` (expected one of {})",
            self.0,
            names.join(", ")
        )
    }
}

impl std::error::Error for UnknownProtocol {}

impl FromStr for Protocol {
    type Err = UnknownProtocol;

    fn from_str(name: &str) -> Result<Protocol, UnknownProtocol> {
        Protocol::ALL
            .into_iter()
            .find(|p| p.as_str() == name)
            .ok_or_else(|| UnknownProtocol(name.to_owned()))
    }
}

#[cfg(test)]
mod tests {
    use super::Protocol;

    #[test]
    fn each_protocol_has_one_spelling_in_files_and_names() {
        for protocol in Protocol::ALL {
            let name = protocol.as_str();
            assert_eq!(name.parse::<Protocol>(), Ok(protocol));
            assert_eq!(protocol.to_string(), name);
            let json = serde_json::to_string(&protocol).expect("serializes");
            assert_eq!(json, format!("\"{name}\""));
            let back: Protocol = serde_json::from_str(&json).expect("parses");
            assert_eq!(back, protocol);
        }
    }

    #[test]
    fn the_other_spellings_are_refused_with_the_names_that_exist() {
        for other in ["grpc-unary", "grpcunary", "GrpcStream", "http3"] {
            let err = other.parse::<Protocol>().expect_err(other);
            let text = err.to_string();
            assert!(text.contains(other), "{text}");
            assert!(text.contains("grpc_unary"), "{text}");
        }
        assert!(serde_json::from_str::<Protocol>("\"grpc-unary\"").is_err());
    }
}
