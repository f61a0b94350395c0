//! The end-to-end pairs of `results/load.json`: capacity and latency side by side, and the
//! targets against the bare servers.

use serde::Serialize;
use study::{
    cases::{Suite, group},
    catalogue::{LOADS, saturated},
    pairs::pair_of,
    protocol::Protocol,
    results::{Case, Side},
    targets::{PEAK_MEMORY, Target as Goal, VS_BARE_CAPACITY, VS_BARE_P99},
    variant::Variant,
};

use super::{
    Evidence, Target, short,
    targets::{Shown, Source, judged, short_of},
};

/// One pair, baseline → optimized, as the report's end-to-end table shows it.
#[derive(Debug, Serialize)]
pub(crate) struct EndToEndRow {
    group: String,
    protocol: String,
    baseline: String,
    optimized: String,
    /// Capacities, `*` marking a side whose server was not saturated.
    capacity: String,
    ratio: String,
    /// Concurrency at which each side reached its capacity.
    concurrency: String,
    cpu_per_msg: String,
    /// p99 at each of [`LOADS`], baseline → optimized.
    p99: Vec<String>,
}

impl Evidence {
    fn load_cases(&self) -> &[Case] {
        (self.files.get(Suite::Load.as_str())).map_or(&[], |f| f.cases.as_slice())
    }

    /// The case of `variant` in `group` for `protocol` (any protocol when `None`) with
    /// these further params.
    pub(super) fn load_case(
        &self,
        group: &str,
        variant: &str,
        protocol: Option<&str>,
        params: &[(&str, &str)],
    ) -> Option<&Case> {
        self.load_cases().iter().find(|c| {
            c.group == group
                && c.variant == variant
                && protocol.is_none_or(|p| c.params.get("protocol").map(String::as_str) == Some(p))
                && params
                    .iter()
                    .all(|(k, v)| c.params.get(*k).map(String::as_str) == Some(*v))
        })
    }

    /// Every optimized side of every load pair against its baseline.
    pub(crate) fn end_to_end(&self) -> Vec<EndToEndRow> {
        self.load_cases()
            .iter()
            .filter(|c| c.side == Some(Side::Optimized) && is(c, "measure", "capacity"))
            .filter_map(|optimized| {
                let protocol = optimized.params.get("protocol")?.as_str();
                // A baseline of the same protocol, or the group's only one (load/ingress
                // compares protocols).
                let baseline = self.load_cases().iter().find(|c| {
                    c.group == optimized.group
                        && c.side == Some(Side::Baseline)
                        && is(c, "measure", "capacity")
                        && is(c, "protocol", protocol)
                });
                let baseline = baseline.or_else(|| {
                    self.load_cases().iter().find(|c| {
                        c.group == optimized.group
                            && c.side == Some(Side::Baseline)
                            && is(c, "measure", "capacity")
                    })
                })?;
                let base_protocol = baseline.params.get("protocol").map(String::as_str);
                let p99 = LOADS
                    .iter()
                    .map(|load| {
                        let load = format!("{:.0}%", load * 100.0);
                        let latency = [("measure", "latency"), ("load", load.as_str())];
                        let of = |c: Option<&Case>| c.and_then(|c| c.median("p99"));
                        let b = of(self.load_case(
                            &baseline.group,
                            &baseline.variant,
                            base_protocol,
                            &latency,
                        ));
                        let o = of(self.load_case(
                            &optimized.group,
                            &optimized.variant,
                            Some(protocol),
                            &latency,
                        ));
                        both(b, o, |v| format!("{v:.2}"))
                    })
                    .collect();
                Some(EndToEndRow {
                    group: optimized.group.clone(),
                    protocol: if base_protocol == Some(protocol) {
                        protocol.to_owned()
                    } else {
                        format!("{} → {protocol}", base_protocol.unwrap_or("?"))
                    },
                    baseline: baseline.variant.clone(),
                    optimized: optimized.variant.clone(),
                    capacity: format!("{} → {}", capacity_text(baseline), capacity_text(optimized)),
                    ratio: match (baseline.median("capacity"), optimized.median("capacity")) {
                        (Some(b), Some(o)) if b > 0.0 => format!("{:.2}", o / b),
                        _ => "–".to_owned(),
                    },
                    concurrency: both(
                        baseline.median("concurrency"),
                        optimized.median("concurrency"),
                        |v| format!("{v:.0}"),
                    ),
                    cpu_per_msg: both(
                        baseline.median("server_cpu_per_msg"),
                        optimized.median("server_cpu_per_msg"),
                        |v| format!("{v:.1}"),
                    ),
                    p99,
                })
            })
            .collect()
    }

    /// The system against the bare servers: capacity ratios per protocol, p99 at half the
    /// system's capacity, and the system's peak memory at capacity.
    pub(crate) fn end_to_end_targets(&self) -> Vec<Target> {
        let mut targets: Vec<Target> = VS_BARE_CAPACITY
            .iter()
            .map(|goal| self.capacity_against_bare(goal))
            .collect();
        targets.push(self.p99_against_bare(&VS_BARE_P99));
        let rss = self.measured(&PEAK_MEMORY, &[]);
        let source = Source::Case("system, peak RSS").name(&PEAK_MEMORY);
        targets.push(judged(
            &PEAK_MEMORY,
            rss,
            rss.map(|b| Shown::Mebibytes.show(b)),
            source,
        ));
        targets
    }

    /// One protocol's capacity against the bare server's; a miss says by how much and
    /// what the profile blames.
    fn capacity_against_bare(&self, goal: &Goal) -> Target {
        let protocol = goal
            .params
            .iter()
            .find(|(k, _)| *k == "protocol")
            .map_or("", |&(_, p)| p);
        let ratio = self.measured(goal, &[]);
        let measured = ratio.map(|r| match (short_of(goal.bound, r), self.blame(protocol)) {
            (Some(short), Some(blame)) => {
                format!("{r:.2}× bare, {short:.2} short; most CPU: {blame}")
            }
            (Some(short), None) => format!("{r:.2}× bare, {short:.2} short"),
            (None, _) => format!("{r:.2}× bare"),
        });
        judged(goal, ratio, measured, Source::Case(protocol).name(goal))
    }

    /// The p99 at half the system's capacity against the bare server's, every protocol.
    fn p99_against_bare(&self, goal: &Goal) -> Target {
        let p99: Vec<(&str, f64)> = Protocol::ALL
            .iter()
            .filter_map(|p| {
                let ratio = self.measured(goal, &[("protocol", p.as_str())])?;
                Some((p.as_str(), ratio))
            })
            .collect();
        Target {
            what: goal.what,
            target: goal.goal,
            measured: if p99.is_empty() {
                "not measured".to_owned()
            } else {
                p99.iter()
                    .map(|(p, r)| format!("{p} {r:.2}×"))
                    .collect::<Vec<_>>()
                    .join(", ")
            },
            met: (!p99.is_empty()).then(|| p99.iter().all(|(_, r)| goal.bound.met(*r))),
            evidence: evidence_of(
                p99.first(),
                &format!("{}: {}, load=50%", goal.suite.file(), goal.group),
            ),
        }
    }
}

fn is(case: &Case, key: &str, value: &str) -> bool {
    case.params.get(key).map(String::as_str) == Some(value)
}

/// A capacity, marked `*` when its server was not saturated.
pub(super) fn capacity_text(case: &Case) -> String {
    let Some(rate) = case.median("capacity") else {
        return "–".to_owned();
    };
    let unsaturated = case
        .median("server_cpu_share")
        .is_some_and(|share| !saturated(share));
    format!("{}{}", short(rate), if unsaturated { "*" } else { "" })
}

fn both(b: Option<f64>, o: Option<f64>, fmt: impl Fn(f64) -> String) -> String {
    let text = |v: Option<f64>| v.map_or_else(|| "–".to_owned(), &fmt);
    format!("{} → {}", text(b), text(o))
}

fn evidence_of<T>(value: Option<T>, source: &str) -> String {
    if value.is_some() {
        source.to_owned()
    } else {
        String::new()
    }
}

/// One default setting and what the study measured for it.
#[derive(Debug, Serialize)]
pub(crate) struct DefaultRow {
    setting: &'static str,
    default: String,
    pair: &'static str,
    /// The default side's capacity ÷ the other side's.
    capacity_ratio: String,
    /// p99 at half the pair's smaller capacity, default side then the other.
    p99_at_half: String,
}

/// Each pair of the load suite whose sides are a setting: the setting and its pair (whose
/// baseline and optimized variants are the setting's values).
const SETTINGS: [(&str, &str); 5] = [
    ("QUEUE_TYPE", group::LOAD_QUEUE),
    ("CLIENT_MODE", group::LOAD_CLIENT),
    ("HOP_PROTOCOL", group::LOAD_HOP_PROTOCOL),
    ("HOP_CODEC", group::LOAD_HOP_CODEC),
    ("HOP_BATCH_HTTP", group::LOAD_HOP_BATCHING),
];

impl Evidence {
    /// The default of the `system` binary's setting `env`, as `defaults.json` records it
    /// (written from the binary's command-line definition, not typed here).
    fn default_setting(&self, env: &str) -> Option<String> {
        let file = self.files.get(Suite::Defaults.as_str())?;
        let case = file.cases.iter().find(|c| c.variant == env)?;
        case.params.get("value").cloned()
    }

    /// The defaults of the `system` binary against the other side of their pairs.
    pub(crate) fn defaults(&self) -> Vec<DefaultRow> {
        SETTINGS
            .iter()
            .filter_map(|&(setting, group)| {
                let pair = pair_of(group)?;
                let sides = [pair.baseline.as_str(), pair.optimized.first()?.as_str()];
                let default = self.default_setting(setting)?;
                // HOP_BATCH_HTTP is a flag: true is the batched side.
                let variant = match default.as_str() {
                    "true" => Variant::Batched.as_str(),
                    "false" => Variant::Unbatched.as_str(),
                    other => sides.iter().copied().find(|s| *s == other)?,
                };
                let other = sides.iter().copied().find(|s| *s != variant)?;
                let capacity = |v: &str| {
                    self.load_case(group, v, None, &[("measure", "capacity")])?
                        .median("capacity")
                };
                let p99 = |v: &str| {
                    self.load_case(group, v, None, &[("measure", "latency"), ("load", "50%")])?
                        .median("p99")
                };
                Some(DefaultRow {
                    setting,
                    default,
                    pair: group,
                    capacity_ratio: match (capacity(variant), capacity(other)) {
                        (Some(d), Some(o)) if o > 0.0 => format!("{:.2}", d / o),
                        _ => "–".to_owned(),
                    },
                    p99_at_half: both(p99(variant), p99(other), |v| format!("{v:.2}")),
                })
            })
            .collect()
    }
}
