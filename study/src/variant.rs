//! The variants of the study's cases, with one spelling each ([`Variant::as_str`]): the
//! sides of every A/B pair, the tools and servers the peers run compares, and the doors and
//! queues a soak run reports on. A suite writes a case's variant with `as_str`, and the
//! catalogue ([`crate::pairs::PAIRS`], [`crate::cases::OTHER_GROUPS`]) lists variants by this
//! type, so a name can only be spelled the one way. Names a group leaves open (the `system`
//! binary's settings, a soak run's processes and pass criteria) are no variants here.

use std::{fmt, str::FromStr};

use crate::protocol::Protocol;

/// A variant of a case.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Variant {
    /// The in-memory queue (the queue pairs' baseline).
    Memory,
    /// The pooled queue, or the pooled hop client.
    Pooled,
    /// The NATS JetStream queue on one server, measured beside the queue pair.
    Nats,
    /// The NATS JetStream queue with its stream replicated on a cluster of three servers,
    /// measured beside the queue pair.
    NatsR3,
    /// JSON, as a codec.
    Json,
    /// Protocol Buffers, as a codec.
    Protobuf,
    /// The baseline mode of the worker pool or the hop client.
    Baseline,
    /// Batched work: the worker pool's batched mode, or the hop client with batching.
    Batched,
    /// The hop client without batching.
    Unbatched,
    /// HTTP/1.1, as a front-door or hop protocol.
    Http1,
    /// HTTP/2 with prior knowledge, as a front-door or hop protocol.
    H2c,
    /// gRPC `Ingest`, one message per call.
    GrpcUnary,
    /// gRPC `IngestStream`, many messages per call.
    GrpcStream,
    /// The system on glibc's allocator.
    Glibc,
    /// The system on mimalloc.
    Mimalloc,
    /// The bare server: the same protocol with no work behind it.
    Bare,
    /// The whole system.
    System,
    /// The system's gateway, measured by the peers run against the bare server.
    Gateway,
    /// The gateway's result divided by the bare server's.
    GatewayOverBare,
    /// Plaintext on the hop.
    Plain,
    /// TLS on the hop.
    Tls,
    /// TLS with a full handshake on every connection.
    TlsFull,
    /// TLS resuming the session of the previous connection.
    TlsResumed,
    /// Our load generator.
    Ours,
    /// The wrk load generator.
    Wrk,
    /// The h2load load generator.
    H2load,
    /// Our generator's result divided by wrk's.
    OursOverWrk,
    /// Our generator's result divided by h2load's.
    OursOverH2load,
    /// The HTTP door of a soak run.
    Http,
    /// The gRPC door of a soak run.
    Grpc,
}

impl Variant {
    /// Every variant.
    pub const ALL: [Variant; 30] = [
        Variant::Memory,
        Variant::Pooled,
        Variant::Nats,
        Variant::NatsR3,
        Variant::Json,
        Variant::Protobuf,
        Variant::Baseline,
        Variant::Batched,
        Variant::Unbatched,
        Variant::Http1,
        Variant::H2c,
        Variant::GrpcUnary,
        Variant::GrpcStream,
        Variant::Glibc,
        Variant::Mimalloc,
        Variant::Bare,
        Variant::System,
        Variant::Gateway,
        Variant::GatewayOverBare,
        Variant::Plain,
        Variant::Tls,
        Variant::TlsFull,
        Variant::TlsResumed,
        Variant::Ours,
        Variant::Wrk,
        Variant::H2load,
        Variant::OursOverWrk,
        Variant::OursOverH2load,
        Variant::Http,
        Variant::Grpc,
    ];

    /// The variant's one name, in result files.
    pub fn as_str(self) -> &'static str {
        match self {
            Variant::Memory => "memory",
            Variant::Pooled => "pooled",
            Variant::Nats => "nats",
            Variant::NatsR3 => "nats_r3",
            Variant::Json => "json",
            Variant::Protobuf => "protobuf",
            Variant::Baseline => "baseline",
            Variant::Batched => "batched",
            Variant::Unbatched => "unbatched",
            Variant::Http1 => Protocol::Http1.as_str(),
            Variant::H2c => Protocol::H2c.as_str(),
            Variant::GrpcUnary => Protocol::GrpcUnary.as_str(),
            Variant::GrpcStream => Protocol::GrpcStream.as_str(),
            Variant::Glibc => "glibc",
            Variant::Mimalloc => "mimalloc",
            Variant::Bare => "bare",
            Variant::System => "system",
            Variant::Gateway => "gateway",
            Variant::GatewayOverBare => "gateway/bare",
            Variant::Plain => "plain",
            Variant::Tls => "tls",
            Variant::TlsFull => "tls_full",
            Variant::TlsResumed => "tls_resumed",
            Variant::Ours => "ours",
            Variant::Wrk => "wrk",
            Variant::H2load => "h2load",
            Variant::OursOverWrk => "ours/wrk",
            Variant::OursOverH2load => "ours/h2load",
            Variant::Http => "http",
            Variant::Grpc => "grpc",
        }
    }

    /// The protocol this variant is, for the variants named by a protocol.
    pub fn protocol(self) -> Option<Protocol> {
        match self {
            Variant::Http1 => Some(Protocol::Http1),
            Variant::H2c => Some(Protocol::H2c),
            Variant::GrpcUnary => Some(Protocol::GrpcUnary),
            Variant::GrpcStream => Some(Protocol::GrpcStream),
            _ => None,
        }
    }
}

impl From<Protocol> for Variant {
    fn from(protocol: Protocol) -> Variant {
        match protocol {
            Protocol::Http1 => Variant::Http1,
            Protocol::H2c => Variant::H2c,
            Protocol::GrpcUnary => Variant::GrpcUnary,
            Protocol::GrpcStream => Variant::GrpcStream,
        }
    }
}

impl fmt::Display for Variant {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A name that is no variant's.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnknownVariant(pub String);

impl fmt::Display for UnknownVariant {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let names: Vec<&str> = Variant::ALL.iter().map(|v| v.as_str()).collect();
        write!(
            f,
            "unknown variant `{}` (expected one of {})",
            self.0,
            names.join(", ")
        )
    }
}

impl std::error::Error for UnknownVariant {}

impl FromStr for Variant {
    type Err = UnknownVariant;

    fn from_str(name: &str) -> Result<Variant, UnknownVariant> {
        Variant::ALL
            .into_iter()
            .find(|v| v.as_str() == name)
            .ok_or_else(|| UnknownVariant(name.to_owned()))
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::Variant;
    use crate::protocol::Protocol;

    #[test]
    fn no_two_variants_share_a_spelling_and_each_parses_back() {
        let mut seen = BTreeMap::new();
        for variant in Variant::ALL {
            let name = variant.as_str();
            if let Some(other) = seen.insert(name, variant) {
                panic!("{variant:?} and {other:?} are both `{name}`");
            }
            assert_eq!(name.parse::<Variant>(), Ok(variant));
            assert_eq!(variant.to_string(), name);
        }
    }

    #[test]
    fn a_protocol_is_the_variant_of_the_same_name() {
        for protocol in Protocol::ALL {
            let variant = Variant::from(protocol);
            assert_eq!(variant.as_str(), protocol.as_str());
            assert_eq!(variant.protocol(), Some(protocol));
        }
        let named_by_protocol = Variant::ALL.iter().filter(|v| v.protocol().is_some());
        assert_eq!(named_by_protocol.count(), Protocol::ALL.len());
    }

    #[test]
    fn other_spellings_are_refused_with_the_names_that_exist() {
        for other in ["grpc-unary", "Pooled", "tls-full", "ours_wrk", ""] {
            let err = other.parse::<Variant>().expect_err(other);
            assert!(err.to_string().contains("tls_full"), "{err}");
        }
    }
}
