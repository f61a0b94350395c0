//! Every A/B pair of the study, as data ([`PAIRS`]): its group, its baseline variant and
//! optimized variants, the suites that measure it and the metrics it is judged on. The side
//! of a case is looked up here by group and variant ([`side`]), so that every suite labels
//! its cases the same way and the report and the gate can compute ratios. Adding a pair is
//! one entry here, and the code that measures it.

use crate::{
    cases::{Suite, group},
    catalogue::Direction::{self, BiggerIsBetter, SmallerIsBetter},
    results::Side,
    variant::Variant::{self, *},
};

/// One A/B pair.
#[derive(Debug, Clone, Copy)]
pub struct Pair {
    /// The group its cases are in.
    pub group: &'static str,
    /// The reference variant.
    pub baseline: Variant,
    /// The variants measured against it.
    pub optimized: &'static [Variant],
    /// Variants measured beside the pair that are neither side (the nats queue on one
    /// server and replicated on three, which run only where a nats-server is at hand).
    pub unpaired: &'static [Variant],
    /// The suites whose result files hold its cases.
    pub suites: &'static [Suite],
    /// The metrics it is judged on, each with the way it is better.
    pub judged: &'static [Judged],
}

/// A metric a pair is judged on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Judged {
    /// The metric's name in a case.
    pub metric: &'static str,
    /// Which way it is better.
    pub better: Direction,
}

const fn judged(metric: &'static str, better: Direction) -> Judged {
    Judged { metric, better }
}

/// What a micro-benchmark pair is judged on: time, instructions and allocations per
/// operation, each in the suites that measure it.
const MICRO: &[Judged] = &[
    judged("time_per_op", SmallerIsBetter),
    judged("instructions_per_op", SmallerIsBetter),
    judged("allocs_per_op", SmallerIsBetter),
    judged("bytes_per_op", SmallerIsBetter),
];

/// The hop client's pairs also count how often a connection is reused.
const CLIENT: &[Judged] = &[
    judged("time_per_op", SmallerIsBetter),
    judged("allocs_per_op", SmallerIsBetter),
    judged("bytes_per_op", SmallerIsBetter),
    judged("connection_reuse", BiggerIsBetter),
];

/// A load pair: the capacity, the p99 at each load and the server's CPU per message.
const LOAD: &[Judged] = &[
    judged("capacity", BiggerIsBetter),
    judged("p99", SmallerIsBetter),
    judged("server_cpu_per_msg", SmallerIsBetter),
];

const BENCHES: &[Suite] = &[Suite::Criterion, Suite::Callgrind, Suite::Allocations];
const COUNTED: &[Suite] = &[Suite::Callgrind, Suite::Allocations];
const TIMED_AND_ALLOCATED: &[Suite] = &[Suite::Criterion, Suite::Allocations];

const fn pair(
    group: &'static str,
    baseline: Variant,
    optimized: &'static [Variant],
    suites: &'static [Suite],
    judged: &'static [Judged],
) -> Pair {
    Pair {
        group,
        baseline,
        optimized,
        unpaired: &[],
        suites,
        judged,
    }
}

/// Every A/B pair.
pub const PAIRS: &[Pair] = &[
    pair(
        group::QUEUE_PUBLISH_CONSUME,
        Memory,
        &[Pooled],
        BENCHES,
        MICRO,
    ),
    pair(
        group::QUEUE_PUBLISH,
        Memory,
        &[Pooled],
        &[Suite::Criterion],
        MICRO,
    ),
    pair(
        group::QUEUE_THREADS,
        Memory,
        &[Pooled],
        &[Suite::Criterion],
        MICRO,
    ),
    pair(group::CODEC_ENCODE, Json, &[Protobuf], BENCHES, MICRO),
    pair(group::CODEC_DECODE, Json, &[Protobuf], BENCHES, MICRO),
    pair(group::WORKER_POOL, Memory, &[Pooled], BENCHES, MICRO),
    pair(
        group::WORKER_POOL_MODE,
        Baseline,
        &[Batched],
        BENCHES,
        MICRO,
    ),
    pair(
        group::CLIENT_MODE,
        Baseline,
        &[Pooled],
        TIMED_AND_ALLOCATED,
        CLIENT,
    ),
    pair(
        group::CLIENT_PROTOCOL,
        Http1,
        &[H2c],
        TIMED_AND_ALLOCATED,
        CLIENT,
    ),
    pair(
        group::CLIENT_CODEC,
        Json,
        &[Protobuf],
        TIMED_AND_ALLOCATED,
        CLIENT,
    ),
    pair(
        group::CLIENT_BATCHING,
        Unbatched,
        &[Batched],
        TIMED_AND_ALLOCATED,
        CLIENT,
    ),
    pair(
        group::PROTOCOL_ROUND_TRIP,
        Http1,
        &[H2c, GrpcUnary, GrpcStream],
        COUNTED,
        MICRO,
    ),
    // TLS is not an optimization but the other side of its pair: what it costs is read as
    // TLS ÷ plaintext like every other ratio.
    pair(
        group::HOP_NEW_CONNECTION,
        Plain,
        &[TlsFull, TlsResumed],
        COUNTED,
        MICRO,
    ),
    pair(
        group::LOAD_INGRESS,
        Http1,
        &[H2c, GrpcUnary, GrpcStream],
        &[Suite::Load],
        LOAD,
    ),
    pair(group::LOAD_VS_BARE, Bare, &[System], &[Suite::Load], LOAD),
    Pair {
        unpaired: &[Nats, NatsR3],
        ..pair(group::LOAD_QUEUE, Memory, &[Pooled], &[Suite::Load], LOAD)
    },
    pair(
        group::LOAD_CLIENT,
        Baseline,
        &[Pooled],
        &[Suite::Load],
        LOAD,
    ),
    pair(
        group::LOAD_HOP_PROTOCOL,
        Http1,
        &[H2c],
        &[Suite::Load],
        LOAD,
    ),
    pair(
        group::LOAD_HOP_CODEC,
        Json,
        &[Protobuf],
        &[Suite::Load],
        LOAD,
    ),
    pair(
        group::LOAD_HOP_BATCHING,
        Unbatched,
        &[Batched],
        &[Suite::Load],
        LOAD,
    ),
    pair(
        group::LOAD_ALLOCATOR,
        Glibc,
        &[Mimalloc],
        &[Suite::Load],
        LOAD,
    ),
    pair(group::LOAD_HOP_TLS, Plain, &[Tls], &[Suite::Load], LOAD),
    pair(
        group::LOAD_HOP_TLS_BASELINE,
        Plain,
        &[Tls],
        &[Suite::Load],
        LOAD,
    ),
];

impl Pair {
    /// Whether `variant` is measured in this pair (on a side or beside it).
    pub fn has(&self, variant: Variant) -> bool {
        self.variants().any(|v| v == variant)
    }

    /// Every variant, the baseline first, then the optimized ones, then the unpaired.
    pub fn variants(&self) -> impl Iterator<Item = Variant> + use<> {
        std::iter::once(self.baseline)
            .chain(self.optimized.iter().copied())
            .chain(self.unpaired.iter().copied())
    }

    /// The side of `variant`, `None` for a variant on neither side.
    pub fn side_of(&self, variant: Variant) -> Option<Side> {
        if variant == self.baseline {
            Some(Side::Baseline)
        } else if self.optimized.contains(&variant) {
            Some(Side::Optimized)
        } else {
            None
        }
    }
}

/// The pair of `group`.
pub fn pair_of(group: &str) -> Option<&'static Pair> {
    PAIRS.iter().find(|p| p.group == group)
}

/// The side of the variant named `variant` in the pair of `group`, or `None` when the group
/// is no pair or the variant on neither side (or no variant at all).
pub fn side(group: &str, variant: &str) -> Option<Side> {
    pair_of(group)?.side_of(variant.parse().ok()?)
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use super::{PAIRS, side};
    use crate::{catalogue::direction, results::Side, variant::Variant};

    /// A pair's variants are written to result files by name and read back by name.
    #[test]
    fn every_variant_of_a_pair_round_trips_through_its_name() {
        for pair in PAIRS {
            for variant in pair.variants() {
                assert_eq!(variant.as_str().parse::<Variant>(), Ok(variant));
                assert_eq!(
                    side(pair.group, variant.as_str()),
                    pair.side_of(variant),
                    "{} {variant}",
                    pair.group
                );
            }
        }
    }

    #[test]
    fn no_group_or_case_is_listed_twice() {
        let mut groups = BTreeSet::new();
        let mut cases = BTreeSet::new();
        for pair in PAIRS {
            assert!(groups.insert(pair.group), "{} twice", pair.group);
            for variant in pair.variants() {
                assert!(
                    cases.insert((pair.group, variant)),
                    "{} {variant} twice",
                    pair.group
                );
            }
        }
    }

    #[test]
    fn every_judged_metric_goes_the_way_the_catalogue_says() {
        for pair in PAIRS {
            assert!(!pair.suites.is_empty(), "{}", pair.group);
            for judged in pair.judged {
                assert_eq!(
                    direction(judged.metric),
                    Some(judged.better),
                    "{} {}",
                    pair.group,
                    judged.metric
                );
            }
        }
    }

    #[test]
    fn a_side_belongs_to_a_group_and_a_variant_together() {
        assert_eq!(side("hop/new_connection", "plain"), Some(Side::Baseline));
        for tls in ["tls_full", "tls_resumed"] {
            assert_eq!(
                side("hop/new_connection", tls),
                Some(Side::Optimized),
                "{tls}"
            );
        }
        assert_eq!(side("load/hop_tls", "tls"), Some(Side::Optimized));
        // `system` is the optimized side against the bare server, but no side of a soak.
        assert_eq!(side("load/vs_bare", "system"), Some(Side::Optimized));
        assert_eq!(side("soak/process", "system"), None);
        // The nats queue, on one server and replicated on three, is measured beside its
        // pair, on neither side.
        assert_eq!(side("load/queue", "nats"), None);
        assert_eq!(side("load/queue", "nats_r3"), None);
        let queue = super::pair_of("load/queue").expect("the queue pair");
        assert!(queue.has(Variant::Nats) && queue.has(Variant::NatsR3));
        assert_eq!(side("load/queue", "memory"), Some(Side::Baseline));
        // `stages` names its cases by protocol; none is a side.
        assert_eq!(side("stages", "http1"), None);
    }
}
