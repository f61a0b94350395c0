//! The original success metrics and the harness's own targets, as a table ([`ROWS`]): each
//! row a target of the catalogue (`study::targets`, where the pair, metric and bound live)
//! with how the report shows it, or one of the few targets that are not one pair's: any pair
//! faster, connection reuse from either of two suites, our generator against a peer tool.

use study::{
    cases::{Suite, group},
    pairs::pair_of,
    protocol::Protocol,
    results::Case,
    targets::{self, Bound, Of, Target as Goal},
    variant::Variant,
};

use super::{Evidence, Target};

/// How a measured value is shown.
#[derive(Debug, Clone, Copy)]
pub(super) enum Shown {
    /// `0.42× the baseline`.
    TimesBaseline,
    /// A share as a percentage with this many decimals.
    Percent(usize),
    /// `0 per message`.
    PerMessage,
    /// `210 ns (best queue)`.
    BestNanos,
    /// `18.5 MiB`.
    Mebibytes,
}

impl Shown {
    pub(super) fn show(self, value: f64) -> String {
        match self {
            Shown::TimesBaseline => format!("{value:.2}× the baseline"),
            Shown::Percent(decimals) => format!("{:.*}%", decimals, value * 100.0),
            Shown::PerMessage => format!("{value} per message"),
            Shown::BestNanos => format!("{value:.0} ns (best queue)"),
            Shown::Mebibytes => format!("{:.1} MiB", value / f64::from(1 << 20)),
        }
    }
}

/// Which file (and which of its cases) proves a target, as the report names it.
#[derive(Debug, Clone, Copy)]
pub(super) enum Source {
    /// `results/<suite>.json`.
    File,
    /// `results/<suite>.json: <group>`.
    Group,
    /// `results/<suite>.json: <group> <variant>` (and what else the text says of it).
    Case(&'static str),
    /// `results/<suite>.json: <note>`.
    Note(&'static str),
}

impl Source {
    pub(super) fn name(self, goal: &Goal) -> String {
        let file = goal.suite.file();
        match self {
            Source::File => file,
            Source::Group => format!("{file}: {}", goal.group),
            Source::Case(variant) => format!("{file}: {} {variant}", goal.group),
            Source::Note(note) => format!("{file}: {note}"),
        }
    }
}

/// One row of the targets table.
#[derive(Debug, Clone, Copy)]
enum Row {
    /// Some pair of the criterion suite whose time per operation is at most `at_most` of its
    /// baseline's (the original "benchmarks 20–50% faster").
    Faster {
        what: &'static str,
        goal: &'static str,
        at_most: f64,
    },
    /// A target of the catalogue.
    Pair(&'static Goal, Shown, Source),
    /// Connection reuse of the pooled client under load, or else as the sequential client
    /// pair measured it.
    Reuse(&'static Goal),
    /// Our generator's rate on the bare server against a peer tool's: it must never be
    /// the bottleneck.
    Generator {
        what: &'static str,
        protocol: Protocol,
        tool: Variant,
        ratio_of: Variant,
    },
}

/// The targets, in the order the report lists them (the end-to-end ones follow).
const ROWS: [Row; 11] = [
    Row::Faster {
        what: "Benchmarks 20–50% faster",
        goal: "ratio ≤ 0.80",
        at_most: 0.8,
    },
    Row::Pair(
        &targets::QUEUE_ALLOCATIONS,
        Shown::TimesBaseline,
        Source::File,
    ),
    Row::Reuse(&targets::CONNECTION_REUSE),
    Row::Pair(
        &targets::CONNECTION_REUSE_UNDER_LOAD,
        Shown::Percent(2),
        Source::Case("pooled"),
    ),
    Row::Pair(&targets::QUEUE_TIME, Shown::TimesBaseline, Source::File),
    Row::Pair(
        &targets::QUEUE_ZERO_ALLOCATIONS,
        Shown::PerMessage,
        Source::File,
    ),
    Row::Pair(
        &targets::HANDOFF,
        Shown::TimesBaseline,
        Source::Note("queue/threads p1 c1"),
    ),
    Row::Generator {
        what: "Our generator against wrk (HTTP/1.1, bare server)",
        protocol: Protocol::Http1,
        tool: Variant::Wrk,
        ratio_of: Variant::OursOverWrk,
    },
    Row::Generator {
        what: "Our generator against h2load (h2c, bare server)",
        protocol: Protocol::H2c,
        tool: Variant::H2load,
        ratio_of: Variant::OursOverH2load,
    },
    Row::Generator {
        what: "Our generator against h2load (gRPC unary, bare server)",
        protocol: Protocol::GrpcUnary,
        tool: Variant::H2load,
        ratio_of: Variant::OursOverH2load,
    },
    Row::Pair(&targets::WORKER_POOL_TIME, Shown::BestNanos, Source::Group),
];

/// The generator's rate must be at least the peer tool's.
const GENERATOR_AT_LEAST: f64 = 1.0;

impl Evidence {
    /// The targets of [`ROWS`], judged.
    pub(super) fn target_list(&self) -> Vec<Target> {
        ROWS.iter().map(|row| self.judge(*row)).collect()
    }

    fn judge(&self, row: Row) -> Target {
        match row {
            Row::Faster {
                what,
                goal,
                at_most,
            } => self.faster(what, goal, at_most),
            Row::Pair(goal, shown, source) => {
                let value = self.measured(goal, &[]);
                judged(goal, value, value.map(|v| shown.show(v)), source.name(goal))
            }
            Row::Reuse(goal) => self.reuse(goal),
            Row::Generator {
                what,
                protocol,
                tool,
                ratio_of,
            } => self.generator(what, protocol, tool, ratio_of),
        }
    }

    /// The value a catalogue target compares, from the cases with its params and `extra`.
    pub(super) fn measured(&self, goal: &Goal, extra: &[(&str, &str)]) -> Option<f64> {
        let cases = |variant: Variant| {
            self.files
                .get(goal.suite.as_str())
                .into_iter()
                .flat_map(|f| &f.cases)
                .filter(move |c| c.group == goal.group && c.variant == variant.as_str())
                .filter(move |c| goal.params.iter().chain(extra).all(|&(k, v)| has(c, k, v)))
        };
        let value = |variant| cases(variant).next().and_then(|c| c.median(goal.metric));
        match goal.of {
            Of::Ratio { optimized } => {
                let baseline = value(pair_of(goal.group)?.baseline)?;
                let optimized = value(optimized)?;
                (baseline > 0.0).then(|| optimized / baseline)
            }
            Of::Value(variant) => value(variant),
            Of::Best => pair_of(goal.group)?
                .variants()
                .filter_map(value)
                .reduce(f64::min),
            Of::Worst(variant) => cases(variant)
                .filter_map(|c| c.median(goal.metric))
                .reduce(f64::max),
        }
    }

    fn faster(&self, what: &'static str, goal: &'static str, at_most: f64) -> Target {
        let faster: Vec<String> = self
            .pairs()
            .into_iter()
            .filter(|row| row.metric == "time_per_op")
            .filter_map(|row| {
                let ratio = row.ratio.parse::<f64>().ok().filter(|r| *r <= at_most)?;
                Some(format!("{} {} ({ratio:.2})", row.group, row.optimized))
            })
            .collect();
        Target {
            what,
            target: goal,
            measured: if faster.is_empty() {
                "no pair".to_owned()
            } else {
                faster.join("; ")
            },
            met: (self.files.contains_key(Suite::Criterion.as_str())).then_some(!faster.is_empty()),
            evidence: Suite::Criterion.file(),
        }
    }

    fn reuse(&self, goal: &'static Goal) -> Target {
        let sequential = Goal {
            suite: Suite::Allocations,
            group: group::CLIENT_MODE,
            ..*goal
        };
        let (value, source) = match self.measured(goal, &[]) {
            Some(under_load) => (
                Some(under_load),
                Source::Case("pooled, under load").name(goal),
            ),
            None => (
                self.measured(&sequential, &[]),
                Source::Case("pooled, sequential").name(&sequential),
            ),
        };
        judged(
            goal,
            value,
            value.map(|r| Shown::Percent(1).show(r)),
            source,
        )
    }

    fn generator(
        &self,
        what: &'static str,
        protocol: Protocol,
        tool: Variant,
        ratio_of: Variant,
    ) -> Target {
        let peers = group::peers(protocol);
        let ratio = self
            .case(Suite::Peers.as_str(), &peers, ratio_of.as_str())
            .and_then(|c| c.median("throughput_ratio"));
        Target {
            what,
            target: "rate ≥ the tool's",
            measured: ratio.map_or_else(
                || "not measured".to_owned(),
                |r| format!("{r:.2}× {tool}'s rate"),
            ),
            met: ratio.map(|r| r >= GENERATOR_AT_LEAST),
            evidence: if ratio.is_some() {
                format!("{}: {peers}", Suite::Peers.file())
            } else {
                String::new()
            },
        }
    }
}

/// A target of the catalogue judged on `value`, shown as `measured`, proven by `evidence`
/// (named only when it was measured).
pub(super) fn judged(
    goal: &Goal,
    value: Option<f64>,
    measured: Option<String>,
    evidence: String,
) -> Target {
    Target {
        what: goal.what,
        target: goal.goal,
        measured: measured.unwrap_or_else(|| "not measured".to_owned()),
        met: value.map(|v| goal.bound.met(v)),
        evidence: if value.is_some() {
            evidence
        } else {
            String::new()
        },
    }
}

/// How far `value` falls short of a lower bound, when it does.
pub(super) fn short_of(bound: Bound, value: f64) -> Option<f64> {
    (!bound.met(value)).then(|| bound.limit() - value)
}

fn has(case: &Case, key: &str, value: &str) -> bool {
    case.params.get(key).map(String::as_str) == Some(value)
}
