//! The targets the study set itself for its pairs, as data: which pair, which metric, what
//! is compared (a ratio, one side's value, the best of the pair, the worst case of a side),
//! and the bound it must keep; and the targets every attack of the abuse suite is held to
//! ([`ATTACK_TARGETS`]), with the memory a process may hold beyond its budget
//! ([`RSS_OVERHEAD`]); and what a message's worst shape may cost against its typical one
//! ([`WORST_SHAPE`]). The report judges them; the thresholds live here only.

use crate::{
    cases::{Suite, group, shape},
    results::Case,
    variant::Variant,
};

/// One target of a pair.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Target {
    /// What is aimed at, for a person.
    pub what: &'static str,
    /// The bound, for a person.
    pub goal: &'static str,
    /// The suite that measures it.
    pub suite: Suite,
    /// The pair's group.
    pub group: &'static str,
    /// The metric compared.
    pub metric: &'static str,
    /// What of the pair is compared.
    pub of: Of,
    /// Params the compared cases have (the first cases of the variants when none has).
    pub params: &'static [(&'static str, &'static str)],
    /// The bound.
    pub bound: Bound,
}

/// What of a pair a target compares.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Of {
    /// The optimized variant ÷ the baseline.
    Ratio {
        /// The optimized variant.
        optimized: Variant,
    },
    /// One variant's value.
    Value(Variant),
    /// The smallest value of any variant.
    Best,
    /// The largest value of any case of this variant.
    Worst(Variant),
}

/// The bound a target keeps.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Bound {
    /// At most this.
    AtMost(f64),
    /// At least this.
    AtLeast(f64),
    /// More than this.
    Above(f64),
    /// Less than this.
    Below(f64),
    /// Exactly this.
    Exactly(f64),
}

impl Bound {
    /// Whether `value` keeps the bound.
    pub fn met(self, value: f64) -> bool {
        match self {
            Bound::AtMost(limit) => value <= limit,
            Bound::AtLeast(limit) => value >= limit,
            Bound::Above(limit) => value > limit,
            Bound::Below(limit) => value < limit,
            Bound::Exactly(limit) => value == limit,
        }
    }

    /// The limit.
    pub fn limit(self) -> f64 {
        match self {
            Bound::AtMost(l)
            | Bound::AtLeast(l)
            | Bound::Above(l)
            | Bound::Below(l)
            | Bound::Exactly(l) => l,
        }
    }
}

const POOLED: Of = Of::Ratio {
    optimized: Variant::Pooled,
};

/// The queue pair allocates at least 30% less.
pub const QUEUE_ALLOCATIONS: Target = Target {
    what: "Allocations −30% (queue pair)",
    goal: "ratio ≤ 0.70",
    suite: Suite::Allocations,
    group: group::QUEUE_PUBLISH_CONSUME,
    metric: "allocs_per_op",
    of: POOLED,
    params: &[],
    bound: Bound::AtMost(0.7),
};

/// The pooled queue takes at most 60% of the baseline's time.
pub const QUEUE_TIME: Target = Target {
    what: "Pooled queue time per publish+consume",
    goal: "≤ 0.60× the baseline",
    suite: Suite::Criterion,
    group: group::QUEUE_PUBLISH_CONSUME,
    metric: "time_per_op",
    of: POOLED,
    params: &[],
    bound: Bound::AtMost(0.6),
};

/// The pooled queue allocates nothing per message once warm.
pub const QUEUE_ZERO_ALLOCATIONS: Target = Target {
    what: "Pooled queue allocations once warm",
    goal: "0 per message",
    suite: Suite::Allocations,
    group: group::QUEUE_PUBLISH_CONSUME,
    metric: "allocs_per_op",
    of: Of::Value(Variant::Pooled),
    params: &[],
    bound: Bound::Exactly(0.0),
};

/// A message handed from one thread to another costs a fifth of the baseline's.
pub const HANDOFF: Target = Target {
    what: "Cross-thread hand-off (1 producer → 1 consumer)",
    goal: "pooled ≤ 0.20× the baseline (5× cheaper)",
    suite: Suite::Criterion,
    group: group::QUEUE_THREADS,
    metric: "time_per_op",
    of: POOLED,
    params: &[("producers", "1"), ("consumers", "1")],
    bound: Bound::AtMost(0.2),
};

/// The worker pool's time per message on its better queue.
pub const WORKER_POOL_TIME: Target = Target {
    what: "Worker pool per message",
    goal: "≤ 284 ns",
    suite: Suite::Criterion,
    group: group::WORKER_POOL,
    metric: "time_per_op",
    of: Of::Best,
    params: &[],
    bound: Bound::AtMost(284.0),
};

/// The pooled client reuses its connections (the original success metric).
pub const CONNECTION_REUSE: Target = Target {
    what: "Connection reuse > 80% (pooled client)",
    goal: "> 0.80 (harness target ≥ 0.99)",
    suite: Suite::Load,
    group: group::LOAD_CLIENT,
    metric: "connection_reuse",
    of: Of::Value(Variant::Pooled),
    params: &[],
    bound: Bound::Above(0.8),
};

/// The pooled client reuses its connections under load (the harness's target).
pub const CONNECTION_REUSE_UNDER_LOAD: Target = Target {
    what: "Connection reuse under load (pooled client)",
    goal: "≥ 0.99",
    bound: Bound::AtLeast(0.99),
    ..CONNECTION_REUSE
};

/// The system's capacity against the bare server's under the load of one protocol.
const fn vs_bare(
    what: &'static str,
    goal: &'static str,
    params: &'static [(&'static str, &'static str)],
    least: f64,
) -> Target {
    Target {
        what,
        goal,
        suite: Suite::Load,
        group: group::LOAD_VS_BARE,
        metric: "capacity",
        of: Of::Ratio {
            optimized: Variant::System,
        },
        params,
        bound: Bound::AtLeast(least),
    }
}

/// The system's capacity against the bare server's, per protocol.
pub const VS_BARE_CAPACITY: [Target; 4] = [
    vs_bare(
        "HTTP/1.1 ingest against the bare server (capacity)",
        "≥ 0.70× bare",
        &[("protocol", "http1"), ("measure", "capacity")],
        0.7,
    ),
    vs_bare(
        "h2c ingest against the bare server (capacity)",
        "≥ 0.70× bare",
        &[("protocol", "h2c"), ("measure", "capacity")],
        0.7,
    ),
    vs_bare(
        "gRPC unary against the bare server (capacity)",
        "≥ 0.60× bare",
        &[("protocol", "grpc_unary"), ("measure", "capacity")],
        0.6,
    ),
    vs_bare(
        "gRPC stream against the bare server (capacity)",
        "≥ 0.50× bare",
        &[("protocol", "grpc_stream"), ("measure", "capacity")],
        0.5,
    ),
];

/// The system's p99 at half its capacity against the bare server's at that rate, for every
/// protocol (the protocol is added to `params` per protocol).
pub const VS_BARE_P99: Target = Target {
    what: "p99 at 50% of the system's capacity against the bare server at that rate",
    goal: "≤ 2× bare",
    suite: Suite::Load,
    group: group::LOAD_VS_BARE,
    metric: "p99",
    of: Of::Ratio {
        optimized: Variant::System,
    },
    params: &[("measure", "latency"), ("load", "50%")],
    bound: Bound::AtMost(2.0),
};

/// Resident memory the system's process may hold at capacity: code, runtime, pools and
/// caches, with what its requests hold meanwhile.
pub const BASE_RSS: u64 = 32 << 20;

/// The system's peak memory at capacity, the largest of every protocol.
pub const PEAK_MEMORY: Target = Target {
    what: "Peak memory of the system at capacity",
    goal: "≤ 32 MiB",
    suite: Suite::Load,
    group: group::LOAD_VS_BARE,
    metric: "server_peak_rss",
    of: Of::Worst(Variant::System),
    params: &[],
    bound: Bound::AtMost(BASE_RSS as f64),
};

/// Every target of a pair.
pub const ALL: [&Target; 13] = [
    &QUEUE_ALLOCATIONS,
    &QUEUE_TIME,
    &QUEUE_ZERO_ALLOCATIONS,
    &HANDOFF,
    &WORKER_POOL_TIME,
    &CONNECTION_REUSE,
    &CONNECTION_REUSE_UNDER_LOAD,
    &VS_BARE_CAPACITY[0],
    &VS_BARE_CAPACITY[1],
    &VS_BARE_CAPACITY[2],
    &VS_BARE_CAPACITY[3],
    &VS_BARE_P99,
    &PEAK_MEMORY,
];

/// Connections one client address keeps open at most: the system's default
/// `MAX_CONNECTIONS_PER_CLIENT`.
pub const CLIENT_CONNECTIONS: u64 = 512;
/// What one open connection holds beyond the bytes charged to the budget: its read and
/// write buffers, its task, its HTTP/2 state (frames and flow-control windows of the
/// protocol's default size).
pub const CONNECTION_RSS: u64 = 64 << 10;
/// The resident memory a process may hold beyond its `MEMORY_BUDGET` (which bounds what
/// requests hold in flight): the process itself at capacity ([`BASE_RSS`]) and every
/// connection one address may keep open ([`CLIENT_CONNECTIONS`] × [`CONNECTION_RSS`]).
/// The README's Limits section states it.
pub const RSS_OVERHEAD: u64 = BASE_RSS + CLIENT_CONNECTIONS * CONNECTION_RSS;

/// A target every attack of the abuse suite is held to, judged on the attack's case.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct AttackTarget {
    /// What is aimed at, for a person.
    pub what: &'static str,
    /// The bound, for a person.
    pub goal: &'static str,
    /// What of the case is compared.
    pub value: Value,
    /// The bound.
    pub bound: Bound,
}

/// What of an attack's case a target compares.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Value {
    /// One metric.
    Metric(&'static str),
    /// One metric less another.
    Excess {
        /// The metric.
        of: &'static str,
        /// What is taken from it.
        over: &'static str,
    },
}

impl AttackTarget {
    /// The value compared in `case`, when it has the metrics.
    pub fn measured(&self, case: &Case) -> Option<f64> {
        let metric = |name: &str| case.metrics.get(name).map(|m| m.median);
        match self.value {
            Value::Metric(name) => metric(name),
            Value::Excess { of, over } => Some(metric(of)? - metric(over)?),
        }
    }

    /// Whether `case` keeps the target (`None`: not measured).
    pub fn met(&self, case: &Case) -> Option<bool> {
        self.measured(case).map(|value| self.bound.met(value))
    }
}

/// While one address attacks, a client from another is answered quickly.
pub const VICTIM_P99: AttackTarget = AttackTarget {
    what: "Victim p99 while one address attacks",
    goal: "p99 < 100 ms",
    value: Value::Metric("victim_p99"),
    bound: Bound::Below(100.0),
};

/// While one address attacks, every ingest of a client from another is accepted.
pub const VICTIM_ACCEPTED: AttackTarget = AttackTarget {
    what: "Victim's ingests accepted while one address attacks",
    goal: "202 for every one sent",
    value: Value::Excess {
        of: "victim_sent",
        over: "victim_accepted",
    },
    bound: Bound::Exactly(0.0),
};

/// While one address attacks, the process holds at most its budget and the overhead.
pub const ATTACK_RSS: AttackTarget = AttackTarget {
    what: "Peak RSS while one address attacks",
    goal: "≤ MEMORY_BUDGET + 64 MiB",
    value: Value::Excess {
        of: "rss_peak",
        over: "memory_budget",
    },
    bound: Bound::AtMost(RSS_OVERHEAD as f64),
};

/// Every target of the abuse suite, each judged for every attack.
pub const ATTACK_TARGETS: [&AttackTarget; 3] = [&VICTIM_P99, &VICTIM_ACCEPTED, &ATTACK_RSS];

/// A target on what a message's shape costs: the time of one shape ÷ another's, in a group
/// that is no A/B pair (its variants are the shapes of [`crate::cases::shape`]).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ShapeTarget {
    /// What is aimed at, for a person.
    pub what: &'static str,
    /// The bound, for a person.
    pub goal: &'static str,
    /// The suite that measures it.
    pub suite: Suite,
    /// The group judged.
    pub group: &'static str,
    /// The metric compared.
    pub metric: &'static str,
    /// The shape judged.
    pub shape: &'static str,
    /// The shape it is compared with.
    pub against: &'static str,
    /// The bound of `shape` ÷ `against`.
    pub bound: Bound,
}

impl ShapeTarget {
    /// `shape` ÷ `against` of the medians in `cases` (a suite's), when both were measured.
    pub fn measured(&self, cases: &[Case]) -> Option<f64> {
        let value = |shape: &str| {
            let case = cases
                .iter()
                .find(|c| c.group == self.group && c.variant == shape)?;
            Some(case.metrics.get(self.metric)?.median)
        };
        let against = value(self.against)?;
        let shape = value(self.shape)?;
        (against > 0.0).then(|| shape / against)
    }

    /// Whether `cases` keep the target (`None`: not measured).
    pub fn met(&self, cases: &[Case]) -> Option<bool> {
        self.measured(cases).map(|ratio| self.bound.met(ratio))
    }
}

/// The worst-shaped message costs at most twice the typical one, judged end to end: the
/// system handles a message from its arrival to its answer, and the unknown fields are
/// dropped at the front door, so the rest of the way carries only what the message holds.
pub const WORST_SHAPE: ShapeTarget = ShapeTarget {
    what: "Worst-shaped 8 MiB stream message, end to end",
    goal: "≤ 2× the time of one carried in data",
    suite: Suite::Criterion,
    group: group::CLIENT_STREAM_SHAPE,
    metric: "time_per_op",
    shape: shape::UNKNOWN_FIELDS,
    against: shape::DATA,
    bound: Bound::AtMost(2.0),
};

#[cfg(test)]
mod tests {
    use super::{ALL, ATTACK_RSS, Of, RSS_OVERHEAD};
    use crate::{pairs::pair_of, protocol::Protocol, results::Side};

    /// A target names a pair of its suite, a metric the pair is judged on (or describes),
    /// variants of the pair and a protocol that exists.
    #[test]
    fn every_target_names_a_pair_the_catalogue_has() {
        for target in ALL {
            let pair = pair_of(target.group).unwrap_or_else(|| panic!("{}", target.what));
            assert!(pair.suites.contains(&target.suite), "{}", target.what);
            match target.of {
                Of::Ratio { optimized } => {
                    assert_eq!(
                        pair.side_of(optimized),
                        Some(Side::Optimized),
                        "{}",
                        target.what
                    );
                }
                Of::Value(variant) | Of::Worst(variant) => {
                    assert!(pair.has(variant), "{}", target.what);
                }
                Of::Best => {}
            }
            for (key, value) in target.params {
                if *key == "protocol" {
                    assert!(value.parse::<Protocol>().is_ok(), "{}", target.what);
                }
            }
        }
    }

    /// The overhead has one figure: the constant, the goal the report shows, and the
    /// README's Limits section say the same.
    #[test]
    fn the_rss_overhead_is_stated_where_it_is_read() {
        let figure = format!("{} MiB", RSS_OVERHEAD >> 20);
        assert_eq!(RSS_OVERHEAD % (1 << 20), 0);
        assert!(ATTACK_RSS.goal.ends_with(&figure), "{}", ATTACK_RSS.goal);
        let readme = std::fs::read_to_string(crate::results::workspace_root().join("README.md"))
            .expect("the README");
        let limits = readme
            .split("### Limits")
            .nth(1)
            .and_then(|rest| rest.split("\n## ").next())
            .expect("a Limits section");
        assert!(
            limits.contains(&format!("`MEMORY_BUDGET` plus {figure}")),
            "the README's Limits section does not state the overhead ({figure})"
        );
    }

    #[test]
    fn an_attack_target_judges_one_case() {
        use super::{VICTIM_ACCEPTED, VICTIM_P99};
        use crate::results::{Case, Metric};
        let case = Case::new("abuse", "slow-bodies", None)
            .metric("victim_p99", Metric::exact("ms", 100.0))
            .metric("victim_sent", Metric::exact("requests", 50.0))
            .metric("victim_accepted", Metric::exact("requests", 50.0))
            .metric("rss_peak", Metric::exact("bytes", 200.0))
            .metric("memory_budget", Metric::exact("bytes", 100.0));
        assert_eq!(
            VICTIM_P99.met(&case),
            Some(false),
            "under 100 ms, not at it"
        );
        assert_eq!(VICTIM_ACCEPTED.measured(&case), Some(0.0));
        assert_eq!(ATTACK_RSS.measured(&case), Some(100.0));
        assert_eq!(ATTACK_RSS.met(&case), Some(true));
        assert_eq!(ATTACK_RSS.met(&Case::new("abuse", "x", None)), None);
    }

    /// The shape target names shapes of a group the catalogue knows, which is no pair, and
    /// its goal states its bound.
    #[test]
    fn the_shape_target_names_known_shapes_and_states_its_bound() {
        use super::WORST_SHAPE;
        use crate::check::known;
        assert!(
            pair_of(WORST_SHAPE.group).is_none(),
            "{}",
            WORST_SHAPE.group
        );
        for shape in [WORST_SHAPE.shape, WORST_SHAPE.against] {
            assert!(
                known(WORST_SHAPE.suite, WORST_SHAPE.group, shape),
                "{shape}"
            );
        }
        let limit = format!("≤ {}×", WORST_SHAPE.bound.limit());
        assert!(WORST_SHAPE.goal.starts_with(&limit), "{}", WORST_SHAPE.goal);
    }

    #[test]
    fn the_shape_target_judges_the_ratio_of_its_group_alone() {
        use super::WORST_SHAPE;
        use crate::{
            cases::{group::CODEC_STREAM_SHAPE, shape},
            results::{Case, Metric},
        };
        let limit = WORST_SHAPE.bound.limit();
        let cases = |group: &str, worst: f64| {
            vec![
                Case::new(group, shape::DATA, None)
                    .metric("time_per_op", Metric::from_samples("ns", vec![1e6, 2e6])),
                Case::new(group, shape::UNKNOWN_FIELDS, None)
                    .metric("time_per_op", Metric::from_samples("ns", vec![worst])),
            ]
        };
        let at_limit = cases(WORST_SHAPE.group, limit * 1.5e6);
        assert_eq!(WORST_SHAPE.measured(&at_limit), Some(limit));
        assert_eq!(WORST_SHAPE.met(&at_limit), Some(true), "at the bound holds");
        let over = cases(WORST_SHAPE.group, limit * 1.5e6 + 1.0);
        assert_eq!(WORST_SHAPE.met(&over), Some(false));
        assert_eq!(WORST_SHAPE.met(&cases(CODEC_STREAM_SHAPE, 1.0)), None);
        assert_eq!(WORST_SHAPE.met(&at_limit[1..]), None, "no data shape");
    }
}
