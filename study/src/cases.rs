//! Every case a suite writes, by name: the suites ([`Suite`]), the group names ([`group`]),
//! the names of a suite's own that are no variant ([`shape`], [`ATTACKS`]), and the groups
//! that are no A/B pair ([`OTHER_GROUPS`]; the pairs are in [`crate::pairs::PAIRS`]). A
//! result file that names a case not listed here, or in the pairs table, was written by
//! code that forgot to tell the catalogue ([`crate::check::unknown`]).

use crate::{
    protocol::Protocol,
    variant::Variant::{self, *},
};

/// A suite: a command that writes `reports/results/<suite>.json`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Suite {
    /// Time per operation (criterion), `cargo xtask bench`.
    Criterion,
    /// Instructions per operation (gungraun), `cargo xtask bench` and the gate.
    Callgrind,
    /// Allocations per operation (`harness --bin allocs`), `cargo xtask bench` and the gate.
    Allocations,
    /// The system under load against itself and the bare servers (`harness system-load`).
    Load,
    /// Our generator against wrk and h2load (`harness peers`).
    Peers,
    /// CPU per message by stage (`harness stages`).
    Stages,
    /// The end-to-end checks of `cargo xtask smoke`.
    Smoke,
    /// The long run of `cargo xtask soak`.
    Soak,
    /// One address's attacks against a client from another (`harness abuse`).
    Abuse,
    /// The `system` binary's defaults.
    Defaults,
}

impl Suite {
    /// Every suite.
    pub const ALL: [Suite; 10] = [
        Suite::Criterion,
        Suite::Callgrind,
        Suite::Allocations,
        Suite::Load,
        Suite::Peers,
        Suite::Stages,
        Suite::Smoke,
        Suite::Soak,
        Suite::Abuse,
        Suite::Defaults,
    ];

    /// The suite's name: its file is `<name>.json`.
    pub fn as_str(self) -> &'static str {
        match self {
            Suite::Criterion => "criterion",
            Suite::Callgrind => "callgrind",
            Suite::Allocations => "allocations",
            Suite::Load => "load",
            Suite::Peers => "peers",
            Suite::Stages => "stages",
            Suite::Smoke => "smoke",
            Suite::Soak => "soak",
            Suite::Abuse => "abuse",
            Suite::Defaults => "defaults",
        }
    }

    /// The suite named `name`.
    pub fn named(name: &str) -> Option<Suite> {
        Suite::ALL.into_iter().find(|s| s.as_str() == name)
    }

    /// `results/<suite>.json`, as the report names a file.
    pub fn file(self) -> String {
        format!("results/{}.json", self.as_str())
    }
}

/// The name of every group.
pub mod group {
    use crate::protocol::Protocol;

    /// Publish then consume one message, single-threaded.
    pub const QUEUE_PUBLISH_CONSUME: &str = "queue/publish_consume";
    /// Publish one message.
    pub const QUEUE_PUBLISH: &str = "queue/publish";
    /// Hand-off between producer and consumer threads (params `producers`, `consumers`).
    pub const QUEUE_THREADS: &str = "queue/threads";
    /// Encode one message.
    pub const CODEC_ENCODE: &str = "codec/encode";
    /// Decode one message.
    pub const CODEC_DECODE: &str = "codec/decode";
    /// One 8 MiB stream message on the gRPC front door's way (read in place, checked,
    /// written into a hop request), by shape (see [`super::shape`]).
    pub const CODEC_STREAM_SHAPE: &str = "codec/stream_shape";
    /// One 8 MiB stream message end to end through an in-process system (the gRPC front
    /// door, the hop, the processor, the queue) until its answer, by shape.
    pub const CLIENT_STREAM_SHAPE: &str = "client/stream_shape";
    /// The worker pool on each queue.
    pub const WORKER_POOL: &str = "worker_pool";
    /// The worker pool's modes.
    pub const WORKER_POOL_MODE: &str = "worker_pool/mode";
    /// The hop client's modes.
    pub const CLIENT_MODE: &str = "client/mode";
    /// The hop client's protocols.
    pub const CLIENT_PROTOCOL: &str = "client/protocol";
    /// The hop client's codecs.
    pub const CLIENT_CODEC: &str = "client/codec";
    /// The hop client with and without batching.
    pub const CLIENT_BATCHING: &str = "client/batching";
    /// One request through the whole system, by front-door protocol.
    pub const PROTOCOL_ROUND_TRIP: &str = "protocol/round_trip";
    /// One hop request on a new connection, plaintext and TLS.
    pub const HOP_NEW_CONNECTION: &str = "hop/new_connection";
    /// The front-door protocols under load.
    pub const LOAD_INGRESS: &str = "load/ingress";
    /// The system against the bare servers, per protocol.
    pub const LOAD_VS_BARE: &str = "load/vs_bare";
    /// The queues under load.
    pub const LOAD_QUEUE: &str = "load/queue";
    /// The hop client's modes under load.
    pub const LOAD_CLIENT: &str = "load/client";
    /// The hop's protocols under load.
    pub const LOAD_HOP_PROTOCOL: &str = "load/hop_protocol";
    /// The hop's codecs under load.
    pub const LOAD_HOP_CODEC: &str = "load/hop_codec";
    /// The hop with and without batching under load.
    pub const LOAD_HOP_BATCHING: &str = "load/hop_batching";
    /// The system's allocators under load.
    pub const LOAD_ALLOCATOR: &str = "load/allocator";
    /// TLS on the hop of the pooled client under load.
    pub const LOAD_HOP_TLS: &str = "load/hop_tls";
    /// TLS on the hop of the baseline client (a handshake per message) under load.
    pub const LOAD_HOP_TLS_BASELINE: &str = "load/hop_tls_baseline";
    /// CPU per message by stage; its variants are the protocols.
    pub const STAGES: &str = "stages";
    /// The `system` binary's defaults; its variants are the settings.
    pub const DEFAULTS: &str = "defaults";
    /// Smoke: `/health` over h2c prior knowledge.
    pub const SMOKE_H2C_HEALTH: &str = "h2c_health";
    /// Smoke: gRPC reflection lists the ingest service.
    pub const SMOKE_GRPC_REFLECTION: &str = "grpc_reflection";
    /// Smoke: the trace endpoint answers with its phases.
    pub const SMOKE_TRACE: &str = "trace";
    /// Soak: each pass criterion of the run.
    pub const SOAK_CRITERIA: &str = "soak/criteria";
    /// Soak: memory and descriptors of each process.
    pub const SOAK_PROCESS: &str = "soak/process";
    /// Soak: what was accepted, processed, lost, in each phase.
    pub const SOAK_DELIVERY: &str = "soak/delivery";
    /// Soak: accepted and processed minute by minute, in each phase.
    pub const SOAK_PROGRESS: &str = "soak/progress";
    /// Soak: the answers of each door by kind.
    pub const SOAK_ANSWERS: &str = "soak/answers";
    /// Soak: the latency of each door minute by minute.
    pub const SOAK_LATENCY: &str = "soak/latency";
    /// Soak: each part of the client contract, by door.
    pub const SOAK_CONTRACT: &str = "soak/contract";
    /// Abuse: each attack, with what the victim saw and what the server held meanwhile.
    pub const ABUSE: &str = "abuse";
    /// Prefix of the peers groups: `peers/<protocol>`.
    pub const PEERS: &str = "peers/";
    /// Prefix of the gateway-against-bare groups of the peers run.
    pub const GATEWAY_VS_BARE: &str = "gateway_vs_bare/";

    /// Our generator against a peer tool for `protocol`.
    pub fn peers(protocol: Protocol) -> String {
        format!("{PEERS}{protocol}")
    }

    /// The gateway against the bare server for `protocol`, measured by the peers run.
    pub fn gateway_vs_bare(protocol: Protocol) -> String {
        format!("{GATEWAY_VS_BARE}{protocol}")
    }
}

/// The shapes of a message measured by [`group::CODEC_STREAM_SHAPE`] and
/// [`group::CLIENT_STREAM_SHAPE`].
pub mod shape {
    /// Its bytes carried in `data`: the typical shape.
    pub const DATA: &str = "data";
    /// As many metadata entries as a message may hold among two-byte unknown fields: the
    /// worst shape for a reader that looks at a message more than once.
    pub const UNKNOWN_FIELDS: &str = "unknown_fields";
}

/// The attacks of the abuse suite, in the order it runs them; each is a variant of
/// [`group::ABUSE`].
pub const ATTACKS: [&str; 7] = [
    "declared-bodies",
    "slow-bodies",
    "grpc-partial",
    "grpc-health",
    "greeting-only",
    "connection-flood",
    "early-refusals",
];

/// A group that is no A/B pair, and which variants it has.
#[derive(Debug, Clone, Copy)]
pub struct OtherGroup {
    /// The suite writing it.
    pub suite: Suite,
    /// Its name.
    pub name: Name,
    /// Its variants.
    pub variants: Variants,
}

/// How a group is named.
#[derive(Debug, Clone, Copy)]
pub enum Name {
    /// One name.
    Fixed(&'static str),
    /// A prefix and a protocol: one group per protocol.
    PerProtocol(&'static str),
}

/// Which variants a group has.
#[derive(Debug, Clone, Copy)]
pub enum Variants {
    /// These.
    Listed(&'static [Variant]),
    /// One per protocol.
    Protocols,
    /// These names, which are no [`Variant`]: each is one of a list that belongs to its
    /// suite alone (a soak run's pass criteria, the parts of the client contract, the
    /// attacks of the abuse suite, the shapes of a message).
    Names(&'static [&'static str]),
    /// Names the catalogue does not fix: the settings of the `system` binary, the processes
    /// of a soak run.
    Open,
}

/// Every group that is no A/B pair.
pub const OTHER_GROUPS: &[OtherGroup] = &[
    other(
        Suite::Criterion,
        Name::Fixed(group::CODEC_STREAM_SHAPE),
        Variants::Names(&[shape::DATA, shape::UNKNOWN_FIELDS]),
    ),
    other(
        Suite::Criterion,
        Name::Fixed(group::CLIENT_STREAM_SHAPE),
        Variants::Names(&[shape::DATA, shape::UNKNOWN_FIELDS]),
    ),
    other(
        Suite::Peers,
        Name::PerProtocol(group::PEERS),
        Variants::Listed(&[Ours, Wrk, H2load, OursOverWrk, OursOverH2load]),
    ),
    other(
        Suite::Peers,
        Name::PerProtocol(group::GATEWAY_VS_BARE),
        Variants::Listed(&[Bare, Gateway, GatewayOverBare]),
    ),
    other(
        Suite::Stages,
        Name::Fixed(group::STAGES),
        Variants::Protocols,
    ),
    other(
        Suite::Defaults,
        Name::Fixed(group::DEFAULTS),
        Variants::Open,
    ),
    other(
        Suite::Smoke,
        Name::Fixed(group::SMOKE_H2C_HEALTH),
        Variants::Listed(&[System]),
    ),
    other(
        Suite::Smoke,
        Name::Fixed(group::SMOKE_GRPC_REFLECTION),
        Variants::Listed(&[System]),
    ),
    other(
        Suite::Smoke,
        Name::Fixed(group::SMOKE_TRACE),
        Variants::Listed(&[System]),
    ),
    other(
        Suite::Soak,
        Name::Fixed(group::SOAK_CRITERIA),
        Variants::Names(&["rss_flat", "accepted_equals_processed", "documented_errors"]),
    ),
    other(
        Suite::Soak,
        Name::Fixed(group::SOAK_PROCESS),
        Variants::Open,
    ),
    other(
        Suite::Soak,
        Name::Fixed(group::SOAK_DELIVERY),
        Variants::Listed(&[Memory, Nats]),
    ),
    other(
        Suite::Soak,
        Name::Fixed(group::SOAK_PROGRESS),
        Variants::Listed(&[Memory, Nats]),
    ),
    other(
        Suite::Soak,
        Name::Fixed(group::SOAK_ANSWERS),
        Variants::Listed(&[Http, Grpc]),
    ),
    other(
        Suite::Soak,
        Name::Fixed(group::SOAK_LATENCY),
        Variants::Listed(&[Http, Grpc]),
    ),
    other(
        Suite::Soak,
        Name::Fixed(group::SOAK_CONTRACT),
        Variants::Names(&[
            "id_kept",
            "retry_duplicate",
            "invalid_refused",
            "oversized_refused",
            "retry_after",
            "json_error",
        ]),
    ),
    other(
        Suite::Abuse,
        Name::Fixed(group::ABUSE),
        Variants::Names(&ATTACKS),
    ),
];

const fn other(suite: Suite, name: Name, variants: Variants) -> OtherGroup {
    OtherGroup {
        suite,
        name,
        variants,
    }
}

impl OtherGroup {
    /// Whether `group` / `variant` is a case of this group.
    pub fn has(&self, group: &str, variant: &str) -> bool {
        let named = match self.name {
            Name::Fixed(name) => group == name,
            Name::PerProtocol(prefix) => group
                .strip_prefix(prefix)
                .is_some_and(|p| p.parse::<Protocol>().is_ok()),
        };
        named
            && match self.variants {
                Variants::Listed(variants) => variant
                    .parse::<Variant>()
                    .is_ok_and(|v| variants.contains(&v)),
                Variants::Names(names) => names.contains(&variant),
                Variants::Protocols => variant.parse::<Protocol>().is_ok(),
                Variants::Open => true,
            }
    }
}

#[cfg(test)]
mod tests {
    /// A name a group lists as no variant is none: each variant has its one spelling in
    /// `Variant`, not a second one in a list of names.
    #[test]
    fn the_names_that_are_no_variant_are_none() {
        use super::{OTHER_GROUPS, Variants};
        for group in OTHER_GROUPS {
            if let Variants::Names(names) = group.variants {
                for name in names {
                    assert!(name.parse::<crate::variant::Variant>().is_err(), "{name}");
                }
            }
        }
    }
}
